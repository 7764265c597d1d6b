"""The import path users give vLLM (``kv_connector_module_path``): an alias of
``semcache.gpu.vllm.connector``, where the connector lives. Importing it imports vLLM."""

from semcache.gpu.vllm.connector import SemcacheConnector, SemcacheConnectorMetadata

__all__ = ["SemcacheConnector", "SemcacheConnectorMetadata"]
