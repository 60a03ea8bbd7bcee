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
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
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


# -- the speed/accuracy table (--table) ------------------------------------------------------------

#: (engine, max side) rows of --table; None: the model's own cap (1024)
TABLE_ROWS = (
    ("torch", None),
    ("openvino", None),
    ("openvino-int8", None),
    ("openvino", 768),
    ("openvino", 512),
    ("openvino", 384),
    ("openvino-int8", 512),
    ("openvino-int8", 384),
)


def _score_process(folder: Path, engine: str, max_side: int | None, out: Path) -> float:
    """Wall seconds of a whole ``reiqa score FOLDER -o OUT`` process."""
    command = [sys.executable, "-m", "reiqa", "score", str(folder), "-o", str(out), "--overwrite"]
    command += ["--backend", engine, "--device", "cpu"]
    if max_side is not None:
        command += ["--max-side", str(max_side)]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def _accuracy(engine: str, max_side: int | None, clive, biq) -> dict:
    """Features of CLIVE (all) and of the BIQ2021 Test subset with this engine and cap: the shipped
    regressor's scores, and the CLIVE share median SRCC of a ridge refitted per split."""
    from reiqa.evaluate import evaluate, make_splits
    from reiqa.features import extract

    model = load(None, backend=engine)
    cap = model.max_side if max_side is None else max_side
    out = {}
    for name, (paths, _) in (("clive", clive), ("biq", biq)):
        table = extract(model.features, paths, max_side=cap, batch_size=8)
        assert not table.failures, table.failures[:3]
        out[f"{name}_scores"] = model.regressor.predict(table.features)
        if name == "clive":
            splits = make_splits(len(paths), n_splits=10, seed=0)
            result = evaluate(table.features, np.asarray(clive[1]), splits, name=engine)
            out["clive_share_srcc"] = float(result.summary()["srcc"]["median"])
    return out


def _cached_accuracy(folder: Path | None, key: tuple[str, int], clive, biq) -> dict:
    """:func:`_accuracy`, kept in ``folder`` (when given) by engine and cap, so that a table can be
    finished after an interruption or its accuracy part run while the machine is busy."""
    engine, cap = key
    path = folder / f"{engine}-{cap}-{len(clive[0])}-{len(biq[0])}.npz" if folder is not None else None
    if path is not None and path.is_file():
        saved = np.load(path)
        return {k: (float(v) if v.ndim == 0 else v) for k, v in saved.items()}
    acc = _accuracy(engine, None if cap == 1024 else cap, clive, biq)
    if path is not None:
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(path, **acc)
    return acc


def table_mode(args: argparse.Namespace) -> None:
    """Every row of TABLE_ROWS: whole ``reiqa score`` processes on 192 and 1,920 photos of
    500x500 and on 12 MP photos (images/s, and what is not scoring: T(192) - 192 / rate, the rate
    from the difference of the two runs), and the accuracy: CLIVE share SRCC, BIQ2021 Test SRCC
    (a seeded subset the shipped regressor never saw), and the scores' differences from torch
    float32 at the same cap."""
    import random

    from scipy.stats import spearmanr

    from reiqa import datasets

    rows_wanted = [r for r in TABLE_ROWS if r[0] in args.engines]
    clive_table = datasets.load("clive", args.data / "clive")
    clive = ([Path(p) for p in clive_table.paths], list(clive_table.scores))
    biq_table = datasets.load("biq2021", args.biq2021)
    test = biq_table.subset(np.flatnonzero(np.asarray(biq_table.split) == "test"))
    drawn = random.Random(0).sample(range(len(test.paths)), args.biq_photos)
    if args.exclude:  # the photos int8 was calibrated on (reiqa quantize draws from these)
        excluded = {Path(p).name for p in args.exclude.read_text().split("\n") if p}
        drawn = [i for i in drawn if Path(test.paths[i]).name not in excluded]
    biq = ([Path(test.paths[i]) for i in drawn], [float(test.scores[i]) for i in drawn])
    sources = find_images([args.data / "kodak24"])
    results = {"rows": [], "import_torch_s": None, "photos": {}}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sets = {}
        for name, size, n in (("500x500-192", (500, 500), args.photos), ("12MP", (4000, 3000), args.large)):
            (root / name).mkdir()
            sets[name] = make_jpegs(root / name, size, n, sources)
        (root / "500x500-1920").mkdir()
        for i in range(10):  # the 192 again, ten times: 1,920 files (copies: links are one file)
            for p in sets["500x500-192"]:
                shutil.copyfile(p, root / "500x500-1920" / f"{i}-{p.name}")
        results["photos"] = {
            "500x500": [192, 1920],
            "12MP": args.large,
            "clive": len(clive[0]),
            "biq2021_test": len(biq[0]),
        }
        results["import_torch_s"] = _first_score_s([sys.executable, "-c", "import torch"])
        (root / "one").mkdir()
        shutil.copyfile(sets["500x500-192"][0], root / "one" / "warm.jpg")
        accuracy: dict[tuple[str, int], dict] = {}
        for engine, max_side in rows_wanted:
            cap = max_side or 1024
            if args.accuracy_only:
                if engine != "torch":
                    _cached_accuracy(args.accuracy_cache, (engine, cap), clive, biq)
                continue
            # the graphs exported and OpenVINO's compiled models cached before anything is timed
            _score_process(root / "one", engine, max_side, root / "warm.csv")
            row = {"engine": engine, "max_side": cap}
            for name in ("500x500-192", "500x500-1920", "12MP"):
                if name == "500x500-1920" and max_side is not None:
                    continue  # the rate at 500x500 hardly depends on the cap: measured at 1024 only
                out = root / f"{engine}-{cap}-{name}.csv"
                row[f"seconds_{name}"] = _score_process(root / name, engine, max_side, out)
            n_small, n_large = args.photos, 10 * args.photos
            row["images_per_s_500x500_192"] = n_small / row["seconds_500x500-192"]
            if "seconds_500x500-1920" in row:
                rate = (n_large - n_small) / (row["seconds_500x500-1920"] - row["seconds_500x500-192"])
                row["images_per_s_500x500_1920"] = n_large / row["seconds_500x500-1920"]
                row["steady_images_per_s_500x500"] = rate
                row["not_scoring_s"] = row["seconds_500x500-192"] - n_small / rate
            row["images_per_s_12MP"] = args.large / row["seconds_12MP"]
            if engine != "torch":  # torch's scores equal OpenVINO float32's to 1e-4
                key = (engine, cap)
                if key not in accuracy:
                    accuracy[key] = _cached_accuracy(args.accuracy_cache, key, clive, biq)
                acc = accuracy[key]
                row["clive_share_srcc"] = acc["clive_share_srcc"]
                row["clive_srcc_shipped"] = float(spearmanr(acc["clive_scores"], clive[1])[0])
                row["biq_test_srcc_shipped"] = float(spearmanr(acc["biq_scores"], biq[1])[0])
                base = accuracy.get(("openvino", key[1]))
                if base is not None:
                    diffs = np.abs(
                        np.concatenate(
                            [
                                acc["clive_scores"] - base["clive_scores"],
                                acc["biq_scores"] - base["biq_scores"],
                            ]
                        )
                    )
                    row["max_abs_diff"] = float(diffs.max())
                    row["p99_abs_diff"] = float(np.quantile(diffs, 0.99))
                    row["share_within_1"] = float(np.mean(diffs <= 1.0))
            results["rows"].append(row)
            print(json.dumps(row), flush=True)
    if args.accuracy_only:
        return
    fp32_ov = next((r for r in results["rows"] if r["engine"] == "openvino" and r["max_side"] == 1024), None)
    nan = float("nan")
    print(f"python -c 'import torch': {results['import_torch_s']:.2f} s; whole `reiqa score` processes")
    print(
        f"| engine | max side | 500x500 img/s ({n_small} / {n_large}) | vs OpenVINO fp32 | 12 MP img/s | "
        "vs OpenVINO fp32 | not scoring s | CLIVE share SRCC | BIQ2021 Test SRCC | max / p99 diff | "
        "within 1 |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results["rows"]:
        key = "images_per_s_500x500_1920" if "images_per_s_500x500_1920" in r else "images_per_s_500x500_192"
        ratio = r[key] / fp32_ov[key] if fp32_ov else nan
        ratio_12 = r["images_per_s_12MP"] / fp32_ov["images_per_s_12MP"] if fp32_ov else nan
        speed = f"{r['images_per_s_500x500_192']:.2f} / {r.get('images_per_s_500x500_1920', nan):.2f}"
        print(
            f"| {r['engine']} | {r['max_side']} | {speed} | {ratio:.2f}x | {r['images_per_s_12MP']:.2f} | "
            f"{ratio_12:.2f}x | {r.get('not_scoring_s', nan):.1f} | {r.get('clive_share_srcc', nan):.4f} | "
            f"{r.get('biq_test_srcc_shipped', nan):.4f} | {r.get('max_abs_diff', nan):.2f} / "
            f"{r.get('p99_abs_diff', nan):.2f} | {r.get('share_within_1', nan):.1%} |"
        )
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
    ap.add_argument("--table", action="store_true", help="the speed/accuracy table (needs --data, --biq2021)")
    ap.add_argument(
        "--engines", nargs="+", default=["torch", "openvino", "openvino-int8"], help="--table rows"
    )
    ap.add_argument("--biq2021", type=Path, help="the BIQ2021 release (Images/, Test CSV) for --table")
    ap.add_argument("--biq-photos", type=int, default=400, help="seeded subset of BIQ2021 Test")
    ap.add_argument("--large", type=int, default=24, help="12 MP photos in --table")
    ap.add_argument(
        "--photos", type=int, default=192, help="500x500 photos in --table (and ten times as many)"
    )
    ap.add_argument("--exclude", type=Path, help="file names (one a line) left out of BIQ2021 Test")
    ap.add_argument("--accuracy-cache", type=Path, help="keep --table's accuracy per row here (resumable)")
    ap.add_argument(
        "--accuracy-only", action="store_true", help="--table: fill the accuracy cache, no timing"
    )
    args = ap.parse_args()
    if args.table:
        return table_mode(args)
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
