"""Outside-in findings on the proxy and its cache API, each with the input that broke it.

A non-string ``user``, bad sampling values, deep or surrogate-laden JSON and huge counts get
a 400 in OpenAI's format and never reach the upstream; an unexpected exception answers 500 in
that format on a connection that stays open; very large prompts bypass the cache and say so.
"""

from __future__ import annotations

import http.client
import json
from typing import Any

import httpx
import pytest

from tests.fixtures.proxy import CHAT, chat_body, proxy_client, proxy_server
from tests.fixtures.upstream import FakeUpstream

pytestmark = pytest.mark.integration


def _is_openai_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text[:300]
    error = response.json()["error"]
    assert set(error) >= {"message", "type", "code"}
    return dict(error)


@pytest.mark.parametrize("user", [111, {"id": "bob"}, ["carol"], True, 1.5])
async def test_a_user_that_is_not_a_string_is_a_400_and_never_shares_an_answer(make_cache: Any, user: Any) -> None:
    fake = FakeUpstream()
    async with proxy_client(make_cache(), fake.app) as client:
        refused = await client.post(CHAT, json=chat_body("What is the capital of Peru?", user=user))
        assert _is_openai_error(refused, 400)["param"] == "user"
        assert fake.calls == 0
        # positive control: string users are kept apart, and the same user hits
        first = await client.post(CHAT, json=chat_body("What is the capital of Peru?", user="alice"))
        other = await client.post(CHAT, json=chat_body("What is the capital of Peru?", user="bob"))
        again = await client.post(CHAT, json=chat_body("What is the capital of Peru?", user="alice"))
        assert [r.headers["x-semcache"] for r in (first, other, again)] == ["miss", "miss", "hit"]


@pytest.mark.parametrize("path", ["/semcache/v1/lookup", "/semcache/v1/store"])
@pytest.mark.parametrize("user", [111, {"id": "bob"}, ["carol"]])
async def test_the_cache_api_refuses_a_user_that_is_not_a_string(make_cache: Any, path: str, user: Any) -> None:
    async with proxy_client(make_cache(), FakeUpstream().app) as client:
        body = {"prompt": "What is the capital of Peru?", "user": user, "response": {"answer": "Lima"}}
        _is_openai_error(await client.post(path, json=body), 400)


@pytest.mark.parametrize("raw", [
    '"temperature": -1', '"temperature": NaN', '"temperature": 3', '"top_p": 1.5', '"max_tokens": -5',
    '"max_tokens": 0', '"n": 0', '"presence_penalty": -9', '"seed": 1e3', '"stop": 5',
])
async def test_sampling_values_out_of_openai_ranges_are_refused_and_not_passed_on(make_cache: Any, raw: str) -> None:
    fake = FakeUpstream()
    body = '{"model": "m", "messages": [{"role": "user", "content": "Hi there"}], ' + raw + "}"
    async with proxy_client(make_cache(), fake.app) as client:
        _is_openai_error(await client.post(CHAT, content=body, headers={"content-type": "application/json"}), 400)
        params = '{"prompt": "What is the capital of Peru?", "params": {' + raw + "}}"
        _is_openai_error(await client.post("/semcache/v1/lookup", content=params,
                                           headers={"content-type": "application/json"}), 400)
    assert fake.calls == 0


@pytest.mark.parametrize("path", [CHAT, "/semcache/v1/lookup", "/semcache/v1/store"])
async def test_deep_json_and_lone_surrogates_are_a_400(make_cache: Any, path: str) -> None:
    fake = FakeUpstream()
    async with proxy_client(make_cache(), fake.app) as client:
        deep = '{"model": "m", "prompt": "x", "messages": [{"role": "user", "content": "hi"}], "extra": ' + \
            "[" * 2000 + "]" * 2000 + "}"
        headers = {"content-type": "application/json"}
        assert _is_openai_error(await client.post(path, content=deep, headers=headers), 400)["code"] == "invalid_json"
        lone = '{"model": "m", "prompt": "x\\ud800", "messages": [{"role": "user", "content": "a \\ud800 b"}]}'
        assert _is_openai_error(await client.post(path, content=lone, headers=headers), 400)["code"] == "invalid_json"
        pair = '{"model": "m", "messages": [{"role": "user", "content": "smile \\ud83d\\ude00"}], "temperature": 0}'
        if path == CHAT:  # a proper surrogate pair is an ordinary character
            assert (await client.post(path, content=pair, headers=headers)).status_code == 200
    assert fake.calls == (1 if path == CHAT else 0)


async def test_a_huge_token_count_on_the_store_is_a_400(make_cache: Any) -> None:
    async with proxy_client(make_cache(), FakeUpstream().app) as client:
        body = {"prompt": "What is the capital of Peru?", "response": {"answer": "Lima"}, "tokens": 10**20}
        _is_openai_error(await client.post("/semcache/v1/store", json=body), 400)
        body["tokens"] = 2**40  # within the schema's int, beyond the column: the store refuses it
        _is_openai_error(await client.post("/semcache/v1/store", json=body), 400)
        body["tokens"] = 120
        assert (await client.post("/semcache/v1/store", json=body)).json()["stored"]


async def test_a_prompt_over_max_prompt_chars_bypasses_and_says_so(make_cache: Any) -> None:
    fake = FakeUpstream()
    async with proxy_client(make_cache(), fake.app, max_prompt_chars=10_000) as client:
        big = await client.post(CHAT, json=chat_body("Summarise this. " + "lorem ipsum " * 2000))
        assert big.status_code == 200 and big.headers["x-semcache"] == "bypass"
        assert "max_prompt_chars" in big.headers["x-semcache-reason"]
        small = await client.post(CHAT, json=chat_body("Summarise this. lorem ipsum"))
        assert small.headers["x-semcache"] == "miss"


async def test_the_cache_api_bypasses_a_prompt_over_max_prompt_chars(make_cache: Any) -> None:
    async with proxy_client(make_cache(), FakeUpstream().app, max_prompt_chars=10_000) as client:
        big = {"prompt": "Summarise this. " + "lorem ipsum " * 2000, "response": {"answer": "x"}}
        stored = await client.post("/semcache/v1/store", json=big)
        assert stored.status_code == 200 and stored.json()["stored"] is False
        assert stored.headers["x-semcache"] == "bypass"
        assert "max_prompt_chars" in stored.headers["x-semcache-reason"]
        looked = await client.post("/semcache/v1/lookup", json={"prompt": big["prompt"]})
        assert looked.json()["hit"] is False and "max_prompt_chars" in looked.json()["reason"]
        # positive control: a small prompt is stored and then found
        small = {"prompt": "Summarise this lorem ipsum.", "response": {"answer": "x"}}
        assert (await client.post("/semcache/v1/store", json=small)).json()["stored"] is True
        assert (await client.post("/semcache/v1/lookup", json={"prompt": small["prompt"]})).json()["hit"]


def test_an_unexpected_exception_is_an_openai_500_on_a_connection_that_stays_open(make_cache: Any) -> None:
    cache = make_cache()
    real = cache.alookup_detailed

    async def broken(request: Any) -> Any:
        if "explode" in request.prompt:
            raise RuntimeError("a bug")
        return await real(request)

    cache.alookup_detailed = broken
    transport = httpx.ASGITransport(app=FakeUpstream().app)
    with proxy_server(cache, "http://upstream", transport=transport) as url:
        conn = http.client.HTTPConnection(url.removeprefix("http://"), timeout=30)
        headers = {"content-type": "application/json"}
        conn.request("POST", CHAT, body=json.dumps(chat_body("please explode")), headers=headers)
        first = conn.getresponse()
        body = json.loads(first.read())
        assert first.status == 500 and body["error"]["type"] == "server_error"
        sock = conn.sock
        assert sock is not None  # the server did not close the connection
        for i in range(3):
            conn.request("POST", CHAT, body=json.dumps(chat_body(f"What is {i} plus {i}?")), headers=headers)
            after = conn.getresponse()
            after.read()
            assert after.status == 200 and conn.sock is sock  # the same keep-alive connection
        conn.close()


async def test_security_headers_on_admin_pages_and_ops_routes_behind_a_key(make_cache: Any) -> None:
    token = "admin-token-0123456789abcdef"
    async with proxy_client(make_cache(), FakeUpstream().app, admin_token=token, protect_ops=True) as client:
        login = await client.get("/admin/login")
        assert "frame-ancestors 'none'" in login.headers["content-security-policy"]
        assert login.headers["x-frame-options"] == "DENY"
        assert login.headers["x-content-type-options"] == "nosniff"
        for path in ("/metrics", "/openapi.json", "/docs"):
            _is_openai_error(await client.get(path), 401)
            _is_openai_error(await client.get(path, headers={"authorization": "Bearer wrong"}), 401)
            assert (await client.get(path, headers={"authorization": f"Bearer {token}"})).status_code == 200
    async with proxy_client(make_cache(), FakeUpstream().app) as client:  # the default: public
        assert (await client.get("/metrics")).status_code == 200
