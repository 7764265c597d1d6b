"""Plain records that cross the store's boundary: what goes in, what comes out.

``NewEntry`` is an answer to store, ``EntryRow`` a read-only snapshot of a
stored one (embeddings as numpy arrays), ``HitDelta`` the savings one or more
hits add to an entry.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from semcache.storage.schema import utcnow


def check_vector(name: str, value: Any) -> None:
    if not isinstance(value, np.ndarray):
        raise ValueError(f"{name} must be a numpy array, got {type(value).__name__}")
    if value.ndim != 1 or value.size == 0 or value.dtype != np.float32:
        raise ValueError(
            f"{name} must be a non-empty 1-D float32 array, got shape {value.shape} dtype {value.dtype}"
        )
    if not np.isfinite(value).all():
        raise ValueError(f"{name} contains NaN or infinite values")


def _check_aware(name: str, value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        raise ValueError(f"{name} must be a timezone-aware datetime or None, got {value!r}")


def _check_amounts(owner: str, **values: Any) -> None:
    """Counts (count, tokens, tokens_saved) must be ints; every value finite and >= 0."""
    for name, value in values.items():
        is_count = name in ("count", "tokens", "tokens_saved")
        ok_type = isinstance(value, int) if is_count else isinstance(value, int | float)
        if isinstance(value, bool) or not ok_type or not math.isfinite(value) or value < 0:
            kind = "an int" if is_count else "a finite number"
            raise ValueError(f"{owner}.{name} must be {kind} >= 0, got {value!r}")


@dataclass(slots=True)
class NewEntry:
    """An answer to store, with its scope, context, embedding and source documents."""

    partition: str
    exact_key: str
    tenant: str
    model: str
    params_hash: str
    category: str
    prompt: str
    prompt_norm: str
    prompt_hash: str
    context_hash: str
    response: Any
    embedding: np.ndarray
    embedder: str
    user_id: str | None = None
    history: list[Any] = field(default_factory=list)  # str (user turn) or {role, content}
    history_embedding: np.ndarray | None = None
    expires_at: dt.datetime | None = None
    doc_keys: list[str] = field(default_factory=list)
    created_at: dt.datetime | None = None  # None: the time of the insert
    tokens: int = 0  # what the original answer cost upstream (what each hit saves)
    cost: float = 0.0
    latency_ms: float = 0.0

    def validate(self) -> None:
        """Raise ``ValueError``/``TypeError`` if this entry cannot be stored as given."""
        for name in ("partition", "exact_key", "tenant", "category", "prompt", "embedder"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"NewEntry.{name} must be a non-empty string, got {value!r}")
        for name in ("model", "params_hash", "prompt_norm", "prompt_hash", "context_hash"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(
                    f"NewEntry.{name} must be a str, got {type(getattr(self, name)).__name__}"
                )
        if self.user_id is not None and not isinstance(self.user_id, str):
            raise TypeError(f"NewEntry.user_id must be a str or None, got {self.user_id!r}")
        if isinstance(self.history, str) or not all(_is_turn(t) for t in self.history):
            raise TypeError("NewEntry.history must be a list of earlier turns: strings (user turns) "
                            "or {'role', 'content'} objects")
        if isinstance(self.doc_keys, str) or not all(
            isinstance(k, str) and k for k in self.doc_keys
        ):
            raise TypeError("NewEntry.doc_keys must be a list of non-empty strings")
        check_vector("NewEntry.embedding", self.embedding)
        if self.history_embedding is not None:
            check_vector("NewEntry.history_embedding", self.history_embedding)
        _check_aware("NewEntry.expires_at", self.expires_at)
        _check_amounts("NewEntry", tokens=self.tokens, cost=self.cost, latency_ms=self.latency_ms)
        _check_aware("NewEntry.created_at", self.created_at)
        try:
            json.dumps(self.response, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"NewEntry.response must be JSON-serialisable, got {type(self.response).__name__}: {exc}"
            ) from exc

    def to_row(self) -> dict[str, Any]:
        """Column values for the ``entries`` table."""
        history_emb = self.history_embedding
        return {
            "partition": self.partition,
            "exact_key": self.exact_key,
            "tenant": self.tenant,
            "model": self.model,
            "params_hash": self.params_hash,
            "user_id": self.user_id,
            "category": self.category,
            "prompt": self.prompt,
            "prompt_norm": self.prompt_norm,
            "prompt_hash": self.prompt_hash,
            "context_hash": self.context_hash,
            "history": list(self.history),
            "history_embedding": None if history_emb is None else history_emb.tobytes(),
            "response": self.response,
            "embedding": self.embedding.tobytes(),
            "embedder": self.embedder,
            "tokens": self.tokens,
            "cost": float(self.cost),
            "latency_ms": float(self.latency_ms),
            "created_at": self.created_at or utcnow(),
            "expires_at": self.expires_at,
            "hit_count": 0,
            "last_hit_at": None,
            "tokens_saved": 0,
            "cost_saved": 0.0,
            "latency_saved_ms": 0.0,
            "wrong_reports": 0,
        }


@dataclass(frozen=True, slots=True, eq=False)
class EntryRow:
    """A read-only snapshot of one stored entry (vectors are read-only float32 arrays)."""

    id: int
    tenant: str
    model: str
    params_hash: str
    user_id: str | None
    partition: str
    exact_key: str
    category: str
    prompt: str
    prompt_norm: str
    prompt_hash: str
    context_hash: str
    history: tuple[Any, ...]  # str (user turn) or {role, content}
    history_embedding: np.ndarray | None
    response: Any
    embedding: np.ndarray
    embedder: str
    tokens: int
    cost: float
    latency_ms: float
    created_at: dt.datetime
    expires_at: dt.datetime | None
    hit_count: int
    last_hit_at: dt.datetime | None
    tokens_saved: int
    cost_saved: float
    latency_saved_ms: float
    wrong_reports: int
    doc_keys: tuple[str, ...] = ()

    @classmethod
    def from_mapping(cls, row: Mapping[Any, Any], doc_keys: tuple[str, ...] = ()) -> EntryRow:
        values = dict(row)
        values["doc_keys"] = doc_keys
        values["history"] = tuple(values["history"] or ())
        values["embedding"] = np.frombuffer(values["embedding"], dtype=np.float32)
        if values["history_embedding"] is not None:
            values["history_embedding"] = np.frombuffer(
                values["history_embedding"], dtype=np.float32
            )
        return cls(**values)

    def is_expired(self, now: dt.datetime) -> bool:
        """True once ``now`` has reached the entry's expiry time."""
        return self.expires_at is not None and self.expires_at <= now


@dataclass(frozen=True, slots=True)
class HitDelta:
    """What ``count`` hits on one entry add: savings, and when the last hit was."""

    count: int = 1
    tokens_saved: int = 0
    cost_saved: float = 0.0
    latency_saved_ms: float = 0.0
    at: dt.datetime | None = None  # None: the time the hits are recorded

    def __post_init__(self) -> None:
        _check_amounts(
            "HitDelta",
            count=self.count,
            tokens_saved=self.tokens_saved,
            cost_saved=self.cost_saved,
            latency_saved_ms=self.latency_saved_ms,
        )
        _check_aware("HitDelta.at", self.at)

    def __add__(self, other: HitDelta) -> HitDelta:
        if not isinstance(other, HitDelta):
            return NotImplemented
        times = [t for t in (self.at, other.at) if t is not None]
        return HitDelta(
            count=self.count + other.count,
            tokens_saved=self.tokens_saved + other.tokens_saved,
            cost_saved=self.cost_saved + other.cost_saved,
            latency_saved_ms=self.latency_saved_ms + other.latency_saved_ms,
            at=max(times) if times else None,
        )


def _is_turn(item: Any) -> bool:
    return isinstance(item, str) or (isinstance(item, dict) and set(item) == {"role", "content"}
                                     and isinstance(item["role"], str) and isinstance(item["content"], str))
