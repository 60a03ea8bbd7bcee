"""The package layout holds: each part imports only what docs/architecture.md allows, there is no
import cycle (function-level imports included), no part reaches into another's private module,
and scoring never needs the training code."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

#: part -> the parts it may import (docs/architecture.md, "What each part may import")
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "atomic": set(),
    "dist": set(),
    "resize": set(),
    "plots": set(),
    "runtime": {"errors"},
    "outputs": {"atomic", "errors"},
    "io": {"errors"},
    "inputs": {"errors", "io"},
    "distortions": {"errors"},
    "regress": {"errors"},
    "views": {"errors", "distortions", "resize"},
    "models": {"atomic", "errors", "dist", "inputs"},
    "datasets": {"errors", "inputs", "io"},
    "sheet": {"errors", "distortions", "io", "runtime"},
    "train": {"errors", "dist", "inputs", "io", "models", "plots", "resize", "runtime", "views"},
    "features": {"errors", "inputs", "io", "models", "resize"},
    "evaluate": {"errors", "datasets", "features", "inputs", "plots", "regress"},
    "backends": {"atomic", "errors", "features", "models"},
    "bundle": {"backends", "errors", "features", "io", "models", "regress", "resize"},
    "ranking": {"errors", "distortions", "features", "io"},
    "cluster": {"errors", "bundle", "io", "runtime"},
    "jobs": {"errors", "backends", "bundle", "cluster", "features", "inputs", "io", "outputs", "runtime"},
    "service": {"errors", "bundle", "features", "io", "resize"},
}
TOP = {"cli", "__main__", "reiqa"}  # the command line and the package face may import anything


def _modules() -> dict[str, Path]:
    found = {}
    for path in (SRC / "reiqa").rglob("*.py"):
        name = ".".join(path.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")
        found[name] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Modules of reiqa that ``name`` imports anywhere in its file (function bodies included)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in modules}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                out.add(full if full in modules else base)
    return {m for m in out if m in modules and m != name}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "reiqa"


def test_every_part_is_in_the_table(graph) -> None:
    assert {_part(m) for m in graph} - TOP == set(ALLOWED)


def test_each_part_imports_only_what_it_may(graph) -> None:
    wrong = sorted(
        f"{m} -> {t}"
        for m, targets in graph.items()
        for t in targets
        if _part(m) not in TOP and _part(t) != _part(m) and _part(t) not in ALLOWED[_part(m)]
    )
    assert not wrong, wrong


def test_no_import_cycle(graph) -> None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> list[str] | None:
        state[module] = 1
        for nxt in sorted(graph[module]):
            # a package importing its own submodules (re-exports) is not a cycle
            if module.startswith(nxt + ".") or nxt.startswith(module + "."):
                continue
            if state.get(nxt) == 1:
                return [*path, nxt]
            if nxt not in state and (cycle := visit(nxt, [*path, nxt])):
                return cycle
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state:
            assert visit(module, [module]) is None


def test_no_part_imports_a_private_module_of_another(graph) -> None:
    wrong = [
        f"{m} -> {t}"
        for m, targets in graph.items()
        for t in targets
        if any(p.startswith("_") for p in t.split(".")[1:]) and not m.startswith(t.rsplit(".", 1)[0])
    ]
    assert not wrong, wrong


def test_scoring_never_loads_the_training_code(graph) -> None:
    def closure(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph[todo.pop()] - seen:
                seen.add(nxt)
                todo.append(nxt)
        return seen

    for entry in ("reiqa.bundle", "reiqa.jobs", "reiqa.features", "reiqa.evaluate"):
        assert not {m for m in closure(entry) if m.startswith("reiqa.train")}, entry


@pytest.mark.parametrize(
    "script", sorted((SRC.parent / "benchmarks").glob("*.py")) + sorted((SRC.parent / "scripts").glob("*.py"))
)
def test_benchmarks_and_scripts_import_names_that_exist(script: Path) -> None:
    """They are not run by the tests; every reiqa name they import must still be there."""
    import importlib

    for node in ast.walk(ast.parse(script.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("reiqa"):
            module = importlib.import_module(node.module)
            missing = [
                a.name for a in node.names if not (hasattr(module, a.name) or _submodule(module, a.name))
            ]
            assert not missing, f"{script.name}: from {node.module} import {missing}"


def _submodule(module, name: str) -> bool:
    import importlib

    try:
        importlib.import_module(f"{module.__name__}.{name}")
    except ModuleNotFoundError:
        return False
    return True
