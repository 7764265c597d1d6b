"""Scope isolation (property-based, with positive controls), concurrency and crash safety."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from semcache.types import CacheRequest, Scope

pytestmark = pytest.mark.integration

# (stored question, reworded question) pairs that must hit within one scope.
PAIRS = [
    ("How do I reverse a list in Python?", "How can I reverse a Python list?"),
    ("What is the capital of Australia?", "What's the capital of Australia?"),
    ("How do I reset my router to factory settings?", "How can I reset my router to its factory settings?"),
    ("What are the symptoms of the flu?", "What symptoms does the flu cause?"),
    ("How do I cancel my subscription?", "How can I cancel my subscription?"),
]

scopes = st.builds(
    Scope.of,
    tenant=st.sampled_from(["acme", "globex", "initech"]),
    model=st.sampled_from(["smollm2", "llama-3-8b"]),
    params=st.sampled_from([{"temperature": 0}, {"temperature": 0, "max_tokens": 64}]),
    user=st.sampled_from([None, "alice", "bob"]),
)


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory, minilm):
    from semcache.cache import SemanticCache

    cache = SemanticCache(f"sqlite:///{tmp_path_factory.mktemp('iso') / 'iso.db'}",
                          embedder=minilm, stats_interval=0)
    yield cache
    cache.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(a=scopes, b=scopes, pair=st.sampled_from(PAIRS))
def test_no_cross_scope_hits_with_positive_controls(shared_cache, a, b, pair):
    stored, reworded = pair
    entry = shared_cache.store(CacheRequest(stored, a), {"scope": a.key()})
    # positive controls: the same scope hits, exactly and semantically
    exact = shared_cache.lookup(CacheRequest(stored, a))
    semantic = shared_cache.lookup(CacheRequest(reworded, a))
    assert exact is not None and exact.response == {"scope": a.key()}
    assert semantic is not None and semantic.response == {"scope": a.key()}
    assert exact.entry_id == entry  # the newest entry wins the exact path
    # isolation: another scope never sees a's answer
    if b != a:
        for text in (stored, reworded):
            other = shared_cache.lookup(CacheRequest(text, b))
            assert other is None or other.response == {"scope": b.key()}


def test_concurrent_writers_and_readers(make_cache):
    cache = make_cache()
    errors: list[BaseException] = []
    ids: list[int] = []
    lock = threading.Lock()

    def writer(w: int) -> None:
        try:
            for i in range(15):
                scope = Scope.of(tenant=f"t{w}", model="m")
                entry = cache.store(CacheRequest(f"Question {i} from writer {w} about topic {i * 7}", scope),
                                    {"w": w, "i": i})
                assert cache.lookup(CacheRequest(f"Question {i} from writer {w} about topic {i * 7}", scope))
                with lock:
                    ids.append(entry)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(ids) == len(set(ids)) == 60
    assert cache.db.all_ids() == cache.index.ids() == set(ids)


CHILD = textwrap.dedent("""
    import sys
    from semcache.cache import SemanticCache
    from semcache.embed.minilm import MiniLMEmbedder
    from semcache.types import CacheRequest, Scope
    cache = SemanticCache(sys.argv[1], embedder=MiniLMEmbedder(), stats_interval=0)
    print("ready", flush=True)
    i = 0
    while True:
        entry = cache.store(CacheRequest(f"crash test question number {i}", Scope("t")), {"i": i})
        print(entry, flush=True)
        i += 1
""")


def test_kill_9_during_stores_keeps_every_acknowledged_entry(make_cache, tmp_path):
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    make_cache(url).close()  # migrate first, so the child only writes entries
    proc = subprocess.Popen([sys.executable, "-c", CHILD, url], stdout=subprocess.PIPE, text=True)
    acknowledged: list[int] = []
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 60
        while len(acknowledged) < 25 and time.monotonic() < deadline:
            acknowledged.append(int(proc.stdout.readline()))
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert len(acknowledged) >= 25
    reopened = make_cache(url)
    assert set(acknowledged) <= reopened.db.all_ids()
    assert reopened.index.ids() == reopened.db.all_ids()
    hit = reopened.lookup(CacheRequest("crash test question number 3", Scope("t")))
    assert hit is not None and hit.response == {"i": 3}
