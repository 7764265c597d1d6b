"""Three ``semcache serve`` replicas on one PostgreSQL (and Redis), one fake upstream.

The replicas are real processes started once for the module. Every wait is
bounded and generous (the machine is small and shared); nothing is timed.
Probes send ``x-semcache-control: no-store`` so that a miss does not store
the answer again and hide what is being checked.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.postgres import restart_server
from tests.fixtures.proxy import CHAT, _spawn, chat_body, fake_upstream_process, wait_http
from tests.fixtures.vllm import free_port, stop_process_group

pytestmark = [pytest.mark.integration, pytest.mark.slow]
TOKEN = "scaleout-admin-token-0123456789"
ADMIN = {"authorization": f"Bearer {TOKEN}"}
NO_STORE = {"x-semcache-control": "no-store"}
START_S = 300  # three replicas load the embedding model at once on two cores
WAIT_S = 60


def wait_until(check: Callable[[], Any], timeout_s: float = WAIT_S, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after the bound."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except httpx.HTTPError as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(0.1)
    pytest.fail(f"{what} not reached within {timeout_s} s (last: {last!r})")


class Cluster:
    """The replicas (index 0..2), their upstream and their database."""

    def __init__(self, upstream: str, db_url: str, redis_url: str, tmp: Path) -> None:
        self.upstream, self.db_url, self.redis_url, self.tmp = upstream, db_url, redis_url, tmp
        self.procs: list[Any] = [None, None, None]
        self.urls: list[str] = ["", "", ""]

    def spawn(self, i: int) -> None:
        port = free_port()
        env = {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "SEMCACHE_ADMIN_TOKEN": TOKEN,
               "SEMCACHE_REDIS_URL": self.redis_url, "SEMCACHE_KEY_CACHE_TTL_S": "3600",
               "SEMCACHE_LOAD_POLL_METRICS": "false", "SEMCACHE_FEED_POLL_S": "1.0",
               "OMP_NUM_THREADS": "1"}
        self.procs[i] = _spawn(["-m", "semcache.cli", "serve", "--upstream", self.upstream, "--port", str(port),
                                "--db", self.db_url, "--log-level", "warning"],
                               self.tmp / f"replica-{i}-{port}.log", env=env)
        self.urls[i] = f"http://127.0.0.1:{port}"

    def wait_ready(self, i: int) -> None:
        wait_http(f"{self.urls[i]}/healthz", self.procs[i], timeout_s=START_S)

    def stop(self) -> None:
        for proc in self.procs:
            if proc is not None:
                stop_process_group(proc)

    def ask(self, i: int, question: str, headers: dict[str, str] | None = None,
            key: str | None = None) -> httpx.Response:
        h = dict(headers or {})
        if key is not None:
            h["authorization"] = f"Bearer {key}"
        return httpx.post(self.urls[i] + CHAT, json=chat_body(question), headers=h, timeout=60)

    def hit(self, i: int, question: str, key: str | None = None) -> str | None:
        """The entry id replica ``i`` serves ``question`` from, or None on a miss (never stores)."""
        response = self.ask(i, question, NO_STORE, key)
        assert response.status_code == 200, response.text
        return response.headers.get("x-semcache-entry") if response.headers["x-semcache"] == "hit" else None

    def store(self, i: int, question: str, key: str | None = None) -> str:
        response = self.ask(i, question, key=key)
        assert response.status_code == 200, response.text
        assert response.headers["x-semcache"] == "miss", response.headers  # positive control: new question
        return response.headers["x-semcache-entry"]

    def admin(self, i: int, method: str, path: str, **kw: Any) -> httpx.Response:
        return httpx.request(method, f"{self.urls[i]}/admin/api{path}", headers=ADMIN, timeout=60, **kw)

    def ready(self, i: int) -> dict[str, Any]:
        return httpx.get(f"{self.urls[i]}/readyz", timeout=30).json()

    def log_head(self) -> int:
        """The newest change-log id in the database."""
        import psycopg

        with psycopg.connect(self.db_url, autocommit=True) as conn:
            return int(conn.execute("SELECT coalesce(max(id), 0) FROM change_log").fetchone()[0])

    def caught_up(self, i: int) -> None:
        """Wait until replica ``i``'s feed has applied the change log up to its current head."""
        head = self.log_head()
        wait_until(lambda: self.ready(i)["feed"]["position"] >= head, what=f"replica {i} at change {head}")


@pytest.fixture(scope="module")
def cluster(postgres_url: str, redis_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    import psycopg

    name = f"scaleout_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # generated name, not input
    db_url = f"{postgres_url.rsplit('/', 1)[0]}/{name}"
    tmp = tmp_path_factory.mktemp("scaleout")
    try:
        with fake_upstream_process(tmp) as upstream:
            cluster = Cluster(upstream, db_url, redis_server.url, tmp)
            try:
                for i in range(3):
                    cluster.spawn(i)  # all three load at once, migrations race under the lock
                for i in range(3):
                    cluster.wait_ready(i)
                yield cluster
            finally:
                cluster.stop()
    finally:
        if redis_server.proc is None:
            redis_server.start()
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_an_entry_stored_via_one_replica_is_a_hit_on_the_others(cluster: Cluster) -> None:
    question = "What is the capital of Peru?"
    assert all(cluster.hit(i, question) is None for i in range(3))  # nothing cached yet
    entry = cluster.store(0, question)
    for i in (1, 2):
        wait_until(lambda i=i: cluster.hit(i, question) == entry, what=f"hit of {entry} on replica {i}")
    assert cluster.hit(1, "What is the capital of Chile?") is None  # a different question still misses
    for i in range(3):
        feed = cluster.ready(i)["feed"]
        assert feed["mode"] == "listen" and feed["connected"], feed
        cluster.caught_up(i)


def _stored_then_deleted(cluster: Cluster, question: str, stored_on: int, deleted_on: int,
                         context: str = "") -> None:
    """Store through one replica, see the hit on the others, delete through the admin of another,
    and see the entry gone on every replica."""
    entry = cluster.store(stored_on, question)
    for i in range(3):
        if i != stored_on:
            wait_until(lambda i=i: cluster.hit(i, question) == entry, what=f"hit on replica {i}{context}")
    assert cluster.admin(deleted_on, "DELETE", f"/entries/{entry}").status_code == 200
    for i in range(3):
        wait_until(lambda i=i: cluster.hit(i, question) is None, what=f"invalidation on replica {i}{context}")


def test_admin_invalidation_and_policy_edits_reach_every_replica(cluster: Cluster) -> None:
    _stored_then_deleted(cluster, "What is the capital of Uruguay?", stored_on=1, deleted_on=0)
    response = cluster.admin(0, "PUT", "/policies/math", json={"threshold": 0.99})
    assert response.status_code == 200, response.text
    try:
        for i in (1, 2):
            wait_until(lambda i=i: cluster.admin(i, "GET", "/policies").json()["math"]["threshold"] == 0.99,
                       what=f"policy edit on replica {i}")
    finally:
        assert cluster.admin(0, "DELETE", "/policies/math").status_code == 200
    for i in (1, 2):
        wait_until(lambda i=i: cluster.admin(i, "GET", "/policies").json()["math"]["threshold"] != 0.99,
                   what=f"policy reset on replica {i}")


def test_a_key_revoked_on_one_replica_stops_working_on_the_others(cluster: Cluster) -> None:
    assert cluster.admin(0, "POST", "/tenants", json={"name": "acme"}).status_code == 201
    key = cluster.admin(0, "POST", "/tenants/acme/keys", json={"role": "client"}).json()["key"]
    question = "What is the capital of Paraguay?"
    entry = cluster.store(1, question, key=key)
    # Replica 2 resolves the key now and would trust it for an hour (SEMCACHE_KEY_CACHE_TTL_S).
    wait_until(lambda: cluster.hit(2, question, key=key) == entry, what="hit for the acme key")
    assert cluster.hit(2, question) is None  # without the key: the default tenant, another partition
    tenants = cluster.admin(0, "GET", "/tenants").json()
    key_id = next(k["id"] for t in tenants if t["name"] == "acme" for k in t["keys"] if key.startswith(k["prefix"]))
    assert cluster.admin(0, "POST", f"/keys/{key_id}/revoke").status_code == 200
    wait_until(lambda: cluster.hit(2, question, key=key) is None, what="revocation on replica 2")


def test_identical_concurrent_misses_make_one_upstream_call(cluster: Cluster) -> None:
    control = httpx.post(f"{cluster.upstream}/control", json={"delay_s": 2.0, "reset": True}, timeout=30)
    assert control.status_code == 200
    question = "What is the capital of Ecuador?"
    responses: list[httpx.Response] = []
    barrier = threading.Barrier(3)

    def ask(i: int) -> None:
        barrier.wait()
        responses.append(cluster.ask(i, question))

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(3)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    finally:
        calls = httpx.post(f"{cluster.upstream}/control", json={"delay_s": 0.0}, timeout=30).json()["calls"]
    assert len(responses) == 3 and all(r.status_code == 200 for r in responses)
    entries = {r.headers.get("x-semcache-entry") for r in responses}
    assert len(entries) == 1 and None not in entries, [dict(r.headers) for r in responses]
    assert calls == 1, f"{calls} upstream calls for one question asked on three replicas"


def test_redis_down_keeps_the_cache_correct(cluster: Cluster, redis_server: Any) -> None:
    assert cluster.ready(2)["redis"] == "up"  # positive control: the tier is in use
    redis_server.stop()
    try:
        _stored_then_deleted(cluster, "What is the capital of Bolivia?", stored_on=0, deleted_on=1,
                             context=" without Redis")
        for i in range(3):
            wait_until(lambda i=i: cluster.ready(i).get("degraded") is True, what=f"degraded on replica {i}")
        metrics = httpx.get(f"{cluster.urls[2]}/metrics", timeout=30).text
        assert "semcache_redis_up 0.0" in metrics and "semcache_degraded 1.0" in metrics
    finally:
        redis_server.start()
    for i in range(3):
        wait_until(lambda i=i: cluster.ready(i)["redis"] == "up", what=f"Redis back on replica {i}")


def test_kill_9_mid_load_loses_no_committed_entry_and_the_restart_catches_up(cluster: Cluster) -> None:
    acknowledged: dict[str, str] = {}
    lock = threading.Lock()
    stop = threading.Event()
    victim = 2

    def load(worker: int) -> None:
        with httpx.Client(base_url=cluster.urls[victim], timeout=30) as client:
            for n in range(10_000):
                if stop.is_set():
                    return
                question = f"Give me fact number {worker * 10_000 + n} about Lima."
                try:
                    response = client.post(CHAT, json=chat_body(question))
                except httpx.HTTPError:
                    return  # the replica is gone
                if response.status_code == 200 and "x-semcache-entry" in response.headers:
                    with lock:
                        acknowledged[question] = response.headers["x-semcache-entry"]

    threads = [threading.Thread(target=load, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: len(acknowledged) >= 30, timeout_s=180, what="30 acknowledged entries")
        os.kill(cluster.procs[victim].pid, signal.SIGKILL)  # mid-load, no shutdown of any kind
        cluster.procs[victim].wait(timeout=30)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    with lock:
        acked = dict(acknowledged)
    for question, entry in acked.items():
        wait_until(lambda q=question, e=entry: cluster.hit(0, q) == e, what=f"entry {entry} on replica 0")
    late_question = "What is the capital of Venezuela?"
    late = cluster.store(1, late_question)  # committed while the victim is down
    cluster.spawn(victim)
    cluster.wait_ready(victim)
    assert cluster.hit(victim, late_question) == late  # loaded at start-up
    for question, entry in list(acked.items())[:10]:
        assert cluster.hit(victim, question) == entry
    cluster.caught_up(victim)
    after = cluster.store(0, "What is the capital of Colombia?")
    wait_until(lambda: cluster.hit(victim, "What is the capital of Colombia?") == after,
               what="the restarted replica following the feed")


def test_postgres_restart_replicas_reconnect_and_catch_up(cluster: Cluster, postgres_url: str) -> None:
    before_q = "What is the capital of Argentina?"
    before = cluster.store(0, before_q)
    for i in (1, 2):
        wait_until(lambda i=i: cluster.hit(i, before_q) == before, what=f"hit on replica {i}")
    errors: list[BaseException] = []

    def restart() -> None:
        try:
            restart_server(postgres_url, down_s=6.0)
        except BaseException as exc:  # checked below
            errors.append(exc)

    restarter = threading.Thread(target=restart)
    restarter.start()
    try:
        wait_until(lambda: cluster.ready(1)["feed"]["connected"] is False, what="feed noticing the outage")
        assert cluster.hit(1, before_q) == before  # hits are served from memory meanwhile
        if restarter.is_alive():  # still down: a miss is answered by the upstream, uncached
            during = cluster.ask(1, "What is the capital of Nepal?")
            assert during.status_code == 200 and during.headers["x-semcache"] == "miss", during.text
    finally:
        restarter.join(timeout=120)
    assert not errors and not restarter.is_alive()

    def stored_after() -> str | None:
        response = cluster.ask(1, "What is the capital of Brazil?")
        return response.headers.get("x-semcache-entry") if response.status_code == 200 else None

    after = wait_until(stored_after, what="a store once PostgreSQL is back")
    for i in (0, 2):
        wait_until(lambda i=i: cluster.hit(i, "What is the capital of Brazil?") == after,
                   what=f"hit on replica {i} after the restart")
    for i in range(3):
        assert cluster.hit(i, before_q) == before  # nothing lost
        wait_until(lambda i=i: cluster.ready(i)["feed"]["connected"], what=f"feed reconnected on {i}")
        cluster.caught_up(i)  # the feed itself, not only the Redis exact tier, has the new entry
    assert cluster.admin(2, "DELETE", f"/entries/{before}").status_code == 200
    for i in range(3):
        wait_until(lambda i=i: cluster.hit(i, before_q) is None, what=f"invalidation on {i} after restart")
