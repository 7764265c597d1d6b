"""The SQL store on real SQLite and PostgreSQL databases (each test runs on both)."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import event, text

from semcache.storage.engine import make_engine
from semcache.storage.store import HitDelta, NewEntry, Store

pytestmark = pytest.mark.integration

T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
REPO = Path(__file__).resolve().parents[3]


def new_entry(prompt: str = "What is the capital of France?", **overrides: Any) -> NewEntry:
    rng = np.random.default_rng(zlib.crc32(prompt.encode()))
    values: dict[str, Any] = dict(
        partition="p1",
        exact_key=f"k:{prompt}",
        tenant="acme",
        model="m1",
        params_hash="",
        category="factual",
        prompt=prompt,
        prompt_norm=prompt.lower(),
        prompt_hash=f"h:{prompt}",
        context_hash="c0",
        response={"choices": [{"message": {"content": f"answer to {prompt}"}}]},
        embedding=rng.standard_normal(8).astype(np.float32),
        embedder="fake@1",
    )
    values.update(overrides)
    return NewEntry(**values)


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    with Store(db_url) as s:
        yield s


def test_add_and_get_round_trip(store: Store) -> None:
    rec = new_entry(
        user_id="u7",
        history=["earlier question"],
        history_embedding=np.ones(8, dtype=np.float32),
        doc_keys=["doc-b", "doc-a", "doc-a"],
        expires_at=T0 + dt.timedelta(hours=1),
        created_at=T0,
        tokens=120,
        cost=0.002,
        latency_ms=850.0,
    )
    entry_id = store.add_entry(rec)
    row = store.get_entry(entry_id)
    assert row is not None
    assert row.id == entry_id and row.prompt == rec.prompt and row.user_id == "u7"
    assert row.history == ("earlier question",)
    np.testing.assert_array_equal(row.embedding, rec.embedding)
    assert row.embedding.dtype == np.float32
    assert row.history_embedding is not None and row.history_embedding.tolist() == [1.0] * 8
    assert row.response == rec.response
    assert row.created_at == T0 and row.created_at.tzinfo is not None
    assert row.expires_at == T0 + dt.timedelta(hours=1)
    assert (row.tokens, row.cost, row.latency_ms) == (120, 0.002, 850.0)
    assert (row.hit_count, row.wrong_reports, row.last_hit_at) == (0, 0, None)
    assert row.doc_keys == ("doc-a", "doc-b")
    assert store.get_response(entry_id) == rec.response
    assert store.get_entry(entry_id + 1000) is None
    assert store.get_response(entry_id + 1000) is None


def test_expired_entries_are_deleted(store: Store) -> None:
    soon = store.add_entry(new_entry("a", expires_at=T0 + dt.timedelta(seconds=30)))
    later = store.add_entry(new_entry("b", expires_at=T0 + dt.timedelta(hours=1)))
    never = store.add_entry(new_entry("c"))
    assert store.delete_expired(T0) == []
    assert store.delete_expired(T0 + dt.timedelta(minutes=1)) == [soon]
    assert store.all_ids() == {later, never}


def test_delete_filters_and_dry_run(store: Store) -> None:
    a = store.add_entry(new_entry("Refund POLICY for shoes", tenant="acme", created_at=T0))
    b = store.add_entry(new_entry("refund policy for hats", tenant="other", category="code"))
    c = store.add_entry(new_entry("100%_done?", tenant="acme", model="m2"))
    assert store.delete_where(text="refund policy", dry_run=True) == [a, b]
    assert store.count_entries() == 3  # dry run deleted nothing
    assert store.count_entries(tenant="acme") == 2
    assert store.count_entries(text="REFUND", category="code") == 1
    assert store.delete_where(text="%") == [c]  # a literal %, not a wildcard
    assert store.delete_where(text="_") == []
    assert store.delete_where(text="x'; DROP TABLE entries; --") == []
    assert store.delete_where(older_than=T0 + dt.timedelta(seconds=1)) == [a]
    assert store.delete_where(tenant="acme") == []
    assert store.delete_where(tenant="other", category="factual") == []
    assert store.delete_where(tenant="other", category="code") == [b]
    with pytest.raises(ValueError, match="at least one"):
        store.delete_where()


def test_delete_entries_returns_only_existing_ids(store: Store) -> None:
    ids = [store.add_entry(new_entry(f"q{i}")) for i in range(3)]
    assert store.delete_entries([ids[0], ids[2], 99999]) == [ids[0], ids[2]]
    assert store.delete_entries([ids[0]]) == []
    assert store.all_ids() == {ids[1]}


def test_document_invalidation(store: Store) -> None:
    a = store.add_entry(new_entry("a", doc_keys=["manual.pdf", "faq"]))
    b = store.add_entry(new_entry("b", doc_keys=["faq"]))
    c = store.add_entry(new_entry("c", doc_keys=["other"]))
    assert store.delete_by_document("faq") == [a, b]
    assert store.delete_by_document("faq") == []
    assert store.entry_doc_keys(a) == []  # links went with the entry
    assert store.all_ids() == {c}
    with store.engine.connect() as conn:
        links = conn.execute(text("SELECT entry_id, doc_key FROM entry_documents")).all()
    assert [tuple(r) for r in links] == [(c, "other")]


def test_quota_evicts_least_valuable(store: Store) -> None:
    ids = [
        store.add_entry(new_entry(f"q{i}", created_at=T0 + dt.timedelta(minutes=i)))
        for i in range(5)
    ]
    other = store.add_entry(new_entry("code q", category="code"))
    # q0 is the oldest but popular; q3 was hit recently once; q1 was hit once long ago.
    store.record_hits(
        {
            ids[0]: HitDelta(count=5, at=T0 + dt.timedelta(hours=1)),
            ids[1]: HitDelta(count=1, at=T0 + dt.timedelta(minutes=30)),
            ids[3]: HitDelta(count=1, at=T0 + dt.timedelta(hours=2)),
        }
    )
    assert store.evict_for_quota("factual", 5) == []
    # Never hit: q2 (older), q4; then the one-hit entry with the oldest last hit (q1).
    assert store.evict_for_quota("factual", 2) == sorted([ids[2], ids[4], ids[1]])
    assert store.all_ids() == {ids[0], ids[3], other}
    assert store.evict_for_quota("factual", 0) == [ids[0], ids[3]]
    with pytest.raises(ValueError):
        store.evict_for_quota("factual", -1)


def test_record_hits_and_wrong_reports(store: Store) -> None:
    entry_id = store.add_entry(new_entry())
    store.record_hits(
        {
            entry_id: HitDelta(
                count=2, tokens_saved=300, cost_saved=0.5, latency_saved_ms=900.0, at=T0
            )
        }
    )
    store.record_hits(
        {entry_id: HitDelta(tokens_saved=10, at=T0 + dt.timedelta(seconds=5)), 424242: HitDelta()}
    )
    row = store.get_entry(entry_id)
    assert row is not None
    assert (row.hit_count, row.tokens_saved) == (3, 310)
    assert row.cost_saved == pytest.approx(0.5) and row.latency_saved_ms == pytest.approx(900.0)
    assert row.last_hit_at == T0 + dt.timedelta(seconds=5)
    assert store.report_wrong(entry_id) == 1
    assert store.report_wrong(entry_id) == 2
    with pytest.raises(KeyError):
        store.report_wrong(424242)


def test_iter_entries_in_id_order_and_update_embeddings(store: Store) -> None:
    ids = [store.add_entry(new_entry(f"q{i}", doc_keys=[f"d{i}"])) for i in range(7)]
    batches = list(store.iter_entries(batch_size=3))
    assert [len(b) for b in batches] == [3, 3, 1]
    assert [r.id for b in batches for r in b] == ids
    assert [r.doc_keys for b in batches for r in b] == [(f"d{i}",) for i in range(7)]
    vec = np.full(8, 0.5, dtype=np.float32)
    assert store.update_embeddings({ids[0]: (vec, None), 99999: (vec, None)}, embedder="new@2") == 1
    row = store.get_entry(ids[0])
    assert row is not None and row.embedder == "new@2" and row.embedding.tolist() == [0.5] * 8


def test_stats_upsert_and_summary(store: Store) -> None:
    day = dt.date(2026, 1, 1)
    store.bump_stats("acme", "factual", lookups=2, exact_hits=1, misses=1, day=day)
    store.bump_stats(
        "acme",
        "factual",
        lookups=1,
        semantic_hits=1,
        tokens_saved=50,
        cost_saved=0.25,
        latency_saved_ms=400.0,
        day=day,
    )
    store.bump_stats("acme", "code", lookups=1, misses=1, stores=1, day=day + dt.timedelta(1))
    store.bump_stats("other", "factual", lookups=4, misses=4, day=day)
    acme = store.stats_summary("acme")
    assert acme["totals"]["lookups"] == 4
    assert acme["totals"]["exact_hits"] == 1 and acme["totals"]["semantic_hits"] == 1
    assert acme["totals"]["hit_rate"] == pytest.approx(0.5)
    assert acme["totals"]["cost_saved"] == pytest.approx(0.25)
    assert acme["by_category"]["factual"]["lookups"] == 3
    assert acme["by_category"]["code"]["stores"] == 1
    assert list(acme["by_day"]) == ["2026-01-01", "2026-01-02"]
    assert store.stats_summary()["totals"]["lookups"] == 8
    assert store.stats_summary("nobody")["totals"]["hit_rate"] == 0.0
    with pytest.raises(ValueError):
        store.bump_stats("acme", "factual", lookups=-1)


def test_policy_overrides(store: Store) -> None:
    assert store.get_policy_overrides() == {}
    assert store.set_policy_override("code", threshold=0.97) == {"threshold": 0.97}
    merged = store.set_policy_override("code", ttl_seconds=None, enabled=False, updated_by="alice")
    assert merged == {"threshold": 0.97, "ttl_seconds": None, "enabled": False}
    store.set_policy_override("time_sensitive", ttl_seconds=300, max_entries=1000)
    overrides = store.get_policy_overrides()
    assert overrides == {
        "code": {"threshold": 0.97, "ttl_seconds": None, "enabled": False},
        "time_sensitive": {"ttl_seconds": 300, "max_entries": 1000},
    }
    meta = store.get_policy_overrides(with_meta=True)["code"]
    assert meta["updated_by"] == "alice" and meta["updated_at"].tzinfo is not None
    assert store.delete_policy_override("code") is True
    assert store.delete_policy_override("code") is False
    assert list(store.get_policy_overrides()) == ["time_sensitive"]
    for bad in ({"threshold": 1.5}, {"ttl_seconds": 0}, {"enabled": "yes"}, {"colour": "red"}, {}):
        with pytest.raises(ValueError):
            store.set_policy_override("code", **bad)


def test_meta(store: Store) -> None:
    assert store.get_meta("embedder") is None
    assert store.get_meta("embedder", "none") == "none"
    store.set_meta("embedder", "minilm@1")
    store.set_meta("embedder", "minilm@2")
    assert store.get_meta("embedder") == "minilm@2"


def test_failed_add_leaves_nothing_behind(db_url: str) -> None:
    with Store(db_url) as store:
        with pytest.raises(ValueError, match="JSON"):
            store.add_entry(new_entry(response={"bad": object()}))
        assert store.count_entries() == 0

    # A failure after the entry row was written (while writing its document links)
    # must roll the entry back too.
    engine = make_engine(db_url)

    def fail_on_links(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "INSERT INTO entry_documents" in statement:
            raise RuntimeError("injected failure while linking documents")

    try:
        with Store(engine) as store:
            event.listen(engine, "before_cursor_execute", fail_on_links)
            with pytest.raises(RuntimeError, match="injected"):
                store.add_entry(new_entry(doc_keys=["doc"]))
            event.remove(engine, "before_cursor_execute", fail_on_links)
            assert store.count_entries() == 0
            with engine.connect() as conn:
                assert conn.execute(text("SELECT count(*) FROM entry_documents")).scalar() == 0
            assert store.add_entry(new_entry(doc_keys=["doc"])) > 0
    finally:
        engine.dispose()


def test_concurrent_writers(db_url: str) -> None:
    threads, per_thread = 4, 50
    errors: list[BaseException] = []
    ids: list[list[int]] = [[] for _ in range(threads)]
    with Store(db_url) as store:

        def writer(n: int) -> None:
            try:
                for i in range(per_thread):
                    ids[n].append(store.add_entry(new_entry(f"t{n} q{i}", doc_keys=[f"d{n}"])))
                    if i % 10 == 0:
                        store.bump_stats("acme", "factual", stores=1)
            except BaseException as exc:  # collected and re-raised by the test
                errors.append(exc)

        workers = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert errors == []
        flat = [i for chunk in ids for i in chunk]
        assert len(set(flat)) == threads * per_thread
        assert store.all_ids() == set(flat)
        assert store.stats_summary()["totals"]["stores"] == threads * (per_thread // 10)


WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    from semcache.storage.store import NewEntry, Store

    store = Store(sys.argv[1])
    i = 0
    while True:
        i += 1
        entry_id = store.add_entry(NewEntry(
            partition="p", exact_key=f"k{i}", tenant="t", model="m", params_hash="",
            category="factual", prompt=f"question {i}", prompt_norm=f"question {i}",
            prompt_hash=f"h{i}", context_hash="c", response={"n": i},
            embedding=np.full(16, i, dtype=np.float32), embedder="fake@1",
            doc_keys=[f"doc{i % 7}"],
        ))
        print(entry_id, flush=True)
""")


def test_kill_9_during_stores_loses_no_committed_entry(db_url: str) -> None:
    Store(db_url).close()  # migrate first, so the writer spends its second writing
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, db_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()  # the writer is up and committing
    assert first.strip().isdigit(), proc.stderr.read() if proc.stderr else first
    time.sleep(1.0)
    os.kill(proc.pid, signal.SIGKILL)
    rest, _ = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    lines = (first + rest).split("\n")
    printed = [int(line) for line in lines[:-1]]  # the last piece may be a torn line
    assert len(printed) > 1
    with Store(db_url) as store:
        assert set(printed) <= store.all_ids()
        for entry_id in (printed[0], printed[-1]):
            row = store.get_entry(entry_id)
            assert row is not None and row.response == {"n": int(row.prompt.split()[-1])}
        with store.engine.connect() as conn:
            if store.engine.dialect.name == "sqlite":
                assert conn.execute(text("PRAGMA integrity_check")).scalar() == "ok"
            orphans = conn.execute(
                text(
                    "SELECT count(*) FROM entry_documents d "
                    "LEFT JOIN entries e ON e.id = d.entry_id WHERE e.id IS NULL"
                )
            ).scalar()
            assert orphans == 0
        assert store.add_entry(new_entry("after the crash")) > max(printed)
