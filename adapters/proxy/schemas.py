"""OpenAPI request schemas of the OpenAI routes, generated from the models that validate them.

The handlers read and validate their bodies themselves (``validate.py``, off the event loop
for large ones) and forward every field unchanged, so the spec is attached with
``openapi_extra``. ``model_json_schema()`` gives the schema; its ``$defs`` are inlined, as a
``$ref`` inside a path item would resolve against the whole document."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

_ERROR = {"description": "OpenAI-format error", "content": {"application/json": {"schema": {
    "type": "object", "properties": {"error": {"type": "object", "properties": {
        "message": {"type": "string"}, "type": {"type": "string"}, "code": {"type": ["string", "null"]}}}}}}}}


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """``node`` with every ``{"$ref": "#/$defs/X"}`` replaced by ``X`` (the models do not recurse)."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inline(v, defs) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON schema of ``model``, self-contained."""
    schema = model.model_json_schema()
    return dict(_inline(schema, schema.get("$defs", {})))


def openapi_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` for a route whose JSON body (``model``) the handler reads itself."""
    return {
        "requestBody": {"required": True, "content": {"application/json": {"schema": body_schema(model)}}},
        "responses": {
            "200": {"description": "A completion (JSON), or an SSE stream with stream=true",
                    "content": {"application/json": {"schema": {"type": "object"}},
                                "text/event-stream": {"schema": {"type": "string"}}}},
            **{str(code): _ERROR for code in (400, 401, 413, 502, 503, 504)},
        },
    }

