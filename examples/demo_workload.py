"""The demo's workload: a RAG assistant over Python's own documentation, driven through the proxy.

Every request goes through the real ``openai`` client with ``temperature=0`` (greedy answers are
cacheable). The steps are labelled with what the cache should do:

- RAG questions over recurring documentation chunks (``pydoc_data.topics``); on the chunk-reuse
  engine the chunks travel in ``extra_body={"semcache": {"chunks": [...]}}``;
- the same prompt again with its chunks reordered and ``x-semcache-control: no-cache``, so the
  engine answers it with reused chunk KV: its reported TTFT is compared with the first time;
- exact and reworded repeats (expected hits);
- hard negatives: a changed entity, number or earlier turn; they must miss;
- a multi-turn conversation and streaming requests.

    python examples/demo_workload.py --proxy http://127.0.0.1:8080 [--smoke] [--no-chunk-extension]

``run_workload`` returns the JSON summary; ``examples/demo.py`` starts the servers and calls it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from pydoc_data.topics import topics
from typing import Any, Literal

from openai import OpenAI
from openai.types.chat import ChatCompletionMessageParam
from tqdm import tqdm

Expect = Literal["hit", "miss", "any"]
SYSTEM = "You are a Python documentation assistant. Answer in one or two sentences."
CHUNK_WORDS = 70


def chunk(topic: str) -> str:
    """The first CHUNK_WORDS words of one ``pydoc_data.topics`` section, as a RAG chunk."""
    if topic not in topics:
        raise ValueError(f"unknown pydoc topic {topic!r}")
    return " ".join(topics[topic].split()[:CHUNK_WORDS])


@dataclass(frozen=True, slots=True)
class Step:
    """One request of the workload and what the cache should do with it."""

    id: str
    question: str
    expect: Expect
    what: str
    chunks: tuple[str, ...] = ()  # pydoc topic names, in prompt order
    history: tuple[str, ...] = ()  # ids of earlier steps whose question and answer come first
    stream: bool = False
    no_cache: bool = False  # x-semcache-control: no-cache (skip the lookup, still store)
    reuse_of: str | None = None  # id of the first-time step this chunk-reuse repeat compares with


A = ("assert", "del", "pass", "while")
A_REORDERED = ("while", "pass", "assert", "del")
B = ("if", "break", "continue", "lambda")
B_REORDERED = ("lambda", "continue", "if", "break")

FULL: list[Step] = [
    Step("rag-a", "What does the assert statement do?", "miss", "RAG question, first time", A),
    Step("rag-a-reuse", "What does the assert statement do?", "miss",
         "same prompt, chunks reordered, no-cache", A_REORDERED, no_cache=True, reuse_of="rag-a"),
    Step("rag-a-exact", "What does the assert statement do?", "hit", "exact repeat", A),
    Step("rag-a-reword", "Tell me what the assert statement does.", "any", "reworded repeat", A),
    Step("rag-a-neg", "What does the del statement do?", "miss", "hard negative: other statement", A),
    Step("rag-b", "How does the break statement work in a loop?", "miss", "RAG question, first time", B),
    Step("rag-b-reuse", "How does the break statement work in a loop?", "miss",
         "same prompt, chunks reordered, no-cache", B_REORDERED, no_cache=True, reuse_of="rag-b"),
    Step("rag-b-reword", "How does the break statement work in loops?", "any", "reworded repeat", B),
    Step("rag-b-neg", "How does the continue statement work in a loop?", "miss",
         "hard negative: other statement", B),
    Step("rag-mix", "What is a lambda expression?", "miss", "new question over known chunks",
         ("lambda", "assert", "if", "del")),
    Step("num", "How do I create a list of 5 zeros in Python?", "miss", "plain question"),
    Step("num-reword", "In Python, how do I create a list of 5 zeros?", "any", "reworded repeat"),
    Step("num-neg", "How do I create a list of 6 zeros in Python?", "miss", "hard negative: other number"),
    Step("conv1-t1", "What is a Python dictionary?", "miss", "conversation, turn 1"),
    Step("conv1-t2", "How do I add an item to it?", "miss", "conversation, turn 2", history=("conv1-t1",)),
    Step("conv2-t1", "What's a dictionary in Python?", "any", "reworded turn 1"),
    Step("conv2-t2", "How do I add an item to it?", "any", "turn 2 under a reworded turn 1",
         history=("conv2-t1",)),
    Step("conv3-t1", "What is a Python set?", "miss", "hard negative: other entity"),
    Step("conv3-t2", "How do I add an item to it?", "miss", "hard negative: same turn 2, other turn 1",
         history=("conv3-t1",)),
    Step("stream", "Explain what the pass statement does.", "miss", "streamed, first time", stream=True),
    Step("stream-exact", "Explain what the pass statement does.", "hit", "streamed exact repeat",
         stream=True),
    Step("stream-reword", "Please explain what the pass statement does.", "any", "streamed reworded repeat",
         stream=True),
]
SMOKE_IDS = ("rag-a", "rag-a-reuse", "rag-a-exact", "rag-a-neg", "num", "num-reword", "num-neg", "stream",
             "stream-exact")


@dataclass(slots=True)
class Result:
    """What one request did."""

    id: str
    what: str
    expect: Expect
    outcome: str  # hit | miss | bypass
    match: str  # exact | semantic | ""
    latency_ms: float
    tokens: int  # usage.total_tokens of the answer served
    engine: dict[str, Any] = field(default_factory=dict)  # the engine's semcache report (misses)
    similarity: str = ""  # x-semcache-similarity: of the entry served, or of the best rejected one
    reason: str = ""  # x-semcache-reason: why the best candidate was rejected
    answer: str = ""


def _messages(step: Step, answers: dict[str, tuple[str, str]], *,
              inline_chunks: bool) -> list[ChatCompletionMessageParam]:
    system = SYSTEM
    if inline_chunks and step.chunks:
        system += "\n\nDocuments:\n\n" + "\n\n".join(chunk(t) for t in step.chunks)
    messages: list[ChatCompletionMessageParam] = [{"role": "system", "content": system}]
    for earlier in step.history:
        question, answer = answers[earlier]
        messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return messages + [{"role": "user", "content": step.question}]


def _send(client: OpenAI, model: str, step: Step, messages: list[ChatCompletionMessageParam], max_tokens: int,
          chunk_extension: bool) -> Result:
    extra_body = {"semcache": {"chunks": [chunk(t) for t in step.chunks]}} if chunk_extension and step.chunks else None
    headers = {"x-semcache-control": "no-cache"} if step.no_cache else None
    kwargs: dict[str, Any] = dict(model=model, messages=messages, max_tokens=max_tokens, temperature=0,
                                  extra_body=extra_body, extra_headers=headers)
    started = time.perf_counter()
    report: dict[str, Any] = {}
    usage = 0
    if step.stream:
        with client.chat.completions.with_streaming_response.create(
                stream=True, stream_options={"include_usage": True}, **kwargs) as raw:
            response_headers = raw.headers
            parts = []
            for event in raw.parse():
                extra = event.model_extra or {}
                report = extra.get("semcache") or report
                usage = event.usage.total_tokens if event.usage else usage
                parts += [c.delta.content or "" for c in event.choices]
            answer = "".join(parts)
    else:
        raw_response = client.chat.completions.with_raw_response.create(**kwargs)
        response_headers = raw_response.headers
        completion = raw_response.parse()
        answer = completion.choices[0].message.content or ""
        usage = completion.usage.total_tokens if completion.usage else 0
        report = (completion.model_extra or {}).get("semcache") or {}
    latency = (time.perf_counter() - started) * 1e3
    outcome = response_headers.get("x-semcache", "none")
    return Result(step.id, step.what, step.expect, outcome, response_headers.get("x-semcache-match", ""),
                  round(latency, 1), usage, report if outcome != "hit" else {},
                  response_headers.get("x-semcache-similarity", ""),
                  response_headers.get("x-semcache-reason", ""), answer.strip())


def warm_up(client: OpenAI, model: str, chunk_extension: bool) -> None:
    """One uncounted request that bypasses the cache, so the first measured one pays no start-up cost."""
    step = Step("warm-up", "What does the global statement do?", "any", "warm-up", ("global", "yield"))
    client.chat.completions.create(
        model=model, messages=_messages(step, {}, inline_chunks=not chunk_extension), max_tokens=2,
        temperature=0, extra_headers={"x-semcache-control": "no-cache, no-store"},
        extra_body={"semcache": {"chunks": [chunk(t) for t in step.chunks]}} if chunk_extension else None)


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


def summarise(results: list[Result], steps: list[Step]) -> dict[str, Any]:
    """Hit rates, false hits, latencies, TTFT with and without chunk reuse, tokens saved."""
    hits = [r for r in results if r.outcome == "hit"]
    misses = [r for r in results if r.outcome != "hit"]
    negatives = [r for r in results if r.expect == "miss" and not r.id.endswith("-reuse")
                 and "hard negative" in r.what]
    by_id = {r.id: r for r in results}
    pairs = [(by_id[s.reuse_of], by_id[s.id]) for s in steps if s.reuse_of and s.id in by_id]
    first = [a.engine["ttft_ms"] for a, b in pairs if "ttft_ms" in a.engine and "ttft_ms" in b.engine]
    reuse = [b.engine["ttft_ms"] for a, b in pairs if "ttft_ms" in a.engine and "ttft_ms" in b.engine]
    return {
        "requests": len(results),
        "hits": len(hits),
        "exact_hits": sum(r.match == "exact" for r in hits),
        "semantic_hits": sum(r.match == "semantic" for r in hits),
        "hit_rate": round(len(hits) / len(results), 3) if results else 0.0,
        "hard_negatives": len(negatives),
        "false_hits": sum(r.outcome == "hit" for r in negatives),
        "expected_hits_missed": [r.id for r in results if r.expect == "hit" and r.outcome != "hit"],
        "median_latency_ms": {"hit": _median([r.latency_ms for r in hits]),
                              "miss": _median([r.latency_ms for r in misses])},
        "ttft_ms": {"without_chunk_reuse": _median(first), "with_chunk_reuse": _median(reuse),
                    "pairs": [{"first": a.engine, "reordered": b.engine} for a, b in pairs]},
        "upstream_tokens_saved": sum(r.tokens for r in hits),
        "engine_chunk_tokens_reused": sum(int(r.engine.get("reused_tokens", 0)) for r in misses),
        "results": [asdict(r) for r in results],
    }


def _fmt_ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f} ms"


def print_table(s: dict[str, Any]) -> None:
    """The short table at the end of the demo."""
    ttft = s["ttft_ms"]
    rows = [
        ("requests", str(s["requests"])),
        ("hit rate", f"{s['hit_rate']:.0%} ({s['exact_hits']} exact, {s['semantic_hits']} semantic)"),
        ("false hits on hard negatives", f"{s['false_hits']} of {s['hard_negatives']} (must be 0)"),
        ("median latency, hits", _fmt_ms(s["median_latency_ms"]["hit"])),
        ("median latency, misses", _fmt_ms(s["median_latency_ms"]["miss"])),
        ("TTFT without chunk reuse", _fmt_ms(ttft["without_chunk_reuse"]) + " (engine, chunks new)"),
        ("TTFT with chunk reuse", _fmt_ms(ttft["with_chunk_reuse"]) + " (engine, chunks reordered)"),
        ("upstream tokens saved", f"{s['upstream_tokens_saved']:,} (answers served from the cache)"),
        ("chunk tokens reused by the engine", f"{s['engine_chunk_tokens_reused']:,}"),
    ]
    width = max(len(k) for k, _ in rows)
    print("\n" + "-" * (width + 40))
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    print("-" * (width + 40))


def write_chart(s: dict[str, Any], path: Path) -> None:
    """Per-request latency (hits vs misses) and engine TTFT (first time vs chunk reuse) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = s["results"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [3, 1]})
    colours = ["tab:green" if r["outcome"] == "hit" else "tab:gray" for r in results]
    left.bar(range(len(results)), [max(r["latency_ms"], 0.1) for r in results], color=colours)
    left.set_yscale("log")
    left.set_xticks(range(len(results)), [r["id"] for r in results], rotation=70, fontsize=7)
    left.set_ylabel("latency through the proxy (ms, log)")
    left.set_title(f"{s['hits']} hits (green) of {s['requests']} requests; false hits: {s['false_hits']}")
    ttft = s["ttft_ms"]
    if ttft["without_chunk_reuse"] is not None:
        right.bar(["chunks new", "chunks reused"], [ttft["without_chunk_reuse"], ttft["with_chunk_reuse"]],
                  color=["tab:gray", "tab:blue"])
    right.set_ylabel("engine TTFT, median (ms)")
    right.set_title("time to first token")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_workload(proxy_url: str, out_dir: Path, *, smoke: bool = False, chunk_extension: bool = True,
                 max_tokens: int | None = None) -> dict[str, Any]:
    """Drive the proxy at PROXY_URL, print the table, write summary.json and demo.png to OUT_DIR."""
    if not proxy_url.startswith(("http://", "https://")):
        raise ValueError(f"proxy_url must start with http:// or https://, got {proxy_url!r}")
    steps = [s for s in FULL if s.id in SMOKE_IDS] if smoke else FULL
    tokens = max_tokens or (8 if smoke else 24)
    client = OpenAI(base_url=proxy_url.rstrip("/") + "/v1", api_key="sk-demo", max_retries=0, timeout=300)
    model = client.models.list().data[0].id
    warm_up(client, model, chunk_extension)
    answers: dict[str, tuple[str, str]] = {}
    results: list[Result] = []
    for step in tqdm(steps, desc="workload", unit="req"):
        messages = _messages(step, answers, inline_chunks=not chunk_extension)
        result = _send(client, model, step, messages, tokens, chunk_extension)
        answers[step.id] = (step.question, result.answer)
        results.append(result)
    summary = summarise(results, steps) | {"model": model, "max_tokens": tokens, "smoke": smoke}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    write_chart(summary, out_dir / "demo.png")
    print_table(summary)
    print(f"summary: {out_dir / 'summary.json'}   chart: {out_dir / 'demo.png'}")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--proxy", required=True, help="base URL of a running semcache proxy")
    parser.add_argument("--out", type=Path, default=Path("demo_out"))
    parser.add_argument("--smoke", action="store_true", help="a much smaller workload")
    parser.add_argument("--no-chunk-extension", action="store_true",
                        help="put the chunks in the system message (upstreams other than the engine)")
    args = parser.parse_args()
    summary = run_workload(args.proxy, args.out, smoke=args.smoke, chunk_extension=not args.no_chunk_extension)
    raise SystemExit(0 if summary["false_hits"] == 0 else 1)


if __name__ == "__main__":
    main()
