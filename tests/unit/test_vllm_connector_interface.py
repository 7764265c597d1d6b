"""SemcacheConnector against vLLM's own interfaces, in vLLM's environment (a subprocess).

The vLLM venv is the one tests/fixtures/vllm.py builds (CI builds it; locally the test is skipped
when it is missing). The script checks what vLLM itself checks when it loads a connector from
``kv_connector_module_path``, that nothing abstract is left, that the metadata survives the
pickling between scheduler and worker processes, and that an unsupported vLLM version is refused
with a clear message when vLLM builds the connector.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from semcache.gpu.vllm.launch import server_env, source_shim

from tests.fixtures.vllm import vllm_home

pytestmark = pytest.mark.unit

SCRIPT = r'''
import inspect, pickle
import vllm
from vllm.config.kv_transfer import KVTransferConfig
from vllm.distributed.kv_transfer.kv_connector.factory import KVConnectorFactory
from vllm.distributed.kv_transfer.kv_connector.v1.base import KVConnectorBase_V1, KVConnectorRole
from vllm.utils.func_utils import supports_kw

cfg = KVTransferConfig(kv_connector="SemcacheConnector", kv_role="kv_both",
                       kv_connector_module_path="semcache.gpu.vllm_connector")
cls = KVConnectorFactory.get_connector_class(cfg)
assert cls.__module__ == "semcache.gpu.vllm_connector" and issubclass(cls, KVConnectorBase_V1)
assert not inspect.isabstract(cls), inspect.getmembers(cls, lambda m: getattr(m, "__isabstractmethod__", False))
assert supports_kw(cls, "kv_cache_config")
assert not KVConnectorFactory.supports_hma_config(cfg)

from semcache.gpu.vllm.plan import LoadSpec, SpanSegment
from semcache.gpu.vllm_connector import SemcacheConnectorMetadata
meta = SemcacheConnectorMetadata([LoadSpec("r", (SpanSegment((1, 2)), SpanSegment((3, 4, 5), "c")), 0, 5, (7,), 0.15)])
assert pickle.loads(pickle.dumps(meta)).loads == meta.loads

from semcache.gpu.vllm.compat import UnsupportedVLLMError
real = vllm.__version__
vllm.__version__ = "0.31.9"
try:
    cls(None, KVConnectorRole.SCHEDULER, None)
except UnsupportedVLLMError as exc:
    assert "supports vLLM 0.32.0, found vLLM 0.31.9" in str(exc), exc
else:
    raise AssertionError("an unsupported version was accepted")
print("OK", real)
'''


def test_connector_matches_vllm_interfaces(tmp_path: Path) -> None:
    python = vllm_home() / "venv" / "bin" / "python"
    if not (vllm_home() / "venv" / ".complete").is_file():
        if os.environ.get("CI"):
            from tests.fixtures.vllm import build_vllm

            python, _ = build_vllm()
        else:
            pytest.skip(f"no vLLM venv at {vllm_home()} (scripts/build_vllm_env.sh builds it)")
    env = server_env(os.environ, source_shim(tmp_path / "src"))
    proc = subprocess.run([str(python), "-c", SCRIPT], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "OK 0.32.0"
