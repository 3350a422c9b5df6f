"""Training speed: steps per second per model and preset, through the real loop.

    python -m codec.train_bench [--cases hific:tiny hific:small ...] [--steps N] [--warmup W]

Each case runs ``codec.train.loop.train`` for ``warmup + steps`` steps in a temporary run
directory, with every loss stage switched on from step 0 (the adversarial stage is the most
expensive: metric + discriminator), and times the steps after the warm-up from the per-step log.
Data loading is included; validation (only at the end) is not. Writes ``runs/bench/train.md`` and
``runs/bench/train.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from .fsio import atomic_write_text
from .paths import runs_dir

DEFAULT_CASES = ["hific:tiny", "bmshj2018-hyperprior:tiny", "hific:small",
                 "bmshj2018-hyperprior:small", "mbt2018:small"]
BASELINES = ("bmshj2018-factorized", "bmshj2018-hyperprior", "mbt2018")


def bench_case(model: str, preset: str, steps: int, warmup: int, lpips: str, device: str,
               threads: int, batch_size: int = 0, crop: int = 0) -> dict:
    from .train.config import TrainConfig
    from .train.loop import train
    from .train.rundir import read_metrics

    full = model not in BASELINES
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(model=model, preset=preset, steps=warmup + steps, out=tmp,
                          batch_size=batch_size, crop=crop, loss="full" if full else "mse",
                          lpips=lpips, perceptual_start=0.0, adversarial_start=0.0,
                          workers=1, threads=threads, device=device, val_images=1,
                          val_crop=64, val_every=10 ** 9)
        t0 = time.perf_counter()
        train(cfg, progress=False)
        total = time.perf_counter() - t0
        rows = {r["step"]: r for r in read_metrics(tmp) if "loss" in r}
        r = cfg.resolved()
    # steps_per_s in the log is cumulative from the first step: recover elapsed times from it
    elapsed = {s: s / row["steps_per_s"] for s, row in rows.items()}
    end = warmup + steps
    timed = elapsed[end] - elapsed[warmup]
    return {"model": model, "preset": preset, "loss": r.loss, "lpips": lpips if full else "",
            "batch_size": r.batch_size, "crop": r.crop, "device": device, "threads": threads,
            "steps_timed": steps, "seconds": timed, "steps_per_s": steps / timed,
            "images_per_s": steps * r.batch_size / timed, "run_seconds": total}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m codec.train_bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", nargs="+", default=DEFAULT_CASES, help="MODEL:PRESET pairs")
    p.add_argument("--steps", type=int, default=5, help="timed steps per case")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--lpips", default="alex", help="metric for the perceptual term")
    p.add_argument("--device", default="", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--threads", type=int, default=torch.get_num_threads(),
                   help="torch CPU threads")
    p.add_argument("--batch-size", type=int, default=0, help="0: preset default")
    p.add_argument("--crop", type=int, default=0, help="0: preset default")
    p.add_argument("--out", default=str(runs_dir() / "bench"), help="output folder")
    a = p.parse_args(argv)
    device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    results = []
    for case in a.cases:
        model, preset = case.split(":")
        load_before = os.getloadavg()[0]
        res = bench_case(model, preset, a.steps, a.warmup, a.lpips, device, a.threads,
                         a.batch_size, a.crop)
        res["load_1min"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
        print(f"{model:24s} {preset:6s} batch {res['batch_size']} x {res['crop']}px  "
              f"{res['steps_per_s']:.3f} steps/s  {res['images_per_s']:.2f} img/s", flush=True)
        results.append(res)
    host = {"python": sys.version.split()[0], "torch": str(torch.__version__),
            "machine": platform.machine(), "cpu_count": os.cpu_count(),
            "gpu": torch.cuda.get_device_name(0) if device.startswith("cuda") else ""}
    out = Path(a.out)
    atomic_write_text(out / "train.json", json.dumps({"host": host, "results": results},
                                                     indent=2) + "\n")
    lines = ["# Training speed (`python -m codec.train_bench`)", "",
             f"Host: {host['machine']}, {host['cpu_count']} CPUs, torch {host['torch']}"
             + (f", GPU {host['gpu']}" if host["gpu"] else ", no GPU")
             + f"; {a.threads} thread(s).",
             "All loss stages on (MSE + perceptual + GAN for the seed; MSE for baselines); "
             f"{a.warmup} warm-up steps, then {a.steps} timed; data loading included.",
             "The machine may be shared: the 1-minute load average before and after each case is "
             f"in the last column (more than {host['cpu_count']} means the benchmark did not "
             "have the CPUs to itself, and its speed is a lower bound).", "",
             "| model | preset | loss | batch x crop | steps/s | images/s | load 1 min |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['model']} | {r['preset']} | {r['loss']} | {r['batch_size']} x {r['crop']} "
              f"| {r['steps_per_s']:.3f} | {r['images_per_s']:.2f} | "
              f"{r['load_1min'][0]:.2f} / {r['load_1min'][1]:.2f} |" for r in results]
    atomic_write_text(out / "train.md", "\n".join(lines) + "\n")
    print(f"wrote {out / 'train.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
