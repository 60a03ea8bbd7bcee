"""Time and peak memory of ``reiqa cull`` on 1,000 and 10,000 generated files, and how they grow.

    .venv/bin/python benchmarks/cull.py --images DATA/BSR/BSDS500/data/images \\
        [--sizes 1000 10000] [--work /tmp/reiqa-cull-bench] [--out docs/reports/cull.json]

The files are bursts, so that grouping does real work: scenes are windows (128 x 96 pixels) of
the photos under ``--images`` (recursively), 5 per photo at random places; each scene is
shot 4 times (as it is, shifted by a few pixels, re-exposed, and blurred, noisy or
JPEG-compressed with the project's distortion engine), written as JPEG files (quality 90).

Measured at each size, each in its own process (peak RSS of that process alone):

- the whole command, ``reiqa cull FOLDER -o cull.csv`` with the default model on the CPU: wall
  time and peak RSS, first run (decode, encoders, cache) and again from its cache;
- the grouping alone (``reiqa.cull.group_embeddings`` on the files' embeddings, read from that
  cache): time and peak memory of the arrays (``tracemalloc``, which numpy reports to), and the
  pair search (``similar_pairs``) at tile sides 512, 2048 (the default) and 8192, beside one
  brute-force N x N similarity matrix;
- how each grows from the first size to the last (ratio of times, of memory), and the grouping
  projected to 100,000 files (the search is exact: time grows as N^2, memory as N).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reiqa import distortions  # noqa: E402
from reiqa.atomic import write_text_atomic  # noqa: E402
from reiqa.cull import BLOCK, DEFAULT_SIMILARITY, group_embeddings, score_and_embed, similar_pairs  # noqa: E402
from reiqa.inputs import find_images  # noqa: E402
from reiqa.io import load_image  # noqa: E402

SHOTS = 4
WINDOWS = 5  # scenes cut from each photo
SIDE = (96, 128)  # (height, width) of a scene window


def make_bursts(folder: Path, n_files: int, photos: list[Path], seed: int = 0) -> list[Path]:
    """``n_files`` JPEGs: bursts of SHOTS shots of WINDOWS windows of each photo in turn."""
    import torch
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    paths: list[Path] = []
    h, w = SIDE
    scene = 0
    for photo_path in photos * (1 + n_files // (SHOTS * WINDOWS * len(photos))):
        photo = load_image(photo_path)
        for _ in range(WINDOWS):
            top = int(torch.randint(0, photo.shape[1] - h - 8, (), generator=g))
            left = int(torch.randint(0, photo.shape[2] - w - 8, (), generator=g))
            window = photo[:, top : top + h + 8, left : left + w + 8]
            kind = ("gaussian_blur", "white_noise", "jpeg")[scene % 3]
            shots = [
                window[:, :h, :w],
                window[:, 8:, 8:],
                distortions.apply(window[None, :, 4 : 4 + h, :w], "brighten", 2, generator=g)[0],
                distortions.apply(window[None, :, :h, 4 : 4 + w], kind, 2, generator=g)[0],
            ]
            for k, shot in enumerate(shots[: n_files - len(paths)]):
                pixels = shot.permute(1, 2, 0).mul(255).round().byte().numpy()
                paths.append(folder / f"s{scene:05d}-{k}.jpg")
                Image.fromarray(pixels).save(paths[-1], quality=90)
            scene += 1
            if len(paths) == n_files:
                return paths
    return paths


def _timed_process(command: list[str], work: Path) -> dict:
    """Run ``command``; its wall time and peak RSS (of that process alone). Its stderr (a progress
    bar, the summary) goes to a file: a pipe left unread would fill and stop it."""
    import tempfile

    with tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        err.seek(0)
        text = err.read()
    if os.waitstatus_to_exitcode(status) not in (0, 3):
        raise SystemExit(f"{' '.join(command)} failed:\n{text}")
    return {
        "seconds": wall,
        "peak_rss_mib": usage.ru_maxrss / 1024,
        # the report names the work folder WORK, not a path of the machine that ran it
        "summary": [line.replace(str(work), "WORK") for line in text.strip().splitlines()[-2:]],
    }


def whole_command(folder: Path, output: Path) -> dict:
    cli = [sys.executable, "-m", "reiqa", "cull", str(folder), "-o", str(output), "--device", "cpu"]
    first = _timed_process(cli, output.parent)
    cached = _timed_process(cli, output.parent)
    return {"first_run": first, "from_cache": cached}


def grouping(folder: Path, output: Path) -> dict:
    """In a process of its own: the embeddings from the command's cache, then the grouping."""
    command = [sys.executable, __file__, "--grouping-of", str(folder), str(output)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"the grouping process failed:\n{done.stderr}")
    return json.loads(done.stdout.splitlines()[-1])


def _grouping_here(folder: Path, output: Path) -> dict:
    import tracemalloc

    from reiqa.inference import load

    model = load("default", device="cpu")
    paths = sorted(find_images([folder]), key=os.fsencode)
    cache = output.with_name(f".{output.name}.cache")
    embedded = score_and_embed(model, paths, cache=cache)
    assert embedded.cached == len(paths), "run the whole command first: its cache is read here"
    unit = embedded.unit
    scores = np.array([r.score for r in embedded.records])
    out: dict = {
        "files": len(paths),
        "similarity": DEFAULT_SIMILARITY,
        "dims": unit.shape[1],
        "embeddings_mib": unit.nbytes / 2**20,
    }
    tracemalloc.start()
    start = time.perf_counter()
    groups = group_embeddings(unit, scores, similarity=DEFAULT_SIMILARITY)
    out["group_seconds"] = time.perf_counter() - start
    out["group_peak_mib"] = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    sizes = np.bincount(groups.group)
    out["groups"] = {"count": groups.count, "largest": int(sizes.max()), "mean": float(sizes.mean())}
    out["search"] = {}
    for block in (512, BLOCK, 8192):
        tracemalloc.start()
        start = time.perf_counter()
        pairs = similar_pairs(unit, DEFAULT_SIMILARITY, block=block)
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        out["search"][f"block {block}"] = {"seconds": seconds, "peak_mib": peak, "pairs": len(pairs)}
    tracemalloc.start()
    start = time.perf_counter()
    full = unit @ unit.T
    i, _ = np.nonzero(np.triu(full >= DEFAULT_SIMILARITY, k=1))
    seconds = time.perf_counter() - start
    out["search"]["brute force N x N"] = {
        "seconds": seconds,
        "peak_mib": tracemalloc.get_traced_memory()[1] / 2**20,
        "pairs": len(i),
    }
    tracemalloc.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=Path, help="photos to cut scenes from (recursive)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--work", type=Path, default=Path("/tmp/reiqa-cull-bench"))
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "reports" / "cull.json")
    ap.add_argument("--grouping-of", nargs=2, type=Path, help=argparse.SUPPRESS)  # the child process
    args = ap.parse_args()
    if args.grouping_of:
        print(json.dumps(_grouping_here(*args.grouping_of)))
        return
    if args.images is None:
        ap.error("--images is required")
    photos = find_images([args.images], recursive=True)
    results = {}
    for n in args.sizes:
        folder = args.work / f"files-{n}"
        if not folder.is_dir() or len(find_images([folder])) != n:
            start = time.perf_counter()
            make_bursts(folder, n, photos)
            print(f"{n} files made in {time.perf_counter() - start:.0f} s", flush=True)
        output = args.work / f"cull-{n}.csv"
        for stale in (output, output.with_name(f".{output.name}.reiqa.json")):
            stale.unlink(missing_ok=True)
        cache = output.with_name(f".{output.name}.cache")
        for chunk in cache.glob("*.safetensors") if cache.is_dir() else ():
            chunk.unlink()
        results[n] = {"command": whole_command(folder, output), "grouping": grouping(folder, output)}
        print(f"{n} files: {json.dumps(results[n])}", flush=True)
    report = _summarise(results, args.sizes)
    _print(report)
    write_text_atomic(args.out, json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")


def _summarise(results: dict, sizes: list[int]) -> dict:
    small, large = results[sizes[0]], results[sizes[-1]]
    factor = sizes[-1] / sizes[0]

    def ratio(path: tuple[str, ...]) -> float:
        a, b = small, large
        for key in path:
            a, b = a[key], b[key]
        return b / a

    g = large["grouping"]
    projected = (100_000 / sizes[-1]) ** 2 * g["group_seconds"]
    return {
        "similarity": large["grouping"]["similarity"],
        "shots_per_scene": SHOTS,
        "scene_window": list(SIDE),
        "cpu_threads": os.cpu_count(),
        "by_size": results,
        "growth": {
            "files": factor,
            "command_seconds": ratio(("command", "first_run", "seconds")),
            "command_peak_rss": ratio(("command", "first_run", "peak_rss_mib")),
            "grouping_seconds": ratio(("grouping", "group_seconds")),
            "grouping_peak_memory": ratio(("grouping", "group_peak_mib")),
        },
        "grouping_projected_100k": {
            "seconds": projected,
            "embeddings_mib": g["embeddings_mib"] * 100_000 / sizes[-1],
            "tile_mib": BLOCK * BLOCK * 4 / 2**20,
        },
    }


def _print(report: dict) -> None:
    print(
        f"{'files':>6} | {'command s':>9} {'RSS MiB':>8} {'cached s':>8} | {'group s':>7} {'peak MiB':>8} "
        f"{'groups':>6} {'largest':>7} | search s: 512 / 2048 / 8192 / N x N (peak MiB)"
    )
    for n, r in report["by_size"].items():
        c, g = r["command"], r["grouping"]
        s = g["search"]
        search = " / ".join(f"{v['seconds']:.2f} ({v['peak_mib']:.0f})" for v in s.values())
        print(
            f"{n:>6} | {c['first_run']['seconds']:9.1f} {c['first_run']['peak_rss_mib']:8.0f} "
            f"{c['from_cache']['seconds']:8.1f} | {g['group_seconds']:7.2f} {g['group_peak_mib']:8.1f} "
            f"{g['groups']['count']:>6} {g['groups']['largest']:>7} | {search}"
        )
    gr = report["growth"]
    print(
        f"x{gr['files']:.0f} files: command time x{gr['command_seconds']:.1f}, "
        f"RSS x{gr['command_peak_rss']:.2f}; grouping time x{gr['grouping_seconds']:.1f}, "
        f"memory x{gr['grouping_peak_memory']:.1f}"
    )
    p = report["grouping_projected_100k"]
    print(
        f"100,000 files (projected): grouping {p['seconds']:.0f} s, embeddings {p['embeddings_mib']:.0f} MiB"
    )


if __name__ == "__main__":
    main()
