"""Time ``pip install semcache[proxy]`` from the wheel with a warm pip cache, and its size.

Builds the wheel from the checkout, installs it once to warm pip's cache (hnswlib's built
wheel lands there), then ``--runs`` more times into fresh venvs outside the checkout, as a
user would (bytecode compiled). Writes the timings and the installed size as JSON.

    python scripts/measure_install.py --out benchmarks/results/install_proxy.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.packaging.venvs import build_wheel, make_venv, run  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extras", default="proxy")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    load_start = round(os.getloadavg()[0], 1)  # the machine is shared: say how busy it was
    with tempfile.TemporaryDirectory(prefix="semcache-install-") as tmp:
        where = Path(tmp)
        wheel = build_wheel(where / "build")
        make_venv(wheel, args.extras, where / "warm-up")  # fills pip's cache; not counted
        timings, cpu, size, torch_absent = [], [], 0, True
        for i in range(args.runs):
            venv = make_venv(wheel, args.extras, where / f"venv-{i}")
            timings.append(venv.install_s)
            cpu.append(venv.install_cpu_s)
            size = venv.size_bytes()
            probe = run([venv.python, "-c", "import torch"], cwd=where, check=False)
            torch_absent = torch_absent and probe.returncode != 0
        report = {
            "command": f"pip install '{wheel.name}[{args.extras}]' (fresh venv, warm pip cache)",
            "extras": args.extras, "runs": args.runs,
            "install_s": [round(t, 1) for t in timings],
            "install_s_median": round(statistics.median(timings), 1),
            "install_cpu_s": [round(t, 1) for t in cpu],
            "target_s": 60, "wheel_mb": round(wheel.stat().st_size / 1e6, 1),
            "installed_mb": round(size / 1e6, 1), "torch_installed": not torch_absent,
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
            "load_average_1min": {"start": load_start, "end": round(os.getloadavg()[0], 1)},
            "date": time.strftime("%Y-%m-%d", time.gmtime()),
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
