"""The in-memory state derived from the store, and how it stays in sync.

``state.LocalState`` holds the vector index, the entry mirror and the tombstones of
one process, behind one lock, and is changed only through its public methods.
``rebuild`` loads it from the store; ``follower.ChangeFeed`` applies other processes'
changes; ``redis_tier.RedisTier`` shares exact keys and invalidations through Redis.
"""
