"""``semcache.gpu`` keeps its size rules: no file over 400 lines, no function over 60 lines,
and no docstring over ten lines (figures and histories live in ``docs/design/``)."""

from __future__ import annotations

import ast

import pytest

from tests.unit import architecture_rules as rules

pytestmark = pytest.mark.unit

MAX_DOCSTRING_LINES = 10


@pytest.fixture(scope="module")
def gpu_modules() -> dict[str, rules.Module]:
    return {name: m for name, m in rules.scan().items() if rules.in_package(name, "semcache.gpu")}


def test_files_and_functions_stay_short(gpu_modules: dict[str, rules.Module]) -> None:
    found = rules.length_violations(gpu_modules, lambda name: True)
    assert not found, "\n".join(found)


def test_docstrings_stay_short(gpu_modules: dict[str, rules.Module]) -> None:
    found = []
    for name, module in sorted(gpu_modules.items()):
        for node in ast.walk(module.tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                doc = ast.get_docstring(node)
                if doc and len(doc.splitlines()) > MAX_DOCSTRING_LINES:
                    found.append(f"{name}.{getattr(node, 'name', '<module>')}: {len(doc.splitlines())} lines")
    assert not found, "\n".join(found)


def test_the_connector_keeps_its_public_import_path(gpu_modules: dict[str, rules.Module]) -> None:
    """vLLM users name ``semcache.gpu.vllm_connector``; it re-exports the connector's module."""
    alias = gpu_modules["semcache.gpu.vllm_connector"]
    targets = {i.target for i in alias.imports}
    assert targets == {"semcache.gpu.vllm.connector"}
    names = {a.name for n in ast.walk(alias.tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    assert "SemcacheConnector" in names
