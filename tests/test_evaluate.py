from __future__ import annotations

import numpy as np
import pytest

from reiqa.evaluate import (
    EvaluationError,
    evaluate,
    load_splits,
    make_splits,
    metrics,
    official_split,
    save_splits,
    write_report,
)


def test_splits_are_disjoint_cover_everything_and_follow_the_fractions() -> None:
    splits = make_splits(200, n_splits=10, seed=1)
    assert len(splits) == 10
    for s in splits:
        allidx = np.concatenate([s.train, s.val, s.test])
        assert sorted(allidx.tolist()) == list(range(200))
        assert (len(s.train), len(s.val), len(s.test)) == (140, 20, 40)
    assert not np.array_equal(splits[0].test, splits[1].test)
    assert np.array_equal(make_splits(200, seed=1)[0].test, splits[0].test)


def test_content_separated_splits_keep_each_reference_in_one_part() -> None:
    groups = [f"ref{i // 5}" for i in range(100)]
    for s in make_splits(100, groups=groups, seed=0):
        parts = [{groups[i] for i in idx} for idx in (s.train, s.val, s.test)]
        assert not (parts[0] & parts[2]) and not (parts[0] & parts[1]) and not (parts[1] & parts[2])


def test_official_split_and_saved_splits(tmp_path) -> None:
    s = official_split(["train", "test", "val", "train"])
    assert s.train.tolist() == [0, 3] and s.val.tolist() == [2] and s.test.tolist() == [1]
    keys = [f"img{i}.jpg" for i in range(30)]
    splits = make_splits(30, n_splits=2)
    save_splits(splits, tmp_path / "s.json", keys=keys)
    again = load_splits(tmp_path / "s.json", keys=list(reversed(keys)))
    assert [keys[::-1][i] for i in again[0].test] == [keys[i] for i in splits[0].test]
    with pytest.raises(EvaluationError, match="not in the features"):
        load_splits(tmp_path / "s.json", keys=keys[:10])


def test_metrics() -> None:
    x = np.linspace(-3, 3, 50)
    mos = 1 / (1 + np.exp(-2 * x)) * 100
    m = metrics(x, mos)
    assert m["srcc"] == pytest.approx(1.0) and m["krcc"] == pytest.approx(1.0)
    assert m["plcc_logistic"] > m["plcc"] and m["plcc_logistic"] > 0.999
    assert m["rmse_logistic"] < m["rmse"]


def test_protocol_on_synthetic_features_and_report(tmp_path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(150, 20))
    mos = x[:, 0] * 10 + 50 + rng.normal(size=150)
    result = evaluate(x, mos, make_splits(150, n_splits=3), name="toy", distortion=["a", "b", "c"] * 50)
    summary = result.summary()
    assert summary["srcc"]["median"] > 0.9 and set(result.per_type) == {"a", "b", "c"}
    dmos = -mos  # a DMOS-like score: lower is better
    flipped = evaluate(x, dmos, make_splits(150, n_splits=3), higher_is_better=False)
    assert flipped.summary()["srcc"]["median"] > 0.9
    report = write_report([result], tmp_path, title="Toy", protocol="3 splits")
    assert "| toy |" in report.read_text() and (tmp_path / "scatter-toy.png").is_file()
    assert (tmp_path / "per-type-toy.png").is_file() and (tmp_path / "report.json").is_file()


def test_split_keys_are_database_relative_never_machine_paths(tmp_path) -> None:
    from reiqa.datasets.base import LabelTable
    from reiqa.evaluate import split_keys

    root = tmp_path / "db"
    paths = [root / "images" / "1.jpg", root / "images" / "sub" / "2.jpg", tmp_path / "elsewhere" / "3.jpg"]
    labels = LabelTable("toy", root, paths, np.array([1.0, 2.0, 3.0]), None, None, None, None, True, (0, 5))
    assert split_keys(labels) == ["images/1.jpg", "images/sub/2.jpg", "../elsewhere/3.jpg"]
