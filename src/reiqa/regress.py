"""The regressor from features to quality: standardisation + ridge (or elastic net).

The regularisation strength is chosen on a validation set, or by k-fold cross-validation on the
training set when none is given, maximising SRCC (ARNIQA's protocol; the paper tunes per
database). Saved without pickle: ``regressor.json`` (hyper-parameters, score direction and
range) + ``regressor.safetensors`` (scaler and coefficients).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from reiqa.errors import RegressorError

# 0.2-decade steps from 1e-3 to 1e5: ARNIQA's range (1e-3..1e3) is too narrow for thousands of
# standardised features on a few hundred images (the strength settles near 1e3 or above).
DEFAULT_ALPHAS = tuple(float(a) for a in np.geomspace(1e-3, 1e5, 41))
DEFAULT_L1_RATIOS = (0.1, 0.5, 0.9)
DEFAULT_PAIR_WEIGHTS = (0.0, 0.01, 0.1, 1.0, 10.0)


def srcc(a: np.ndarray, b: np.ndarray) -> float:
    from scipy import stats  # fitting only: scoring (predict) needs numpy alone

    value = stats.spearmanr(a, b).statistic
    return float(value) if np.isfinite(value) else 0.0


def ranked_ridge(
    z: np.ndarray, y: np.ndarray, dz: np.ndarray, *, alpha: float, weight: float, margin: float
) -> tuple[np.ndarray, float]:
    """Ridge with a pairwise ranking term: minimise over (w, b)

        ||z w + b - y||^2 + alpha ||w||^2 + weight * sum_j max(0, margin - dz_j . w)^2

    z: (n, D) features; y: (n,) scores; dz: (m, D) differences ``better - worse``. Convex and
    smooth; solved with L-BFGS from the plain ridge solution, on the (D, D) Gram matrix, so one
    iteration costs O(D^2 + m D) whatever n. Returns (w, b). weight=0 is plain ridge."""
    mu, y_mean = z.mean(0), float(y.mean())
    gram = z.T @ z - len(z) * np.outer(mu, mu)  # of the centred rows
    zty = z.T @ (y - y_mean)
    ridge_w = np.linalg.solve(gram + alpha * np.eye(len(gram)), zty)
    if weight == 0:
        return ridge_w, y_mean - float(mu @ ridge_w)

    def objective(w: np.ndarray) -> tuple[float, np.ndarray]:
        gw = gram @ w
        hinge = np.maximum(0.0, margin - dz @ w)
        value = w @ gw - 2 * w @ zty + alpha * w @ w + weight * hinge @ hinge
        grad = 2 * gw - 2 * zty + 2 * alpha * w - 2 * weight * (dz.T @ hinge)
        return float(value), grad

    from scipy import optimize

    result = optimize.minimize(objective, ridge_w, jac=True, method="L-BFGS-B", options={"maxiter": 1000})
    if not result.success:
        warnings.warn(f"ranked_ridge: L-BFGS stopped early ({result.message})", UserWarning, stacklevel=2)
    return result.x, y_mean - float(mu @ result.x)


@dataclass
class QualityRegressor:
    """Standardise features, then a linear model; sklearn-style ``fit`` / ``predict``.

    Args:
        method: 'ridge' or 'elasticnet'.
        alphas: candidate regularisation strengths.
        l1_ratios: candidate L1 ratios (elastic net only).
        folds: k for cross-validation when ``fit`` gets no validation set.
        seed: for the fold assignment.
    """

    method: str = "ridge"
    alphas: tuple[float, ...] = DEFAULT_ALPHAS
    l1_ratios: tuple[float, ...] = DEFAULT_L1_RATIOS
    folds: int = 5
    seed: int = 0
    # ranking constraints (``fit(..., pairs=...)``): candidate weights of the pairwise term and
    # the margin, in standard deviations of the training scores
    pair_weights: tuple[float, ...] = DEFAULT_PAIR_WEIGHTS
    margin: float = 0.05
    # fitted
    alpha_: float | None = None
    l1_ratio_: float | None = None
    mean_: np.ndarray | None = None
    scale_: np.ndarray | None = None
    coef_: np.ndarray | None = None
    intercept_: float | None = None
    pair_weight_: float = 0.0
    selection_: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.method not in ("ridge", "elasticnet"):
            raise RegressorError(f"method must be 'ridge' or 'elasticnet', got {self.method!r}")
        if not self.alphas or min(self.alphas) <= 0:
            raise RegressorError("alphas must be a non-empty list of positive numbers")
        if not self.pair_weights or min(self.pair_weights) < 0:
            raise RegressorError("pair_weights must be a non-empty list of numbers >= 0")
        if self.margin < 0:
            raise RegressorError(f"margin must be >= 0, got {self.margin}")

    def _scores(self, z: np.ndarray, y: np.ndarray, z_eval: np.ndarray, y_eval: np.ndarray) -> np.ndarray:
        """SRCC on the evaluation rows for every (alpha, l1_ratio) of the grid. Ridge uses one SVD
        of the training rows for all alphas (z has zero-mean columns, so the intercept is mean(y))."""
        grid = self._grid()
        if self.method == "ridge":
            u, sv, vt = np.linalg.svd(z, full_matrices=False)
            projected = z_eval @ vt.T  # (n_eval, r)
            b = u.T @ (y - y.mean())
            alphas = np.array([a for a, _ in grid])
            weights = sv[None, :] / (sv[None, :] ** 2 + alphas[:, None]) * b[None, :]  # (A, r)
            preds = weights @ projected.T + y.mean()  # (A, n_eval)
            return np.array([srcc(p, y_eval) for p in preds])
        return np.array([srcc(self._model(a, r).fit(z, y).predict(z_eval), y_eval) for a, r in grid])

    def _model(self, alpha: float, l1_ratio: float | None):
        from sklearn.linear_model import ElasticNet, Ridge

        if self.method == "ridge":
            return Ridge(alpha=alpha)
        return ElasticNet(alpha=alpha, l1_ratio=l1_ratio, max_iter=5000)

    def _grid(self) -> list[tuple[float, float | None]]:
        ratios = self.l1_ratios if self.method == "elasticnet" else (None,)
        return [(a, r) for a in self.alphas for r in ratios]

    @staticmethod
    def _check(x: np.ndarray, y: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64).ravel()
        if x.ndim != 2 or len(x) != len(y):
            raise RegressorError(
                f"{what}: features must be (n, D) with one score per row, got {x.shape}, {y.shape}"
            )
        if len(y) < 3:
            raise RegressorError(f"{what}: {len(y)} samples are too few to fit a regressor (need >= 3)")
        if not np.isfinite(x).all() or not np.isfinite(y).all():
            raise RegressorError(f"{what}: features or scores contain NaN or infinity")
        return x, y

    def fit(
        self,
        x: np.ndarray,
        y: np.ndarray,
        x_val: np.ndarray | None = None,
        y_val: np.ndarray | None = None,
        *,
        pairs: np.ndarray | None = None,
    ) -> QualityRegressor:
        """Fit on (n, D) features and (n,) scores; the strength is chosen on the validation set when
        given, else by k-fold cross-validation, maximising SRCC.

        ``pairs`` (ridge only): (m, D) feature differences ``better - worse`` of image pairs whose
        order is known (``reiqa.ranking.degradation_pairs``: a photo above its distorted copies). A
        squared-hinge term then asks for ``score(better) - score(worse) >= margin * std(y)`` on every
        pair; its weight, from ``pair_weights``, is chosen by k-fold cross-validation over the
        training rows and the pairs (the pairs in contiguous blocks, so that the links of one photo,
        which ``degradation_pairs`` returns together, stay on one side), by held-out SRCC plus the
        held-out share of pairs ordered right; ``at_grid_edge`` says when the largest weight won.
        """
        x, y = self._check(x, y, "training set")
        mean, scale = x.mean(0), x.std(0)
        scale[scale == 0] = 1.0
        z = (x - mean) / scale
        dz = self._check_pairs(pairs, x.shape[1], scale)
        grid = self._grid()
        if x_val is not None and y_val is not None:
            xv, yv = self._check(x_val, y_val, "validation set")
            scores = self._scores(z, y, (xv - mean) / scale, yv)
            how = "validation set"
        else:
            folds = min(self.folds, len(y))
            if folds < 2:
                raise RegressorError("need a validation set or at least 2 samples for cross-validation")
            from sklearn.model_selection import KFold

            splits = KFold(folds, shuffle=True, random_state=self.seed).split(z)
            scores = np.mean([self._scores(z[tr], y[tr], z[te], y[te]) for tr, te in splits], axis=0)
            how = f"{folds}-fold cross-validation"
        best = int(np.argmax(scores))
        self.alpha_, self.l1_ratio_ = grid[best]
        self.mean_, self.scale_ = mean, scale
        self.selection_ = {
            "by": how,
            "srcc": float(scores[best]),
            "alpha": self.alpha_,
            "l1_ratio": self.l1_ratio_,
            # the best strength is the grid's end: a wider grid might do better
            "at_grid_edge": self.alpha_ in (min(self.alphas), max(self.alphas)),
        }
        if dz is None:
            final = self._model(self.alpha_, self.l1_ratio_).fit(z, y)
            self.coef_, self.intercept_ = np.asarray(final.coef_, dtype=np.float64), float(final.intercept_)
            self.pair_weight_ = 0.0
            return self
        margin = self.margin * float(y.std())
        self.pair_weight_, self.selection_["pairs"] = self._choose_pair_weight(z, y, dz, margin)
        self.coef_, self.intercept_ = ranked_ridge(
            z, y, dz, alpha=self.alpha_, weight=self.pair_weight_, margin=margin
        )
        return self

    def _check_pairs(self, pairs: np.ndarray | None, width: int, scale: np.ndarray) -> np.ndarray | None:
        if pairs is None:
            return None
        if self.method != "ridge":
            raise RegressorError("ranking pairs work with method='ridge' only")
        pairs = np.asarray(pairs, dtype=np.float64)
        if pairs.ndim != 2 or pairs.shape[1] != width or not len(pairs):
            raise RegressorError(f"pairs must be (m, {width}) feature differences, got {pairs.shape}")
        if not np.isfinite(pairs).all():
            raise RegressorError("pairs contain NaN or infinity")
        return pairs / scale

    def _choose_pair_weight(
        self, z: np.ndarray, y: np.ndarray, dz: np.ndarray, margin: float
    ) -> tuple[float, dict]:
        """The pair weight with the best held-out SRCC + share of held-out pairs ordered right."""
        folds = min(self.folds, len(y), len(dz))
        if folds < 2:
            raise RegressorError(f"need at least 2 pairs to choose the pair weight, got {len(dz)}")
        from sklearn.model_selection import KFold

        row_folds = list(KFold(folds, shuffle=True, random_state=self.seed).split(z))
        pair_folds = list(KFold(folds).split(dz))  # contiguous blocks: one photo's links together
        table = {}
        for weight in self.pair_weights:
            srccs, orders = [], []
            for (tr, te), (ptr, pte) in zip(row_folds, pair_folds, strict=True):
                coef, intercept = ranked_ridge(
                    z[tr], y[tr], dz[ptr], alpha=self.alpha_, weight=weight, margin=margin
                )
                srccs.append(srcc(z[te] @ coef + intercept, y[te]))
                orders.append(float(np.mean(dz[pte] @ coef > 0)))
            table[weight] = {"srcc": float(np.mean(srccs)), "pairs_ordered": float(np.mean(orders))}
        best = max(table, key=lambda w: table[w]["srcc"] + table[w]["pairs_ordered"])
        info = {
            "by": f"{folds}-fold cross-validation over rows and pairs",
            "n_pairs": len(dz),
            "margin_std": self.margin,
            "weight": best,
            "at_grid_edge": len(table) > 1 and best == max(table),
            "grid": {str(w): v for w, v in table.items()},
        }
        return best, info

    def predict(self, x: np.ndarray) -> np.ndarray:
        if self.coef_ is None:
            raise RegressorError("the regressor is not fitted; call fit() or load one")
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.coef_):
            raise RegressorError(
                f"features have {x.shape[-1]} columns, the regressor expects {len(self.coef_)}"
            )
        return ((x - self.mean_) / self.scale_) @ self.coef_ + self.intercept_

    # -- storage (no pickle) ---------------------------------------------------------------

    def save(self, directory: str | Path) -> Path:
        from safetensors.numpy import save_file

        if self.coef_ is None:
            raise RegressorError("nothing to save: the regressor is not fitted")
        # json.dumps writes NaN as a bare NaN that json.loads reads back: refuse it here
        values = (self.mean_, self.scale_, self.coef_, [self.intercept_])
        if not all(np.isfinite(np.asarray(v, dtype=np.float64)).all() for v in values):
            raise RegressorError("nothing to save: the fitted coefficients contain NaN or infinity")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / ".regressor.safetensors.tmp"
        save_file({"mean": self.mean_, "scale": self.scale_, "coef": self.coef_}, str(tmp))
        tmp.replace(directory / "regressor.safetensors")
        meta = {
            "format": "reiqa-regressor-1",
            "method": self.method,
            "alpha": self.alpha_,
            "l1_ratio": self.l1_ratio_,
            "intercept": self.intercept_,
            "pair_weight": self.pair_weight_,
            "margin": self.margin,
            "selection": self.selection_,
            "info": self.info,
        }
        tmp = directory / ".regressor.json.tmp"
        tmp.write_text(json.dumps(meta, indent=2), encoding="utf-8")
        tmp.replace(directory / "regressor.json")
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> QualityRegressor:
        """Read ``regressor.json`` + ``regressor.safetensors``. Every field is checked: a missing,
        wrong-typed or non-finite value is a RegressorError naming the file and the field."""
        directory = Path(directory)
        meta_path, weights_path = directory / "regressor.json", directory / "regressor.safetensors"
        if not meta_path.is_file() or not weights_path.is_file():
            raise FileNotFoundError(f"{directory}: needs regressor.json and regressor.safetensors")
        meta = _read_meta(meta_path)
        mean, scale, coef = _read_arrays(weights_path)
        reg = cls(method=meta["method"])
        reg.alpha_, reg.l1_ratio_, reg.intercept_ = meta["alpha"], meta["l1_ratio"], meta["intercept"]
        reg.mean_, reg.scale_, reg.coef_ = mean, scale, coef
        reg.selection_, reg.info = meta["selection"], meta["info"]
        reg.pair_weight_, reg.margin = meta["pair_weight"], meta["margin"]
        return reg


_MISSING = object()


def _meta_number(
    meta: dict,
    key: str,
    path: Path,
    *,
    default: object = _MISSING,
    nullable: bool = False,
    low: float = -np.inf,
) -> float | None:
    """``meta[key]`` as a finite float >= ``low`` (or None when ``nullable``)."""
    value = meta.get(key, default)
    if value is _MISSING:
        raise RegressorError(f"{path}: {key} is missing")
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value) or value < low:
        wanted = "a finite number" + (f" >= {low:g}" if np.isfinite(low) else "") + (" or null" * nullable)
        raise RegressorError(f"{path}: {key} must be {wanted}, got {value!r}")
    return float(value)


def _read_meta(path: Path) -> dict:
    """The checked fields of a ``regressor.json``."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RegressorError(f"{path}: cannot read the regressor description ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != "reiqa-regressor-1":
        raise RegressorError(f"{path}: not a reiqa regressor (format 'reiqa-regressor-1' expected)")
    if meta.get("method") not in ("ridge", "elasticnet"):
        raise RegressorError(f"{path}: method must be 'ridge' or 'elasticnet', got {meta.get('method')!r}")
    checked = {
        "method": meta["method"],
        "alpha": _meta_number(meta, "alpha", path, nullable=True, low=0.0),
        "l1_ratio": _meta_number(meta, "l1_ratio", path, default=None, nullable=True, low=0.0),
        "intercept": _meta_number(meta, "intercept", path),
        "pair_weight": _meta_number(meta, "pair_weight", path, default=0.0, low=0.0),
        "margin": _meta_number(meta, "margin", path, default=0.05, low=0.0),
    }
    for key in ("selection", "info"):
        value = meta.get(key, {})
        if not isinstance(value, dict):
            raise RegressorError(f"{path}: {key} must be an object, got {type(value).__name__}")
        checked[key] = value
    return checked


def _read_arrays(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, scale, coef) of a ``regressor.safetensors``: 1-D, one length, finite, scale > 0."""
    from safetensors.numpy import load_file

    try:
        arrays = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for torn files
        raise RegressorError(f"{path}: unreadable safetensors file ({exc})") from exc
    out = []
    for key in ("mean", "scale", "coef"):
        if key not in arrays:
            raise RegressorError(f"{path}: the tensor {key!r} is missing (has {sorted(arrays)})")
        value = arrays[key]
        if value.ndim != 1 or not len(value) or not np.issubdtype(value.dtype, np.floating):
            raise RegressorError(
                f"{path}: {key} must be a non-empty 1-D float array, got {value.dtype} {value.shape}"
            )
        if not np.isfinite(value).all():
            raise RegressorError(f"{path}: {key} contains NaN or infinity")
        out.append(value.astype(np.float64))
    mean, scale, coef = out
    if not len(mean) == len(scale) == len(coef):
        raise RegressorError(
            f"{path}: mean, scale and coef must have one length, got {len(mean)}, {len(scale)}, {len(coef)}"
        )
    if (scale <= 0).any():
        raise RegressorError(f"{path}: scale must be > 0 (it divides the features)")
    return mean, scale, coef


def fit_databases(
    parts: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    pairs: np.ndarray | None = None,
    regressor: QualityRegressor | None = None,
) -> QualityRegressor:
    """One regressor on several databases whose scores have other scales and raters.

    parts: (features (n_i, D), scores (n_i,)) per database, each higher-is-better. Each database's
    scores are standardised (z-scores) so that none dominates by its scale; the regressor
    (``QualityRegressor()`` unless given) is fitted on all rows (and ``pairs``), then rescaled to
    predict on the first database's scale (its mean and standard deviation)."""
    if not parts:
        raise RegressorError("fit_databases needs at least one (features, scores) part")
    ys = [np.asarray(y, dtype=np.float64) for _, y in parts]
    if any(len(y) < 3 or y.std() == 0 for y in ys):
        raise RegressorError("every database needs at least 3 scores that are not all equal")
    x = np.concatenate([np.asarray(f, dtype=np.float64) for f, _ in parts])
    z = np.concatenate([(y - y.mean()) / y.std() for y in ys])
    reg = (regressor or QualityRegressor()).fit(x, z, pairs=pairs)
    mean, std = float(ys[0].mean()), float(ys[0].std())
    reg.coef_ = reg.coef_ * std
    reg.intercept_ = reg.intercept_ * std + mean
    reg.selection_["scale"] = {"standardised_per_database": [len(y) for y in ys], "mean": mean, "std": std}
    return reg
