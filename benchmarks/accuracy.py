"""Accuracy of a model on the CLIVE share with the project's evaluation protocol.

    .venv/bin/python benchmarks/accuracy.py --data DATA --quality runs/quality/encoder.json \\
        [--content runs/content/encoder.json ...] [--control] [--splits 10]

DATA is a folder holding ``clive/`` (CLIVE: ``images/`` and ``mos.csv``, or the published release).
Extracts features for DATA/clive (cached under OUT/cache), runs 10 random 70/10/20
splits (ridge strength on val by SRCC, metrics on test, median over splits) for all features and
for each encoder alone, once per --content encoder (each paired with the quality encoder; the
run is named after the content encoder's folder), and with --control also for an untrained
(randomly initialised) encoder of the same architecture, so that what training added is
visible. Prints the tables, writes the reports (Markdown, JSON, scatter plots) and a JSON
summary.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reiqa import datasets  # noqa: E402
from reiqa.evaluate import evaluate_table  # noqa: E402
from reiqa.features import FeatureModel, extract  # noqa: E402
from reiqa.models.backbones import build_backbone  # noqa: E402
from reiqa.models.checkpoints import load_encoder  # noqa: E402
from reiqa.runtime import tune_allocator  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--quality", type=Path, help="quality encoder.json")
    ap.add_argument("--content", type=Path, action="append", default=[], help="content encoder.json")
    ap.add_argument(
        "--control", action="store_true", help="also an untrained encoder of the same architecture"
    )
    ap.add_argument("--splits", type=int, default=10)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "accuracy")
    args = ap.parse_args()
    tune_allocator()
    labels = datasets.load("clive", args.data / "clive")
    models: list[tuple[str, FeatureModel]] = []
    for content in args.content:
        name = f"quality + {content.parent.name}" if args.quality else content.parent.name
        models.append((name, FeatureModel.from_files(args.quality, content)))
    if args.quality and not args.content:
        models.append(("trained", FeatureModel.from_files(args.quality, None)))
    if args.control:
        arch = load_encoder(args.quality or args.content[0])[1].arch
        torch.manual_seed(0)
        models.append(("untrained control", FeatureModel(build_backbone(arch), None)))
    if not models:
        raise SystemExit("give --quality and/or --content, or --control")
    summary = {
        "protocol": f"{args.splits} random 70/10/20 splits, median",
        "dataset": "CLIVE share",
        "n_images": len(labels),
        "results": {},
    }
    for name, model in models:
        start = time.perf_counter()
        table = extract(
            model, labels.paths, batch_size=8, device=args.device, cache=args.out / "cache", progress=True
        )
        seconds = time.perf_counter() - start
        out = args.out / name.replace(" + ", "+").replace(" ", "-")
        report = evaluate_table(
            table, labels, out, n_splits=args.splits, title=f"CLIVE share, {name} encoders"
        )
        data = json.loads((out / "report.json").read_text())
        summary["results"][name] = {
            r["name"]: {k: r["summary"][k]["median"] for k in ("srcc", "plcc", "plcc_logistic", "krcc")}
            | {"srcc_std": r["summary"]["srcc"]["std"]}
            for r in data["results"]
        }
        summary["results"][name]["feature_seconds"] = seconds
        print(report.read_text())
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"wrote {args.out / 'summary.json'}")


if __name__ == "__main__":
    main()
