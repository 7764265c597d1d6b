"""Proxy benchmark: miss overhead, hit latency, hit throughput, head-of-line, a workload replay on vLLM.

    python benchmarks/proxy.py --out benchmarks/results/proxy.json [--vllm-url URL] [--skip-vllm]

Every server runs in its own process: a fast fake upstream (so model time does
not drown the proxy's overhead), the proxy (``python -m semcache.adapters.proxy.cli``),
the load generator (``--loadgen``, raw asyncio HTTP/1.1 over keep-alive
connections), and a real vLLM serving SmolLM2 on CPU (started here unless
``--vllm-url`` is given). Warm-ups are not counted. Latencies are medians and
p99 of sequential requests; "added" latency is the proxy's percentile minus
the direct percentile measured interleaved in the same run. The head-of-line phase
(``proxy_hol.py``, also runnable alone) times cached hits while 1 MB prompts are processed.
Exact-hit p50 and p99 at 64 connections are compared across checkouts, runs interleaved, by
``proxy_tail.py`` (results in ``benchmarks/results/proxy_tail.json``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

COUNTRIES = [
    "France", "Germany", "Spain", "Italy", "Japan", "Brazil", "Canada", "Kenya", "Peru", "Norway", "Sweden",
    "Finland", "Poland", "Greece", "Turkey", "Egypt", "Morocco", "Nigeria", "Ghana", "India", "China",
    "Thailand", "Vietnam", "Indonesia", "Australia", "Mexico", "Chile", "Argentina", "Colombia", "Cuba",
    "Ireland", "Portugal", "Austria", "Hungary", "Denmark", "Iceland", "Nepal", "Mongolia", "Iran", "Iraq",
    "Ethiopia", "Tanzania", "Uganda", "Senegal", "Bolivia", "Ecuador", "Uruguay", "Paraguay", "Romania",
    "Bulgaria", "Serbia", "Croatia", "Ukraine", "Belgium", "Netherlands", "Switzerland", "Pakistan",
    "Bangladesh", "Malaysia", "Philippines",
]
FORMS = ["What is the capital of {}?", "What language is spoken in {}?", "What currency does {} use?"]
# Rewordings the hard-negative verifier accepts (politeness around the same question).
PREFIXES = ["Please tell me: {q}", "Hey, {q}", "I wonder, {ql}", "Can you tell me {ql}", "So, {ql}", "Hi! {q}",
            "Tell me please: {q}", "Question: {q}", "OK, {ql}", "Hello, {ql}", "Curious: {q}", "One thing: {q}",
            "Well, {ql}"]
SUFFIXES = ["", " Thanks!", " Thank you."]


def base_questions() -> list[str]:
    return [f.format(c) for c in COUNTRIES for f in FORMS]


def paraphrases(question: str) -> list[str]:
    low = question[0].lower() + question[1:]
    return [p.format(q=question, ql=low) + s for p in PREFIXES for s in SUFFIXES]


def chat(content: str, model: str = "fake-model", max_tokens: int = 16) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": content}], "temperature": 0,
            "max_tokens": max_tokens}


# ------------------------------------------------------------------ raw HTTP
def request_bytes(host: str, path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> bytes:
    payload = json.dumps(body).encode()
    head = [f"POST {path} HTTP/1.1", f"Host: {host}", "Content-Type: application/json",
            f"Content-Length: {len(payload)}", "Authorization: Bearer EMPTY"]
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + payload


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    else:  # chunked
        parts = []
        while True:
            size = int((await reader.readline()).strip() or b"0", 16)
            if size == 0:
                await reader.readline()
                break
            parts.append(await reader.readexactly(size))
            await reader.readline()
        body = b"".join(parts)
    return status, headers, body


class Conn:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, url: str) -> None:
        hostport = url.split("://", 1)[1]
        self.host, port = hostport.split(":")
        self.port = int(port)
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def call(self, path: str, body: dict[str, Any], headers: dict[str, str] | None = None,
                   ) -> tuple[float, int, dict[str, str], bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        data = request_bytes(f"{self.host}:{self.port}", path, body, headers)
        start = time.perf_counter()
        self.writer.write(data)
        status, hdrs, payload = await read_response(self.reader)  # type: ignore[arg-type]
        return (time.perf_counter() - start) * 1000, status, hdrs, payload

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))] if ordered else float("nan")


def summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50_ms": round(pct(values, 50), 3), "p99_ms": round(pct(values, 99), 3),
            "mean_ms": round(statistics.fmean(values), 3) if values else float("nan")}


# -------------------------------------------------------------- load generator
async def loadgen(url: str, bodies: list[dict[str, Any]], connections: int, duration_s: float,
                  cycle: bool) -> dict[str, Any]:
    """64 keep-alive connections; each walks its own slice of ``bodies`` (distinct queries)."""
    latencies: list[float] = []
    outcomes: dict[str, int] = {}
    exhausted = 0
    stop_at = time.perf_counter() + duration_s

    async def run(i: int) -> None:
        nonlocal exhausted
        mine = bodies[i::connections]
        conn = Conn(url)
        j = 0
        try:
            while time.perf_counter() < stop_at:
                if j >= len(mine):
                    if not cycle:
                        exhausted += 1
                        return
                    j = 0
                ms, status, hdrs, _ = await conn.call("/v1/chat/completions", mine[j])
                j += 1
                latencies.append(ms)
                key = f"{status}:{hdrs.get('x-semcache', '')}:{hdrs.get('x-semcache-match', '')}"
                outcomes[key] = outcomes.get(key, 0) + 1
        finally:
            conn.close()

    start, cpu_start = time.perf_counter(), time.process_time()
    await asyncio.gather(*(run(i) for i in range(connections)))
    elapsed = time.perf_counter() - start
    cpu_ms = (time.process_time() - cpu_start) / max(1, len(latencies)) * 1e3
    return {"requests": len(latencies), "elapsed_s": round(elapsed, 3), "rps": round(len(latencies) / elapsed, 1),
            "loadgen_cpu_ms_per_request": round(cpu_ms, 3),
            "connections": connections, "connections_exhausted": exhausted, "outcomes": outcomes,
            **summary(latencies)}


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a process and its threads (Linux /proc), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_loadgen(url: str, bodies: list[dict[str, Any]], duration_s: float, cycle: bool, tmp: Path,
                connections: int = 64, server_pid: int | None = None) -> dict[str, Any]:
    spec = tmp / f"loadgen-{time.time_ns()}.json"
    spec.write_text(json.dumps({"url": url, "bodies": bodies, "connections": connections, "duration_s": duration_s,
                                "cycle": cycle}))
    cpu_before = process_cpu_s(server_pid) if server_pid else None
    out = subprocess.run([sys.executable, __file__, "--loadgen", str(spec)], capture_output=True, text=True,
                         check=True, timeout=duration_s + 120)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    result["loadavg_1m_after"] = round(os.getloadavg()[0], 2)
    cpu_after = process_cpu_s(server_pid) if server_pid else None
    if cpu_before is not None and cpu_after is not None and result["requests"]:
        proxy_ms = (cpu_after - cpu_before) / result["requests"] * 1e3
        both_ms = proxy_ms + result["loadgen_cpu_ms_per_request"]
        cores = os.cpu_count() or 1
        result["proxy_cpu_ms_per_request"] = round(proxy_ms, 3)
        result["capacity_if_cores_were_free_rps"] = {
            "proxy_alone": round(cores * 1e3 / proxy_ms, 1),
            "proxy_and_loadgen": round(cores * 1e3 / both_ms, 1),
            "note": f"{cores} cores divided by the CPU time per request measured in this phase "
                    "(/proc stat of the proxy, process_time of the load generator)",
        }
    return result


# ---------------------------------------------------------------- processes
def spawn(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with open(log, "ab") as fh:
        return subprocess.Popen([sys.executable, *args], stdout=fh, stderr=subprocess.STDOUT, cwd=REPO,
                                env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                                     **(env or {})}, start_new_session=True)


def wait_up(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 180) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: process exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} not up")


def start_proxy(upstream: str, db: Path, tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    from tests.fixtures.vllm import free_port

    port = free_port()
    proc = spawn(["-m", "semcache.adapters.proxy.cli", "--upstream", upstream, "--port", str(port), "--db",
                  f"sqlite:///{db}", "--log-level", "warning"], tmp / f"proxy-{port}.log")
    url = f"http://127.0.0.1:{port}"
    wait_up(f"{url}/healthz", proc)
    return proc, url


async def sequential(url: str, bodies: list[dict[str, Any]], headers: dict[str, str] | None = None,
                     ) -> list[tuple[float, int, dict[str, str], bytes]]:
    conn = Conn(url)
    try:
        return [await conn.call("/v1/chat/completions", b, headers) for b in bodies]
    finally:
        conn.close()


# ---------------------------------------------------------------- phases
async def overhead_fake(fake: str, proxy: str, n: int) -> dict[str, Any]:
    direct, bypass, miss = Conn(fake), Conn(proxy), Conn(proxy)
    skip = {"x-semcache-control": "no-cache, no-store"}
    d, b, m = [], [], []
    for i in range(n + 20):
        q = f"Benchmark question {i}: what is {i} times {i + 7}?"
        t_d = (await direct.call("/v1/chat/completions", chat(q)))[0]
        t_b = (await bypass.call("/v1/chat/completions", chat(q + " (bypass)"), skip))[0]
        t_m, status, hdrs, _ = await miss.call("/v1/chat/completions", chat(q + " (miss)"))
        assert status == 200 and hdrs.get("x-semcache") == "miss", hdrs
        if i >= 20:
            d.append(t_d)
            b.append(t_b)
            m.append(t_m)
    for c in (direct, bypass, miss):
        c.close()
    return {
        "direct": summary(d), "proxy_no_embedding": summary(b), "proxy_miss_with_embedding": summary(m),
        "added_no_embedding_p50_ms": round(pct(b, 50) - pct(d, 50), 3),
        "added_no_embedding_p99_ms": round(pct(b, 99) - pct(d, 99), 3),
        "added_with_embedding_p50_ms": round(pct(m, 50) - pct(d, 50), 3),
        "added_with_embedding_p99_ms": round(pct(m, 99) - pct(d, 99), 3),
        "note": "no-embedding = x-semcache-control: no-cache, no-store (full proxy path, no lookup/store); "
                "with-embedding = a normal miss (exact+semantic lookup, upstream call, SQL store, index insert)",
    }


async def hit_latency(proxy: str, bases: list[str], para: list[str]) -> dict[str, Any]:
    await sequential(proxy, [chat(q) for q in bases])  # seed (misses)
    exact = [r for r in await sequential(proxy, [chat(q) for q in bases[:60]] * 5)]
    exact_ms = [r[0] for r in exact if r[2].get("x-semcache-match") == "exact"]
    sem = await sequential(proxy, [chat(q) for q in para])
    sem_ms = [r[0] for r in sem if r[2].get("x-semcache-match") == "semantic"]
    return {"exact": summary(exact_ms[20:]), "semantic": summary(sem_ms[10:]),
            "semantic_hit_fraction": round(len(sem_ms) / len(sem), 3),
            "note": "sequential, one keep-alive connection; semantic queries are distinct texts (no embedding LRU hit)"}


async def vllm_phase(vllm: str, proxy: str, model: str) -> dict[str, Any]:
    # Overhead on a miss against the real model (max_tokens 8, interleaved).
    d, p = [], []
    for i in range(8):
        q = f"In one sentence, what is the number {i * 13 + 5} known for?"
        d.append((await sequential(vllm, [chat(q, model, 8)]))[0][0])
        r = (await sequential(proxy, [chat(q + " Be concise.", model, 8)]))[0]
        p.append(r[0])
    overhead = {"direct": summary(d), "proxy_miss": summary(p),
                "added_p50_ms": round(pct(p, 50) - pct(d, 50), 1)}
    # Workload replay: base questions, politeness rewordings, reworded-by-meaning and new questions.
    rng = random.Random(7)
    bases = ["What is the capital of Italy?", "How do I reverse a list in Python?", "What causes rainbows?",
             "How do I boil an egg?", "What is the capital of France?", "Who painted the Mona Lisa?",
             "What is photosynthesis?", "How many legs does a spider have?"]
    rewordings = ["Hey, what is the capital of Italy?", "How can I reverse a Python list?",
                  "What makes rainbows appear?", "How should I boil an egg?", "What is France's capital?",
                  "Please tell me: who painted the Mona Lisa?", "Question: what is photosynthesis?",
                  "Hi! How many legs does a spider have?", "Can you tell me what causes rainbows?",
                  "Well, how do I boil an egg?"]
    new = ["What is the largest ocean on Earth?", "Why do cats purr?", "What is the speed of light?",
           "Who wrote Romeo and Juliet?", "What is the freezing point of water?", "How do bees make honey?",
           "What is the tallest animal?", "What is a prime number?"]
    tail = rewordings + new + bases
    rng.shuffle(tail)
    sequence = bases + tail  # bases first once, then a mix where bases repeat exactly too
    direct_ms, proxy_ms, outcomes, tokens_upstream, tokens_saved = [], [], [], 0, 0
    for q in sequence:
        direct_ms.append((await sequential(vllm, [chat(q, model, 16)]))[0][0])
    for q in sequence:
        ms, status, hdrs, body = (await sequential(proxy, [chat(q, model, 16)]))[0]
        proxy_ms.append(ms)
        outcome = hdrs.get("x-semcache", "") + (":" + hdrs["x-semcache-match"] if "x-semcache-match" in hdrs else "")
        outcomes.append(outcome)
        usage = json.loads(body).get("usage") or {}
        if hdrs.get("x-semcache") == "hit":
            tokens_saved += int(usage.get("total_tokens") or 0)
        else:
            tokens_upstream += int(usage.get("total_tokens") or 0)
    hits = sum(o.startswith("hit") for o in outcomes)
    return {
        "miss_overhead_vs_vllm": overhead,
        "replay": {
            "requests": len(sequence), "hits": hits, "hit_rate": round(hits / len(sequence), 3),
            "exact_hits": outcomes.count("hit:exact"), "semantic_hits": outcomes.count("hit:semantic"),
            "upstream_tokens_used": tokens_upstream, "upstream_tokens_saved": tokens_saved,
            "median_latency_direct_ms": round(statistics.median(direct_ms), 1),
            "median_latency_proxy_ms": round(statistics.median(proxy_ms), 1),
            "mean_latency_direct_ms": round(statistics.fmean(direct_ms), 1),
            "mean_latency_proxy_ms": round(statistics.fmean(proxy_ms), 1),
            "composition": {"first_asks": len(bases), "rewordings": len(rewordings), "new": len(new),
                            "exact_repeats": len(bases)},
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="semcache proxy benchmark")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "proxy.json")
    parser.add_argument("--vllm-url", default=None, help="use a running vLLM instead of starting one")
    parser.add_argument("--skip-vllm", action="store_true")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per throughput run")
    parser.add_argument("--loadgen", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--note", default="", help="free text stored in the JSON")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    if args.loadgen:
        spec = json.loads(args.loadgen.read_text())
        print(json.dumps(asyncio.run(loadgen(spec["url"], spec["bodies"], spec["connections"], spec["duration_s"],
                                             spec["cycle"]))))
        return

    from tests.fixtures.vllm import free_port, stop_process_group

    tmp = Path(tempfile.mkdtemp(prefix="semcache-bench-"))
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                                           "loadavg_1m_at_start": round(os.getloadavg()[0], 2)},
                               "note": args.note,
                               "targets": {"miss_added_p50_no_embedding_ms": 3, "miss_added_p50_with_embedding_ms": 15,
                                           "exact_hit_p50_ms": 3, "semantic_hit_p50_ms": 15,
                                           "exact_hit_rps_64conn": 1500, "semantic_hit_rps_64conn": 300,
                                           "exact_hit_p99_over_p50_64conn": 3.0}}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        port = free_port()
        fake_proc = spawn(["-m", "tests.fixtures.upstream", "--port", str(port)], tmp / "fake.log")
        procs.append(fake_proc)
        fake = f"http://127.0.0.1:{port}"
        wait_up(f"{fake}/v1/models", fake_proc)
        proxy_proc, proxy = start_proxy(fake, tmp / "fake.db", tmp)
        procs.append(proxy_proc)
        print("miss overhead (fake upstream) ...", flush=True)
        results["miss_overhead_fake_upstream"] = asyncio.run(overhead_fake(fake, proxy, 300))
        bases = base_questions()
        rng = random.Random(3)
        all_para = [p for q in bases for p in paraphrases(q)]
        rng.shuffle(all_para)
        print("hit latency ...", flush=True)
        results["hit_latency"] = asyncio.run(hit_latency(proxy, bases, all_para[:300]))
        print("exact-hit throughput ...", flush=True)
        results["throughput_exact_hits"] = run_loadgen(proxy, [chat(q) for q in bases], args.duration, True, tmp,
                                                       server_pid=proxy_proc.pid)
        print("semantic-hit throughput ...", flush=True)
        results["throughput_semantic_hits"] = run_loadgen(proxy, [chat(q) for q in all_para[300:]], args.duration,
                                                          False, tmp, server_pid=proxy_proc.pid)
        print("head-of-line (1 MB prompts) ...", flush=True)
        from benchmarks.proxy_hol import head_of_line

        results["head_of_line"] = asyncio.run(head_of_line(proxy, [chat(q) for q in bases[:60]],
                                                           [chat(q) for q in all_para[:60]]))
        results["throughput_note"] = ("load generator in a separate process (raw asyncio HTTP/1.1, 64 keep-alive "
                                      "connections) on the same 2 cores as the proxy; semantic queries are distinct "
                                      "texts and never repeat")
        for p in procs:
            stop_process_group(p)
        procs.clear()
        if not args.skip_vllm:
            vllm = args.vllm_url
            if vllm is None:
                from tests.fixtures.vllm import build_vllm, start_vllm, wait_ready

                python, model_dir = build_vllm()
                vport = free_port()
                vproc = start_vllm(python, model_dir, vport, tmp / "vllm.log")
                procs.append(vproc)
                vllm = f"http://127.0.0.1:{vport}"
                print("starting vLLM ...", flush=True)
                wait_ready(vproc, vllm, 300)
            proxy_proc, proxy = start_proxy(vllm, tmp / "vllm.db", tmp)
            procs.append(proxy_proc)
            print("vLLM overhead and workload replay ...", flush=True)
            asyncio.run(sequential(proxy, [chat("Warm up.", "smollm2", 4)], {"x-semcache-control": "no-store"}))
            results["vllm"] = asyncio.run(vllm_phase(vllm, proxy, "smollm2"))
    finally:
        for p in procs:
            stop_process_group(p)
    # Other jobs share these 2 cores: the 1-minute load average says how much.
    results["machine"]["loadavg_1m_at_end"] = round(os.getloadavg()[0], 2)
    t = results["targets"]
    mo, hl = results["miss_overhead_fake_upstream"], results["hit_latency"]
    results["verdicts"] = {
        "miss_added_p50_no_embedding": mo["added_no_embedding_p50_ms"] <= t["miss_added_p50_no_embedding_ms"],
        "miss_added_p50_with_embedding": mo["added_with_embedding_p50_ms"] <= t["miss_added_p50_with_embedding_ms"],
        "exact_hit_p50": hl["exact"]["p50_ms"] <= t["exact_hit_p50_ms"],
        "semantic_hit_p50": hl["semantic"]["p50_ms"] <= t["semantic_hit_p50_ms"],
        "exact_hit_rps": results["throughput_exact_hits"]["rps"] >= t["exact_hit_rps_64conn"],
        "exact_hit_tail": results["throughput_exact_hits"]["p99_ms"]
        <= t["exact_hit_p99_over_p50_64conn"] * results["throughput_exact_hits"]["p50_ms"],
        "semantic_hit_rps": results["throughput_semantic_hits"]["rps"] >= t["semantic_hit_rps_64conn"],
        "hit_p99_during_1mb_prompts": results["head_of_line"]["meets_target"],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
