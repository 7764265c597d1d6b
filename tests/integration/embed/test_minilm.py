"""The real all-MiniLM-L6-v2 model: meaning, normalisation, ONNX == torch, and the int8
graph shipped in the package.

The fp32 ONNX export goes to a temporary folder so that the test exercises the export
itself rather than a file cached by an earlier run.
"""

from __future__ import annotations

import logging
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from semcache.embed.microbatch import MicroBatcher
from semcache.embed.minilm import MiniLMEmbedder
from semcache.exceptions import MissingExtraError

pytestmark = pytest.mark.integration

# Varied lengths, so that batches are padded; one text is longer than the 256-token limit.
TEXTS = [
    "How do I reverse a list in Python?",
    "ok",
    "What is the capital of France?",
    "Explain the difference between a process and a thread in operating systems, "
    "with an example of when each is the better choice.",
    "The quick brown fox jumps over the lazy dog.",
    " ".join(["tokens"] * 400),
    "Ünïcödé, emoji 🙂 and CJK 漢字 are fine too.",
    "",
]


@pytest.fixture(scope="module")
def onnx_embedder(tmp_path_factory: pytest.TempPathFactory) -> MiniLMEmbedder:
    cache_dir: Path = tmp_path_factory.mktemp("onnx-cache")
    return MiniLMEmbedder(backend="onnx", cache_dir=cache_dir, num_threads=2, precision="fp32")


@pytest.fixture(scope="module")
def torch_embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder(backend="torch")


def test_onnx_and_torch_agree_on_padded_batches(
    onnx_embedder: MiniLMEmbedder, torch_embedder: MiniLMEmbedder
) -> None:
    for batch_size in (1, 3, len(TEXTS)):
        onnx_embedder.batch_size = torch_embedder.batch_size = batch_size
        a, b = onnx_embedder.embed(TEXTS), torch_embedder.embed(TEXTS)
        assert np.abs(a - b).max() <= 1e-4, f"batch_size={batch_size}"


def test_batching_does_not_change_vectors(onnx_embedder: MiniLMEmbedder) -> None:
    onnx_embedder.batch_size = 32
    together = onnx_embedder.embed(TEXTS)
    alone = np.stack([onnx_embedder.embed_one(t) for t in TEXTS])
    assert np.abs(together - alone).max() <= 1e-5


def test_torch_backend_matches_sentence_transformers(torch_embedder: MiniLMEmbedder) -> None:
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(torch_embedder.model_path), device="cpu")
    expected = reference.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)
    assert np.abs(torch_embedder.embed(TEXTS) - expected).max() <= 1e-5


def test_vectors_are_normalised_float32(onnx_embedder: MiniLMEmbedder) -> None:
    vectors = onnx_embedder.embed(TEXTS)
    assert vectors.dtype == np.float32 and vectors.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert onnx_embedder.embed_one("hi").shape == (384,)
    assert onnx_embedder.embed([]).shape == (0, 384)


def test_paraphrases_are_closer_than_unrelated(onnx_embedder: MiniLMEmbedder) -> None:
    a, b, c, d = onnx_embedder.embed(
        [
            "How do I reverse a list in Python?",
            "What's the way to invert the order of a Python list?",
            "What is the boiling point of water at sea level?",
            "At what temperature does water boil at sea level?",
        ]
    )
    assert a @ b > 0.7 and c @ d > 0.7
    assert max(a @ c, a @ d, b @ c, b @ d) < 0.3


def test_version_names_the_backend(
    onnx_embedder: MiniLMEmbedder, torch_embedder: MiniLMEmbedder
) -> None:
    assert onnx_embedder.name == torch_embedder.name == "all-MiniLM-L6-v2"
    assert "onnx" in onnx_embedder.version and "torch" in torch_embedder.version
    assert onnx_embedder.version != torch_embedder.version


def test_export_is_reused(onnx_embedder: MiniLMEmbedder) -> None:
    assert onnx_embedder.onnx_path is not None
    cache_dir = onnx_embedder.onnx_path.parent
    files = sorted(cache_dir.glob("*.onnx"))
    assert len(files) == 1
    again = MiniLMEmbedder(backend="onnx", cache_dir=cache_dir, precision="fp32")
    assert sorted(cache_dir.glob("*.onnx")) == files
    assert np.abs(again.embed(TEXTS[:3]) - onnx_embedder.embed(TEXTS[:3])).max() <= 1e-6


def test_non_str_is_a_type_error(onnx_embedder: MiniLMEmbedder) -> None:
    with pytest.raises(TypeError):
        onnx_embedder.embed(["fine", 3])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        onnx_embedder.embed_one(None)  # type: ignore[arg-type]


def test_micro_batcher_over_the_real_model(onnx_embedder: MiniLMEmbedder) -> None:
    with MicroBatcher(onnx_embedder) as batcher:
        futures = [batcher.submit(t) for t in TEXTS]
        batched = np.stack([f.result() for f in futures])
    assert np.abs(batched - onnx_embedder.embed(TEXTS)).max() <= 1e-5


MIXED = [f"question {i}: " + " ".join(["word"] * (i % 23)) for i in range(48)]


def test_length_groups_cut_padding_without_changing_vectors(onnx_embedder: MiniLMEmbedder) -> None:
    onnx_embedder.batch_size = 32
    lengths = [len(ids) for ids in (e.ids for e in onnx_embedder._tokenizer.encode_batch(MIXED))]
    order = sorted(range(len(MIXED)), key=lambda i: lengths[i])
    groups = onnx_embedder._length_groups(order, lengths)
    assert sorted(i for g in groups for i in g) == list(range(len(MIXED)))
    assert len(groups) > 2 and max(map(len, groups)) <= 32
    alone = np.stack([onnx_embedder.embed_one(t) for t in MIXED])
    assert np.abs(onnx_embedder.embed(MIXED) - alone).max() <= 1e-5


def test_concurrent_batches_give_the_same_vectors(onnx_embedder: MiniLMEmbedder) -> None:
    assert onnx_embedder.parallelism == 2  # num_threads=2: two single-core batches at once
    expected = onnx_embedder.embed(MIXED)
    with MicroBatcher(onnx_embedder, max_wait_ms=0.0) as batcher:
        assert len(batcher._workers) == 2
        with ThreadPoolExecutor(max_workers=16) as pool:
            got = np.stack(list(pool.map(batcher.embed_one, MIXED)))
    assert np.abs(got - expected).max() <= 1e-5


def test_the_default_is_the_packaged_int8_graph(
    onnx_embedder: MiniLMEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from semcache.embed.minilm import PACKAGED_DIR

    monkeypatch.setitem(sys.modules, "torch", None)  # the packaged graph needs no torch
    int8 = MiniLMEmbedder(num_threads=2)
    assert int8.precision == "int8" and int8.backend == "onnx"
    assert int8.onnx_path is not None and int8.onnx_path.parent == PACKAGED_DIR
    assert "int8" in int8.version and int8.version != onnx_embedder.version
    texts = TEXTS[:5]
    cosines = np.einsum("ij,ij->i", int8.embed(texts), onnx_embedder.embed(texts))
    assert cosines.min() > 0.95 and cosines.max() < 1 - 1e-5  # close to fp32, not equal
    with pytest.raises(ValueError, match="precision"):
        MiniLMEmbedder(precision="fp16")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ONNX"):
        MiniLMEmbedder(backend="torch", precision="int8")
    with pytest.raises(ValueError, match="packaged"):
        MiniLMEmbedder(PACKAGED_DIR, precision="int8")


def test_missing_onnxruntime_falls_back_to_torch(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes the import fail
    with caplog.at_level(logging.WARNING, logger="semcache.embed.minilm"):
        embedder = MiniLMEmbedder(cache_dir=tmp_path, precision="fp32")
    assert embedder.backend == "torch"
    assert "torch backend" in caplog.text
    with pytest.raises(MissingExtraError, match=r"semcache\[torch\]"):
        MiniLMEmbedder(backend="onnx", cache_dir=tmp_path, precision="fp32")
    with pytest.raises(MissingExtraError, match=r"semcache\[proxy\]"):
        MiniLMEmbedder()
