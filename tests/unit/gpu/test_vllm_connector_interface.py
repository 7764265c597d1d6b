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
import semcache.gpu.vllm.connector as connector_module  # the alias's target
assert cls is connector_module.SemcacheConnector and issubclass(cls, KVConnectorBase_V1)
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


def _run_in_vllm(script: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run ``script`` with the vLLM venv's Python and this checkout on its path (skipped locally
    when that venv is missing; CI builds it)."""
    python = vllm_home() / "venv" / "bin" / "python"
    if not (vllm_home() / "venv" / ".complete").is_file():
        if os.environ.get("CI"):
            from tests.fixtures.vllm import build_vllm

            python, _ = build_vllm()
        else:
            pytest.skip(f"no vLLM venv at {vllm_home()} (scripts/build_vllm_env.sh builds it)")
    env = server_env(os.environ, source_shim(tmp_path / "src"))
    return subprocess.run([str(python), "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=240)


def test_connector_matches_vllm_interfaces(tmp_path: Path) -> None:
    proc = _run_in_vllm(SCRIPT, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "OK 0.32.0"


KERNEL_SCRIPT = r'''
import torch
torch.manual_seed(0)
torch.cpu._init_amx()
from vllm.v1.attention.backends.cpu_attn import _get_attn_isa
from semcache.gpu.vllm.paged import VllmPagedKV

B, HQ, HKV, D, N = 128, 6, 2, 64, 300
isa = _get_attn_isa(torch.bfloat16, B, D, "auto")
caches = [torch.zeros(8, HKV, B, 2 * D, dtype=torch.bfloat16) for _ in range(2)]
paged = VllmPagedKV(caches, [isa, isa], B, HQ, HKV, D, scale=D ** -0.5)
blocks = [5, 1, 6]
slots = torch.tensor([blocks[p // B] * B + p % B for p in range(N)])
ks = [torch.randn(N, HKV, D, dtype=torch.bfloat16) for _ in range(2)]
vs = [torch.randn(N, HKV, D, dtype=torch.bfloat16) for _ in range(2)]
for layer in range(2):  # written in two pieces, as a prefix hit and a span would be
    paged.write(layer, ks[layer][:128], vs[layer][:128], slots[:128])
    paged.write(layer, ks[layer][128:], vs[layer][128:], slots[128:])
# scattered queries: position 0, a run across a block boundary, singletons, the last position
q_pos = torch.tensor([0, 5, 6, 7, 126, 127, 128, 129, 200, 257, N - 1])
plan = paged.plan(q_pos, blocks)
assert plan.seq_lens.tolist() == [1, 8, 130, 201, 258, N], plan.seq_lens.tolist()
for layer in range(2):
    q = torch.randn(len(q_pos), HQ, D, dtype=torch.bfloat16)
    out = paged.attend(layer, q, plan)
    k = ks[layer].float().repeat_interleave(HQ // HKV, 1)
    v = vs[layer].float().repeat_interleave(HQ // HKV, 1)
    logits = torch.einsum("qhd,khd->hqk", q.float(), k) * D ** -0.5
    logits = logits.masked_fill(torch.arange(N)[None, None, :] > q_pos[None, :, None], float("-inf"))
    ref = torch.einsum("hqk,khd->qhd", logits.softmax(-1), v)
    err = (out.float() - ref).abs().max().item()
    assert err < 2e-2, (layer, err)
try:
    paged.plan(torch.tensor([3, 400]), blocks)
except ValueError as exc:
    assert "need 4 blocks" in str(exc), exc
else:
    raise AssertionError("too few blocks accepted")

# vLLM's RMSNorm and RoPE as the runner's LayerKernels, against the references, within bf16
from semcache.gpu.ops.rms_norm.reference import rms_norm_ref
from semcache.gpu.ops.rope_apply.reference import apply_rope_ref
from semcache.gpu.model.rope import RopeConfig, cos_sin
from semcache.gpu.vllm.kernels import VllmCpuKernels
kern = VllmCpuKernels()
x = torch.randn(37, 96, dtype=torch.bfloat16) * 3
w = torch.randn(96, dtype=torch.bfloat16)
torch.testing.assert_close(kern.rms_norm(x, w, 1e-5).float(), rms_norm_ref(x, w, 1e-5).float(),
                           atol=0.05, rtol=0.02)
rope = RopeConfig(head_dim=D, rotary_dim=D, theta=10000.0)
for rows in (torch.arange(37), torch.tensor([0, 3, 4, 90, 91, 200] * 6 + [511])):  # a blend's rows
    cos, sin = cos_sin(rope, rows, torch.bfloat16)
    qkv = torch.randn(rows.shape[0], (HQ + 2 * HKV) * D, dtype=torch.bfloat16)
    want = qkv.clone()
    for _ in range(2):  # the second call reuses the table built for these rows
        q, k, v = kern.rope_qkv(qkv.clone(), cos, sin, HQ, HKV)
        rq, rk, rv = want.split((HQ * D, HKV * D, HKV * D), -1)
        n = rows.shape[0]
        torch.testing.assert_close(q.float(), apply_rope_ref(rq.view(n, HQ, D), cos, sin).float(),
                                   atol=0.05, rtol=0.02)
        torch.testing.assert_close(k.float(), apply_rope_ref(rk.view(n, HKV, D), cos, sin).float(),
                                   atol=0.05, rtol=0.02)
        assert torch.equal(v, rv.reshape(n, HKV, D))
print("OK", isa)
'''


def test_paged_attention_matches_an_fp32_reference_in_vllm(tmp_path: Path) -> None:
    """vLLM's cache write and CPU attention kernel, as the worker calls them, attend exactly by
    position: queries in runs and alone, across a block boundary, against an fp32 reference;
    vLLM's RMSNorm and RoPE ops (the connector runner's kernels) agree with the references."""
    proc = _run_in_vllm(KERNEL_SCRIPT, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1].startswith("OK ")
