"""The pure-torch references against independent formulations."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from semcache.gpu.ops.deviation.reference import token_deviation_ref
from semcache.gpu.ops.partial_attention.reference import partial_attention_ref
from semcache.gpu.ops.scatter.reference import gather_rows_ref, scatter_rows_ref
from semcache.gpu.ops.topk.reference import select_topk_ref

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("hq,hkv", [(8, 8), (9, 3)], ids=["mha", "gqa3"])
def test_partial_attention_full_selection_equals_causal_sdpa(hq: int, hkv: int) -> None:
    g = torch.Generator().manual_seed(0)
    t, d = 57, 32
    q, k, v = (torch.randn(t, h, d, generator=g) for h in (hq, hkv, hkv))
    pos = torch.arange(t) + 5  # offset positions: the mask compares positions, not indices
    out = partial_attention_ref(q, k, v, pos, pos, d**-0.5)
    kk, vv = (x.repeat_interleave(hq // hkv, 1).transpose(0, 1) for x in (k, v))
    sdpa = F.scaled_dot_product_attention(q.transpose(0, 1), kk, vv, is_causal=True)
    torch.testing.assert_close(out, sdpa.transpose(0, 1), rtol=1e-5, atol=1e-5)


def test_partial_attention_subset_of_queries_and_unseen_query() -> None:
    g = torch.Generator().manual_seed(1)
    t, d = 40, 16
    q, k, v = (torch.randn(t, 2, d, generator=g) for _ in range(3))
    pos = torch.arange(t)
    full = partial_attention_ref(q, k, v, pos, pos, 0.25)
    sel = torch.tensor([3, 17, 39])
    part = partial_attention_ref(q[sel], k, v, pos[sel], pos, 0.25)
    torch.testing.assert_close(part, full[sel])
    none_visible = partial_attention_ref(q[:1], k[5:], v[5:], pos[:1], pos[5:], 0.25)
    assert torch.equal(none_visible, torch.zeros_like(none_visible))


def test_token_deviation_is_l2_over_heads_and_dims() -> None:
    cached = torch.zeros(3, 2, 2)
    fresh = cached.clone()
    fresh[1] = 1.0  # 4 ones -> norm 2
    fresh[2, 0, 0] = -3.0
    assert token_deviation_ref(cached, fresh).tolist() == [0.0, 2.0, 3.0]


def test_select_topk_respects_candidates_and_sorts() -> None:
    scores = torch.tensor([5.0, 1.0, 9.0, 3.0, 7.0, 2.0])
    assert select_topk_ref(scores, 3).tolist() == [0, 2, 4]
    cand = torch.tensor([False, True, False, True, True, True])
    assert select_topk_ref(scores, 2, cand).tolist() == [3, 4]
    assert select_topk_ref(scores, 10, cand).tolist() == [1, 3, 4, 5]
    assert select_topk_ref(scores, 0).numel() == 0
    with pytest.raises(ValueError):
        select_topk_ref(scores, -1)


def test_scatter_then_gather_round_trip() -> None:
    dst = torch.zeros(10, 2, 4)
    idx = torch.tensor([7, 2, 5])
    src = torch.randn(3, 2, 4)
    scatter_rows_ref(dst, idx, src)
    assert torch.equal(gather_rows_ref(dst, idx), src)
    assert dst[[0, 1, 3, 4, 6, 8, 9]].abs().sum() == 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("hq,hkv", [(9, 3), (4, 4), (8, 1)], ids=str)
def test_cpu_attention_matches_the_reference(hq: int, hkv: int, dtype: torch.dtype) -> None:
    """The CPU path of ops.partial_attention (SDPA over a mask built once)."""
    from semcache.gpu.ops import dispatch as ops
    from semcache.gpu.ops.partial_attention.cpu import CpuAttentionPlan

    g = torch.Generator().manual_seed(hq * 10 + hkv)
    nk, d = 77, 32
    q = torch.randn(23, hq, d, generator=g).to(dtype)
    k, v = (torch.randn(nk, hkv, d, generator=g).to(dtype) for _ in range(2))
    k_pos = torch.arange(nk) + 5
    q_pos = torch.sort(torch.randint(0, nk + 5, (23,), generator=g)).values
    q_pos[0] = 2  # sees no key: zeros, as in the reference
    plan = ops.plan_partial_attention(q_pos, k_pos, hq // hkv)
    assert isinstance(plan, CpuAttentionPlan)
    out = ops.partial_attention(q, k, v, q_pos, k_pos, d**-0.5, plan=plan)
    ref = partial_attention_ref(q, k, v, q_pos, k_pos, d**-0.5)
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    torch.testing.assert_close(out.float(), ref.float(), atol=tol, rtol=tol)
    assert torch.equal(out[0], torch.zeros_like(out[0]))
    with pytest.raises(ValueError, match="plan is for other"):
        ops.partial_attention(q[1:], k, v, q_pos[1:], k_pos, d**-0.5, plan=plan)
