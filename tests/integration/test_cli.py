"""The ``semcache`` CLI, run in-process through typer's runner on real data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from semcache.cli import app

pytestmark = pytest.mark.integration
runner = CliRunner()
DEV = Path(__file__).parents[2] / "benchmarks" / "data" / "hardneg_dev.jsonl"


def test_help_everywhere():
    for args in ([], ["db"], ["eval", "--help"], ["stats", "--help"], ["calibrate", "--help"]):
        result = runner.invoke(app, [*args, "--help"] if args in ([], ["db"]) else args)
        assert result.exit_code == 0, result.output
        assert "Usage" in result.output


def test_db_upgrade_current_and_stats(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert runner.invoke(app, ["db", "upgrade", "--db", url]).exit_code == 0
    current = runner.invoke(app, ["db", "current", "--db", url])
    assert current.exit_code == 0 and current.output.strip() not in ("", "base")
    stats = runner.invoke(app, ["stats", "--db", url, "--json"])
    assert stats.exit_code == 0, stats.output
    assert json.loads(stats.output)["entries"] == 0


def test_bad_db_url_is_a_clear_error(tmp_path):
    result = runner.invoke(app, ["stats", "--db", "postgresql://nobody@127.0.0.1:1/none"])
    assert result.exit_code != 0
    assert "error" in result.output.lower()


def subset(tmp_path: Path) -> Path:
    """A fixed subset of the dev set: every 7th row."""
    rows = DEV.read_text().splitlines()[::7]
    path = tmp_path / "subset.jsonl"
    path.write_text("\n".join(rows) + "\n")
    return path


def run_eval(tmp_path: Path, *extra: str) -> dict:
    out = tmp_path / f"report{len(extra)}.json"
    result = runner.invoke(app, ["eval", str(subset(tmp_path)), "--json", str(out), *extra])
    assert result.exit_code == 0, result.output
    assert "ALL" in result.output  # the one-screen table
    return json.loads(out.read_text())


def test_eval_regression_floor_and_a_pass_through_verifier_fails_it(tmp_path):
    report = run_eval(tmp_path)
    keys = {"n", "hits", "precision", "recall", "f1", "accuracy", "false_hit_rate"}
    assert keys <= set(report)
    for group in ("per_category", "per_kind"):
        assert report[group] and all(keys <= set(m) for m in report[group].values())
    assert report["n"] == len(subset(tmp_path).read_text().splitlines())
    assert report["precision"] >= 0.90, report
    assert report["recall"] >= 0.40, report
    # The floor must be able to fail: without the verifier, hard negatives get through.
    baseline = run_eval(tmp_path, "--no-verifier")
    assert baseline["precision"] < 0.90 or baseline["recall"] < 0.40, baseline


def test_eval_bad_file_exits_non_zero(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"cached": "a"}\n')
    result = runner.invoke(app, ["eval", str(bad)])
    assert result.exit_code != 0
    assert "query" in result.output


def test_calibrate_writes_a_loadable_policy_file(tmp_path):
    from semcache.lookup.policies import PolicySet

    out = tmp_path / "calibrated.yaml"
    result = runner.invoke(app, ["calibrate", str(subset(tmp_path)), "--out", str(out), "--target-precision", "0.95"])
    assert result.exit_code == 0, result.output
    policies = PolicySet.from_file(out)
    assert all(0 < p.threshold <= 1 for _, p in policies.items())
    report = run_eval(tmp_path, "--policies", str(out))
    assert report["precision"] >= 0.90
