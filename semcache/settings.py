"""Core settings: the one place that reads ``SEMCACHE_*`` environment variables.

Adapters extend ``CoreSettings`` with their own fields; ``semcache.build.build_cache``
turns them into parts, and everything below receives plain, validated values through
constructors. Each field is read from ``SEMCACHE_<NAME>`` (e.g. ``SEMCACHE_DB_URL``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class CoreSettings(BaseSettings):
    """What the core is built from (see ``build_cache``); every field is used."""

    model_config = SettingsConfigDict(env_prefix="SEMCACHE_", extra="ignore")

    db_url: str = Field("sqlite:///semcache.db", description="SQLAlchemy URL of the store")
    policies: Path | None = Field(None, description="YAML/TOML policy file (defaults built in)")
    embedder: Literal["int8", "fp32", "torch"] = Field(
        "int8", description="MiniLM as the packaged int8 ONNX graph; fp32: the original weights "
        "exported to ONNX; torch: a torch forward (fp32 and torch need the torch extra)")
    index: Literal["hnsw", "faiss"] = Field(
        "hnsw", description="vector index backend: hnswlib, or faiss-cpu (the faiss extra)")
    context_threshold: float = Field(
        0.625, gt=0.0, le=1.0,
        description="how alike the assistant turn and topic must be for a referring follow-up to match")
    context_max_turns: int = Field(8, ge=1, le=64, description="earlier turns (all roles) kept per request")
    candidates: int = Field(5, ge=1, le=100, description="HNSW candidates verified per lookup")
    verifier: Literal["hardneg", "learned", "none"] = Field(
        "hardneg", description="hardneg: rule-based hard-negative verifier; learned: the shipped "
        "pair model, judging candidates down to candidate_floor plus misspelled repeats; none: "
        "similarity alone")
    verifier_rules: bool = Field(
        True, description="learned verifier: number, negation and time rules may veto a pair")
    # 0.6, on the dev slice of the verifier pairs (benchmarks/results/verifier_candidates.json):
    # served 0.431 at 0.4, 0.420 at 0.5 and 0.6, wrong 0.0 at each; misspelled dev questions
    # whose original is not cached were answered wrongly 14, 11 and 8 times of 92.
    candidate_floor: float = Field(
        0.6, ge=0.0, le=1.0, description="learned verifier: the cosine a candidate needs to be judged")
    rebuild_progress_min: int = Field(5000, ge=0, description="show a progress bar above this many entries")

    # Scale-out: several processes sharing one database (see docs/deploy.md).
    feed: Literal["auto", "on", "off"] = Field(
        "auto", description="follow the change log of other processes' writes; auto: on PostgreSQL only")
    feed_poll_s: float = Field(1.0, gt=0, le=60, description="change-log poll period (LISTEN wakes it sooner)")
    change_retention_s: float = Field(3600.0, gt=0, description="change-log rows older than this are pruned")
    redis_url: str | None = Field(None, description="optional shared tier, e.g. redis://127.0.0.1:6379/0")
    redis_prefix: str = Field("semcache", min_length=1, description="key prefix of this cache in Redis")
    redis_required: bool = Field(False, description="refuse to start when Redis is unreachable")
    redis_timeout_s: float = Field(0.25, gt=0, le=10, description="socket timeout of Redis calls")

    @field_validator("redis_url")
    @classmethod
    def _check_redis(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"redis_url must start with redis://, rediss:// or unix://, got {value!r}")
        return value

    def feed_enabled(self) -> bool | None:
        """The ``feed`` argument of ``SemanticCache``: None lets it decide by dialect."""
        return {"auto": None, "on": True, "off": False}[self.feed]

    @field_validator("db_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if "://" not in value:
            raise ValueError(f"db_url must be an SQLAlchemy URL like sqlite:///path.db, got {value!r}")
        return value
