"""The evaluation protocol (docs/method.md §5): random train/val/test splits (content-separated for
synthetic databases, or the official split), the regressor's strength chosen on val, metrics on
test, median and spread over splits.

Metrics: SRCC, KRCC, PLCC (raw, and after the standard 4-parameter logistic mapping fitted on the
test predictions, VQEG style), RMSE (raw and after the mapping).
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import numpy as np

from reiqa.atomic import write_json_atomic, write_text_atomic
from reiqa.errors import EvaluationError
from reiqa.extras import require
from reiqa.plots import new_figure, save_figure
from reiqa.regress import FileRef, FitInfo, QualityRegressor


@dataclass(frozen=True)
class Split:
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def make_splits(
    n: int,
    *,
    groups: Sequence[str] | None = None,
    n_splits: int = 10,
    fractions: tuple[float, float, float] = (0.7, 0.1, 0.2),
    seed: int = 0,
) -> list[Split]:
    """``n_splits`` random splits of n items. With ``groups`` (e.g. the reference image of each
    distorted image) whole groups go to one part, so no content is shared between train and test."""
    if abs(sum(fractions) - 1) > 1e-9 or min(fractions) < 0:
        raise EvaluationError(f"fractions must be >= 0 and sum to 1, got {fractions}")
    rng = np.random.default_rng(seed)
    keys = np.asarray(groups) if groups is not None else np.arange(n).astype(str)
    if len(keys) != n:
        raise EvaluationError(f"groups has {len(keys)} entries for {n} items")
    unique = np.unique(keys)
    if len(unique) < 3:
        raise EvaluationError(f"need at least 3 groups to split, got {len(unique)}")
    splits = []
    for _ in range(n_splits):
        order = rng.permutation(unique)
        n_train = max(1, round(fractions[0] * len(unique)))
        n_val = max(1, round(fractions[1] * len(unique))) if fractions[1] > 0 else 0
        parts = (order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val :])
        if len(parts[2]) == 0:
            raise EvaluationError("the test part is empty; use more items or a larger test fraction")
        train, val, test = (np.flatnonzero(np.isin(keys, p)) for p in parts)
        splits.append(Split(train, val, test))
    return splits


def official_split(labels: Sequence[str]) -> Split:
    """A database's own split from per-item 'train'/'val'/'test' labels."""
    labels = np.asarray(labels)
    return Split(*(np.flatnonzero(labels == name) for name in ("train", "val", "test")))


def split_keys(labels) -> list[str]:
    """The key of each item of a LabelTable in a splits file: its path relative to the database
    folder (``images/345.webp``, or ``../other/1.jpg`` for a file elsewhere); never a machine
    path."""
    return [
        Path(os.path.relpath(Path(p).resolve(), Path(labels.root).resolve())).as_posix() for p in labels.paths
    ]


def save_splits(splits: list[Split], path: str | Path, *, keys: Sequence[str]) -> Path:
    """Store splits by item key (see :func:`split_keys`), so they can be reused with another
    feature order."""
    keys = list(keys)
    data = [{part: [keys[i] for i in getattr(s, part)] for part in ("train", "val", "test")} for s in splits]
    path = Path(path)
    write_json_atomic(path, {"format": "reiqa-splits-1", "splits": data}, indent=None)
    return path


def load_splits(path: str | Path, *, keys: Sequence[str]) -> list[Split]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    position = {k: i for i, k in enumerate(keys)}
    out = []
    for s in data["splits"]:
        missing = [k for part in s.values() for k in part if k not in position]
        if missing:
            raise EvaluationError(
                f"{path}: {len(missing)} items of the split are not in the features, e.g. {missing[:3]}"
            )
        out.append(
            Split(*(np.array([position[k] for k in s[part]], dtype=int) for part in ("train", "val", "test")))
        )
    return out


def _scipy(name: str) -> ModuleType:
    """``scipy.<name>``, which evaluating needs (the train extra)."""
    return require(f"scipy.{name}", "train", "evaluating predictions")


def logistic4(x: np.ndarray, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    return (b1 - b2) * _scipy("special").expit((x - b3) / np.abs(b4)) + b2  # expit: no overflow for large |x|


def fit_logistic(pred: np.ndarray, mos: np.ndarray) -> np.ndarray:
    """Map predictions onto the MOS scale with the 4-parameter logistic; falls back to a linear
    fit when the optimiser does not converge."""
    pred, mos = np.asarray(pred, float), np.asarray(mos, float)
    start = [mos.max(), mos.min(), float(np.mean(pred)), float(np.std(pred)) or 1.0]
    optimize = _scipy("optimize")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optimize.OptimizeWarning)
            params, _ = optimize.curve_fit(logistic4, pred, mos, p0=start, maxfev=20000)
        mapped = logistic4(pred, *params)
        if np.isfinite(mapped).all():
            return mapped
    except (RuntimeError, ValueError):
        pass
    slope, intercept = np.polyfit(pred, mos, 1)
    return slope * pred + intercept


def metrics(pred: np.ndarray, mos: np.ndarray) -> dict[str, float]:
    pred, mos = np.asarray(pred, float), np.asarray(mos, float)
    stats, mapped = _scipy("stats"), fit_logistic(pred, mos)
    return {
        "srcc": float(stats.spearmanr(pred, mos).statistic),
        "krcc": float(stats.kendalltau(pred, mos).statistic),
        "plcc": float(stats.pearsonr(pred, mos).statistic),
        "plcc_logistic": float(stats.pearsonr(mapped, mos).statistic),
        "rmse": float(np.sqrt(np.mean((pred - mos) ** 2))),
        "rmse_logistic": float(np.sqrt(np.mean((mapped - mos) ** 2))),
    }


@dataclass
class EvaluationResult:
    name: str
    per_split: list[dict[str, float]]
    predictions: list[tuple[np.ndarray, np.ndarray, np.ndarray]]  # (test indices, predicted, mos) per split
    alphas: list[float]
    per_type: dict[str, list[float]] = field(default_factory=dict)  # distortion -> SRCC per split

    def summary(self) -> dict[str, dict[str, float]]:
        keys = self.per_split[0].keys()
        return {
            k: {
                "median": float(np.median([m[k] for m in self.per_split])),
                "mean": float(np.mean([m[k] for m in self.per_split])),
                "std": float(np.std([m[k] for m in self.per_split])),
            }
            for k in keys
        }

    def median_split(self) -> int:
        """The split whose test SRCC is the median one (for plots)."""
        srccs = np.array([m["srcc"] for m in self.per_split])
        return int(np.argsort(srccs)[len(srccs) // 2])


def evaluate(
    features: np.ndarray,
    mos: np.ndarray,
    splits: list[Split],
    *,
    name: str = "features",
    higher_is_better: bool = True,
    distortion: Sequence[str] | None = None,
    regressor: QualityRegressor | None = None,
) -> EvaluationResult:
    """Fit on train (strength chosen on val, or by CV inside train when val is empty), test on test."""
    features = np.asarray(features, np.float64)
    mos = np.asarray(mos, np.float64)
    sign = 1.0 if higher_is_better else -1.0
    template = regressor or QualityRegressor()
    per_split, predictions, alphas = [], [], []
    per_type: dict[str, list[float]] = {}
    for s in splits:
        reg = QualityRegressor(
            method=template.method,
            alphas=template.alphas,
            l1_ratios=template.l1_ratios,
            folds=template.folds,
            seed=template.seed,
        )
        if len(s.val):
            reg.fit(features[s.train], sign * mos[s.train], features[s.val], sign * mos[s.val])
        else:
            reg.fit(features[s.train], sign * mos[s.train])
        pred = sign * reg.predict(features[s.test])
        per_split.append(metrics(pred, mos[s.test]))
        predictions.append((s.test, pred, mos[s.test]))
        alphas.append(float(reg.alpha_))
        if distortion is not None:
            kinds = np.asarray(distortion)[s.test]
            for kind in np.unique(kinds):
                sel = kinds == kind
                if sel.sum() >= 3:
                    per_type.setdefault(str(kind), []).append(
                        float(_scipy("stats").spearmanr(pred[sel], mos[s.test][sel]).statistic)
                    )
    return EvaluationResult(name, per_split, predictions, alphas, per_type)


# -- reports ------------------------------------------------------------------------------------


def write_report(results: list[EvaluationResult], out_dir: str | Path, *, title: str, protocol: str) -> Path:
    """report.md + report.json + a scatter plot per result (+ per-type bars when available)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = [
        f"# {title}",
        "",
        protocol,
        "",
        "| features | SRCC | PLCC | PLCC (logistic) | KRCC | RMSE | splits |",
        "|---|---|---|---|---|---|---|",
    ]
    data = {"title": title, "protocol": protocol, "results": []}
    for r in results:
        s = r.summary()
        lines.append(
            f"| {r.name} | {s['srcc']['median']:.3f} ± {s['srcc']['std']:.3f} | "
            f"{s['plcc']['median']:.3f} ± {s['plcc']['std']:.3f} | {s['plcc_logistic']['median']:.3f} | "
            f"{s['krcc']['median']:.3f} | {s['rmse']['median']:.3f} | {len(r.per_split)} |"
        )
        data["results"].append(
            {
                "name": r.name,
                "summary": s,
                "per_split": r.per_split,
                "alphas": r.alphas,
                "per_type_srcc_median": {k: float(np.median(v)) for k, v in r.per_type.items()},
            }
        )
        _scatter(r, out_dir / f"scatter-{_slug(r.name)}.png")
        if r.per_type:
            _per_type_bars(r, out_dir / f"per-type-{_slug(r.name)}.png")
    for r in results:
        if r.per_type:
            lines += [
                "",
                f"SRCC per distortion type ({r.name}; median over splits):",
                "",
                "| type | SRCC |",
                "|---|---|",
            ]
            lines += [f"| {k} | {np.median(v):.3f} |" for k, v in sorted(r.per_type.items())]
    lines += ["", "Median over splits ± standard deviation. Plots: scatter-*.png (the median split)."]
    write_text_atomic(out_dir / "report.md", "\n".join(lines) + "\n")
    write_json_atomic(out_dir / "report.json", data)
    return out_dir / "report.md"


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name).strip("-").lower()


def _scatter(result: EvaluationResult, path: Path) -> None:
    _, pred, mos = result.predictions[result.median_split()]
    m = metrics(pred, mos)
    fig = new_figure(4.5, 4.2)
    ax = fig.subplots()
    ax.scatter(pred, mos, s=8, alpha=0.6)
    ax.set_xlabel("predicted")
    ax.set_ylabel("MOS")
    ax.set_title(f"{result.name}: SRCC {m['srcc']:.3f}, PLCC {m['plcc']:.3f}", fontsize=10)
    ax.grid(alpha=0.3)
    save_figure(fig, path)


def _per_type_bars(result: EvaluationResult, path: Path) -> None:
    names = sorted(result.per_type, key=lambda k: -np.median(result.per_type[k]))
    fig = new_figure(max(5, 0.35 * len(names)), 3.5)
    ax = fig.subplots()
    ax.bar(range(len(names)), [np.median(result.per_type[k]) for k in names])
    ax.set_xticks(range(len(names)), names, rotation=70, fontsize=8)
    ax.set_ylabel("median SRCC")
    ax.set_title(result.name)
    save_figure(fig, path)


def align(features, labels) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Rows of a FeatureTable matched to the items of a LabelTable.

    Matches by resolved path, then by file name when names are unique. Returns (X, scores, label
    indices kept). Raises EvaluationError naming labelled images that have no features."""
    by_path = {Path(p).resolve(): i for i, p in enumerate(features.paths)}
    names: dict[str, int] = {}
    for i, p in enumerate(features.paths):
        names[Path(p).name] = -1 if Path(p).name in names else i
    rows, kept, missing = [], [], []
    for j, p in enumerate(labels.paths):
        i = by_path.get(Path(p).resolve())
        if i is None:
            i = names.get(Path(p).name)
            i = None if i == -1 else i
        if i is None:
            missing.append(str(p))
        else:
            rows.append(i)
            kept.append(j)
    if missing:
        raise EvaluationError(
            f"{len(missing)} labelled images have no features, e.g. {missing[:3]}; "
            "run `reiqa features` on them (unreadable images are listed in its output)"
        )
    return features.features[rows], np.asarray(labels.scores, np.float64)[kept], kept


def evaluate_table(
    table,
    labels,
    out_dir: str | Path,
    *,
    n_splits: int = 10,
    seed: int = 0,
    ablations: bool = True,
    title: str | None = None,
) -> Path:
    """The whole protocol on a FeatureTable and a LabelTable: splits (official, content-separated
    or random), all features and (with ``ablations``) each encoder alone; writes the report and
    the splits into ``out_dir`` and returns the report's path."""
    out_dir = Path(out_dir)
    _, y, kept = align(table, labels)
    labels = labels.subset(kept)
    if labels.split is not None:
        chosen = [official_split(labels.split)]
        protocol = f"Official split of {labels.dataset}; ridge strength chosen on its val part by SRCC."
    else:
        chosen = make_splits(len(y), groups=labels.reference, n_splits=n_splits, seed=seed)
        protocol = (
            f"{n_splits} random 70/10/20 splits (seed {seed})"
            + (", separated by reference content" if labels.reference is not None else "")
            + "; ridge strength chosen on val by SRCC; metrics on test."
        )
    save_splits(chosen, out_dir / "splits.json", keys=split_keys(labels))
    variants = [("all features", [b for b, _ in table.blocks])]
    if ablations:
        for kind in ("quality", "content"):
            names = [b for b, _ in table.blocks if b.startswith(kind)]
            if names and len(names) < len(table.blocks):
                variants.append((f"{kind} only", names))
    results = []
    for name, blocks in variants:
        x = align(table.select(blocks), labels)[0]
        results.append(
            evaluate(
                x,
                y,
                chosen,
                name=name,
                higher_is_better=labels.higher_is_better,
                distortion=labels.distortion,
            )
        )
    return write_report(
        results,
        out_dir,
        title=title or f"Evaluation on {labels.dataset} ({len(y)} images)",
        protocol=protocol,
    )


def fit_regressor(
    features_file: str | Path,
    scores_file: str | Path,
    *,
    method: str = "ridge",
    image_column: str | None = None,
    score_column: str | None = None,
    images: str | Path | None = None,
    lower_is_better: bool = False,
) -> QualityRegressor:
    """Fit the regressor on all rows of a feature file (``reiqa features``) that have a score in a
    CSV file, the strength by 5-fold cross-validation (``reiqa fit``).

    Scores that are lower-is-better (DMOS-like) are negated, so the model's scores are always
    higher-is-better. ``info`` records the feature ``model_id`` and blocks, and the two files by
    name and SHA-256 (never their folders)."""
    from reiqa.datasets.csv_table import load_csv
    from reiqa.digest import file_sha256
    from reiqa.features import FeatureTable

    table = FeatureTable.load(features_file)
    labels = load_csv(
        scores_file,
        image_column=image_column,
        score_column=score_column,
        root=images,
        higher_is_better=not lower_is_better,
    )
    x, y, _ = align(table, labels)
    sign = -1.0 if lower_is_better else 1.0
    regressor = QualityRegressor(method=method).fit(x, sign * y)
    regressor.info = FitInfo(
        model_id=table.model_id,
        blocks=tuple((name, width) for name, width in table.blocks),
        features=FileRef(Path(features_file).name, file_sha256(features_file)),
        scores=FileRef(Path(scores_file).name, file_sha256(scores_file)),
        n=len(y),
        higher_is_better=True,
        score_range=(float(y.min()), float(y.max())),
        source_direction_flipped=lower_is_better,
    )
    return regressor
