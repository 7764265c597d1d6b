"""Scale-out benchmark: replicas sharing one PostgreSQL (and Redis), measured in one run.

    python benchmarks/scaleout.py --out benchmarks/results/scaleout.json [--duration 8] [--samples 60]

Starts its own PostgreSQL 15 (``/usr/lib/postgresql/15/bin``) and redis-server
on loopback, a fast fake upstream and three ``semcache serve`` replicas, then
measures:

- aggregate exact-hit throughput through 1, 2 and 3 replicas (one load
  generator process, 64 keep-alive connections split across the replicas);
- propagation latency: the time from the acknowledgement of a store (or an
  admin deletion) on replica 0 until replicas 1 and 2 serve (or stop serving)
  it, with the Redis tier on and with the change feed alone;
- a bulk load of ``--load-entries`` stored entries (start-up of a new
  replica): entries/s and resident memory per entry;
- the size of one change-log row and one stored entry row (feed bandwidth).

Warm-ups are not counted. The 1-minute load average is recorded: the
machine is small and shared, so ratios within one run mean more than
absolute figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import pwd
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.proxy import loadgen, summary, wait_up  # noqa: E402

PG_BIN = Path("/usr/lib/postgresql/15/bin")
TOKEN = "scaleout-benchmark-token-0123"
NO_STORE = {"x-semcache-control": "no-store"}


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ------------------------------------------------------------------ servers
class Servers:
    """PostgreSQL, Redis and the fake upstream for this run, stopped by PID at the end."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.procs: list[subprocess.Popen[bytes]] = []
        self.pg_pid: int | None = None

    def _as_postgres(self, argv: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv

    def postgres(self) -> str:
        data, port = self.root / "pg", free_port()
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        subprocess.run(self._as_postgres([str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
                                          "--no-sync", "-E", "UTF8"]), check=True, capture_output=True)
        options = f"-h 127.0.0.1 -p {port} -k {self.root} -c fsync=off -c max_connections=200"
        subprocess.run(self._as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(self.root / "pg.log"),
                                          "-o", options, "-w", "start"]), check=True, capture_output=True)
        self.pg_pid = int((data / "postmaster.pid").read_text().splitlines()[0])
        return f"postgresql://postgres@127.0.0.1:{port}/postgres"

    def redis(self) -> str:
        port = free_port()
        proc = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--bind", "127.0.0.1", "--port",
                                 str(port), "--dir", str(self.root), "--save", "", "--appendonly", "no"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.procs.append(proc)
        url = f"redis://127.0.0.1:{port}/0"
        import redis

        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 30
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.close()
        return url

    def spawn(self, args: list[str], name: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        with open(self.root / f"{name}.log", "ab") as fh:
            proc = subprocess.Popen([sys.executable, *args], stdout=fh, stderr=subprocess.STDOUT,
                                    env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                                         **(env or {})}, start_new_session=True)
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)

    def close(self) -> None:
        for proc in reversed(self.procs):
            self.stop(proc)
        if self.pg_pid is not None:
            os.kill(self.pg_pid, signal.SIGINT)
            for _ in range(300):
                try:
                    os.kill(self.pg_pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)


def start_replicas(servers: Servers, upstream: str, db_url: str, redis_url: str | None, n: int,
                   tag: str) -> list[tuple[subprocess.Popen[bytes], str]]:
    env = {"SEMCACHE_ADMIN_TOKEN": TOKEN, "SEMCACHE_LOAD_POLL_METRICS": "false", "OMP_NUM_THREADS": "1"}
    if redis_url:
        env["SEMCACHE_REDIS_URL"] = redis_url
    started = []
    for i in range(n):
        port = free_port()
        proc = servers.spawn(["-m", "semcache.cli", "serve", "--upstream", upstream, "--port", str(port), "--db",
                              db_url, "--log-level", "warning"], f"replica-{tag}-{i}", env)
        started.append((proc, f"http://127.0.0.1:{port}"))
    for proc, url in started:
        wait_up(f"{url}/healthz", proc, timeout_s=300)
    return started


# -------------------------------------------------------------- measurements
def chat(question: str) -> dict[str, Any]:
    return {"model": "fake-model", "messages": [{"role": "user", "content": question}], "temperature": 0,
            "max_tokens": 16}


def questions(n: int, tag: str) -> list[str]:
    return [f"Tell me fact number {i} ({tag}) about the river Danube." for i in range(n)]


def throughput(urls: list[str], bodies: list[dict[str, Any]], duration_s: float, tmp: Path) -> dict[str, Any]:
    """One load-generator process, 64 connections split evenly across ``urls``."""
    spec = tmp / f"load-{time.time_ns()}.json"
    spec.write_text(json.dumps({"urls": urls, "bodies": bodies, "duration_s": duration_s}))
    out = subprocess.run([sys.executable, __file__, "--loadgen", str(spec)], capture_output=True, text=True,
                         timeout=duration_s + 180)
    if out.returncode != 0:
        raise RuntimeError(f"load generator failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


async def _multi_loadgen(urls: list[str], bodies: list[dict[str, Any]], duration_s: float) -> dict[str, Any]:
    per = 64 // len(urls)
    bodies = bodies * -(-per // len(bodies))  # every connection gets at least one body to cycle over
    parts = await asyncio.gather(*(loadgen(u, bodies, per, duration_s, True) for u in urls))
    total = sum(p["requests"] for p in parts)
    elapsed = max(p["elapsed_s"] for p in parts)
    outcomes: dict[str, int] = {}
    for p in parts:
        for k, v in p["outcomes"].items():
            outcomes[k] = outcomes.get(k, 0) + v
    return {"replicas": len(urls), "requests": total, "elapsed_s": elapsed, "rps": round(total / elapsed, 1),
            "per_replica_rps": [p["rps"] for p in parts], "outcomes": outcomes,
            "p50_ms": round(statistics_median([p["p50_ms"] for p in parts]), 3),
            "p99_ms": max(p["p99_ms"] for p in parts)}


def statistics_median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def propagation(urls: list[str], n: int, tag: str) -> dict[str, Any]:
    """Store on replica 0, wait for hits on the others; delete there, wait for misses."""
    import httpx

    insert_ms: list[float] = []
    delete_ms: list[float] = []
    with httpx.Client(timeout=30) as client:
        for i in range(n):
            question = f"What is the population of town number {i} ({tag})?"
            response = client.post(f"{urls[0]}/v1/chat/completions", json=chat(question))
            acked = time.perf_counter()
            entry = response.headers["x-semcache-entry"]
            insert_ms += _until(client, urls[1:], question, lambda r, e=entry: r.headers.get("x-semcache-entry") == e
                                and r.headers["x-semcache"] == "hit", acked)
            gone = client.delete(f"{urls[0]}/admin/api/entries/{entry}",
                                 headers={"authorization": f"Bearer {TOKEN}"})
            acked = time.perf_counter()
            assert gone.status_code == 200, gone.text
            delete_ms += _until(client, urls[1:], question, lambda r: r.headers["x-semcache"] != "hit", acked)
            time.sleep(0.05)
    return {"insert": summary(insert_ms), "invalidate": summary(delete_ms)}


def _until(client: Any, urls: list[str], question: str, done: Any, since: float,
           timeout_s: float = 30.0) -> list[float]:
    """Per replica: ms from ``since`` until a probe of ``question`` satisfies ``done``."""
    out = []
    pending = list(urls)
    deadline = since + timeout_s
    while pending and time.perf_counter() < deadline:
        for url in list(pending):
            response = client.post(f"{url}/v1/chat/completions", json=chat(question), headers=NO_STORE)
            if done(response):
                out.append((time.perf_counter() - since) * 1000)
                pending.remove(url)
        time.sleep(0.002)
    if pending:
        raise RuntimeError(f"{question!r} did not propagate to {pending} within {timeout_s} s")
    return out


def bulk_load(db_url: str, n: int) -> dict[str, Any]:
    """Write ``n`` entries (random 384-d vectors), then time a new cache's start-up load of them."""
    import numpy as np

    from semcache import CacheRequest, Scope
    from semcache.cache import SemanticCache

    class Random384:
        name, version, dim = "random-384", "1", 384

        def __init__(self) -> None:
            self.rng = np.random.default_rng(0)

        def embed(self, texts: list[str]) -> np.ndarray:
            v = self.rng.standard_normal((len(texts), self.dim)).astype(np.float32)
            return v / np.linalg.norm(v, axis=1, keepdims=True)

        def embed_one(self, text: str) -> np.ndarray:
            return self.embed([text])[0]

    scope = Scope.of(tenant="bench", model="m", params={"temperature": 0})
    writer = SemanticCache(db_url, embedder=Random384(), stats_interval=0, feed=False)
    answer = {"choices": [{"message": {"role": "assistant", "content": "x" * 400}, "finish_reason": "stop"}]}
    try:
        started = time.perf_counter()
        for i in range(n):
            writer.store(CacheRequest(f"Bulk question number {i} about a long river?", scope, category="factual"),
                         answer)
        write_s = time.perf_counter() - started
    finally:
        writer.close()
    rss_before = _rss_bytes()
    started = time.perf_counter()
    reader = SemanticCache(db_url, embedder=Random384(), stats_interval=0, feed=False, rebuild_progress_min=10**9)
    load_s = time.perf_counter() - started
    rss_after = _rss_bytes()
    try:
        loaded = len(reader.mirror)
        from sqlalchemy import text

        with reader.db.engine.connect() as conn:
            entry_bytes = conn.execute(text("SELECT avg(pg_column_size(e.*)) FROM entries e")).scalar()
            change_bytes = conn.execute(text("SELECT avg(pg_column_size(c.*)) FROM change_log c")).scalar()
    finally:
        reader.close()
    return {"entries": loaded, "write_s": round(write_s, 2), "load_s": round(load_s, 2),
            "load_entries_per_s": round(loaded / load_s, 1),
            "rss_bytes_per_entry": round((rss_after - rss_before) / max(loaded, 1), 1),
            "entry_row_bytes": round(float(entry_bytes), 1), "change_row_bytes": round(float(change_bytes), 1),
            "note": "start-up load through the same rebuild a replica runs (index + mirror); RSS delta of this "
                    "process includes allocator slack; answers of 400 characters"}


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/scaleout.json")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per throughput measurement")
    parser.add_argument("--samples", type=int, default=60, help="propagation samples per mode")
    parser.add_argument("--hot", type=int, default=200, help="distinct cached questions in the hit workload")
    parser.add_argument("--load-entries", type=int, default=10_000)
    parser.add_argument("--loadgen", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.loadgen:
        spec = json.loads(args.loadgen.read_text())
        print(json.dumps(asyncio.run(_multi_loadgen(spec["urls"], spec["bodies"], spec["duration_s"]))))
        return

    import httpx
    import psycopg

    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                           "loadavg_1m_at_start": round(os.getloadavg()[0], 2)}}
    root = Path(tempfile.mkdtemp(prefix="semcache-scaleout-"))
    servers = Servers(root)
    try:
        pg = servers.postgres()
        redis_url = servers.redis()
        with psycopg.connect(pg, autocommit=True) as conn:
            for name in ("bench_a", "bench_b", "bench_load"):
                conn.execute(f"CREATE DATABASE {name}")
        base = pg.rsplit("/", 1)[0]
        port = free_port()
        fake = servers.spawn(["-m", "tests.fixtures.upstream", "--port", str(port)], "upstream")
        upstream = f"http://127.0.0.1:{port}"
        wait_up(f"{upstream}/v1/models", fake, timeout_s=300)

        replicas = start_replicas(servers, upstream, f"{base}/bench_a", redis_url, 3, "redis")
        urls = [u for _, u in replicas]
        hot = questions(args.hot, "hot")
        with httpx.Client(timeout=60) as client:
            for q in hot:
                assert client.post(f"{urls[0]}/v1/chat/completions", json=chat(q)).status_code == 200
            for url in urls[1:]:  # every replica holds every hot entry before we count
                for q in hot:
                    _until(client, [url], q, lambda r: r.headers["x-semcache"] == "hit", time.perf_counter())
        bodies = [chat(q) for q in hot]
        throughput(urls, bodies, 2.0, root)  # warm-up, not counted
        results["throughput_exact_hits"] = {
            str(k): throughput(urls[:k], bodies, args.duration, root) for k in (1, 2, 3)}
        results["propagation_ms_with_redis"] = propagation(urls, args.samples, "redis")
        for proc, _ in replicas:
            servers.stop(proc)

        replicas = start_replicas(servers, upstream, f"{base}/bench_b", None, 3, "feed")
        results["propagation_ms_feed_only"] = propagation([u for _, u in replicas], args.samples, "feed")
        for proc, _ in replicas:
            servers.stop(proc)

        results["bulk_load"] = bulk_load(f"{base}/bench_load", args.load_entries)
    finally:
        results["machine"]["loadavg_1m_at_end"] = round(os.getloadavg()[0], 2)
        servers.close()
        shutil.rmtree(root, ignore_errors=True)
    t = results["throughput_exact_hits"]
    results["scaling"] = {k: round(t[k]["rps"] / t["1"]["rps"], 2) for k in t}
    results["notes"] = (
        "Hit throughput: exact hits; client, replicas, PostgreSQL and Redis share the same cores, so adding "
        "replicas on one 2-core machine adds little; on separate machines hit throughput is per-replica work "
        "(no shared state is touched on a hit). Propagation: acknowledged store/delete on replica 0 until "
        "replicas 1 and 2 both show it (probe resolution a few ms); with Redis, exact hits can come from the "
        "shared exact tier before the change feed delivers.")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
