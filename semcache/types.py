"""Value types shared by the cache core and its adapters.

A request is judged inside a *partition*: tenant, model, the generation
parameters that change the answer, an optional user, and the exact context
(system prompt and retrieved documents); ``semcache.lookup.partition`` builds
its key. The vector index is split by it, so a search can never return another
partition's entry.
Earlier conversation turns (user, assistant and tool, see ``semcache.lookup.turns``) are
the *soft* context: they matter only when the question refers back to them, and then what
it refers to must match (``semcache.lookup.context``). Documents count as a set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from semcache.lookup.partition import (
    DocumentOrder,
    context_hash,
    params_hash,
    partition_key,
    stable_hash,
)
from semcache.lookup.turns import Turn, TurnLike, as_turns

MatchKind = Literal["exact", "semantic"]
__all__ = ["CacheRequest", "Document", "Hit", "LookupResult", "MatchKind", "Rejection", "Scope",
           "Turn", "TurnLike", "Verdict", "params_hash", "stable_hash"]


@dataclass(frozen=True, slots=True)
class Scope:
    """Who may see an entry: tenant, model, generation parameters and optional user."""

    tenant: str = "default"
    model: str = ""
    params: str = ""  # params_hash(...) of the generation parameters
    user: str | None = None

    def __post_init__(self) -> None:
        for name in ("tenant", "model", "params"):
            value = getattr(self, name)
            if not isinstance(value, str):
                raise TypeError(f"Scope.{name} must be a str, got {type(value).__name__}")
        if not self.tenant:
            raise ValueError("Scope.tenant must be a non-empty string")
        if self.user is not None and not isinstance(self.user, str):
            raise TypeError(f"Scope.user must be a str or None, got {type(self.user).__name__}")

    @classmethod
    def of(
        cls,
        tenant: str = "default",
        model: str = "",
        params: Mapping[str, Any] | None = None,
        user: str | None = None,
    ) -> Scope:
        return cls(tenant=tenant, model=model, params=params_hash(params), user=user)

    def key(self) -> str:
        return stable_hash(self.tenant, self.model, self.params, self.user or "\x00")


@dataclass(frozen=True, slots=True)
class Document:
    """A retrieved document that conditioned the answer. ``source`` enables invalidation."""

    text: str
    source: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            raise TypeError(f"Document.text must be a str, got {type(self.text).__name__}")
        if self.source is not None and not isinstance(self.source, str):
            raise TypeError("Document.source must be a str or None")

    @property
    def content_hash(self) -> str:
        return stable_hash(" ".join(self.text.split()))

    @property
    def key(self) -> str:
        """What invalidation by source matches: the source id, else the content hash."""
        return self.source if self.source is not None else self.content_hash


@dataclass(frozen=True, slots=True)
class CacheRequest:
    """One question to look up or store.

    ``prompt`` is the user's question (the last user turn), which is what gets embedded.
    ``history`` holds the earlier turns, oldest first: ``Turn``s, ``{"role", "content"}``
    mappings or plain strings (user turns); it is kept as ``Turn``s. ``system`` and
    ``documents`` are exact context: a change in either misses. Documents are a set: exact
    duplicates are dropped, and the order counts only where the category's policy says so.
    """

    prompt: str
    scope: Scope = field(default_factory=Scope)
    history: tuple[Turn, ...] = ()
    system: str | None = None
    documents: tuple[Document, ...] = ()
    category: str | None = None  # force a category instead of the categoriser's
    threshold: float | None = None  # per-request override, clamped to policy bounds

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str):
            raise TypeError(f"prompt must be a str, got {type(self.prompt).__name__}")
        if not self.prompt.strip():
            raise ValueError("prompt must be a non-empty string")
        if not isinstance(self.scope, Scope):
            raise TypeError(f"scope must be a Scope, got {type(self.scope).__name__}")
        history: Any = self.history
        if isinstance(history, str | bytes | Mapping) or not isinstance(history, Sequence):
            raise TypeError("history must be a sequence of turns: {role, content} objects or strings "
                            f"(user turns), got {type(history).__name__}")
        object.__setattr__(self, "history", as_turns(history))
        docs = tuple(d if isinstance(d, Document) else Document(d) for d in self.documents)
        object.__setattr__(self, "documents", tuple(dict.fromkeys(docs)))  # exact duplicates dropped
        if self.system is not None and not isinstance(self.system, str):
            raise TypeError("system must be a str or None")
        if self.threshold is not None and not (0.0 < float(self.threshold) <= 1.0):
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold!r}")

    def context_hash(self, document_order: DocumentOrder = "set") -> str:
        """Exact context: system prompt and documents (whitespace-normalised)."""
        return context_hash(self.system, [d.content_hash for d in self.documents], document_order)

    def partition(self, document_order: DocumentOrder = "set") -> str:
        """The index partition (``semcache.lookup.partition.partition_key``)."""
        s = self.scope
        return partition_key(tenant=s.tenant, model=s.model, params=s.params, user=s.user,
                             system=self.system, document_hashes=[d.content_hash for d in self.documents],
                             document_order=document_order)


@dataclass(frozen=True, slots=True)
class Verdict:
    """A verifier's decision on one candidate, with a human-readable reason."""

    accepted: bool
    reason: str | None = None  # e.g. "number changed: 10 mg -> 100 mg"
    rule: str | None = None  # e.g. "number", "negation", "entity", "time", "scope"


@dataclass(frozen=True, slots=True)
class Hit:
    entry_id: int
    response: Any  # the stored JSON payload
    match: MatchKind
    similarity: float
    category: str
    cached_prompt: str


@dataclass(frozen=True, slots=True)
class Rejection:
    entry_id: int
    similarity: float
    reason: str
    rule: str | None = None


@dataclass(frozen=True, slots=True)
class LookupResult:
    """Everything a lookup decided: the hit (if any), the category and why not."""

    hit: Hit | None
    category: str
    threshold: float
    best_similarity: float | None = None
    rejections: tuple[Rejection, ...] = ()
    bypass_reason: str | None = None  # e.g. "category disabled"

    @property
    def reason(self) -> str | None:
        """Why the best candidate was rejected (None on a hit or with no candidate)."""
        if self.hit is not None:
            return None
        if self.bypass_reason:
            return self.bypass_reason
        return self.rejections[0].reason if self.rejections else None
