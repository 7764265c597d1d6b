"""A JSON cache API for clients that call the model themselves (e.g. LangChain's remote mode).

``POST /semcache/v1/lookup`` and ``POST /semcache/v1/store`` take the same
scoping (tenant from the API key; model, params and user from the body), the
same auth and the same verifier as the OpenAI routes. ``params`` are normalised
as the chat route normalises a body's fields (``generation_params``), so a
question asked here and through ``/v1/chat/completions`` lands in one partition.
``history`` is the earlier turns, oldest first: ``{"role", "content"}`` objects (role user,
assistant or tool) or plain strings (user turns, the older form).
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field
from semcache.adapters.proxy.deps import PrincipalDep, StateDep
from semcache.adapters.proxy.intake import header_value, oversized
from semcache.adapters.proxy.models import User
from semcache.adapters.server.errors import bad_request

from semcache.lookup.partition import generation_params
from semcache.types import CacheRequest, Document, Scope

router = APIRouter(prefix="/semcache/v1", tags=["cache"])


class DocumentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1)
    source: str | None = Field(default=None, min_length=1)


class TurnIn(BaseModel):
    """One earlier turn of the conversation."""

    model_config = ConfigDict(extra="forbid")
    role: Literal["user", "assistant", "tool"]
    content: str


class LookupIn(BaseModel):
    """A question and its scope (the tenant comes from the API key)."""

    model_config = ConfigDict(extra="forbid")
    prompt: str = Field(min_length=1, description="the question (last user turn)")
    model: str = ""
    params: dict[str, Any] = Field(default_factory=dict, description="generation parameters that change the answer")
    user: User = None
    history: list[TurnIn | str] = Field(
        default_factory=list,
        description="earlier turns, oldest first: {role, content} objects or strings (user turns)")
    system: str | None = None
    documents: list[DocumentIn] = Field(default_factory=list)
    category: str | None = None
    threshold: float | None = Field(default=None, gt=0.0, le=1.0)


class StoreIn(LookupIn):
    response: Any = Field(description="the answer to store (any JSON)")
    tokens: int = Field(default=0, ge=0)
    cost: float = Field(default=0.0, ge=0.0)
    latency_ms: float = Field(default=0.0, ge=0.0)


class LookupOut(BaseModel):
    hit: bool
    match: str | None = None
    similarity: float | None = None
    entry_id: int | None = None
    response: Any = None
    category: str
    threshold: float
    best_similarity: float | None = None
    reason: str | None = None


class StoreOut(BaseModel):
    stored: bool
    entry_id: int | None = None


def _request(body: LookupIn, tenant: str, default_temperature: float) -> CacheRequest:
    if not body.prompt.strip():
        raise bad_request("prompt must not be blank", param="prompt")
    try:
        params = generation_params(body.params, endpoint="chat", default_temperature=default_temperature)
        scope = Scope.of(tenant=tenant, model=body.model, params=params, user=body.user)
        history = tuple(t if isinstance(t, str) else t.model_dump() for t in body.history)
        return CacheRequest(prompt=body.prompt, scope=scope, history=history, system=body.system,
                            documents=tuple(Document(d.text, d.source) for d in body.documents),
                            category=body.category, threshold=body.threshold)
    except (TypeError, ValueError) as exc:
        raise bad_request(str(exc)) from None


def _bypass(req: CacheRequest, max_chars: int, response: Response) -> str | None:
    """Why ``req`` is too large to embed (then it is neither looked up nor stored), or None."""
    why = oversized(req, max_chars)
    if why is not None:
        response.headers["x-semcache"] = "bypass"
        response.headers["x-semcache-reason"] = header_value(why)
    return why


@router.post("/lookup", response_model=LookupOut, summary="Look a question up in the cache")
async def lookup(body: LookupIn, state: StateDep, principal: PrincipalDep, response: Response) -> LookupOut:
    """Exact, then semantic lookup inside the caller's scope."""
    req = _request(body, principal.tenant, state.settings.default_temperature)
    why = _bypass(req, state.settings.max_prompt_chars, response)
    if why is not None:
        return LookupOut(hit=False, category=req.category or "", threshold=0.0, reason=why)
    try:
        result = await state.cache.alookup_detailed(req)
    except (TypeError, ValueError) as exc:  # e.g. an unknown category
        raise bad_request(str(exc), param="category") from None
    hit = result.hit
    return LookupOut(
        hit=hit is not None, match=hit.match if hit else None, similarity=hit.similarity if hit else None,
        entry_id=hit.entry_id if hit else None, response=hit.response if hit else None,
        category=result.category, threshold=result.threshold, best_similarity=result.best_similarity,
        reason=result.reason,
    )


@router.post("/store", response_model=StoreOut, summary="Store an answer")
async def store(body: StoreIn, state: StateDep, principal: PrincipalDep, response: Response) -> StoreOut:
    """Store an answer in the caller's scope; ``entry_id`` is null when policy says not to cache."""
    req = _request(body, principal.tenant, state.settings.default_temperature)
    if _bypass(req, state.settings.max_prompt_chars, response) is not None:
        return StoreOut(stored=False)
    try:
        entry_id = await state.cache.astore(req, body.response, tokens=body.tokens, cost=body.cost,
                                            latency_ms=body.latency_ms)
    except (TypeError, ValueError) as exc:
        raise bad_request(str(exc)) from None
    return StoreOut(stored=entry_id is not None, entry_id=entry_id)
