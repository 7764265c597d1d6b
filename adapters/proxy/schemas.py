"""JSON schemas of the OpenAI request bodies, for the OpenAPI spec.

The handlers validate bodies themselves (see ``scope.py``) and forward every
field unchanged, so these schemas document the fields the proxy reads and
allow any others (``additionalProperties``), as the upstream may accept more.
"""

from __future__ import annotations

from typing import Any

_CONTENT: dict[str, Any] = {
    "anyOf": [
        {"type": "string"},
        {"type": "array", "items": {"type": "object", "properties": {"type": {"type": "string"},
                                                                      "text": {"type": "string"}}}},
        {"type": "null"},
    ]
}
_COMMON: dict[str, Any] = {
    "model": {"type": "string", "minLength": 1},
    "stream": {"type": "boolean"},
    "stream_options": {"type": "object", "properties": {"include_usage": {"type": "boolean"}}},
    "temperature": {"type": "number", "minimum": 0, "maximum": 2},
    "top_p": {"type": "number", "minimum": 0, "maximum": 1},
    "max_tokens": {"type": "integer", "minimum": 1},
    "n": {"type": "integer", "minimum": 1},
    "seed": {"type": "integer"},
    "stop": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
    "user": {"type": "string"},
}

CHAT_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["model", "messages"],
    "properties": {
        **_COMMON,
        "messages": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["role"],
                "properties": {"role": {"type": "string", "enum": ["system", "developer", "user", "assistant",
                                                                    "tool"]},
                               "content": _CONTENT, "name": {"type": "string"}},
            },
        },
        "documents": {"type": "array", "items": {"type": "object", "properties": {
            "text": {"type": "string"}, "title": {"type": "string"}, "source": {"type": "string"}}}},
    },
    "additionalProperties": True,
}

COMPLETIONS_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["model", "prompt"],
    "properties": {
        **_COMMON,
        "prompt": {"anyOf": [{"type": "string"}, {"type": "array", "minItems": 1, "items": {"type": "string"}}]},
        "echo": {"type": "boolean"},
    },
    "additionalProperties": True,
}

_ERROR = {"description": "OpenAI-format error", "content": {"application/json": {"schema": {
    "type": "object", "properties": {"error": {"type": "object", "properties": {
        "message": {"type": "string"}, "type": {"type": "string"}, "code": {"type": ["string", "null"]}}}}}}}}


def openapi_body(schema: dict[str, Any]) -> dict[str, Any]:
    """``openapi_extra`` for a route whose JSON body the handler reads itself."""
    return {
        "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}},
        "responses": {
            "200": {"description": "A completion (JSON), or an SSE stream with stream=true",
                    "content": {"application/json": {"schema": {"type": "object"}},
                                "text/event-stream": {"schema": {"type": "string"}}}},
            **{str(code): _ERROR for code in (400, 401, 413, 502, 503, 504)},
        },
    }
