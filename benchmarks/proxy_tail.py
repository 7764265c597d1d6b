"""Tail latency of exact hits at 64 connections, for one or more checkouts, runs interleaved.

    python benchmarks/proxy_tail.py --root BEFORE=/path/a --root AFTER=. --rounds 3 --out FILE

Each round starts, for every root in turn, the fake upstream and that checkout's proxy, stores
the 180 base questions, then drives 64 keep-alive connections of exact hits for ``--duration``
seconds (the load generator of ``benchmarks/proxy.py``, in its own process). It records p50,
p99, the proxy's CPU time per request and the 1-minute load average, so runs on a shared host
can be compared side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# Runs a checkout's proxy: the checkout's semcache/, adapters/, gpu/ and alembic/ folders take the
# installed names, whatever the editable install of the current tree maps them to.
LAUNCHER = """
import importlib.machinery, importlib.util, runpy, sys
root = sys.argv.pop(1)
sys.path.insert(0, root)
import semcache
for name, folder in (("adapters", "adapters"), ("gpu", "gpu"), ("migrations", "alembic")):
    mod = importlib.util.module_from_spec(importlib.machinery.ModuleSpec("semcache." + name, None, is_package=True))
    mod.__path__ = [f"{root}/{folder}"]
    sys.modules[mod.__name__] = mod
    init = f"{root}/{folder}/__init__.py"
    exec(compile(open(init).read(), init, "exec"), mod.__dict__) if __import__("os").path.exists(init) else None
runpy.run_module("semcache.adapters.proxy.cli", run_name="__main__", alter_sys=True)
"""


def one_run(root: Path, fake: str, tmp: Path, duration: float) -> dict[str, Any]:
    """Start ``root``'s proxy, store the base questions, measure exact hits at 64 connections."""
    from benchmarks.proxy import base_questions, chat, run_loadgen, sequential, spawn, wait_up
    from tests.fixtures.vllm import free_port, stop_process_group

    port = free_port()
    db = tmp / f"tail-{port}.db"
    proc = spawn(["-c", LAUNCHER, str(root), "--upstream", fake, "--port", str(port), "--db", f"sqlite:///{db}",
                  "--log-level", "warning"], tmp / f"proxy-{port}.log")
    try:
        url = f"http://127.0.0.1:{port}"
        wait_up(f"{url}/healthz", proc)
        bodies = [chat(q) for q in base_questions()]
        asyncio.run(sequential(url, bodies))
        return run_loadgen(url, bodies, duration, True, tmp, server_pid=proc.pid)
    finally:
        stop_process_group(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description="exact-hit tail latency at 64 connections")
    parser.add_argument("--root", action="append", required=True, help="LABEL=PATH of a checkout")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    from benchmarks.proxy import spawn, wait_up
    from tests.fixtures.vllm import free_port, stop_process_group

    roots = [(label, Path(path).resolve()) for label, path in (r.split("=", 1) for r in args.root)]
    tmp = Path(tempfile.mkdtemp(prefix="semcache-tail-"))
    port = free_port()
    fake_proc = spawn(["-m", "tests.fixtures.upstream", "--port", str(port)], tmp / "fake.log")
    fake = f"http://127.0.0.1:{port}"
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label, _ in roots}
    try:
        wait_up(f"{fake}/v1/models", fake_proc)
        for i in range(args.rounds):
            for label, root in roots:
                res = one_run(root, fake, tmp, args.duration)
                res["round"], res["loadavg_1m_before"] = i, round(os.getloadavg()[0], 2)
                runs[label].append(res)
                print(f"{label} round {i}: p50 {res['p50_ms']} p99 {res['p99_ms']} rps {res['rps']} "
                      f"cpu/req {res.get('proxy_cpu_ms_per_request')} load {res['loadavg_1m_after']}", flush=True)
    finally:
        stop_process_group(fake_proc)
    out = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}, "when": time.time(),
           "target": "p99 <= 3 x p50 (exact hits, 64 connections)", "roots": {k: str(v) for k, v in roots},
           "runs": runs,
           "ratio_p99_over_p50": {k: [round(r["p99_ms"] / r["p50_ms"], 2) for r in v] for k, v in runs.items()}}
    print(json.dumps(out["ratio_p99_over_p50"]))
    if args.out:
        args.out.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
