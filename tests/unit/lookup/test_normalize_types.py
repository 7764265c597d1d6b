import pytest

from semcache.lookup.normalize import exact_key, normalize_text
from semcache.types import CacheRequest, Document, Scope, params_hash

pytestmark = pytest.mark.unit


def test_normalisation_ignores_case_spacing_and_trailing_punctuation():
    assert normalize_text("  How do I  reverse a LIST?? ") == normalize_text("how do i reverse a list")
    assert normalize_text("10 mg") != normalize_text("100 mg")
    assert normalize_text("a b") != normalize_text("b a")


def test_exact_key_depends_on_partition_prompt_and_what_the_prompt_refers_to():
    base = exact_key("p1", "Who is he?", ("Tell me about Obama",))
    assert base == exact_key("p1", "who is he", ("Tell me about  Obama",))
    assert base != exact_key("p2", "Who is he?", ("Tell me about Obama",))
    assert base != exact_key("p1", "Who is he?", ("Tell me about Macron",))
    assert base != exact_key("p1", "Who is he?")


def test_exact_key_ignores_history_a_self_contained_prompt_does_not_need():
    chat = ("I love football", {"role": "assistant", "content": "Which team do you support?"})
    assert exact_key("p1", "What is the capital of France?", chat) == exact_key("p1", "What is the capital of France?")


def test_exact_key_never_shared_across_assistant_turns():
    offer = lambda text: ("My Streamly plan renews tomorrow", {"role": "assistant", "content": text})  # noqa: E731
    cancel = exact_key("p1", "yes please", offer("Shall I cancel it?"))
    assert cancel == exact_key("p1", "Yes please!", offer("Shall I cancel it?"))
    assert cancel != exact_key("p1", "yes please", offer("Shall I switch you to annual billing?"))


def test_partition_separates_scope_and_exact_context():
    a = CacheRequest("q", Scope.of("t1", "m", {"temperature": 0}))
    assert a.partition() == CacheRequest("q", Scope.of("t1", "m", {"temperature": 0})).partition()
    assert a.partition() != CacheRequest("q", Scope.of("t2", "m", {"temperature": 0})).partition()
    assert a.partition() != CacheRequest("q", Scope.of("t1", "m2", {"temperature": 0})).partition()
    assert a.partition() != CacheRequest("q", Scope.of("t1", "m", {"temperature": 0.7})).partition()
    assert a.partition() != CacheRequest("q", Scope.of("t1", "m", {"temperature": 0}, user="u")).partition()
    assert a.partition() != CacheRequest("q", a.scope, system="You are terse.").partition()
    docs = CacheRequest("q", a.scope, documents=(Document("v1 of the manual"),))
    updated = CacheRequest("q", a.scope, documents=(Document("v2 of the manual"),))
    assert docs.partition() != updated.partition() != a.partition()


def test_params_hash_is_order_independent():
    assert params_hash({"a": 1, "b": 2}) == params_hash({"b": 2, "a": 1})
    assert params_hash(None) == params_hash({}) == ""


@pytest.mark.parametrize(
    "kwargs, exc, message",
    [
        ({"prompt": ""}, ValueError, "non-empty"),
        ({"prompt": "   "}, ValueError, "non-empty"),
        ({"prompt": 42}, TypeError, "prompt must be a str"),
        ({"prompt": "q", "history": "earlier"}, TypeError, "history must be a sequence"),
        ({"prompt": "q", "history": ["ok", 3]}, TypeError, "expected a Turn, a mapping or a str"),
            ({"prompt": "q", "history": [{"role": "robot", "content": "x"}]}, ValueError, "turn role"),
        ({"prompt": "q", "threshold": 1.5}, ValueError, "threshold must be in"),
        ({"prompt": "q", "scope": "tenant"}, TypeError, "scope must be a Scope"),
    ],
)
def test_bad_requests_raise_clear_errors(kwargs, exc, message):
    with pytest.raises(exc, match=message):
        CacheRequest(**kwargs)


def test_scope_rejects_empty_tenant_and_documents_accept_strings():
    with pytest.raises(ValueError, match="tenant"):
        Scope(tenant="")
    req = CacheRequest("q", documents=("plain text doc",))
    assert isinstance(req.documents[0], Document)
    assert Document("x", source="kb/42").key == "kb/42"
