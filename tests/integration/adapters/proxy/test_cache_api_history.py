"""The cache API's ``history``: role-tagged turns and the older list of strings (user turns);
and ``documents`` as a set."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures.conversations import ANNUAL, CANCEL, TOPIC
from tests.fixtures.proxy import proxy_client
from tests.fixtures.upstream import FakeUpstream

pytestmark = pytest.mark.integration

LOOKUP, STORE = "/semcache/v1/lookup", "/semcache/v1/store"
BASE = {"model": "m", "params": {"temperature": 0}}


async def test_role_tagged_history(make_cache: Any) -> None:
    async with proxy_client(make_cache(), FakeUpstream().app) as client:
        cancel = [{"role": "user", "content": TOPIC}, {"role": "assistant", "content": CANCEL}]
        annual = [cancel[0], {"role": "assistant", "content": ANNUAL}]
        stored = await client.post(STORE, json={**BASE, "prompt": "yes please", "history": cancel,
                                                "response": {"text": "cancelled"}})
        assert stored.status_code == 200 and stored.json()["stored"]
        same = (await client.post(LOOKUP, json={**BASE, "prompt": "Yes please!", "history": cancel})).json()
        assert same["hit"] and same["response"] == {"text": "cancelled"}
        other = (await client.post(LOOKUP, json={**BASE, "prompt": "yes please", "history": annual})).json()
        assert not other["hit"] and "assistant turn" in other["reason"]
        bad = await client.post(LOOKUP, json={**BASE, "prompt": "yes", "history": [{"role": "bot", "content": "x"}]})
        assert bad.status_code in (400, 422)


async def test_history_as_strings_is_user_turns(make_cache: Any) -> None:
    async with proxy_client(make_cache(), FakeUpstream().app) as client:
        body = {**BASE, "prompt": "How tall is it?", "history": ["Tell me about the Eiffel Tower."]}
        assert (await client.post(STORE, json={**body, "response": {"m": 330}})).json()["stored"]
        tagged = {**body, "history": [{"role": "user", "content": "Tell me about the Eiffel Tower."}]}
        assert (await client.post(LOOKUP, json=tagged)).json()["hit"]
        other = {**body, "history": ["Tell me about the Statue of Liberty."]}
        assert not (await client.post(LOOKUP, json=other)).json()["hit"]


async def test_documents_are_a_set(make_cache: Any) -> None:
    docs = [{"text": "The warranty lasts two years.", "source": "a"},
            {"text": "Returns are accepted within 30 days.", "source": "b"},
            {"text": "Shipping is free over 50 euros.", "source": "c"}]
    async with proxy_client(make_cache(), FakeUpstream().app) as client:
        body = {**BASE, "prompt": "Summarise the store's policies.", "documents": docs}
        assert (await client.post(STORE, json={**body, "response": {"s": 1}})).json()["stored"]
        reordered = {**body, "documents": [docs[2], docs[0], docs[1], docs[0]]}
        assert (await client.post(LOOKUP, json=reordered)).json()["hit"]
        changed = {**body, "documents": [docs[0], docs[1], {"text": "Shipping costs 5 euros.", "source": "c"}]}
        assert not (await client.post(LOOKUP, json=changed)).json()["hit"]
