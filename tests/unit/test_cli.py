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
