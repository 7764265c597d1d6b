"""The admin REST API on real databases: auth, search, invalidation, policies, keys, statistics, CLI."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from semcache.adapters.admin import PriceTable, api, create_admin_app, pages, pages_ops
from semcache.adapters.admin.watch import PolicyWatcher
from semcache.adapters.server.keys import KeyStore
from typer.testing import CliRunner

from semcache.cli import app as semcache_cli
from semcache.storage.store import HitDelta, NewEntry, Store
from semcache.types import CacheRequest, Scope

pytestmark = pytest.mark.integration

ADMIN = "admin-token-0123456789abcdef"
VIEWER = "viewer-token-0123456789abcdef"
AS_ADMIN = {"authorization": f"Bearer {ADMIN}"}
AS_VIEWER = {"authorization": f"Bearer {VIEWER}"}
TOKENS = {ADMIN: "admin", VIEWER: "viewer"}
PUBLIC = {"/admin/login", "/admin/logout", "/admin/static/admin.css", "/admin/static/admin.js"}
INJECTIONS = ["' OR '1'='1", "'; DROP TABLE entries; --", "%", "_", "\\", "\" OR 1=1 --",
              "1) UNION SELECT key, value FROM meta --", "%' --"]
SCOPE = Scope.of(tenant="acme", model="m", params={"temperature": 0})


def _entry(i: int, tenant: str = "acme", category: str = "factual", model: str = "gpt-x",
           prompt: str | None = None, created: dt.datetime | None = None) -> NewEntry:
    vector = np.random.default_rng(i).standard_normal(8).astype(np.float32)
    text = prompt or f"question number {i} about topic {i % 3}"
    return NewEntry(partition=f"p-{tenant}", exact_key=f"k{i}", tenant=tenant, model=model, params_hash="",
                    category=category, prompt=text, prompt_norm=text.lower(), prompt_hash=f"h{i}",
                    context_hash="", response={"choices": [{"message": {"content": f"answer {i}"}}]},
                    embedding=vector, embedder="test@1", created_at=created, tokens=100, cost=0.002)


@pytest.fixture
def store_app(db_url: str) -> Iterator[tuple[TestClient, Store]]:
    """A standalone admin (no live cache) on SQLite and PostgreSQL, with a few entries."""
    app = create_admin_app(db_url, TOKENS, prices=PriceTable({"gpt-x": 0.5}, default=0.1))
    with TestClient(app) as client:
        store = Store(db_url)
        old = dt.datetime.now(dt.UTC) - dt.timedelta(days=3)
        for i in range(6):
            store.add_entry(_entry(i, tenant="acme" if i < 4 else "globex", created=old if i == 0 else None))
        store.add_entry(_entry(99, prompt="50% off: the 'best' deal_ever"))
        yield client, store
        store.close()


def _paths() -> list[tuple[str, str]]:
    """Every admin route (method, path with its parameters filled in)."""
    fill = {"{entry_id}": "1", "{category}": "code", "{tenant}": "acme", "{key_id}": "1"}
    out = []
    for route in [*api.router.routes, *pages.router.routes, *pages_ops.router.routes]:
        if isinstance(route, APIRoute) and route.path.startswith("/admin") and route.path not in PUBLIC:
            path = route.path
            for k, v in fill.items():
                path = path.replace(k, v)
            out += [(method, path) for method in sorted(route.methods)]
    return out


def test_every_admin_route_needs_a_token(store_app: tuple[TestClient, Store]) -> None:
    client, _ = store_app
    routes = _paths()
    assert len(routes) >= 30  # the API and the pages
    for method, path in routes:
        for headers in ({}, {"authorization": "Bearer wrong-token-0123456789"}, {"cookie": "semcache_admin=nope"}):
            response = client.request(method, path, headers=headers)
            assert response.status_code == 401, (method, path, headers, response.text[:200])


def test_viewer_may_read_but_not_write(store_app: tuple[TestClient, Store]) -> None:
    client, store = store_app
    before = store.count_entries()
    writes = [(m, p) for m, p in _paths() if m != "GET" and not p.endswith("/check")]
    assert len(writes) >= 15
    for method, path in writes:
        response = client.request(method, path, headers=AS_VIEWER, json={}, data=None)
        assert response.status_code == 403, (method, path, response.text[:200])
    assert store.count_entries() == before
    assert client.get("/admin/api/entries", headers=AS_VIEWER).status_code == 200
    assert client.get("/admin/policies", headers=AS_VIEWER).status_code == 200


def test_search_filters_and_paging(store_app: tuple[TestClient, Store]) -> None:
    client, _ = store_app
    body = client.get("/admin/api/entries", params={"tenant": "globex"}, headers=AS_ADMIN).json()
    assert body["total"] == 2 and {e["tenant"] for e in body["entries"]} == {"globex"}
    body = client.get("/admin/api/entries", params={"text": "TOPIC 1"}, headers=AS_ADMIN).json()
    assert sorted(e["prompt"] for e in body["entries"]) == ["question number 1 about topic 1",
                                                             "question number 4 about topic 1"]
    old = client.get("/admin/api/entries", params={"older_than_s": 86400}, headers=AS_ADMIN).json()
    assert [e["prompt"] for e in old["entries"]] == ["question number 0 about topic 0"]
    new = client.get("/admin/api/entries", params={"newer_than_s": 86400}, headers=AS_ADMIN).json()
    assert new["total"] == 6
    page1 = client.get("/admin/api/entries", params={"limit": 3}, headers=AS_ADMIN).json()
    page2 = client.get("/admin/api/entries", params={"limit": 3, "offset": 3}, headers=AS_ADMIN).json()
    ids = [e["id"] for e in page1["entries"] + page2["entries"]]
    assert page1["total"] == 7 and len(set(ids)) == 6 and ids == sorted(ids, reverse=True)
    assert client.get("/admin/api/entries", params={"limit": 0}, headers=AS_ADMIN).status_code == 400


def test_sql_injection_strings_are_plain_text(store_app: tuple[TestClient, Store]) -> None:
    client, store = store_app
    for evil in INJECTIONS:
        for field in ("text", "tenant", "category", "model"):
            response = client.get("/admin/api/entries", params={field: evil}, headers=AS_ADMIN)
            assert response.status_code == 200, (field, evil)
            found = [e["prompt"] for e in response.json()["entries"]]
            if field == "text":
                assert all(evil.lower() in p.lower() for p in found), (evil, found)
            else:
                assert found == []
        dry = client.post("/admin/api/invalidate", json={"text": evil, "dry_run": True}, headers=AS_ADMIN)
        assert dry.status_code == 200
        page = client.get("/admin/entries", params={"text": evil}, headers=AS_ADMIN)
        assert page.status_code == 200
    # Wildcards match only themselves: "%" and "_" find the one prompt that contains them.
    literal = client.get("/admin/api/entries", params={"text": "%"}, headers=AS_ADMIN).json()
    assert [e["prompt"] for e in literal["entries"]] == ["50% off: the 'best' deal_ever"]
    assert store.count_entries() == 7


def test_dry_run_then_invalidate_is_audited(store_app: tuple[TestClient, Store]) -> None:
    client, store = store_app
    dry = client.post("/admin/api/invalidate", json={"tenant": "acme", "text": "topic 1", "dry_run": True},
                      headers=AS_ADMIN).json()
    assert dry["dry_run"] and dry["count"] == 1
    assert store.count_entries() == 7
    done = client.post("/admin/api/invalidate", json={"tenant": "acme", "text": "topic 1"},
                       headers=AS_ADMIN).json()
    assert done["ids"] == dry["ids"] and store.get_entry(dry["ids"][0]) is None
    assert store.count_entries() == 6
    by_id = client.post("/admin/api/invalidate", json={"ids": [dry["ids"][0], 10_000]}, headers=AS_ADMIN)
    assert by_id.json()["count"] == 0
    assert client.post("/admin/api/invalidate", json={}, headers=AS_ADMIN).status_code == 400
    audit = client.get("/admin/api/audit", headers=AS_ADMIN).json()["records"]
    actions = [(r["action"], r["count"]) for r in audit]
    assert actions[:3] == [("invalidate", 0), ("invalidate", 1), ("invalidate.dry_run", 1)]
    assert audit[1]["actor"].startswith("admin:") and ADMIN not in json.dumps(audit)
    assert audit[1]["detail"]["filters"] == {"tenant": "acme", "text": "topic 1"}


def test_delete_show_and_report_wrong(store_app: tuple[TestClient, Store]) -> None:
    client, store = store_app
    entry_id = client.get("/admin/api/entries", headers=AS_ADMIN).json()["entries"][-1]["id"]
    store.record_hits({entry_id: HitDelta(count=3, tokens_saved=300)})
    shown = client.get(f"/admin/api/entries/{entry_id}", headers=AS_ADMIN).json()
    assert shown["hit_count"] == 3 and shown["answer"].startswith("answer ") and "embedding" not in shown
    assert client.post(f"/admin/api/entries/{entry_id}/wrong", headers=AS_ADMIN).json()["wrong_reports"] == 1
    assert store.get_entry(entry_id).wrong_reports == 1  # type: ignore[union-attr]
    assert client.delete(f"/admin/api/entries/{entry_id}", headers=AS_ADMIN).status_code == 200
    assert client.get(f"/admin/api/entries/{entry_id}", headers=AS_ADMIN).status_code == 404
    assert client.delete(f"/admin/api/entries/{entry_id}", headers=AS_ADMIN).status_code == 404


def test_policy_edit_is_validated_persisted_and_audited(store_app: tuple[TestClient, Store]) -> None:
    client, store = store_app
    response = client.put("/admin/api/policies/code", json={"threshold": 0.95, "ttl_seconds": 3600},
                          headers=AS_ADMIN)
    assert response.status_code == 200
    assert response.json()["threshold"] == 0.95 and response.json()["ttl_seconds"] == 3600
    assert store.get_policy_overrides()["code"] == {"threshold": 0.95, "ttl_seconds": 3600}
    # 0.5 is below the category's min_threshold; a null TTL override would be ignored by the merge.
    for bad in ({"threshold": 1.5}, {"threshold": 0.5}, {"max_entries": 0}, {"ttl_seconds": None}):
        assert client.put("/admin/api/policies/code", json=bad, headers=AS_ADMIN).status_code == 400
    assert client.put("/admin/api/policies/nope", json={"threshold": 0.9}, headers=AS_ADMIN).status_code == 400
    record = client.get("/admin/api/audit", params={"action": "policy.set"}, headers=AS_ADMIN).json()
    assert record["total"] == 1 and record["records"][0]["detail"]["threshold"]["new"] == 0.95
    reset = client.delete("/admin/api/policies/code", headers=AS_ADMIN).json()
    assert reset["reset"] and "code" not in store.get_policy_overrides()


def test_tenants_and_keys(store_app: tuple[TestClient, Store]) -> None:
    client, store = store_app
    assert client.post("/admin/api/tenants", json={"name": "initech", "retention_days": 30},
                       headers=AS_ADMIN).status_code == 201
    assert client.post("/admin/api/tenants", json={"name": "initech"}, headers=AS_ADMIN).status_code == 409
    key = client.post("/admin/api/tenants/initech/keys", json={}, headers=AS_ADMIN).json()["key"]
    keys = KeyStore(store.engine, ttl_s=0)
    assert keys.resolve(key).tenant == "initech"  # type: ignore[union-attr]
    listed = client.get("/admin/api/tenants", headers=AS_ADMIN).json()
    (tenant,) = [t for t in listed if t["name"] == "initech"]
    assert tenant["retention_days"] == 30 and key not in json.dumps(listed)
    key_id = tenant["keys"][0]["id"]
    rotated = client.post(f"/admin/api/keys/{key_id}/rotate", headers=AS_ADMIN).json()["key"]
    assert keys.resolve(key) is None and keys.resolve(rotated).tenant == "initech"  # type: ignore[union-attr]
    assert client.post(f"/admin/api/keys/{key_id}/revoke", headers=AS_ADMIN).status_code == 409
    new_id = max(k["id"] for t in client.get("/admin/api/tenants", headers=AS_ADMIN).json() for k in t["keys"])
    assert client.post(f"/admin/api/keys/{new_id}/revoke", headers=AS_ADMIN).status_code == 200
    assert keys.resolve(rotated) is None
    assert client.post("/admin/api/tenants/nobody/keys", json={}, headers=AS_ADMIN).status_code == 404


def test_stats_price_savings_and_erasure(store_app: tuple[TestClient, Store]) -> None:
    client, store = store_app
    day = dt.date(2026, 1, 2)
    store.bump_stats("acme", "factual", lookups=10, semantic_hits=4, misses=6, tokens_saved=400, day=day)
    store.bump_stats("globex", "code", lookups=5, exact_hits=5, tokens_saved=50, day=day)
    ids = [e["id"] for e in client.get("/admin/api/entries", headers=AS_ADMIN).json()["entries"]]
    store.record_hits({ids[0]: HitDelta(count=2, tokens_saved=2000)})
    stats = client.get("/admin/api/stats", headers=AS_ADMIN).json()
    assert stats["totals"]["lookups"] == 15 and stats["totals"]["hit_rate"] == pytest.approx(9 / 15)
    assert stats["by_tenant"]["acme"]["hit_rate"] == pytest.approx(0.4)
    assert stats["by_day"]["2026-01-02"]["lookups"] == 15
    (gpt,) = stats["by_model"]
    assert gpt["tokens_saved"] == 2000 and gpt["priced_cost_saved"] == pytest.approx(1.0)  # 2K tokens at 0.5/1K
    erased = client.post("/admin/api/tenants/globex/erase", headers=AS_ADMIN).json()
    assert erased == {"entries": 2, "stats_rows": 1}
    assert store.count_entries(tenant="globex") == 0
    assert "globex" not in client.get("/admin/api/stats", headers=AS_ADMIN).json()["by_tenant"]


def test_cli_invalidate_export_import_and_policies(store_app: tuple[TestClient, Store], db_url: str,
                                                   tmp_path: Any) -> None:
    _, store = store_app
    run = CliRunner()

    def cli(*args: str) -> str:
        result = run.invoke(semcache_cli, ["admin", *args, "--db", db_url] if args[0] != "policies"
                            else ["admin", *args, "--db", db_url])
        assert result.exit_code == 0, result.output
        return result.output

    dry = json.loads(cli("invalidate", "--tenant", "globex", "--dry-run"))
    assert dry["count"] == 2 and store.count_entries() == 7
    out = tmp_path / "entries.jsonl"
    assert "exported 7 entries" in cli("export", "--out", str(out))
    original = next(r for batch in store.iter_entries() for r in batch if r.tenant == "globex")
    assert json.loads(cli("invalidate", "--tenant", "globex"))["count"] == 2
    assert "imported 7 entries" in cli("import", str(out))
    assert store.count_entries() == 12 and store.count_entries(tenant="globex") == 2
    copy = [r for batch in store.iter_entries() for r in batch if r.prompt == original.prompt][-1]
    assert copy.id != original.id and copy.response == original.response
    assert copy.created_at == original.created_at and copy.partition == original.partition
    assert np.array_equal(copy.embedding, original.embedding)
    assert json.loads(cli("policies", "set", "math", "--threshold", "0.97"))["math"]["threshold"] == 0.97
    assert json.loads(cli("policies", "get", "math"))["math"]["overridden"] == ["threshold"]
    bad = run.invoke(semcache_cli, ["admin", "policies", "set", "math", "--threshold", "2", "--db", db_url])
    assert bad.exit_code == 2 and "threshold" in bad.output


# -- with a live cache: changes reach the running cache -----------------------------------------------

PARAPHRASE = ("What is the capital city of France?", "Which city is the capital of France?")


@pytest.fixture
def cache_app(make_cache: Any) -> Iterator[tuple[TestClient, Any]]:
    cache = make_cache()
    with TestClient(create_admin_app("unused://", TOKENS, cache=cache)) as client:
        yield client, cache


def test_policy_edit_changes_the_threshold_the_cache_uses(cache_app: tuple[TestClient, Any]) -> None:
    client, cache = cache_app
    cache.store(CacheRequest(PARAPHRASE[0], SCOPE, category="factual"), {"a": "Paris"})
    ask = CacheRequest(PARAPHRASE[1], SCOPE, category="factual")
    hit = cache.lookup_detailed(ask)
    assert hit.hit is not None and hit.hit.match == "semantic"
    policy = cache.policy("factual")
    assert hit.hit.similarity < policy.max_threshold  # a threshold between them exists
    raised = round(min(policy.max_threshold, hit.hit.similarity + 0.005), 3)
    response = client.put("/admin/api/policies/factual", json={"threshold": raised}, headers=AS_ADMIN)
    assert response.status_code == 200
    assert cache.policy("factual").threshold == raised
    missed = cache.lookup_detailed(ask)
    assert missed.hit is None and missed.threshold == pytest.approx(raised)


def test_invalidation_and_wrong_reports_reach_the_live_cache(cache_app: tuple[TestClient, Any]) -> None:
    client, cache = cache_app
    entry_id = cache.store(CacheRequest(PARAPHRASE[0], SCOPE, category="factual"), {"a": "Paris"})
    ask = CacheRequest(PARAPHRASE[1], SCOPE, category="factual")
    assert cache.lookup(ask) is not None
    dry = client.post("/admin/api/invalidate", json={"text": "capital", "dry_run": True}, headers=AS_ADMIN).json()
    assert dry["ids"] == [entry_id] and cache.lookup(ask) is not None
    report = client.post(f"/admin/api/entries/{entry_id}/wrong", headers=AS_ADMIN).json()
    assert report["wrong_reports"] == 1
    check = client.post(f"/admin/api/entries/{entry_id}/check",
                        json={"question": "What is the capital city of Germany?"}, headers=AS_ADMIN).json()
    assert check["accepted"] is False and check["reason"] and check["similarity"] > 0.5
    client.post("/admin/api/invalidate", json={"text": "capital"}, headers=AS_ADMIN)
    assert cache.lookup(ask) is None and entry_id not in cache.mirror


def test_policy_watcher_reloads_a_cache_in_another_process(make_cache: Any, tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    cache = make_cache(url)
    watcher = PolicyWatcher(cache, interval_s=60)
    assert watcher.check() is False  # first poll: remembers the current overrides
    other = TestClient(create_admin_app(url, TOKENS))  # a second admin on the same database
    assert other.put("/admin/api/policies/howto", json={"threshold": 0.97}, headers=AS_ADMIN).status_code == 200
    assert cache.policy("howto").threshold != 0.97
    assert watcher.check() is True and cache.policy("howto").threshold == 0.97
    assert watcher.check() is False


def test_retention_deletes_only_entries_past_their_tenants_period(store_app: tuple[TestClient, Store]) -> None:
    client, store = store_app
    client.post("/admin/api/tenants", json={"name": "acme", "retention_days": 1}, headers=AS_ADMIN)
    client.post("/admin/api/tenants", json={"name": "globex"}, headers=AS_ADMIN)
    assert client.post("/admin/api/retention/apply", headers=AS_ADMIN).json() == {"acme": 1}
    assert store.count_entries() == 6 and store.count_entries(text="question number 0 ") == 0


def test_page_deletion_removes_only_what_the_dry_run_listed(store_app: tuple[TestClient, Store]) -> None:
    client, store = store_app
    dry = client.post("/admin/invalidate", data={"tenant": "globex", "mode": "dry_run"}, headers=AS_ADMIN)
    assert dry.status_code == 200 and "2 entries would be deleted" in dry.text
    listed = client.post("/admin/api/invalidate", json={"tenant": "globex", "dry_run": True},
                         headers=AS_ADMIN).json()["ids"]
    late = store.add_entry(_entry(50, tenant="globex"))  # arrives after the dry run
    done = client.post("/admin/invalidate", headers=AS_ADMIN,
                       data={"tenant": "globex", "mode": "delete", "confirmed_ids": " ".join(map(str, listed))})
    assert done.status_code == 200 and "Deleted 2 entries" in done.text
    assert store.count_entries(tenant="globex") == 1 and store.get_entry(late) is not None
