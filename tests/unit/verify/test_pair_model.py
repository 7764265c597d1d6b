"""The shipped pair verifier: loads offline from the package and separates pairs."""

from __future__ import annotations

import shutil
import socket

import numpy as np
import pytest

from semcache.verify.pair_model import PairModel

pytestmark = pytest.mark.unit

PARAPHRASE = ("How do I reset my password?", "I forgot my login credentials, how do I get back in?")
TYPO = ("How do I reset my password?", "how do i reset my pasword")
NEGATED = ("How do I enable dark mode?", "How do I disable dark mode?")
NUMBER = ("What is the maximum dose of ibuprofen for a 10 kg child?",
          "What is the maximum dose of ibuprofen for a 30 kg child?")


@pytest.fixture(scope="module")
def model() -> PairModel:
    # No network: any socket connection during the load fails the test.
    original = socket.socket.connect

    def refuse(*_args, **_kwargs):
        raise AssertionError("the pair model tried to reach the network")

    socket.socket.connect = refuse  # type: ignore[method-assign]
    try:
        return PairModel.load()
    finally:
        socket.socket.connect = original  # type: ignore[method-assign]


def test_shipped_model_is_small_int8(model: PairModel) -> None:
    from importlib import resources

    size = (resources.files("semcache.verify.pair_model") / "model.onnx").read_bytes()
    assert len(size) < 26 * 2**20
    assert 0.0 < model.threshold < 1.0 and model.config.max_len >= 32


def test_paraphrase_and_typo_score_above_traps(model: PairModel) -> None:
    para, typo, negated, number = model.score([PARAPHRASE, TYPO, NEGATED, NUMBER])
    # Clear margins, not just an order: a broken or untrained model scores all pairs alike.
    assert para > negated + 0.3 and para > number + 0.3
    assert typo > negated + 0.3 and typo > number + 0.3
    assert not model.accepts(*NEGATED) and not model.accepts(*NUMBER)


def test_batch_equals_one_by_one(model: PairModel) -> None:
    pairs = [PARAPHRASE, TYPO, NEGATED, NUMBER, ("Hi", "What is the capital of a very long "
                                                       "country name that pads the batch?")]
    batch = model.score(pairs)
    single = np.array([model.score([p])[0] for p in pairs])
    np.testing.assert_allclose(batch, single, atol=1e-5)
    assert batch.dtype == np.float32 and batch.shape == (5,)


def test_rejects_bad_pairs_and_empty_batch(model: PairModel) -> None:
    assert model.score([]).shape == (0,)
    with pytest.raises(TypeError):
        model.score([("only one",)])  # type: ignore[list-item]


def test_missing_model_file_fails(tmp_path) -> None:
    from importlib import resources

    shipped = resources.files("semcache.verify.pair_model")
    for name in ("tokenizer.json", "config.json"):
        shutil.copyfile(str(shipped / name), tmp_path / name)
    with pytest.raises(FileNotFoundError, match="model.onnx"):
        PairModel.load(tmp_path)
