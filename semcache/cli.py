"""The ``semcache`` command line: ``db upgrade|downgrade|current``, ``stats``, ``eval``,
``calibrate``, plus the sub-commands installed packages register in the
``semcache.commands`` entry-point group (``serve`` and ``admin`` from the adapters,
``engine`` from semcache.gpu). Heavy imports happen inside the commands, so
``--help`` is instant."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Optional

import typer

from semcache.tools.calibrate import calibrate_cmd

app = typer.Typer(
    help="semcache: a semantic response cache for LLM apps. Manage the store, evaluate and "
    "calibrate hit decisions, and serve the caching proxy and the chunk-reuse engine.",
    no_args_is_help=True, add_completion=False)
db_app = typer.Typer(help="Manage the store's schema (Alembic migrations).", no_args_is_help=True)
app.add_typer(db_app, name="db")


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"semcache {version('semcache')}")
        raise typer.Exit()


@app.callback()
def _main(version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                                help="print the version and exit")] = False) -> None:
    """semcache: a semantic response cache for LLM apps."""

DbOpt = Annotated[str, typer.Option("--db", envvar="SEMCACHE_DB_URL",
                                    help="SQLAlchemy URL of the store, e.g. sqlite:///semcache.db or postgresql://...")]
PoliciesOpt = Annotated[Optional[Path], typer.Option("--policies", help="YAML/TOML policy file (defaults built in)")]  # noqa: UP045


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


@db_app.command("upgrade")
def db_upgrade(db: DbOpt = "sqlite:///semcache.db",
               revision: Annotated[str, typer.Option(help="target revision")] = "head") -> None:
    """Apply migrations up to REVISION (default: head)."""
    from semcache.storage.engine import upgrade

    try:
        upgrade(db, revision)
    except (ValueError, ImportError) as exc:  # ImportError: an extra is missing
        _fail(str(exc))
    typer.echo(f"database at {revision}: {db}")


@db_app.command("downgrade")
def db_downgrade(revision: Annotated[str, typer.Argument(help="target revision, e.g. base or -1")],
                 db: DbOpt = "sqlite:///semcache.db") -> None:
    """Revert migrations down to REVISION."""
    from semcache.storage.engine import downgrade

    try:
        downgrade(db, revision)
    except (ValueError, ImportError) as exc:  # ImportError: an extra is missing
        _fail(str(exc))
    typer.echo(f"database at {revision}: {db}")


@db_app.command("current")
def db_current(db: DbOpt = "sqlite:///semcache.db") -> None:
    """Print the database's current revision."""
    from semcache.storage.engine import current_revision, make_engine

    try:
        engine = make_engine(db)
    except (ValueError, ImportError) as exc:  # ImportError: an extra is missing
        _fail(str(exc))
    typer.echo(current_revision(engine) or "base")


@app.command()
def stats(db: DbOpt = "sqlite:///semcache.db",
          tenant: Annotated[Optional[str], typer.Option(help="only this tenant")] = None,  # noqa: UP045
          as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False) -> None:
    """Show hit rate, entries and savings recorded in the store."""
    from semcache.storage.store import Store

    try:
        store = Store(db)
    except (ValueError, ImportError) as exc:  # ImportError: an extra is missing
        _fail(str(exc))
    with store:
        summary = store.stats_summary(tenant=tenant)
        summary["entries"] = store.count_entries()
    if as_json:
        typer.echo(json.dumps(summary, indent=2, default=str))
        return
    for key, value in summary.items():
        typer.echo(f"{key:>20}: {value}")


@app.command("eval")
def eval_cmd(
    pairs: Annotated[Path, typer.Argument(help="JSONL rows {cached, query, should_hit, category?, kind?, history_cached?, history_query?}")],
    policies: PoliciesOpt = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="write the report here")] = None,  # noqa: UP045
    trust_category: Annotated[bool, typer.Option("--trust-category", help="use each row's category instead of the categoriser")] = False,
    no_verifier: Annotated[bool, typer.Option("--no-verifier", help="disable the verifier (baseline)")] = False,
    verifier: Annotated[Optional[str], typer.Option("--verifier", help="hardneg, learned or none; default: SEMCACHE_VERIFIER, else hardneg")] = None,  # noqa: UP045
) -> None:
    """Evaluate hit/miss decisions on labelled pairs through the production lookup path."""
    from semcache.cache import SemanticCache
    from semcache.parts import make_verifier
    from semcache.settings import CoreSettings
    from semcache.tools.evaluate import evaluate, format_table, load_rows

    try:
        rows = load_rows(pairs)
    except (ValueError, ImportError) as exc:  # ImportError: an extra is missing
        _fail(str(exc))
    with tempfile.TemporaryDirectory(prefix="semcache-eval-") as tmp:
        url = f"sqlite:///{os.path.join(tmp, 'eval.db')}"
        try:
            core = CoreSettings()
            kind = "none" if no_verifier else verifier or core.verifier
            cache = SemanticCache(url, policies=policies, stats_interval=0, candidate_floor=core.candidate_floor,
                                  verifier=make_verifier(kind, rules=core.verifier_rules))
        except ValueError as exc:
            _fail(str(exc))
        with cache:
            report = evaluate(cache, rows, trust_category=trust_category, progress=sys.stderr.isatty())
    typer.echo(format_table(report))
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report, indent=2), encoding="utf-8")
        typer.echo(f"report written to {json_out}")


app.command("calibrate")(calibrate_cmd)


COMMANDS_GROUP = "semcache.commands"


def _installed(name: str) -> bool:
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        distribution(name)
    except PackageNotFoundError:
        return False
    return True


def extra_installed(extra: str, dist: str = "semcache", _seen: frozenset[str] = frozenset()) -> bool:
    """True when every requirement ``dist`` lists for ``extra`` is installed."""
    import re
    from importlib.metadata import PackageNotFoundError, requires

    try:
        requirements = requires(dist) or []
    except PackageNotFoundError:
        return True  # run from a source tree without metadata: let the import decide
    marker = re.compile(r"""extra\s*==\s*["']""" + re.escape(extra) + r"""["']""")
    for requirement in requirements:
        if ";" not in requirement or not marker.search(requirement.split(";", 1)[1]):
            continue
        head = requirement.split(";", 1)[0].strip()
        name = re.match(r"[A-Za-z0-9._-]+", head)
        if name is None:
            continue
        nested = re.search(r"\[([^\]]+)\]", head)
        if name.group(0).lower() == dist and nested:  # semcache[proxy] inside another extra
            if any(e not in _seen and not extra_installed(e.strip(), dist, _seen | {extra})
                   for e in nested.group(1).split(",")):
                return False
        elif not _installed(name.group(0)):
            return False
    return True


def mount_registered(target: typer.Typer = app) -> list[str]:
    """Mount the sub-commands that installed packages register; returns their names.

    The adapters and the engine register theirs in the entry-point group
    ``semcache.commands`` (see pyproject.toml), naming the extra each needs. A command
    whose extra is not installed, or whose import fails for a missing package, is left out.
    """
    from importlib.metadata import entry_points

    mounted = []
    for entry in sorted(entry_points(group=COMMANDS_GROUP), key=lambda e: e.name):
        dist = getattr(getattr(entry, "dist", None), "name", None) or "semcache"
        if not all(extra_installed(extra, dist) for extra in getattr(entry, "extras", [])):
            continue
        try:
            command = entry.load()
        except ImportError:  # ModuleNotFoundError and MissingExtraError alike
            continue
        if isinstance(command, typer.Typer):
            target.add_typer(command, name=entry.name)
        else:
            target.command(entry.name)(command)
        mounted.append(entry.name)
    return mounted


mount_registered()

if __name__ == "__main__":  # pragma: no cover
    app()
