"""OpenAI-compatible routes: cached completions, passed-through models and other /v1 routes."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from semcache.adapters.proxy.deps import PrincipalDep, StateDep
from semcache.adapters.proxy.handler import CompletionHandler
from semcache.adapters.proxy.models import ChatBody, CompletionsBody
from semcache.adapters.proxy.schemas import openapi_body
from semcache.adapters.server.errors import ProxyError

router = APIRouter(tags=["openai"])

# First path segments under /v1 that are forwarded (uncached); anything else is a 404.
PASSTHROUGH = frozenset({
    "models", "embeddings", "moderations", "audio", "images", "files", "batches", "responses",
    "rerank", "score", "tokenize", "detokenize", "fine_tuning", "uploads", "vector_stores",
    "assistants", "threads", "classify", "pooling",
})


@router.post("/v1/chat/completions", openapi_extra=openapi_body(ChatBody),
             summary="Chat completion through the cache")
async def chat_completions(request: Request, state: StateDep, principal: PrincipalDep) -> Response:
    """OpenAI chat completions: exact, then semantic lookup; on a miss the upstream answers."""
    return await CompletionHandler(state).handle("chat", request, principal)


@router.post("/v1/completions", openapi_extra=openapi_body(CompletionsBody),
             summary="Text completion through the cache")
async def completions(request: Request, state: StateDep, principal: PrincipalDep) -> Response:
    """OpenAI (legacy) completions, cached like chat completions."""
    return await CompletionHandler(state).handle("completions", request, principal)


@router.get("/v1/models", summary="Models of the upstream (passed through)")
async def models(request: Request, state: StateDep, principal: PrincipalDep) -> Response:
    """The upstream's model list, unchanged."""
    return await CompletionHandler(state).passthrough(request, "/v1/models")


@router.api_route("/v1/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
async def other_v1(path: str, request: Request, state: StateDep, principal: PrincipalDep) -> Response:
    """Other OpenAI routes go to the upstream uncached; unknown ones get an OpenAI-format 404."""
    if path.split("/", 1)[0] not in PASSTHROUGH:
        raise ProxyError(404, f"Unknown route {request.method} /v1/{path}", code="unknown_route")
    return await CompletionHandler(state).passthrough(request, f"/v1/{path}")
