"""The change feed: how replicas sharing one database keep their in-memory state in sync.

- :mod:`semcache.feed.log` — the durable ``change_log`` table, written in the
  same transaction as each change;
- :mod:`semcache.feed.follower` — :class:`ChangeFeed`, a thread that applies
  new changes to a ``SemanticCache`` (woken by PostgreSQL ``LISTEN/NOTIFY``,
  or polling), catching up from its last position after a disconnect;
- :mod:`semcache.feed.leases` — cross-replica single-flight through the store.
"""
