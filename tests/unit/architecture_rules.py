"""Static rules of the package layout, read from the source with ``ast`` (nothing is imported).

The repository maps folders into the ``semcache`` namespace (see setup.py):
``semcache/`` is the core, ``adapters/`` installs as ``semcache.adapters``,
``gpu/`` as ``semcache.gpu`` and ``alembic/`` as ``semcache.migrations``.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {
    "semcache": "semcache",
    "adapters": "semcache.adapters",
    "gpu": "semcache.gpu",
    "alembic": "semcache.migrations",
}
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60


@dataclass(frozen=True, slots=True)
class Import:
    target: str  # the most specific project module, or the dotted third-party name
    line: int
    type_checking: bool


@dataclass(slots=True)
class Module:
    name: str
    path: Path
    tree: ast.Module
    is_package: bool = False
    imports: list[Import] = field(default_factory=list)
    private_defs: set[str] = field(default_factory=set)


def module_name(path: Path, root: Path = ROOT) -> str | None:
    """The import name of a source file under one of the mapped folders."""
    rel = path.relative_to(root)
    prefix = FOLDERS.get(rel.parts[0])
    if prefix is None:
        return None
    inner = list(rel.with_suffix("").parts[1:])
    if inner and inner[-1] == "__init__":
        inner.pop()
    return ".".join([prefix, *inner])


def load(sources: dict[str, str]) -> dict[str, Module]:
    """Parse ``{module name: source}``; names ending in ``.__init__`` mark packages."""
    modules: dict[str, Module] = {}
    for name, source in sources.items():
        real = name.removesuffix(".__init__")
        modules[real] = Module(real, Path(name.replace(".", "/") + ".py"), ast.parse(source),
                               is_package=name.endswith(".__init__"))
    for module in modules.values():
        module.imports = list(_imports(module, modules))
        module.private_defs = _private_defs(module.tree)
    return modules


def scan(root: Path = ROOT) -> dict[str, Module]:
    """Every module of the mapped folders (alembic's version scripts are not modules)."""
    sources: dict[str, str] = {}
    for folder in FOLDERS:
        for path in sorted((root / folder).rglob("*.py")):
            if "versions" in path.relative_to(root).parts:
                continue
            name = module_name(path, root)
            if name is not None:
                key = name + ".__init__" if path.name == "__init__.py" else name
                sources[key] = path.read_text(encoding="utf-8")
    modules = load(sources)
    for module in modules.values():
        module.path = _find(root, module.name)
    return modules


def _find(root: Path, name: str) -> Path:
    for folder, prefix in sorted(FOLDERS.items(), key=lambda kv: -len(kv[1])):
        if name == prefix or name.startswith(prefix + "."):
            rel = name[len(prefix):].lstrip(".").replace(".", "/")
            base = root / folder / rel if rel else root / folder
            return base / "__init__.py" if (base / "__init__.py").exists() else base.with_suffix(".py")
    raise KeyError(name)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _walk(node: ast.AST, guarded: bool = False) -> Iterator[tuple[ast.AST, bool]]:
    """Every node with whether it sits under ``if TYPE_CHECKING:``."""
    for child in ast.iter_child_nodes(node):
        inner = guarded
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for stmt in child.body:
                yield stmt, True
                yield from _walk(stmt, True)
            for stmt in child.orelse:
                yield stmt, guarded
                yield from _walk(stmt, guarded)
            continue
        yield child, inner
        yield from _walk(child, inner)


def _resolve(target: str, modules: dict[str, Module]) -> str:
    """The most specific project module a dotted name falls in (or the name itself)."""
    parts = target.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return target


def _imports(module: Module, modules: dict[str, Module]) -> Iterator[Import]:
    package = module.name if module.is_package else module.name.rpartition(".")[0]
    for node, guarded in _walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(_resolve(alias.name, modules), node.lineno, guarded)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                yield Import(_resolve(f"{base}.{alias.name}", modules), node.lineno, guarded)


def _private_defs(tree: ast.Module) -> set[str]:
    """Underscored names a module defines: functions, classes, attributes, module globals."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return {n for n in names if _private(n)}


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def in_package(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


# ---------------------------------------------------------------------------- rules
CORE = "semcache"
OUTSIDE_CORE = ("semcache.adapters", "semcache.gpu", "semcache.migrations")
# What semcache.gpu must not reach: the core's SQL and web parts (and what pulls them in).
GPU_FORBIDDEN = ("semcache.storage", "semcache.replication", "semcache.adapters",
                 "semcache.migrations", "semcache.cache", "semcache.build", "semcache.tools",
                 "sqlalchemy", "alembic")


def is_core(name: str) -> bool:
    return in_package(name, CORE) and not any(in_package(name, p) for p in OUTSIDE_CORE)


def cycles(modules: dict[str, Module]) -> list[list[str]]:
    """Strongly connected groups of project modules (imports in functions count,
    ``TYPE_CHECKING`` ones do not)."""
    graph = {name: sorted({i.target for i in m.imports if not i.type_checking
                           and i.target in modules and i.target != name})
             for name, m in modules.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(start: str) -> None:
        # iterative Tarjan: (node, next child position)
        work = [(start, 0)]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, pos = work[-1]
            children = graph[node]
            if pos < len(children):
                work[-1] = (node, pos + 1)
                child = children[pos]
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, 0))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))

    for name in sorted(graph):
        if name not in index:
            visit(name)
    return found


def layer_violations(modules: dict[str, Module]) -> list[str]:
    """Core modules that import an adapter or gpu; gpu modules that import SQL/web parts."""
    out = []
    for name, module in sorted(modules.items()):
        for imp in module.imports:
            if is_core(name) and any(in_package(imp.target, p) for p in ("semcache.adapters", "semcache.gpu")):
                out.append(f"{name}:{imp.line} imports {imp.target}")
            if in_package(name, "semcache.gpu") and any(in_package(imp.target, p) for p in GPU_FORBIDDEN):
                out.append(f"{name}:{imp.line} imports {imp.target}")
        if is_core(name):
            out += [f"{name}:{line} loads {target} by name" for line, target in _dynamic(module.tree)
                    if any(in_package(target, p) for p in ("semcache.adapters", "semcache.gpu"))]
    return out


def _dynamic(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """Module names written as strings (what ``import_module`` would load); docstrings aside."""
    docstrings = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
                and _DOTTED.fullmatch(node.value)):
            yield node.lineno, node.value


_DOTTED = re.compile(r"semcache(\.\w+)+")


def private_reads(modules: dict[str, Module]) -> list[str]:
    """Reads of ``obj._name`` (or ``from m import _name``) where another project module defines
    ``_name`` and this one does not; ``self``/``cls``/``super()`` receivers are the module's own
    business."""
    owners: dict[str, set[str]] = {}
    for name, module in modules.items():
        for private in module.private_defs:
            owners.setdefault(private, set()).add(name)
    out = []
    for name, module in sorted(modules.items()):
        for node in ast.walk(module.tree):
            if isinstance(node, ast.Attribute) and _private(node.attr):
                if _own_receiver(node.value):
                    continue
                others = owners.get(node.attr, set()) - {name}
                if others and node.attr not in module.private_defs:
                    out.append(f"{name}:{node.lineno} reads .{node.attr} (defined in {sorted(others)[0]})")
            elif isinstance(node, ast.ImportFrom) and node.module and in_package(node.module, CORE):
                out += [f"{name}:{node.lineno} imports {a.name} from {node.module}"
                        for a in node.names if _private(a.name)]
    return out


def _own_receiver(value: ast.expr) -> bool:
    if isinstance(value, ast.Name):
        return value.id in ("self", "cls")
    return (isinstance(value, ast.Call) and isinstance(value.func, ast.Name)
            and value.func.id == "super")


def length_violations(modules: dict[str, Module], keep: Callable[[str], bool]) -> list[str]:
    """Files over MAX_FILE_LINES lines and functions over MAX_FUNCTION_LINES lines, in the
    modules whose name ``keep`` accepts."""
    out = []
    for name, module in sorted(modules.items()):
        if not keep(name):
            continue
        lines = len(module.path.read_text(encoding="utf-8").splitlines()) if module.path.exists() else 0
        if lines > MAX_FILE_LINES:
            out.append(f"{name}: {lines} lines")
        for node in ast.walk(module.tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    out.append(f"{name}.{node.name} (line {node.lineno}): {length} lines")
    return out
