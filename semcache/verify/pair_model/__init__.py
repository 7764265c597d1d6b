"""The learned pair verifier: an int8 ONNX cross-encoder over (cached, query).

Trained by ``training/verifier/train.py`` on ``datasets/pairs``; exported by
``training/verifier/export_onnx.py`` into this folder. See ``scorer.PairModel``.
"""

from semcache.verify.pair_model.scorer import PairModel, PairModelConfig

__all__ = ["PairModel", "PairModelConfig"]
