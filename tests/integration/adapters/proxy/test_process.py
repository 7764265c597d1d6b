"""The proxy as a real process (``python -m semcache.adapters.proxy.cli``): crash safety and graceful shutdown."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest
from semcache.adapters.proxy.load import parse_queue_depth

from tests.fixtures.proxy import CHAT, chat_body, fake_upstream_process, start_proxy_process
from tests.fixtures.vllm import stop_process_group

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SUBJECTS = ["Paris", "Rome", "Madrid", "Berlin", "Lisbon", "Vienna", "Prague", "Warsaw", "Dublin", "Oslo"]


def test_kill_9_during_a_storm_loses_no_acknowledged_entry(tmp_path: Path, make_cache) -> None:  # type: ignore[no-untyped-def]
    db_url = f"sqlite:///{tmp_path / 'cache.db'}"
    acknowledged: set[int] = set()
    lock = threading.Lock()
    stop = threading.Event()
    with fake_upstream_process(tmp_path, delay_s=0.01) as upstream:
        proc, url = start_proxy_process(upstream, db_url, tmp_path)
        try:
            def worker(worker_id: int) -> None:
                with httpx.Client(base_url=url, timeout=30) as client:
                    for i in range(10_000):
                        if stop.is_set():
                            return
                        subject = SUBJECTS[i % len(SUBJECTS)]
                        question = f"Tell me fact number {worker_id * 10_000 + i} about {subject}."
                        try:
                            response = client.post(CHAT, json=chat_body(question))
                        except httpx.HTTPError:
                            return  # the proxy is gone
                        if response.status_code == 200 and "x-semcache-entry" in response.headers:
                            with lock:
                                acknowledged.add(int(response.headers["x-semcache-entry"]))

            threads = [threading.Thread(target=worker, args=(w,)) for w in range(8)]
            for t in threads:
                t.start()
            deadline = time.monotonic() + 120
            while len(acknowledged) < 40 and time.monotonic() < deadline:
                time.sleep(0.05)
            os.kill(proc.pid, signal.SIGKILL)  # mid-storm, no shutdown of any kind
            proc.wait(timeout=30)
            stop.set()
            for t in threads:
                t.join(timeout=60)
        finally:
            stop.set()
            stop_process_group(proc)
    assert len(acknowledged) >= 40
    cache = make_cache(db_url)  # a restart: the index is rebuilt from SQL
    for entry_id in sorted(acknowledged):
        assert cache.db.get_entry(entry_id) is not None, f"entry {entry_id} acknowledged but not in SQL"
    missing = acknowledged - cache.index.ids()
    assert not missing, f"acknowledged entries missing from the rebuilt index: {sorted(missing)}"


def test_graceful_shutdown_finishes_in_flight_streams(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'cache.db'}"
    with fake_upstream_process(tmp_path, delay_s=1.5) as upstream:
        proc, url = start_proxy_process(upstream, db_url, tmp_path)
        result: dict[str, object] = {}

        def stream() -> None:
            with httpx.Client(base_url=url, timeout=60) as client:
                with client.stream("POST", CHAT, json=chat_body("Why is the sky blue?", stream=True)) as response:
                    result["status"] = response.status_code
                    result["body"] = "".join(response.iter_text())

        thread = threading.Thread(target=stream)
        try:
            thread.start()
            deadline = time.monotonic() + 60
            while not parse_queue_depth(httpx.get(f"{upstream}/metrics").text):  # the request is upstream now
                assert time.monotonic() < deadline and thread.is_alive()
                time.sleep(0.02)
            proc.send_signal(signal.SIGTERM)
            thread.join(timeout=60)
            # uvicorn re-raises the signal once it has drained, so -SIGTERM is a clean exit too.
            assert proc.wait(timeout=60) in (0, -signal.SIGTERM)
        finally:
            stop_process_group(proc)
    assert result["status"] == 200
    body = str(result["body"])
    assert body.rstrip().endswith("data: [DONE]") and ": x-semcache-entry" in body
