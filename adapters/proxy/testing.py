"""A fake OpenAI-compatible upstream, for tests and benchmarks of the proxy.

It answers ``/v1/chat/completions`` and ``/v1/completions`` (with and without
streaming), ``/v1/models``, ``/v1/embeddings`` and ``/metrics`` (vLLM's
``vllm:num_requests_waiting`` = requests in flight), deterministically, and
counts the calls it gets. Faults can be injected: an error status, a stream
that breaks off, an error event mid-stream, a ``tool_calls`` finish, a slow
answer. Use it in-process (``httpx.ASGITransport(app=FakeUpstream().app)``) or
as a server: ``python -m semcache.adapters.proxy.testing --port 8001``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

FAULTS = ("status", "break_stream", "error_event", "tool_calls", "bad_json", "no_done")


@dataclass
class FakeUpstream:
    """A deterministic OpenAI-compatible server with fault injection and call counting."""

    model: str = "fake-model"
    delay_s: float = 0.0
    fault: str | None = None
    fault_status: int = 500
    calls: int = 0
    inflight: int = 0
    bodies: list[dict[str, Any]] = field(default_factory=list)
    keep_bodies: bool = True

    def __post_init__(self) -> None:
        if self.fault is not None and self.fault not in FAULTS:
            raise ValueError(f"fault must be one of {FAULTS} or None, got {self.fault!r}")
        self.app = Starlette(routes=[
            Route("/v1/chat/completions", self._chat, methods=["POST"]),
            Route("/v1/completions", self._completions, methods=["POST"]),
            Route("/v1/models", self._models, methods=["GET"]),
            Route("/v1/embeddings", self._embeddings, methods=["POST"]),
            Route("/metrics", self._metrics, methods=["GET"]),
            Route("/control", self._control, methods=["POST"]),
        ])

    # --------------------------------------------------------------- helpers
    @staticmethod
    def answer(prompt: str, max_tokens: int | None) -> tuple[str, str]:
        """The deterministic answer text to ``prompt`` and its finish reason."""
        words = f"This is the answer to: {prompt}".split()
        limit = max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else 64
        return " ".join(words[:limit]), "length" if len(words) > limit else "stop"

    async def _enter(self, request: Request) -> dict[str, Any]:
        self.calls += 1
        body = await request.json()
        if self.keep_bodies:
            self.bodies.append(body)
        if self.delay_s:
            self.inflight += 1
            try:
                await asyncio.sleep(self.delay_s)
            finally:
                self.inflight -= 1
        return body

    def _error(self) -> Response:
        return JSONResponse({"error": {"message": f"injected fault {self.fault_status}", "type": "server_error",
                                       "code": self.fault_status}}, status_code=self.fault_status)

    # ---------------------------------------------------------------- routes
    async def _chat(self, request: Request) -> Response:
        body = await self._enter(request)
        messages = body.get("messages") or [{}]
        last = messages[-1].get("content") if isinstance(messages[-1], dict) else ""
        return self._complete("chat", body, last if isinstance(last, str) else json.dumps(last))

    async def _completions(self, request: Request) -> Response:
        body = await self._enter(request)
        prompt = body.get("prompt")
        return self._complete("completions", body, prompt if isinstance(prompt, str) else json.dumps(prompt))

    def _complete(self, endpoint: str, body: dict[str, Any], prompt: str) -> Response:
        if self.fault == "status":
            return self._error()
        if self.fault == "bad_json":
            return PlainTextResponse("not json", status_code=200, media_type="application/json")
        text, finish = self.answer(prompt, body.get("max_tokens"))
        if self.fault == "tool_calls":
            finish = "tool_calls"
        usage = {"prompt_tokens": len(prompt.split()), "completion_tokens": len(text.split()),
                 "total_tokens": len(prompt.split()) + len(text.split())}
        rid, created, model = f"cmpl-fake-{self.calls}", int(time.time()), body.get("model", self.model)
        if body.get("stream"):
            return StreamingResponse(self._stream(endpoint, rid, created, model, text, finish, usage, body),
                                     media_type="text/event-stream")
        if endpoint == "chat":
            choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": text},
                                      "logprobs": None, "finish_reason": finish}
            obj = "chat.completion"
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
            obj = "text_completion"
        return JSONResponse({"id": rid, "object": obj, "created": created, "model": model,
                             "choices": [choice], "usage": usage})

    async def _stream(self, endpoint: str, rid: str, created: int, model: str, text: str, finish: str,
                      usage: dict[str, int], body: dict[str, Any]) -> AsyncIterator[bytes]:
        obj = "chat.completion.chunk" if endpoint == "chat" else "text_completion"
        words = text.split(" ")

        def event(choice: dict[str, Any] | None, **extra: Any) -> bytes:
            payload = {"id": rid, "object": obj, "created": created, "model": model,
                       "choices": [choice] if choice else [], **extra}
            return f"data: {json.dumps(payload)}\n\n".encode()

        if endpoint == "chat":
            yield event({"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None})
        for i, word in enumerate(words):
            piece = word if i == 0 else " " + word
            if i == len(words) // 2 and self.fault == "break_stream":
                raise RuntimeError("injected stream break")
            if i == len(words) // 2 and self.fault == "error_event":
                yield f"data: {json.dumps({'error': {'message': 'injected', 'type': 'server_error'}})}\n\n".encode()
                return
            delta = {"delta": {"content": piece}} if endpoint == "chat" else {"text": piece}
            yield event({"index": 0, **delta, "finish_reason": None})
        last: dict[str, Any] = {"delta": {}} if endpoint == "chat" else {"text": ""}
        yield event({"index": 0, **last, "finish_reason": finish})
        options = body.get("stream_options") or {}
        if options.get("include_usage"):
            yield event(None, usage=usage)
        if self.fault != "no_done":
            yield b"data: [DONE]\n\n"

    async def _models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": self.model, "object": "model", "owned_by": "fake"}]})

    async def _embeddings(self, request: Request) -> Response:
        self.calls += 1
        return JSONResponse({"object": "list", "data": [{"object": "embedding", "index": 0,
                                                         "embedding": [0.0, 1.0]}], "model": self.model})

    async def _metrics(self, request: Request) -> Response:
        return PlainTextResponse(
            "# TYPE vllm:num_requests_waiting gauge\n"
            f'vllm:num_requests_waiting{{model_name="{self.model}"}} {float(self.inflight)}\n'
        )

    async def _control(self, request: Request) -> Response:
        """Change delay/fault of a running server (tests in another process); returns the counters."""
        body = await request.json()
        if "delay_s" in body:
            self.delay_s = float(body["delay_s"])
        if "fault" in body:
            self.fault = body["fault"]
        if body.get("reset"):
            self.calls = 0
            self.bodies.clear()
        return JSONResponse({"calls": self.calls, "delay_s": self.delay_s, "fault": self.fault})


def main() -> None:
    """Serve a fake upstream: ``python -m semcache.adapters.proxy.testing --port 8001``."""
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    fake = FakeUpstream(delay_s=args.delay, keep_bodies=False)
    uvicorn.run(fake.app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
