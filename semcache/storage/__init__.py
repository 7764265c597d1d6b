"""The SQL store, the source of truth and the only SQL of the core.

``engine`` makes engines and runs migrations; ``schema`` declares the tables;
``store`` is the ``Store`` repository (``records``, ``queries`` and ``admin`` hold
its parts); ``changelog`` is the change log replicas follow; ``recorder`` batches
statistics into the store.
"""
