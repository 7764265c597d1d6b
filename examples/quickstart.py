"""A five-minute tour of the semcache library API (what ``make demo`` runs for now).

It stores a few answers in a SQLite-backed cache, then asks reworded questions
(which should hit), hard negatives that differ by one word or number (which
must miss, with the verifier's reason), a follow-up under two different
conversations, and the same question over updated RAG documents.

    python examples/quickstart.py [--db sqlite:///demo_out/quickstart.db]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from semcache import CacheRequest, Document, Scope, SemanticCache

ANSWERS = {
    "How do I reverse a list in Python?": "Use my_list.reverse() or my_list[::-1].",
    "What is the maximum daily dose of ibuprofen for adults?": "Usually 1200 mg without a prescription.",
    "How do I enable two-factor authentication?": "Settings > Security > Enable 2FA.",
    "What is the capital of Australia?": "Canberra.",
}

PROBES = [
    # (question, should it hit?, what it shows)
    ("How do I reverse a list in Python?", True, "exact repeat"),
    ("how can I reverse a python list", True, "rewording"),
    ("How do I reverse a list in Rust?", False, "swapped entity"),
    ("What is the maximum daily dose of ibuprofen for children?", False, "changed scope"),
    ("How do I disable two-factor authentication?", False, "negation/antonym"),
    ("Could you tell me the capital of Australia?", True, "rewording"),
    ("What is the capital of Austria?", False, "swapped entity"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", help="SQLAlchemy URL (default: a temporary SQLite file)")
    args = parser.parse_args()
    tmp = tempfile.TemporaryDirectory(prefix="semcache-demo-")
    url = args.db or f"sqlite:///{Path(tmp.name) / 'quickstart.db'}"
    scope = Scope.of(tenant="acme", model="smollm2", params={"temperature": 0})

    t0 = time.perf_counter()
    with SemanticCache(url) as cache:
        print(f"cache ready in {time.perf_counter() - t0:.1f}s ({url})\n")
        for question, answer in ANSWERS.items():
            cache.store(CacheRequest(question, scope), {"answer": answer})

        print(f"{'question':<62} {'expect':<7} {'got':<14} {'sim':>5} {'ms':>6}  why")
        wrong = 0
        for question, should_hit, what in PROBES:
            t = time.perf_counter()
            result = cache.lookup_detailed(CacheRequest(question, scope))
            ms = (time.perf_counter() - t) * 1e3
            got = f"{result.hit.match} hit" if result.hit else "miss"
            sim = result.hit.similarity if result.hit else (result.best_similarity or 0.0)
            wrong += (result.hit is not None) != should_hit
            why = what if result.hit else f"{what}: {result.reason or 'no candidate'}"
            print(f"{question:<62} {'hit' if should_hit else 'miss':<7} {got:<14} {sim:>5.2f} {ms:>6.1f}  {why}")

        # Multi-turn: the follow-up only matches under an equivalent earlier turn.
        cache.store(CacheRequest("How old is he?", scope, history=("Who is Barack Obama?",)),
                    {"answer": "Born 1961."})
        same = cache.lookup(CacheRequest("how old is he", scope, history=("Tell me who Barack Obama is",)))
        other = cache.lookup(CacheRequest("How old is he?", scope, history=("Who is Emmanuel Macron?",)))
        print(f"\nfollow-up under reworded history: {'hit' if same else 'miss'} (expect hit)")
        print(f"follow-up under a different person: {'hit' if other else 'miss'} (expect miss)")
        wrong += (same is None) + (other is not None)

        # RAG: the same question over updated documents misses; invalidation by source works.
        v1 = (Document("The API rate limit is 100 requests per minute.", source="kb/limits"),)
        v2 = (Document("The API rate limit is 500 requests per minute.", source="kb/limits"),)
        q = "What is the API rate limit?"
        cache.store(CacheRequest(q, scope, documents=v1), {"answer": "100/min"})
        print(f"same docs: {'hit' if cache.lookup(CacheRequest(q, scope, documents=v1)) else 'miss'} (expect hit)")
        updated = cache.lookup(CacheRequest(q, scope, documents=v2))
        print(f"updated docs: {'hit' if updated else 'miss'} (expect miss)")
        removed = cache.invalidate(document="kb/limits")
        print(f"invalidated by source kb/limits: {len(removed)} entr{'y' if len(removed) == 1 else 'ies'}")
        wrong += updated is not None

    print(f"\n{'all decisions as expected' if wrong == 0 else f'{wrong} unexpected decision(s)'}")
    tmp.cleanup()
    raise SystemExit(0 if wrong == 0 else 1)


if __name__ == "__main__":
    main()
