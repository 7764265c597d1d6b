"""The verifier hook: a second opinion on each HNSW candidate.

An embedding search finds candidates that *look* alike; the verifier decides
whether the cached question really asks the same thing as the new one. The
hard-negative verifier lives in ``semcache.verify``; ``PassThroughVerifier``
accepts everything and exists for baselines and tests.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from semcache.types import Verdict


@runtime_checkable
class Verifier(Protocol):
    def verify(self, query: str, cached: str, *, category: str = "other",
               in_context: bool = False) -> Verdict:
        """Decide whether ``cached``'s answer may be served for ``query``.

        ``in_context`` is True for follow-up questions whose earlier turns have
        already been matched; a verifier may then judge the wording less strictly.
        """
        ...


class PassThroughVerifier:
    """Accepts every candidate: the plain global-threshold behaviour of other caches."""

    name = "passthrough"

    def verify(self, query: str, cached: str, *, category: str = "other",
               in_context: bool = False) -> Verdict:
        return Verdict(accepted=True)
