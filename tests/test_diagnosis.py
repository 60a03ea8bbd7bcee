"""The diagnosis head: what it predicts, and its files (JSON + safetensors, no pickle)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from reiqa.diagnose.fit import TrainingSet, fit_head
from reiqa.diagnosis import FILES, DiagnosisHead, has_head
from reiqa.distortions.issues import ISSUES
from reiqa.errors import ModelError

LAYOUT = (("quality_full", 12), ("quality_half", 12), ("content_full", 5))


def _separable(n_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows of the 8 issues around their own centres (the content block is noise) and a severity
    that is a linear function of one column: (features (n, 29), issue, severity, photo)."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).normal(0, 3, size=(len(ISSUES), 24))
    issue = np.repeat(np.arange(len(ISSUES)), n_per_class)
    features = np.c_[centres[issue] + rng.normal(0, 1, (len(issue), 24)), rng.normal(0, 5, (len(issue), 5))]
    severity = rng.uniform(0, 1, len(issue))
    features[:, 23] = 4 * severity + rng.normal(0, 0.05, len(issue))
    photo = np.arange(len(issue)) % 6
    return features.astype(np.float32), issue, severity.astype(np.float32), photo


def _training_set(n_per_class: int = 30, seed: int = 0) -> TrainingSet:
    features, issue, severity, photo = _separable(n_per_class, seed)
    return TrainingSet(
        features=features[:, :24],  # the quality blocks' columns
        blocks=LAYOUT[:2],
        layout=LAYOUT,
        issue=issue,
        severity=severity,
        photo=photo,
        type_id=np.ones(len(issue), dtype=np.int64),
        level=np.zeros(len(issue), dtype=np.int64),
        paths=[f"photo{i}.png" for i in range(6)],
    )


@pytest.fixture(scope="module")
def head() -> DiagnosisHead:
    return fit_head(_training_set(), alphas=(0.01, 0.1, 1.0, 10.0))  # 30 rows per issue: weak ridges


def test_a_head_fitted_on_separable_features_predicts_them(head: DiagnosisHead) -> None:
    features, issue, severity, _ = _separable(20, seed=1)  # new rows, same centres
    probabilities, predicted_severity = head.predict(features)
    assert head.classes == ISSUES and head.blocks == ("quality_full", "quality_half")
    assert np.mean(probabilities.argmax(1) == issue) > 0.95
    assert np.mean(np.abs(predicted_severity - severity)) < 0.05
    assert head.fit.validation["balanced_accuracy"] > 0.9  # measured on held-out photos
    assert (
        head.fit.validation["photos"] == 1
        and str(head.fit.C) in head.fit.validation["balanced_accuracy_by_C"]
    )


def test_probabilities_sum_to_one_and_severity_stays_in_0_1(head: DiagnosisHead) -> None:
    rng = np.random.default_rng(3)
    wild = np.r_[rng.normal(0, 1e4, (5, 29)), np.zeros((1, 29)), np.full((1, 29), -1e6)]
    probabilities, severity = head.predict(wild)
    assert np.all(np.isfinite(probabilities)) and np.allclose(probabilities.sum(1), 1.0)
    assert np.all((severity >= 0) & (severity <= 1)) and {0.0, 1.0} <= set(severity.round(6))


def test_the_head_reads_only_its_blocks(head: DiagnosisHead) -> None:
    features, *_ = _separable(2, seed=4)
    other = features.copy()
    other[:, 24:] = 1e3  # the content block, which this head does not read
    assert np.array_equal(head.predict(features)[0], head.predict(other)[0])
    with pytest.raises(ModelError, match="rows of 29 features"):
        head.predict(features[:, :24])


def test_save_and_load_give_the_same_numbers(head: DiagnosisHead, tmp_path) -> None:
    assert not has_head(tmp_path)
    head.save(tmp_path)
    assert has_head(tmp_path) and sorted(p.name for p in tmp_path.iterdir()) == sorted(FILES)
    loaded = DiagnosisHead.load(tmp_path)
    features, *_ = _separable(3, seed=5)
    for a, b in zip(head.predict(features), loaded.predict(features), strict=True):
        assert np.array_equal(a, b)
    assert loaded.fit == head.fit and loaded.layout == LAYOUT and loaded.classes == head.classes
    meta = json.loads((tmp_path / "diagnosis.json").read_text())
    assert meta["format"] == "reiqa-diagnosis-1" and meta["blocks"] == ["quality_full", "quality_half"]


def test_broken_files_are_errors_that_name_them(head: DiagnosisHead, tmp_path) -> None:
    head.save(tmp_path)
    (tmp_path / "diagnosis.safetensors").unlink()
    with pytest.raises(ModelError, match=r"diagnosis\.safetensors: missing"):
        DiagnosisHead.load(tmp_path)
    head.save(tmp_path)
    (tmp_path / "diagnosis.safetensors").write_bytes(b"torn")
    with pytest.raises(ModelError, match=r"diagnosis\.safetensors: unreadable"):
        DiagnosisHead.load(tmp_path)
    head.save(tmp_path)
    meta = json.loads((tmp_path / "diagnosis.json").read_text())
    meta["classes"] = meta["classes"][:3]
    (tmp_path / "diagnosis.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match=r"diagnosis\.safetensors: coef must have shape \(3, 24\)"):
        DiagnosisHead.load(tmp_path)


def test_two_issues_take_sklearns_binary_form() -> None:
    train = _training_set()
    keep = train.issue < 2
    for name in ("features", "issue", "severity", "photo", "type_id", "level"):
        setattr(train, name, getattr(train, name)[keep])
    head = fit_head(train, cs=(1.0,), alphas=(1.0,), none_shifts=(0.0,))
    assert head.classes == ISSUES[:2] and head.coef.shape == (2, 24) and head.fit.validation == {}
    probabilities, _ = head.predict(_separable(10, seed=6)[0][:20])  # issue 0 rows, then issue 1
    assert np.mean(probabilities.argmax(1) == np.repeat([0, 1], 10)) > 0.9
