"""How ``PairModel.score`` runs its pairs. The shipped model quantises activations at run time
(one scale per run), so it runs each pair alone and a pair scores the same whatever is beside
it; a model with fp32 activations runs one lookup's pairs as one padded batch, and longer lists
in chunks of similar length."""

from __future__ import annotations

import json
import os
import shutil
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from semcache.verify.pair_model import PairModel
from semcache.verify.pair_model.scorer import encode_pairs, make_tokenizer

pytestmark = pytest.mark.unit

QUERY = "how do i rest my pasword"
LOOKUP = [("How do I reset my password?", QUERY), ("Reset password", QUERY),
          ("Where can I find the page to reset the password of my online banking account?", QUERY),
          ("How do I reset my router?", QUERY), ("Who wrote Hamlet?", QUERY)]
LONG = ("Explain, step by step and with an example for each, how compound interest differs from simple "
        "interest over ten years when the rate changes every year and fees are taken monthly " * 2)
PAIRS = [*LOOKUP, (LONG, "What is compound interest?"), ("Hi", LONG), ("Is it open on Sunday?", "Open sundays?"),
         ("Can I bring a folding bike on the train?", "Can I not bring a folding bike on the train?"),
         ("What is the maximum dose of ibuprofen for a 10 kg child?", "max ibuprofen dose 30 kg child")]


@pytest.fixture(scope="module")
def model() -> PairModel:
    return PairModel.load()


@pytest.fixture(scope="module")
def fp32_activations(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped folder with its config saying fp32 activations: for how runs are cut only
    (the graph itself still quantises per run, so its batched scores are not compared)."""
    folder = tmp_path_factory.mktemp("fp32")
    root = resources.files("semcache.verify.pair_model")
    for name in ("model.onnx", "tokenizer.json"):
        shutil.copyfile(str(root / name), folder / name)
    config = json.loads((root / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "activations": "fp32"}))
    return folder


@pytest.fixture(scope="module")
def one_by_one(model: PairModel) -> np.ndarray:
    """Each pair in its own run of the graph, one thread, default options."""
    import onnxruntime as ort

    root = resources.files("semcache.verify.pair_model")
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.add_session_config_entry("session.disable_quant_qdq", "1")
    session = ort.InferenceSession(str(root / "model.onnx"), options, providers=["CPUExecutionProvider"])
    tokenizer = make_tokenizer(str(root / "tokenizer.json"), model.config.max_len)
    return np.array([session.run(None, encode_pairs(tokenizer, [p]))[0].reshape(-1)[0] for p in PAIRS],
                    dtype=np.float32)


class CountingSession:
    def __init__(self, session: Any) -> None:
        self.session, self.batches = session, []

    def run(self, names: Any, feeds: dict[str, np.ndarray]) -> Any:
        self.batches.append(feeds["input_ids"].shape)
        return self.session.run(names, feeds)


def test_the_shipped_model_runs_each_pair_alone(model: PairModel, one_by_one: np.ndarray) -> None:
    assert model.config.activations == "dynamic-int8"
    counting = CountingSession(model._session)
    model._session = counting  # type: ignore[assignment]
    try:
        got = model.score(LOOKUP)
    finally:
        model._session = counting.session
    assert [b[0] for b in counting.batches] == [1] * len(LOOKUP)
    np.testing.assert_allclose(got, one_by_one[:len(LOOKUP)], atol=1e-6, rtol=0)
    assert got.dtype == np.float32 and len(set(np.round(got, 3))) > 1


def test_a_pair_scores_the_same_whatever_is_beside_it(model: PairModel, one_by_one: np.ndarray) -> None:
    np.testing.assert_allclose(model.score(PAIRS), one_by_one, atol=1e-6, rtol=0)
    np.testing.assert_allclose([model.score([p])[0] for p in PAIRS], one_by_one, atol=1e-6, rtol=0)
    np.testing.assert_allclose(model.score(PAIRS[::-1])[::-1], one_by_one, atol=1e-6, rtol=0)


def test_fp32_activations_run_one_lookup_as_one_batch(fp32_activations: Path) -> None:
    batched = PairModel.load(fp32_activations)
    counting = CountingSession(batched._session)
    batched._session = counting  # type: ignore[assignment]
    assert batched.score(LOOKUP).shape == (len(LOOKUP),)
    assert len(counting.batches) == 1 and counting.batches[0][0] == len(LOOKUP)


def test_more_pairs_than_a_batch_run_in_chunks_of_similar_length(fp32_activations: Path) -> None:
    small = PairModel.load(fp32_activations, threads=1)
    small.batch_size = 3
    counting = CountingSession(small._session)
    small._session = counting  # type: ignore[assignment]
    assert small.score(PAIRS).shape == (len(PAIRS),)
    assert [b[0] for b in counting.batches] == [3, 3, 3, 1]
    widths = [b[1] for b in counting.batches]
    assert widths == sorted(widths)  # shortest first: each run pads to its own longest pair


def test_threads_default_to_one_per_pair_and_two_for_batches(fp32_activations: Path) -> None:
    assert PairModel.load().threads == 1
    assert PairModel.load(fp32_activations).threads == min(2, os.cpu_count() or 1)
    assert PairModel.load(threads=2).threads == 2
    with pytest.raises(ValueError, match="threads"):
        PairModel.load(threads=0)


def test_pairs_are_padded_to_the_longest_and_the_padding_is_masked() -> None:
    root = resources.files("semcache.verify.pair_model")
    tokenizer = make_tokenizer(str(root / "tokenizer.json"), 128)
    short, longer = ("Hi", "Hello"), ("How do I reset my password?", "how do i reset my pasword")
    alone = [len(tokenizer.encode(*p).ids) for p in (short, longer)]
    feeds = encode_pairs(tokenizer, [short, longer])
    assert feeds["input_ids"].shape == (2, max(alone)) and max(alone) < 128
    assert feeds["attention_mask"].sum(axis=1).tolist() == alone
    assert (feeds["input_ids"][0, alone[0]:] == 0).all() and (feeds["token_type_ids"][0, alone[0]:] == 0).all()
    assert {v.dtype for v in feeds.values()} == {np.dtype(np.int64)}
