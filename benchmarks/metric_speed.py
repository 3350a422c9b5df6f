"""Benchmark of the metric: throughput on 256x256 pairs, and fit time per 1,000 labels (CPU).

    python -m benchmarks.metric_speed [--nets alex,vgg,squeeze] [--labels 500] [--threads 1]

Throughput: pairs per second of ``official(net)`` on random 256x256 batches, without gradients
(scoring) and with the gradient to one input (a perceptual loss in codec training). Fit time: the
default ``lin`` fit (AlexNet, 64 px patches) on SIMULATED labels of the sample images
(``perceptual_metric.simulate``); its preparation part (image reading and trunk features) grows
with the number of labels, its optimiser steps do not. Writes runs/bench/perceptual_metric.md and
.json. Times are wall clock on a possibly shared CPU; the 1-minute load average at the start and
at the end is recorded beside them.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from perceptual_metric.fit import FitConfig, fit
from perceptual_metric.official import official
from perceptual_metric.simulate import simulate
from perceptual_metric.trunks import WeightsError
from plic.cli import command, parser
from plic.datasets import resolve_data
from plic.image_io import read_image
from plic.measurement import host, load_1min, write_report
from plic.paths import runs_dir


def throughput(net: str, size: int, batch: int, seconds: float) -> dict | None:
    try:
        d = official(net, download=False)
    except WeightsError as e:
        print(f"skipping {net}: {e}")
        return None
    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 3, size, size, generator=g)
    y = (x + 0.05 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    row = {"metric": d.name, "trunk_id": d.trunk_id, "size": f"{size}x{size}", "batch": batch}
    for key, grad in (("pairs_per_s", False), ("pairs_per_s_grad", True)):
        def once(grad=grad):
            if grad:
                yy = y.clone().requires_grad_(True)
                d(x, yy).sum().backward()
            else:
                with torch.no_grad():
                    d(x, y)
        once()  # warm-up
        n, t0, c0 = 0, time.perf_counter(), time.process_time()
        while n == 0 or time.perf_counter() - t0 < seconds:
            once()
            n += batch
        row[key] = round(n / (time.perf_counter() - t0), 2)
        # CPU seconds of this process per pair: steadier than wall time on a loaded machine
        row[key.replace("pairs_per_s", "cpu_ms_per_pair")] = round(
            1000 * (time.process_time() - c0) / n, 1)
    return row


def fit_time(n_labels: int, steps: int | None) -> dict:
    images = [read_image(r.path) for r in resolve_data("samples")]
    with tempfile.TemporaryDirectory() as tmp:
        simulate(Path(tmp), images, trials=n_labels, patch_size=64, seed=0)
        cfg = FitConfig(labels=str(Path(tmp) / "labels.csv"), out=str(Path(tmp) / "m.pt"),
                        steps=steps, threads=torch.get_num_threads())
        c0 = time.process_time()
        prov = fit(cfg, log=lambda *_: None)
        cpu = time.process_time() - c0
    per_k = 1000 / n_labels
    return {"labels": n_labels, "steps": prov["steps"], "batch": cfg.batch_size,
            "views": cfg.views, "fit_s": prov["fit_seconds"], "fit_cpu_s": round(cpu, 2),
            "prepare_s": prov["prepare_seconds"],
            "steps_s": round(prov["fit_seconds"] - prov["prepare_seconds"], 2),
            "prepare_s_per_1000_labels": round(prov["prepare_seconds"] * per_k, 2),
            "fit_s_per_1000_labels_at_this_step_count": round(
                prov["prepare_seconds"] * per_k + prov["fit_seconds"] - prov["prepare_seconds"],
                2),
            "val_2afc": round(prov.get("val_2afc", float("nan")), 4),
            "val_2afc_psnr": round(prov.get("val_2afc_psnr", float("nan")), 4)}


def to_markdown(meta: dict, rows: list[dict], fit_row: dict | None) -> str:
    lines = ["# benchmarks.metric_speed", "",
             f"{meta['threads']} torch thread(s), {meta['machine']}, torch {meta['torch']}. "
             f"1-minute load average {meta['loadavg_start']} at start, {meta['loadavg_end']} at "
             "end: the CPU is shared, so these are lower bounds on an idle machine's speed.", "",
             f"## Throughput (random {meta['size']}x{meta['size']} pairs)", "",
             "| metric | trunk | batch | pairs/s (no grad) | pairs/s (grad to input) "
             "| CPU ms/pair (no grad) | CPU ms/pair (grad) |",
             "|---|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['metric']} | {r['trunk_id']} | {r['batch']} | {r['pairs_per_s']} | "
              f"{r['pairs_per_s_grad']} | {r['cpu_ms_per_pair']} | {r['cpu_ms_per_pair_grad']} |"
              for r in rows]
    if fit_row:
        f = fit_row
        lines += ["", "## Fit time (lin, AlexNet, 64 px patches, simulated labels)", "",
                  f"{f['labels']} simulated labels (not human data), {f['views']} views per "
                  f"trial, {f['steps']} steps of {f['batch']} trials: {f['fit_s']} s in all, "
                  f"{f['prepare_s']} s reading images and computing trunk features, "
                  f"{f['steps_s']} s of optimiser steps and validation; {f['fit_cpu_s']} CPU "
                  "seconds of this process (wall time above includes waiting for the CPU).", "",
                  "| per 1,000 labels | seconds |", "|---|---:|",
                  f"| preparation (grows with labels) | {f['prepare_s_per_1000_labels']} |",
                  f"| whole fit, same step count | "
                  f"{f['fit_s_per_1000_labels_at_this_step_count']} |", "",
                  f"Validation 2AFC {f['val_2afc']} (PSNR {f['val_2afc_psnr']}) on held-out "
                  "references."]
    return "\n".join(lines) + "\n"


PROG = "python -m benchmarks.metric_speed"


@command(PROG)
def main(argv=None) -> int:
    p = parser(PROG, __doc__)
    p.add_argument("--nets", default="alex,vgg,squeeze", help="comma-separated LPIPS trunks")
    p.add_argument("--size", type=int, default=256, help="square image side (px)")
    p.add_argument("--batch", type=int, default=8, help="pairs per call")
    p.add_argument("--seconds", type=float, default=5.0, help="time per throughput measure")
    p.add_argument("--labels", type=int, default=500, help="simulated labels for the fit time "
                   "(0: skip)")
    p.add_argument("--steps", type=int, default=None, help="fit steps (default: fit's default)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1: steadiest on a shared CPU)")
    p.add_argument("--out", default=str(runs_dir() / "bench"), help="output folder")
    args, unknown = p.parse_known_args(argv)
    if unknown:
        print(f"benchmarks.metric_speed: ignoring {unknown}")
    torch.set_num_threads(args.threads)
    meta = {**{k: v for k, v in host().items() if k != "loadavg"},
            "loadavg_start": load_1min(), "size": args.size}
    rows = []
    for net in [n for n in args.nets.split(",") if n]:
        row = throughput(net, args.size, args.batch, args.seconds)
        if row:
            print(row, flush=True)
            rows.append(row)
    fit_row = None
    if args.labels:
        try:
            fit_row = fit_time(args.labels, args.steps)
            print(fit_row, flush=True)
        except WeightsError as e:
            print(f"skipping the fit time: {e}")
    meta["loadavg_end"] = load_1min()
    write_report(args.out, "perceptual_metric", {"meta": meta, "throughput": rows, "fit": fit_row},
                 to_markdown(meta, rows, fit_row), json_end="\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
