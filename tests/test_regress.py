from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.linear_model import Ridge

from reiqa.regress import DEFAULT_ALPHAS, QualityRegressor, RegressorError


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
    assert "cross-validation" in QualityRegressor().fit(x, y).selection_["by"]
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
    assert not inside.selection_["at_grid_edge"]
    narrow = QualityRegressor(alphas=(1e-3, 1e-2, 1e-1)).fit(x, y)  # all weaker than the best
    assert narrow.alpha_ == 1e-1 and narrow.selection_["at_grid_edge"]
