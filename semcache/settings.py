"""Core settings: the one place that reads ``SEMCACHE_*`` environment variables.

Adapters extend ``CoreSettings`` with their own fields; everything below them
receives plain, validated values through constructors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class CoreSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SEMCACHE_", extra="ignore")

    db_url: str = Field("sqlite:///semcache.db", description="SQLAlchemy URL of the store")
    policies: Path | None = Field(None, description="YAML/TOML policy file (defaults built in)")
    index: Literal["hnsw", "faiss"] = "hnsw"
    context_threshold: float = Field(0.70, gt=0.0, le=1.0)
    context_max_turns: int = Field(4, ge=1, le=64)
    candidates: int = Field(5, ge=1, le=100, description="HNSW candidates verified per lookup")
    verifier: Literal["hardneg", "none"] = "hardneg"
    rebuild_progress_min: int = Field(5000, ge=0, description="show a progress bar above this many entries")

    @field_validator("db_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if "://" not in value:
            raise ValueError(f"db_url must be an SQLAlchemy URL like sqlite:///path.db, got {value!r}")
        return value
