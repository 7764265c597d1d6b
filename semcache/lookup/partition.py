"""A request's identity: the one recipe for its partition key.

The index is split by partition and the exact path hashes it, so a request only ever
meets entries of its own partition. Every way in (proxy, cache API, LangChain,
single-flight) gets the key from ``partition_key`` through ``CacheRequest.partition()``,
after normalising parameters with ``generation_params``. The key carries
``PARTITION_VERSION``. Version 2 covers tenant, model, generation parameters, user, system
prompt and the documents as a set (sorted, duplicates dropped) unless the category's policy
asks for their exact order; version 1 hashed documents in order. Entries stored under another
version are never searched, so they miss rather than answer wrongly (docs/proxy.md)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal

PARTITION_VERSION = 2
DocumentOrder = Literal["set", "exact"]
DOCUMENT_ORDERS: tuple[str, ...] = ("set", "exact")

# Fields of an OpenAI-style body that do not change the answer (or enter elsewhere: messages,
# prompt, documents, the model). Everything else partitions, so an unknown field never leaks.
NON_SEMANTIC_FIELDS = frozenset({
    "messages", "prompt", "documents", "model", "stream", "stream_options", "user", "metadata",
    "store", "service_tier", "request_id", "priority",
})


def stable_hash(*parts: str, length: int = 32) -> str:
    """A short, stable hex digest of the given strings (length-prefixed, unambiguous)."""
    h = hashlib.blake2b(digest_size=32)
    for part in parts:
        data = part.encode("utf-8")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()[:length]


def params_hash(params: Mapping[str, Any] | None) -> str:
    """Hash of the generation parameters that change an answer (order-independent)."""
    if not params:
        return ""
    try:
        blob = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    except (TypeError, ValueError) as exc:  # pragma: no cover - default=str covers most
        raise ValueError(f"generation params must be JSON-serialisable, got {params!r}") from exc
    return stable_hash(blob, length=16)


def generation_params(fields: Mapping[str, Any], *, endpoint: str = "chat",
                      default_temperature: float = 0.0) -> dict[str, Any]:
    """The parameters that change an answer: every field but ``NON_SEMANTIC_FIELDS``, the
    effective temperature (``default_temperature`` when absent) and the endpoint."""
    temperature = fields.get("temperature")
    if temperature is None:
        temperature = default_temperature
    if isinstance(temperature, bool) or not isinstance(temperature, int | float):
        raise ValueError(f"temperature must be a number, got {temperature!r}")
    params = {k: v for k, v in fields.items() if k not in NON_SEMANTIC_FIELDS}
    params["temperature"] = float(temperature)
    params["_endpoint"] = endpoint
    return params


def ordered_documents(document_hashes: Sequence[str], order: DocumentOrder = "set") -> tuple[str, ...]:
    """The document hashes as the key sees them: a sorted set, or as given for ``"exact"``."""
    if order not in DOCUMENT_ORDERS:
        raise ValueError(f"document order must be one of {DOCUMENT_ORDERS}, got {order!r}")
    return tuple(document_hashes) if order == "exact" else tuple(sorted(set(document_hashes)))


def context_hash(system: str | None, document_hashes: Sequence[str], order: DocumentOrder = "set") -> str:
    """The exact context: the whitespace-normalised system prompt and the documents' hashes."""
    return stable_hash(" ".join((system or "").split()), order,
                       *ordered_documents(document_hashes, order))


def partition_key(*, tenant: str, model: str, params: str, user: str | None,
                  system: str | None, document_hashes: Sequence[str],
                  document_order: DocumentOrder = "set") -> str:
    """The partition of a request: ``v<PARTITION_VERSION>:`` and a hash of what it covers.

    ``params`` is the ``params_hash`` of the generation parameters; ``document_order``
    says whether the documents count as a set or in their exact order.
    """
    scope_key = stable_hash(tenant, model, params, user or "\x00")
    context = context_hash(system, document_hashes, document_order)
    return f"v{PARTITION_VERSION}:{stable_hash(scope_key, context)}"
