"""Run every shell command shown in README.md, docs/proxy.md and docs/deploy.md.

    python scripts/check_docs.py [--list]

Each line of a ```bash block is one command (``\\`` continues it). A command runs as written,
unless ``EQUIVALENTS`` gives it a marked equivalent; the marker says why:

  FAKE    it needs an upstream, a database or Redis that is not here: the same command runs with
          the fake upstream (tests/fixtures/upstream.py), a SQLite file and no Redis, on a free
          port; ``serve`` runs until its /healthz answers and one chat request comes back, then stops.
  WHEEL   it installs from the package registry: the wheel is built from this tree and installed
          (``pip install --dry-run --no-deps``), and the extra's requirements must be installed here.
  SHORT   a long run (the test suite's own files, benchmarks, the vLLM build): collected or started
          with a small size, so the command line itself is checked.
  DRY     a make target that sets up a venv: ``make -n`` prints what it would run.

Commands run in the repository, except those naming ``sqlite:///semcache.db``, which run in a
temporary folder so the repository gets no database file. ``make test`` is left out: it is what
runs this script. A failing command makes the script exit 1.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCS = ("README.md", "docs/proxy.md", "docs/deploy.md")
BIN = Path(sys.executable).parent
SKIP = {"make test": "this script runs inside make test"}
# command as written -> (marker, equivalent; {fake}, {port}, {tmp}, {py} are filled in)
EQUIVALENTS: dict[str, tuple[str, str]] = {
    "make demo": ("DRY", "make -n demo"),
    'pip install "semcache[proxy]"': ("WHEEL", "wheel"),
    "semcache serve --upstream https://api.openai.com --port 8080 --db sqlite:///semcache.db":
        ("FAKE", "semcache serve --upstream {fake} --port {port} --db sqlite:///{tmp}/semcache.db"),
    "semcache serve --upstream http://127.0.0.1:8000/v1 --port 8080 --db sqlite:///semcache.db":
        ("FAKE", "semcache serve --upstream {fake}/v1 --port {port} --db sqlite:///{tmp}/semcache.db"),
    "python -m semcache.adapters.proxy.cli --upstream http://127.0.0.1:8000":
        ("FAKE", "{py} -m semcache.adapters.proxy.cli --upstream {fake} --port {port} --db sqlite:///{tmp}/m.db"),
    "semcache serve --config docs/examples/semcache.yaml --port 8081":
        ("FAKE", "semcache serve --config docs/examples/semcache.yaml --upstream {fake} --port {port} "
                 "--db sqlite:///{tmp}/c.db"),
    "export SEMCACHE_DB_URL=postgresql://semcache:...@db:5432/semcache":
        ("FAKE", "export SEMCACHE_DB_URL=sqlite:///{tmp}/deploy.db"),
    "export SEMCACHE_REDIS_URL=redis://redis:6379/0": ("FAKE", "true"),
    "export SEMCACHE_ADMIN_TOKEN=...": ("FAKE", "export SEMCACHE_ADMIN_TOKEN=an-admin-token-for-docs"),
    "semcache serve --upstream http://vllm:8000/v1 --host 0.0.0.0 --port 8080 --require-keys":
        ("FAKE", "semcache serve --upstream {fake}/v1 --host 0.0.0.0 --port {port} --require-keys"),
    "pytest tests/unit/adapters/proxy": ("SHORT", "pytest --collect-only -q tests/unit/adapters/proxy"),
    "pytest tests/integration/adapters/proxy/test_fake_upstream.py tests/integration/adapters/proxy/test_process.py "
    "tests/integration/adapters/proxy/test_fuzz.py tests/integration/adapters/proxy/test_hardening.py":
        ("SHORT", "pytest --collect-only -q tests/integration/adapters/proxy/test_fake_upstream.py "
                  "tests/integration/adapters/proxy/test_process.py tests/integration/adapters/proxy/test_fuzz.py "
                  "tests/integration/adapters/proxy/test_hardening.py"),
    "python benchmarks/fuzz_api.py --cases 20000": ("SHORT", "python benchmarks/fuzz_api.py --help"),
    "pytest tests/integration/adapters/proxy/test_vllm.py":
        ("SHORT", "pytest --collect-only -q tests/integration/adapters/proxy/test_vllm.py"),
    "python benchmarks/proxy.py --out benchmarks/results/proxy.json": ("SHORT", "python benchmarks/proxy.py --help"),
}


def commands(path: Path) -> list[str]:
    """The commands of a file's ```bash blocks: comments dropped, continuations joined."""
    out: list[str] = []
    for block in re.findall(r"```(?:bash|sh|shell)\n(.*?)```", path.read_text(), re.S):
        pending = ""
        for line in block.splitlines():
            line = re.sub(r"^#\s*or:\s*", "", line.strip())  # "# or: CMD" shows another way to run it
            line = pending + re.sub(r"\s+#.*$", "", line).strip()
            pending = ""
            if line.endswith("\\"):
                pending = line[:-1].rstrip() + " "
            elif line and not line.startswith("#"):
                out.append(" ".join(line.split()))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wheel(tmp: Path, env: dict[str, str]) -> None:
    """Build this tree's wheel, install it (dry run), and check the [proxy] extra's requirements."""
    from importlib.metadata import PackageNotFoundError, version
    from zipfile import ZipFile

    out = tmp / "wheel"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out),
                    str(REPO)], check=True, env=env, timeout=180, capture_output=True)
    built = next(out.glob("semcache-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--dry-run", "--no-deps", "--no-index", str(built)],
                   check=True, env=env, timeout=120, capture_output=True)
    with ZipFile(built) as zf:
        meta = zf.read(next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    needed = [re.split(r"[\[<>=!~; ]", line.split(":", 1)[1].strip())[0] for line in meta.splitlines()
              if line.startswith("Requires-Dist:") and ('extra == "proxy"' in line or "extra" not in line)]
    for name in needed:
        try:
            version(name)
        except PackageNotFoundError:
            raise RuntimeError(f"the wheel needs {name} for [proxy], which is not installed") from None


def serve(argv: list[str], env: dict[str, str], port: int) -> None:
    """Start the server, wait for /healthz, send one chat request (401 expected with keys), stop it."""
    import httpx

    proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"exited with {proc.returncode}: {proc.stdout.read().decode()[-2000:]}")  # type: ignore[union-attr]
            try:
                httpx.get(f"{url}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise RuntimeError("/healthz did not answer within 120 s") from None
                time.sleep(0.3)
        body = {"model": "fake-model", "messages": [{"role": "user", "content": "What is the capital of France?"}]}
        answer = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=60)
        expected = 401 if "--require-keys" in argv else 200
        if answer.status_code != expected:
            raise RuntimeError(f"chat request answered {answer.status_code}, expected {expected}")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def argv_of(cmd: str) -> list[str]:
    argv = shlex.split(cmd)
    head = {"semcache": [str(BIN / "semcache")], "pytest": [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"],
            "python": [sys.executable], "pip": [sys.executable, "-m", "pip"], "{py}": [sys.executable]}
    return head.get(argv[0], [argv[0]]) + argv[1:]


def run(cmd: str, env: dict[str, str], tmp: Path, fake: str) -> None:
    """Run one command (or its equivalent) with ``env``; raise on failure."""
    marker, actual = EQUIVALENTS.get(cmd, ("", cmd))
    port = free_port()
    actual = actual.format(fake=fake, port=port, tmp=tmp, py="{py}")
    if actual == "wheel":
        return wheel(tmp, env)
    if actual.startswith("export "):
        name, _, value = actual[len("export "):].partition("=")
        env[name] = value
        return None
    argv = argv_of(actual)
    if "serve" in argv[1:2] or "semcache.adapters.proxy.cli" in argv:
        return serve(argv, env, port)
    done = subprocess.run(argv, cwd=tmp if "sqlite:///semcache.db" in actual else REPO, env=env, timeout=170,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"exit {done.returncode}: {(done.stdout + done.stderr)[-2000:]}")
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="print the commands and their markers, run nothing")
    args = parser.parse_args()
    found = [(doc, cmd) for doc in DOCS for cmd in commands(REPO / doc)]
    if args.list:
        for doc, cmd in found:
            print(f"{doc}: [{SKIP.get(cmd) and 'SKIP' or EQUIVALENTS.get(cmd, ('AS IS',))[0]}] {cmd}")
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="semcache-docs-"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PATH": f"{BIN}:{os.environ['PATH']}"}
    env = {k: v for k, v in env.items() if not k.startswith("SEMCACHE_")}
    port = free_port()
    fake = subprocess.Popen([sys.executable, "-m", "tests.fixtures.upstream", "--port", str(port)], cwd=REPO,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    failures = 0
    try:
        doc_env: dict[str, dict[str, str]] = {}
        for doc, cmd in found:
            if cmd in SKIP:
                print(f"skip  {doc}: {cmd} ({SKIP[cmd]})", flush=True)
                continue
            started = time.monotonic()
            try:
                run(cmd, doc_env.setdefault(doc, dict(env)), tmp, f"http://127.0.0.1:{port}")
                print(f"ok    {doc}: {cmd} ({time.monotonic() - started:.1f} s)", flush=True)
            except Exception as exc:  # every command is reported, then the script fails
                failures += 1
                print(f"FAIL  {doc}: {cmd}\n      {exc}", flush=True)
    finally:
        os.killpg(fake.pid, signal.SIGTERM)
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
