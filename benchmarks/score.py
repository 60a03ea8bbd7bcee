"""Scoring speed, end to end from JPEG files: decode, features (both encoders, full + half
scale), regressor; and the same for each encoder backend, with its accuracy cost.

    .venv/bin/python benchmarks/score.py [--data DATA] [--model default] [--device cpu]
    .venv/bin/python benchmarks/score.py --backends torch onnxruntime openvino [--data DATA] [--clive]

Writes JPEG files of 500x500 and 1024x768 pixels (from the Kodak images in DATA/kodak24 when
--data is given, else from synthetic textures), scores them with ``ReIQA.score_files`` as
``reiqa score`` does, and reports images/s, the peak memory, and the share of the machine's
measured ceiling: the encoders' FLOPs per image (counted by torch's FlopCounterMode) times
images/s, divided by the throughput of a large 3x3 convolution and of a large matmul timed in
the same run. Prints a table and writes JSON.

With ``--backends``, each backend is measured in its own process (so that its peak RSS is its
own) on the same files, then compared with torch float32: images/s at both sizes, time to the
first score (the whole ``reiqa score one.jpg --backend B`` process, median of 3, beside ``python
-c "import torch"`` timed in the same run; exported graphs already cached), peak RSS, the largest
|score difference| on the benchmark files, and with ``--clive`` (DATA/clive) the SRCC of the
model's scores against CLIVE's opinion scores over all 862 images and their largest difference.
The shipped regressor saw CLIVE when it was fitted, so that SRCC is in-sample: it is there to
compare backends, not to rate the model.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import conv_gflops, device_name, matmul_gflops  # noqa: E402

from reiqa.inference import load  # noqa: E402
from reiqa.inputs import find_images  # noqa: E402
from reiqa.io import load_image, save_image  # noqa: E402
from reiqa.runtime import tune_allocator  # noqa: E402

SIZES = ((500, 500), (1024, 768))  # (width, height)


def make_jpegs(folder: Path, size: tuple[int, int], n: int, sources: list[Path]) -> list[Path]:
    """n JPEGs (quality 90) of the given size, resized from the sources in turn."""
    width, height = size
    paths = []
    for i in range(n):
        if sources:
            image = load_image(sources[i % len(sources)]).unsqueeze(0)
        else:
            g = torch.Generator().manual_seed(i)
            image = F.interpolate(torch.rand(1, 3, 24, 32, generator=g), size=(96, 128), mode="bicubic")
        image = F.interpolate(image, size=(height, width), mode="bicubic", antialias=True).clamp(0, 1)
        path = folder / f"{width}x{height}-{i:03d}.jpg"
        save_image(image[0], path, quality=90)
        paths.append(path)
    return paths


def gflop_per_image(model, size: tuple[int, int], device: torch.device) -> float:
    width, height = size
    x = torch.rand(1, 3, height, width, device=device)
    with FlopCounterMode(display=False) as counter:
        model.features(x)
    return counter.get_total_flops() / 1e9


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _first_score_s(command: list[str], repeats: int = 3) -> float:
    """Median wall time of a whole process."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def compare_backends(args: argparse.Namespace) -> None:
    """Each backend in its own process on the same files, then the table against torch fp32."""
    from scipy.stats import spearmanr

    from reiqa import datasets

    sources = find_images([args.data / "kodak24"]) if args.data else []
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for size in SIZES:
            make_jpegs(folder, size, args.images, sources)
        one = sorted(folder.glob("500x500-*.jpg"))[0]

        def score_one(backend: str) -> list[str]:
            return [
                sys.executable,
                "-m",
                "reiqa",
                "score",
                str(one),
                "--model",
                args.model,
                "--backend",
                backend,
            ]

        for backend in args.backends:  # graphs exported into the cache before anything is timed
            subprocess.run(score_one(backend), check=True, capture_output=True)
        import_torch = _first_score_s([sys.executable, "-c", "import torch"])
        for backend in args.backends:
            out = folder / f"{backend}.json"
            command = [
                sys.executable,
                __file__,
                "--files",
                str(folder),
                "--backend",
                backend,
                "--out",
                str(out),
            ]
            command += [
                "--model",
                args.model,
                "--batch-size",
                str(args.batch_size),
                "--workers",
                str(args.workers),
            ]
            if args.data:
                command += ["--data", str(args.data)]
            if args.clive:
                command += ["--clive"]
            subprocess.run(command, check=True)
            runs[backend] = json.loads(out.read_text())
            runs[backend]["first_score_s"] = _first_score_s(score_one(backend))
    reference = runs.get("torch")
    mos = None
    if args.clive:
        table = datasets.load("clive", args.data / "clive")
        mos = {Path(p).name: s for p, s in zip(table.paths, table.scores, strict=True)}
    rows = []
    for backend, run in runs.items():
        row = {
            "backend": backend,
            **{f"images_per_s_{r['size']}": r["images_per_s"] for r in run["sizes"]},
            "first_score_s": run["first_score_s"],
            "first_score_vs_import_torch": run["first_score_s"] / import_torch,
            "peak_rss_mb": run["sizes"][-1]["peak_memory_mb"],
        }
        if reference is not None:
            row["max_abs_diff"] = max(abs(v - reference["scores"][k]) for k, v in run["scores"].items())
            for r, t in zip(run["sizes"], reference["sizes"], strict=True):
                row[f"speed_vs_torch_{r['size']}"] = r["images_per_s"] / t["images_per_s"]
        if mos is not None:
            names = sorted(run["clive_scores"])
            row["clive_srcc"] = float(
                spearmanr([run["clive_scores"][n] for n in names], [mos[n] for n in names])[0]
            )
            if reference is not None:
                row["clive_max_abs_diff"] = max(
                    abs(run["clive_scores"][n] - reference["clive_scores"][n]) for n in names
                )
        rows.append(row)
    results = {"import_torch_s": import_torch, "runs": runs, "table": rows}
    for run in runs.values():
        run.pop("clive_scores", None)
    print(f"python -c 'import torch': {import_torch:.2f} s (median of 3, this run)")
    print(
        "| backend | 500x500 img/s | 1024x768 img/s | first score s | peak RSS MB | max diff | CLIVE SRCC |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        speed = "".join(
            f" {r[f'images_per_s_{s}']:.2f} ({r.get(f'speed_vs_torch_{s}', float('nan')):.2f}x) |"
            for s in ("500x500", "1024x768")
        )
        first = f"{r['first_score_s']:.2f} ({r['first_score_vs_import_torch']:.2f}x torch)"
        diff, srcc = r.get("max_abs_diff", float("nan")), r.get("clive_srcc", float("nan"))
        print(f"| {r['backend']} |{speed} {first} | {r['peak_rss_mb']:.0f} | {diff:.4f} | {srcc:.4f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, help="the shared data folder (kodak24 inside)")
    ap.add_argument("--model", default="default", help="'default' or a model folder")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--images", type=int, default=32, help="images per size")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--workers", type=int, default=0, help="decoding processes")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "score.json")
    ap.add_argument("--backend", default="torch", help="one backend, in this process")
    ap.add_argument("--backends", nargs="+", help="compare these backends, each in its own process")
    ap.add_argument("--clive", action="store_true", help="also score DATA/clive (accuracy per backend)")
    ap.add_argument("--files", type=Path, help=argparse.SUPPRESS)  # a --backends worker: reuse these files
    args = ap.parse_args()
    if args.backends:
        return compare_backends(args)

    tune_allocator()
    device = torch.device(args.device)
    threads = torch.get_num_threads()
    conv_peak, matmul_peak = conv_gflops(device, threads), matmul_gflops(device, threads)
    model = load(None if args.model == "default" else args.model).to(device).with_backend(args.backend)
    sources = find_images([args.data / "kodak24"]) if args.data else []
    results = {
        "device": device_name(device),
        "threads": threads,
        "torch": torch.__version__,
        "model": model.name,
        "backend": args.backend,
        "batch_size": args.batch_size,
        "workers": args.workers,
        "conv_gflops": conv_peak,
        "matmul_gflops": matmul_peak,
        "sizes": [],
    }
    print(
        f"device={results['device']} threads={threads} model={model.name!r} "
        f"conv {conv_peak:.0f} GFLOP/s, matmul {matmul_peak:.0f} GFLOP/s (measured in this run)"
    )
    scores: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in SIZES:
            if args.files:
                paths = sorted(args.files.glob(f"{size[0]}x{size[1]}-*.jpg"))
            else:
                paths = make_jpegs(Path(tmp), size, args.images, sources)
            warm = list(model.score_files(paths[: args.batch_size], batch_size=args.batch_size))
            assert all(r.score is not None for r in warm), [r.error for r in warm if r.error]
            if device.type == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats(device)
            start = time.perf_counter()
            records = list(model.score_files(paths, batch_size=args.batch_size, workers=args.workers))
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - start
            assert all(r.score is not None for r in records)
            scores.update({Path(r.path).name: r.score for r in records})
            per_s = len(paths) / seconds
            gflop = gflop_per_image(model, size, device) if args.backend == "torch" else float("nan")
            row = {
                "size": f"{size[0]}x{size[1]}",
                "images": len(paths),
                "images_per_s": per_s,
                "ms_per_image": 1000 / per_s,
                "gflop_per_image": gflop,
                "share_of_conv_peak": gflop * per_s / conv_peak,
                "share_of_matmul_peak": gflop * per_s / matmul_peak,
                "peak_memory_mb": peak_memory_mb(device),
            }
            results["sizes"].append(row)
        if args.clive:
            clive = find_images([args.data / "clive" / "images"])
            records = list(model.score_files(clive, batch_size=args.batch_size, workers=args.workers))
            results["clive_scores"] = {Path(r.path).name: r.score for r in records}
    results["scores"] = scores
    columns = ("size", "img/s", "ms/img", "GFLOP/img", "of conv", "of matmul", "peak MB")
    widths = (9, 7, 8, 9, 8, 9, 8)
    print(" ".join(f"{c:>{w}}" for c, w in zip(columns, widths, strict=True)))
    for r in results["sizes"]:
        print(
            f"{r['size']:>9} {r['images_per_s']:7.2f} {r['ms_per_image']:8.0f} {r['gflop_per_image']:9.1f} "
            f"{r['share_of_conv_peak']:8.0%} {r['share_of_matmul_peak']:9.0%} {r['peak_memory_mb']:8.0f}"
        )
    print("peak memory: CUDA max allocated, or the process's peak RSS (cumulative over the sizes) on CPU")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
