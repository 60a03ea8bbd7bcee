from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.linear_model import Ridge

from reiqa.regress import QualityRegressor, RegressorError


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
