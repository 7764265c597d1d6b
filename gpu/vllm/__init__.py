"""Chunk reuse inside vLLM: the parts of ``semcache.gpu.vllm_connector`` that do not import vLLM.

- ``plan``: scheduler-side chunk detection and the load plan handed to the workers;
- ``worker``: worker-side blending of a planned span with semcache's own model runner;
- ``compat``: the supported vLLM versions and the check run when the connector loads.

The connector class itself (``semcache.gpu.vllm_connector.SemcacheConnector``) imports vLLM and
is only importable inside a vLLM environment.
"""
