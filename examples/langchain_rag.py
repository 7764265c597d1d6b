"""A small RAG chain over Python's bundled documentation, cached by semcache.

Retrieval is BM25 over paragraphs of ``pydoc_data.topics`` (real text that ships
with Python); generation is any OpenAI-compatible server at ``--base-url``. The
script asks a few questions, then reworded versions of them, and prints which
answers came from the cache and how much time (and how many tokens) that saved.

Two ways to cache:

- ``--cache proxy`` (default): ``ChatOpenAI(base_url=<semcache proxy>/v1)``. The proxy
  caches; the application changes nothing but its base URL.
- ``--cache wrap``: ``SemcacheChatModel`` around ``ChatOpenAI(base_url=<engine>/v1)`` with an
  in-process SQLite cache (``--db``); streams are cached too.

    python -m semcache.adapters.proxy.cli --upstream http://127.0.0.1:8000 --port 8080 &
    python examples/langchain_rag.py --base-url http://127.0.0.1:8080 --model smollm2
    python examples/langchain_rag.py --cache wrap --base-url http://127.0.0.1:8000 --model smollm2
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

# (question, reworded question): each pair shares its key terms, so retrieval picks the
# same passages for both and the exact context (the system prompt) is the same.
QUESTIONS = [
    ("What does the assert statement do?", "What is the assert statement for?"),
    ("What does the global statement do?", "Explain what the global statement does."),
    ("How do I raise an exception?", "How can I raise an exception?"),
    ("What is a lambda expression?", "What's a lambda expression?"),
]

_TOKEN = re.compile(r"[a-z_][a-z0-9_]+")
_STOP = frozenset("the a an of to in is it and or for on be as by with what how do does can i this that "
                  "are explain".split())


def tokens(text: str) -> list[str]:
    return [t for t in _TOKEN.findall(text.lower()) if t not in _STOP]


class BM25:
    """Okapi BM25 over a fixed list of passages (k1=1.5, b=0.75)."""

    def __init__(self, passages: list[tuple[str, str]], k1: float = 1.5, b: float = 0.75) -> None:
        self.passages = passages
        self.docs = [Counter(tokens(f"{title} {text}")) for title, text in passages]
        self.lengths = [sum(d.values()) for d in self.docs]
        self.avg = sum(self.lengths) / max(1, len(self.lengths))
        df: Counter[str] = Counter()
        for doc in self.docs:
            df.update(doc.keys())
        n = len(self.docs)
        self.idf = {t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, f in df.items()}
        self.k1, self.b = k1, b

    def search(self, query: str, k: int) -> list[tuple[str, str]]:
        terms = tokens(query)
        scores = []
        for i, doc in enumerate(self.docs):
            norm = self.k1 * (1 - self.b + self.b * self.lengths[i] / self.avg)
            score = sum(self.idf.get(t, 0.0) * doc[t] * (self.k1 + 1) / (doc[t] + norm) for t in terms if t in doc)
            scores.append((score, i))
        return [self.passages[i] for _, i in sorted(scores, reverse=True)[:k]]


def load_passages(max_chars: int = 1200) -> list[tuple[str, str]]:
    """Paragraph windows of every ``pydoc_data.topics`` section, as (topic, text)."""
    from pydoc_data.topics import topics

    out = []
    for title, body in sorted(topics.items()):
        current = ""
        for para in re.split(r"\n\s*\n", body):
            para = " ".join(para.split())
            if len(current) + len(para) > max_chars and current:
                out.append((title, current))
                current = ""
            current = f"{current} {para}".strip()
        if current:
            out.append((title, current))
    return out


def build_chain(args: argparse.Namespace) -> tuple[Any, Any]:
    """The RAG chain and the chat model inside it."""
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_core.runnables import RunnableLambda, RunnablePassthrough
    from langchain_openai import ChatOpenAI

    base = args.base_url.rstrip("/")
    llm: Any = ChatOpenAI(base_url=f"{base}/v1", api_key=args.api_key, model=args.model, temperature=0,
                          max_tokens=args.max_tokens, include_response_headers=args.cache == "proxy",
                          stream_usage=True)
    if args.cache == "wrap":
        from semcache.adapters.langchain import LocalBackend, SemcacheChatModel

        from semcache.cache import SemanticCache

        llm = SemcacheChatModel(model=llm, backend=LocalBackend(SemanticCache(args.db)), tenant="rag-example")
    index = BM25(load_passages())

    def context(question: str) -> str:
        return "\n\n".join(f"[{title}] {text}" for title, text in index.search(question, args.top_k))

    prompt = ChatPromptTemplate.from_messages([
        ("system", "Answer the question in two sentences, using only this documentation:\n\n{context}"),
        ("human", "{question}"),
    ])
    chain = {"context": RunnableLambda(context), "question": RunnablePassthrough()} | prompt | llm
    return chain, llm


def cache_state(message: Any) -> tuple[str, str]:
    """(hit|miss|bypass|?, detail) from either the adapter's metadata or the proxy's headers."""
    meta = message.response_metadata or {}
    if "semcache" in meta:
        sc = meta["semcache"]
        detail = f"{sc.get('match')} sim={sc.get('similarity')} saved~{sc.get('saved_ms')} ms" if sc["cache"] == "hit" else ""
        return sc["cache"], detail
    headers = {k.lower(): v for k, v in (meta.get("headers") or {}).items()}
    state = headers.get("x-semcache", "?")
    detail = f"{headers.get('x-semcache-match')} sim={headers.get('x-semcache-similarity')}" if state == "hit" else ""
    return state, detail


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", default="http://127.0.0.1:8080",
                        help="OpenAI-compatible server: the semcache proxy (--cache proxy) or the engine (--cache wrap)")
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--api-key", default="unused")
    parser.add_argument("--cache", choices=("proxy", "wrap"), default="proxy")
    parser.add_argument("--db", default=None, help="store URL for --cache wrap (default: a temporary SQLite file)")
    parser.add_argument("--top-k", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    if args.db is None:
        args.db = f"sqlite:///{Path(tempfile.mkdtemp()) / 'langchain_rag.db'}"
    chain, _ = build_chain(args)

    rows = []
    for phase, batch in (("first", [q for q, _ in QUESTIONS]), ("reworded", [r for _, r in QUESTIONS])):
        for pair, question in enumerate(batch):
            start = time.perf_counter()
            message = chain.invoke(question)
            ms = (time.perf_counter() - start) * 1000
            state, detail = cache_state(message)
            usage = message.usage_metadata or {}
            rows.append((phase, pair, state, ms, usage.get("total_tokens", 0)))
            print(f"[{phase:8}] {state:6} {ms:8.1f} ms  {question}  {detail}")
            print(f"           -> {str(message.content)[:100]!r}")
    print("\nstreaming a reworded question (a hit replays as chunks):")
    chunks = list(chain.stream(QUESTIONS[0][1]))
    print(f"  {len(chunks)} chunks: {''.join(str(c.content) for c in chunks)[:100]!r}")

    misses = [r for r in rows if r[2] == "miss"]
    hits = [r for r in rows if r[2] == "hit"]
    if misses and hits:
        miss_ms = sorted(r[3] for r in misses)[len(misses) // 2]
        hit_ms = sorted(r[3] for r in hits)[len(hits) // 2]
        hit_pairs = {r[1] for r in hits if r[0] == "reworded"}
        saved_tokens = sum(r[4] for r in misses if r[0] == "first" and r[1] in hit_pairs)
        print(f"\n{len(hits)} hits of {len(rows)} questions; median {hit_ms:.1f} ms on a hit vs {miss_ms:.1f} ms "
              f"on a miss; {saved_tokens} tokens not generated again")
    else:
        print(f"\n{len(hits)} hits of {len(rows)} questions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
