"""Score (cached, query) pairs with the shipped int8 ONNX cross-encoder.

``PairModel.load()`` reads ``model.onnx``, ``tokenizer.json`` and
``config.json`` from this package (importlib.resources) and needs only
onnxruntime, tokenizers and numpy: no torch, no network. ``score`` returns, per
pair, the probability that the answer cached for ``cached`` may be served for
``query``; ``threshold_for(category)`` the calibrated cut.

A model whose activations are quantised at run time (``config.json``: ``"activations":
"dynamic-int8"``, the shipped one) takes one scale per run, so a pair would score differently
beside other pairs: it scores each pair in its own run, on one intra-op thread. A model with
fp32 activations puts one lookup's pairs (at most ``batch_size``) through one padded run on
two threads. Either way the threads sleep rather than spin between runs; these were the
fastest ways found to score 1 to 5 candidates on a 2-core machine
(``benchmarks/verifier_latency.py``). Padding is masked, so with fp32 activations a pair
scores the same alone or in a batch (to float rounding, < 1e-5).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "config.json"
# Two threads scored 5 candidates in about two thirds of the time of one (one padded run, a
# 2-core machine with no other lookup running); past the cores they only queue.
DEFAULT_THREADS = 2
# Pairs per run when a call brings more (benchmarks, calibration); one lookup brings at most k.
BATCH_SIZE = 16


def make_tokenizer(path: str | Path, max_len: int) -> Any:
    """A ``tokenizers.Tokenizer`` that truncates pairs to ``max_len`` (``encode_pairs`` pads)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.enable_truncation(max_length=max_len, strategy="longest_first")
    tokenizer.no_padding()  # MiniLM's file pads every pair to 128 tokens
    return tokenizer


def encode_pairs(tokenizer: Any, pairs: Sequence[tuple[str, str]]) -> dict[str, np.ndarray]:
    """``[CLS] cached [SEP] query [SEP]`` ids, mask and token types, int64 ``[B, T]``."""
    return _padded(tokenizer.encode_batch([(a, b) for a, b in pairs]))


@dataclass(frozen=True, slots=True)
class PairModelConfig:
    """What the training run recorded next to the model."""

    max_len: int
    threshold: float  # chosen on the dev rows (wrong <= 1%)
    thresholds: dict[str, float]  # per category, where the dev rows had enough traps
    base_model: str
    layers: int
    activations: str = "fp32"  # or "dynamic-int8": int8 activations, one scale per run


class PairModel:
    """The cross-encoder verifier: ``score(pairs) -> probabilities``."""

    def __init__(self, model_path: str | Path, tokenizer_path: str | Path,
                 config: PairModelConfig, threads: int | None = None, *, spinning: bool = False,
                 batch_size: int = BATCH_SIZE) -> None:
        import onnxruntime as ort

        if (threads is not None and threads < 1) or batch_size < 1:
            raise ValueError(f"threads and batch_size must be >= 1, got {threads!r}, {batch_size!r}")
        options = ort.SessionOptions()
        # The cores are shared with the server: at most two threads, and none past the cores.
        # One short pair per run (dynamic int8) is fastest on one thread: 5 candidates p50
        # 9.4 ms on one, 12.9 ms on two (benchmarks/verifier_latency.py).
        default = 1 if config.activations == "dynamic-int8" else DEFAULT_THREADS
        self.threads = threads or min(default, os.cpu_count() or 1)
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        # A spinning worker keeps its core busy after each run. It saved 1-2 ms a lookup alone,
        # but with two lookups at once on two cores it raised their p99 by half: off by default.
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # A weight-only int8 graph stores its weights behind DequantizeLinear nodes. Without
        # QDQ fusion onnxruntime folds them into fp32 weights at load and computes in fp32, as
        # the thresholds of such a graph were set. The thresholds of a dynamic-int8 graph were set
        # on scores computed with this same option.
        options.add_session_config_entry("session.disable_quant_qdq", "1")
        self._session = ort.InferenceSession(str(model_path), options,
                                             providers=["CPUExecutionProvider"])
        self._tokenizer = make_tokenizer(tokenizer_path, config.max_len)  # padded per run
        self.batch_size = int(batch_size)
        self.config = config

    @classmethod
    def load(cls, directory: str | Path | None = None, threads: int | None = None) -> PairModel:
        """The model shipped in this package, or the one in ``directory``."""
        if directory is None:
            root = resources.files(__package__)
            with resources.as_file(root / CONFIG_FILE) as cfg, \
                    resources.as_file(root / MODEL_FILE) as onnx_file, \
                    resources.as_file(root / TOKENIZER_FILE) as tok_file:
                return cls._from_files(Path(onnx_file), Path(tok_file), Path(cfg), threads)
        d = Path(directory)
        return cls._from_files(d / MODEL_FILE, d / TOKENIZER_FILE, d / CONFIG_FILE, threads)

    @classmethod
    def _from_files(cls, onnx_file: Path, tok_file: Path, cfg_file: Path,
                    threads: int | None) -> PairModel:
        for f in (onnx_file, tok_file, cfg_file):
            if not f.is_file():
                raise FileNotFoundError(f"pair model file missing: {f}")
        raw = json.loads(cfg_file.read_text())
        config = PairModelConfig(max_len=int(raw["max_len"]), threshold=float(raw["threshold"]),
                                 thresholds={str(k): float(v) for k, v in raw.get("thresholds", {}).items()},
                                 base_model=str(raw["base_model"]), layers=int(raw["layers"]),
                                 activations=str(raw.get("activations", "fp32")))
        if config.activations not in ("fp32", "dynamic-int8"):
            raise ValueError(f"{cfg_file}: unknown activations {config.activations!r}")
        return cls(onnx_file, tok_file, config, threads)

    @property
    def threshold(self) -> float:
        return self.config.threshold

    def score(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """Probabilities (float32 ``[len(pairs)]``) that each pair may share an answer."""
        if not pairs:
            return np.zeros(0, dtype=np.float32)
        for pair in pairs:
            if len(pair) != 2 or not all(isinstance(t, str) for t in pair):
                raise TypeError(f"expected (cached, query) string pairs, got {pair!r}")
        encodings = self._tokenizer.encode_batch([(a, b) for a, b in pairs])
        out = np.empty(len(pairs), dtype=np.float32)
        # Up to batch_size pairs: one run. More: runs of similar lengths, so little is padded.
        # Activations quantised per run: one pair per run, so no pair moves another's scale.
        size = 1 if self.config.activations == "dynamic-int8" else self.batch_size
        order = list(range(len(pairs)))
        if len(pairs) > size:
            order.sort(key=lambda i: len(encodings[i].ids))
        for start in range(0, len(order), size):
            rows = order[start:start + size]
            (prob,) = self._session.run(None, _padded([encodings[i] for i in rows]))
            out[rows] = np.asarray(prob, dtype=np.float32).reshape(-1)
        return out

    @property
    def vocabulary(self) -> frozenset[str]:
        """The whole words of the model's vocabulary (no word pieces), lower case."""
        return frozenset(w for w in self._tokenizer.get_vocab() if w.isalpha())

    def threshold_for(self, category: str) -> float:
        """The category's calibrated threshold, else the overall one."""
        return self.config.thresholds.get(category, self.config.threshold)

    def accepts(self, cached: str, query: str, category: str = "other") -> bool:
        """True when the pair scores at or above the category's threshold."""
        return bool(self.score([(cached, query)])[0] >= self.threshold_for(category))


def _padded(encodings: Sequence[Any]) -> dict[str, np.ndarray]:
    """The model's int64 ``[B, T]`` inputs, padded with zeros (``[PAD]``, masked) to the longest."""
    width = max(len(e.ids) for e in encodings)
    arrays = {name: np.zeros((len(encodings), width), dtype=np.int64)
              for name in ("input_ids", "attention_mask", "token_type_ids")}
    for row, e in enumerate(encodings):
        n = len(e.ids)
        arrays["input_ids"][row, :n] = e.ids
        arrays["attention_mask"][row, :n] = 1
        arrays["token_type_ids"][row, :n] = e.type_ids
    return arrays
