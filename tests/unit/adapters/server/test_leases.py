"""Leases record their holder, live on a heartbeat, and a restarted replica drops its own."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from semcache.adapters.server.leases import FlightLeases

from semcache.storage.store import Store

pytestmark = pytest.mark.unit


def test_a_heartbeat_keeps_a_live_holder_and_its_death_frees_the_key_within_ttl(tmp_path: Path) -> None:
    with Store(f"sqlite:///{tmp_path / 'c.db'}") as store:
        holder = FlightLeases(store.engine, owner="replica-a", ttl_s=0.3)
        other = FlightLeases(store.engine, owner="replica-b", ttl_s=0.3)
        holder.start()
        try:
            assert holder.try_acquire("q")
            time.sleep(0.9)  # three lifetimes: only the heartbeat keeps it
            assert other.held("q") and not other.try_acquire("q")
        finally:
            holder.close()  # the holder dies: no more heartbeats
        died = time.monotonic()
        while other.held("q"):
            time.sleep(0.02)
        assert time.monotonic() - died <= 0.3 + 0.1
        assert other.try_acquire("q")


def test_a_restarted_replica_releases_its_own_leases_and_no_one_elses(tmp_path: Path) -> None:
    with Store(f"sqlite:///{tmp_path / 'c.db'}") as store:
        before = FlightLeases(store.engine, owner="replica-a", ttl_s=60)
        other = FlightLeases(store.engine, owner="replica-b", ttl_s=60)
        assert before.try_acquire("q1") and before.try_acquire("q2") and other.try_acquire("q3")
        again = FlightLeases(store.engine, owner="replica-a", ttl_s=60)  # same replica, new process
        assert again.release_own() == 2
        assert not again.held("q1") and not again.held("q2") and again.held("q3")


def test_owner_and_periods_are_checked() -> None:
    with pytest.raises(ValueError, match="owner"):
        FlightLeases(None, owner="x" * 65)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ttl_s"):
        FlightLeases(None, ttl_s=0)  # type: ignore[arg-type]
