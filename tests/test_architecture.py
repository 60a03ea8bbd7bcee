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
    "extras": {"errors"},
    "version": set(),
    "atomic": set(),
    "digest": set(),
    "dist": set(),
    "resize": set(),
    "engines": {"errors"},
    "schema": {"errors"},
    "runtime": {"errors"},
    "distortions": {"errors"},
    "plots": {"atomic", "extras"},
    "io": {"atomic", "errors"},
    "outputs": {"atomic", "errors"},
    "regress": {"atomic", "errors", "extras", "schema"},
    "diagnosis": {"atomic", "errors", "schema"},
    "inputs": {"errors", "io"},
    "views": {"errors", "distortions", "resize"},
    "models": {"atomic", "digest", "dist", "errors", "schema"},
    "datasets": {"errors", "extras", "inputs"},
    "sheet": {"distortions", "io", "resize", "runtime"},
    "train": {
        "atomic",
        "dist",
        "errors",
        "extras",
        "inputs",
        "io",
        "models",
        "plots",
        "resize",
        "runtime",
        "schema",
        "views",
    },
    # fine-tuning starts from a model folder and scores its validation rows as scoring does; the
    # rest of train (pre-training) may not import it, nor what it imports beyond train's row
    "train.finetune": {
        "atomic",
        "datasets",
        "distortions",
        "errors",
        "evaluate",
        "extras",
        "features",
        "inference",
        "io",
        "models",
        "ranking",
        "regress",
        "resize",
        "runtime",
        "schema",
        "train",
    },
    "features": {"atomic", "digest", "engines", "errors", "io", "models", "resize", "schema"},
    "evaluate": {"atomic", "datasets", "digest", "errors", "extras", "features", "plots", "regress"},
    "ranking": {"atomic", "distortions", "features", "io", "resize"},
    "inference": {
        "atomic",
        "diagnosis",
        "digest",
        "engines",
        "errors",
        "features",
        "io",
        "models",
        "outputs",
        "regress",
        "runtime",
        "schema",
    },
    "cluster": {"errors", "inference", "io", "outputs"},
    "jobs": {"cluster", "errors", "features", "inference", "inputs", "io", "outputs", "runtime"},
    "service": {"errors", "inference", "io", "runtime", "version"},
    # what is wrong and where; its fit renders the distortion engine, which scoring never loads
    "diagnose": {
        "atomic",
        "diagnosis",
        "distortions",
        "errors",
        "extras",
        "features",
        "inference",
        "inputs",
        "io",
        "outputs",
        "plots",
    },
    "cull": {"atomic", "digest", "errors", "features", "inference", "inputs", "io", "outputs"},
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
    """The part of a module: its first package under reiqa, or a sub-package with a row of its
    own (``train.finetune``)."""
    parts = module.split(".")
    if len(parts) > 2 and f"{parts[1]}.{parts[2]}" in ALLOWED:
        return f"{parts[1]}.{parts[2]}"
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

    for entry in ("reiqa.inference", "reiqa.jobs", "reiqa.features", "reiqa.evaluate", "reiqa.service.app"):
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


def _functions(path: Path) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]


def _body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines of a function's body, its docstring left out."""
    body = node.body
    if len(body) > 1 and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    return node.end_lineno - body[0].lineno + 1


def test_functions_stay_short_and_commands_thin() -> None:
    """No function of the package over 80 lines (signature and docstring included); each command
    of the CLI parses, calls one library function and prints: its body is at most 25 lines."""
    long = [
        f"{path.relative_to(SRC)}:{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for path in sorted((SRC / "reiqa").rglob("*.py"))
        for node in _functions(path)
        if node.end_lineno - node.lineno + 1 > 80
    ]
    assert not long, long
    cli = SRC / "reiqa" / "cli.py"
    commands = [
        node
        for node in ast.parse(cli.read_text(encoding="utf-8")).body
        if isinstance(node, ast.FunctionDef)
        and any(
            isinstance(d, ast.Call) and getattr(d.func, "attr", "") == "command" for d in node.decorator_list
        )
    ]
    assert len(commands) >= 10
    fat = [f"{c.name} ({_body_lines(c)} lines)" for c in commands if _body_lines(c) > 25]
    assert not fat, fat


def test_the_architecture_page_lists_the_same_rules() -> None:
    """docs/architecture.md's table "What each part may import" is this file's ALLOWED."""
    import re

    page = (SRC.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = page.split("## What each part may import", 1)[1].split("\n## ", 1)[0]
    table = [line for line in section.splitlines() if line.startswith("| `")]
    documented: dict[str, set[str]] = {}
    for line in table:
        parts_cell, imports_cell = (c.strip() for c in line.strip("|").split("|"))
        if "anything" in imports_cell:
            continue
        allowed = set(re.findall(r"`(\w+)`", imports_cell))
        for part in re.findall(r"`([\w.]+)`", parts_cell):
            documented[part] = allowed
    assert documented == ALLOWED
