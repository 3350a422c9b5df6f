"""Training speed: steps per second per model and preset, through the real loop.

    python -m benchmarks.train_speed [--cases hific:tiny hific:small ...] [--steps N] [--warmup W]
    python -m benchmarks.train_speed --compare --cases bmshj2018-hyperprior:small --loss full \\
        --crop 128 --batch-size 8 --threads 2 --data bsds500 --data-split train --repeat 3

Each case runs ``codec.train.loop.train`` for ``warmup + steps`` steps in a temporary run
directory, with every loss stage switched on from step 0 (the adversarial stage is the most
expensive: metric + discriminator), and times the steps after the warm-up from the per-step log.
Data loading is included; validation (only at the end) is not. Besides wall-clock steps per
second it reports the main process's CPU seconds per step (all its threads): on a shared
machine the wall clock depends on what else runs, CPU time much less.

``--baseline`` runs the straightforward formulas (``PLIC_TRAIN_FAST=0``, see ``codec.fastpath``).
``--compare`` runs every case both ways, each run in a fresh process, alternating which goes
first, ``--repeat`` times, and prints the medians and their ratio beside the 1-minute load
averages: the "before" process gets today's environment, the "after" one the fast paths plus
``codec.fastpath.THREAD_ENV`` (OpenMP threads that sleep instead of spinning when they wait).
Writes ``runs/bench/train.md`` and ``runs/bench/train.json`` (``train-compare.*`` with
``--compare``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from codec import fastpath
from plic.cli import command, parser
from plic.fsio import atomic_write_text
from plic.measurement import load_1min, versions
from plic.paths import REPO_ROOT, runs_dir

DEFAULT_CASES = ["hific:tiny", "bmshj2018-hyperprior:tiny", "hific:small",
                 "bmshj2018-hyperprior:small", "mbt2018:small"]


def bench_case(model: str, preset: str, steps: int, warmup: int, lpips: str, device: str,
               threads: int, batch_size: int = 0, crop: int = 0, loss: str = "auto",
               data: str = "samples", data_split: str = "", workers: int = 1) -> dict:
    from codec.train import rundir
    from codec.train.config import TrainConfig
    from codec.train.loop import train

    # CPU time of this process at each logged step, beside the log's wall-clock rate
    cpu_at: dict[int, float] = {}
    append = rundir.append_metrics

    def append_timed(out, row):
        if "loss" in row:
            cpu_at[row["step"]] = time.process_time()
        append(out, row)

    if loss == "auto":
        from codec.models import baselines

        loss = "mse" if model in baselines() else "full"
    full = loss == "full"
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(model=model, preset=preset, steps=warmup + steps, out=tmp,
                          batch_size=batch_size, crop=crop, loss=loss,
                          lpips=lpips, perceptual_start=0.0, adversarial_start=0.0,
                          workers=workers, threads=threads, device=device, val_images=1,
                          val_crop=64, val_every=10 ** 9, data=data, data_split=data_split)
        t0 = time.perf_counter()
        rundir.append_metrics = append_timed
        try:
            train(cfg, progress=False)
        finally:
            rundir.append_metrics = append
        total = time.perf_counter() - t0
        rows = {r["step"]: r for r in rundir.read_metrics(tmp) if "loss" in r}
        r = cfg.resolved()
    # steps_per_s in the log is cumulative from the first step: recover elapsed times from it
    elapsed = {s: s / row["steps_per_s"] for s, row in rows.items()}
    end = warmup + steps
    timed = elapsed[end] - elapsed[warmup]
    cpu = cpu_at[end] - cpu_at[warmup]
    return {"model": model, "preset": preset, "loss": r.loss, "lpips": lpips if full else "",
            "batch_size": r.batch_size, "crop": r.crop, "device": device, "threads": threads,
            "data": data, "steps_timed": steps, "seconds": timed, "steps_per_s": steps / timed,
            "images_per_s": steps * r.batch_size / timed, "cpu_s_per_step": cpu / steps,
            "run_seconds": total, "fast": fastpath.enabled(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "")}


PROG = "python -m benchmarks.train_speed"


def _parser() -> argparse.ArgumentParser:
    p = parser(PROG, __doc__)
    p.add_argument("--cases", nargs="+", default=DEFAULT_CASES, help="MODEL:PRESET pairs")
    p.add_argument("--steps", type=int, default=5, help="timed steps per case")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--lpips", default="alex", help="metric for the perceptual term")
    p.add_argument("--loss", default="auto", choices=("auto", "full", "mse"),
                   help="auto: mse for the baselines, full for the seed (as codec.train)")
    p.add_argument("--device", default="", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    p.add_argument("--batch-size", type=int, default=0, help="0: preset default")
    p.add_argument("--crop", type=int, default=0, help="0: preset default")
    p.add_argument("--data", default="samples", help="training images (as codec.train --data)")
    p.add_argument("--data-split", default="", help="manifest split (as codec.train)")
    p.add_argument("--workers", type=int, default=1, help="data loader worker processes")
    p.add_argument("--baseline", action="store_true",
                   help="the straightforward formulas (same as PLIC_TRAIN_FAST=0)")
    p.add_argument("--compare", action="store_true",
                   help="every case before (--baseline) and after, in fresh processes")
    p.add_argument("--repeat", type=int, default=3, help="--compare: runs per case and side")
    p.add_argument("--result", default="", help=argparse.SUPPRESS)  # a --compare child's JSON
    p.add_argument("--out", default=str(runs_dir() / "bench"), help="output folder")
    return p


def _host(device: str) -> dict:
    import torch

    return {**versions(),
            "gpu": torch.cuda.get_device_name(0) if device.startswith("cuda") else ""}


def _settings_line(a) -> str:
    return (f"--loss {a.loss} --lpips {a.lpips} --data {a.data}"
            + (f" --data-split {a.data_split}" if a.data_split else "")
            + f" --threads {a.threads} --workers {a.workers}"
            + (f" --crop {a.crop}" if a.crop else "")
            + (f" --batch-size {a.batch_size}" if a.batch_size else "")
            + f"; {a.warmup} warm-up steps, then {a.steps} timed")


def run_cases(a, device: str) -> list[dict]:
    results = []
    for case in a.cases:
        model, preset = case.split(":")
        load_before = load_1min()
        res = bench_case(model, preset, a.steps, a.warmup, a.lpips, device, a.threads,
                         a.batch_size, a.crop, a.loss, a.data, a.data_split, a.workers)
        res["load_1min"] = [load_before, load_1min()]
        print(f"{model:24s} {preset:6s} {res['loss']:4s} batch {res['batch_size']} x "
              f"{res['crop']}px  {res['steps_per_s']:.3f} steps/s  {res['images_per_s']:.2f} "
              f"img/s  {res['cpu_s_per_step']:.2f} CPU s/step"
              + ("" if res["fast"] else "  (baseline)"), flush=True)
        results.append(res)
    return results


def _child(a, case: str, fast: bool, result: Path) -> dict:
    """One case on one side, in a fresh process (the OpenMP settings are read at start-up)."""
    env = {k: v for k, v in os.environ.items() if k != fastpath.ENV}
    env[fastpath.ENV] = "1" if fast else "0"
    if fast:
        fastpath.apply_thread_env(env)
    argv = [sys.executable, "-m", "benchmarks.train_speed", "--cases", case,
            "--steps", str(a.steps), "--warmup", str(a.warmup), "--lpips", a.lpips,
            "--loss", a.loss, "--threads", str(a.threads), "--batch-size", str(a.batch_size),
            "--crop", str(a.crop), "--data", a.data, "--data-split", a.data_split,
            "--workers", str(a.workers), "--result", str(result), "--out", str(result.parent)]
    if a.device:
        argv += ["--device", a.device]
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, cwd=REPO_ROOT)
    return json.loads(result.read_text())["results"][0]


def compare(a, device: str) -> list[dict]:
    runs: dict[tuple[str, bool], list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.repeat):
            for case in a.cases:
                for fast in ((False, True) if r % 2 == 0 else (True, False)):
                    res = _child(a, case, fast, Path(tmp) / "result.json")
                    runs.setdefault((case, fast), []).append(res)
                    print(f"{case:30s} {'after ' if fast else 'before'} run {r + 1}: "
                          f"{res['steps_per_s']:.3f} steps/s  {res['cpu_s_per_step']:.2f} CPU "
                          f"s/step  load {res['load_1min'][0]:.2f} / {res['load_1min'][1]:.2f}",
                          flush=True)
    rows = []
    for case in a.cases:
        before, after = runs[(case, False)], runs[(case, True)]
        med = {side: {k: statistics.median(x[k] for x in runs_)
                      for k in ("steps_per_s", "cpu_s_per_step")}
               for side, runs_ in (("before", before), ("after", after))}
        row = {"case": case, "loss": before[0]["loss"], "batch_size": before[0]["batch_size"],
               "crop": before[0]["crop"], "threads": a.threads, **{
                   f"{side}_{k}": v for side in med for k, v in med[side].items()},
               "speedup": med["after"]["steps_per_s"] / med["before"]["steps_per_s"],
               "cpu_ratio": med["before"]["cpu_s_per_step"] / med["after"]["cpu_s_per_step"],
               "before_runs": before, "after_runs": after}
        rows.append(row)
        print(f"{case:30s} before {row['before_steps_per_s']:.3f}  after "
              f"{row['after_steps_per_s']:.3f} steps/s  x{row['speedup']:.2f}  (CPU s/step "
              f"{row['before_cpu_s_per_step']:.2f} -> {row['after_cpu_s_per_step']:.2f}, "
              f"x{row['cpu_ratio']:.2f})", flush=True)
    return rows


def _loads(runs: list[dict]) -> str:
    return ", ".join(f"{r['load_1min'][0]:.1f}/{r['load_1min'][1]:.1f}" for r in runs)


def write_compare(out: Path, a, host: dict, rows: list[dict]) -> None:
    atomic_write_text(out / "train-compare.json", json.dumps(
        {"host": host, "settings": vars(a), "rows": rows}, indent=2) + "\n")
    lines = ["# Training speed before and after the fast paths "
             "(`python -m benchmarks.train_speed --compare`)", "",
             f"Host: {host['machine']}, {host['cpu_count']} CPUs, torch {host['torch']}. "
             f"Settings: {_settings_line(a)}. Each side {a.repeat} runs, each in a fresh "
             "process, alternating which side goes first; medians. Before: "
             f"{fastpath.ENV}=0 and the inherited environment; after: the fast paths and "
             + " ".join(f"{k}={v}" for k, v in fastpath.THREAD_ENV.items()) + ".",
             "CPU s/step is the training process's CPU time per step (all threads; spinning "
             "threads count). Load: 1-minute load average before/after each run (more than "
             f"{host['cpu_count']} means the runs shared the CPUs).", "",
             "| case | loss | batch x crop | before steps/s | after steps/s | speedup "
             "| CPU s/step before -> after | load before (per run) | load after (per run) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['case']} | {r['loss']} | {r['batch_size']} x {r['crop']} "
              f"| {r['before_steps_per_s']:.3f} | {r['after_steps_per_s']:.3f} "
              f"| x{r['speedup']:.2f} | {r['before_cpu_s_per_step']:.2f} -> "
              f"{r['after_cpu_s_per_step']:.2f} (x{r['cpu_ratio']:.2f}) "
              f"| {_loads(r['before_runs'])} | {_loads(r['after_runs'])} |" for r in rows]
    atomic_write_text(out / "train-compare.md", "\n".join(lines) + "\n")


def write_table(out: Path, a, host: dict, results: list[dict]) -> None:
    atomic_write_text(out / "train.json", json.dumps({"host": host, "results": results},
                                                     indent=2) + "\n")
    lines = ["# Training speed (`python -m benchmarks.train_speed`)", "",
             f"Host: {host['machine']}, {host['cpu_count']} CPUs, torch {host['torch']}"
             + (f", GPU {host['gpu']}" if host["gpu"] else ", no GPU")
             + f"; {a.threads} thread(s); fast paths "
             + ("on" if fastpath.enabled() else f"off ({fastpath.ENV}=0)") + ".",
             "All loss stages on (MSE + perceptual + GAN with --loss full; MSE only with "
             f"--loss mse); {a.warmup} warm-up steps, then {a.steps} timed; data loading "
             "included.",
             "The machine may be shared: the 1-minute load average before and after each case is "
             f"in the last column (more than {host['cpu_count']} means the benchmark did not "
             "have the CPUs to itself, and its speed is a lower bound).", "",
             "| model | preset | loss | batch x crop | steps/s | images/s | CPU s/step "
             "| load 1 min |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['model']} | {r['preset']} | {r['loss']} | {r['batch_size']} x {r['crop']} "
              f"| {r['steps_per_s']:.3f} | {r['images_per_s']:.2f} | {r['cpu_s_per_step']:.2f} "
              f"| {r['load_1min'][0]:.2f} / {r['load_1min'][1]:.2f} |" for r in results]
    atomic_write_text(out / "train.md", "\n".join(lines) + "\n")


@command(PROG)
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    a = _parser().parse_args(argv)
    if a.baseline:
        fastpath.set_enabled(False)
    if not a.compare:  # (--compare's children get their environment from _child)
        fastpath.apply_thread_env()  # as python -m codec.train does; before torch is imported
    import torch

    if not a.threads:
        a.threads = torch.get_num_threads()
    device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    out = Path(a.out)
    host = _host(device)
    if a.compare:
        rows = compare(a, device)
        write_compare(out, a, host, rows)
        print(f"wrote {out / 'train-compare.md'}")
        return 0
    results = run_cases(a, device)
    if a.result:  # a --compare child: its one result, nothing else
        atomic_write_text(Path(a.result), json.dumps({"results": results}) + "\n")
        return 0
    write_table(out, a, host, results)
    print(f"wrote {out / 'train.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
