"""Fixtures of the wheel-install tests: the wheel (built once), a venv per extra set, all
outside the checkout, and servers started from those venvs."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.integration.packaging.venvs import ROOT, Venv, build_wheel, clean_env, make_venv

# One venv per way users install it; installed side by side (pip's cache is shared).
EXTRAS = ("proxy", "proxy,postgres", "langchain", "admin")


@pytest.fixture(scope="session")
def outside(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("wheel-install")
    assert ROOT not in where.parents, "the venvs must live outside the checkout"
    return where


@pytest.fixture(scope="session")
def wheel(outside: Path) -> Path:
    return build_wheel(outside / "build")


@pytest.fixture(scope="session")
def venvs(outside: Path, wheel: Path) -> dict[str, Venv]:
    with ThreadPoolExecutor(max_workers=len(EXTRAS)) as pool:
        made = pool.map(lambda e: make_venv(wheel, e, outside / f"venv-{e.replace(',', '-')}",
                                            compile_bytecode=False), EXTRAS)
        return {venv.extras: venv for venv in made}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[str], timeout: float = 90.0) -> None:
    """Poll ``url`` until it answers (any status), or fail with the server's output."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(f"server exited {proc.returncode}:\n{out}")
        try:
            httpx.get(url, timeout=2.0)
            return
        except httpx.TransportError:
            time.sleep(0.3)
    raise AssertionError(f"no answer from {url} within {timeout} s")


def start(argv: list[str], cwd: Path, probe: str) -> Iterator[subprocess.Popen[str]]:
    """Start a server, yield it once ``probe`` answers, then stop it by its PID."""
    proc = subprocess.Popen(argv, cwd=cwd, env=clean_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        wait_http(probe, proc)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def upstream_url() -> Iterator[str]:
    """The fake OpenAI upstream of tests/fixtures, served from the test environment."""
    port = free_port()
    argv = [sys.executable, "-m", "tests.fixtures.upstream", "--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    for _ in start(argv, ROOT, f"{url}/v1/models"):
        yield url
