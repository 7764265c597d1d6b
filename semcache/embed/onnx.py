"""ONNX export and onnxruntime inference for BERT-style sentence encoders.

The graph takes ``input_ids`` and ``attention_mask`` (int64, ``[B, T]``) and returns
L2-normalised mean-pooled embeddings (float32, ``[B, D]``). The wheel ships one, built by
``scripts/build_embedder_onnx.py``; running it needs only onnxruntime. Exporting other
weights needs torch and onnx (the ``torch`` extra): the file is written once per weights
file to a cache folder. The wrapper is put in eval mode before and after the export (why:
docs/design/core.md)."""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from semcache.exceptions import EmbedderError

logger = logging.getLogger(__name__)

ONNX_OPSET = 17
# Bump when the exported graph changes, so stale cache files are not reused.
EXPORT_FORMAT = 1


def runtime_available() -> bool:
    """True when ``onnxruntime`` can be imported (enough to run a prebuilt graph)."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def onnx_available() -> bool:
    """True when a graph can also be exported: ``onnx``, ``onnxruntime`` and ``torch`` import."""
    try:
        import onnx  # noqa: F401
        import torch  # noqa: F401
    except ImportError:
        return False
    return runtime_available()


def default_cache_dir() -> Path:
    """The default folder for exported models: ``~/.cache/semcache/onnx``."""
    return Path.home() / ".cache" / "semcache" / "onnx"


def _pooling_wrapper(model: Any) -> Any:
    """Wrap a transformers encoder so that it returns normalised mean-pooled vectors."""
    import torch

    class MeanPooledEncoder(torch.nn.Module):
        def __init__(self, encoder: Any) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            # Explicit positions, token types and an additive [B, 1, 1, T] mask keep the
            # traced graph free of buffer slices and of transformers' data-dependent
            # mask construction (which traces Python branches on the example input).
            position_ids = torch.cumsum(torch.ones_like(input_ids), dim=1) - 1
            token_type_ids = torch.zeros_like(input_ids)
            keep = attention_mask[:, None, None, :].to(torch.float32)
            additive_mask = (1.0 - keep) * torch.finfo(torch.float32).min
            hidden = self.encoder(
                input_ids=input_ids,
                attention_mask=additive_mask,
                position_ids=position_ids,
                token_type_ids=token_type_ids,
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            summed = (hidden * mask).sum(dim=1)
            pooled = summed / mask.sum(dim=1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2.0, dim=-1)

    return MeanPooledEncoder(model).eval()


def export_onnx(model: Any, tokenizer_encode: Any, out_path: Path) -> None:
    """Export ``model`` (a transformers encoder in eval mode) to ``out_path`` atomically.

    ``tokenizer_encode(texts)`` must return ``(input_ids, attention_mask)`` int64 arrays.
    """
    import torch

    wrapper = _pooling_wrapper(model)
    ids, mask = tokenizer_encode(["an example sentence", "a second, somewhat longer example"])
    example = (torch.from_numpy(ids), torch.from_numpy(mask))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(suffix=".onnx.tmp", dir=out_path.parent)
    os.close(fd)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapper,
                example,
                tmp_name,
                input_names=["input_ids", "attention_mask"],
                output_names=["embedding"],
                dynamic_axes={
                    "input_ids": {0: "batch", 1: "tokens"},
                    "attention_mask": {0: "batch", 1: "tokens"},
                    "embedding": {0: "batch"},
                },
                opset_version=ONNX_OPSET,
                dynamo=False,
            )
        os.replace(tmp_name, out_path)  # atomic: concurrent exporters never see half a file
    finally:
        wrapper.eval()  # see the module docstring: export restores the training flag
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)


class OnnxSession:
    """A thin onnxruntime session for the exported graph (thread-safe ``run``)."""

    def __init__(self, path: Path, num_threads: int) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            from semcache.exceptions import MissingExtraError

            raise MissingExtraError("onnxruntime", "proxy") from exc

        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Spinning workers burn the cores that concurrent callers need; on a loaded 2-core
        # machine single-query p50 was 11.1 ms without spinning vs 12.2 ms with it.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise EmbedderError(f"cannot load ONNX model {path}: {exc}") from exc
        self.runtime_version: str = ort.__version__

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """Embed one padded batch; returns float32 ``[B, D]``."""
        (out,) = self._session.run(
            ["embedding"], {"input_ids": input_ids, "attention_mask": attention_mask}
        )
        return np.asarray(out, dtype=np.float32)
