"""The refers-back decision and context matching, on the issue's conversations and beyond."""

from __future__ import annotations

import pytest

from semcache.lookup.followup import (
    ContextMatch,
    Referent,
    context_key,
    match_context,
    match_conversations,
    match_final_turns,
    referent,
    refers_back,
    reply_act,
    search_text,
)
from semcache.lookup.turns import Turn

pytestmark = pytest.mark.unit

RENEWS = {"role": "user", "content": "My Streamly subscription renews tomorrow"}
CANCEL = [RENEWS, {"role": "assistant", "content":
                   "Yes, 12.99 will be taken tomorrow. Would you like me to cancel it before then?"}]
ANNUAL = [RENEWS, {"role": "assistant", "content":
                   "Yes, 12.99 will be taken tomorrow. Would you like me to switch to annual billing?"}]


def booking(place: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Book a table for two at {place} tonight at 8pm"},
            {"role": "assistant", "content": f"{place} has a table for two at 8pm tonight. Shall I confirm?"}]


def fixed(value: float):  # a similarity callable that records what it was asked
    calls: list[tuple[str, str]] = []

    def similarity(a: str, b: str) -> float:
        calls.append((a, b))
        return value
    similarity.calls = calls  # type: ignore[attr-defined]
    return similarity


def test_two_yes_please_chats_with_different_offers_do_not_match() -> None:
    assert refers_back("yes please", CANCEL).refers_back
    verdict = match_conversations("yes please", ANNUAL, "yes please", CANCEL, fixed(0.99))
    assert not verdict.ok and "assistant turn" in verdict.reason
    assert context_key("yes please", ANNUAL) != context_key("yes please", CANCEL)


def test_reworded_confirmation_under_the_same_chat_matches() -> None:
    assert match_final_turns("Yes, please do that.", "yes please").ok
    assert match_conversations("Yes, please do that.", CANCEL, "yes please", CANCEL).ok
    assert context_key("Yes, please do that.", CANCEL) == context_key("yes please", CANCEL) != ""


def test_self_contained_question_after_unrelated_chat_stands_alone() -> None:
    question = "What is the capital of Australia?"
    assert not refers_back(question, CANCEL).refers_back
    assert match_conversations(question, CANCEL, question, booking("Nopa"), fixed(0.1)).ok
    assert match_conversations(question, CANCEL, question, []).ok


def test_booking_follow_up_for_another_restaurant_does_not_match() -> None:
    verdict = match_conversations("yes, book it", booking("Zuni Cafe"), "yes, book it", booking("Nopa"),
                                  fixed(0.99))
    assert not verdict.ok and "entities" in verdict.reason
    assert match_conversations("yes, book it", booking("Nopa"), "yes, book it", booking("Nopa")).ok


@pytest.mark.parametrize("prompt", [
    "yes please", "ok", "Sure thing, do it.", "no thanks", "book it", "Can I get a refund for it?",
    "the second one", "let's go with option 2", "What about Tuesday?", "and for two people?",
    "For four, then.", "Tuesday instead?", "Is that normal?", "Can I park there?",
    "I'll take the other one", "What are the side effects?", "Boston."])
def test_referring_turns(prompt: str) -> None:
    history = [{"role": "user", "content": "Any flights to Denver on Monday?"},
               {"role": "assistant", "content": "Two: 8am for 120 dollars, 6pm for 95. Which one?"}]
    assert refers_back(prompt, history).refers_back, prompt


@pytest.mark.parametrize("prompt", [
    "How do I reverse a list in Python?", "Is it safe to take ibuprofen with coffee?",
    "Is there a direct train from Paris to Lyon?", "My laptop is slow, how do I speed it up?",
    "I bought a Kindle yesterday; how do I charge it?", "What is the boiling point of water at sea level?",
    "Explain how vaccines train the immune system.", "Can dogs eat chocolate?",
    "What's on at the Odeon this Friday?"])
def test_standalone_turns(prompt: str) -> None:
    assert not refers_back(prompt, CANCEL).refers_back, refers_back(prompt, CANCEL).reason


def test_answer_to_the_assistants_question_refers_back() -> None:
    asked = [{"role": "user", "content": "I need a flight."},
             {"role": "assistant", "content": "Where are you flying from?"}]
    assert refers_back("from Boston on the 3rd", asked).refers_back
    assert not refers_back("from Boston on the 3rd", []).reason.startswith("answer")


def test_unanchored_question_on_the_same_topic_refers_back_only_with_a_similarity() -> None:
    history = [{"role": "user", "content": "What is photosynthesis?"},
               {"role": "assistant", "content": "Plants turn light into chemical energy, releasing oxygen."}]
    question = "Which gas is released as a byproduct?"
    assert not refers_back(question, history).refers_back
    assert refers_back(question, history, fixed(0.6)).refers_back
    assert not refers_back(question, history, fixed(0.1)).refers_back
    assert not refers_back("Which gas does Mars have most of?", history, fixed(0.9)).refers_back


def test_referent_keeps_offer_topic_and_details_from_the_topic_on() -> None:
    history = [{"role": "user", "content": "I live in Oslo."}, {"role": "assistant", "content": "Nice!"},
               {"role": "user", "content": "Book two seats for Hamlet on 12 March"},
               {"role": "tool", "content": '{"show": "Hamlet", "seats": 2, "price": 45}'},
               {"role": "assistant", "content": "Two seats for Hamlet on March 12 cost 45 each. Confirm?"},
               {"role": "user", "content": "ok thanks"}]
    ref = referent(history)
    assert ref.anchor == "Book two seats for Hamlet on 12 March"
    assert ref.offer.endswith("Confirm?")
    assert ref.details.entities == {"hamlet"} and ref.details.numbers == {"2", "45"}
    assert ref.details.dates == {"03-12"}


def test_match_context_uses_the_similarity_for_reworded_text() -> None:
    a = Referent("Shall I reserve it?", "Book Nopa for two")
    b = Referent("Do you want me to book that table?", "Reserve Nopa, two people")
    assert not match_context(a, b).ok  # differing text and no similarity: refuse
    assert match_context(a, b, fixed(0.9), threshold=0.8) == ContextMatch(True, "", 0.9)
    low = match_context(a, b, fixed(0.5), threshold=0.8)
    assert not low.ok and low.similarity == 0.5


def test_swapped_detail_in_one_frame_is_refused_before_the_similarity() -> None:
    a = Referent("Common choices are ibuprofen, paracetamol or aspirin.")
    b = Referent("Common choices are naproxen, codeine or aspirin.")
    similarity = fixed(0.99)
    verdict = match_context(a, b, similarity)
    assert not verdict.ok and "differs in" in verdict.reason and not similarity.calls  # type: ignore[attr-defined]


def test_times_and_numbers_are_normalised() -> None:
    a = [{"role": "user", "content": "Table for 2 at 7 on Friday"},
         {"role": "assistant", "content": "Friday at 7pm for two works. Book it?"}]
    b = [{"role": "user", "content": "Table for two at 7pm this Friday"},
         {"role": "assistant", "content": "Friday at 7pm for two works. Book it?"}]
    assert match_context(referent(a), referent(b), fixed(0.9)).ok
    c = [a[0], {"role": "assistant", "content": "Friday at 7am for two works. Book it?"}]
    assert not match_context(referent(a), referent(c), fixed(0.9)).ok


def test_a_capitalised_opener_does_not_change_the_name() -> None:
    a = [{"role": "user", "content": "Book Sakura Sushi for two on Friday"}]
    b = [{"role": "user", "content": "Could you book Sakura Sushi for two on Friday?"}]
    c = [{"role": "user", "content": "Could you book Taj Palace for two on Friday?"}]
    assert match_context(referent(a), referent(b), fixed(0.9)).ok
    assert not match_context(referent(a), referent(c), fixed(0.9)).ok


def test_reply_acts() -> None:
    assert reply_act("Yes, please do that.") == reply_act("sounds good, go ahead") == "affirm"
    assert reply_act("no thanks") == reply_act("nope, don't") == "deny"
    assert reply_act("What is a monad?") is None
    assert not match_final_turns("no thanks", "yes please").ok


def test_final_turns_compare_details_and_similarity() -> None:
    assert not match_final_turns("what about Tuesday?", "what about Wednesday?", fixed(0.99)).ok
    assert not match_final_turns("make it 3 then", "make it 4 then", fixed(0.99)).ok
    assert match_final_turns("the second one", "I'd like the second one.", fixed(0.85)).ok


def test_context_key_is_empty_only_when_history_cannot_matter() -> None:
    assert context_key("What is the capital of Peru?", CANCEL) == ""
    assert context_key("yes please", []) == ""
    assert context_key("Which gas is released?", CANCEL) != ""  # no embeddings: strict
    assert context_key("yes please", [Turn("assistant", "Cancel it?")]) != ""


def test_search_text_carries_the_referent_only_for_referring_turns() -> None:
    assert search_text("What is the capital of Peru?", CANCEL) == "What is the capital of Peru?"
    text = search_text("yes please", CANCEL)
    assert text.startswith(RENEWS["content"]) and "cancel it" in text and text.endswith("yes please")
    assert search_text("yes please", ANNUAL) != text
