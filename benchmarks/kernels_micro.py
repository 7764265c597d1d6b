"""Micro-benchmarks of the KV-reuse kernels against torch baselines measured in the same run.

    python benchmarks/kernels_micro.py --out benchmarks/results/kernels_micro.json

Needs CUDA. Before timing, each kernel is checked against its pure-torch reference at full size.
Timings are medians (and p99) of ``triton.testing.do_bench`` (warm-up not counted; it flushes L2
between repetitions). Figures:

* re-rotation GB/s (bytes read + written) vs ``dst.copy_(src)`` of the same bytes;
* deviation GB/s (both inputs read) vs the torch reference;
* partial attention TFLOP/s vs ``F.scaled_dot_product_attention(is_causal=True)`` on the full
  problem. FLOPs count only visible (query, key) pairs, 4 * D per pair and head (QK^T and PV):
  ``4 * D * Hq * sum_i #{j : k_pos[j] <= q_pos[i]}``; for full causal SDPA that is
  ``4 * D * H * N (N + 1) / 2``. Masked-off work done inside partially visible key blocks is
  not counted.
"""

from __future__ import annotations

import argparse
import json
import platform
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import triton
from semcache.gpu.model.rope import RopeConfig
from semcache.gpu.ops.deviation.reference import token_deviation_ref
from semcache.gpu.ops.deviation.triton import token_deviation
from semcache.gpu.ops.partial_attention.plan import choose_num_splits
from semcache.gpu.ops.partial_attention.reference import partial_attention_ref
from semcache.gpu.ops.partial_attention.triton import (
    AttentionPlan,
    partial_attention,
    plan_partial_attention,
)
from semcache.gpu.ops.rope_rerotate.reference import rerotate_k_ref
from semcache.gpu.ops.rope_rerotate.triton import rope_rerotate
from semcache.gpu.ops.scatter.triton import gather_rows, scatter_rows

DEVICE = "cuda"
LLAMA3_ROPE = RopeConfig(128, 128, 500000.0, "llama3", (
    ("factor", 8.0), ("high_freq_factor", 4.0), ("low_freq_factor", 1.0),
    ("original_max_position_embeddings", 8192.0)))  # fmt: skip
# RoPE re-rotation: (block_t, heads_per_prog, num_warps); the first is the launcher default.
RERO_CONFIGS = [
    (32, 4, 4), (32, 2, 4), (16, 8, 4), (32, 8, 4), (64, 8, 4), (64, 4, 8), (128, 8, 8),
    (32, 8, 2), (16, 4, 2), (64, 8, 8),
]  # fmt: skip
# (tile rows, block_n, num_warps, num_stages, num_splits, pack); num_splits 0 = the launcher's
# choice; pack > 1 puts that many query heads of a GQA group in one tile (tile rows / pack
# queries per tile). The first is what ``ops.partial_attention`` runs for this shape (GQA group 4,
# ``attention_plan.gqa_pack``); the second is the kernel launcher's own default (no packing).
ATTN_CONFIGS = [
    (64, 64, 4, 3, 0, 4), (64, 64, 4, 3, 0, 1), (64, 64, 4, 2, 1, 1), (64, 64, 4, 2, 0, 1),
    (128, 64, 8, 2, 0, 1), (128, 64, 8, 3, 0, 1), (128, 64, 8, 3, 1, 1), (128, 128, 8, 2, 0, 1),
    (64, 128, 4, 3, 0, 1), (128, 64, 4, 3, 0, 4), (128, 64, 8, 3, 0, 4), (128, 64, 8, 2, 0, 4),
    (128, 128, 8, 3, 0, 4), (128, 128, 8, 2, 0, 4), (64, 128, 4, 3, 0, 4), (128, 64, 8, 3, 0, 2),
]  # fmt: skip


def bench(fn: Callable[[], Any]) -> dict[str, float]:
    """Median and p99 milliseconds of ``fn`` (triton do_bench: warm-up, L2 flush, CUDA events)."""
    import triton.testing

    med, p99 = triton.testing.do_bench(fn, warmup=25, rep=200, quantiles=[0.5, 0.99])
    return {"median_ms": med, "p99_ms": p99}


def errors(out: torch.Tensor, ref: torch.Tensor) -> dict[str, float]:
    err = out.float() - ref.float()
    return {
        "max_abs_err": err.abs().max().item(),
        "rms_err_ratio": (err.pow(2).mean().sqrt() / ref.float().pow(2).mean().sqrt()).item(),
        "finite": bool(torch.isfinite(out).all()),
    }


def check(name: str, out: torch.Tensor, ref: torch.Tensor, rms_tol: float, max_tol: float,
          results: dict[str, Any]) -> None:  # fmt: skip
    e = errors(out, ref)
    e["ok"] = e["finite"] and e["rms_err_ratio"] <= rms_tol and e["max_abs_err"] <= max_tol
    results[name] = e
    print(f"check {name}: {e}")


def selection(n: int, frac: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=g)[: round(frac * n)].sort().values.to(DEVICE)


def run_rerotate(tokens: int, heads: int, dim: int, res: dict[str, Any]) -> None:
    k = torch.randn(tokens, heads, dim, device=DEVICE, dtype=torch.bfloat16)
    out = torch.empty_like(k)
    delta = torch.randint(-8192, 8192, (tokens,), device=DEVICE)
    inv_freq = LLAMA3_ROPE.inv_freq(DEVICE)
    nbytes = 2 * k.numel() * k.element_size() + delta.numel() * delta.element_size()
    t_kernel = bench(lambda: rope_rerotate(k, delta, inv_freq, 128, out=out))
    configs = []
    for bt, hp, nw in RERO_CONFIGS:  # the launcher default is the first
        t = bench(lambda bt=bt, hp=hp, nw=nw: rope_rerotate(k, delta, inv_freq, 128, out=out,
                                                            block_t=bt, heads_per_prog=hp,
                                                            num_warps=nw))  # fmt: skip
        configs.append({"config": [bt, hp, nw], **t, "GBps": nbytes / t["median_ms"] / 1e6})
    src = torch.empty(nbytes // 2, dtype=torch.uint8, device=DEVICE)
    dst = torch.empty_like(src)
    t_copy = bench(lambda: dst.copy_(src))
    t_ref = bench(lambda: rerotate_k_ref(k, delta, LLAMA3_ROPE))
    gbs = nbytes / t_kernel["median_ms"] / 1e6
    copy_gbs = nbytes / t_copy["median_ms"] / 1e6
    row = {"shape": [tokens, heads, dim], "dtype": "bfloat16", "bytes": nbytes,
           "kernel": t_kernel, "copy": t_copy, "torch_ref": t_ref, "kernel_GBps": gbs,
           "copy_GBps": copy_gbs, "fraction_of_copy": gbs / copy_gbs,
           "speedup_vs_torch_ref": t_ref["median_ms"] / t_kernel["median_ms"],
           "configs": configs}  # fmt: skip
    best = max(configs, key=lambda c: c["GBps"])
    row["best"] = {**best, "fraction_of_copy": best["GBps"] / copy_gbs}
    res.setdefault("rerotate", []).append(row)
    print(f"rerotate {row['shape']}: best config {best['config']} {best['GBps']:.0f} GB/s "
          f"({row['best']['fraction_of_copy']:.2f} of copy)")
    print(f"rerotate {row['shape']}: {gbs:.0f} GB/s, copy {copy_gbs:.0f} GB/s "
          f"({row['fraction_of_copy']:.2f}), x{row['speedup_vs_torch_ref']:.1f} vs torch")  # fmt: skip


def run_deviation(tokens: int, res: dict[str, Any]) -> None:
    a = torch.randn(tokens, 8, 128, device=DEVICE, dtype=torch.bfloat16)
    b = torch.randn_like(a)
    nbytes = 2 * a.numel() * a.element_size() + tokens * 4
    t_kernel = bench(lambda: token_deviation(a, b))
    t_ref = bench(lambda: token_deviation_ref(a, b))
    res["deviation"] = {"shape": [tokens, 8, 128], "kernel": t_kernel, "torch_ref": t_ref,
                        "kernel_GBps": nbytes / t_kernel["median_ms"] / 1e6,
                        "speedup_vs_torch_ref": t_ref["median_ms"] / t_kernel["median_ms"]}  # fmt: skip
    print(f"deviation: {res['deviation']['kernel_GBps']:.0f} GB/s")


def run_attention(n: int, hq: int, hkv: int, d: int, fracs: list[float], res: dict[str, Any]
                  ) -> None:  # fmt: skip
    from torch.nn.attention import SDPBackend, sdpa_kernel

    dt = torch.bfloat16
    q_full = torch.randn(1, hq, n, d, device=DEVICE, dtype=dt)
    k_full = torch.randn(1, hkv, n, d, device=DEVICE, dtype=dt)
    v_full = torch.randn_like(k_full)
    k_rep = k_full.repeat_interleave(hq // hkv, 1)
    v_rep = v_full.repeat_interleave(hq // hkv, 1)
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
        t_sdpa = bench(lambda: F.scaled_dot_product_attention(q_full, k_rep, v_rep, is_causal=True))
    sdpa_flops = 4 * d * hq * n * (n + 1) / 2
    sdpa_tflops = sdpa_flops / t_sdpa["median_ms"] / 1e9
    out: dict[str, Any] = {"shape": {"N": n, "Hq": hq, "Hkv": hkv, "D": d, "dtype": "bfloat16"},
                           "sdpa_causal_flash": {**t_sdpa, "TFLOPs": sdpa_tflops}, "fractions": []}  # fmt: skip
    print(
        f"SDPA flash causal [1,{hq},{n},{d}]: {t_sdpa['median_ms']:.3f} ms, {sdpa_tflops:.0f} TFLOP/s"
    )
    q_tok = q_full[0].transpose(0, 1).contiguous()  # [N, Hq, D]
    k_tok = k_full[0].transpose(0, 1).contiguous()
    v_tok = v_full[0].transpose(0, 1).contiguous()
    for frac in fracs:
        row = attention_fraction(q_tok, k_tok, v_tok, k_rep, v_rep, frac, sdpa_tflops)
        row["full_sdpa_time_over_partial"] = (
            t_sdpa["median_ms"] / row["best"]["median_ms"] if row["best"] else None
        )
        out["fractions"].append(row)
    res["partial_attention"] = out


def attention_fraction(q_tok: torch.Tensor, k_tok: torch.Tensor, v_tok: torch.Tensor,
                       k_rep: torch.Tensor, v_rep: torch.Tensor, frac: float,
                       sdpa_tflops: float) -> dict[str, Any]:  # fmt: skip
    n, hq, d = q_tok.shape
    k_pos = torch.arange(n, device=DEVICE)
    scale = d**-0.5
    sel = selection(n, frac, seed=int(frac * 1000))
    q, q_pos = q_tok[sel].contiguous(), k_pos[sel]
    flops = 4 * d * hq * float((q_pos + 1).sum())
    ref = partial_attention_ref(q, k_tok, v_tok, q_pos, k_pos, scale)
    row: dict[str, Any] = {"fraction": frac, "n_queries": int(sel.numel()), "flops": flops,
                           "configs": []}  # fmt: skip
    for bm, bn, nw, ns, sp, pk in ATTN_CONFIGS:
        splits = sp or choose_num_splits(
            triton.cdiv(q.shape[0], bm // pk) * hq // pk, triton.cdiv(n, bn), q.device
        )
        # The plan is built once per request and serves every layer: time the kernel alone,
        # and separately the call that also builds the plan.
        plan = plan_partial_attention(q_pos, k_pos, bm // pk, bn, pk)

        def fn(plan: AttentionPlan = plan, nw: int = nw, ns: int = ns, sp: int = splits
               ) -> torch.Tensor:  # fmt: skip
            return partial_attention(q, k_tok, v_tok, q_pos, k_pos, scale, num_warps=nw,
                                     num_stages=ns, plan=plan, num_splits=sp)  # fmt: skip

        def fn_with_plan(bm: int = bm, bn: int = bn, nw: int = nw, ns: int = ns,
                         sp: int = splits, pk: int = pk) -> torch.Tensor:  # fmt: skip
            return partial_attention(q, k_tok, v_tok, q_pos, k_pos, scale, block_m=bm,
                                     block_n=bn, num_warps=nw, num_stages=ns, num_splits=sp,
                                     pack=pk)  # fmt: skip

        try:
            e = errors(fn(), ref)
            t = bench(fn)
            t_planned = bench(fn_with_plan)
        except Exception as exc:  # a config may not fit in shared memory on this device
            row["configs"].append({"config": [bm, bn, nw, ns, sp, pk], "error": repr(exc)[:300]})
            continue
        tf = flops / t["median_ms"] / 1e9
        row["configs"].append({"config": [bm, bn, nw, ns, sp, pk], "num_splits": splits, **t, "TFLOPs": tf, **e,
                               "ratio_vs_sdpa_tflops": tf / sdpa_tflops,
                               "median_ms_including_plan": t_planned["median_ms"]})  # fmt: skip
    good = [c for c in row["configs"] if "TFLOPs" in c]
    row["best"] = max(good, key=lambda c: c["TFLOPs"]) if good else None
    row["default"] = good[0] if good and good[0]["config"] == list(ATTN_CONFIGS[0]) else None
    del ref
    row["torch_ref"] = bench(
        lambda: partial_attention_ref(q, k_tok, v_tok, q_pos, k_pos, scale)
    )
    row["torch_ref"]["TFLOPs"] = flops / row["torch_ref"]["median_ms"] / 1e9
    mask = (k_pos[None, :] <= q_pos[:, None])[None]
    qh = q.transpose(0, 1)[None]
    try:
        t_masked = bench(lambda: F.scaled_dot_product_attention(qh, k_rep, v_rep, attn_mask=mask))
        row["sdpa_bool_mask_partial"] = {**t_masked, "TFLOPs": flops / t_masked["median_ms"] / 1e9}
    except Exception as exc:
        row["sdpa_bool_mask_partial"] = {"error": repr(exc)[:300]}
    if row["best"]:
        b = row["best"]
        print(f"partial attention frac={frac}: best {b['config']} {b['median_ms']:.3f} ms "
              f"{b['TFLOPs']:.0f} TFLOP/s ({b['ratio_vs_sdpa_tflops']:.2f} of SDPA); torch ref "
              f"{row['torch_ref']['median_ms']:.3f} ms; SDPA+mask "
              f"{row['sdpa_bool_mask_partial'].get('median_ms')} ms")  # fmt: skip
    return row


def run_checks(n: int, res: dict[str, Any]) -> None:
    checks: dict[str, Any] = {}
    k = torch.randn(n, 8, 128, device=DEVICE, dtype=torch.bfloat16)
    delta = torch.randint(-n, n, (n,), device=DEVICE)
    out = torch.full_like(k, float("nan"))
    rope_rerotate(k, delta, LLAMA3_ROPE.inv_freq(DEVICE), 128, out=out)
    check("rerotate_bf16", out, rerotate_k_ref(k, delta, LLAMA3_ROPE), 1e-2, 4e-2, checks)
    fresh = k + 0.1 * torch.randn_like(k)
    check("deviation_bf16", token_deviation(k, fresh),
          token_deviation_ref(k, fresh), 1e-5, 1e-3, checks)  # fmt: skip
    idx = selection(n, 0.15, seed=3)
    check("gather_bf16", gather_rows(k, idx), k[idx], 0.0, 0.0, checks)
    dst, expect = k.clone(), k.clone()
    rows = torch.randn(idx.numel(), 8, 128, device=DEVICE, dtype=torch.bfloat16)
    scatter_rows(dst, idx, rows)
    expect[idx] = rows
    check("scatter_bf16", dst, expect, 0.0, 0.0, checks)
    q = torch.randn(n, 32, 128, device=DEVICE, dtype=torch.bfloat16)
    v = torch.randn_like(k)
    pos = torch.arange(n, device=DEVICE)
    for frac in (0.05, 0.20):
        s = selection(n, frac, seed=11)
        o = partial_attention(q[s].contiguous(), k, v, pos[s], pos, 128**-0.5)
        r = partial_attention_ref(q[s].contiguous(), k, v, pos[s], pos, 128**-0.5)
        check(f"partial_attention_bf16_frac{frac}", o, r, 1e-2, 4e-2, checks)
    res["correctness_full_size"] = checks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--tokens", type=int, default=8192)
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.05, 0.10, 0.15, 0.20])
    parser.add_argument("--sections", nargs="+", default=None,
                        help="run only these sections (correctness_full_size, rerotate, "
                             "rerotate_large, deviation, partial_attention); default: all")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("kernels_micro needs a CUDA device")
    res: dict[str, Any] = {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__, "triton": triton.__version__, "python": platform.python_version(),
    }  # fmt: skip
    torch.manual_seed(0)
    sections: list[tuple[str, Callable[[], None]]] = [
        ("correctness_full_size", lambda: run_checks(args.tokens, res)),
        ("rerotate", lambda: run_rerotate(args.tokens, 8, 128, res)),
        # 8 layers' worth: 128 MiB, well past the 50 MB L2
        ("rerotate_large", lambda: run_rerotate(args.tokens * 8, 8, 128, res)),
        ("deviation", lambda: run_deviation(args.tokens, res)),
        ("partial_attention", lambda: run_attention(args.tokens, 32, 8, 128, args.fractions, res)),
    ]
    if args.sections:
        unknown = set(args.sections) - {name for name, _ in sections}
        if unknown:
            parser.error(f"unknown sections: {sorted(unknown)}")
        sections = [(n, f) for n, f in sections if n in args.sections]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for name, section in sections:
        try:
            section()
        except Exception:  # keep the other sections' figures; the error goes into the JSON
            res.setdefault("errors", {})[name] = traceback.format_exc()[-2000:]
            print(f"section {name} failed:\n{res['errors'][name]}")
        torch.cuda.empty_cache()
        args.out.write_text(json.dumps(res, indent=2))
    print(f"wrote {args.out}")
    checks = res.get("correctness_full_size", {})
    if "errors" in res or not checks or not all(c["ok"] for c in checks.values()):
        raise SystemExit("a section or a full-size correctness check failed (see the JSON)")


if __name__ == "__main__":
    main()
