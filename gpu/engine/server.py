"""OpenAI-compatible HTTP API over an ``Engine`` (FastAPI): chat and completions, with streaming.

Routes: ``GET /health``, ``GET /v1/models``, ``POST /v1/chat/completions``, ``POST /v1/completions``.
Every completion response carries the header ``x-semcache-ttft-ms`` (time to the first token,
queueing included; for streams it is known before the first byte is sent, because the first
token is computed before the response starts) and a ``semcache`` object in the body (in the last
chunk of a stream). Errors use OpenAI's ``{"error": {...}}`` format. The engine runs in the
thread pool, one request at a time (its lock); the event loop stays free.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from semcache.gpu.engine import protocol as p
from semcache.gpu.engine.engine import Engine, GenerationStream, PrefillReport
from starlette.concurrency import run_in_threadpool

DEFAULT_MAX_TOKENS = 256
TTFT_HEADER = "x-semcache-ttft-ms"
_END = object()
log = logging.getLogger("semcache.gpu.engine")


def _error(status: int, message: str, type_: str = "invalid_request_error",
           code: str | None = None) -> JSONResponse:
    return JSONResponse(p.error_body(message, type_, code), status_code=status)


def _usage(report: PrefillReport, completion_tokens: int) -> p.Usage:
    return p.Usage(prompt_tokens=report.prompt_tokens, completion_tokens=completion_tokens,
                   total_tokens=report.prompt_tokens + completion_tokens)


def _semcache(report: PrefillReport) -> p.SemcacheUsage:
    return p.SemcacheUsage(
        chunks=report.chunks, chunk_tokens=report.chunk_tokens, reused_tokens=report.reused_tokens,
        encoded_tokens=report.encoded_tokens, recomputed_tokens=report.recomputed_tokens,
        ratio=report.ratio, ttft_ms=round(report.ttft_ms, 2))


def _drain(stream: GenerationStream) -> None:
    for _ in stream:
        pass


def _next(stream: GenerationStream) -> Any:
    return next(iter(stream), _END)


class EngineRoutes:
    """The completion routes' work for one engine and served model name."""

    def __init__(self, engine: Engine, served_name: str) -> None:
        self.engine, self.served_name = engine, served_name

    def start(self, req: p.ChatCompletionRequest | p.CompletionRequest) -> GenerationStream | JSONResponse:
        if req.model != self.served_name:
            return _error(404, f"The model `{req.model}` does not exist.", code="model_not_found")
        common = dict(chunks=req.chunks(), max_tokens=req.token_limit(DEFAULT_MAX_TOKENS),
                      temperature=req.temperature, top_p=req.top_p, seed=req.seed,
                      ratio=req.ratio())
        try:
            stop = req.stop_list()
            if isinstance(req, p.ChatCompletionRequest):
                messages = [{"role": m.role, "content": m.text()} for m in req.messages]
                return self.engine.stream(messages, stop=stop, **common)  # type: ignore[arg-type]
            return self.engine.stream(prompt=req.prompt, stop=stop, **common)  # type: ignore[arg-type]
        except (ValueError, TypeError) as exc:
            return _error(400, str(exc))

    async def respond(self, req: p.ChatCompletionRequest | p.CompletionRequest) -> Response:
        stream = await run_in_threadpool(self.start, req)  # tokenising a long prompt takes a while
        if isinstance(stream, JSONResponse):
            return stream
        chat = isinstance(req, p.ChatCompletionRequest)
        rid = p.new_id("chatcmpl" if chat else "cmpl")
        if not req.stream:
            try:
                await run_in_threadpool(_drain, stream)
            finally:
                stream.close()
            assert stream.report is not None and stream.finish_reason is not None
            return self.complete(chat, rid, stream)
        try:
            first = await run_in_threadpool(_next, stream)
        except BaseException:
            stream.close()
            raise
        assert stream.report is not None
        headers = {TTFT_HEADER: f"{stream.report.ttft_ms:.2f}"}
        return StreamingResponse(self.sse_events(chat, rid, stream, first, req.include_usage()),
                                 media_type="text/event-stream", headers=headers)

    def complete(self, chat: bool, rid: str, stream: GenerationStream) -> JSONResponse:
        report, finish = stream.report, stream.finish_reason
        assert report is not None and finish in ("stop", "length")
        usage, extra = _usage(report, len(stream.token_ids)), _semcache(report)
        body: p.ChatCompletion | p.Completion
        if chat:
            body = p.ChatCompletion(
                id=rid, created=p.now(), model=self.served_name, usage=usage, semcache=extra,
                choices=[p.ChatChoice(message=p.ChatCompletionMessage(content=stream.text),
                                      finish_reason=finish)])  # type: ignore[arg-type]
        else:
            body = p.Completion(
                id=rid, created=p.now(), model=self.served_name, usage=usage, semcache=extra,
                choices=[p.CompletionChoice(text=stream.text, finish_reason=finish)])  # type: ignore[arg-type]
        return JSONResponse(body.model_dump(), headers={TTFT_HEADER: f"{report.ttft_ms:.2f}"})

    def chunk(self, chat: bool, rid: str, created: int, text: str | None, finish: str | None = None,
              role: bool = False, usage: p.Usage | None = None,
              extra: p.SemcacheUsage | None = None, empty: bool = False) -> bytes:  # fmt: skip
        name = self.served_name
        if chat:
            choices = [] if empty else [p.ChatChunkChoice(
                delta=p.ChatDelta(role="assistant" if role else None, content=text),
                finish_reason=finish)]  # type: ignore[arg-type]
            return p.sse(p.ChatCompletionChunk(id=rid, created=created, model=name,
                                               choices=choices, usage=usage, semcache=extra))
        cchoices = [] if empty else [p.CompletionChunkChoice(text=text or "", finish_reason=finish)]  # type: ignore[arg-type]
        return p.sse(p.CompletionChunk(id=rid, created=created, model=name,
                                       choices=cchoices, usage=usage, semcache=extra))

    async def sse_events(self, chat: bool, rid: str, stream: GenerationStream, first: Any,
                         include_usage: bool) -> AsyncIterator[bytes]:  # fmt: skip
        created = p.now()
        try:
            if chat:
                yield self.chunk(chat, rid, created, "", role=True)
            delta = first
            while delta is not _END:
                yield self.chunk(chat, rid, created, delta)
                delta = await run_in_threadpool(_next, stream)
            assert stream.report is not None
            yield self.chunk(chat, rid, created, None if chat else "", finish=stream.finish_reason,
                             extra=_semcache(stream.report))
            if include_usage:
                yield self.chunk(chat, rid, created, None, empty=True,
                                 usage=_usage(stream.report, len(stream.token_ids)))
            yield p.DONE
        except Exception as exc:  # the status line is gone: report in-band, end without [DONE]
            log.exception("generation failed mid-stream")
            yield p.sse(json.dumps(p.error_body(str(exc), "server_error")))
        finally:
            stream.close()


def create_engine_app(engine: Engine, served_name: str = "smollm2") -> FastAPI:
    """The FastAPI app serving ``engine`` under the model name ``served_name``."""
    if not served_name:
        raise ValueError("served_name must be a non-empty string")
    app = FastAPI(title="semcache engine", version="1")
    app.state.engine = engine
    routes = EngineRoutes(engine, served_name)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
        return _error(400, f"{where}: {first.get('msg', 'invalid request')}" if where
                      else str(first.get("msg", "invalid request")))

    @app.exception_handler(Exception)
    async def _failed(_: Request, exc: Exception) -> JSONResponse:
        log.exception("request failed", exc_info=exc)
        return _error(500, f"engine error: {type(exc).__name__}: {exc}", "server_error")

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok", "model": served_name}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [
            {"id": served_name, "object": "model", "created": 0, "owned_by": "semcache"}]}

    @app.post("/v1/chat/completions")
    async def chat_completions(req: p.ChatCompletionRequest) -> Response:
        return await routes.respond(req)

    @app.post("/v1/completions")
    async def completions(req: p.CompletionRequest) -> Response:
        return await routes.respond(req)

    return app
