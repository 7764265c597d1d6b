"""The fixed context that chunk KV is computed after (the *anchor*).

A chunk computed truly alone turns its first tokens into attention sinks and looks like a
document's opening lines. Computing every chunk after one fixed, neutral context (the chat
template's system turn and ``ANCHOR_CONTEXT``, plain prose on an unrelated subject) removes both,
at no per-request cost. An operator may set a passage in the genre of their documents
(``EngineConfig.anchor_context``). KV computed under one anchor must not be mixed with another's:
``anchor_version`` is part of the blend design a quality gate is calibrated for. Figures:
``docs/design/gpu_blend.md``.
"""

from __future__ import annotations

from typing import Any


def _unwrap(text: str) -> str:
    """Paragraphs separated by blank lines, each joined back into one line."""
    return "\n\n".join(" ".join(p.split("\n")) for p in text.split("\n\n"))


ANCHOR_VERSION = "context-v1"
ANCHOR_SYSTEM = "Answer the question using only the reference documents below."
ANCHOR_CONTEXT = _unwrap("""\
Reference material: background notes.

Libraries keep two kinds of records about their holdings. The catalogue describes each item: its
title, its author or editor, where and when it was published, and the subjects it covers. The
circulation record says who has borrowed the item, when it is due back and whether anyone is
waiting for it. Catalogue entries change rarely; circulation entries change every day. Because the
two kinds of record are read and written so differently, most library systems store them separately
and join them only when a reader asks about a particular item.

A catalogue is only useful if its entries are consistent. Two librarians describing the same book
should produce the same heading for its author and the same subject terms, otherwise a search for
one form of the name misses the items filed under the other. For this reason cataloguing rules
specify, in detail, how names are written, how titles are transcribed from the title page, and how
editions and reprints are distinguished. When the rules change, old entries are usually left as
they are and a cross-reference connects the old heading to the new one.

Storage is a constant concern. Paper is damaged by light, heat, humidity and handling, so rare
items are kept in rooms with controlled climate and are shown to readers under supervision.
Frequently requested material is copied, and the copy is lent instead of the original. Digital
copies solve some problems and create others: file formats go out of use, storage media fail, and a
collection that is not checked regularly can lose items without anyone noticing until they are
needed.

Readers rarely know exactly what they are looking for. A common pattern is that a reader starts
with a vague question, finds one relevant item, and then follows its references and subject
headings to others. Good reference staff support this by asking what the reader already knows, what
the answer will be used for, and how much detail is needed. A short answer from a reliable general
source is often more helpful than a long list of specialised titles.

Measurements in these notes follow the usual conventions. Dates are given as year, month and day.
Quantities are stated with their units, and approximate figures are marked as such. Where two
sources disagree, both figures are reported together with the source of each, and the difference is
not averaged away. Quotations are reproduced exactly, including their original spelling, and any
omission is marked.

The documents that follow were collected from different sources and are presented in no particular
order. Each one should be read on its own terms: a statement in one document does not necessarily
apply to the others.""")


def anchor_version(context: str = ANCHOR_CONTEXT) -> str:
    """``ANCHOR_VERSION`` for the default passage, else a digest of the operator's passage."""
    if context == ANCHOR_CONTEXT:
        return ANCHOR_VERSION
    import hashlib

    return "custom-" + hashlib.blake2b(context.encode(), digest_size=8).hexdigest()


def anchor_ids(tokenizer: Any, system: str = ANCHOR_SYSTEM, context: str = ANCHOR_CONTEXT) -> list[int]:
    """Token ids of the anchor for ``tokenizer``: the ``system`` turn, then the ``context`` passage.

    Uses the same prompt layout as requests (``build_prompt``), so the anchor ends exactly where a
    request's first chunk would start. The defaults are the engine's anchor.
    """
    from semcache.gpu.chunks.ids import build_prompt

    if not context.strip():
        raise ValueError("the anchor context must not be empty")
    layout = build_prompt(tokenizer, system, [context], "")
    prefix, context = layout.segments[0], layout.segments[1]
    if prefix.chunk_id is not None or context.chunk_id is None:
        raise ValueError("the prompt layout has no system prefix before its chunks")
    return [*prefix.token_ids, *context.token_ids]
