"""``semcache eval --verifier learned`` (and ``SEMCACHE_VERIFIER=learned``) judge through the learned
verifier, with its candidate floor and n-gram candidates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from semcache.cli import app

pytestmark = pytest.mark.integration
runner = CliRunner()
ROWS = [
    {"cached": "How can I change my delivery address?", "query": "how can i chnage my delivry adress",
     "should_hit": True, "kind": "typo"},
    {"cached": "How many calories are in 2 boiled eggs?", "query": "How many calories are in 5 boiled eggs?",
     "should_hit": False, "kind": "number"},
]


def run(tmp_path: Path, *extra: str, env: dict[str, str] | None = None) -> dict:
    pairs, out = tmp_path / "pairs.jsonl", tmp_path / "report.json"
    pairs.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    result = runner.invoke(app, ["eval", str(pairs), "--json", str(out), *extra], env=env)
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text())


@pytest.mark.parametrize("how", ["flag", "env"])
def test_eval_with_the_learned_verifier(tmp_path: Path, how: str) -> None:
    report = (run(tmp_path, "--verifier", "learned") if how == "flag"
              else run(tmp_path, env={"SEMCACHE_VERIFIER": "learned"}))
    assert report["per_kind"]["typo"]["recall"] == 1.0  # cosine 0.43: the rule verifier misses it
    assert report["per_kind"]["number"]["false_hit_rate"] == 0.0


def test_eval_with_the_rule_verifier_misses_the_typo(tmp_path: Path) -> None:
    assert run(tmp_path, "--verifier", "hardneg")["per_kind"]["typo"]["recall"] == 0.0


def test_unknown_verifier_is_an_error(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps(ROWS[0]) + "\n")
    result = runner.invoke(app, ["eval", str(pairs), "--verifier", "oracle"])
    assert result.exit_code != 0 and "oracle" in result.output
