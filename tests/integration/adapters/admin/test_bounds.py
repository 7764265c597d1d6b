"""Outside-in findings on the admin: out-of-range numbers are a 400, never a 500, and a value
already in the database (a retention of 10**12 days) cannot break an operation later."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from semcache.adapters.admin import create_admin_app
from semcache.adapters.server.tenant_tables import Tenant
from sqlalchemy import insert
from typer.testing import CliRunner

from semcache.cli import app as semcache_cli
from semcache.storage.schema import utcnow
from semcache.storage.store import Store

pytestmark = pytest.mark.integration

ADMIN = "admin-token-0123456789abcdef"
AS_ADMIN = {"authorization": f"Bearer {ADMIN}"}
HUGE = 10**20


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    with TestClient(create_admin_app(db_url, {ADMIN: "admin"}), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.mark.parametrize(("method", "path", "body"), [
    ("GET", f"/admin/api/entries/{HUGE}", None),
    ("DELETE", f"/admin/api/entries/{HUGE}", None),
    ("POST", f"/admin/api/entries/{HUGE}/wrong", None),
    ("POST", f"/admin/api/entries/{HUGE}/check", {"question": "Is it?"}),
    ("POST", f"/admin/api/keys/{HUGE}/revoke", None),
    ("POST", f"/admin/api/keys/{HUGE}/rotate", None),
    ("GET", f"/admin/api/entries?offset={HUGE}", None),
    ("GET", f"/admin/api/audit?offset={HUGE}", None),
    ("GET", "/admin/api/entries?older_than_s=inf", None),
    ("GET", "/admin/api/entries?newer_than_s=1e308", None),
    ("POST", "/admin/api/invalidate", {"older_than_s": 1e308, "dry_run": True}),
    ("POST", "/admin/api/invalidate", {"ids": [HUGE], "dry_run": True}),
    ("POST", "/admin/api/tenants", {"name": "acme", "retention_days": 10**12}),
    ("PUT", "/admin/api/policies/code", {"ttl_seconds": HUGE}),
    ("POST", "/admin/api/entries/1/check", {"question": "   "}),
])
def test_out_of_range_numbers_and_blank_questions_are_a_400(client: TestClient, method: str, path: str,
                                                           body: dict[str, object] | None) -> None:
    response = client.request(method, path, json=body, headers=AS_ADMIN)
    assert response.status_code == 400, (path, response.status_code, response.text[:200])
    assert response.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("path", [
    f"/admin/entries?page={HUGE}", f"/admin/audit?page={HUGE}", "/admin/entries?older_than_h=1e308",
    "/admin/entries?newer_than_h=inf", f"/admin/entries/{HUGE}",
])
def test_pages_survive_huge_pages_and_ages(client: TestClient, path: str) -> None:
    response = client.get(path, headers=AS_ADMIN)
    assert response.status_code in (200, 400, 404), (path, response.status_code)


def test_a_retention_already_in_the_database_cannot_break_retention_later(db_url: str, client: TestClient) -> None:
    days = 10**12 if db_url.startswith("sqlite") else 2**31 - 1  # the largest each column holds
    with Store(db_url) as store, store.engine.begin() as conn:  # written past the API's bounds
        conn.execute(insert(Tenant.__table__).values(name="poisoned", retention_days=days,  # type: ignore[arg-type]
                                                     created_at=utcnow()))
    applied = client.post("/admin/api/retention/apply", headers=AS_ADMIN)
    assert applied.status_code == 200 and applied.json() == {"poisoned": 0}
    result = CliRunner().invoke(semcache_cli, ["admin", "retention", "--db", db_url])
    assert result.exit_code == 0, result.output


def test_admin_pages_and_api_send_security_headers(client: TestClient) -> None:
    for path in ("/admin/login", "/admin/api/stats"):
        response = client.get(path, headers=AS_ADMIN)
        assert "default-src 'none'" in response.headers["content-security-policy"]
        assert response.headers["x-frame-options"] == "DENY"


def test_entry_page_shows_each_earlier_turn_with_its_role(client: TestClient, db_url: str) -> None:
    from semcache import CacheRequest, Scope, SemanticCache

    cache = SemanticCache(db_url)
    try:
        history = ("My Streamly plan renews tomorrow",
                   {"role": "assistant", "content": "Shall I cancel it <before> then?"})
        entry_id = cache.store(CacheRequest("yes please", Scope.of(tenant="acme"), history=history),
                               {"answer": "Cancelled."})
    finally:
        cache.close()
    page = client.get(f"/admin/entries/{entry_id}", headers=AS_ADMIN)
    assert page.status_code == 200
    assert "<b>user</b>: My Streamly plan renews tomorrow" in page.text
    assert "<b>assistant</b>: Shall I cancel it &lt;before&gt; then?" in page.text
    assert "{&#39;role&#39;" not in page.text and "'role'" not in page.text
