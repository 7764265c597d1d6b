"""TTFT of chunk KV reuse against full prefill and prefix caching (random-weight Llama-3-8B shape).

Prompt: ``--chunks`` reused chunks of random tokens, then a ``--question-tokens`` question, at
``--context`` tokens in all. Chunk KV is computed beforehand, each chunk alone at positions
``0..L-1`` (so every chunk but the first is re-rotated). Timed, each until the first token is
known (prefill + LM head + argmax):

- ``full``: full prefill;
- ``prefix``: prefix caching, the first chunk's KV reused as is, the rest prefilled after it;
- ``blend_gpu[r]``: semcache blend with the chunk KV already in GPU memory (Triton kernels);
- ``blend_pinned[r]``: the same with chunk KV loaded from pinned host memory during the prefill;
- ``blend_torch[r]``: the same pipeline in plain PyTorch (reference ops, SDPA with a boolean
  position mask), chunk KV in GPU memory.

CUDA events around each run, warm-up runs not counted, median (and p90) of ``--runs``.

    python benchmarks/chunk_reuse.py --device cuda --contexts 2048,8192,16384 --chunks 8 \
        --ratios 0.05,0.1,0.15,0.2 --out benchmarks/results/chunk_reuse_h100.json
    python benchmarks/chunk_reuse.py --device cpu --context 512 --layers 2   # smoke test

On CPU the model is a scaled-down shape (hidden 256) unless ``--shape llama3-8b`` is given.
Needs only torch, transformers (and triton on CUDA).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from semcache.gpu.blend import BlendConfig, Blender
from semcache.gpu.chunks.ids import Segment, chunk_id
from semcache.gpu.chunks.store import ChunkKVStore
from semcache.gpu.model.loader import llama3_8b_config, random_model
from semcache.gpu.model.runner import KVCache, ModelRunner


def model_config(shape: str, layers: int) -> Any:
    cfg = llama3_8b_config(layers)
    if shape == "tiny":
        cfg.hidden_size, cfg.intermediate_size = 256, 768
        cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim = 4, 2, 64
        cfg.vocab_size = 32000
    return cfg


def timed(fn: Callable[[], Any], device: torch.device, runs: int, warmup: int) -> dict[str, float]:
    """Median/p90/min milliseconds of ``fn`` (device-synchronised), after ``warmup`` calls."""
    cuda = device.type == "cuda"
    for _ in range(warmup):
        fn()
    if cuda:
        torch.cuda.synchronize(device)
    times = []
    for _ in range(runs):
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    p90 = times[min(len(times) - 1, int(round(0.9 * (len(times) - 1))))]
    return {"median_ms": statistics.median(times), "p90_ms": p90, "min_ms": times[0], "runs": runs}


def bench_context(runner: ModelRunner, context: int, n_chunks: int, question: int,
                  ratios: list[float], runs: int, warmup: int, seed: int,
                  select: str = "query", check_layer: int | None = None) -> dict[str, Any]:  # fmt: skip
    dev = runner.device
    chunk_len = (context - question) // n_chunks
    if chunk_len < 1:
        raise ValueError(f"context {context} too small for {n_chunks} chunks + {question} tokens")
    gen = torch.Generator().manual_seed(seed)
    vocab = int(runner.config.vocab_size)
    chunks = [tuple(torch.randint(0, vocab, (chunk_len,), generator=gen).tolist()) for _ in range(n_chunks)]
    q_ids = tuple(torch.randint(0, vocab, (question,), generator=gen).tolist())
    segments = [Segment(c, chunk_id(c)) for c in chunks] + [Segment(q_ids)]
    ids = [t for s in segments for t in s.token_ids]

    gpu_store = ChunkKVStore(1 << 40)
    blender = Blender(runner, gpu_store)
    for s in segments[:-1]:
        blender.chunk_kv(s)  # encode every chunk once, outside the timed region
    pinned_store = ChunkKVStore(1 << 40)
    for s in segments[:-1]:
        rec = gpu_store.get(s.chunk_id)
        assert rec is not None
        pinned_store.put(s.chunk_id, rec.to("cpu", pin_memory=dev.type == "cuda"))
    pinned = Blender(runner, pinned_store)
    _, prefix_kv = runner.prefill(list(chunks[0]))
    rest = ids[chunk_len:]

    def full() -> Any:
        return runner.prefill(ids)[0].argmax()

    def prefix() -> Any:
        kv = KVCache(list(prefix_kv.keys), list(prefix_kv.values), prefix_kv.positions)
        return runner.extend(rest, kv).argmax()

    out: dict[str, Any] = {"context": len(ids), "chunk_tokens": chunk_len, "chunks": n_chunks,
                           "question_tokens": question, "select": select,
                           "check_layer": BlendConfig(select=select,
                                                      check_layer=check_layer).check_layer}
    out["full"] = timed(full, dev, runs, warmup)
    out["prefix"] = timed(prefix, dev, runs, warmup)
    for name, b, impl in (("blend_gpu", blender, "auto"), ("blend_pinned", pinned, "auto"),
                          ("blend_torch", blender, "torch")):
        out[name] = {}
        for r in ratios:
            cfg = BlendConfig(ratio=r, impl=impl, select=select, check_layer=check_layer)
            out[name][str(r)] = timed(lambda b=b, cfg=cfg: b.prefill(segments, cfg).logits.argmax(),
                                      dev, runs, warmup)
    full_ms, prefix_ms = out["full"]["median_ms"], out["prefix"]["median_ms"]
    out["speedup"] = {
        name: {r: {"vs_full": full_ms / v["median_ms"], "vs_prefix": prefix_ms / v["median_ms"]}
               for r, v in out[name].items()}
        for name in ("blend_gpu", "blend_pinned", "blend_torch")
    }
    return out


def plot(results: dict[str, Any], path: Path) -> None:
    """TTFT per context: full prefill, prefix caching and the blend paths at each ratio."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ctxs = results["contexts"]
    fig, axes = plt.subplots(1, len(ctxs), figsize=(5 * len(ctxs), 4), squeeze=False)
    for ax, res in zip(axes[0], ctxs, strict=True):
        rs = list(res["blend_gpu"])
        x = [float(r) for r in rs]
        for name, label in (("blend_gpu", "semcache, KV in GPU memory"),
                            ("blend_pinned", "semcache, KV from pinned host memory"),
                            ("blend_torch", "same pipeline, plain PyTorch")):  # fmt: skip
            ax.plot(x, [res[name][r]["median_ms"] for r in rs], "o-", label=label)
        ax.axhline(res["full"]["median_ms"], color="black", lw=1, label="full prefill")
        ax.axhline(res["prefix"]["median_ms"], color="grey", lw=1, ls="--", label="prefix caching")
        ax.axhline(res["full"]["median_ms"] / 4.5, color="red", lw=0.8, ls=":",
                   label="target: full / 4.5")  # fmt: skip
        ax.set(title=f"{res['context']} tokens", xlabel="recompute ratio r",
               ylabel="TTFT, median ms", yscale="log")  # fmt: skip
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"{results['device']}, {results['shape']} (random {results['dtype']} weights), "
                 f"select={results['select']}")  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--context", type=int, default=8192)
    parser.add_argument("--contexts", default=None, help="comma list; overrides --context")
    parser.add_argument("--chunks", type=int, default=8)
    parser.add_argument("--question-tokens", type=int, default=64)
    parser.add_argument("--ratios", default="0.05,0.1,0.15,0.2")
    parser.add_argument("--layers", type=int, default=32)
    parser.add_argument("--shape", default=None, choices=("llama3-8b", "tiny"),
                        help="default: llama3-8b on cuda, tiny on cpu")
    parser.add_argument("--runs", type=int, default=None, help="default 10 on cuda, 2 on cpu")
    parser.add_argument("--warmup", type=int, default=None, help="default 3 on cuda, 1 on cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--select", default="query", choices=("query", "deviation"),
                        help="how chunk tokens are chosen for recompute (semcache.gpu.blend)")
    parser.add_argument("--check-layer", type=int, default=None,
                        help="blend check layer (default: the BlendConfig default for --select)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/chunk_reuse.json"))
    parser.add_argument("--plot", type=Path, default=None,
                        help="only draw the PNG of an existing result file (next to it)")
    args = parser.parse_args(argv)
    if args.plot is not None:
        results = json.loads(args.plot.read_text())
        plot(results, args.plot.with_suffix(".png"))
        return results
    cuda = args.device == "cuda"
    if cuda and not torch.cuda.is_available():
        parser.error("--device cuda but no CUDA device is available")
    shape = args.shape or ("llama3-8b" if cuda else "tiny")
    runs = args.runs if args.runs is not None else (10 if cuda else 2)
    warmup = args.warmup if args.warmup is not None else (3 if cuda else 1)
    contexts = [int(c) for c in (args.contexts or str(args.context)).split(",")]
    ratios = [float(r) for r in args.ratios.split(",")]
    dtype = torch.bfloat16 if cuda else torch.float32

    model = random_model(model_config(shape, args.layers), args.device, dtype, seed=args.seed).model
    runner = ModelRunner(model)
    results: dict[str, Any] = {
        "device": torch.cuda.get_device_name() if cuda else "cpu", "shape": shape,
        "layers": args.layers, "dtype": str(dtype), "torch": torch.__version__,
        "ratios": ratios, "select": args.select, "contexts": [],
    }
    for context in contexts:
        res = bench_context(runner, context, args.chunks, args.question_tokens, ratios,
                            runs, warmup, args.seed, args.select, args.check_layer)
        results["contexts"].append(res)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")  # kept if a later context fails
        print(f"context {res['context']}: full {res['full']['median_ms']:.1f} ms, "
              f"prefix {res['prefix']['median_ms']:.1f} ms")
        for r in map(str, ratios):
            g, p, t = (res[n][r]["median_ms"] for n in ("blend_gpu", "blend_pinned", "blend_torch"))
            print(f"  r={r:<5} blend gpu {g:7.1f} ms ({res['full']['median_ms'] / g:4.2f}x full, "
                  f"{res['prefix']['median_ms'] / g:4.2f}x prefix)  pinned {p:7.1f} ms  torch {t:7.1f} ms")
        if cuda:
            torch.cuda.empty_cache()
    plot(results, args.out.with_suffix(".png"))
    return results


if __name__ == "__main__":
    main()
