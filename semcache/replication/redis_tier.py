"""``RedisTier``: Redis as the optional shared tier in front of the SQL store.

It shares exact keys (an answer stored through one replica is an exact hit everywhere
before the change feed delivers it), fans invalidations out at once, and reports whether
Redis answers; on any Redis error the cache carries on with the SQL store alone. None of
it decides correctness (docs/design/core.md). ``redis`` is imported lazily
(``pip install 'semcache[redis]'``)."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from semcache.exceptions import MissingExtraError, StoreUnavailable

if TYPE_CHECKING:
    from semcache.replication.mirror import EntryMeta
    from semcache.replication.state import LocalState
    from semcache.storage.store import Store

log = logging.getLogger(__name__)


class RedisTier:
    """The shared exact tier and invalidation fan-out of one cache process.

    The constructor only configures; ``start`` pings Redis and starts the
    listener thread. ``required=True`` makes ``start`` raise
    :class:`~semcache.exceptions.StoreUnavailable` when Redis does not answer;
    otherwise the tier starts degraded with a warning and keeps retrying.
    """

    def __init__(self, url: str, *, prefix: str = "semcache", timeout_s: float = 0.25,
                 retry_s: float = 2.0, required: bool = False, client: Any | None = None) -> None:
        if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"redis URL must start with redis://, rediss:// or unix://, got {url!r}")
        if not prefix or not isinstance(prefix, str):
            raise ValueError(f"prefix must be a non-empty string, got {prefix!r}")
        self.url = url
        self.prefix = prefix
        self.retry_s = retry_s
        self.timeout_s = timeout_s
        self._owns_client = client is None
        self.client = client if client is not None else _connect(url, timeout_s)
        self.channel = f"{prefix}:invalidate"
        self.up = False
        self.errors = 0
        self.published = 0
        self.received = 0
        self.last_error: str | None = None
        self.required = required
        self.state: LocalState | None = None
        self.store: Store | None = None
        self._retry_at = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------- wiring
    def check(self) -> bool:
        """Ping Redis: True when it answers; raises StoreUnavailable instead when required."""
        try:
            self.client.ping()
            self.up = True
        except Exception as exc:
            if self.required:
                raise StoreUnavailable(f"Redis at {_safe(self.url)} is unreachable: {exc}") from exc
            self._down(exc, warn=True)
        return self.up

    def start(self, state: LocalState, store: Store) -> None:
        """Serve ``state``'s exact misses from Redis and apply published invalidations to it."""
        self.check()
        self.state, self.store = state, store
        state.mirror.fallback = self._exact_fallback
        self._thread = threading.Thread(target=self._listen, name="semcache-redis", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._owns_client:
            self.client.close()

    def status(self) -> dict[str, Any]:
        return {"up": self.up, "errors": self.errors, "published": self.published,
                "received": self.received, "last_error": self.last_error}

    # ------------------------------------------------------------ operations
    def _key(self, exact_key: str) -> str:
        return f"{self.prefix}:exact:{exact_key}"

    def _usable(self) -> bool:
        return self.up or time.monotonic() >= self._retry_at

    def _down(self, exc: BaseException, *, warn: bool = False) -> None:
        was_up = self.up
        self.up = False
        self.errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"[:300]
        self._retry_at = time.monotonic() + self.retry_s
        if was_up or warn:
            log.warning("Redis at %s is unreachable (%s); running on the SQL store alone",
                        _safe(self.url), self.last_error)

    def _ok(self) -> None:
        if not self.up:
            log.warning("Redis at %s answers again; shared tier back on", _safe(self.url))
        self.up = True

    def stored(self, exact_key: str, entry_id: int, ttl_s: float | None) -> None:
        """Publish a newly committed entry as the answer for ``exact_key``."""
        if not self._usable():
            return
        try:
            px = None if ttl_s is None else max(1, int(ttl_s * 1000))
            self.client.set(self._key(exact_key), str(entry_id), px=px)
            self._ok()
        except Exception as exc:
            self._down(exc)

    def forgotten(self, ids: list[int], keyed: Iterable[tuple[int, str]], origin: str) -> None:
        """Drop the exact keys (``(entry id, exact key)`` pairs) of deleted entries; tell the others."""
        if not ids or not self._usable():
            return
        try:
            pipe = self.client.pipeline(transaction=False)
            for entry_id, exact_key in keyed:
                # Only if it still names this entry: a newer entry may own the key now.
                pipe.eval(_DELETE_IF, 1, self._key(exact_key), str(entry_id))
            pipe.publish(self.channel, json.dumps({"origin": origin, "ids": ids}))
            pipe.execute()
            self.published += 1
            self._ok()
        except Exception as exc:
            self._down(exc)

    def _exact_fallback(self, exact_key: str) -> EntryMeta | None:
        state, store = self.state, self.store
        if state is None or store is None or not self._usable():
            return None
        try:
            raw = self.client.get(self._key(exact_key))
            self._ok()
        except Exception as exc:
            self._down(exc)
            return None
        if raw is None:
            return None
        entry_id = int(raw)
        if state.is_deleted(entry_id):
            return None
        rows = store.get_entries([entry_id])  # SQL decides: a deleted id is no answer
        if not rows or rows[0].exact_key != exact_key:
            return None
        state.apply_added(rows, with_responses=True)
        return state.mirror.get(entry_id)

    def _listen(self) -> None:
        while not self._stop.is_set():
            pubsub = None
            try:
                pubsub = self.client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(self.channel)
                self._ok()
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=0.5)
                    if message is not None and message.get("type") == "message":
                        self._apply(message["data"])
            except Exception as exc:
                if self.up:
                    self._down(exc)
                self._stop.wait(self.retry_s)
            finally:
                if pubsub is not None:
                    try:
                        pubsub.close()
                    except Exception:  # the connection is already gone
                        log.debug("closing the Redis subscription failed", exc_info=True)

    def _apply(self, data: Any) -> None:
        try:
            message = json.loads(data)
            ids = [int(i) for i in message["ids"]]
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed invalidation message on %s", self.channel)
            return
        if self.state is None or self.store is None or message.get("origin") == self.store.origin:
            return
        self.received += 1
        self.state.apply_deleted(ids)


# Delete KEYS[1] only while it holds ARGV[1].
_DELETE_IF = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


def _connect(url: str, timeout_s: float) -> Any:
    try:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry
    except ImportError as exc:
        raise MissingExtraError("redis", "redis") from exc
    return redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                                retry=Retry(NoBackoff(), 0), decode_responses=True)


def _safe(url: str) -> str:
    """The URL without a password."""
    if "@" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
