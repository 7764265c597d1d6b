"""``make demo``: the chunk-reuse engine, the caching proxy and its admin, end to end, on loopback.

Starts ``semcache engine serve`` (SmolLM2 on the CPU) and ``semcache serve`` in front of it, with
SQLite and an admin token, each in its own process group on a free 127.0.0.1 port; waits until
both are ready; runs ``examples/demo_workload.py``; then stops both (also on Ctrl-C or an error).

    python examples/demo.py [--smoke] [--upstream URL] [--gate FILE] [--out demo_out] [--keep-running]

``--upstream URL`` skips the engine and puts the proxy in front of an external OpenAI-compatible
server (for example vLLM). Logs, ``pids.json``, ``summary.json`` and ``demo.png`` go to ``--out``.
Exits 0 when the workload ran, no labelled hard negative was served from the cache and the admin
API accepted the generated token.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from demo_workload import run_workload  # noqa: E402

ENGINE_READY_S = 240.0
PROXY_READY_S = 180.0
STOP_TIMEOUT_S = 15.0


class DemoError(RuntimeError):
    """A server did not start or become ready."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Servers:
    """The demo's child processes, each in its own process group, stopped by process group."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        """Start ``python -m semcache.cli ARGS`` in OUT_DIR, with its output in OUT_DIR/NAME.log.

        OUT_DIR as working directory keeps a stray ``./engine-gate.json`` from being picked up.
        """
        log = (self.out_dir / f"{name}.log").open("wb")
        proc = subprocess.Popen([sys.executable, "-m", "semcache.cli", *args], stdout=log,
                                stderr=subprocess.STDOUT, env=env, cwd=self.out_dir, start_new_session=True)
        log.close()
        self.procs[name] = proc
        pids = self.out_dir / "pids.json"  # written whole, then renamed: readers never see half a file
        pids.with_suffix(".tmp").write_text(json.dumps({n: p.pid for n, p in self.procs.items()}))
        pids.with_suffix(".tmp").replace(pids)
        return proc

    def wait_ready(self, name: str, url: str, timeout_s: float) -> None:
        """Poll URL until it answers 200; fail early when the process exits."""
        proc = self.procs[name]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise DemoError(f"{name} exited with status {proc.returncode} before it was ready:\n"
                                + self.log_tail(name))
            try:
                if httpx.get(url, timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise DemoError(f"{name} was not ready at {url} after {timeout_s:.0f}s:\n" + self.log_tail(name))

    def log_tail(self, name: str, lines: int = 20) -> str:
        text = (self.out_dir / f"{name}.log").read_text(errors="replace").splitlines()
        return "\n".join(f"  {name}| {line}" for line in text[-lines:])

    def stop_all(self) -> None:
        """SIGTERM each process group (proxy first), SIGKILL whatever lingers."""
        for name in reversed(list(self.procs)):
            proc = self.procs[name]
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                    proc.wait(timeout=STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=STOP_TIMEOUT_S)
                except ProcessLookupError:
                    pass
            try:  # children the server may have left in its group
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _env(admin_token: str) -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               SEMCACHE_ADMIN_TOKEN=admin_token)
    env.pop("SEMCACHE_UPSTREAM_URL", None)
    return env


def admin_answers(proxy_url: str, admin_token: str) -> bool:
    """Whether the admin API on the proxy accepts the demo's token (GET /admin/api/stats)."""
    try:
        response = httpx.get(f"{proxy_url}/admin/api/stats", timeout=30,
                             headers={"Authorization": f"Bearer {admin_token}"})
    except httpx.HTTPError as exc:
        print(f"admin API unreachable: {exc}")
        return False
    if response.status_code != 200:
        print(f"admin API answered {response.status_code}: {response.text[:200]}")
    return response.status_code == 200


def print_next_steps(proxy_url: str, admin_token: str, upstream: str) -> None:
    """How to log in to the admin and point an application at the proxy."""
    print(f"\nadmin      {proxy_url}/admin  (log in with the token {admin_token})")
    print(f"admin API  curl -H 'Authorization: Bearer {admin_token}' {proxy_url}/admin/api/stats")
    print(f"your app   OpenAI(base_url=\"{proxy_url}/v1\", api_key=\"any\"), or OPENAI_BASE_URL={proxy_url}/v1")
    print(f"your own   semcache serve --upstream {upstream} --db sqlite:///semcache.db --port 8080")
    print("           (the demo's servers stop now; --keep-running keeps them up to browse the admin)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="a much smaller workload (CI)")
    parser.add_argument("--upstream", help="external OpenAI-compatible server; skips starting the engine")
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="logs, pids, summary, chart")
    parser.add_argument("--model", default="smollm2", help="model the engine serves")
    parser.add_argument("--gate", type=Path, help="quality gate file for the engine (default: none)")
    parser.add_argument("--keep-running", action="store_true",
                        help="after the workload, keep the servers up until Ctrl-C (to browse the admin)")
    args = parser.parse_args()
    if args.upstream and not args.upstream.startswith(("http://", "https://")):
        parser.error(f"--upstream must start with http:// or https://, got {args.upstream!r}")
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    for stale in ("demo.db", "demo.db-wal", "demo.db-shm", "summary.json", "pids.json"):
        (args.out / stale).unlink(missing_ok=True)

    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    servers = Servers(args.out)
    admin_token = "demo-" + secrets.token_urlsafe(18)
    env = _env(admin_token)
    status, done = 1, False
    try:
        upstream = args.upstream.rstrip("/") if args.upstream else None
        t0 = time.monotonic()
        if upstream is None:
            engine_port = free_port()
            upstream = f"http://127.0.0.1:{engine_port}"
            print(f"starting the engine ({args.model} on cpu) on {upstream} ...", flush=True)
            servers.start("engine", ["engine", "serve", "--model", args.model, "--device", "cpu",
                                     "--port", str(engine_port), "--log-level", "warning",
                                     *(["--gate", str(args.gate.resolve())] if args.gate else [])], env)
        proxy_port = free_port()
        proxy_url = f"http://127.0.0.1:{proxy_port}"
        print(f"starting the proxy on {proxy_url} (SQLite {args.out / 'demo.db'}) ...", flush=True)
        servers.start("proxy", ["serve", "--upstream", upstream, "--port", str(proxy_port),
                                "--db", f"sqlite:///{args.out / 'demo.db'}", "--log-level", "warning"], env)
        if "engine" in servers.procs:
            servers.wait_ready("engine", f"{upstream}/v1/models", ENGINE_READY_S)
        servers.wait_ready("proxy", f"{proxy_url}/readyz", PROXY_READY_S)
        print(f"ready in {time.monotonic() - t0:.0f}s", flush=True)
        summary = run_workload(proxy_url, args.out, smoke=args.smoke, chunk_extension=args.upstream is None)
        print_next_steps(proxy_url, admin_token, upstream)
        admin_ok = admin_answers(proxy_url, admin_token)
        ok = summary["false_hits"] == 0 and summary["exact_hits"] > 0 and admin_ok
        if not ok:
            print(f"FAILED: {summary['false_hits']} false hit(s), {summary['exact_hits']} exact hit(s), "
                  f"admin API {'ok' if admin_ok else 'not answering'}")
        status = 0 if ok else 1
        done = True
        if args.keep_running:
            print("servers keep running; Ctrl-C to stop", flush=True)
            signal.pause()
    except KeyboardInterrupt:
        print("\ninterrupted; stopping the servers", flush=True)
        status = status if done else 130
    except DemoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        status = 1
    finally:
        servers.stop_all()
        print("servers stopped", flush=True)
    raise SystemExit(status)


if __name__ == "__main__":
    main()
