"""The regressor from features to quality: standardisation + ridge (or elastic net).

The regularisation strength is chosen on a validation set, or by k-fold cross-validation on the
training set when none is given, maximising SRCC (ARNIQA's protocol; the paper tunes per
database). Saved without pickle: ``regressor.json`` (hyper-parameters, score direction and
range) + ``regressor.safetensors`` (scaler and coefficients). The records of a fit are typed:
``QualityRegressor.selection_`` is a :class:`Selection` (how the strength and the pair weight were
chosen), ``QualityRegressor.info`` a :class:`FitInfo` (what it was fitted on); keys of a file
beyond their fields are kept in their ``extra`` and written back.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from reiqa import schema
from reiqa.atomic import atomic_path, write_json_atomic
from reiqa.errors import ConfigError, RegressorError
from reiqa.extras import require

# 0.2-decade steps from 1e-3 to 1e5: ARNIQA's range (1e-3..1e3) is too narrow for thousands of
# standardised features on a few hundred images (the strength settles near 1e3 or above).
DEFAULT_ALPHAS = tuple(float(a) for a in np.geomspace(1e-3, 1e5, 41))
DEFAULT_L1_RATIOS = (0.1, 0.5, 0.9)
DEFAULT_PAIR_WEIGHTS = (0.0, 0.01, 0.1, 1.0, 10.0)
FORMAT = "reiqa-regressor-1"
#: what needs the train extra here (predicting needs numpy alone)
FITTING = "fitting a regressor"


@dataclass(frozen=True)
class PairSelection:
    """How the weight of the ranking term was chosen (``fit(..., pairs=...)``).

    Attributes:
        by: the protocol, e.g. '5-fold cross-validation over rows and pairs'.
        n_pairs: how many pairs the fit had.
        margin_std: the margin, in standard deviations of the training scores.
        weight: the chosen weight.
        at_grid_edge: the largest candidate weight won (a larger one might do better).
        grid: per candidate weight (as a string): {'srcc', 'pairs_ordered'} held out.
        extra: other keys of the file, kept and written back.
    """

    by: str
    n_pairs: int
    margin_std: float
    weight: float
    at_grid_edge: bool = False
    grid: dict[str, dict[str, float]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Selection:
    """How the regularisation strength was chosen.

    Attributes:
        by: the protocol: 'validation set' or 'k-fold cross-validation'.
        srcc: the SRCC of the chosen strength under that protocol.
        alpha, l1_ratio: the chosen strength (and L1 ratio, elastic net only).
        at_grid_edge: the chosen strength is an end of the grid (a wider grid might do better).
        pairs: how the ranking term's weight was chosen, when the fit had pairs.
        extra: other keys of the file (``fit_databases`` writes 'scale'), kept and written back.
    """

    by: str
    srcc: float
    alpha: float | None
    l1_ratio: float | None = None
    at_grid_edge: bool = False
    pairs: PairSelection | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object ``regressor.json`` holds (no 'pairs' when there were none)."""
        out = schema.to_dict(self)
        if self.pairs is None:
            del out["pairs"]
        return out


@dataclass(frozen=True)
class FileRef:
    """A file a regressor was fitted from: its name (never its folder) and SHA-256."""

    file: str
    sha256: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # keys of other versions, kept


@dataclass(frozen=True)
class FitInfo:
    """What a regressor was fitted on (``reiqa fit`` fills every field).

    Attributes:
        model_id: the feature ``model_id`` (encoder weights and feature options).
        blocks: [(block name, width)] of the features, in order.
        features, scores: the feature and score files; a plain string is the path an older
            version recorded (read and written back as it is).
        n: how many images.
        higher_is_better: the direction of the predicted scores.
        score_range: (lowest, highest) training score.
        source_direction_flipped: the source scores were lower-is-better and were negated.
        extra: other keys of the file (the default model's 'databases', 'pairs', 'scale'), kept
            and written back.
    """

    model_id: str | None = None
    blocks: tuple[tuple[str, int], ...] | None = None
    features: FileRef | str | None = None
    scores: FileRef | str | None = None
    n: int | None = None
    higher_is_better: bool = True
    score_range: tuple[float, float] | None = None
    source_direction_flipped: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object ``regressor.json`` holds (fields that are None left out)."""
        return schema.to_dict(self, omit_none=True)


def srcc(a: np.ndarray, b: np.ndarray) -> float:
    stats = require("scipy.stats", "train", FITTING)  # fitting only: scoring (predict) needs numpy alone
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

    optimize = require("scipy.optimize", "train", FITTING)
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
    selection_: Selection | None = None
    info: FitInfo = field(default_factory=FitInfo)

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
        linear_model = require("sklearn.linear_model", "train", FITTING)
        if self.method == "ridge":
            return linear_model.Ridge(alpha=alpha)
        return linear_model.ElasticNet(alpha=alpha, l1_ratio=l1_ratio, max_iter=5000)

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
            kfold = require("sklearn.model_selection", "train", FITTING).KFold
            splits = kfold(folds, shuffle=True, random_state=self.seed).split(z)
            scores = np.mean([self._scores(z[tr], y[tr], z[te], y[te]) for tr, te in splits], axis=0)
            how = f"{folds}-fold cross-validation"
        best = int(np.argmax(scores))
        self.alpha_, self.l1_ratio_ = grid[best]
        self.mean_, self.scale_ = mean, scale
        self.selection_ = Selection(
            by=how,
            srcc=float(scores[best]),
            alpha=self.alpha_,
            l1_ratio=self.l1_ratio_,
            # the best strength is the grid's end: a wider grid might do better
            at_grid_edge=self.alpha_ in (min(self.alphas), max(self.alphas)),
        )
        if dz is None:
            final = self._model(self.alpha_, self.l1_ratio_).fit(z, y)
            self.coef_, self.intercept_ = np.asarray(final.coef_, dtype=np.float64), float(final.intercept_)
            self.pair_weight_ = 0.0
            return self
        margin = self.margin * float(y.std())
        self.pair_weight_, pairs_selection = self._choose_pair_weight(z, y, dz, margin)
        self.selection_ = dataclasses.replace(self.selection_, pairs=pairs_selection)
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
    ) -> tuple[float, PairSelection]:
        """The pair weight with the best held-out SRCC + share of held-out pairs ordered right; a
        single candidate is taken as given (no cross-validation)."""
        if len(self.pair_weights) == 1:
            weight = float(self.pair_weights[0])
            return weight, PairSelection(by="given", n_pairs=len(dz), margin_std=self.margin, weight=weight)
        folds = min(self.folds, len(y), len(dz))
        if folds < 2:
            raise RegressorError(f"need at least 2 pairs to choose the pair weight, got {len(dz)}")
        kfold = require("sklearn.model_selection", "train", FITTING).KFold
        row_folds = list(kfold(folds, shuffle=True, random_state=self.seed).split(z))
        pair_folds = list(kfold(folds).split(dz))  # contiguous blocks: one photo's links together
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
        chosen = PairSelection(
            by=f"{folds}-fold cross-validation over rows and pairs",
            n_pairs=len(dz),
            margin_std=self.margin,
            weight=best,
            at_grid_edge=len(table) > 1 and best == max(table),
            grid={str(w): v for w, v in table.items()},
        )
        return best, chosen

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
        if not isinstance(self.info, FitInfo) or not isinstance(self.selection_, Selection | None):
            raise RegressorError(
                "nothing to save: info must be a FitInfo and selection_ a Selection or None, got "
                f"{type(self.info).__name__} and {type(self.selection_).__name__}"
            )
        directory = Path(directory)
        meta = {
            "format": FORMAT,
            "method": self.method,
            "alpha": self.alpha_,
            "l1_ratio": self.l1_ratio_,
            "intercept": self.intercept_,
            "pair_weight": self.pair_weight_,
            "margin": self.margin,
            "selection": self.selection_.to_dict() if self.selection_ is not None else {},
            "info": self.info.to_dict(),
        }
        _described(meta, directory / "regressor.json")  # what is written must read back
        with atomic_path(directory / "regressor.safetensors") as tmp:
            save_file({"mean": self.mean_, "scale": self.scale_, "coef": self.coef_}, str(tmp))
        write_json_atomic(directory / "regressor.json", meta)
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
        reg = cls(method=meta.method, margin=meta.margin)
        reg.alpha_, reg.l1_ratio_, reg.intercept_ = meta.alpha, meta.l1_ratio, meta.intercept
        reg.mean_, reg.scale_, reg.coef_ = mean, scale, coef
        reg.selection_, reg.info = meta.selection, meta.info
        reg.pair_weight_ = meta.pair_weight
        return reg


@dataclass(frozen=True)
class _Described:
    """The fields of a ``regressor.json`` (keys of other versions land in ``extra``, ignored)."""

    format: str
    method: Literal["ridge", "elasticnet"]
    alpha: float | None
    intercept: float
    l1_ratio: float | None = None
    pair_weight: float = 0.0
    margin: float = 0.05
    selection: Selection | None = None
    info: FitInfo = field(default_factory=FitInfo)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("alpha", "l1_ratio", "pair_weight", "margin"):
            value, nullable = getattr(self, name), name in ("alpha", "l1_ratio")
            if value is not None and value < 0:
                wanted = "a finite number >= 0" + " or null" * nullable
                raise RegressorError(f"{name} must be {wanted}, got {value!r}")


def _described(meta: object, path: Path) -> _Described:
    """The checked fields of a ``regressor.json``'s object; RegressorError naming ``path`` and the
    field."""
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise RegressorError(f"{path}: not a reiqa regressor (format {FORMAT!r} expected)")
    if meta.get("selection") == {}:  # not fitted by ``fit`` (coefficients set by hand)
        meta = {**meta, "selection": None}
    try:
        return schema.from_dict(_Described, meta, error=RegressorError)
    except (RegressorError, ConfigError) as exc:
        raise RegressorError(f"{path}: {exc}") from exc


def _read_meta(path: Path) -> _Described:
    """The checked fields of a ``regressor.json``."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RegressorError(f"{path}: cannot read the regressor description ({exc})") from exc
    return _described(meta, path)


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
    scale = {"standardised_per_database": [len(y) for y in ys], "mean": mean, "std": std}
    reg.selection_ = dataclasses.replace(reg.selection_, extra={**reg.selection_.extra, "scale": scale})
    return reg
