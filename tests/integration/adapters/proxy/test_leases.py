"""Single-flight leases recover: a replica killed with -9 mid-request holds nobody up for long.

Two proxy processes share one PostgreSQL store with cross-replica single-flight on. Replica A
asks a slow upstream 10 questions, and is killed with -9 while all 10 leases are held; replica B
(a fast upstream) is then asked the same questions: each must answer within 2 s (the leases of a
dead holder stop being renewed), and none is waited out for the 30 s lease period.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest
from semcache.adapters.server.leases import LEASES
from sqlalchemy import func, select

from semcache.storage.engine import make_engine
from tests.fixtures.proxy import CHAT, chat_body, fake_upstream_process, start_proxy_process
from tests.fixtures.vllm import stop_process_group

pytestmark = [pytest.mark.integration, pytest.mark.slow]

QUESTIONS = [f"What is the population of city number {i} in the atlas?" for i in range(10)]
ENV = {"SEMCACHE_SHARED_SINGLEFLIGHT": "on", "SEMCACHE_SHARED_FLIGHT_LEASE_S": "30"}


def _leases(engine: object, owner: str) -> int:
    with engine.connect() as conn:  # type: ignore[attr-defined]
        return int(conn.execute(select(func.count()).select_from(LEASES).where(LEASES.c.owner == owner)).scalar())


def _ask_all(url: str) -> list[tuple[float, int, str]]:
    """Ask every question at once; (seconds, status, x-semcache) per question."""
    out: list[tuple[float, int, str]] = [(0.0, 0, "")] * len(QUESTIONS)

    def ask(i: int) -> None:
        started = time.perf_counter()
        response = httpx.post(f"{url}{CHAT}", json=chat_body(QUESTIONS[i]), timeout=60)
        out[i] = (time.perf_counter() - started, response.status_code, response.headers.get("x-semcache", ""))

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(QUESTIONS))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def test_a_killed_replica_leases_delay_a_reask_by_at_most_2_s(tmp_path: Path, fresh_pg_url: str) -> None:
    engine = make_engine(fresh_pg_url)
    with fake_upstream_process(tmp_path, delay_s=60.0) as slow, fake_upstream_process(tmp_path) as fast:
        proc_a, url_a = start_proxy_process(slow, fresh_pg_url, tmp_path, SEMCACHE_REPLICA_ID="a", **ENV)
        proc_b, url_b = start_proxy_process(fast, fresh_pg_url, tmp_path, SEMCACHE_REPLICA_ID="b", **ENV)
        try:
            def ask_a(question: str) -> None:
                try:
                    httpx.post(f"{url_a}{CHAT}", json=chat_body(question), timeout=90)
                except httpx.HTTPError:
                    pass  # replica A dies under this request

            pending = [threading.Thread(target=ask_a, args=(q,), daemon=True) for q in QUESTIONS]
            for t in pending:
                t.start()
            deadline = time.monotonic() + 60
            while _leases(engine, "a") < len(QUESTIONS) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert _leases(engine, "a") == len(QUESTIONS)
            os.kill(proc_a.pid, signal.SIGKILL)
            proc_a.wait(timeout=30)
            timings = _ask_all(url_b)
        finally:
            stop_process_group(proc_a)
            stop_process_group(proc_b)
    engine.dispose()
    assert all(status == 200 and outcome == "miss" for _, status, outcome in timings), timings
    slowest = max(seconds for seconds, _, _ in timings)
    print(f"re-ask after kill -9, seconds: max {slowest:.2f}, "
          f"all {sorted(round(seconds, 2) for seconds, _, _ in timings)}")
    assert slowest <= 2.0, f"re-asking took up to {slowest:.2f} s: {timings}"
