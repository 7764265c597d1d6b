"""Does the final user turn refer back, and if so, does what it refers to match?

"Refers back" is decided from closed-class linguistic signals, not topic words: a reply act
("yes please"), an anaphor with no antecedent earlier in the turn (expletive "it", existential
"there" excepted), one-anaphora and list references ("the second one", "option 2"), comparative
anaphors ("instead"), ellipsis ("and on Friday?", "what about..."), short fragments, a short
answer to the assistant's question, a short question anchored only by "the ..."; and, given a
similarity, a question naming no entity, number or date that stays on the latest exchange's
topic. A referring turn matches only when its referent does (``referent``, ``match_context``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from functools import lru_cache

from semcache.lookup import turns as lex
from semcache.lookup.turns import Details, Turn, TurnLike, as_turns, details, words

SimilarityFn = Callable[[str, str], float]
# above every standalone question of the dev conversation split (max 0.33 to its history)
TOPIC_THRESHOLD = 0.35
# context texts (assistant turn, topic): the highest threshold reaching dev's best recall with
# traps served <= 0.03 (benchmarks/results/conversations.json, all-MiniLM-L6-v2)
CONTEXT_THRESHOLD = 0.625
FINAL_THRESHOLD = 0.80  # final user turns: the conversational category's threshold



@dataclass(frozen=True, slots=True)
class FollowUp:
    refers_back: bool
    reason: str = ""  # the signal that fired, e.g. "anaphor: it"; "" when standalone


def _tokens(text: str) -> tuple[list[str], list[str]]:
    raw = [t.replace("’", "'") for t in lex.TOKEN.findall(text)]
    return raw, [t.lower() for t in raw]


def reply_act(text: str) -> str | None:
    """"affirm" or "deny" for a bare reply ("yes please", "no thanks"), else None."""
    toks = [t for t in _tokens(text)[1] if t.isalnum() or "'" in t]
    if not toks or any(t not in lex.REPLY and t not in lex.FUNCTION for t in toks):
        return None
    if any(t in lex.DENY for t in toks):
        return "deny"
    return "affirm" if any(t in lex.AFFIRM or t in lex.REPLY for t in toks) else None


def _is_question_form(low: list[str]) -> bool:
    words_only = [t for t in low if t.isalnum() or "'" in t]
    return bool(words_only) and words_only[0] in lex.WH | lex.AUX


def _has_antecedent(raw: list[str], low: list[str], at: int) -> bool:
    """A name, or a determiner phrase, before ``at`` and separated from it by a clause boundary."""
    boundary = False
    for i in range(at - 1, -1, -1):
        if low[i] in lex.BOUNDARIES:
            boundary = True
            continue
        if not boundary:
            continue
        named = raw[i][:1].isupper() and low[i] not in lex.FUNCTION and i > 0
        phrase = low[i] in lex.DETERMINERS - {"this", "that", "these", "those"} and i + 1 < at and (
            low[i + 1] not in lex.FUNCTION)
        if named or phrase:
            return True
    return False


def _anaphor(raw: list[str], low: list[str]) -> str:
    """The first pronoun that needs an antecedent outside the turn, or ""."""
    n = len(low)
    for i, tok in enumerate(low):
        nxt = low[i + 1] if i + 1 < n else ""
        prev = low[i - 1] if i else ""
        if tok == "it" and any(w in ("to", "if", "whether") for w in low[i + 1:]):
            continue  # extraposition: "is it safe to ...", "is it an emergency if ..."
        if tok == "there" and (prev in lex.BE or nxt in lex.BE or nxt == "be"):
            continue  # existential: "is there a fee?"
        if tok == "there's":
            continue
        if tok == "that" and (nxt in lex.SUBJECTS - {"it", "this", "that"} or prev in {"so", "such", "now"}
                              or (i >= 2 and low[i - 2] in lex.DETERMINERS and prev not in lex.FUNCTION)):
            continue  # complementiser or relative pronoun
        if tok == "this" and nxt in lex.TIME_NOUNS:
            continue  # "this morning", "this Friday": a date, not a reference
        if tok in ("these", "those") and nxt in ("who", "which", "that", "with"):
            continue
        if tok in lex.ANAPHORS and not _has_antecedent(raw, low, i):
            return f"anaphor: {tok}"
    return ""


def _list_reference(low: list[str]) -> str:
    n = len(low)
    for i, tok in enumerate(low):
        nxt = low[i + 1] if i + 1 < n else ""
        if tok in ("one", "ones") and i and (not nxt or not nxt.isalnum() or nxt in lex.FUNCTION):
            return f"one-anaphora: {low[i - 1]} {tok}"
        if tok in lex.ORDINALS and i and low[i - 1] == "the" and (
                not nxt or not nxt.isalnum() or nxt in lex.FUNCTION | {"one", "ones"}):
            return f"ordinal: the {tok}"
        if tok in lex.LIST_NOUNS and nxt and (nxt.isdigit() or nxt in ("one", "two", "three", "four")):
            return f"list reference: {tok} {nxt}"
        if tok in lex.COMPARATIVE and not (tok == "other" and i and low[i - 1] == "each"):
            return f"comparative: {tok}"
    return ""


def _fragment(raw: list[str], low: list[str], last_assistant: str) -> str:
    """Ellipsis, bare phrases and short answers: turns that lack their own predicate."""
    words_only = [t for t in low if t.isalnum() or "'" in t]
    if words_only[0] in lex.OPENERS or tuple(words_only[:2]) in lex.OPENER_PAIRS:
        return f"ellipsis: {' '.join(words_only[:2])}"
    question = raw[-1] == "?" or _is_question_form(low)
    if words_only[0] in lex.PREPOSITIONS and not any(t in lex.WH | lex.AUX for t in words_only):
        return "fragment: prepositional phrase"
    if len(words_only) <= 3 and not _is_question_form(low):
        info = details(" ".join(raw))
        bare = all(t in lex.FUNCTION or t.isdigit() for t in words_only) or bool(info.dates | info.numbers)
        if raw[-1] == "?" or bare or all(r[:1].isupper() or r.isdigit() for r in raw if r.isalnum()):
            return "fragment: short"
    if "?" in last_assistant and not question and len(words_only) <= 6:
        return "answer to the assistant's question"
    if question and len(words_only) <= 10 and "the" in words_only:
        info = details(" ".join(raw))
        anchored = info.entities or info.numbers or info.dates or any(
            t in lex.DETERMINERS - {"the", "this", "that", "these", "those"} for t in words_only) or any(
            _of_complement(words_only, i) for i, t in enumerate(words_only) if t == "the")
        if not anchored:
            return "definite description without an anchor"
    return ""


def _of_complement(words_only: list[str], at: int) -> bool:
    """"the boiling point of water": the description carries its own anchor."""
    for j in range(at + 2, min(at + 5, len(words_only) - 1)):
        if words_only[j] == "of" and words_only[j + 1] not in lex.FUNCTION:
            return True
    return False


def refers_back(prompt: str, history: Iterable[TurnLike] = (), similarity: SimilarityFn | None = None,
                *, topic_threshold: float = TOPIC_THRESHOLD) -> FollowUp:
    """Whether ``prompt`` (the final user turn) depends on the turns before it.

    With ``similarity``, a question naming no entity, number or date that stays on the topic of
    the latest exchange (similarity >= ``topic_threshold``) refers back too ("what gas is
    released as a byproduct?" after photosynthesis).
    """
    turns = as_turns(history)
    last_assistant = next((t.content for t in reversed(turns) if t.role == "assistant"), "")
    signal = _signal(prompt, last_assistant)
    if signal is not None:
        return signal
    if similarity is not None and turns:
        return _continues_topic(prompt, turns, similarity, topic_threshold)
    return FollowUp(False)


@lru_cache(maxsize=8192)  # a pure function of two texts; one lookup asks several times
def _signal(prompt: str, last_assistant: str) -> FollowUp | None:
    """The closed-class signal that ``prompt`` refers back, or None."""
    raw, low = _tokens(prompt)
    if not any(t.isalnum() for t in low):
        return FollowUp(True, "empty")
    if reply_act(prompt) is not None:
        return FollowUp(True, "reply")
    if low[0] in lex.PARTICLES:  # "Great, reserve it." -> judge what follows the particle
        rest = prompt[prompt.lower().index(low[0]) + len(low[0]):].lstrip(" ,.!;:-")
        inner = refers_back(rest, ()) if rest.strip() else FollowUp(True, "reply")
        if inner.refers_back or not _is_question_form(_tokens(rest)[1]):
            return FollowUp(True, f"reply + {inner.reason or 'statement'}")
    for reason in (_anaphor(raw, low), _list_reference(low), _fragment(raw, low, last_assistant)):
        if reason:
            return FollowUp(True, reason)
    return None


def _continues_topic(prompt: str, turns: Sequence[Turn], similarity: SimilarityFn,
                     threshold: float) -> FollowUp:
    info = details(prompt)
    if info.entities or info.numbers or info.dates:
        return FollowUp(False)  # it names its own topic
    latest = [next((t.content for t in reversed(turns) if t.role == role), "") for role in
              ("user", "assistant")]
    scores = [float(similarity(prompt, text)) for text in latest if text]
    if scores and max(scores) >= threshold:
        return FollowUp(True, f"continues the topic (similarity {max(scores):.2f})")
    return FollowUp(False)


@dataclass(frozen=True, slots=True)
class Referent:
    """What a referring turn depends on, in a comparable form."""

    offer: str = ""   # the last assistant turn: its offer, question or list
    anchor: str = ""  # the latest self-contained user turn: the topic
    details: Details = Details()  # entities, numbers, dates from the anchor on

    @property
    def key(self) -> str:
        """A stable digest for exact lookups: equal keys mean the same normalised referent."""
        h = hashlib.blake2b(digest_size=16)
        parts = [_norm(self.offer), _norm(self.anchor)] + [
            ",".join(sorted(getattr(self.details, f))) for f in ("entities", "numbers", "dates")]
        for part in parts:
            h.update(part.encode("utf-8") + b"\x00")
        return h.hexdigest()


def _norm(text: str) -> str:
    return " ".join(words(text))


def referent(history: Iterable[TurnLike], *, max_turns: int = 8) -> Referent:
    """The referent of a final user turn that follows ``history`` (the latest ``max_turns``)."""
    return _referent(as_turns(history)[-max_turns:] if max_turns > 0 else ())


@lru_cache(maxsize=4096)  # a pure function of the turns; one lookup asks several times
def _referent(turns: tuple[Turn, ...]) -> Referent:
    offer = next((t.content for t in reversed(turns) if t.role == "assistant"), "")
    start, anchor = 0, ""
    for i in range(len(turns) - 1, -1, -1):
        if turns[i].role == "user" and not refers_back(turns[i].content, turns[:i]).refers_back:
            start, anchor = i, turns[i].content
            break
    found = details(offer)
    for turn in turns[start:]:
        if turn.role in ("user", "tool"):
            found = found | details(turn.content)
    return Referent(offer, anchor, found)


def clear_memos() -> None:
    """Empty the memo caches of the pure functions here (a benchmark's cold lookups)."""
    for memo in (_signal, _referent, details):
        memo.cache_clear()


@dataclass(frozen=True, slots=True)
class ContextMatch:
    ok: bool
    reason: str = ""  # why not, when not ok
    similarity: float | None = None  # the lowest text similarity compared


def _content_change(a: str, b: str, min_overlap: float = 0.6) -> str:
    """A content word replaced between two texts of one frame (a detail, not a rewording).

    Same frame: mostly the same words, or the same sequence of function words. Added or
    dropped words ("I'd like the second one") are elaboration, not a swap.
    """
    wa, wb = words(a), words(b)
    matcher = SequenceMatcher(None, wa, wb, autojunk=False)
    skeleton = [w for w in wa if w in lex.FUNCTION] == [w for w in wb if w in lex.FUNCTION]
    if matcher.ratio() < min_overlap and not skeleton:
        return ""
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        changed = [w for w in wa[i1:i2] + wb[j1:j2] if w not in lex.FUNCTION]
        if op == "replace" and changed:
            return changed[0]
    return ""


def _match_text(field: str, a: str, b: str, similarity: SimilarityFn | None,
                threshold: float) -> ContextMatch:
    if _norm(a) == _norm(b):
        return ContextMatch(True, similarity=1.0)
    if not a or not b:
        return ContextMatch(False, f"{field}: present on one side only")
    swapped = _content_change(a, b)
    if swapped:
        return ContextMatch(False, f"{field}: differs in {swapped!r}")
    if similarity is None:
        return ContextMatch(False, f"{field}: differs and no similarity was given")
    sim = float(similarity(a, b))
    if sim < threshold:
        return ContextMatch(False, f"{field}: similarity {sim:.2f} < {threshold:.2f}", sim)
    return ContextMatch(True, similarity=sim)


def _match_details(a: Details, b: Details) -> ContextMatch:
    for field in ("entities", "numbers", "dates"):
        x, y = getattr(a, field), getattr(b, field)
        if field == "entities":
            x, y = _collapse(x, x | y), _collapse(y, x | y)
        if field == "numbers":  # "at 7" beside "7pm" is the hour of that time, not another number
            times = {t for t in x & y if ":" in t}
            x, y = (frozenset(n for n in v if not _hour_of(n, times)) for v in (x, y))
        if x != y:
            return ContextMatch(False, f"{field} differ: {sorted(x ^ y)}")
    return ContextMatch(True)


def _collapse(names: frozenset[str], known: frozenset[str]) -> frozenset[str]:
    """"see dr kim" -> "dr kim" when that is known: a capitalised sentence opener joined the name."""
    return frozenset(n.split(" ", 1)[1] if " " in n and n.split(" ", 1)[1] in known else n
                     for n in names)


def _hour_of(number: str, times: set[str]) -> bool:
    return number.isdigit() and 1 <= int(number) <= 12 and bool(
        {f"{int(number)}:00", f"{int(number) + 12}:00"} & times)


def match_context(query: Referent, cached: Referent, similarity: SimilarityFn | None = None, *,
                  threshold: float = CONTEXT_THRESHOLD) -> ContextMatch:
    """Equal entities, numbers and dates; assistant turn and topic equal or close in meaning."""
    verdict = _match_details(query.details, cached.details)
    if not verdict.ok:
        return verdict
    lowest: float | None = None
    for field, a, b in (("assistant turn", query.offer, cached.offer),
                        ("topic", query.anchor, cached.anchor)):
        verdict = _match_text(field, a, b, similarity, threshold)
        if not verdict.ok:
            return verdict
        if verdict.similarity is not None:
            lowest = verdict.similarity if lowest is None else min(lowest, verdict.similarity)
    return ContextMatch(True, similarity=lowest)


def match_final_turns(query: str, cached: str, similarity: SimilarityFn | None = None, *,
                      threshold: float = FINAL_THRESHOLD) -> ContextMatch:
    """The final user turns: the same reply act, or the same details and close in meaning."""
    act_q, act_c = reply_act(query), reply_act(cached)
    if act_q is not None and act_c is not None:
        return ContextMatch(act_q == act_c, "" if act_q == act_c else f"reply {act_q} vs {act_c}")
    verdict = _match_details(details(query), details(cached))
    return verdict if not verdict.ok else _match_text("final turn", query, cached, similarity, threshold)


def match_conversations(query: str, query_history: Sequence[TurnLike], cached: str,
                        cached_history: Sequence[TurnLike], similarity: SimilarityFn | None = None,
                        *, threshold: float = CONTEXT_THRESHOLD) -> ContextMatch:
    """Whether the contexts of two final turns agree; standalone turns ignore their history."""
    back_q = refers_back(query, query_history, similarity).refers_back
    back_c = refers_back(cached, cached_history, similarity).refers_back
    if not (back_q or back_c):
        return ContextMatch(True)
    return match_context(referent(query_history), referent(cached_history), similarity,
                         threshold=threshold)


def search_text(prompt: str, history: Iterable[TurnLike] = (),
                similarity: SimilarityFn | None = None) -> str:
    """What to embed for the index search: the prompt, preceded by its referent when it refers back.

    "yes please" alone lands on every stored "yes please"; with the topic and the assistant's
    offer in front, the search finds the entries of the same conversation state first.
    """
    turns = as_turns(history)
    if not refers_back(prompt, turns, similarity).refers_back:
        return prompt
    ref = referent(turns)
    return "\n".join(part for part in (ref.anchor, ref.offer, prompt) if part)


def context_key(prompt: str, history: Iterable[TurnLike] = ()) -> str:
    """For the exact path: "" when ``prompt`` cannot depend on ``history``, else its referent's digest.

    Without embeddings the topic test is unavailable, so a prompt naming no entity, number or
    date after earlier turns keys on its referent too (strict: the semantic path may still hit).
    """
    turns = as_turns(history)
    if not turns:
        return ""
    info = details(prompt)
    unanchored = not (info.entities or info.numbers or info.dates)
    return referent(turns).key if unanchored or refers_back(prompt, turns).refers_back else ""
