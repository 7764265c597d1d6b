"""Long schemathesis run against a proxy process: the OpenAI routes, the cache API and the admin API.

    python benchmarks/fuzz_api.py --cases 20000 --out benchmarks/results/fuzz_api.json

The proxy (``python -m semcache.adapters.proxy.cli``, admin mounted) runs in its own process in
front of a healthy fake upstream, so any 5xx is the proxy's. Cases are spread evenly over the
operations of the proxy's OpenAPI spec, generated with a fixed seed, and sent with the admin
token. A 5xx, or a connection the server dropped, counts as a server error; the first few are
kept with their request.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

ADMIN = "admin-token-0123456789abcdef"
HEADERS = {"authorization": f"Bearer {ADMIN}"}


def fuzz_operation(operation: Any, base_url: str, examples: int, seed: int, tally: dict[str, Any]) -> None:
    """Send ``examples`` generated cases of one operation; count statuses and server errors."""
    import requests
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as fixed_seed

    key = f"{operation.method.upper()} {operation.path}"
    counts: dict[str, int] = tally["by_operation"].setdefault(key, {})

    @fixed_seed(seed)
    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy())
    def run(case: Any) -> None:
        tally["cases"] += 1
        try:
            response = case.call(base_url=base_url, headers=HEADERS, timeout=60)
            status = str(response.status_code)
        except requests.RequestException as exc:
            status = f"dropped:{type(exc).__name__}"
        counts[status] = counts.get(status, 0) + 1
        if status.startswith("5") or status.startswith("dropped"):
            tally["server_errors"] += 1
            if len(tally["examples"]) < 20:
                tally["examples"].append({"operation": key, "status": status, "curl": case.as_curl_command()[:2000]})

    run()


def main() -> None:
    parser = argparse.ArgumentParser(description="long schemathesis run against the proxy")
    parser.add_argument("--cases", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=26)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "fuzz_api.json")
    args = parser.parse_args()

    import schemathesis
    from semcache.adapters.proxy import ProxySettings, create_app

    from benchmarks.proxy import spawn, wait_up
    from tests.fixtures.vllm import free_port, stop_process_group

    schema = schemathesis.openapi.from_dict(
        create_app(ProxySettings(upstream_url="http://upstream", admin_token=ADMIN)).openapi())
    operations = [result.ok() for result in schema.get_all_operations()]
    per_operation = min(1000, -(-args.cases // len(operations)))
    tmp = Path(tempfile.mkdtemp(prefix="semcache-fuzz-"))
    tally: dict[str, Any] = {"cases": 0, "server_errors": 0, "examples": [], "by_operation": {}}
    procs = []
    started = time.perf_counter()
    try:
        port = free_port()
        procs.append(spawn(["-m", "tests.fixtures.upstream", "--port", str(port)], tmp / "fake.log"))
        wait_up(f"http://127.0.0.1:{port}/v1/models", procs[-1])
        pport = free_port()
        procs.append(spawn(["-m", "semcache.adapters.proxy.cli", "--upstream", f"http://127.0.0.1:{port}",
                            "--port", str(pport), "--db", f"sqlite:///{tmp / 'fuzz.db'}", "--log-level", "warning"],
                           tmp / "proxy.log", env={"SEMCACHE_ADMIN_TOKEN": ADMIN}))
        url = f"http://127.0.0.1:{pport}"
        wait_up(f"{url}/healthz", procs[-1])
        rounds = 0
        while tally["cases"] < args.cases:  # operations without inputs run out early: go round again
            for i, operation in enumerate(operations):
                fuzz_operation(operation, url, per_operation, args.seed + rounds * len(operations) + i, tally)
            rounds += 1
            print(f"round {rounds}: {tally['cases']} cases, {tally['server_errors']} server errors", flush=True)
        alive = procs[-1].poll() is None
    finally:
        for proc in procs:
            stop_process_group(proc)
    log_tail = (tmp / "proxy.log").read_text(errors="replace")[-4000:]
    result = {"cases": tally["cases"], "operations": len(operations), "server_errors": tally["server_errors"],
              "seed": args.seed, "elapsed_s": round(time.perf_counter() - started, 1), "proxy_alive_at_end": alive,
              "machine": {"cpus": os.cpu_count(), "loadavg_1m_at_end": round(os.getloadavg()[0], 2)},
              "examples": tally["examples"], "by_operation": tally["by_operation"],
              "proxy_log_tail": log_tail if tally["server_errors"] else ""}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k not in ("by_operation", "proxy_log_tail")}, indent=2))


if __name__ == "__main__":
    main()
