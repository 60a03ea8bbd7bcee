"""Where the scoring time goes: each stage of ``reiqa score`` timed on its own.

    .venv/bin/python benchmarks/stages.py [--data DATA] [--model default] [--backend torch]
        [--images 16] [--batch-size 8]

On JPEGs of 500x500 and 1024x768 (from DATA/kodak24 when given, else synthetic textures), in
batches of ``--batch-size`` as ``reiqa score`` runs them, ms per image for the steps of the
scoring pipeline (``reiqa.inference.pipeline``): ``prepare`` split into decode (``load_image``)
and size cap (``cap_size`` with the model's options); ``score_batch`` split into half scale
(``half_scale``), the quality encoder at full and half scale, the content encoder at full and
half scale (normalisation included) and the regressor; then the records (``ScoreRecord``)
written to a CSV output (``ScoreOutput``, fsync included). The stages sum to a little less than
the end-to-end figure measured beside them (the rest: batching and Python). Prints a table and
writes JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.score import SIZES, make_jpegs  # noqa: E402

from reiqa.inference import load  # noqa: E402
from reiqa.inference.pipeline import record  # noqa: E402
from reiqa.inputs import find_images  # noqa: E402
from reiqa.io import load_image  # noqa: E402
from reiqa.jobs import scoring_provenance  # noqa: E402
from reiqa.outputs import ScoreOutput  # noqa: E402
from reiqa.resize import cap_size, half_scale  # noqa: E402
from reiqa.runtime import tune_allocator  # noqa: E402


def timed(fn, repeats: int = 3) -> float:
    """Best of ``repeats`` wall times of fn() (after one warm-up call), seconds."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def stages(model, paths: list[Path], batch_size: int, folder: Path) -> dict[str, float]:
    """Seconds per image of each stage over ``paths``."""
    feats = model.features
    opts = model.options
    n = len(paths)
    out: dict[str, float] = {}
    out["decode"] = timed(lambda: [load_image(p) for p in paths]) / n
    images = [load_image(p) for p in paths]
    out["size cap"] = (
        timed(lambda: [cap_size(im, max_side=opts.max_side, min_side=opts.min_side) for im in images]) / n
    )
    capped = [cap_size(im, max_side=opts.max_side, min_side=opts.min_side) for im in images]
    prepared = model.prepare(paths[0], name=str(paths[0]))  # decode + size cap is the pipeline's prepare
    assert isinstance(prepared, torch.Tensor) and torch.equal(prepared, capped[0]), "prepare != decode + cap"
    batches = [torch.stack(capped[i : i + batch_size]) for i in range(0, n, batch_size)]
    batches = [b.contiguous(memory_format=torch.channels_last) for b in batches]
    out["half scale"] = timed(lambda: [half_scale(b) for b in batches]) / n
    halves = [half_scale(b).contiguous(memory_format=torch.channels_last) for b in batches]
    with torch.inference_mode():
        for role in ("quality", "content"):
            encoder, norm = getattr(feats, role), getattr(feats, f"{role}_norm")
            if encoder is None:
                continue
            out[f"{role} encoder, full"] = timed(lambda e=encoder, m=norm: [e(m(b)) for b in batches]) / n
            out[f"{role} encoder, half"] = timed(lambda e=encoder, m=norm: [e(m(b)) for b in halves]) / n
        x = torch.cat([feats(b) for b in batches]).numpy()
    out["regressor"] = timed(lambda: model.regressor.predict(x)) / n
    scores = model.regressor.predict(x)
    rows = [record(str(p), float(s)) for p, s in zip(paths, scores, strict=True)]
    counter = iter(range(10**6))

    def write() -> None:
        target = folder / f"out-{next(counter)}.csv"
        with ScoreOutput(target, scoring_provenance(model)) as output:
            for i in range(0, n, batch_size):
                output.write(rows[i : i + batch_size])

    out["writing (CSV)"] = timed(write) / n
    out["end to end (score_files)"] = timed(lambda: list(model.score_files(paths, batch_size=batch_size))) / n
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, help="the shared data folder (kodak24 inside)")
    ap.add_argument("--model", default="default")
    ap.add_argument("--backend", default="torch")
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "stages.json")
    args = ap.parse_args()

    tune_allocator()
    model = load(None if args.model == "default" else args.model, backend=args.backend)
    sources = find_images([args.data / "kodak24"]) if args.data else []
    results = {"model": model.name, "backend": args.backend, "threads": torch.get_num_threads(), "sizes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for size in SIZES:
            paths = make_jpegs(Path(tmp), size, args.images, sources)
            results["sizes"][f"{size[0]}x{size[1]}"] = stages(model, paths, args.batch_size, Path(tmp))
    names = list(next(iter(results["sizes"].values())))
    print(f"ms per image, batches of {args.batch_size}, backend {args.backend}, {results['threads']} threads")
    print("| stage | " + " | ".join(results["sizes"]) + " |")
    print("|---|" + "---|" * len(results["sizes"]))
    for name in names:
        cells = [f"{1000 * s[name]:.1f}" for s in results["sizes"].values()]
        print(f"| {name} | " + " | ".join(cells) + " |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
