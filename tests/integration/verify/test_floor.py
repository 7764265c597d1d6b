"""Precision floor of threshold + verifier on a fixed slice of the hard-negative dev set.

Real all-MiniLM-L6-v2 embeddings gate the candidates at one cosine threshold (0.75);
the verifier then decides. The floor (precision >= 0.90, recall >= 0.40) must hold
for ``HardNegativeVerifier`` and must fail for ``PassThroughVerifier``, so a broken
or pass-through verifier cannot pass this test.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from semcache.verify import HardNegativeVerifier
from semcache.verify.base import PassThroughVerifier, Verifier

pytestmark = pytest.mark.integration

DEV = Path(__file__).resolve().parents[3] / "benchmarks" / "data" / "hardneg_dev.jsonl"
THRESHOLD = 0.75
MIN_PRECISION = 0.90
MIN_RECALL = 0.40


@pytest.fixture(scope="module")
def subset(minilm: Any) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Every 7th dev row (fixed rule), with the cosine of each pair."""
    rows = [json.loads(line) for line in DEV.read_text().splitlines() if line.strip()][::7]
    cached = minilm.embed([r["cached"] for r in rows])
    query = minilm.embed([r["query"] for r in rows])
    return rows, np.einsum("ij,ij->i", cached, query)


def precision_recall(rows: list[dict[str, Any]], sims: np.ndarray, verifier: Verifier) -> tuple[float, float]:
    tp = fp = positives = 0
    for row, sim in zip(rows, sims, strict=True):
        hit = bool(sim >= THRESHOLD) and verifier.verify(
            row["query"], row["cached"], category=row["category"]
        ).accepted
        positives += row["should_hit"]
        tp += hit and row["should_hit"]
        fp += hit and not row["should_hit"]
    precision = tp / (tp + fp) if tp + fp else 1.0
    return precision, tp / positives


def test_subset_is_mixed(subset):
    rows, _ = subset
    assert len(rows) >= 60
    hits = sum(r["should_hit"] for r in rows)
    assert 0.3 * len(rows) < hits < 0.7 * len(rows)


def test_hard_negative_verifier_meets_floor(subset):
    precision, recall = precision_recall(*subset, HardNegativeVerifier())
    assert precision >= MIN_PRECISION, f"precision {precision:.3f}"
    assert recall >= MIN_RECALL, f"recall {recall:.3f}"


def test_pass_through_verifier_fails_floor(subset):
    precision, recall = precision_recall(*subset, PassThroughVerifier())
    assert not (precision >= MIN_PRECISION and recall >= MIN_RECALL), (precision, recall)
