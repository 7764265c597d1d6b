import hashlib

import numpy as np
import pytest

from semcache.cache import SemanticCache
from semcache.lookup.context import ContextMatcher, Similarity, search_text, stored_history
from semcache.lookup.policies import PolicySet
from semcache.lookup.turns import Turn, as_turns
from semcache.tools.calibrate import calibrate_context
from semcache.tools.evaluate import EvalRow
from semcache.verify.base import PassThroughVerifier

pytestmark = pytest.mark.unit

TOPIC = {"role": "user", "content": "My Streamly subscription renews tomorrow."}
CANCEL = {"role": "assistant", "content": "12.99 will be taken tomorrow. Would you like me to cancel it?"}
ANNUAL = {"role": "assistant", "content": "12.99 will be taken tomorrow. Would you like me to switch to annual billing?"}


def embed(texts):
    return HashEmbedder().embed(list(texts))


def match(query, qh, cached, ch, matcher=None):
    return (matcher or ContextMatcher()).match(query, qh, None, cached, ch, None, embed=embed)


def test_no_history_on_either_side_matches():
    assert match("what is the capital of France?", (), "what is the capital of France?", ()).ok


def test_standalone_final_turn_ignores_unrelated_history():
    chat = [{"role": "user", "content": "I love football"}, {"role": "assistant", "content": "Which team?"}]
    assert match("What is the capital of France?", chat, "What is the capital of France?", ()).ok


def test_reply_after_another_assistant_offer_misses():
    miss = match("yes please", [TOPIC, ANNUAL], "yes please", [TOPIC, CANCEL])
    assert not miss.ok and "refers back (reply)" in miss.reason and "assistant turn" in miss.reason
    assert match("yes please", [TOPIC, CANCEL], "yes please", [TOPIC, CANCEL]).ok


def test_referring_turn_needs_the_same_details():
    booked = [{"role": "user", "content": "A table at Luigi's for 4 tonight"},
              {"role": "assistant", "content": "Luigi's has a table at 8pm. Shall I book it?"}]
    other = [{"role": t["role"], "content": t["content"].replace("Luigi", "Mario")} for t in booked]
    miss = match("Book it.", other, "Book it.", booked)
    assert not miss.ok and "entities differ" in miss.reason


def test_window_keeps_the_latest_turns_of_every_role():
    cm = ContextMatcher(max_turns=2)
    assert cm.window(["a", CANCEL, "c"]) == (Turn("assistant", CANCEL["content"]), Turn("user", "c"))
    assert cm.embed([], embed) is None
    assert cm.embed(["a", CANCEL, "c"], embed).shape == (2, HashEmbedder.dim)


def test_similarity_embeds_each_missing_text_once():
    calls = []

    def counting(texts):
        calls.append(list(texts))
        return embed(texts)

    sim = Similarity(counting)
    sim.add(["a b"], embed(["a b"]))
    assert sim("a b", "a b c") == pytest.approx(float(embed(["a b"])[0] @ embed(["a b c"])[0]), abs=1e-6)
    sim("a b c", "a b")
    assert calls == [["a b c"]]


def test_stored_history_keeps_user_turns_as_strings_and_reads_back():
    kept = stored_history(["hi", CANCEL, {"role": "tool", "content": "42"}])
    assert kept == ["hi", CANCEL, {"role": "tool", "content": "42"}]
    assert as_turns(kept) == (Turn("user", "hi"), Turn("assistant", CANCEL["content"]), Turn("tool", "42"))


def test_search_text_puts_the_referent_in_front_of_a_referring_turn():
    assert search_text("What is the capital of France?", [TOPIC, CANCEL]) == "What is the capital of France?"
    text = search_text("yes please", [TOPIC, CANCEL])
    assert text.startswith(TOPIC["content"]) and CANCEL["content"] in text and text.endswith("yes please")


def test_bad_arguments():
    with pytest.raises(ValueError):
        ContextMatcher(threshold=0)
    with pytest.raises(ValueError):
        ContextMatcher(max_turns=0)
    with pytest.raises(ValueError):
        ContextMatcher(topic_threshold=1.5)


def test_with_threshold_keeps_the_window():
    cm = ContextMatcher(threshold=0.7, max_turns=2).with_threshold(0.5)
    assert cm.threshold == 0.5 and cm.max_turns == 2
    with pytest.raises(ValueError):
        cm.with_threshold(1.5)


# -- calibrate_context --------------------------------------------------------------------------

class HashEmbedder:
    """Bag of hashed words: cosine grows with shared words; no model."""

    name, version, dim = "hash-words", "1", 256

    def embed(self, texts):
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().replace("?", " ").split():
                out[row, int(hashlib.sha1(word.encode()).hexdigest(), 16) % self.dim] += 1.0
        out[:, 0] += 1e-3
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    def embed_one(self, text):
        return self.embed([text])[0]


def _row(parent_cached, parent_query, should_hit):
    return EvalRow("how tall is it", "how tall is it", should_hit,
                   history_cached=(parent_cached,), history_query=(parent_query,))


@pytest.fixture
def loose_cache(tmp_path):
    """A cache whose candidate gate is low and whose verifier accepts all: only the
    context threshold decides, which is what calibrate_context sweeps."""
    base = PolicySet.from_file(None)
    policies = base.with_overrides({name: {"threshold": 0.3, "min_threshold": 0.3} for name, _ in base.items()})
    with SemanticCache(f"sqlite:///{tmp_path / 'c.db'}", embedder=HashEmbedder(), stats_interval=0,
                       policies=policies, verifier=PassThroughVerifier()) as cache:
        yield cache


def test_calibrate_context_separates_reworded_from_other_parents(loose_cache):
    hits = [_row("tell me about the eiffel tower", "tell me about the eiffel tower in paris", True),
            _row("describe the great wall of china", "describe the great wall of china for me", True)]
    misses = [_row("tell me about the eiffel tower", "tell me about the roman empire", False),
              _row("describe the great wall of china", "describe the river nile", False)]
    original = loose_cache.context
    threshold, report = calibrate_context(loose_cache, hits + misses)
    emb = HashEmbedder()

    def cos(row):
        a, b = emb.embed([row.history_cached[0], row.history_query[0]])
        return float(a @ b)

    # the chosen threshold keeps every reworded parent and drops every other parent
    assert max(cos(r) for r in misses) < threshold <= min(cos(r) for r in hits)
    assert report["chosen"]["accuracy"] == 1.0
    assert loose_cache.context is original  # restored after the sweep
    # ties go to the higher threshold: precision first
    best = [c["threshold"] for c in report["curve"] if c["accuracy"] == 1.0]
    assert threshold == max(best)


def test_calibrate_context_needs_multi_turn_rows(loose_cache):
    with pytest.raises(ValueError, match="history"):
        calibrate_context(loose_cache, [EvalRow("a", "a", True)])
