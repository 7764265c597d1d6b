"""Single-flight: concurrent identical misses share one upstream call.

The first caller of a key becomes the *leader* and does the work; callers that
arrive while it runs become *followers* and wait for its outcome. The key is
forgotten as soon as the leader finishes, so a later request makes a fresh
lookup (and normally hits the entry the leader stored).

:class:`SharedFlights` extends this across replicas that share one database.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from semcache.adapters.server.leases import FlightLeases

    from semcache.cache import SemanticCache
    from semcache.types import CacheRequest, LookupResult

T = TypeVar("T")
log = logging.getLogger("semcache.proxy")


@dataclass(slots=True)
class Flight(Generic[T]):
    """One in-flight key: the leader resolves ``future``; followers await it."""

    key: str
    future: asyncio.Future[T]
    followers: int = field(default=0)

    def publish(self, value: T) -> None:
        if not self.future.done():
            self.future.set_result(value)

    def fail(self, exc: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(exc)


class SingleFlight(Generic[T]):
    """Deduplicates concurrent work by key, inside one event loop."""

    def __init__(self) -> None:
        self._flights: dict[str, Flight[T]] = {}

    def __len__(self) -> int:
        return len(self._flights)

    def join(self, key: str) -> tuple[Flight[T], bool]:
        """Return ``(flight, is_leader)``. A leader must call :meth:`lead` to release the key."""
        flight = self._flights.get(key)
        if flight is not None:
            flight.followers += 1
            return flight, False
        flight = Flight(key, asyncio.get_running_loop().create_future())
        self._flights[key] = flight
        return flight, True

    def release(self, flight: Flight[T], exc: BaseException | None = None) -> None:
        """Forget the key; a flight left without a result fails (followers then fall back)."""
        if self._flights.get(flight.key) is flight:
            del self._flights[flight.key]
        if not flight.future.done():
            flight.fail(exc if isinstance(exc, Exception) else RuntimeError("leader finished without a result"))
        if not flight.future.cancelled() and flight.future.exception() is not None:
            pass  # marks the exception as retrieved: a flight nobody followed must not warn

    @contextmanager
    def lead(self, flight: Flight[T]) -> Iterator[Flight[T]]:
        """Run the leader's work in a ``with`` block; the key is released on exit."""
        try:
            yield flight
        except BaseException as exc:
            self.release(flight, exc)
            raise
        self.release(flight)

    @staticmethod
    async def wait(flight: Flight[T], timeout: float) -> T:
        """Wait (shielded from the follower's own cancellation) for the leader's outcome."""
        return await asyncio.wait_for(asyncio.shield(flight.future), timeout)


class SharedFlights:
    """Single-flight across replicas, through leases in the shared SQL store.

    :meth:`acquire` either takes the lease for a question (the caller asks the
    upstream, stores the answer, then calls :meth:`release`) or waits for the
    replica that holds it, catches up with the change feed and looks the
    question up again. A waiter that finds no entry (the leader failed or did
    not store) takes over.
    """

    def __init__(self, leases: FlightLeases, cache: SemanticCache, *, poll_s: float = 0.05) -> None:
        self.leases = leases
        self.cache = cache
        self.poll_s = poll_s
        self.waited = 0
        self.answered = 0

    @staticmethod
    def digest(key: str) -> str:
        return hashlib.sha256(key.encode("utf-8")).hexdigest()

    async def acquire(self, key: str, request: CacheRequest) -> tuple[bool, LookupResult | None]:
        """``(leased, result)``: ``result`` is a lookup result with a hit when another replica answered."""
        digest = self.digest(key)
        if await asyncio.to_thread(self.leases.try_acquire, digest):
            return True, None
        self.waited += 1
        deadline = time.monotonic() + self.leases.lease_s
        while time.monotonic() < deadline and await asyncio.to_thread(self.leases.held, digest):
            await asyncio.sleep(self.poll_s)
        feed = self.cache.feed
        if feed is not None:
            await asyncio.to_thread(feed.sync)
        result = await self.cache.alookup_detailed(request)
        if result.hit is not None:
            self.answered += 1
            return False, result
        return await asyncio.to_thread(self.leases.try_acquire, digest), None

    async def release(self, key: str) -> None:
        try:
            await asyncio.to_thread(self.leases.release, self.digest(key))
        except Exception as exc:  # the lease expires by itself; the answer must still go out
            log.warning("releasing a single-flight lease failed (%s); it expires on its own", type(exc).__name__)
