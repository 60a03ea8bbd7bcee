"""The wheel that ``pip install reiqa`` installs: built from this checkout, installed (``--no-index``)
into a fresh virtual environment that sees only the distributions its core requirements need,
linked from this environment (torch, numpy, pillow, ...; none of the train or plots extras), it
scores the samples with the weights inside the installed package, and training commands say which
extra to install in one line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
SAMPLES = sorted((REPO / "samples").glob("*.png"))
#: the modules of the train and plots extras, which a core install must not see
EXTRA_MODULES = ("scipy", "sklearn", "matplotlib", "tensorboard", "openpyxl")


def _env() -> dict[str, str]:
    """This process's environment without what would reach past the new venv: no PYTHONPATH, no
    pip configuration (its find-links and indexes), no user site-packages."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONNOUSERSITE="1")
    return env


def _run(args: list[str | Path], *, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout
    )


def _build_wheel(into: Path) -> Path:
    """The wheel of a copy of the checkout (pyproject, README, LICENSE, src): the build writes
    nothing into the repository; no build isolation and no index, so nothing is downloaded."""
    source = into / "source"
    source.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(
        REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    )
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index"]
    done = _run([*pip, "-w", into / "dist", source], cwd=into, timeout=300)
    if done.returncode != 0 and "No module named 'setuptools'" in done.stdout + done.stderr:
        pytest.skip("no setuptools in this environment to build the wheel (scripts/setup.sh installs it)")
    assert done.returncode == 0, done.stdout + done.stderr
    (wheel,) = (into / "dist").glob("reiqa-*.whl")
    return wheel


def _requires(wheel: Path) -> list[str]:
    """The wheel's Requires-Dist: its core requirements and its extras'."""
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        return Parser().parsestr(zf.read(name).decode()).get_all("Requires-Dist") or []


def _closure(requirements: list[str]) -> list[metadata.Distribution]:
    """The distributions of this environment that ``requirements`` need, with their own
    requirements, transitively (markers evaluated here, requested extras followed)."""
    extras: dict[str, set[str]] = {}
    found: dict[str, metadata.Distribution] = {}
    todo = [(Requirement(r), {""}) for r in requirements]
    while todo:
        req, wanted_by = todo.pop()
        if req.marker is not None and not any(req.marker.evaluate({"extra": e}) for e in wanted_by):
            continue
        name = canonicalize_name(req.name)
        wanted = {"", *req.extras}
        if name in found and wanted <= extras[name]:
            continue
        extras[name] = extras.get(name, set()) | wanted
        try:
            found[name] = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            pytest.fail(f"{req} is required but not installed here; run scripts/setup.sh")
        todo += [(Requirement(r), extras[name]) for r in found[name].requires or ()]
    return list(found.values())


def _link(dists: list[metadata.Distribution], into: Path) -> None:
    """A folder of symbolic links to the top-level entries of each distribution's files (its
    packages, modules, shared libraries and .dist-info), nothing else of this environment."""
    into.mkdir()
    for dist in dists:
        assert dist.files is not None, f"{dist.metadata['Name']}: no RECORD to find its files by"
        root = Path(dist.locate_file(""))
        tops = {Path(str(f)).parts[0] for f in dist.files if not str(f).startswith("..")}
        for top in sorted(tops - {"__pycache__"}):
            if not top.endswith(".pth") and (root / top).exists() and not (into / top).is_symlink():
                (into / top).symlink_to(root / top)


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment (no system site-packages, no pip of its own) with the wheel
    installed by this environment's pip, its dependencies found through a .pth file."""
    tmp = tmp_path_factory.mktemp("wheel")
    wheel = _build_wheel(tmp)
    core = [r for r in _requires(wheel) if "extra ==" not in r and "extra==" not in r]
    assert not {canonicalize_name(Requirement(r).name) for r in core} & {
        "scipy",
        "scikit-learn",
        "matplotlib",
        "tensorboard",
        "openpyxl",
    }
    dists = [d for d in _closure(core) if canonicalize_name(d.metadata["Name"]) != "reiqa"]
    _link(dists, tmp / "core")
    env = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", env], check=True, env=_env(), timeout=120)
    python = env / "bin" / "python"
    purelib = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp)
    Path(purelib.stdout.strip(), "core.pth").write_text(f"{tmp / 'core'}\n", encoding="utf-8")
    pip = [sys.executable, "-m", "pip", "--python", python, "install", "--no-index", wheel]
    done = _run(pip, cwd=tmp, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return env


def test_the_core_install_has_no_training_packages_and_its_own_weights(venv, tmp_path) -> None:
    probe = (
        "import importlib.util, json, reiqa\n"
        "from importlib import resources\n"
        f"found = [m for m in {EXTRA_MODULES!r} if importlib.util.find_spec(m) is not None]\n"
        "weights = resources.files('reiqa') / 'weights' / 'default' / 'model.json'\n"
        "print(json.dumps({'found': found, 'reiqa': reiqa.__file__, 'weights': str(weights)}))\n"
    )
    done = _run([venv / "bin" / "python", "-c", probe], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["found"] == []
    for key in ("reiqa", "weights"):
        assert Path(seen[key]).is_relative_to(venv) and "site-packages" in Path(seen[key]).parts, seen[key]
        assert not Path(seen[key]).is_relative_to(REPO), seen[key]
    assert Path(seen["weights"]).is_file()


def test_the_core_install_scores_the_samples_as_this_checkout_does(venv, tmp_path) -> None:
    import reiqa

    done = _run([venv / "bin" / "reiqa", "score", REPO / "samples", "--device", "cpu"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = [line.rsplit(None, 1) for line in done.stdout.splitlines()]
    assert [Path(path).name for path, _ in rows] == [p.name for p in SAMPLES]
    expected = reiqa.load("default", device="cpu").score([str(p) for p in SAMPLES])
    np.testing.assert_allclose([float(score) for _, score in rows], expected, atol=1e-3)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["fit-diagnosis", "photos", "-o", "head"], "reiqa fit-diagnosis needs scikit-learn"),
        (["diagnose", "--map", "maps", REPO / "samples"], "reiqa diagnose --map needs matplotlib"),
    ],
    ids=["train", "plots"],
)
def test_commands_of_an_extra_say_which_in_one_line(venv, tmp_path, args, message) -> None:
    done = _run([venv / "bin" / "reiqa", *args], cwd=tmp_path)
    extra = "plots" if "--map" in args else "train"
    assert done.returncode == 1
    assert done.stderr.splitlines() == [f"error: {message}: pip install 'reiqa[{extra}]'"]
    assert not (tmp_path / "head").exists() and not (tmp_path / "maps").exists()
