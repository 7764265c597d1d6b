"""The admin pages in real headless Chromium (Debian's /usr/bin/chromium) through Playwright.

Logs in with a token, searches an entry, invalidates with a dry run first,
edits a policy and checks that the live cache uses the new threshold, and
checks that HTML in a cached prompt is shown as text. Screenshots of every
page go to docs/admin/ and test-artifacts/admin/.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from semcache.adapters.admin import create_admin_app

from semcache.storage.store import HitDelta
from semcache.types import CacheRequest, Scope

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[4]
CHROMIUM = Path("/usr/bin/chromium")
SHOTS = (REPO / "docs" / "admin", REPO / "test-artifacts" / "admin")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
ADMIN = "browser-admin-token-0123456789"
SCOPE = Scope.of(tenant="acme", model="llama-3-8b", params={"temperature": 0})
XSS = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2"> what is <b>bold</b>?'
PRICES = {"llama-3-8b": 0.0006}


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        pytest.fail(f"browser tests must run in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _seed(cache: Any) -> dict[str, int]:
    ids = {
        "france": cache.store(CacheRequest("What is the capital city of France?", SCOPE, category="factual"),
                              {"choices": [{"message": {"content": "Paris."}}]}, tokens=40),
        "egg": cache.store(CacheRequest("How long should I boil an egg for a soft yolk?", SCOPE, category="howto"),
                           {"choices": [{"message": {"content": "About six minutes."}}]}, tokens=60),
        "xss": cache.store(CacheRequest(XSS, Scope.of(tenant="globex", model="llama-3-8b"), category="other"),
                           {"choices": [{"message": {"content": "<i>answer</i> & <script>alert(1)</script>"}}]}),
    }
    for i, topic in enumerate(["sort a dict by value in Python", "read a CSV file with pandas",
                               "reverse a string in Rust", "merge two git branches"]):
        cache.store(CacheRequest(f"How do I {topic}?", SCOPE, category="code"),
                    {"choices": [{"message": {"content": f"Answer {i}."}}]}, tokens=120)
    today = dt.datetime.now(dt.UTC).date()
    for back in range(14):  # two weeks of statistics for the dashboard charts
        lookups = 200 + 15 * back
        hits = int(lookups * (0.25 + 0.02 * (13 - back)))
        cache.db.bump_stats("acme", "code", lookups=lookups, semantic_hits=hits, exact_hits=hits // 4,
                            misses=lookups - hits - hits // 4, tokens_saved=hits * 150,
                            cost_saved=hits * 150 * PRICES["llama-3-8b"] / 1000, latency_saved_ms=hits * 900.0,
                            day=today - dt.timedelta(days=back))
    cache.db.record_hits({ids["egg"]: HitDelta(count=7, tokens_saved=420, latency_saved_ms=6300.0)})
    return ids


@pytest.fixture
def served(make_cache: Any) -> Iterator[tuple[str, Any, dict[str, int]]]:
    """The admin on a live cache, served by uvicorn on a free 127.0.0.1 port."""
    import uvicorn
    from semcache.adapters.admin.pricing import PriceTable

    cache = make_cache()
    ids = _seed(cache)
    app = create_admin_app("unused://", {ADMIN: "admin"}, cache=cache, prices=PriceTable(PRICES))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the admin server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", cache, ids
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture
def page() -> Iterator[Any]:
    if not CHROMIUM.is_file():
        _unavailable(f"{CHROMIUM} is not installed (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install playwright)")
    for folder in SHOTS:
        folder.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1280, "height": 860})
        tab = context.new_page()
        errors: list[str] = []
        tab.on("pageerror", lambda exc: errors.append(str(exc)))
        try:
            yield tab
        finally:
            context.close()
            browser.close()
        assert errors == []


def shot(tab: Any, name: str) -> None:
    first = SHOTS[0] / f"{name}.png"
    tab.screenshot(path=str(first), full_page=True)
    for folder in SHOTS[1:]:
        shutil.copyfile(first, folder / f"{name}.png")


def test_admin_pages_in_chromium(served: tuple[str, Any, dict[str, int]], page: Any) -> None:
    base, cache, ids = served
    tab = page

    # Log in with a token.
    response = tab.goto(f"{base}/admin")
    assert response.status == 401 and tab.locator("h1").inner_text() == "Sign in"
    shot(tab, "login")
    tab.fill("input[name=token]", "not-the-token-at-all")
    tab.click("button[type=submit]")
    assert "not valid" in tab.locator(".flash.err").inner_text()
    tab.fill("input[name=token]", ADMIN)
    tab.click("button[type=submit]")
    tab.wait_for_url(f"{base}/admin")
    assert tab.locator(".kpi").count() == 6 and tab.locator(".chart rect").count() == 28
    shot(tab, "dashboard")

    # Search for an entry and open it.
    tab.click("nav >> text=Entries")
    shot(tab, "entries")
    tab.fill("input[name=text]", "boil an egg")
    tab.click("form.filters button[type=submit]")
    rows = tab.locator("table.entries tbody tr")
    assert rows.count() == 1 and "soft yolk" in rows.first.inner_text()
    rows.first.locator("td.prompt a").click()
    assert tab.locator("#hits").inner_text().startswith("7")
    tab.fill("input[name=question]", "How long should I boil an egg for a hard yolk?")
    tab.click("form.inline button[type=submit]")
    assert tab.locator("#verdict").count() == 1
    shot(tab, "entry")

    # HTML in a cached prompt and answer is shown as text, never run.
    tab.goto(f"{base}/admin/entries?tenant=globex")
    assert "<script>" in tab.locator("table.entries td.prompt").inner_text()
    tab.goto(f"{base}/admin/entries/{ids['xss']}")
    assert tab.locator("#prompt").inner_text() == XSS
    assert "<script>alert(1)</script>" in tab.locator("#answer").inner_text()
    assert tab.evaluate("window.__xss") is None
    assert tab.locator("main script, main img, main b, main i").count() == 0
    shot(tab, "entry_xss")

    # Invalidate with a dry run first, then for real.
    tab.click("nav >> text=Invalidate")
    tab.fill("input[name=text]", "boil")
    tab.click("button[value=dry_run]")
    assert "1 entries would be deleted" in tab.locator("#result h2").inner_text()
    assert cache.db.get_entry(ids["egg"]) is not None
    shot(tab, "invalidate")
    tab.click("button[value=delete]")
    assert "Deleted 1 entries" in tab.locator("#result h2").inner_text()
    assert cache.db.get_entry(ids["egg"]) is None and ids["egg"] not in cache.mirror

    # Edit a policy and see the cache use the new threshold.
    ask = CacheRequest("Which city is the capital of France?", SCOPE, category="factual")
    hit = cache.lookup_detailed(ask).hit
    assert hit is not None and hit.similarity < cache.policy("factual").max_threshold
    raised = round(min(cache.policy("factual").max_threshold, hit.similarity + 0.005), 3)
    tab.click("nav >> text=Policies")
    tab.fill("#policy-factual input[name=threshold]", f"{raised}")
    tab.click("#policy-factual button[type=submit]")
    assert "Policy of factual saved" in tab.locator(".flash.ok").inner_text()
    assert cache.policy("factual").threshold == raised
    assert cache.db.get_policy_overrides()["factual"] == {"threshold": raised}  # only what changed
    assert cache.lookup_detailed(ask).hit is None
    shot(tab, "policies")

    # Tenants and keys: a new key is shown once.
    tab.click("nav >> text=Tenants")
    tab.fill("input[name=name]", "initech")
    tab.click("form.filters button[type=submit]")
    tab.locator("section.card", has_text="initech").locator("button", has_text="Issue key").click()
    assert tab.locator("#new-key code").inner_text().startswith("sk-sc-")
    shot(tab, "tenants")

    # Everything above is in the audit log.
    tab.click("nav >> text=Audit log")
    actions = tab.locator("tbody td:nth-child(3)").all_inner_texts()
    for action in ("invalidate.dry_run", "invalidate", "policy.set", "tenant.create", "key.issue"):
        assert action in actions
    assert ADMIN not in tab.content()
    shot(tab, "audit")
