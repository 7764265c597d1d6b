"""Build the wheel from a clean copy of the checkout and install it into fresh venvs.

What a user gets from ``pip install semcache[extras]``: the venvs live outside the
checkout, commands run with a working directory outside it and no ``PYTHONPATH``, and
pip's cache is the user's (warm after the first run). Used by the packaging tests and
by ``scripts/measure_install.py``.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
# What the wheel is built from (setup.py maps adapters/, gpu/ and alembic/ into semcache.*).
SOURCES = ("pyproject.toml", "setup.py", "README.md", "LICENSE", "semcache", "adapters", "gpu",
           "alembic")
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")


def build_wheel(workdir: Path) -> Path:
    """Copy the sources to ``workdir/src`` (no stale build/ folder) and build the wheel there."""
    src, out = workdir / "src", workdir / "dist"
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=IGNORE)
        else:
            src.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, src / name)
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)],
        cwd=workdir, timeout=300)
    (wheel,) = out.glob("semcache-*.whl")
    return wheel


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a user's shell: no PYTHONPATH, no virtualenv of ours."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", **extra)
    return env


def run(argv: list[str], *, cwd: Path, timeout: float = 120, env: dict[str, str] | None = None,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, cwd=cwd, env=env or clean_env(), timeout=timeout,
                            capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{argv} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


@dataclass(frozen=True)
class Venv:
    """A fresh venv holding ``semcache[extras]`` from the wheel."""

    path: Path
    extras: str
    install_s: float
    install_cpu_s: float = 0.0  # CPU time of pip and its children: what load cannot inflate

    @property
    def python(self) -> str:
        return str(self.path / "bin" / "python")

    @property
    def semcache(self) -> str:
        return str(self.path / "bin" / "semcache")

    def size_bytes(self) -> int:
        """Bytes installed in site-packages."""
        (site,) = (self.path / "lib").glob("python3*/site-packages")
        return sum(f.stat().st_size for f in site.rglob("*") if f.is_file() and not f.is_symlink())


def make_venv(wheel: Path, extras: str, where: Path, *, compile_bytecode: bool = True) -> Venv:
    """Create a venv at ``where`` with pip, then time ``pip install wheel[extras]`` into it.

    ``compile_bytecode=False`` skips writing .pyc files at install time (tests save a few
    seconds; the import compiles what it needs).
    """
    run([sys.executable, "-m", "venv", str(where)], cwd=where.parent, timeout=120)
    spec = f"{wheel}[{extras}]" if extras else str(wheel)
    flags = [] if compile_bytecode else ["--no-compile"]
    cpu_before = _children_cpu()
    started = time.perf_counter()
    run([str(where / "bin" / "python"), "-m", "pip", "install", "-q", *flags, spec],
        cwd=where.parent, timeout=600)
    return Venv(where, extras, time.perf_counter() - started, _children_cpu() - cpu_before)


def _children_cpu() -> float:
    # Meaningful when one install runs at a time (the measuring script); concurrent
    # installs in threads share the process's children counters.
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
