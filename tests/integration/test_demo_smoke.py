"""``examples/demo.py --smoke`` end to end: real engine, real proxy, real ``openai`` client.

The demo runs as a subprocess, as ``make demo`` runs it. It must exit 0, print its table, serve no
labelled hard negative from the cache, and leave neither server (nor its process group) behind,
also when interrupted with Ctrl-C during start-up.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "examples" / "demo.py"
SMOKE_TIMEOUT_S = 360


def _alive(pid: int) -> bool:
    try:
        os.killpg(pid, 0)  # each server leads its own process group
    except ProcessLookupError:
        return False
    return True


def _pids(out: Path) -> dict[str, int]:
    return {name: int(pid) for name, pid in json.loads((out / "pids.json").read_text()).items()}


def test_smoke_demo_exits_0_with_zero_false_hits_and_no_leftovers(tmp_path: Path) -> None:
    out = tmp_path / "demo_out"
    proc = subprocess.run([sys.executable, str(DEMO), "--smoke", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=SMOKE_TIMEOUT_S)
    assert proc.returncode == 0, f"demo failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    for row in ("requests", "hit rate", "false hits on hard negatives", "median latency, hits",
                "TTFT with chunk reuse", "upstream tokens saved"):
        assert row in proc.stdout, f"table row {row!r} missing from the output"
    assert "/admin" in proc.stdout and "log in with the token" in proc.stdout

    summary = json.loads((out / "summary.json").read_text())
    assert summary["hard_negatives"] >= 2
    assert summary["false_hits"] == 0
    assert summary["exact_hits"] >= 1
    assert summary["requests"] == len(summary["results"])
    pair = summary["ttft_ms"]["pairs"][0]
    assert pair["first"]["encoded_tokens"] > 0 and pair["reordered"]["reused_tokens"] > 0
    assert (out / "demo.png").stat().st_size > 0

    pids = _pids(out)
    assert set(pids) == {"engine", "proxy"}
    assert not [name for name, pid in pids.items() if _alive(pid)], "a server survived the demo"


def test_ctrl_c_during_start_up_stops_both_servers(tmp_path: Path) -> None:
    out = tmp_path / "demo_out"
    proc = subprocess.Popen([sys.executable, str(DEMO), "--smoke", "--out", str(out)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if (out / "pids.json").exists() and len(_pids(out)) == 2:
                break
            time.sleep(0.2)
        assert proc.poll() is None, "the demo ended before both servers were started"
        pids = _pids(out)
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:  # the demo hung: stop it and its servers, then fail below
            proc.kill()
            proc.wait()
            for pid in _pids(out).values() if (out / "pids.json").exists() else ():
                if _alive(pid):
                    os.killpg(pid, signal.SIGKILL)
    assert proc.returncode == 130, output
    assert "servers stopped" in output
    assert not [name for name, pid in pids.items() if _alive(pid)], "a server survived Ctrl-C"
