"""A diagnosis head fitted for a model (``reiqa fit-diagnosis``).

Each training photo, prepared as scoring prepares it (decoded, capped to the model's size), is
rendered by the distortion engine: every type of the catalogue at every level, each on its own
random crop of ``crop`` px, plus ``pristine`` untouched crops; each rendering is labelled with its
issue and severity from ``reiqa.distortions.issues`` (pristine crops and identity levels are
``none``, severity 0). The model's own encoders give the features; only the encoders whose blocks
the head reads run. The head (``reiqa.diagnosis``): standardisation, a multinomial logistic
regression with balanced class weights (the issues have 1 to 7 types each) and, per issue, a
ridge regression of its severity on that issue's renderings. Their strengths are chosen on photos
held out of the fit (``val_fraction``), whose metrics the head keeps, then everything is fitted
again on every photo.

Seeded: a photo's crops and random draws depend only on the seed and its file name, so the same
photos and seed give the same head, in any order and within any subset.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from reiqa import distortions
from reiqa.atomic import atomic_path
from reiqa.diagnosis import FILES, DiagnosisHead, FitRecord
from reiqa.distortions.issues import ISSUES, NONE, label
from reiqa.errors import DataError, ModelError
from reiqa.extras import require
from reiqa.features import encode, prepare_or_failure
from reiqa.inference import ReIQA, load, model_folder
from reiqa.inference.pipeline import encoders_for
from reiqa.inputs import list_training_images
from reiqa.io import Failure
from reiqa.outputs import refuse_to_replace

__all__ = [
    "BLOCK_SETS",
    "DEFAULT_ALPHAS",
    "DEFAULT_CS",
    "DEFAULT_NONE_SHIFTS",
    "FitResult",
    "TrainingSet",
    "fit_diagnosis",
    "fit_head",
    "render",
    "training_set",
]

#: the feature blocks a head may read, by the name ``--blocks`` takes
BLOCK_SETS: dict[str, tuple[str, ...]] = {
    "quality": ("quality_full", "quality_half"),
    "content": ("content_full", "content_half"),
    "all": ("quality_full", "quality_half", "content_full", "content_half"),
}
#: candidate inverse strengths of the logistic regression (on standardised features; 0.001 won
#: on 48 BSDS500 photos' renderings, quality blocks of the default model)
DEFAULT_CS = (0.0003, 0.001, 0.003, 0.01)
#: candidate strengths of the issues' severity ridges
DEFAULT_ALPHAS = tuple(float(a) for a in np.geomspace(10.0, 1e5, 9))
#: candidate shifts of the log-odds of ``none`` (a prior for "nothing is wrong"): the classifier
#: is fitted with balanced class weights, so ``none`` (a few renderings per photo against 130
#: distorted ones) is named too rarely on clean photos; the shift with the best balanced accuracy
#: on the held-out photos is added to its intercept (+1.0 on 324 BSDS500 and Kodak photos: the
#: pristine crops' recall 0.31 -> 0.59, balanced accuracy 0.657 -> 0.668)
DEFAULT_NONE_SHIFTS = (0.0, 0.5, 1.0, 1.5, 2.0)
_FORMAT = "reiqa-diagnosis-training-1"


@dataclass
class TrainingSet:
    """The renderings of the training photos as the head sees them: row i of ``features`` is one
    rendering, of photo ``paths[photo[i]]``, type ``type_id[i]`` (1..26; 0: a pristine crop) at
    ``level[i]`` (0..4; -1: pristine), labelled ``ISSUES[issue[i]]`` with ``severity[i]``.

    ``features``: (n, D) float32, the columns of ``blocks`` (names and widths); ``layout``: every
    block of the model (the rows ``DiagnosisHead.predict`` takes)."""

    features: np.ndarray
    blocks: tuple[tuple[str, int], ...]
    layout: tuple[tuple[str, int], ...]
    issue: np.ndarray
    severity: np.ndarray
    photo: np.ndarray
    type_id: np.ndarray
    level: np.ndarray
    paths: list[str]
    encoders_id: str = ""
    crop: int = 224
    pristine: int = 4
    seed: int = 0
    failures: list[str] = field(default_factory=list)

    _ARRAYS = ("features", "issue", "severity", "photo", "type_id", "level")

    def save(self, path: str | Path) -> Path:
        """One safetensors file (the arrays; the rest as metadata), written atomically."""
        from safetensors.numpy import save_file

        meta = {
            "format": _FORMAT,
            "blocks": json.dumps(self.blocks),
            "layout": json.dumps(self.layout),
            "paths": json.dumps(self.paths),
            "failures": json.dumps(self.failures),
            "settings": json.dumps(
                {
                    "encoders_id": self.encoders_id,
                    "crop": self.crop,
                    "pristine": self.pristine,
                    "seed": self.seed,
                }
            ),
        }
        arrays = {k: np.ascontiguousarray(getattr(self, k)) for k in self._ARRAYS}
        with atomic_path(path) as tmp:
            save_file(arrays, str(tmp), metadata=meta)
        return Path(path)

    @classmethod
    def concat(cls, sets: Sequence[TrainingSet]) -> TrainingSet:
        """One training set of several made with the same model and settings (e.g. by runs on
        parts of the photos), the rows in order."""
        first = sets[0]
        keys = ("blocks", "layout", "encoders_id", "crop", "pristine", "seed")
        for other in sets[1:]:
            if any(getattr(other, k) != getattr(first, k) for k in keys):
                raise DataError(
                    f"training sets differ in {[k for k in keys if getattr(other, k) != getattr(first, k)]}"
                )
        offsets = np.cumsum([0] + [len(t.paths) for t in sets])
        joined = {k: np.concatenate([getattr(t, k) for t in sets]) for k in cls._ARRAYS if k != "photo"}
        photo = np.concatenate([t.photo + o for t, o in zip(sets, offsets, strict=False)])
        return cls(
            **joined,
            photo=photo,
            paths=[p for t in sets for p in t.paths],
            failures=[f for t in sets for f in t.failures],
            **{k: getattr(first, k) for k in keys},
        )

    @classmethod
    def load(cls, path: str | Path) -> TrainingSet:
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
            if meta.get("format") != _FORMAT:
                raise DataError(f"{path}: not a diagnosis training set (written by TrainingSet.save)")
            arrays = {k: f.get_tensor(k) for k in cls._ARRAYS}
        as_blocks = lambda text: tuple((str(n), int(w)) for n, w in json.loads(text))  # noqa: E731
        return cls(
            **arrays,
            blocks=as_blocks(meta["blocks"]),
            layout=as_blocks(meta["layout"]),
            paths=json.loads(meta["paths"]),
            failures=json.loads(meta["failures"]),
            **json.loads(meta["settings"]),
        )


def render(
    image: Tensor, *, crop: int, pristine: int, generator: torch.Generator
) -> tuple[Tensor, Tensor, Tensor]:
    """Every catalogue type at every level, each on its own random crop of ``image``, then
    ``pristine`` untouched crops.

    Args:
        image: (3, H, W) float32 in [0, 1].
        crop: the crops' side (the image's shorter side when that is smaller).
        pristine: how many untouched crops to add.
        generator: a CPU generator: crop positions and the distortions' random draws.

    Returns:
        (renderings (n, 3, c, c) float32 in [0, 1], type ids (n,) int64 (0: pristine), levels (n,)
        int64 (-1: pristine)), n = 26 x 5 + pristine.
    """
    count = len(distortions.CATALOG)
    types = torch.arange(1, count + 1).repeat_interleave(distortions.NUM_LEVELS)
    levels = torch.arange(distortions.NUM_LEVELS).repeat(count)
    n = len(types)
    types = torch.cat([types, torch.zeros(pristine, dtype=torch.long)])
    levels = torch.cat([levels, torch.full((pristine,), -1, dtype=torch.long)])
    side = min(crop, *image.shape[-2:])
    ys = torch.randint(0, image.shape[-2] - side + 1, (len(types),), generator=generator).tolist()
    xs = torch.randint(0, image.shape[-1] - side + 1, (len(types),), generator=generator).tolist()
    crops = torch.stack([image[:, y : y + side, x : x + side] for y, x in zip(ys, xs, strict=True)])
    crops[:n] = distortions.apply(crops[:n], types[:n], levels[:n], generator=generator)
    return crops, types, levels


def _photo_seed(seed: int, path: Path) -> int:
    """A photo's own seed: from the run's seed and the file's name (not its place in the list)."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{path.name}".encode()).digest()[:7], "little")


def _labels(types: Tensor, levels: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(issue index into ISSUES (n,) int64, severity (n,) float32) of renderings."""
    pairs = [
        (NONE, 0.0) if t == 0 else label(t, lv) for t, lv in zip(types.tolist(), levels.tolist(), strict=True)
    ]
    return (
        np.array([ISSUES.index(issue) for issue, _ in pairs], dtype=np.int64),
        np.array([severity for _, severity in pairs], dtype=np.float32),
    )


def training_set(
    model: ReIQA,
    paths: Sequence[str | Path],
    *,
    blocks: Sequence[str] = BLOCK_SETS["quality"],
    crop: int = 224,
    pristine: int = 8,
    seed: int = 0,
    progress: bool = False,
) -> TrainingSet:
    """The renderings of ``paths`` (:func:`render`) through the encoders of ``model`` that
    ``blocks`` need; photos that cannot be read are skipped and listed in ``failures``."""
    layout = tuple(model.features.blocks())
    unknown = [b for b in blocks if b not in dict(layout)]
    if unknown or not blocks:
        raise ModelError(f"blocks {list(blocks)} must be some of this model's {[n for n, _ in layout]}")
    encoders = encoders_for(model.features, blocks)
    starts = np.cumsum([0] + [w for _, w in encoders.blocks()])
    at = {name: i for i, (name, _) in enumerate(encoders.blocks())}
    columns = np.concatenate([np.arange(starts[at[b]], starts[at[b] + 1]) for b in blocks])
    parts: dict[str, list[np.ndarray]] = {
        k: [] for k in ("features", "issue", "severity", "photo", "type", "level")
    }
    kept, failures = [], []
    for path in _progress([Path(p) for p in paths], progress):
        image = prepare_or_failure(path, model.options, name=str(path))
        if isinstance(image, Failure):
            failures.append(image.error)
            continue
        generator = torch.Generator().manual_seed(_photo_seed(seed, path))
        crops, types, levels = render(image, crop=crop, pristine=pristine, generator=generator)
        issue, severity = _labels(types, levels)
        parts["features"].append(encode(encoders, crops)[:, columns])
        parts["issue"].append(issue)
        parts["severity"].append(severity)
        parts["photo"].append(np.full(len(types), len(kept), dtype=np.int64))
        parts["type"].append(types.numpy())
        parts["level"].append(levels.numpy())
        kept.append(str(path))
    if not kept:
        raise DataError(f"none of the {len(paths)} training photos could be read: {failures[:3]}")
    widths = dict(layout)
    return TrainingSet(
        features=np.concatenate(parts["features"]).astype(np.float32),
        blocks=tuple((b, widths[b]) for b in blocks),
        layout=layout,
        issue=np.concatenate(parts["issue"]),
        severity=np.concatenate(parts["severity"]),
        photo=np.concatenate(parts["photo"]),
        type_id=np.concatenate(parts["type"]),
        level=np.concatenate(parts["level"]),
        paths=kept,
        encoders_id=model.features.model_id(max_side=model.options.max_side, min_side=model.options.min_side),
        crop=crop,
        pristine=pristine,
        seed=seed,
        failures=failures,
    )


def _progress(items: list[Path], shown: bool) -> list[Path]:
    if not shown:
        return items
    from tqdm import tqdm

    return tqdm(items, unit="photo", dynamic_ncols=True)


# -- the head's fit ------------------------------------------------------------------------------


def _held_out(photo: np.ndarray, paths: Sequence[str], fraction: float, seed: int) -> np.ndarray:
    """A mask of the rows of a seeded share of the photos (at least one photo, never all), drawn
    from the photos' file names in sorted order: the same whatever order they were rendered in."""
    photos = np.unique(photo)
    count = min(len(photos) - 1, max(1, round(fraction * len(photos))))
    by_name = sorted(photos.tolist(), key=lambda i: (Path(paths[i]).name, paths[i]))
    chosen = np.random.default_rng(seed).permutation(np.array(by_name))[:count]
    return np.isin(photo, chosen)


def _classifier(z: np.ndarray, y: np.ndarray, cs: Sequence[float], z_eval: np.ndarray | None):
    """Logistic regressions for ``cs`` (ascending, each started from the last); the held-out
    probabilities of each when ``z_eval`` is given. Returns (the last model, [(n_eval, K)])."""
    linear_model = require("sklearn.linear_model", "train", "fitting a diagnosis head")
    clf = linear_model.LogisticRegression(class_weight="balanced", max_iter=2000, tol=1e-4, warm_start=True)
    probabilities = []
    for c in sorted(cs):
        clf.set_params(C=c).fit(z, y)
        if z_eval is not None:
            probabilities.append(clf.predict_proba(z_eval))
    return clf, probabilities


def _ridge_path(z: np.ndarray, y: np.ndarray, alphas: Sequence[float], z_eval: np.ndarray) -> np.ndarray:
    """(A, n_eval): the predictions of a ridge (with intercept) for every alpha, from one
    eigendecomposition: of the (D, D) Gram matrix, or of the (n, n) kernel when n < D."""
    mu, y_mean = z.mean(0), float(y.mean())
    zc, yc, ze = z - mu, y - y_mean, z_eval - mu
    if len(z) < z.shape[1]:
        values, vectors = np.linalg.eigh(zc @ zc.T)
        target, projected = vectors.T @ yc, (ze @ zc.T) @ vectors
    else:
        values, vectors = np.linalg.eigh(zc.T @ zc)
        target, projected = vectors.T @ (zc.T @ yc), ze @ vectors
    values = np.maximum(values, 0.0)
    return np.stack([projected @ (target / (values + a)) + y_mean for a in alphas])


def _ridge(z: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, float]:
    """(w, b) of a ridge with intercept (the primal or the dual system, whichever is smaller)."""
    mu, y_mean = z.mean(0), float(y.mean())
    zc, yc = z - mu, y - y_mean
    if len(z) < z.shape[1]:
        w = zc.T @ np.linalg.solve(zc @ zc.T + alpha * np.eye(len(z)), yc)
    else:
        w = np.linalg.solve(zc.T @ zc + alpha * np.eye(z.shape[1]), zc.T @ yc)
    return w, y_mean - float(mu @ w)


def _severity_paths(
    z: np.ndarray,
    y: np.ndarray,
    severity: np.ndarray,
    classes: np.ndarray,
    alphas: Sequence[float],
    z_eval: np.ndarray,
) -> np.ndarray:
    """(A, n_eval, K): each issue's severity ridge (fitted on its own rows) at every alpha."""
    return np.stack([_ridge_path(z[y == k], severity[y == k], alphas, z_eval) for k in classes], axis=-1)


def _metrics(truth: np.ndarray, predicted: np.ndarray, level: np.ndarray) -> dict[str, object]:
    """Accuracy, balanced accuracy (the mean of the per-issue recalls), and the accuracy of the
    pristine renderings and of each level."""
    recalls = [float(np.mean(predicted[truth == k] == k)) for k in np.unique(truth)]
    by_level = {
        ("pristine" if lv < 0 else f"L{lv + 1}"): float(np.mean(predicted[level == lv] == truth[level == lv]))
        for lv in np.unique(level)
    }
    return {
        "accuracy": float(np.mean(predicted == truth)),
        "balanced_accuracy": float(np.mean(recalls)),
        "by_level": by_level,
    }


def _shifted(probabilities: np.ndarray, column: int | None, shift: float) -> np.ndarray:
    """Probabilities with ``shift`` added to the log-odds of one class (renormalised)."""
    if column is None or shift == 0:
        return probabilities
    out = probabilities.copy()
    out[:, column] *= np.exp(shift)
    return out / out.sum(1, keepdims=True)


def _choose(
    train: TrainingSet,
    z: np.ndarray,
    cs: Sequence[float],
    alphas: Sequence[float],
    fraction: float,
    seed: int,
    shifts: Sequence[float] = (0.0,),
) -> tuple[float, float, float, dict[str, object]]:
    """(C, alpha, none shift, metrics): C by balanced accuracy, then the shift of ``none``'s
    log-odds by balanced accuracy, then alpha by the severity's mean absolute error (issues'
    severities mixed by the shifted probabilities), on a share of the photos held out."""
    if len(np.unique(train.photo)) < 2:
        raise DataError("choosing the strengths needs photos to hold out: give at least 2 photos")
    val = _held_out(train.photo, train.paths, fraction, seed)
    y, truth = train.issue[~val], train.issue[val]
    clf, probabilities = _classifier(z[~val], y, cs, z[val])
    by_c = {
        float(c): _metrics(truth, clf.classes_[p.argmax(1)], train.level[val])
        for c, p in zip(sorted(cs), probabilities, strict=True)
    }
    best = max(range(len(cs)), key=lambda i: by_c[sorted(cs)[i]]["balanced_accuracy"])
    c = float(sorted(cs)[best])
    none_at = list(clf.classes_).index(ISSUES.index(NONE)) if ISSUES.index(NONE) in clf.classes_ else None
    by_shift = {
        float(s): _metrics(
            truth, clf.classes_[_shifted(probabilities[best], none_at, s).argmax(1)], train.level[val]
        )
        for s in shifts
    }
    shift = max(by_shift, key=lambda s: (by_shift[s]["balanced_accuracy"], -abs(s)))
    chosen = _shifted(probabilities[best], none_at, shift)
    zt, zv = z[~val].astype(np.float64), z[val].astype(np.float64)
    paths = _severity_paths(zt, y, train.severity[~val].astype(np.float64), clf.classes_, alphas, zv)
    mixed = np.clip((paths * chosen[None]).sum(-1), 0, 1)  # (A, n_eval)
    errors = np.abs(mixed - train.severity[val][None]).mean(1)
    alpha = float(alphas[int(np.argmin(errors))])
    metrics = {
        "photos": len(np.unique(train.photo[val])),
        "renderings": int(val.sum()),
        **by_shift[shift],
        "severity_mae": float(errors.min()),
        "balanced_accuracy_by_C": {str(k): v["balanced_accuracy"] for k, v in by_c.items()},
        "balanced_accuracy_by_none_shift": {f"{k:g}": v["balanced_accuracy"] for k, v in by_shift.items()},
        "pristine_recall_by_none_shift": {
            f"{k:g}": v["by_level"].get("pristine") for k, v in by_shift.items()
        },
        "severity_mae_by_alpha": {f"{a:g}": float(e) for a, e in zip(alphas, errors, strict=True)},
    }
    return c, alpha, shift, metrics


def fit_head(
    train: TrainingSet,
    *,
    cs: Sequence[float] = DEFAULT_CS,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    none_shifts: Sequence[float] = DEFAULT_NONE_SHIFTS,
    val_fraction: float = 0.2,
    seed: int = 0,
) -> DiagnosisHead:
    """The head on a training set: C (by balanced accuracy), the shift of ``none``'s log-odds (by
    balanced accuracy) and the severity ridges' alpha (by mean absolute error) chosen on a seeded
    share of the photos held out, then everything fitted again on all rows (the shift added to
    ``none``'s intercept). With one candidate each, nothing is held out, the one shift is
    applied and ``fit.validation`` is empty."""
    x = train.features.astype(np.float32)
    mean, scale = x.mean(0, dtype=np.float64), x.std(0, dtype=np.float64)
    scale[scale == 0] = 1.0
    z = ((x - mean) / scale).astype(np.float32)
    c, alpha, shift, validation = float(cs[0]), float(alphas[0]), float(none_shifts[0]), {}
    if len(cs) > 1 or len(alphas) > 1 or len(none_shifts) > 1:
        c, alpha, shift, validation = _choose(train, z, cs, alphas, val_fraction, seed, none_shifts)
    clf, _ = _classifier(z, train.issue, [c], None)
    coef, intercept = clf.coef_.astype(np.float64), clf.intercept_.astype(np.float64)
    if len(clf.classes_) == 2:  # sklearn's binary form: one row for the second class
        coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.array([0.0, intercept[0]])
    if ISSUES.index(NONE) in clf.classes_:
        intercept[list(clf.classes_).index(ISSUES.index(NONE))] += shift
    z64, severity = z.astype(np.float64), train.severity.astype(np.float64)
    ridges = [_ridge(z64[train.issue == k], severity[train.issue == k], alpha) for k in clf.classes_]
    return DiagnosisHead(
        classes=tuple(ISSUES[k] for k in clf.classes_),
        blocks=tuple(name for name, _ in train.blocks),
        layout=train.layout,
        crop=train.crop,
        mean=mean,
        scale=scale,
        coef=coef,
        intercept=intercept,
        severity_coef=np.stack([w for w, _ in ridges]),
        severity_intercept=np.array([b for _, b in ridges]),
        encoders_id=train.encoders_id or None,
        fit=FitRecord(
            photos=len(train.paths),
            renderings=len(train.issue),
            pristine=train.pristine,
            seed=train.seed,
            C=c,
            severity_alpha=alpha,
            none_shift=shift,
            validation=validation,
        ),
    )


# -- reiqa fit-diagnosis --------------------------------------------------------------------------


@dataclass
class FitResult:
    """What ``reiqa fit-diagnosis`` did."""

    out: Path
    head: DiagnosisHead
    photos: int
    renderings: int
    failures: list[str]
    seconds: float


def _write_model(source: str | Path, out: Path, head: DiagnosisHead) -> None:
    """``source``'s files copied into ``out`` byte for byte (its head left out), then ``head``."""
    with model_folder(None if str(source) == "default" else source) as folder:
        if out.resolve() != folder.resolve():
            out.mkdir(parents=True, exist_ok=True)
            for file in sorted(folder.iterdir()):
                if file.is_file() and file.name not in FILES and not file.name.startswith("."):
                    with atomic_path(out / file.name) as tmp:
                        shutil.copyfile(file, tmp)
    head.save(out)


def fit_diagnosis(
    photos: Sequence[str | Path],
    out: str | Path,
    *,
    model: str | Path = "default",
    blocks: str = "quality",
    crop: int = 224,
    pristine: int = 8,
    seed: int = 0,
    max_photos: int | None = None,
    device: str = "cpu",
    overwrite: bool = False,
    progress: bool = False,
    save_training: str | Path | None = None,
) -> FitResult:
    """``reiqa fit-diagnosis``: a head for ``model`` fitted on renderings of ``photos`` (files,
    folders searched recursively, CSV lists), written with a copy of the model's files into
    ``out`` (a model folder that ``reiqa.load`` reads; ``out`` may be the model's own folder).
    ``max_photos``: a seeded subset. ``save_training``: also write the renderings' features
    (``TrainingSet.save``), to fit other heads on them without rendering again."""
    started = time.perf_counter()
    if blocks not in BLOCK_SETS:
        raise ModelError(f"blocks must be one of {sorted(BLOCK_SETS)}, got {blocks!r}")
    require("sklearn.linear_model", "train", "reiqa fit-diagnosis")  # before minutes of rendering
    out = Path(out)
    with model_folder(None if str(model) == "default" else model) as folder:
        copied = (
            ()
            if out.exists() and out.resolve() == folder.resolve()
            else tuple(f.name for f in folder.iterdir() if f.is_file() and f.name not in FILES)
        )
    refuse_to_replace(out, overwrite=overwrite, files=(*FILES, *copied))
    paths = list_training_images(photos)
    if max_photos is not None and max_photos < len(paths):
        keep = np.sort(np.random.default_rng(seed).permutation(len(paths))[:max_photos])
        paths = [paths[i] for i in keep]
    net = load(None if str(model) == "default" else model, device=device)
    train = training_set(
        net, paths, blocks=BLOCK_SETS[blocks], crop=crop, pristine=pristine, seed=seed, progress=progress
    )
    if save_training is not None:
        train.save(save_training)
    head = fit_head(train, seed=seed)
    _write_model(model, out, head)
    return FitResult(
        out, head, len(train.paths), len(train.issue), train.failures, time.perf_counter() - started
    )
