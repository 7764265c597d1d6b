"""Quality of chunk KV reuse against full prefill, on SmolLM2 with real RAG prompts (CPU).

For every prompt (6 shuffled chunks of Python documentation + a question about one of them):
1. full prefill, then its own greedy continuation of ``--new-tokens`` tokens; the full model's
   next-token distributions along it are the reference (computed once, shared by every ratio);
2. for each ratio r: blend prefill (chunk KV reused, re-rotated, r of the chunk tokens
   recomputed), then the same continuation teacher-forced on the fused KV.

Metrics per ratio: teacher-forced top-1 agreement, mean per-token KL(full || reuse) in nats,
first-token agreement, exact match of the first 16 tokens (equivalent to greedy decoding from the
fused KV matching the full greedy output: with teacher forcing, the first mismatch is where
greedy decoding would diverge). Writes JSON (and a PNG plot next to it).

    python benchmarks/chunk_quality.py --out benchmarks/results/chunk_quality.json [--limit N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

# appended, not prepended: the installed semcache (with its gpu/ mapping) must win over the
# repo's semcache/ folder
sys.path.append(str(Path(__file__).resolve().parents[1]))

from semcache.gpu.blend import BlendConfig, Blender, default_check_layer  # noqa: E402
from semcache.gpu.chunks.ids import ChunkRegistry, Segment, build_prompt  # noqa: E402
from semcache.gpu.chunks.store import ChunkKVStore  # noqa: E402
from semcache.gpu.model.runner import ModelRunner  # noqa: E402

from benchmarks.data.rag_prompts import rag_prompts  # noqa: E402

RATIOS = (0.0, 0.05, 0.10, 0.15, 0.20, 0.30, 1.0)
# Plain single-check-layer CacheBlend (layer 0 full, V deviation at layer 1), 40 prompts.
REFERENCE = {"0.0": {"agreement": 0.802, "kl": 0.171}, "0.05": {"agreement": 0.903, "kl": 0.051},
             "0.15": {"agreement": 0.918, "kl": 0.034}, "0.3": {"agreement": 0.927, "kl": 0.023}}


def reference_pass(runner: ModelRunner, ids: list[int], new_tokens: int) -> tuple[list[int], torch.Tensor]:
    """Full prefill + greedy continuation: (continuation ids, log-probs ``[new_tokens, V]``)."""
    logits, kv = runner.prefill(ids)
    rows, cont = [logits], [int(logits.argmax())]
    while len(cont) < new_tokens:
        logits = runner.decode_step(cont[-1], kv)
        rows.append(logits)
        cont.append(int(logits.argmax()))
    return cont, torch.log_softmax(torch.stack(rows), dim=-1)


def reuse_pass(blender: Blender, segments: list[Segment], cont: list[int], ref_logp: torch.Tensor,
               cfg: BlendConfig) -> dict[str, float]:
    """Blend prefill, then the continuation teacher-forced; metrics against the reference."""
    res = blender.prefill(segments, cfg)
    ext = blender.runner.extend(cont[:-1], res.kv, all_logits=True)
    return score(res.logits, ext, cont, ref_logp) | {"effective_ratio": res.stats.effective_ratio}


def precision_pass(runner: ModelRunner, ids: list[int], cont: list[int],
                   ref_logp: torch.Tensor) -> dict[str, float]:
    """Plain full prefill on ``runner`` (another dtype), the continuation teacher-forced."""
    logits, kv = runner.prefill(ids)
    return score(logits, runner.extend(cont[:-1], kv, all_logits=True), cont, ref_logp)


def score(first: torch.Tensor, rest: torch.Tensor, cont: list[int],
          ref_logp: torch.Tensor) -> dict[str, float]:
    """Metrics of next-token logits ``first`` then ``rest`` along ``cont`` against the reference."""
    logp = torch.log_softmax(torch.cat((first[None], rest)).float(), dim=-1)
    agree = logp.argmax(-1) == torch.tensor(cont, device=logp.device)
    kl = (ref_logp.exp() * (ref_logp - logp)).sum(-1)
    return {"agreement": float(agree.float().mean()), "kl": float(kl.mean()),
            "first_token": float(agree[0]), "exact16": float(agree[:16].all())}


def aggregate(rows: list[dict[str, float]]) -> dict[str, float]:
    keys = rows[0].keys()
    return {k: sum(r[k] for r in rows) / len(rows) for k in keys} | {"prompts": len(rows)}


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ratios = [float(r) for r in results["ratios"]]
    agg = [results["ratios"][r] for r in results["ratios"]]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(ratios, [a["agreement"] for a in agg], "o-", label="semcache blend")
    # r = 1 reproduces full prefill (KL ~ 1e-9, may round below 0): floor it for the log axis
    ax2.plot(ratios, [max(a["kl"], 1e-4) for a in agg], "o-", label="semcache blend (floored at 1e-4)")
    ref_r = [float(r) for r in REFERENCE]
    ax1.plot(ref_r, [v["agreement"] for v in REFERENCE.values()], "s--", label="plain CacheBlend (ref., other 40 prompts)")
    ax2.plot(ref_r, [v["kl"] for v in REFERENCE.values()], "s--", label="plain CacheBlend (ref., other 40 prompts)")
    ax1.axhline(0.95, color="grey", lw=0.8)
    ax2.axhline(0.02, color="grey", lw=0.8)
    ax1.set(xlabel="recompute ratio r", ylabel="teacher-forced top-1 agreement")
    ax2.set(xlabel="recompute ratio r", ylabel="KL(full || reuse), nats/token", yscale="log")
    for ax in (ax1, ax2):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(f"SmolLM2-135M, {results['prompts']} RAG prompts")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def merge(parts: list[Path], out: Path) -> dict[str, Any]:
    """Combine shard results (same settings, disjoint prompts) into one result file."""
    loaded = [json.loads(p.read_text()) for p in parts]
    results = dict(loaded[0])
    if any(r["design"] != results["design"] for r in loaded):
        raise ValueError("shards were run with different designs")
    results["per_prompt"] = {r: [row for part in loaded for row in part["per_prompt"][r]]
                             for r in results["per_prompt"]}
    results["lengths"] = [n for part in loaded for n in part["lengths"]]
    results["ratios"] = {r: aggregate(rows) for r, rows in results["per_prompt"].items()}
    if "per_prompt_full_prefill_bf16" in results:
        floor = [row for part in loaded for row in part["per_prompt_full_prefill_bf16"]]
        results["per_prompt_full_prefill_bf16"] = floor
        results["full_prefill_bf16"] = aggregate(floor)
    results["prompts"] = len(results["lengths"])
    lengths = sorted(results["lengths"])
    results["prompt_tokens"] = {"min": lengths[0], "median": lengths[len(lengths) // 2],
                                "max": lengths[-1]}
    results["seconds"] = max(part["seconds"] for part in loaded)
    results["shards"] = len(loaded)
    results["parts"] = [{"device": r["device"], "prompts": r["prompts"], "host": r.get("host")}
                        for r in loaded]  # fmt: skip
    devices = sorted({r["device"] for r in loaded})
    results["device"] = " + ".join(devices)
    return write(results, out)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/chunk_quality.json"))
    parser.add_argument("--limit", type=int, default=200, help="number of prompts")
    parser.add_argument("--ratios", default=",".join(str(r) for r in RATIOS))
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--check-layer", type=int, default=None,
                        help="last layer computed for every token (default: 0 with --select "
                             "query, 1 with --select deviation)")
    parser.add_argument("--select", default="query", choices=("query", "deviation"),
                        help="how chunk tokens are chosen for recompute (semcache.gpu.blend)")
    parser.add_argument("--score", default="kv", choices=("k", "v", "kv"),
                        help="the deviation score (with --select deviation)")
    parser.add_argument("--boundary-tokens", type=int, default=0)
    parser.add_argument("--anchor", default="context",
                        choices=("context", "docs", "context-system", "bos", "prefix", "none"),
                        help="what chunk KV is computed after: the engine's default anchor "
                             "(semcache.gpu.chunks.anchor); that anchor with a documentation passage (the "
                             "json module's docstring, outside the evaluation corpus); the default "
                             "anchor with the prompts' own system message; the BOS token; the "
                             "prompts' shared system prefix; or nothing")
    parser.add_argument("--anchor-text", type=Path, default=None,
                        help="file with the anchor's context passage (default: the engine's)")
    parser.add_argument("--precision-floor", action="store_true",
                        help="also score a plain full prefill in bf16 against the fp32 reference: "
                             "what a change of precision alone moves these metrics")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--start", type=int, default=0,
                        help="skip the first N prompts (to finish a stopped run; merge with --merge)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                        help="where SmolLM2 runs (fp32 on both; Triton kernels on cuda)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--shard", default="0/1",
                        help="i/n: run prompts i, i+n, ... (merge the parts with --merge)")
    parser.add_argument("--merge", nargs="+", type=Path, default=None,
                        help="combine shard JSON files into --out instead of running")
    args = parser.parse_args(argv)
    if args.check_layer is None:
        args.check_layer = default_check_layer(args.select)
    if args.merge:
        return merge(args.merge, args.out)
    if args.anchor_text is not None and args.anchor not in ("context", "context-system"):
        parser.error("--anchor-text sets the passage of --anchor context or context-system")
    if args.threads:
        torch.set_num_threads(args.threads)
    shard, nshards = (int(x) for x in args.shard.split("/"))
    ratios = [float(r) for r in args.ratios.split(",")]

    from semcache.gpu.model.loader import load_smollm2
    from tqdm import tqdm

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    loaded = load_smollm2(args.device)
    tok = loaded.tokenizer
    runner = ModelRunner(loaded.model)
    registry = ChunkRegistry()
    prompts = rag_prompts(tok, args.limit, seed=args.seed)[args.start:][shard::nshards]
    from semcache.gpu.chunks.anchor import ANCHOR_CONTEXT, ANCHOR_SYSTEM, anchor_ids

    context = args.anchor_text.read_text().strip() if args.anchor_text else ANCHOR_CONTEXT
    if args.anchor == "docs":
        import json as json_module

        context = (json_module.__doc__ or "").strip()
    anchor = (anchor_ids(tok, ANCHOR_SYSTEM, context) if args.anchor in ("context", "docs") else
              anchor_ids(tok, prompts[0].system, context) if args.anchor == "context-system" else
              [tok.bos_token_id] if args.anchor == "bos" else
              _shared_prefix(tok, prompts) if args.anchor == "prefix" else [])
    blender = Blender(runner, ChunkKVStore(4 << 30), registry, anchor_ids=anchor)
    per_ratio: dict[float, list[dict[str, float]]] = {r: [] for r in ratios}
    bf16 = ModelRunner(load_smollm2(args.device, torch.bfloat16).model) if args.precision_floor else None
    floor_rows: list[dict[str, float]] = []
    lengths = []
    t0 = time.perf_counter()
    for p in tqdm(prompts, desc="prompts"):
        layout = build_prompt(tok, p.system, p.chunks, p.question, registry)
        ids = layout.token_ids
        lengths.append(len(ids))
        cont, ref_logp = reference_pass(runner, ids, args.new_tokens)
        for r in ratios:
            cfg = BlendConfig(ratio=r, check_layer=args.check_layer, select=args.select,
                              score=args.score,
                              boundary_tokens=args.boundary_tokens)
            per_ratio[r].append(reuse_pass(blender, list(layout.segments), cont, ref_logp, cfg))
        if bf16 is not None:
            floor_rows.append(precision_pass(bf16, ids, cont, ref_logp))
        if len(lengths) % 5 == 0:  # checkpoint: a long run can be stopped and still merged
            partial = summary(args, anchor, len(lengths), lengths, per_ratio, time.perf_counter() - t0,
                              floor_rows)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(partial, indent=1) + "\n")
    return write(summary(args, anchor, len(lengths), lengths, per_ratio, time.perf_counter() - t0,
                         floor_rows), args.out)


def _shared_prefix(tok: Any, prompts: list[Any]) -> list[int]:
    """Token ids of the system prefix that every prompt starts with (one system prompt here)."""
    systems = {p.system for p in prompts}
    if len(systems) != 1:
        raise ValueError("--anchor prefix needs prompts that share one system prompt")
    layout = build_prompt(tok, prompts[0].system, prompts[0].chunks, prompts[0].question)
    first = layout.segments[0]
    if first.chunk_id is not None:
        raise ValueError("the prompt layout has no plain prefix before its chunks")
    return list(first.token_ids)


def summary(args: argparse.Namespace, anchor: list[int], n: int, lengths: list[int],
            per_ratio: dict[float, list[dict[str, float]]], seconds: float,
            floor_rows: list[dict[str, float]] | None = None) -> dict[str, Any]:
    floor = ({"full_prefill_bf16": aggregate(floor_rows), "per_prompt_full_prefill_bf16": floor_rows}
             if floor_rows else {})
    return floor | {
        "model": "SmolLM2-135M-Instruct (GGUF Q4_1 de-quantised, fp32)",
        "device": (torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"),
        "prompts": n, "chunks_per_prompt": 6,
        "prompt_tokens": {"min": min(lengths), "median": sorted(lengths)[len(lengths) // 2],
                          "max": max(lengths)},
        "new_tokens": args.new_tokens,
        "design": {"check_layer": args.check_layer, "select": args.select, "score": args.score,
                   "boundary_tokens": args.boundary_tokens, "anchor": args.anchor,
                   "anchor_text": str(args.anchor_text) if args.anchor_text else "default",
                   "chunk_kv": "computed alone after a fixed anchor prefix" if anchor else
                   "computed alone at positions 0..L-1", "anchor_ids": anchor,
                   "ratio_accounting": "fraction of chunk tokens recomputed after the check layer; "
                   "layers 0..check_layer see fresh K/V for every token"},
        "ratios": {str(r): aggregate(per_ratio[r]) for r in per_ratio},
        "per_prompt": {str(r): per_ratio[r] for r in per_ratio}, "lengths": lengths,
        "reference_plain_cacheblend_40_prompts": REFERENCE,
        "seconds": round(seconds, 1),
        "host": platform.node(), "torch": torch.__version__,
    }


def write(results: dict[str, Any], out: Path) -> dict[str, Any]:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    plot(results, out.with_suffix(".png"))
    for r, a in results["ratios"].items():
        print(f"r={r:>5}  agreement={a['agreement']:.3f}  kl={a['kl']:.4f}  "
              f"first={a['first_token']:.2f}  exact16={a['exact16']:.2f}  "
              f"eff_r={a['effective_ratio']:.3f}")
    if "full_prefill_bf16" in results:
        a = results["full_prefill_bf16"]
        print(f"full prefill in bf16: agreement={a['agreement']:.3f}  kl={a['kl']:.4f}  "
              f"first={a['first_token']:.2f}  exact16={a['exact16']:.2f}")
    return results


if __name__ == "__main__":
    main()
