"""The wheel as users install it: ``pip install semcache[extras]`` into fresh venvs outside
the checkout, then the commands a user runs, from a folder with no source tree.

The venvs are built once per session (tests/integration/packaging/conftest.py); each test
runs its commands with the venv's own interpreter and ``semcache`` script, never ours.
"""

from __future__ import annotations

import sys
import textwrap
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.integration.packaging.conftest import free_port, start
from tests.integration.packaging.venvs import Venv, run

pytestmark = pytest.mark.integration

ADMIN_TOKEN = "a-long-admin-token-for-tests"


def test_the_wheel_carries_its_data_and_passes_twine(wheel: Path, outside: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("semcache/embed/model/minilm-l6-int8.onnx", "semcache/embed/model/tokenizer.json",
                   "semcache/embed/model/embedder.json", "semcache/lookup/default_policies.yaml",
                   "semcache/migrations/env.py", "semcache/migrations/script.py.mako",
                   "semcache/adapters/admin/templates/base.html", "semcache-0.1.0.dist-info/licenses/LICENSE"):
        assert needed in names, needed
    assert any(n.startswith("semcache/migrations/versions/0001") for n in names)
    metadata = zipfile.ZipFile(wheel).read("semcache-0.1.0.dist-info/METADATA").decode()
    assert "License-Expression: Apache-2.0" in metadata and "torch" not in metadata.split("Provides-Extra")[0]
    checked = run([sys.executable, "-m", "twine", "check", "--strict", str(wheel)], cwd=outside, check=False)
    assert checked.returncode == 0 and "PASSED" in checked.stdout, checked.stdout + checked.stderr


def test_the_proxy_install_has_no_torch_and_embeds_offline(venvs: dict[str, Venv], outside: Path) -> None:
    proxy = venvs["proxy"]
    result = run([proxy.python, "-c", "import torch"], cwd=outside, check=False)
    assert result.returncode != 0 and "No module named 'torch'" in result.stderr
    script = ("from semcache.embed.minilm import MiniLMEmbedder; e = MiniLMEmbedder(); "
              "v = e.embed(['a question', 'another one']); print(e.backend, e.precision, v.shape)")
    assert run([proxy.python, "-c", script], cwd=outside).stdout.split() == ["onnx", "int8", "(2,", "384)"]
    engine = run([proxy.python, "-c", "import semcache.gpu"], cwd=outside, check=False)
    assert engine.returncode != 0 and "semcache[gpu]" in engine.stderr


@pytest.mark.parametrize(("extras", "present", "absent"), [
    ("proxy", {"serve", "db"}, {"admin", "engine"}),
    ("admin", {"serve", "admin", "db"}, {"engine"}),
    ("langchain", {"db", "eval"}, {"serve", "admin", "engine"}),
])
def test_the_cli_mounts_what_is_installed(venvs: dict[str, Venv], outside: Path, extras: str,
                                          present: set[str], absent: set[str]) -> None:
    shown = run([venvs[extras].semcache, "--help"], cwd=outside).stdout
    commands = {line.split()[1] for line in shown.splitlines() if line.startswith("│ ") and len(line.split()) > 2}
    assert present <= commands and not absent & commands, shown


@pytest.mark.parametrize("extras", ["proxy", "proxy,postgres", "langchain", "admin"])
def test_db_upgrade_on_sqlite(venvs: dict[str, Venv], outside: Path, tmp_path: Path, extras: str) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    run([venvs[extras].semcache, "db", "upgrade", "--db", url], cwd=tmp_path)
    assert run([venvs[extras].semcache, "db", "current", "--db", url], cwd=tmp_path).stdout.strip() not in ("", "base")


def test_db_upgrade_on_postgres(venvs: dict[str, Venv], tmp_path: Path, fresh_pg_url: str) -> None:
    semcache = venvs["proxy,postgres"].semcache
    run([semcache, "db", "upgrade", "--db", fresh_pg_url], cwd=tmp_path)
    assert run([semcache, "db", "current", "--db", fresh_pg_url], cwd=tmp_path).stdout.strip() not in ("", "base")
    without = run([venvs["proxy"].semcache, "db", "upgrade", "--db", fresh_pg_url], cwd=tmp_path, check=False)
    assert without.returncode == 2 and "semcache[postgres]" in without.stderr, without.stderr


def _miss_then_hit(venv: Venv, db_url: str, upstream_url: str, cwd: Path) -> None:
    port = free_port()
    argv = [venv.semcache, "serve", "--upstream", upstream_url, "--port", str(port), "--db", db_url,
            "--log-level", "warning"]
    base = f"http://127.0.0.1:{port}"
    for _ in start(argv, cwd, f"{base}/v1/models"):
        body = {"model": "fake-model", "temperature": 0,
                "messages": [{"role": "user", "content": "What is the capital of France?"}]}
        seen = []
        for _ in range(2):
            response = httpx.post(f"{base}/v1/chat/completions", json=body, timeout=60)
            assert response.status_code == 200, response.text
            seen.append(response.headers.get("x-semcache"))
        assert seen == ["miss", "hit"]


def test_serve_gives_a_miss_then_a_hit(venvs: dict[str, Venv], tmp_path: Path, upstream_url: str) -> None:
    _miss_then_hit(venvs["proxy"], f"sqlite:///{tmp_path / 'proxy.db'}", upstream_url, tmp_path)


def test_serve_on_postgres(venvs: dict[str, Venv], tmp_path: Path, upstream_url: str, fresh_pg_url: str) -> None:
    _miss_then_hit(venvs["proxy,postgres"], fresh_pg_url, upstream_url, tmp_path)


def test_the_langchain_cache_works(venvs: dict[str, Venv], tmp_path: Path) -> None:
    script = textwrap.dedent("""
        from langchain_core.outputs import Generation
        from semcache.adapters.langchain import SemcacheCache

        llm = "model_name='gpt-4o-mini' temperature=0.0---[('stop', None)]"
        cache = SemcacheCache("sqlite:///lc.db")
        assert cache.lookup("What is the capital of France?", llm) is None
        cache.update("What is the capital of France?", llm, [Generation(text="Paris.")])
        hit = cache.lookup("What is the capital of France?", llm)
        print(hit[0].text)
    """)
    assert run([venvs["langchain"].python, "-c", script], cwd=tmp_path).stdout.strip() == "Paris."
    missing = run([venvs["proxy"].python, "-c", "import semcache.adapters.langchain"], cwd=tmp_path, check=False)
    assert missing.returncode != 0 and "semcache[langchain]" in missing.stderr


def test_the_admin_page_loads(venvs: dict[str, Venv], tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'admin.db'}"
    semcache = venvs["admin"].semcache
    run([semcache, "db", "upgrade", "--db", db_url], cwd=tmp_path)
    port = free_port()
    argv = [semcache, "admin", "serve", "--db", db_url, "--token", ADMIN_TOKEN, "--port", str(port)]
    base = f"http://127.0.0.1:{port}"
    for _ in start(argv, tmp_path, f"{base}/admin/login"):
        login = httpx.get(f"{base}/admin/login", timeout=30)
        assert login.status_code == 200 and "<form" in login.text
        page = httpx.get(f"{base}/admin", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30,
                         follow_redirects=True)
        assert page.status_code == 200 and "<html" in page.text.lower()
    missing = run([venvs["proxy"].python, "-c", "import semcache.adapters.admin"], cwd=tmp_path, check=False)
    assert missing.returncode != 0 and "semcache[admin]" in missing.stderr
