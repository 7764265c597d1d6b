"""Request bodies checked by the models, as OpenAI checks them; the spec comes from the same models."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from semcache.adapters.proxy.models import ChatBody, CompletionsBody
from semcache.adapters.proxy.parse import parse_request
from semcache.adapters.proxy.schemas import body_schema
from semcache.adapters.proxy.settings import ProxySettings
from semcache.adapters.proxy.validate import check_cache_fields, validate_body
from semcache.adapters.server.errors import ProxyError

pytestmark = pytest.mark.unit

MESSAGES = [{"role": "user", "content": "What is the capital of Peru?"}]
GOOD = [
    {"temperature": 0}, {"temperature": 2}, {"temperature": None}, {"top_p": 1}, {"max_tokens": 1},
    {"n": 128}, {"seed": -(2**63)}, {"stop": ["a", "b"]}, {"stop": "x"}, {"presence_penalty": -2.0},
    {"user": "alice"}, {"user": None}, {"user": ""}, {"stream": True, "stream_options": {"include_usage": True}},
    {"documents": ["Lima is the capital.", {"content": "Peru", "id": 7}]}, {"logit_bias": {"50256": -100}},
]
BAD = [
    ({"temperature": -1}, "temperature"), ({"temperature": float("nan")}, "temperature"),
    ({"temperature": float("inf")}, "temperature"), ({"temperature": "0"}, "temperature"),
    ({"temperature": True}, "temperature"), ({"temperature": 2.5}, "temperature"), ({"top_p": 1.01}, "top_p"), ({"max_tokens": -5}, "max_tokens"),
    ({"max_tokens": 2.0}, "max_tokens"), ({"max_tokens": "1"}, "max_tokens"),
    ({"max_completion_tokens": 0}, "max_completion_tokens"), ({"n": 0}, "n"), ({"n": 129}, "n"),
    ({"best_of": 0}, "best_of"), ({"top_logprobs": 21}, "top_logprobs"), ({"seed": 2**64}, "seed"),
    ({"frequency_penalty": 2.5}, "frequency_penalty"), ({"stop": [1]}, "stop[0]"), ({"stop": 5}, "stop"),
    ({"user": 111}, "user"), ({"user": {"id": "bob"}}, "user"), ({"user": ["carol"]}, "user"),
    ({"stream": "yes"}, "stream"), ({"stream_options": {"include_usage": 1}}, "stream_options.include_usage"),
    ({"model": ""}, "model"), ({"messages": []}, "messages"), ({"messages": ["hi"]}, "messages[0]"),
    ({"messages": [{"content": "hi"}]}, "messages[0].role"),
    ({"messages": [{"role": "user", "content": 3}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": [{"type": "text"}]}]}, "messages[0].content[0]"),
    ({"documents": [{"title": "no text"}]}, "documents[0]"), ({"documents": "Lima"}, "documents"),
]


@pytest.mark.parametrize("fields", GOOD)
def test_openai_values_pass(fields: dict[str, Any]) -> None:
    validate_body("chat", {"model": "m", "messages": MESSAGES, **fields})


@pytest.mark.parametrize(("fields", "param"), BAD)
def test_other_values_are_a_400_naming_the_field(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(ProxyError) as caught:
        validate_body("chat", {"model": "m", "messages": MESSAGES, **fields})
    error = caught.value
    assert error.status == 400 and error.param == param and f"'{param}'" in error.message
    assert error.code == ("invalid_user" if param == "user" else "invalid_request")


@pytest.mark.parametrize(("prompt", "ok"), [
    ("Once", True), (["a", "b"], True), ([1, 2, 3], True), ([[1, 2], [3]], True),
    ([], False), ([1, "a"], False), ([[]], False), (None, False), (5, False),
])
def test_completion_prompts_are_text_or_token_ids(prompt: Any, ok: bool) -> None:
    body = {"model": "m", "prompt": prompt}
    if ok:
        validate_body("completions", body)
    else:
        with pytest.raises(ProxyError, match=r"^'prompt[\[']"):
            validate_body("completions", body)


def test_a_body_that_is_not_an_object_is_a_400() -> None:
    with pytest.raises(ProxyError, match="JSON object"):
        validate_body("chat", [{"model": "m"}])


def test_the_forwarded_body_is_the_clients_own_not_a_coerced_copy() -> None:
    body = {"model": "m", "messages": MESSAGES, "temperature": 0, "max_tokens": 5, "new_knob": {"a": [1]},
            "stream_options": {"include_usage": True, "extra": 1}, "cache": {"ttl": 60}}
    sent = copy.deepcopy(body)
    parsed = parse_request("chat", body, tenant="t", headers={}, settings=ProxySettings(upstream_url="http://u"))
    del sent["cache"]  # the one field that is never forwarded
    assert parsed.body == sent and type(parsed.body["temperature"]) is int
    assert body["cache"] == {"ttl": 60}  # the caller's dict is not mutated


def test_cache_api_checks_user_and_params_with_the_same_rules() -> None:
    check_cache_fields({"user": "alice", "params": {"temperature": 0.5, "custom": "x"}})
    for body, param in (({"params": {"temperature": -1}}, "params.temperature"), ({"user": 5}, "user"),
                        ({"params": {"max_tokens": True}}, "params.max_tokens"), ({"params": 3}, "params")):
        with pytest.raises(ProxyError) as caught:
            check_cache_fields(body)
        assert caught.value.param == param


def test_the_spec_is_generated_from_the_models_and_agrees_with_them() -> None:
    jsonschema_rs = pytest.importorskip("jsonschema_rs")
    chat = body_schema(ChatBody)
    assert "$defs" not in str(chat) and "$ref" not in str(chat)
    assert chat["properties"]["temperature"]["anyOf"][0] == {
        "type": "number", "minimum": 0.0, "maximum": 2.0, "description": "sampling temperature, 0 to 2"}
    assert set(chat["required"]) == {"model", "messages"} and chat["additionalProperties"] is True
    assert set(body_schema(CompletionsBody)["required"]) == {"model", "prompt"}
    spec = jsonschema_rs.validator_for(chat)
    for fields in GOOD:
        assert spec.is_valid({"model": "m", "messages": MESSAGES, **fields}), fields
    for fields, param in BAD:
        value = next(iter(fields.values()))
        # not JSON (NaN, inf), an integer to JSON Schema (2.0), or a rule across fields (model_validator)
        python_only = (isinstance(value, float) and value != -1) or param in ("messages[0].content[0]",
                                                                              "documents[0]")
        if not python_only:
            assert not spec.is_valid({"model": "m", "messages": MESSAGES, **fields}), fields
