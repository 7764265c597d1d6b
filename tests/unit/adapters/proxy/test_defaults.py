"""Defaults a newcomer can trust: a request without temperature is cached under its own scope,
the body's ``cache`` field, upstream URLs with /v1, and no open cache beyond loopback."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from semcache.adapters.proxy.parse import parse_request
from semcache.adapters.proxy.settings import ProxySettings
from semcache.adapters.server.errors import ProxyError

pytestmark = pytest.mark.unit

SETTINGS = ProxySettings(upstream_url="http://upstream")


def body(**extra: object) -> dict[str, object]:
    return {"model": "m", "messages": [{"role": "user", "content": "What is the capital of France?"}], **extra}


def scoped(b: dict[str, object], settings: ProxySettings = SETTINGS, headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return parse_request("chat", b, tenant="t", headers=headers or {}, settings=settings)


def test_missing_temperature_is_cached_under_its_own_scope() -> None:
    unset = scoped(body()).cache_request
    assert unset is not None, "the OpenAI SDK's default request must be cacheable"
    scopes = {unset.scope.params}
    for t in (0, 1.0):
        explicit = scoped(body(temperature=t), ProxySettings(upstream_url="http://u", cache_sampled=True))
        assert explicit.cache_request is not None
        scopes.add(explicit.cache_request.scope.params)
    assert len(scopes) == 3, "'temperature not given' must differ from every explicit value"


def test_explicit_sampling_stays_opt_in_and_one_line_opts_out() -> None:
    assert scoped(body(temperature=0.7)).cache_request is None
    off = ProxySettings(upstream_url="http://u", cache_unset_temperature=False)
    parsed = scoped(body(), off)
    assert parsed.cache_request is None and "temperature" in (parsed.bypass_reason or "")
    per_request = scoped(body(), headers={"x-semcache-control": "no-cache, no-store"}).controls
    assert per_request.no_cache and per_request.no_store


def test_body_cache_field_is_removed_and_only_namespace_splits() -> None:
    plain = scoped(body(temperature=0))
    ttl = scoped(body(temperature=0, cache={"ttl": 600, "no-store": True}))
    assert "cache" not in ttl.body, "the cache field must not be forwarded"
    assert ttl.controls.ttl_seconds == 600 and ttl.controls.no_store and not ttl.controls.no_cache
    assert ttl.cache_request.scope == plain.cache_request.scope  # type: ignore[union-attr]
    ns = scoped(body(temperature=0, cache={"namespace": "team-a"}))
    assert ns.cache_request.scope != plain.cache_request.scope  # type: ignore[union-attr]
    assert scoped(body(temperature=0, cache={"s-maxage": 0})).controls.no_cache
    assert scoped(body(temperature=0, cache={"no-cache": True})).controls.no_cache
    assert plain.flight_key() == scoped(body(temperature=0, cache={"ttl": 5})).flight_key()


@pytest.mark.parametrize(("bad", "param"), [({"ttl": -1}, "cache.ttl"), ({"ttl": "x"}, "cache.ttl"),
                                            ({"no-cache": "yes"}, "cache.no-cache"),
                                            ({"s-maxage": True}, "cache.s-maxage"),
                                            ({"namespace": ""}, "cache.namespace"),
                                            ({"bogus": 1}, "cache.bogus"), (5, "cache")])
def test_body_cache_field_rejects_malformed(bad: object, param: str) -> None:
    with pytest.raises(ProxyError) as exc:
        scoped(body(temperature=0, cache=bad))
    assert exc.value.status == 400 and exc.value.param == param, exc.value.body()


def test_body_cache_field_schema_lists_the_controls() -> None:
    from semcache.adapters.proxy.models import ChatBody

    schema = ChatBody.model_json_schema()
    controls = schema["$defs"]["CacheControls"]
    assert set(controls["properties"]) == {"no-cache", "no-store", "ttl", "s-maxage", "namespace"}
    assert controls["additionalProperties"] is False


@pytest.mark.parametrize("url", ["http://h:8000", "http://h:8000/", "http://h:8000/v1", "http://h:8000/v1/"])
def test_upstream_url_with_or_without_v1(url: str) -> None:
    assert ProxySettings(upstream_url=url).upstream_url == "http://h:8000"


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.5", "example.com"])
def test_non_loopback_needs_keys_or_explicit_insecure(host: str) -> None:
    with pytest.raises(ValidationError, match="require-keys"):
        ProxySettings(upstream_url="http://u", host=host)
    assert ProxySettings(upstream_url="http://u", host=host, require_keys=True).require_keys
    assert ProxySettings(upstream_url="http://u", host=host, insecure_no_keys=True).insecure_no_keys


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_needs_no_keys(host: str) -> None:
    assert ProxySettings(upstream_url="http://u", host=host).host == host
