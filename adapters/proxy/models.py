"""Pydantic models of the OpenAI request bodies: the one definition of what the proxy accepts.

They validate the bodies of ``/v1/chat/completions`` and ``/v1/completions`` (``validate.py``)
and, through ``model_json_schema()``, give the OpenAPI spec (``schemas.py``). Ranges are
OpenAI's; types are strict where OpenAI is (``"1"`` is not 1, ``true`` is not a number).
Unknown fields are allowed: the proxy forwards the client's own dict, never a re-serialised
model, so validation checks and never coerces. The cache API checks its ``user`` and
``params`` with the same field types (``CacheApiFields``)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, Strict, model_validator

MAX_INT64 = 2**63 - 1
MAX_INT32 = 2**31 - 1

# One definition per field rule, shared by the bodies and the cache API's params.
Number = Annotated[float, Strict(), Field(allow_inf_nan=False)]
Temperature = Annotated[Number, Field(ge=0.0, le=2.0, description="sampling temperature, 0 to 2")]
TopP = Annotated[Number, Field(ge=0.0, le=1.0)]
Penalty = Annotated[Number, Field(ge=-2.0, le=2.0)]
TokenCount = Annotated[int, Strict(), Field(ge=1, le=MAX_INT32)]
Choices = Annotated[int, Strict(), Field(ge=1, le=128)]
TopLogprobs = Annotated[int, Strict(), Field(ge=0, le=20)]
Seed = Annotated[int, Strict(), Field(ge=-(2**63), le=MAX_INT64)]
Text = Annotated[str, Strict()]
Stop = Text | list[Text]
User = Annotated[Text | None, Field(description="end-user id; part of the cache scope when scope_by_user")]

_OPEN = ConfigDict(extra="allow", strict=True)  # unknown fields pass, and are forwarded as sent


class SamplingParams(BaseModel):
    """Generation parameters with OpenAI's types and ranges (null means the default)."""

    model_config = _OPEN
    temperature: Temperature | None = None
    top_p: TopP | None = None
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None
    max_tokens: TokenCount | None = None
    max_completion_tokens: TokenCount | None = None
    n: Choices | None = None
    best_of: Choices | None = None
    top_logprobs: TopLogprobs | None = None
    seed: Seed | None = None
    stop: Stop | None = None


class CacheApiFields(BaseModel):
    """The identity and sampling fields of a cache API body (the rest is the route's model)."""

    model_config = _OPEN
    user: User = None
    params: SamplingParams | None = None


class ContentPart(BaseModel):
    """One part of a message's content; a ``text`` part needs its ``text``."""

    model_config = _OPEN
    type: Text
    text: Text | None = None

    @model_validator(mode="after")
    def _text_part_has_text(self) -> ContentPart:
        if self.type == "text" and self.text is None:
            raise ValueError("a text part needs a string 'text'")
        return self


class Message(BaseModel):
    """A chat message; roles beyond OpenAI's pass, as some upstreams' templates use them."""

    model_config = _OPEN
    role: Annotated[Text, Field(description="system, developer, user, assistant, tool or function")]
    content: Text | list[ContentPart] | None = None
    name: Text | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: Text | None = None


class DocumentObject(BaseModel):
    """A retrieved document: ``text`` (or ``content``), optional ``title`` and ``source`` (or ``id``)."""

    model_config = _OPEN
    text: Text | None = None
    content: Text | None = None
    title: Text | None = None
    source: Text | Annotated[int, Strict()] | None = None
    id: Text | Annotated[int, Strict()] | None = None

    @model_validator(mode="after")
    def _has_text(self) -> DocumentObject:
        if self.text is None and self.content is None:
            raise ValueError("a document needs a string 'text' or 'content'")
        return self


class StreamOptions(BaseModel):
    model_config = _OPEN
    include_usage: Annotated[bool, Strict()] | None = None


MAX_SECONDS = 10 * 365 * 86400
Seconds = Annotated[float, Strict(), Field(allow_inf_nan=False, le=MAX_SECONDS)]


class CacheControls(BaseModel):
    """LiteLLM's per-request controls, the body's ``cache`` field (``body_cache.py``)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    no_cache: Annotated[bool, Strict()] = Field(False, alias="no-cache", description="skip the lookup")
    no_store: Annotated[bool, Strict()] = Field(False, alias="no-store", description="skip storing")
    ttl: Annotated[Seconds, Field(ge=1)] | None = Field(None, description="seconds the stored answer lives")
    s_maxage: Annotated[Seconds, Field(ge=0)] | None = Field(
        None, alias="s-maxage", description="refuse cached answers older than this many seconds")
    namespace: Annotated[Text, Field(min_length=1, max_length=128)] | None = Field(
        None, description="splits the cache scope")


class OpenAIBody(SamplingParams):
    """The fields both completion routes share."""

    model: Annotated[Text, Field(min_length=1)]
    stream: Annotated[bool, Strict()] | None = None
    stream_options: StreamOptions | None = None
    user: User = None
    documents: list[Text | DocumentObject] | None = Field(
        default=None, description="retrieved context: exact context of the cache scope (a set)")
    cache: CacheControls | None = Field(default=None, description="removed before forwarding")


class ChatBody(OpenAIBody):
    """``POST /v1/chat/completions``."""

    messages: Annotated[list[Message], Field(min_length=1)]


TokenIds = Annotated[list[Annotated[int, Strict()]], Field(min_length=1)]


class CompletionsBody(OpenAIBody):
    """``POST /v1/completions``: a prompt string, a batch of strings, or token ids."""

    prompt: Text | Annotated[list[Text], Field(min_length=1)] | TokenIds | Annotated[
        list[TokenIds], Field(min_length=1)]
    echo: Annotated[bool, Strict()] | None = None


BODIES: dict[str, type[OpenAIBody]] = {"chat": ChatBody, "completions": CompletionsBody}
