"""The config file (``semcache serve --config``, ``semcache config check``), precedence
flags > environment > file, ``--version``, and SEMCACHE_HOST/PORT honoured by ``serve``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer
from semcache.adapters.proxy import cli
from semcache.adapters.proxy.config import ConfigError, load_settings, read_config
from typer.testing import CliRunner

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[4]
EXAMPLE = REPO / "docs" / "examples" / "semcache.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "semcache.yaml"
    path.write_text(text)
    return path


def test_documented_example_is_the_file_and_is_valid() -> None:
    doc = (REPO / "docs" / "proxy.md").read_text()
    block = re.search(r"```yaml\n(.*?)```", doc[doc.index("## One config file"):], re.S)
    assert block is not None and block.group(1) == EXAMPLE.read_text()
    s = load_settings(EXAMPLE, {}, env={})
    assert s.upstream_url == "http://127.0.0.1:8000" and s.log_format == "json" and s.load_max_ttl_factor == 2.0
    assert s.policies is not None and Path(s.policies).is_file()


def test_sections_cover_every_part(tmp_path: Path) -> None:
    path = write(tmp_path, "upstream: {url: 'http://u:1/v1', retries: 4}\ndatabase: {url: 'sqlite:///x.db'}\n"
                           "redis: {url: 'redis://r:6379/0', required: true}\nkeys: {require: true}\n"
                           "load: {adaptive: false}\nlogging: {format: json, level: warning}\n")
    s = load_settings(path, {}, env={})
    assert (s.upstream_url, s.retries, s.db_url, s.redis_url, s.redis_required, s.require_keys, s.load_adaptive,
            s.log_format, s.log_level) == ("http://u:1", 4, "sqlite:///x.db", "redis://r:6379/0", True, True,
                                            False, "json", "warning")


def test_precedence_flags_over_env_over_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "upstream: {url: 'http://file'}\nserver: {port: 1111, host: 127.0.0.1}\n")
    monkeypatch.setenv("SEMCACHE_PORT", "2222")
    assert load_settings(path, {}).port == 2222
    assert load_settings(path, {"port": 3333}).port == 3333
    monkeypatch.delenv("SEMCACHE_PORT")
    assert load_settings(path, {}).port == 1111


@pytest.mark.parametrize(("text", "message"), [
    ("upstream: {urll: 'http://u'}\n", "unknown key 'upstream.urll'"),
    ("upstream: {url: 'ftp://u'}\n", "upstream_url"),
    ("server: {port: 99999}\nupstream: {url: 'http://u'}\n", "port"),
    ("- a\n- b\n", "mapping"),
    ("upstream: {url: 'http://u'\n", "not valid YAML"),
    ("upstream: {url: 'http://u'}\nserver: {host: 0.0.0.0}\n", "require-keys"),
])
def test_clear_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings(write(tmp_path, text), {}, env={})


def test_config_check_command(tmp_path: Path) -> None:
    app = typer.Typer()
    app.add_typer(cli.config_app, name="config")
    ok = CliRunner().invoke(app, ["config", "check", str(EXAMPLE)])
    assert ok.exit_code == 0 and "ok" in ok.output
    bad = CliRunner().invoke(app, ["config", "check", str(write(tmp_path, "upstream: {nope: 1}\n"))])
    assert bad.exit_code == 2 and "unknown key 'upstream.nope'" in bad.output


def serve_app() -> typer.Typer:
    app = typer.Typer()
    app.command()(cli.serve)
    return app


def test_version_flag() -> None:
    result = CliRunner().invoke(serve_app(), ["--version"])
    assert result.exit_code == 0 and result.output.startswith("semcache ")


def test_serve_honours_env_host_and_port(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def fake_run(app: Any, **kw: Any) -> None:
        seen.update(kw)

    monkeypatch.setattr("uvicorn.run", fake_run)
    monkeypatch.setattr("semcache.adapters.proxy.create_app", lambda settings: object())
    monkeypatch.setattr("semcache.adapters.proxy.logs.configure_logging", lambda fmt, level: {})  # keep root's handlers
    monkeypatch.setenv("SEMCACHE_HOST", "127.0.0.2")
    monkeypatch.setenv("SEMCACHE_PORT", "9191")
    result = CliRunner().invoke(serve_app(), ["--upstream", "http://u"])
    assert result.exit_code == 0, result.output
    assert (seen["host"], seen["port"]) == ("127.0.0.2", 9191)


def test_inline_policies_become_a_file(tmp_path: Path) -> None:
    out = read_config(write(tmp_path, "policies:\n  categories:\n    factual: {threshold: 0.91}\n"))
    assert "factual" in Path(out["policies"]).read_text()


def test_semcache_version() -> None:
    from semcache.cli import app

    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("semcache ")
