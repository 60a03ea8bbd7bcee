"""The container recipe agrees with the code: it cannot be built here (no base image can be
pulled), so what it relies on is checked instead."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _final_stage() -> list[tuple[str, str]]:
    steps = _instructions()
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def test_the_image_runs_as_a_non_root_user_on_a_slim_python() -> None:
    stage = _final_stage()
    assert re.fullmatch(r"python:3\.\d+-slim", stage[0][1])
    users = [args for word, args in stage if word == "USER"]
    assert users and users[-1] not in ("0", "root")
    entry = next(i for i, (word, _) in enumerate(stage) if word == "ENTRYPOINT")
    assert any(word == "USER" for word, _ in stage[:entry])


def test_torch_comes_from_the_cpu_index_within_the_projects_ranges() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {re.split(r"[<>=!~ ]", d, maxsplit=1)[0]: d for d in project["dependencies"]}
    install = next(args for word, args in _final_stage() if word == "RUN" and "torch" in args)
    assert "--index-url https://download.pytorch.org/whl/cpu" in install
    for name in ("torch", "torchvision"):
        assert f'"{wanted[name]}"' in install, f"the Dockerfile's {name} range differs from pyproject.toml's"


def test_the_wheel_is_installed_with_an_extra_that_exists() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    install = next(args for word, args in _final_stage() if word == "RUN" and "/wheels/reiqa-" in args)
    used = re.search(r"\.whl\)\[([a-z,]+)\]", install)
    assert used and set(used.group(1).split(",")) <= set(extras)


def test_the_health_check_and_entry_point_fit_the_service() -> None:
    pytest.importorskip("fastapi")
    import click
    import typer

    from reiqa.cli import app
    from reiqa.service.app import OPEN_PATHS

    stage = dict(_final_stage())
    health = json.loads(stage["HEALTHCHECK"].split("CMD", 1)[1])
    path = re.search(r"http://127\.0\.0\.1:(\d+)(/\w+)", " ".join(health))
    assert path and path.group(2) in OPEN_PATHS  # a probe needs no token
    entry = json.loads(stage["ENTRYPOINT"])
    assert entry[:2] == ["reiqa", "serve"]
    assert path.group(1) == entry[entry.index("--port") + 1] == stage["EXPOSE"]
    command = typer.main.get_command(app)
    serve = command.get_command(click.Context(command), "serve")
    serve.make_context("serve", entry[2:])  # raises on an option the command does not have
    with pytest.raises(Exception, match="no-such-option"):  # the check can fail
        serve.make_context("serve", [*entry[2:], "--no-such-option"])


def test_the_build_context_holds_what_the_recipe_copies() -> None:
    ignore = (ROOT / ".dockerignore").read_text().split()
    for needed in ("pyproject.toml", "README.md", "LICENSE", "src/"):
        assert f"!{needed}" in ignore
        assert (ROOT / needed).exists()
