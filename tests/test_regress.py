from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from sklearn.linear_model import Ridge

from reiqa.regress import (
    DEFAULT_ALPHAS,
    FileRef,
    FitInfo,
    PairSelection,
    QualityRegressor,
    RegressorError,
    Selection,
)


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 40))
    y = x[:, :5].sum(1) + 0.5 * rng.normal(size=120)
    return x, y


def test_alpha_on_validation_matches_a_brute_force_search(data) -> None:
    x, y = data
    reg = QualityRegressor().fit(x[:80], y[:80], x[80:100], y[80:100])
    mean, scale = x[:80].mean(0), x[:80].std(0)
    best = max(
        reg.alphas,
        key=lambda a: (
            stats.spearmanr(
                Ridge(alpha=a).fit((x[:80] - mean) / scale, y[:80]).predict((x[80:100] - mean) / scale),
                y[80:100],
            ).statistic
        ),
    )
    assert reg.alpha_ == pytest.approx(best)
    assert stats.spearmanr(reg.predict(x[100:]), y[100:]).statistic > 0.8


def test_cross_validation_and_elastic_net_work(data) -> None:
    x, y = data
    assert "cross-validation" in QualityRegressor().fit(x, y).selection_.by
    net = QualityRegressor(method="elasticnet", alphas=(0.01, 0.1), l1_ratios=(0.5,)).fit(x[:100], y[:100])
    assert stats.spearmanr(net.predict(x[100:]), y[100:]).statistic > 0.8


def test_save_and_load_without_pickle(data, tmp_path) -> None:
    x, y = data
    reg = QualityRegressor().fit(x, y)
    reg.save(tmp_path / "reg")
    assert sorted(p.name for p in (tmp_path / "reg").iterdir()) == ["regressor.json", "regressor.safetensors"]
    np.testing.assert_allclose(QualityRegressor.load(tmp_path / "reg").predict(x), reg.predict(x))


def test_bad_inputs(data) -> None:
    x, y = data
    with pytest.raises(RegressorError, match="too few"):
        QualityRegressor().fit(x[:2], y[:2])
    y_nan = y.copy()
    y_nan[3] = np.nan
    with pytest.raises(RegressorError, match="NaN"):
        QualityRegressor().fit(x, y_nan)
    with pytest.raises(RegressorError, match="not fitted"):
        QualityRegressor().predict(x)
    with pytest.raises(RegressorError, match="columns"):
        QualityRegressor().fit(x, y).predict(x[:, :3])
    with pytest.raises(RegressorError, match="method"):
        QualityRegressor(method="svr")


def test_a_strength_at_the_end_of_the_grid_is_flagged() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 60))
    x[:, 1:] += x[:, :1]  # correlated features, half of them useless, noisy scores
    w = rng.normal(size=60)
    w[:30] = 0
    y = x @ w + 3 * rng.normal(size=120)
    inside = QualityRegressor().fit(x, y)
    assert min(DEFAULT_ALPHAS) < inside.alpha_ < max(DEFAULT_ALPHAS)
    assert not inside.selection_.at_grid_edge
    narrow = QualityRegressor(alphas=(1e-3, 1e-2, 1e-1)).fit(x, y)  # all weaker than the best
    assert narrow.alpha_ == 1e-1 and narrow.selection_.at_grid_edge


def test_ranked_ridge_without_pairs_weight_is_sklearn_ridge() -> None:
    from reiqa.regress import ranked_ridge

    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(40, 6)), rng.normal(size=40)
    w, b = ranked_ridge(x, y, np.zeros((1, 6)), alpha=2.0, weight=0.0, margin=0.1)
    ref = Ridge(alpha=2.0).fit(x, y)
    np.testing.assert_allclose(w, ref.coef_, atol=1e-10)
    assert b == pytest.approx(ref.intercept_, abs=1e-10)


def test_the_ranking_term_orders_the_pairs_the_scores_alone_would_not() -> None:
    """Scores rise with feature 0, but the pairs say a higher feature 0 is worse (as noise that
    looks like detail): with enough weight the model orders every pair, at some cost in fit."""
    from reiqa.regress import ranked_ridge

    rng = np.random.default_rng(4)
    x = rng.normal(size=(200, 5))
    y = 2 * x[:, 0] + x[:, 1] + rng.normal(0, 0.1, 200)
    dz = np.zeros((30, 5))
    dz[:, 0] = -rng.uniform(0.5, 1.5, 30)  # better = less of feature 0
    plain, _ = ranked_ridge(x, y, dz, alpha=1.0, weight=0.0, margin=0.5)
    ranked, _ = ranked_ridge(x, y, dz, alpha=1.0, weight=1e4, margin=0.5)
    assert np.mean(dz @ plain > 0) == 0.0
    assert np.all(dz @ ranked > 0) and ranked[0] < 0  # a soft margin: every pair ordered
    assert np.mean(dz @ ranked >= 0.45) >= 0.9
    assert ranked[1] > 0.5 * plain[1] > 0  # the rest of the fit is kept


def test_fit_with_pairs_chooses_a_weight_and_round_trips(tmp_path) -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(120, 8))
    y = x[:, 0] + 0.5 * x[:, 2] + rng.normal(0, 0.3, 120)
    pairs = np.zeros((40, 8))
    pairs[:, 3] = -1.0  # feature 3 is noise in the scores; the pairs say less of it is better
    reg = QualityRegressor(alphas=(0.1, 1.0, 10.0), pair_weights=(0.0, 1.0, 100.0)).fit(x, y, pairs=pairs)
    info = reg.selection_.pairs
    assert reg.pair_weight_ == info.weight > 0 and set(info.grid) == {"0.0", "1.0", "100.0"}
    assert info.grid["0.0"]["pairs_ordered"] < info.grid[str(reg.pair_weight_)]["pairs_ordered"]
    assert np.mean(((pairs / reg.scale_) @ reg.coef_) > 0) == 1.0
    loaded = QualityRegressor.load(reg.save(tmp_path / "r"))
    assert loaded.pair_weight_ == reg.pair_weight_ and loaded.selection_ == reg.selection_
    np.testing.assert_allclose(loaded.predict(x), reg.predict(x))
    from reiqa.regress import ranked_ridge

    given = QualityRegressor(alphas=(0.1, 1.0, 10.0), pair_weights=(100.0,)).fit(x, y, pairs=pairs)
    assert given.selection_.pairs.by == "given" and given.selection_.pairs.grid == {}
    assert given.pair_weight_ == 100.0 and given.alpha_ == reg.alpha_  # no search, the same ridge
    z = (x - given.mean_) / given.scale_
    expected, _ = ranked_ridge(
        z, y, pairs / given.scale_, alpha=given.alpha_, weight=100.0, margin=given.margin * y.std()
    )
    np.testing.assert_allclose(given.coef_, expected)
    with pytest.raises(RegressorError, match=r"method='ridge' only"):
        QualityRegressor(method="elasticnet").fit(x, y, pairs=pairs)
    with pytest.raises(RegressorError, match=r"pairs must be \(m, 8\)"):
        QualityRegressor().fit(x, y, pairs=pairs[:, :3])


def test_two_databases_on_other_scales_are_fitted_together_on_the_first_ones_scale() -> None:
    from reiqa.regress import fit_databases

    rng = np.random.default_rng(6)
    xa, xb = rng.normal(size=(150, 6)), rng.normal(size=(150, 6))
    truth = np.array([1.0, -0.5, 0.3, 0, 0, 0])
    ya = 50 + 15 * (xa @ truth) / 1.2 + rng.normal(0, 1, 150)  # 0..100-like
    yb = 0.5 + 0.1 * (xb @ truth) / 1.2 + rng.normal(0, 0.01, 150)  # 0..1-like
    reg = fit_databases([(xa, ya), (xb, yb)])
    pred = reg.predict(xa)
    assert abs(pred.mean() - ya.mean()) < 2 and abs(pred.std() - ya.std()) < 3  # on database A's scale
    assert stats.spearmanr(reg.predict(xb), yb).statistic > 0.95
    naive = QualityRegressor().fit(np.concatenate([xa, xb]), np.concatenate([ya, yb]))
    # raw scores mixed: B's 0..1 scores look like terrible A photos, and its rows are fitted badly
    assert stats.spearmanr(naive.predict(xb), yb).statistic < stats.spearmanr(reg.predict(xb), yb).statistic
    with pytest.raises(RegressorError, match="not all equal"):
        fit_databases([(xa, np.ones(150))])


DEFAULT = Path(__file__).resolve().parents[1] / "src" / "reiqa" / "weights" / "default"


def test_the_shipped_regressor_reads_into_typed_records_and_round_trips(tmp_path) -> None:
    raw = json.loads((DEFAULT / "regressor.json").read_text(encoding="utf-8"))
    reg = QualityRegressor.load(DEFAULT)
    assert (reg.alpha_, reg.intercept_, reg.pair_weight_) == (
        raw["alpha"],
        raw["intercept"],
        raw["pair_weight"],
    )
    sel, info = reg.selection_, reg.info
    assert isinstance(sel, Selection) and isinstance(sel.pairs, PairSelection) and isinstance(info, FitInfo)
    assert (sel.by, sel.srcc, sel.at_grid_edge) == (raw["selection"]["by"], raw["selection"]["srcc"], False)
    assert sel.pairs.weight == 10.0 and sel.pairs.grid == raw["selection"]["pairs"]["grid"]
    assert sel.extra == {"scale": raw["selection"]["scale"]}  # a key beyond the fields is kept
    assert info.scores == FileRef("mos.csv", raw["info"]["scores"]["sha256"]) and info.features is None
    assert info.n == 4862 and info.score_range == (3.42, 92.432) and info.blocks[0] == ("quality_full", 1904)
    assert set(info.extra) == {"databases", "pairs", "scale"}
    reg.save(tmp_path)
    again = json.loads((tmp_path / "regressor.json").read_text(encoding="utf-8"))
    assert again["selection"] == raw["selection"]
    assert again["info"] == {**raw["info"], "source_direction_flipped": False}
    loaded = QualityRegressor.load(tmp_path)
    assert loaded.selection_ == sel and loaded.info == info
    x = np.random.default_rng(0).normal(size=(4, len(reg.coef_)))
    np.testing.assert_array_equal(loaded.predict(x), reg.predict(x))


def test_an_older_file_with_paths_and_without_newer_fields_still_reads(data, tmp_path) -> None:
    x, y = data
    QualityRegressor(alphas=(1.0,)).fit(x, y).save(tmp_path)
    path = tmp_path / "regressor.json"
    meta = json.loads(path.read_text())
    meta["selection"] = {"by": "5-fold cross-validation", "srcc": 0.5, "alpha": 1.0, "l1_ratio": None}
    meta["info"] = {"features": "/data/f.safetensors", "scores": "/data/mos.csv", "n": 120}
    path.write_text(json.dumps(meta))
    reg = QualityRegressor.load(tmp_path)
    assert reg.info.scores == "/data/mos.csv" and reg.info.features == "/data/f.safetensors"
    assert reg.selection_.at_grid_edge is False and reg.selection_.pairs is None
    reg.save(tmp_path / "again")
    assert (
        json.loads((tmp_path / "again" / "regressor.json").read_text())["info"]["scores"] == "/data/mos.csv"
    )


def test_file_records_with_keys_of_other_versions_still_read_and_keep_them(data, tmp_path) -> None:
    """An earlier default model's regressor.json had ``info.features.built_by``: it must load, and
    a key reiqa does not know is kept, in its place, when the regressor is saved again."""
    x, y = data
    QualityRegressor(alphas=(1.0,)).fit(x, y).save(tmp_path)
    path = tmp_path / "regressor.json"
    meta = json.loads(path.read_text())
    meta["info"] = {
        "features": {
            "file": "f.safetensors",
            "sha256": "ab" * 32,
            "built_by": "scripts/build_default_model.sh",
        },
        "scores": {"file": "mos.csv", "sha256": "cd" * 32},
        "zeta": 1,
        "alpha_note": "kept in the file's order",
    }
    path.write_text(json.dumps(meta))
    reg = QualityRegressor.load(tmp_path)
    assert reg.info.features.extra == {"built_by": "scripts/build_default_model.sh"}
    reg.save(tmp_path / "again")
    info = json.loads((tmp_path / "again" / "regressor.json").read_text())["info"]
    assert info["features"]["built_by"] == "scripts/build_default_model.sh"
    assert [k for k in info if k in ("zeta", "alpha_note")] == ["zeta", "alpha_note"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m["selection"].update(srcc="high"), r"selection\.srcc must be float, got 'high'"),
        (lambda m: m["selection"].pop("by"), r"selection\.by is missing"),
        (lambda m: m["selection"].update(pairs=[]), r"selection\.pairs must be an object or null"),
        (lambda m: m["info"].update(n="many"), r"info\.n must be int or null, got 'many'"),
        (lambda m: m["info"].update(score_range=[1]), r"info\.score_range must be a list of 2"),
        (lambda m: m["info"].update(scores={"file": 3}), r"info\.scores\.file must be str, got 3"),
        (lambda m: m.update(margin=-1), r"margin must be a finite number >= 0, got -1"),
        (lambda m: m.update(l1_ratio="x"), r"l1_ratio must be float or null, got 'x'"),
    ],
)
def test_a_bad_field_is_a_regressor_error_naming_the_file_and_the_field(data, tmp_path, change, message):
    x, y = data
    QualityRegressor(alphas=(1.0,)).fit(x, y).save(tmp_path)
    path = tmp_path / "regressor.json"
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta))
    with pytest.raises(RegressorError, match=message) as caught:
        QualityRegressor.load(tmp_path)
    assert str(caught.value).startswith(f"{path}: ")


def test_a_regressor_whose_records_would_not_read_back_is_not_saved(data, tmp_path) -> None:
    x, y = data
    reg = QualityRegressor(alphas=(1.0,)).fit(x, y)
    reg.info = FitInfo(score_range=(0.0, math.inf))
    with pytest.raises(RegressorError, match=r"info\.score_range\[1\] must be a finite number"):
        reg.save(tmp_path / "r")
    reg.info = {"n": 3}  # the old dict
    with pytest.raises(RegressorError, match="info must be a FitInfo"):
        reg.save(tmp_path / "r")
    assert not (tmp_path / "r").exists()
