"""Prompt parsing: LangChain's serialised conversations -> question, history and exact context."""

from __future__ import annotations

import pytest

pytest.importorskip("langchain_core")

from langchain_core.load import dumps  # noqa: E402
from langchain_core.messages import (  # noqa: E402
    AIMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.outputs import ChatGeneration, Generation  # noqa: E402
from semcache.adapters.langchain.codec import decode_generations, encode_generations  # noqa: E402
from semcache.adapters.langchain.parsing import (  # noqa: E402
    build_request,
    model_from_llm_string,
    parse_prompt,
    scope_for,
    split_turns,
    turns_from_messages,
)

from semcache.lookup.turns import Turn  # noqa: E402

pytestmark = pytest.mark.unit


def test_plain_string_prompt_is_the_question() -> None:
    parsed = parse_prompt("What is a Python decorator?")
    assert parsed.prompt == "What is a Python decorator?"
    assert parsed.history == () and parsed.system is None and parsed.context == ()


@pytest.mark.parametrize("prompt", ["", "   ", "\n\t"])
def test_blank_prompt_bypasses(prompt: str) -> None:
    parsed = parse_prompt(prompt)
    assert parsed.prompt is None and parsed.bypass_reason == "empty prompt"


@pytest.mark.parametrize("prompt", ["[1, 2]", "[not json", '[{"lc": 1}]', "[]"])
def test_json_that_is_not_a_conversation_is_plain_text(prompt: str) -> None:
    assert parse_prompt(prompt).prompt == prompt


def test_system_prompt_is_exact_context_and_last_user_turn_is_the_question() -> None:
    prompt = dumps([SystemMessage("Answer briefly."), HumanMessage("What is a list?"),
                    AIMessage("An ordered sequence."), HumanMessage("And a tuple?")])
    parsed = parse_prompt(prompt)
    assert parsed.prompt == "And a tuple?"
    assert parsed.history == (Turn("user", "What is a list?"), Turn("assistant", "An ordered sequence."))
    assert parsed.system == "Answer briefly."
    assert parsed.context == ()


def test_several_system_messages_are_joined_in_order() -> None:
    parsed = parse_prompt(dumps([SystemMessage("one"), HumanMessage("q"), SystemMessage("two")]))
    assert parsed.system == "one\n\ntwo"


def test_tool_turns_after_the_question_are_exact_context() -> None:
    call = {"name": "lookup", "args": {"q": "tuple"}, "id": "call-1"}
    base = [HumanMessage("What does the docs tool say about tuples?"), AIMessage("", tool_calls=[call])]
    one = parse_prompt(dumps([*base, ToolMessage("immutable sequence", tool_call_id="call-1")]))
    other = parse_prompt(dumps([*base, ToolMessage("mutable sequence", tool_call_id="call-1")]))
    assert one.prompt == other.prompt == "What does the docs tool say about tuples?"
    assert one.context and one.context != other.context
    assert any("lookup" in c for c in one.context)


def test_non_text_content_is_fingerprinted_not_embedded() -> None:
    def ask(url: str) -> str:
        return dumps([HumanMessage(content=[{"type": "text", "text": "What is in this picture?"},
                                            {"type": "image_url", "image_url": {"url": url}}])])

    a, b = parse_prompt(ask("http://x/a.png")), parse_prompt(ask("http://x/b.png"))
    assert a.prompt == b.prompt == "What is in this picture?"
    assert len(a.context) == 1 and a.context != b.context
    assert "a.png" not in a.context[0]  # hashed, so large payloads stay small


def test_image_only_question_bypasses() -> None:
    prompt = dumps([HumanMessage(content=[{"type": "image_url", "image_url": {"url": "http://x/a.png"}}])])
    parsed = parse_prompt(prompt)
    assert parsed.prompt is None and parsed.bypass_reason == "the last user message has no text"


def test_conversation_without_user_turn_bypasses() -> None:
    parsed = parse_prompt(dumps([SystemMessage("sys"), AIMessage("hello")]))
    assert parsed.prompt is None and parsed.bypass_reason == "no user message"


def test_chat_message_roles_are_mapped() -> None:
    parsed = parse_prompt(dumps([ChatMessage(role="system", content="s"), ChatMessage(role="user", content="q1"),
                                 ChatMessage(role="assistant", content="a"), ChatMessage(role="user", content="q2")]))
    assert (parsed.prompt, parsed.history, parsed.system) == ("q2", (Turn("user", "q1"), Turn("assistant", "a")), "s")


def test_message_objects_and_their_serialised_form_parse_the_same() -> None:
    messages = [SystemMessage("sys"), HumanMessage("first"), AIMessage("x"),
                HumanMessage(content=[{"type": "text", "text": "second"}, {"type": "image_url",
                                                                         "image_url": {"url": "u"}}]),
                AIMessage("", tool_calls=[{"name": "f", "args": {}, "id": "1"}]),
                ToolMessage("result", tool_call_id="1")]
    assert split_turns(turns_from_messages(messages)) == parse_prompt(dumps(messages))


def test_llm_string_is_part_of_the_scope() -> None:
    a = scope_for('{"kwargs": {"model_name": "gpt-x", "temperature": 0}}---[]', tenant="t")
    b = scope_for('{"kwargs": {"model_name": "gpt-x", "temperature": 0.7}}---[]', tenant="t")
    assert a.model == b.model == "gpt-x"
    assert a.params and a.params != b.params and a.key() != b.key()
    assert scope_for("opaque", tenant="t").model == ""


def test_model_name_from_plain_llm_string() -> None:
    assert model_from_llm_string("[('_type', 'fake'), ('model', 'tiny')]") == "tiny"


def test_build_request_carries_every_part() -> None:
    parsed = parse_prompt(dumps([SystemMessage("sys"), HumanMessage("q1"), HumanMessage("q2"),
                                 AIMessage("", tool_calls=[{"name": "f", "args": {}, "id": "1"}]),
                                 ToolMessage("r", tool_call_id="1")]))
    request = build_request(parsed, scope_for("llm", tenant="t"))
    assert request is not None
    assert (request.prompt, request.history, request.system) == ("q2", (Turn("user", "q1"),), "sys")
    assert len(request.documents) == len(parsed.context) > 0
    assert build_request(parse_prompt(""), scope_for("llm", tenant="t")) is None


def test_generation_payload_round_trips_as_json() -> None:
    gens = [Generation(text="a", generation_info={"reason": "x"}),
            ChatGeneration(message=AIMessage("b", usage_metadata={"input_tokens": 1, "output_tokens": 2,
                                                                 "total_tokens": 3}))]
    payload = encode_generations(gens)
    assert payload["text"] == "a"
    assert decode_generations(payload) == gens
    assert decode_generations({"choices": []}) is None
    with pytest.raises(TypeError, match="Generation"):
        encode_generations(["not a generation"])  # type: ignore[list-item]


def test_tool_call_ids_do_not_change_the_context() -> None:
    def conversation(call_id: str) -> str:
        call = {"name": "lookup", "args": {"q": "tuple"}, "id": call_id}
        return dumps([HumanMessage("What does the docs tool say about tuples?"), AIMessage("", tool_calls=[call]),
                      ToolMessage("immutable sequence", tool_call_id=call_id)])

    assert parse_prompt(conversation("call-a")).context == parse_prompt(conversation("call-b")).context
