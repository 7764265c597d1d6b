"""Body validation through the running proxy: OpenAI-format 400s that name the field, nothing
sent upstream on a refusal, and the client's own fields forwarded as sent (no coercion), for
small bodies and for large ones (checked off the event loop)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from semcache.adapters.server.body_guard import OFF_LOOP_BYTES

from tests.fixtures.proxy import CHAT, chat_body, proxy_client
from tests.fixtures.upstream import FakeUpstream

pytestmark = pytest.mark.integration

LARGE = "lorem ipsum " * (OFF_LOOP_BYTES // 12 + 100)  # a body over OFF_LOOP_BYTES


@pytest.mark.parametrize("padding", ["", LARGE], ids=["small", "large"])
@pytest.mark.parametrize(("path", "body", "param"), [
    (CHAT, chat_body("Hi there", temperature=2.5), "temperature"),
    (CHAT, chat_body("Hi there", max_tokens="16"), "max_tokens"),
    (CHAT, chat_body("Hi there", messages=[{"role": "user", "content": [{"type": "text", "text": 3}]}]),
     "messages[0].content[0].text"),
    (CHAT, chat_body("Hi there", user=7), "user"),
    ("/v1/completions", {"model": "fake-model", "prompt": [], "temperature": 0}, "prompt"),
    ("/v1/completions", {"model": "fake-model", "prompt": "Once", "n": 0}, "n"),
])
async def test_a_malformed_body_is_an_openai_400_naming_the_field(
        make_cache: Any, path: str, body: dict[str, Any], param: str, padding: str) -> None:
    fake = FakeUpstream()
    async with proxy_client(make_cache(), fake.app) as client:
        response = await client.post(path, json={**body, "padding": padding})
    assert response.status_code == 400, response.text[:300]
    error = response.json()["error"]
    assert error["param"] == param and f"'{param}'" in error["message"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == ("invalid_user" if param == "user" else "invalid_request")
    assert fake.calls == 0


@pytest.mark.parametrize("padding", ["", LARGE], ids=["small", "large"])
async def test_the_upstream_gets_the_clients_fields_as_sent(make_cache: Any, padding: str) -> None:
    fake = FakeUpstream()
    body = chat_body("What is the capital of Peru?", temperature=0, top_p=1, seed=7, padding=padding,
                     logit_bias={"50256": -100}, metadata={"trace": [1, "a", None]},
                     stream_options=None, cache={"ttl": 60})
    raw = json.dumps(body).encode()
    async with proxy_client(make_cache(), fake.app) as client:
        response = await client.post(CHAT, content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text[:300]
    forwarded = fake.bodies[-1]
    assert forwarded == {k: v for k, v in body.items() if k != "cache"}
    assert [type(forwarded[k]) for k in ("temperature", "top_p")] == [int, int]  # 0 stays 0, not 0.0


async def test_the_cache_api_names_its_params_fields(make_cache: Any) -> None:
    async with proxy_client(make_cache(), FakeUpstream().app) as client:
        for params, param in (({"temperature": 3}, "params.temperature"), ({"max_tokens": "5"}, "params.max_tokens"),
                              ({"stop": [1]}, "params.stop[0]")):
            body = {"prompt": "What is the capital of Peru?", "params": params}
            response = await client.post("/semcache/v1/lookup", json=body)
            assert response.status_code == 400 and response.json()["error"]["param"] == param, response.text
        ok = await client.post("/semcache/v1/lookup", json={"prompt": "What is the capital of Peru?",
                                                            "params": {"temperature": 0, "custom": "x"}})
        assert ok.status_code == 200, ok.text
