"""Pre-training speed, split into the data pipeline (views) and the model step.

    .venv/bin/python benchmarks/pretrain.py --data DATA [--device cuda] [--presets cpu-small paper]

DATA is a folder holding ``clive/images/`` (the first 64 images are used).

For each preset: images per second of the view pipeline on one core (what one DataLoader worker
delivers; on CUDA, the batched pipeline on the GPU), and images per second of the model step
(query forward + backward, key forward, queue, LARS) on all cores or the GPU. The machine's
measured matmul throughput, timed in the same run, gives the step's share of the machine's peak
(the encoders' FLOPs per step divided by the time). Prints a table, writes JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import device_name, matmul_gflops  # noqa: E402

from reiqa.io import load_image  # noqa: E402
from reiqa.resize import cap_size  # noqa: E402
from reiqa.runtime import tune_allocator  # noqa: E402
from reiqa.train.config import PRESETS  # noqa: E402
from reiqa.train.loop import train_step  # noqa: E402
from reiqa.train.state import build_state, build_views  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="the shared data folder (clive/images inside)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--presets", nargs="+", default=["cpu-small", "paper"])
    ap.add_argument(
        "--batch", type=int, default=None, help="images per step (default: preset's, capped at 8 on CPU)"
    )
    ap.add_argument("--steps", type=int, default=3, help="timed model steps (after one warm-up)")
    ap.add_argument("--amp", default="none", choices=["none", "bf16", "fp16"])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "pretrain.json")
    args = ap.parse_args()

    tune_allocator()
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    cores = torch.get_num_threads()
    peak = matmul_gflops(device, cores)
    paths = sorted((args.data / "clive" / "images").iterdir())[:64]
    results = {
        "device": device_name(device),
        "threads": cores,
        "torch": torch.__version__,
        "matmul_gflops": peak,
        "presets": [],
    }
    print(f"device={results['device']} threads={cores} matmul peak {peak:.0f} GFLOP/s")
    for name in args.presets:
        cfg = PRESETS[name].replace(amp=args.amp)
        batch = args.batch or (cfg.batch_size if device.type == "cuda" else min(cfg.batch_size, 8))
        images = [cap_size(load_image(p), max_side=cfg.data.max_side) for p in paths[:batch]]
        views_fn = build_views(cfg)
        # data pipeline: one core (a DataLoader worker), or the device when views run there
        torch.set_num_threads(1 if device.type == "cpu" else cores)
        dev_images = [im.to(device) for im in images]
        gen = torch.Generator(device).manual_seed(0)
        views_fn(dev_images[:1], generator=gen)
        sync()
        start = time.perf_counter()
        views = views_fn(dev_images, generator=gen)
        sync()
        views_per_s = batch / (time.perf_counter() - start)
        # model step on all cores
        torch.set_num_threads(cores)
        state = build_state(cfg.replace(seed=0), device)  # what `reiqa pretrain` trains
        step_gen = torch.Generator().manual_seed(0)

        def step(views=views, state=state, step_gen=step_gen):
            return train_step(state, views, lr=0.1, generator=step_gen)

        with FlopCounterMode(display=False) as counter:
            step()
        flops = counter.get_total_flops()
        sync()
        start = time.perf_counter()
        for _ in range(args.steps):
            step()
        sync()
        step_s = (time.perf_counter() - start) / args.steps
        model_per_s = batch / step_s
        share = flops / step_s / 1e9 / peak
        row = {
            "preset": name,
            "arch": cfg.model.arch,
            "patch": cfg.data.quality.patch_size if cfg.data.views == "quality" else cfg.data.content.size,
            "instances_per_image": views.shape[1],
            "batch_images": batch,
            "amp": cfg.amp,
            "views_images_per_s_one_core" if device.type == "cpu" else "views_images_per_s": views_per_s,
            "model_images_per_s": model_per_s,
            "step_s": step_s,
            "step_gflop": flops / 1e9,
            "share_of_matmul_peak": share,
        }
        results["presets"].append(row)
        print(
            f"{name:>10}: {cfg.model.arch} {row['patch']}px x{views.shape[1]} instances,"
            f" batch {batch}: "
            f"views {views_per_s:6.2f} img/s ({'1 core' if device.type == 'cpu' else 'device'}), "
            f"model step {model_per_s:6.2f} img/s ({step_s:.2f} s, {flops / 1e9:.0f} GFLOP, "
            f"{share:.0%} of the matmul peak)",
            flush=True,
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
