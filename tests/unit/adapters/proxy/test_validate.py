"""Identity and sampling checks, as OpenAI makes them."""

from __future__ import annotations

from typing import Any

import pytest
from semcache.adapters.proxy.validate import check_body, check_sampling
from semcache.adapters.server.errors import ProxyError

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("fields", [
    {"temperature": 0}, {"temperature": 2}, {"temperature": None}, {"top_p": 1}, {"max_tokens": 1},
    {"n": 128}, {"seed": -(2**63)}, {"stop": ["a", "b"]}, {"stop": "x"}, {"presence_penalty": -2.0},
    {"user": "alice"}, {"user": None}, {"user": ""},
])
def test_openai_values_pass(fields: dict[str, Any]) -> None:
    check_body({"model": "m", **fields})


@pytest.mark.parametrize(("fields", "param"), [
    ({"temperature": -1}, "temperature"), ({"temperature": float("nan")}, "temperature"),
    ({"temperature": float("inf")}, "temperature"), ({"temperature": "0"}, "temperature"),
    ({"temperature": True}, "temperature"), ({"top_p": 1.01}, "top_p"), ({"max_tokens": -5}, "max_tokens"),
    ({"max_tokens": 2.0}, "max_tokens"), ({"max_completion_tokens": 0}, "max_completion_tokens"),
    ({"n": 0}, "n"), ({"top_logprobs": 21}, "top_logprobs"), ({"seed": 2**64}, "seed"),
    ({"stop": [1]}, "stop"), ({"user": 111}, "user"), ({"user": {"id": "bob"}}, "user"),
    ({"user": ["carol"]}, "user"),
])
def test_other_values_are_a_400_naming_the_field(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(ProxyError) as caught:
        check_body({"model": "m", **fields})
    assert caught.value.status == 400 and caught.value.param == param


def test_cache_api_params_name_their_prefix() -> None:
    with pytest.raises(ProxyError) as caught:
        check_sampling({"temperature": -1}, prefix="params.")
    assert caught.value.param == "params.temperature"
