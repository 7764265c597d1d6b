"""Scope extraction: what partitions a request, what is context, what is bypassed."""

from __future__ import annotations

import pytest
from semcache.adapters.proxy.parse import parse_controls, parse_request
from semcache.adapters.proxy.settings import ProxySettings
from semcache.adapters.server.errors import ProxyError

from semcache.lookup.turns import Turn

pytestmark = pytest.mark.unit

SETTINGS = ProxySettings(upstream_url="http://upstream")


def chat(content: str = "What is the capital of France?", **extra: object) -> dict[str, object]:
    return {"model": "m", "messages": [{"role": "user", "content": content}], "temperature": 0, **extra}


def scoped(body: object, tenant: str = "t1", headers: dict[str, str] | None = None,
           settings: ProxySettings = SETTINGS, endpoint: str = "chat"):  # type: ignore[no-untyped-def]
    return parse_request(endpoint, body, tenant=tenant, headers=headers or {}, settings=settings)  # type: ignore[arg-type]


def test_prompt_history_system_and_documents() -> None:
    body = {"model": "m", "temperature": 0, "documents": [{"text": "Paris is in France.", "source": "doc-1"}],
            "messages": [{"role": "system", "content": "Be brief."},
                         {"role": "user", "content": "Tell me about France"},
                         {"role": "assistant", "content": "France is a country."},
                         {"role": "user", "content": [{"type": "text", "text": "And its capital?"}]}]}
    req = scoped(body).cache_request
    assert req is not None
    assert req.prompt == "And its capital?"
    assert req.history == (Turn("user", "Tell me about France"), Turn("assistant", "France is a country."))
    assert req.system == "Be brief."
    assert [d.source for d in req.documents] == ["doc-1"]


def test_tenant_model_user_and_params_partition() -> None:
    base = scoped(chat()).cache_request
    assert base is not None
    assert scoped(chat(), tenant="t2").cache_request.partition() != base.partition()  # type: ignore[union-attr]
    other_model = dict(chat(), model="m2")
    assert scoped(other_model).cache_request.partition() != base.partition()  # type: ignore[union-attr]
    assert scoped(chat(max_tokens=5)).cache_request.partition() != base.partition()  # type: ignore[union-attr]
    assert scoped(chat(user="u1")).cache_request.scope.user == "u1"  # type: ignore[union-attr]
    header_user = scoped(chat(user="u1"), headers={"x-semcache-user": "u2"}).cache_request
    assert header_user.scope.user == "u2"  # type: ignore[union-attr]
    # Fields that do not change the answer do not partition.
    same = scoped(chat(stream=True, stream_options={"include_usage": True}, metadata={"a": 1})).cache_request
    assert same.partition() == base.partition()  # type: ignore[union-attr]


def test_unknown_parameters_partition_rather_than_leak() -> None:
    base = scoped(chat()).cache_request
    other = scoped(chat(some_new_knob=3)).cache_request
    assert other.partition() != base.partition()  # type: ignore[union-attr]


def test_system_prompt_and_documents_change_partition() -> None:
    base = scoped(chat()).cache_request
    with_system = dict(chat(), messages=[{"role": "system", "content": "Answer in French."},
                                         {"role": "user", "content": "What is the capital of France?"}])
    with_docs = dict(chat(), documents=[{"text": "Lyon is the capital."}])
    assert scoped(with_system).cache_request.partition() != base.partition()  # type: ignore[union-attr]
    assert scoped(with_docs).cache_request.partition() != base.partition()  # type: ignore[union-attr]


@pytest.mark.parametrize(("body", "reason"), [
    (chat(n=2), "n > 1"),
    (chat(temperature=0.7), "temperature"),
    ({"model": "m", "temperature": 0, "messages": [{"role": "user", "content": "hi"},
                                                    {"role": "assistant", "content": "Hel"}]}, "not the user"),
    ({"model": "m", "temperature": 0, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "http://x"}}]}]}, "non-text"),
])
def test_bypass_reasons(body: dict[str, object], reason: str) -> None:
    result = scoped(body)
    assert result.cache_request is None
    assert reason in (result.bypass_reason or "")


def test_cache_sampled_caches_temperature_in_scope() -> None:
    settings = ProxySettings(upstream_url="http://upstream", cache_sampled=True)
    hot = scoped(chat(temperature=0.7), settings=settings).cache_request
    cold = scoped(chat(), settings=settings).cache_request
    assert hot is not None and cold is not None
    assert hot.partition() != cold.partition()


def test_completions_prompt() -> None:
    body = {"model": "m", "prompt": "Once upon a time", "temperature": 0}
    req = scoped(body, endpoint="completions").cache_request
    assert req is not None and req.prompt == "Once upon a time"
    chat_req = scoped(chat(content="Once upon a time")).cache_request
    assert chat_req.partition() != req.partition()  # type: ignore[union-attr]
    batched = scoped({"model": "m", "prompt": ["a", "b"], "temperature": 0}, endpoint="completions")
    assert batched.cache_request is None and "batched" in (batched.bypass_reason or "")


@pytest.mark.parametrize("body", [
    [], {"messages": [{"role": "user", "content": "x"}]}, {"model": "m"}, {"model": "m", "messages": []},
    {"model": "m", "messages": ["hi"]}, {"model": "m", "messages": [{"role": "user", "content": 3}]},
    {"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": "yes"},
    {"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"},
    {"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 0},
])
def test_malformed_bodies_are_400(body: object) -> None:
    with pytest.raises(ProxyError) as info:
        scoped(body)
    assert info.value.status == 400


def test_controls() -> None:
    c = parse_controls({"x-semcache-control": "no-cache", "cache-control": "max-age=0, no-store"})
    assert c.no_cache and c.no_store
    assert parse_controls({"x-semcache-threshold": "0.9"}).threshold == 0.9
    for bad in ("abc", "0", "1.5", "nan"):
        with pytest.raises(ProxyError):
            parse_controls({"x-semcache-threshold": bad})


def test_flight_key_ignores_stream_but_not_tenant() -> None:
    a = scoped(chat()).flight_key()
    assert scoped(chat(stream=True)).flight_key() == a
    assert scoped(chat(), tenant="t2").flight_key() != a
    assert scoped(chat(user="u")).flight_key() != a
