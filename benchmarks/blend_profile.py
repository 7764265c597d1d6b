"""Where a blend prefill spends its time: host enqueue versus device time, and the top ops.

For each context and implementation, one blend prefill (r = ``--ratio``) is timed three ways
after a warm-up: the host time to enqueue it (no sync inside), the device time between CUDA
events, and the wall time to completion. A prefill whose host time is close to its device time
is launch-bound, and fewer or cheaper launches are the lever; otherwise the kernels are. Then a
``torch.profiler`` trace of one run gives the ops with the most self CPU and device time.

    python benchmarks/blend_profile.py --contexts 2048,8192 --out blend_profile.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from semcache.gpu.blend import BlendConfig, Blender
from semcache.gpu.chunks.ids import Segment, chunk_id
from semcache.gpu.chunks.store import ChunkKVStore
from semcache.gpu.model.loader import llama3_8b_config, random_model
from semcache.gpu.model.runner import ModelRunner


def segments_for(runner: ModelRunner, context: int, n_chunks: int, question: int) -> list[Segment]:
    gen = torch.Generator().manual_seed(0)
    vocab = int(runner.config.vocab_size)
    chunk_len = (context - question) // n_chunks
    chunks = [tuple(torch.randint(0, vocab, (chunk_len,), generator=gen).tolist())
              for _ in range(n_chunks)]
    q_ids = tuple(torch.randint(0, vocab, (question,), generator=gen).tolist())
    return [Segment(c, chunk_id(c)) for c in chunks] + [Segment(q_ids)]


def split_times(fn: Any, runs: int) -> dict[str, float]:
    host, device, wall = [], [], []
    for _ in range(runs):
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        t0 = time.perf_counter()
        start.record()
        fn()
        end.record()
        t1 = time.perf_counter()
        end.synchronize()
        t2 = time.perf_counter()
        host.append((t1 - t0) * 1e3)
        device.append(start.elapsed_time(end))
        wall.append((t2 - t0) * 1e3)
    return {"host_enqueue_ms": statistics.median(host), "event_ms": statistics.median(device),
            "wall_ms": statistics.median(wall)}


def top_ops(fn: Any, n: int) -> dict[str, Any]:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    events = prof.key_averages()
    out: dict[str, Any] = {"timeline": timeline(prof, n)}
    for key, attr in (("cpu", "self_cpu_time_total"), ("device", "self_device_time_total")):
        rows = sorted(events, key=lambda e: getattr(e, attr, 0.0), reverse=True)[:n]
        out[key] = [{"name": e.key, "calls": e.count, "self_ms": getattr(e, attr, 0.0) / 1e3}
                    for e in rows]
    return out


def timeline(prof: Any, n: int) -> dict[str, Any]:
    """Device busy time against the span of one run, and the longest idle gaps between kernels.

    A span much longer than the busy time means the GPU waited on the host somewhere; the gaps
    name the kernels on either side of each wait.
    """
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trace.json"
        prof.export_chrome_trace(str(path))
        trace = json.loads(path.read_text())
    kernels = sorted((e for e in trace.get("traceEvents", [])
                      if e.get("ph") == "X" and e.get("cat") in ("kernel", "gpu_memcpy", "gpu_memset")),
                     key=lambda e: e["ts"])  # fmt: skip
    if not kernels:
        return {"kernels": 0}
    busy, gaps, end, prev = 0.0, [], kernels[0]["ts"], kernels[0]["name"]
    for e in kernels:
        start, stop = e["ts"], e["ts"] + e["dur"]
        if start > end:
            gaps.append({"us": start - end, "after": prev[:60], "before": e["name"][:60]})
        busy += max(0.0, stop - max(start, end))
        if stop > end:
            end, prev = stop, e["name"]
    gaps.sort(key=lambda g: -g["us"])
    return {"kernels": len(kernels), "span_ms": (end - kernels[0]["ts"]) / 1e3,
            "busy_ms": busy / 1e3, "idle_ms": sum(g["us"] for g in gaps) / 1e3, "gaps": gaps[:n]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contexts", default="2048,8192")
    parser.add_argument("--ratio", type=float, default=0.15)
    parser.add_argument("--select", default="query", choices=("query", "deviation"))
    parser.add_argument("--check-layer", type=int, default=None,
                        help="blend check layer (default: the BlendConfig default for --select)")
    parser.add_argument("--layers", type=int, default=32)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--out", type=Path, default=Path("blend_profile.json"))
    args = parser.parse_args()
    if not torch.cuda.is_available():
        parser.error("needs a CUDA device")
    model = random_model(llama3_8b_config(args.layers), "cuda", torch.bfloat16, seed=0).model
    runner = ModelRunner(model)
    results: dict[str, Any] = {"device": torch.cuda.get_device_name(), "ratio": args.ratio,
                               "select": args.select,
                               "check_layer": BlendConfig(select=args.select,
                                                          check_layer=args.check_layer).check_layer,
                               "contexts": {}}
    for context in map(int, args.contexts.split(",")):
        segs = segments_for(runner, context, 8, 64)
        blender = Blender(runner, ChunkKVStore(1 << 40))
        for s in segs[:-1]:
            blender.chunk_kv(s)
        ids = [t for s in segs for t in s.token_ids]
        per: dict[str, Any] = {}
        cases = {"full": lambda ids=ids: runner.prefill(ids)[0].argmax()}
        for impl in ("auto", "torch"):
            cfg = BlendConfig(ratio=args.ratio, impl=impl, select=args.select,
                              check_layer=args.check_layer)
            cases[f"blend_{impl}"] = (lambda cfg=cfg, b=blender, segs=segs:
                                      b.prefill(segs, cfg).logits.argmax())
        for name, fn in cases.items():
            for _ in range(3):
                fn()
            per[name] = split_times(fn, args.runs)
            per[name]["top"] = top_ops(fn, args.top)
            t = per[name]
            print(f"{context:6d} {name:12s} host {t['host_enqueue_ms']:7.2f} ms  "
                  f"event {t['event_ms']:7.2f} ms  wall {t['wall_ms']:7.2f} ms", flush=True)
        results["contexts"][str(context)] = per
        torch.cuda.empty_cache()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    for context, per in results["contexts"].items():
        for name in ("blend_auto",):
            print(f"--- {context} {name}: top self CPU")
            for row in per[name]["top"]["cpu"][:8]:
                print(f"   {row['self_ms']:8.2f} ms {row['calls']:5d}x {row['name'][:70]}")
            print(f"--- {context} {name}: top self device")
            for row in per[name]["top"]["device"][:8]:
                print(f"   {row['self_ms']:8.2f} ms {row['calls']:5d}x {row['name'][:70]}")
            tl = per[name]["top"]["timeline"]
            if tl.get("kernels"):
                print(f"--- {context} {name}: {tl['kernels']} device ops, span {tl['span_ms']:.2f} ms, "
                      f"busy {tl['busy_ms']:.2f} ms, idle {tl['idle_ms']:.2f} ms; longest gaps:")
                for g in tl["gaps"][:5]:
                    print(f"   {g['us'] / 1e3:7.2f} ms after {g['after']} before {g['before']}")


if __name__ == "__main__":
    main()
