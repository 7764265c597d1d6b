"""The package layout keeps its rules: no import cycles, the core imports no adapter and no gpu
code, gpu reaches none of the core's SQL or web parts, nobody reads another module's private
names, and files and functions stay short. The rules are checked on the source with ``ast``."""

from __future__ import annotations

import textwrap

import pytest

from tests.unit import architecture_rules as rules

pytestmark = pytest.mark.unit

PARTS = {"core": "semcache", "adapters": "semcache.adapters", "gpu": "semcache.gpu"}


@pytest.fixture(scope="module")
def modules() -> dict[str, rules.Module]:
    return rules.scan()


def _mine(lines: list[str], prefix: str) -> list[str]:
    """Findings whose module lies in ``prefix`` (the core excludes the mapped folders)."""
    if prefix == "semcache":
        return [line for line in lines if rules.is_core(line.split(":")[0].split(" ")[0])]
    return [line for line in lines if rules.in_package(line.split(":")[0].split(" ")[0], prefix)]


@pytest.mark.parametrize("part", PARTS)
def test_no_import_cycles(modules, part):
    groups = [g for g in rules.cycles(modules) if _mine([g[0]], PARTS[part])]
    assert not groups, "import cycles:\n" + "\n".join(" -> ".join(g) for g in groups)


@pytest.mark.parametrize("part", PARTS)
def test_imports_point_one_way(modules, part):
    found = _mine(rules.layer_violations(modules), PARTS[part])
    assert not found, "\n".join(found)


@pytest.mark.parametrize("part", PARTS)
def test_no_reads_of_another_modules_private_names(modules, part):
    found = _mine(rules.private_reads(modules), PARTS[part])
    assert not found, "\n".join(found)


@pytest.mark.parametrize("part", ["core", "adapters"])
def test_files_and_functions_stay_short(modules, part):
    keep = rules.is_core if part == "core" else (lambda name: rules.in_package(name, PARTS[part]))
    found = rules.length_violations(modules, keep)
    assert not found, "\n".join(found)


def test_every_mapped_folder_is_scanned(modules):
    for prefix in ("semcache.cache", "semcache.adapters.proxy", "semcache.gpu", "semcache.migrations"):
        assert any(rules.in_package(name, prefix) for name in modules), prefix


# ------------------------------------------------------- the rules catch what they should
def _load(**sources: str) -> dict[str, rules.Module]:
    return rules.load({name.replace("__", "."): textwrap.dedent(src) for name, src in sources.items()})


def test_a_cycle_through_a_function_level_import_is_found():
    mods = _load(semcache__a="from semcache.b import f\n",
                 semcache__b="def f():\n    from semcache.a import g\n")
    assert rules.cycles(mods) == [["semcache.a", "semcache.b"]]


def test_a_type_checking_import_makes_no_cycle():
    mods = _load(semcache__a="from semcache.b import f\n",
                 semcache__b="from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                             "    from semcache.a import g\n")
    assert rules.cycles(mods) == []


def test_core_importing_an_adapter_or_loading_one_by_name_is_found():
    mods = _load(semcache__a="def f():\n    import semcache.adapters.proxy\n",
                 semcache__b="import importlib\nfor m in ('semcache.gpu.cli',):\n    importlib.import_module(m)\n",
                 semcache__adapters__proxy="from semcache.a import f\n")
    found = rules.layer_violations(mods)
    assert len(found) == 2 and found[0].startswith("semcache.a:2") and "by name" in found[1]


def test_gpu_importing_the_store_is_found():
    mods = _load(semcache__storage__store="X = 1\n", semcache__gpu__x="from semcache.storage.store import X\n")
    assert rules.layer_violations(mods) == ["semcache.gpu.x:1 imports semcache.storage.store"]


def test_reading_another_modules_private_attribute_is_found():
    mods = _load(semcache__a="class A:\n    def __init__(self):\n        self._lock = 1\n",
                 semcache__b="def f(a):\n    return a._lock, a.public, torch._C\n",
                 semcache__c="class C:\n    def g(self):\n        return self._lock\n")
    assert rules.private_reads(mods) == ["semcache.b:2 reads ._lock (defined in semcache.a)"]


def test_long_functions_are_found(tmp_path):
    body = "def f():\n" + "    x = 1\n" * 60
    mods = _load(semcache__a=body)
    mods["semcache.a"].path = tmp_path / "a.py"
    mods["semcache.a"].path.write_text(body)
    assert rules.length_violations(mods, rules.is_core) == ["semcache.a.f (line 1): 61 lines"]
