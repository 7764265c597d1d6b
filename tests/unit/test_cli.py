"""The ``semcache`` command mounts the sub-commands that packages register; the core names none."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from semcache import cli

pytestmark = pytest.mark.unit


def test_adapters_register_serve_and_admin_through_entry_points() -> None:
    target = typer.Typer()
    target.command("noop")(lambda: None)
    mounted = cli.mount_registered(target)
    assert {"serve", "admin"} <= set(mounted)
    result = CliRunner().invoke(target, ["serve", "--help"])
    assert result.exit_code == 0 and "--upstream" in result.output


def test_a_registered_command_whose_extra_is_missing_is_left_out(monkeypatch) -> None:
    class Entry:
        name = "broken"

        def load(self):
            raise ModuleNotFoundError("No module named 'fastapi'", name="fastapi")

    monkeypatch.setattr("importlib.metadata.entry_points", lambda group: [Entry()])
    assert cli.mount_registered(typer.Typer()) == []


def test_a_command_whose_package_raises_missing_extra_is_left_out(monkeypatch) -> None:
    from semcache.exceptions import MissingExtraError

    class Entry:
        name, extras = "admin", []

        def load(self):
            raise MissingExtraError("jinja2", "admin")  # an ImportError, not ModuleNotFoundError

    monkeypatch.setattr("importlib.metadata.entry_points", lambda group: [Entry()])
    assert cli.mount_registered(typer.Typer()) == []


def test_a_command_is_mounted_only_when_its_extra_is_installed(monkeypatch) -> None:
    requirements = ['fastapi>=0.110; extra == "proxy"', 'semcache[proxy]; extra == "admin"',
                    'jinja2>=3.1; extra == "admin"', 'no-such-package-xyz; extra == "gpu"']
    monkeypatch.setattr("importlib.metadata.requires", lambda dist: requirements)
    assert cli.extra_installed("proxy") and cli.extra_installed("admin")
    assert not cli.extra_installed("gpu")
    requirements[0] = 'no-such-package-xyz; extra == "proxy"'
    assert not cli.extra_installed("admin")  # through semcache[proxy]

    class Entry:
        name, extras, dist = "engine", ["gpu"], None

        def load(self):
            return typer.Typer()

    monkeypatch.setattr("importlib.metadata.entry_points", lambda group: [Entry()])
    assert cli.mount_registered(typer.Typer()) == []
