"""``train.py --tiny`` and ``export_onnx.py`` run end to end on CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from semcache.verify.pair_model import PairModel

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]


def _run(*args: str) -> str:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_tiny_training_and_export(tmp_path: Path) -> None:
    out, pkg = tmp_path / "out", tmp_path / "pkg"
    summary = json.loads(_run("training/verifier/train.py", "--tiny", "--out", str(out),
                              "--noise", "0.3", "--synth-traps", "0.5",
                              "--extra").strip().splitlines()[-1])
    assert summary["best_epoch"] == 1 and 0.0 <= summary["wrong"] <= 0.01
    _run("training/verifier/export_onnx.py", "--model", str(out), "--dest", str(pkg),
         "--report", str(tmp_path / "report.json"))
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["int8_mb"] < report["fp32_mb"] / 2
    model = PairModel.load(pkg)
    scores = model.score([("How do I reset my password?", "how do i rest my pasword")] * 2)
    assert scores.shape == (2,) and abs(float(scores[0] - scores[1])) < 1e-6


def test_tiny_distillation_into_fewer_layers(tmp_path: Path) -> None:
    teacher, student = tmp_path / "teacher", tmp_path / "student"
    _run("training/verifier/train.py", "--tiny", "--out", str(teacher))
    _run("training/verifier/train.py", "--tiny", "--init", str(teacher), "--layers", "1",
         "--distill", str(teacher), "--out", str(student))
    meta = json.loads((student / "pair_head.json").read_text())
    assert meta["layers"] == 1 and meta["distill"] == str(teacher)


def test_the_shipped_graph_rebuilds_into_a_classifier_that_scores_alike() -> None:
    """``from_onnx.py`` reads the shipped dynamic-int8 graph back into torch (the start of a
    retraining): int8 weights dequantised, activations then in fp32, so scores move a little."""
    from importlib import resources

    import numpy as np
    import torch

    sys.path.insert(0, str(ROOT / "training" / "verifier"))
    import from_onnx

    from semcache.verify.pair_model.scorer import encode_pairs, make_tokenizer

    rows = [json.loads(line) for line in (ROOT / "datasets/pairs/train.jsonl").read_text().splitlines()[:80]]
    pairs = [(r["cached"], r["query"]) for r in rows]
    root = resources.files("semcache.verify.pair_model")
    classifier = from_onnx.rebuild(Path(str(root / "model.onnx"))).eval()
    tokenizer = make_tokenizer(str(root / "tokenizer.json"), 128)
    with torch.no_grad():
        inputs = {k: torch.from_numpy(v) for k, v in encode_pairs(tokenizer, pairs).items()}
        rebuilt = torch.sigmoid(classifier(**inputs)).numpy()
    shipped = PairModel.load().score(pairs)
    assert float(np.median(np.abs(rebuilt - shipped))) < 0.01
    assert float(np.mean((rebuilt > 0.5) == (shipped > 0.5))) >= 0.95
    assert len(set(np.round(shipped, 2))) > 5  # not a constant
