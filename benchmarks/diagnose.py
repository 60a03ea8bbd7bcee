"""How well a model's diagnosis head names what is wrong, on photos it never saw.

    .venv/bin/python benchmarks/diagnose.py --model default --biq2021 BIQ2021 [--top 60] \\
        [--real-photos 40] [--authentic 400] [--crop 224] [--seed 1] \\
        [--out docs/reports/diagnosis.json]
    .venv/bin/python benchmarks/diagnose.py --model DIR --images FOLDER [--max-photos N] ...

Report only on photos that no part of the model saw: not the head's training photos, and not the
encoders' pre-training photos either. The default model's quality encoder was pre-trained on
CLIVE, Kodak, BSDS500 and BIQ2021 Train, so its head is measured on BIQ2021 Test (``--biq2021``,
the folder with ``Images/`` and ``Test (Images and MOS).csv``): its ``--top`` photos by mean
opinion score are the clean sources of 1. and 2. (the first ``--real-photos`` of them for 2.),
and a seeded sample of ``--authentic`` Test photos is 3.

1. Synthetic renderings: every type of the catalogue at every level, and the pristine photo,
   made by the distortion engine on each photo: the whole photo as ``reiqa diagnose`` prepares
   it (``--crop 0``, the default), or a random crop of ``--crop`` px per rendering, as the head
   was trained. Labelled by ``reiqa.distortions.issues`` (identity levels are ``none``). Reported:
   family accuracy, balanced accuracy (the mean of the per-family recalls), the confusion matrix,
   accuracy by level (L1..L5 apart, pristine apart) and by family and level, by type, and the
   severity's mean absolute error and Spearman correlation with the table's severity.
2. Real degradations outside the catalogue, made here with Pillow and numpy, which the head
   never trained on, each with the family it should get (``REAL``): WebP and JPEG 2000, median
   smearing and box defocus, shot (Poisson) noise and sensor banding, under- and overexposure, a
   white-balance cast, haze, an unsharp mask and a box-filtered mosaic, at two strengths each.
3. Authentic photos (``--authentic``, BIQ2021 Test only): how the diagnosis follows their mean
   opinion scores: Spearman correlation of the severity and of P(none) with the score, and the
   issues named in each quarter of the photos by score.

Every image goes through ``ReIQA.diagnose_batch`` (the path of ``reiqa diagnose``). Prints the
tables and writes JSON (``reiqa.atomic.write_text_atomic``). Seeded.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reiqa import distortions  # noqa: E402
from reiqa.atomic import write_text_atomic  # noqa: E402
from reiqa.diagnose.fit import render  # noqa: E402
from reiqa.distortions.issues import ISSUES, NONE, label  # noqa: E402
from reiqa.inference import ReIQA, load  # noqa: E402
from reiqa.inputs import find_images  # noqa: E402
from reiqa.io import load_image, to_pil, to_tensor  # noqa: E402
from reiqa.runtime import tune_allocator  # noqa: E402


@dataclass(frozen=True)
class Degradation:
    """A degradation outside the catalogue: its name, the family it should get, and how it is
    made (a photo (3, H, W) in [0, 1] and a numpy generator -> the degraded photo)."""

    name: str
    expected: str
    make: Callable[[torch.Tensor, np.random.Generator], torch.Tensor]


def _through(fmt: str, **options: object) -> Callable[[torch.Tensor, np.random.Generator], torch.Tensor]:
    def make(image: torch.Tensor, _: np.random.Generator) -> torch.Tensor:
        buffer = io.BytesIO()
        to_pil(image).save(buffer, format=fmt, **options)
        return to_tensor(Image.open(io.BytesIO(buffer.getvalue())))

    return make


def _pil(
    op: Callable[[Image.Image], Image.Image],
) -> Callable[[torch.Tensor, np.random.Generator], torch.Tensor]:
    return lambda image, _: to_tensor(op(to_pil(image)))


def _shot_noise(peak: float) -> Callable[[torch.Tensor, np.random.Generator], torch.Tensor]:
    """Photon noise: each value drawn as Poisson(value * peak) / peak."""

    def make(image: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        counts = rng.poisson(image.numpy().astype(np.float64) * peak)
        return torch.from_numpy(np.clip(counts / peak, 0, 1).astype(np.float32))

    return make


def _banding(strength: float) -> Callable[[torch.Tensor, np.random.Generator], torch.Tensor]:
    """Sensor banding: a random offset per row (the same in the three channels) plus faint
    pixel noise."""

    def make(image: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        x = image.numpy().astype(np.float64)
        rows = rng.normal(0, strength, size=(1, x.shape[1], 1))
        return torch.from_numpy(np.clip(x + rows + rng.normal(0, 0.01, x.shape), 0, 1).astype(np.float32))

    return make


def _mosaic(block: int) -> Callable[[torch.Tensor, np.random.Generator], torch.Tensor]:
    def op(im: Image.Image) -> Image.Image:
        small = im.resize((max(1, im.width // block), max(1, im.height // block)), Image.Resampling.BOX)
        return small.resize(im.size, Image.Resampling.NEAREST)

    return _pil(op)


def _tone(
    fn: Callable[[torch.Tensor], torch.Tensor],
) -> Callable[[torch.Tensor, np.random.Generator], torch.Tensor]:
    return lambda image, _: fn(image).clamp(0, 1)


_WARM = torch.tensor([1.3, 1.0, 0.7]).view(3, 1, 1)
REAL = (
    Degradation("WebP q10", "compression", _through("WEBP", quality=10)),
    Degradation("WebP q2", "compression", _through("WEBP", quality=2)),
    Degradation(
        "JPEG 2000 1:80", "compression", _through("JPEG2000", quality_mode="rates", quality_layers=[80])
    ),
    Degradation(
        "JPEG 2000 1:200", "compression", _through("JPEG2000", quality_mode="rates", quality_layers=[200])
    ),
    Degradation("median 5 px", "blur", _pil(lambda im: im.filter(ImageFilter.MedianFilter(5)))),
    Degradation("median 9 px", "blur", _pil(lambda im: im.filter(ImageFilter.MedianFilter(9)))),
    Degradation("box defocus 2 px", "blur", _pil(lambda im: im.filter(ImageFilter.BoxBlur(2)))),
    Degradation("box defocus 5 px", "blur", _pil(lambda im: im.filter(ImageFilter.BoxBlur(5)))),
    Degradation("shot noise, 40 photons", "noise", _shot_noise(40)),
    Degradation("shot noise, 10 photons", "noise", _shot_noise(10)),
    Degradation("sensor banding 0.03", "noise", _banding(0.03)),
    Degradation("sensor banding 0.08", "noise", _banding(0.08)),
    Degradation("underexposed x0.45", "exposure", _tone(lambda x: x * 0.45)),
    Degradation("overexposed x1.8", "exposure", _tone(lambda x: x * 1.8)),
    Degradation("warm cast (R x1.3, B x0.7)", "color", _tone(lambda x: x * _WARM)),
    Degradation(
        "desaturated 80 % (luma mix)", "color", _tone(lambda x: 0.8 * x.mean(0, keepdim=True) + 0.2 * x)
    ),
    Degradation("haze 0.6x + 0.35", "contrast", _tone(lambda x: 0.6 * x + 0.35)),
    Degradation("haze 0.4x + 0.5", "contrast", _tone(lambda x: 0.4 * x + 0.5)),
    Degradation(
        "unsharp mask 300 %", "artifacts", _pil(lambda im: im.filter(ImageFilter.UnsharpMask(3, 300, 0)))
    ),
    Degradation("mosaic 8 px", "artifacts", _mosaic(8)),
)


# -- synthetic renderings -------------------------------------------------------------------------


def _renderings(image: torch.Tensor, crop: int, generator: torch.Generator):
    """(images, type ids (0: pristine), levels (-1: pristine)) of one photo, in groups small
    enough for memory: the whole photo's 130 renderings and itself, or crops."""
    if crop:
        crops, types, levels = render(image, crop=crop, pristine=1, generator=generator)
        yield list(crops), types.tolist(), levels.tolist()
        return
    yield [image], [0], [-1]
    for spec in distortions.CATALOG.values():
        batch = image.expand(distortions.NUM_LEVELS, -1, -1, -1)
        out = distortions.apply(batch, spec.id, torch.arange(distortions.NUM_LEVELS), generator=generator)
        yield list(out), [spec.id] * distortions.NUM_LEVELS, list(range(distortions.NUM_LEVELS))


def synthetic(model: ReIQA, photos: list[Path], crop: int, seed: int) -> list[dict]:
    rows = []
    for i, path in enumerate(photos):
        image = model.prepare(path, name=str(path))
        generator = torch.Generator().manual_seed(seed * 1_000_003 + i)
        for images, types, levels in _renderings(image, crop, generator):
            records = model.diagnose_batch([path.name] * len(images), images)
            for r, t, lv in zip(records, types, levels, strict=True):
                issue, severity = (NONE, 0.0) if t == 0 else label(t, lv)
                name = "pristine" if t == 0 else distortions.CATALOG[t].name
                rows.append(
                    {
                        "photo": path.name,
                        "type": name,
                        "level": lv + 1,  # 1..5; 0: pristine
                        "issue": issue,
                        "severity": severity,
                        "predicted": r.issue,
                        "predicted_severity": r.severity,
                    }
                )
        print(f"  {i + 1}/{len(photos)} {path.name}", file=sys.stderr, flush=True)
    return rows


def _confusion(rows: list[dict]) -> list[list[int]]:
    matrix = np.zeros((len(ISSUES), len(ISSUES)), dtype=int)
    for r in rows:
        matrix[ISSUES.index(r["issue"]), ISSUES.index(r["predicted"])] += 1
    return matrix.tolist()


def _accuracy(rows: list[dict]) -> float | None:
    return float(np.mean([r["issue"] == r["predicted"] for r in rows])) if rows else None


def summarise(rows: list[dict]) -> dict:
    from scipy.stats import spearmanr

    present = [k for k in ISSUES if any(r["issue"] == k for r in rows)]
    recalls = [_accuracy([r for r in rows if r["issue"] == k]) for k in present]
    distorted = [r for r in rows if r["level"] > 0]
    by_level = {f"L{lv}" if lv else "pristine": [r for r in rows if r["level"] == lv] for lv in range(6)}
    return {
        "renderings": len(rows),
        "accuracy": _accuracy(rows),
        "balanced_accuracy": float(np.mean(recalls)),
        "confusion": {"rows_true_columns_predicted": list(ISSUES), "all": _confusion(rows)},
        "confusion_by_level": {k: _confusion(v) for k, v in by_level.items()},
        "accuracy_by_level": {k: _accuracy(v) for k, v in by_level.items()},
        "accuracy_by_issue_and_level": {
            issue: {k: _accuracy([r for r in v if r["issue"] == issue]) for k, v in by_level.items()}
            for issue in ISSUES
        },
        "accuracy_by_type": {
            t: _accuracy([r for r in rows if r["type"] == t])
            for t in ["pristine", *(s.name for s in distortions.CATALOG.values())]
        },
        "severity_mae": float(np.mean([abs(r["severity"] - r["predicted_severity"]) for r in rows])),
        "severity_spearman_distorted": float(
            spearmanr(
                [r["severity"] for r in distorted], [r["predicted_severity"] for r in distorted]
            ).statistic
        ),
    }


# -- real degradations ----------------------------------------------------------------------------


def real(model: ReIQA, photos: list[Path], seed: int) -> dict:
    out = {}
    originals = [load_image(path) for path in photos]
    for k, degradation in enumerate(REAL):
        images = [
            model.prepare(degradation.make(image, np.random.default_rng([seed, k, i])))
            for i, image in enumerate(originals)
        ]
        records = model.diagnose_batch([p.name for p in photos], images)
        predicted, severity = [r.issue for r in records], [r.severity for r in records]
        counts = {issue: predicted.count(issue) for issue in ISSUES if predicted.count(issue)}
        out[degradation.name] = {
            "expected": degradation.expected,
            "right": float(np.mean([p == degradation.expected for p in predicted])),
            "most_predicted": max(counts, key=counts.get),
            "predicted": counts,
            "mean_severity": float(np.mean(severity)),
        }
    return out


# -- tables ---------------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "   -" if value is None else f"{100 * value:4.0f}"


def print_tables(summary: dict, real_rows: dict) -> None:
    print(
        f"synthetic: {summary['renderings']} renderings; family accuracy {summary['accuracy']:.3f}, "
        f"balanced {summary['balanced_accuracy']:.3f}; severity MAE {summary['severity_mae']:.3f}, "
        f"Spearman {summary['severity_spearman_distorted']:.3f}"
    )
    levels = list(summary["accuracy_by_level"])
    print("\naccuracy (%) by family and level")
    print(f"{'':<12}" + "".join(f"{k:>9}" for k in levels))
    for issue, accs in [
        *summary["accuracy_by_issue_and_level"].items(),
        ("all", summary["accuracy_by_level"]),
    ]:
        print(f"{issue:<12}" + "".join(f"{_pct(accs[k]):>9}" for k in levels))
    print("\nconfusion (% of each true family; rows true, columns predicted)")
    print(f"{'':<12}" + "".join(f"{k[:8]:>9}" for k in ISSUES))
    for issue, row in zip(ISSUES, summary["confusion"]["all"], strict=True):
        total = sum(row)
        print(f"{issue:<12}" + "".join(f"{_pct(v / total if total else None):>9}" for v in row))
    print(
        "\nby type (%): "
        + ", ".join(f"{t} {_pct(v).strip()}" for t, v in summary["accuracy_by_type"].items())
    )
    print("\nreal degradations outside the catalogue")
    print(f"{'degradation':<30}{'expected':<13}{'right %':>8}  {'most predicted':<15}{'severity':>9}")
    for name, r in real_rows.items():
        right, severity = _pct(r["right"]), r["mean_severity"]
        print(f"{name:<30}{r['expected']:<13}{right:>8}  {r['most_predicted']:<15}{severity:>9.2f}")


def biq2021_test(folder: Path) -> list[tuple[Path, float]]:
    """BIQ2021's Test photos with their mean opinion scores (0..1), highest first (name order
    among equals)."""
    import csv

    with (folder / "Test (Images and MOS).csv").open(newline="", encoding="utf-8") as f:
        rows = [(folder / "Images" / r["Image Name"], float(r["MOS"])) for r in csv.DictReader(f)]
    return sorted(rows, key=lambda r: (-r[1], r[0].name))


def authentic(model: ReIQA, photos: list[tuple[Path, float]]) -> dict:
    """The diagnosis of authentic photos against their opinion scores."""
    from scipy.stats import spearmanr

    records = list(model.diagnose_files([p for p, _ in photos]))
    good = [(r, mos) for r, (_, mos) in zip(records, photos, strict=True) if r.error is None]
    mos = np.array([m for _, m in good])
    severity = np.array([r.severity for r, _ in good])
    p_none = np.array([r.probabilities[NONE] for r, _ in good])
    quarters = {}
    edges = np.quantile(mos, [0.25, 0.5, 0.75])
    for q, name in enumerate(("lowest", "second", "third", "highest")):
        inside = [r for r, m in good if np.searchsorted(edges, m, side="right") == q]
        issues = [r.issue for r in inside]
        quarters[name] = {
            "photos": len(inside),
            "mean_severity": float(np.mean([r.severity for r in inside])),
            "issues": {k: issues.count(k) for k in ISSUES if issues.count(k)},
        }
    return {
        "photos": len(good),
        "failed": len(records) - len(good),
        "severity_vs_mos_spearman": float(spearmanr(severity, mos).statistic),
        "p_none_vs_mos_spearman": float(spearmanr(p_none, mos).statistic),
        "score_vs_mos_spearman": float(spearmanr([r.score for r, _ in good], mos).statistic),
        "by_quarter_of_mos": quarters,
    }


def print_authentic(result: dict) -> None:
    print(
        f"\nauthentic photos ({result['photos']}): Spearman with the opinion score: severity "
        f"{result['severity_vs_mos_spearman']:.3f}, P(none) {result['p_none_vs_mos_spearman']:.3f} "
        f"(the score: {result['score_vs_mos_spearman']:.3f})"
    )
    for name, q in result["by_quarter_of_mos"].items():
        named = ", ".join(f"{k} {v}" for k, v in sorted(q["issues"].items(), key=lambda kv: -kv[1]))
        print(f"  {name:<8} quarter: severity {q['mean_severity']:.2f}; {named}")


def report_text(report: dict) -> str:
    """The report as indented JSON, its rows (thousands of renderings) as ``row_fields`` and one
    compact list per line."""
    rows = report["rows"]
    fields = list(rows[0]) if rows else []
    rest = {k: v for k, v in report.items() if k != "rows"}
    head = json.dumps({**rest, "row_fields": fields, "rows": []}, indent=1)
    assert head.endswith('"rows": []\n}')
    lines = ",\n".join(
        "  " + json.dumps([round(v, 4) if isinstance(v, float) else v for v in row.values()]) for row in rows
    )
    return head[: -len("[]\n}")] + "[\n" + lines + "\n ]\n}\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default", help="a model folder with a diagnosis head, or 'default'")
    ap.add_argument("--images", type=Path, action="append", default=[], help="held-out photos (a folder)")
    ap.add_argument("--max-photos", type=int, default=None, help="the first N photos of each folder")
    ap.add_argument("--biq2021", type=Path, help="BIQ2021's folder: its Test photos are the held-out ones")
    ap.add_argument("--top", type=int, default=60, help="BIQ2021 Test photos (highest scores) to render")
    ap.add_argument("--real-photos", type=int, default=None, help="of those, the first N for 2. (all)")
    ap.add_argument("--authentic", type=int, default=0, help="BIQ2021 Test photos (seeded sample) for 3.")
    ap.add_argument(
        "--crop", type=int, default=0, help="0: whole photos; N: a random N px crop per rendering"
    )
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-real", action="store_true", help="skip the degradations outside the catalogue")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "reports" / "diagnosis.json")
    args = ap.parse_args()
    tune_allocator()
    model = load(None if args.model == "default" else args.model)
    photos = [p for folder in args.images for p in find_images([folder])[: args.max_photos]]
    test = biq2021_test(args.biq2021) if args.biq2021 else []
    photos += [p for p, _ in test[: args.top]]
    if not photos:
        ap.error("give --images or --biq2021")
    started = time.perf_counter()
    rows = synthetic(model, photos, args.crop, args.seed)
    summary = summarise(rows)
    real_rows = {} if args.no_real else real(model, photos[: args.real_photos], args.seed)
    print_tables(summary, real_rows)
    sample = []
    if args.authentic and test:
        chosen = np.random.default_rng(args.seed).permutation(len(test))[: args.authentic]
        sample = [test[i] for i in sorted(chosen)]
    found = authentic(model, sample) if sample else {}
    if found:
        print_authentic(found)
    report = {
        "model": model.name,
        "model_id": model.model_id,
        "head": {**model.diagnosis.summary(), "fit": dataclasses.asdict(model.diagnosis.fit)},
        "photos": [p.name for p in photos],
        "real_photos": len(photos[: args.real_photos]),
        "crop": args.crop or "whole photos",
        "seed": args.seed,
        "seconds": time.perf_counter() - started,
        "synthetic": summary,
        "real": real_rows,
        "authentic": found,
        "rows": rows,
    }
    write_text_atomic(args.out, report_text(report))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
