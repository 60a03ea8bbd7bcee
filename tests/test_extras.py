"""Optional extras: scoring imports none of their packages, and what needs one that is missing says
which extra to install, in one line (``reiqa.extras.require``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reiqa.errors import ReiqaError
from reiqa.extras import require
from tests.conftest import run_cli

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "samples" / "kodim03.png"
#: the modules of the train and plots extras
EXTRA_MODULES = ("scipy", "sklearn", "matplotlib", "tensorboard", "openpyxl")


def _hide(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    """``import name`` (and of its submodules, loaded or not) raises ImportError until the test
    ends, as if the package were not installed."""
    for name in names:
        for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            monkeypatch.setitem(sys.modules, key, None)
        monkeypatch.setitem(sys.modules, name, None)


def test_require_returns_the_module_or_names_the_package_and_the_extra(monkeypatch) -> None:
    assert require("json", "train", "anything") is json
    _hide(monkeypatch, "sklearn")
    with pytest.raises(ReiqaError) as caught:
        require("sklearn.linear_model", "train", "fitting a regressor")
    assert str(caught.value) == "fitting a regressor needs scikit-learn: pip install 'reiqa[train]'"
    with pytest.raises(ReiqaError, match=r"^training needs tensorboard: pip install 'reiqa\[train\]'$"):
        require("sklearn", "train", "training", package="tensorboard")


def test_fitting_and_evaluating_without_the_train_extra_name_it(monkeypatch) -> None:
    from reiqa.evaluate import metrics
    from reiqa.regress import QualityRegressor

    rng = np.random.default_rng(0)
    _hide(monkeypatch, "sklearn")
    with pytest.raises(ReiqaError, match=r"^fitting a regressor needs scikit-learn: .*'reiqa\[train\]'$"):
        QualityRegressor(alphas=(1.0,)).fit(rng.normal(size=(12, 4)), rng.normal(size=12))
    _hide(monkeypatch, "scipy")
    with pytest.raises(ReiqaError, match=r"^evaluating predictions needs scipy: .*'reiqa\[train\]'$"):
        metrics(rng.normal(size=8), rng.normal(size=8))


def test_fit_diagnosis_without_scikit_learn_fails_in_one_line_before_any_work(
    tmp_path, capsys, monkeypatch
) -> None:
    _hide(monkeypatch, "sklearn")
    code, _, err = run_cli(["fit-diagnosis", SAMPLE, "-o", tmp_path / "head"], capsys, monkeypatch)
    assert code == 1
    assert err == "error: reiqa fit-diagnosis needs scikit-learn: pip install 'reiqa[train]'\n"
    assert not (tmp_path / "head").exists()


def test_pretrain_without_tensorboard_fails_in_one_line(tmp_path, capsys, monkeypatch) -> None:
    _hide(monkeypatch, "tensorboard", "torch.utils.tensorboard")
    args = ["pretrain", "--data", REPO / "samples", "--out", tmp_path / "run", "--preset", "cpu-small"]
    code, _, err = run_cli(args, capsys, monkeypatch)
    assert (code, err) == (1, "error: reiqa pretrain needs tensorboard: pip install 'reiqa[train]'\n")
    assert not (tmp_path / "run").exists()


def test_heat_maps_and_curves_without_matplotlib_fail_in_one_line(tmp_path, capsys, monkeypatch) -> None:
    _hide(monkeypatch, "matplotlib")
    code, _, err = run_cli(["diagnose", SAMPLE, "--map", tmp_path / "maps"], capsys, monkeypatch)
    assert (code, err) == (1, "error: reiqa diagnose --map needs matplotlib: pip install 'reiqa[plots]'\n")
    assert not (tmp_path / "maps").exists()
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.jsonl").write_text('{"step": 1, "epoch": 0.1, "loss": 1.0}\n')
    code, _, err = run_cli(
        ["training-curve", tmp_path / "run", "-o", tmp_path / "c.png"], capsys, monkeypatch
    )
    assert (code, err) == (1, "error: drawing figures needs matplotlib: pip install 'reiqa[plots]'\n")


def test_the_modules_scoring_imports_load_no_package_of_an_extra() -> None:
    """In a fresh interpreter: the command line, scoring, diagnosing, culling, the service and the
    modules whose extras load lazily (figures, evaluation, fine-tuning's validation)."""
    modules = [
        "reiqa.cli",
        "reiqa.jobs",
        "reiqa.inference",
        "reiqa.diagnose.run",
        "reiqa.diagnose.maps",
        "reiqa.cull",
        "reiqa.service.server",
        "reiqa.plots",
        "reiqa.evaluate",
        "reiqa.datasets",
        "reiqa.train.finetune",
    ]
    code = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"print(json.dumps(sorted(m for m in {EXTRA_MODULES!r} if m in sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []
