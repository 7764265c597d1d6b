"""Settings of the OpenAI-compatible proxy, validated once and passed down.

``ProxySettings`` extends the core's ``CoreSettings``, so every field can come from the
environment with the prefix ``SEMCACHE_`` (e.g. ``SEMCACHE_UPSTREAM_URL``); no other
proxy module reads the environment; ``semcache serve --config FILE`` adds a YAML file below
both (``config.py``). A request without ``temperature`` is cached under its own scope
("temperature not given") unless ``cache_unset_temperature`` is off; an explicit
``temperature > 0`` is bypassed unless ``cache_sampled``; ``n > 1`` always is. Listening
beyond loopback needs ``require_keys`` or an explicit ``insecure_no_keys``."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from semcache.settings import CoreSettings


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable only from this machine (localhost or a loopback address)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class ProxySettings(CoreSettings):
    """Configuration of one proxy process (see the module docstring for the sampling policy)."""

    model_config = SettingsConfigDict(env_prefix="SEMCACHE_", extra="ignore")

    upstream_url: str = Field(description="Base URL of the OpenAI-compatible upstream, e.g. http://127.0.0.1:8000")
    upstream_api_key: SecretStr | None = Field(
        default=None, description="Bearer key sent upstream; None forwards the client's key when keys are not required"
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)

    connect_timeout_s: float = Field(default=5.0, gt=0)
    read_timeout_s: float = Field(default=120.0, gt=0, description="max wait for the next upstream byte")
    retries: int = Field(default=2, ge=0, le=10, description="retries on connect errors and retry_statuses")
    retry_backoff_s: float = Field(default=0.2, ge=0)
    retry_statuses: tuple[int, ...] = (502, 503, 504)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    max_json_depth: int = Field(default=64, ge=2, le=1000, description="deeper JSON bodies get a 400")
    max_prompt_chars: int = Field(
        default=65_536, ge=1, description="longer prompts bypass the cache (x-semcache-reason says so)")
    max_connections: int = Field(default=256, ge=1)

    require_keys: bool = False
    insecure_no_keys: bool = Field(
        default=False, description="allow a non-loopback host without require_keys (anyone may read and write)")
    protect_ops: bool = Field(
        default=False, description="/metrics, /openapi.json and /docs need an API key or the admin token")
    default_tenant: str = "default"
    key_cache_ttl_s: float = Field(default=5.0, ge=0, description="how long a resolved API key is trusted")

    scope_by_user: bool = Field(default=True, description="a request's user field / x-semcache-user scopes it")
    cache_sampled: bool = False
    cache_unset_temperature: bool = Field(
        default=True, description="cache requests that send no temperature (the OpenAI SDK's default)")
    default_temperature: float = Field(default=1.0, ge=0)
    singleflight_timeout_s: float = Field(default=300.0, gt=0)
    shared_singleflight: Literal["auto", "on", "off"] = Field(
        default="auto", description="one upstream call per question across replicas; auto: when the feed runs")
    ready_max_feed_outage_s: float | None = Field(
        default=None, gt=0, description="/readyz answers 503 once the change feed has been cut off this long")
    shared_flight_lease_s: float = Field(
        default=30.0, gt=0, le=600, description="longest another replica waits for a leader's answer")
    shared_flight_ttl_s: float = Field(
        default=1.5, gt=0, le=60, description="a lease outlives its holder's last heartbeat this long")
    replica_id: str | None = Field(
        default=None, min_length=1, max_length=64,
        description="names this replica's leases (default host:port); a restart drops its own leftovers")

    load_adaptive: bool = True
    load_window_s: float = Field(default=10.0, gt=0, description="window of upstream latency samples")
    load_latency_low_ms: float = Field(default=2_000.0, ge=0)
    load_latency_high_ms: float = Field(default=10_000.0, gt=0)
    load_queue_low: float = Field(default=1.0, ge=0)
    load_queue_high: float = Field(default=16.0, gt=0)
    load_max_ttl_factor: float = Field(default=2.0, ge=1.0, le=100.0)
    load_poll_interval_s: float = Field(default=2.0, gt=0, description="period of upstream /metrics polls")
    load_poll_metrics: bool = True
    load_poll_give_up: int = Field(default=3, ge=1, description="polls answered 404 (or not at all) before stopping")

    access_log: bool = Field(default=True, description="one line per request, with its request id")
    log_format: Literal["text", "json"] = "text"
    log_level: str = Field(default="info", pattern="^(critical|error|warning|info|debug|trace)$")

    shutdown_grace_s: float = Field(default=30.0, ge=0)
    admin_token: SecretStr | None = Field(default=None, description="mounts the admin API and pages at /admin; >= 16 chars if set")

    @field_validator("upstream_url")
    @classmethod
    def _check_upstream(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"upstream_url must start with http:// or https://, got {value!r}")
        value = value.rstrip("/")
        # the proxy adds /v1/... itself: vLLM's documented base URL ends in /v1 already
        return value[: -len("/v1")] if value.endswith("/v1") else value

    @field_validator("default_tenant")
    @classmethod
    def _check_tenant(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("default_tenant must be a non-empty string")
        return value

    @field_validator("admin_token")
    @classmethod
    def _check_admin_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("admin_token must be at least 16 characters (or unset)")
        return value

    @model_validator(mode="after")
    def _check_bounds(self) -> ProxySettings:
        if self.load_latency_high_ms <= self.load_latency_low_ms:
            raise ValueError(
                f"load_latency_high_ms ({self.load_latency_high_ms}) must exceed "
                f"load_latency_low_ms ({self.load_latency_low_ms})"
            )
        if self.load_queue_high <= self.load_queue_low:
            raise ValueError(
                f"load_queue_high ({self.load_queue_high}) must exceed load_queue_low ({self.load_queue_low})"
            )
        if not (self.require_keys or self.insecure_no_keys or is_loopback(self.host)):
            raise ValueError(
                f"host {self.host!r} is reachable beyond this machine: pass --require-keys (and issue keys "
                "with `semcache admin keys create`), or --insecure-no-keys to serve it open on purpose")
        if self.policies is not None and not Path(self.policies).is_file():
            raise ValueError(f"policies file {self.policies} does not exist")
        return self
