"""Property: no two users share an entry through the proxy, and each user hits their own.

For generated pairs of distinct user strings (any Unicode text, empty included), an answer
stored for the first is not served to the second nor to a request without a user; the
positive controls show the same question does hit for the first user and for no-user.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from semcache.adapters.proxy import ProxySettings, create_app

from tests.fixtures.proxy import CHAT, chat_body
from tests.fixtures.upstream import FakeUpstream

pytestmark = pytest.mark.integration

USERS = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)  # surrogates are a 400
_counter = itertools.count()


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, minilm: Any) -> Iterator[TestClient]:
    from semcache.cache import SemanticCache

    cache = SemanticCache(f"sqlite:///{tmp_path_factory.mktemp('users') / 'c.db'}", embedder=minilm,
                          stats_interval=0)
    transport = httpx.ASGITransport(app=FakeUpstream().app)
    app = create_app(ProxySettings(upstream_url="http://upstream", load_poll_metrics=False), cache=cache,
                     transport=transport)
    with TestClient(app) as test_client:
        yield test_client
    cache.close()


def _ask(client: TestClient, question: str, user: str | None) -> str:
    body = chat_body(question) if user is None else chat_body(question, user=user)
    response = client.post(CHAT, json=body)
    assert response.status_code == 200, response.text
    return response.headers["x-semcache"]


@given(first=USERS, second=USERS)
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_two_users_share_an_entry(client: TestClient, first: str, second: str) -> None:
    if first == second:
        return
    question = f"What is the tallest mountain in range number {next(_counter)}?"
    assert _ask(client, question, first) == "miss"
    assert _ask(client, question, second) == "miss"  # another user: not served the first's answer
    assert _ask(client, question, first) == "hit"  # positive control: the owner hits
    anonymous = _ask(client, question, None)
    assert anonymous == ("hit" if second == "" or first == "" else "miss")
