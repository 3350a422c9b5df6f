"""``python -m benchmarks.train_parity``: trainer parity with CompressAI. Runs the pairs of
``benchmarks.train_parity_runs``, evaluates them and reports (JSON, Markdown, RD plot); see
``benchmarks.train_parity_runs`` for what is compared and how."""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from plic.cli import CliError, command, parser
from plic.fsio import atomic_write_text
from plic.paths import REPO_ROOT, runs_dir

from . import train_parity_runs as P  # noqa: N812

DEFAULT_LAMBDAS = (0.0035, 0.0067, 0.013)  # CompressAI's qualities 2, 3 and 4 of this model


PROG = "python -m benchmarks.train_parity"


def build_parser() -> argparse.ArgumentParser:
    p = parser(PROG, P.__doc__)
    p.add_argument("--lambdas", type=float, nargs="+", default=list(DEFAULT_LAMBDAS),
                   help="CompressAI's --lambda per RD point (ours: lambda_rate 1, k_mse LAMBDA)")
    p.add_argument("--steps", type=int, default=2000, help="training steps per run (theirs: "
                   "the fewest whole epochs with at least this many)")
    p.add_argument("--crop", type=int, default=64, help="square training crop (multiple of 64)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--preset", default="paper", help="our model preset (paper: N=128, M=192, "
                   "CompressAI's quality 1-5 size; tiny for tests)")
    p.add_argument("--variants", nargs="+", default=["default", "delta1"],
                   choices=tuple(P.VARIANTS), help="our trainer's settings: default (as shipped:"
                   " bin widths drawn in the model's delta_range) and delta1 (bin width 1 only)")
    p.add_argument("--data", default="bsds500", help="training images: manifest or folder")
    p.add_argument("--data-split", default="train", help="manifest split trained on")
    p.add_argument("--test-split", default="val", help="split of CompressAI's per-epoch test")
    p.add_argument("--test-images", type=int, default=8, help="images in CompressAI's test set")
    p.add_argument("--data-root", default="", help="as codec.train --data-root")
    p.add_argument("--val-data", default="samples", help="our end-of-run validation images")
    p.add_argument("--kodak", default="kodak", help="evaluation images (manifest or folder)")
    p.add_argument("--eval-images", type=int, default=24, help="first N evaluation images")
    p.add_argument("--ckpt-every", type=int, default=200, help="our checkpoint interval (steps)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--nice", type=int, default=19, help="niceness of the training processes")
    p.add_argument("--out", default=str(runs_dir() / "parity"), help="work folder")
    p.add_argument("--result", default="", help="also write the report JSON here")
    p.add_argument("--plot", default="", help="write the RD plot (PNG) here")
    p.add_argument("--no-train", action="store_true", help="report on the finished runs only")
    p.add_argument("--snapshot-every", type=int, default=400, help="copy each run's checkpoint "
                   "every N steps to OUT/snap/STEP (a multiple of --ckpt-every and of their epoch "
                   "length; 0: none)")
    p.add_argument("--eval-at", type=int, default=0, help="code the runs' copies at this step "
                   "(OUT/snap/STEP) instead of the finished runs")
    p.add_argument("--eval-jobs", type=int, default=6, help="runs coded on Kodak at a time "
                   "(one single-threaded process each)")
    p.add_argument("--child", default="", help=argparse.SUPPRESS)  # one run, in its process
    p.add_argument("--eval-run", default="", help=argparse.SUPPRESS)  # code one run on Kodak
    p.add_argument("--eval-kind", default="ours", help=argparse.SUPPRESS)
    p.add_argument("--child-lambda", type=float, default=0.0, help=argparse.SUPPRESS)
    return p


def run_dirs(a, lmbda: float) -> dict[str, Path]:
    d = Path(a.out) / f"lambda-{lmbda:g}"
    return {"theirs": d / "theirs", **{f"ours-{v}": d / f"ours-{v}" for v in a.variants}}


def _child_argv(a, name: str, lmbda: float) -> list[str]:
    argv = ["nice", "-n", str(a.nice), sys.executable, "-m", "benchmarks.train_parity",
            "--child", name, "--child-lambda", repr(lmbda), "--steps", str(a.steps),
            "--crop", str(a.crop), "--batch-size", str(a.batch_size), "--preset", a.preset,
            "--val-data", a.val_data, "--ckpt-every", str(a.ckpt_every), "--seed", str(a.seed),
            "--snapshot-every", str(a.snapshot_every),
            "--out", str(Path(a.out).resolve()), "--variants", *a.variants]
    return argv


def _alive(run: Path) -> int:
    """The pid of a child still training ``run`` (another harness started it), else 0."""
    try:
        pid = int((run / "pid").read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return 0
    return pid


def run_group(a, lmbda: float) -> None:
    """Every run of one lambda started together (runs another harness is training are waited
    for, not started again); waits for all, sampling the load."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT),
                                                       os.environ.get("PYTHONPATH")]))}
    procs, others = [], []
    for name, run in run_dirs(a, lmbda).items():
        if (run / P.DONE).is_file():
            continue
        if _alive(run):
            others.append((name, run))
            continue
        run.mkdir(parents=True, exist_ok=True)
        log = open(run / "log.txt", "a")
        p = subprocess.Popen(_child_argv(a, name, lmbda), env=env, stdout=log,
                             stderr=subprocess.STDOUT, cwd=REPO_ROOT)
        (run / "pid").write_text(str(p.pid))
        procs.append((name, p, log))
    if not procs and not others:
        return
    print(f"lambda {lmbda:g}: training {', '.join(n for n, _, _ in procs)} side by side"
          + (f" (waiting for {', '.join(n for n, _ in others)}, started elsewhere)"
             if others else ""), flush=True)
    load_log = Path(a.out) / "load.jsonl"
    while any(p.poll() is None for _, p, _ in procs) or any(_alive(r) for _, r in others):
        with open(load_log, "a") as f:
            f.write(json.dumps({"t": time.time(), "load": os.getloadavg()}) + "\n")
        time.sleep(15)
    failed = [n for n, p, _ in procs if p.returncode]
    failed += [n for n, r in others if not (r / P.DONE).is_file()]
    for _, _, log in procs:
        log.close()
    if failed:
        raise RuntimeError(f"{', '.join(failed)} at lambda {lmbda:g} failed; see log.txt in "
                           f"{Path(a.out) / f'lambda-{lmbda:g}'}")


def _loads(path: Path, window) -> list[float]:
    if not path.is_file():
        return []
    rows = [json.loads(s) for s in path.read_text().splitlines() if s.strip()]
    return [r["load"][0] for r in rows if window[0] <= r["t"] <= window[1]]


def eval_dirs(a, lmbda: float) -> dict[str, Path]:
    """The runs coded on Kodak: the finished runs, or with ``--eval-at S`` their copies at step
    S (``OUT/snap/S/lambda-L/NAME``, for a comparison at equal steps when not all finished)."""
    if not a.eval_at:
        return run_dirs(a, lmbda)
    base = Path(a.out) / "snap" / str(a.eval_at)
    return {n: base / r.parent.name / n for n, r in run_dirs(a, lmbda).items()}


def evaluate_all(a) -> None:
    """Code every finished run on Kodak, ``--eval-jobs`` runs at a time, each in its own
    single-threaded process (results cached in the run's ``kodak.json``)."""
    todo = [(r, "theirs" if n == "theirs" else "ours") for lmbda in a.lambdas
            for n, r in eval_dirs(a, lmbda).items()
            if (r / P.DONE).is_file() and not (r / "kodak.json").is_file()]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    running: list[tuple[Path, subprocess.Popen]] = []
    while todo or running:
        while todo and len(running) < max(1, a.eval_jobs):
            run, kind = todo.pop(0)
            argv = ["nice", "-n", str(a.nice), sys.executable, "-m", "benchmarks.train_parity",
                    "--eval-run", str(run), "--eval-kind", kind, "--kodak", a.kodak,
                    "--eval-images", str(a.eval_images)]
            running.append((run, subprocess.Popen(argv, env=env, cwd=REPO_ROOT)))
        time.sleep(2)
        for run, p in list(running):
            if p.poll() is not None:
                running.remove((run, p))
                if p.returncode:
                    raise RuntimeError(f"coding {run} on Kodak failed (exit {p.returncode})")


def summarize(a) -> dict:
    from plic.rd import bd_quality, bd_rate, load_anchor

    evaluate_all(a)
    points: dict[str, list[dict]] = {}
    groups = []
    for lmbda in a.lambdas:
        timed = {n: r for n, r in run_dirs(a, lmbda).items() if (r / P.TIMING).is_file()
                 and P.speed(r)["steps_timed"]}
        if timed:
            spans = {n: P.speed(r)["span"] for n, r in timed.items()}
            window = (max(s[0] for s in spans.values()), min(s[1] for s in spans.values()))
            sp = {n: P.speed(r, window) for n, r in timed.items()}
            loads = _loads(Path(a.out) / "load.jsonl", window) + _loads(
                Path(a.out) / f"lambda-{lmbda:g}" / "load.jsonl", window)
            g = {"lambda": lmbda, "overlap_s": round(window[1] - window[0], 1),
                 "load_1min_mean": round(statistics.mean(loads), 2) if loads else None,
                 "load_1min_range": [min(loads), max(loads)] if loads else None,
                 "speed_side_by_side": {n: {k: v for k, v in s.items() if k != "span"}
                                        for n, s in sp.items()},
                 "speed_whole_run": {n: {k: v for k, v in P.speed(r).items() if k != "span"}
                                     for n, r in timed.items()}}
            if "theirs" in sp:
                g["steps_per_s_ratio"] = {n: sp[n]["steps_per_s"] / sp["theirs"]["steps_per_s"]
                                          for n in sp if n != "theirs"}
                g["theirs_lr"] = _their_lrs(timed["theirs"])
            groups.append(g)
        for n, r in eval_dirs(a, lmbda).items():
            if not (r / P.DONE).is_file():
                continue
            ev = P.evaluate(r, "theirs" if n == "theirs" else "ours", a)
            done = json.loads((r / P.DONE).read_text())
            points.setdefault(n, []).append(
                {"lambda": lmbda, "steps": done["steps"],
                 **{k: v for k, v in ev.items() if k != "per_image"}})
    res = {"points": points, "groups": groups, "bd_psnr_db": {}, "bd_rate_pct": {},
           "steps_per_s_ratio": {}}
    th = points.get("theirs", [])
    for n, pts in points.items():
        if n == "theirs":
            continue
        ratios = [g["steps_per_s_ratio"][n] for g in groups if n in g.get("steps_per_s_ratio", {})]
        res["steps_per_s_ratio"][n] = statistics.median(ratios) if ratios else None
        if len(pts) >= 2 and len(th) >= 2:
            args = ([p["bpp"] for p in th], [p["psnr"] for p in th],
                    [p["bpp"] for p in pts], [p["psnr"] for p in pts])
            # None where the curves do not overlap (in rate for BD-PSNR, in PSNR for BD-rate)
            res["bd_psnr_db"][n] = _finite(bd_quality(*args))
            res["bd_rate_pct"][n] = _finite(bd_rate(*args))
    try:
        anc = load_anchor(P.ANCHOR)
        res["anchor"] = {"name": P.ANCHOR, "bpp": anc.bpp, "psnr": anc.psnr}
    except FileNotFoundError:
        res["anchor"] = None
    return res


def _finite(v: float) -> float | None:
    return v if math.isfinite(v) else None


def _their_lrs(run: Path) -> list[float]:
    rows = [json.loads(s) for s in (run / P.TIMING).read_text().splitlines() if s.strip()]
    return sorted({r["lr"] for r in rows if "lr" in r}, reverse=True)


def plot(res: dict, path: Path, a) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from plic.fsio import atomic_save_figure

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    style = {"theirs": ("k", "o", "CompressAI examples/train.py")}
    colors = iter(["tab:blue", "tab:orange", "tab:green"])
    for n, pts in res["points"].items():
        c, m, label = style.get(n, (next(colors), "s", f"ours (codec.train, {n[5:]})"))
        pts = sorted(pts, key=lambda p: p["bpp"])
        ax.plot([p["bpp"] for p in pts], [p["psnr"] for p in pts], marker=m, color=c,
                label=label)
    xmax = max(p["bpp"] for pts in res["points"].values() for p in pts)
    if res.get("anchor"):
        an = [(b, q) for b, q in zip(res["anchor"]["bpp"], res["anchor"]["psnr"])
              if b <= 1.5 * xmax]
        ax.plot(*zip(*an), ":", color="gray", marker=".",
                label="bmshj2018-hyperprior published (CompressAI, fully trained)")
    ax.set_xlabel("bpp (real bitstreams)")
    ax.set_ylabel("PSNR (dB, RGB, mean over images)")
    ax.set_title(f"Kodak ({a.eval_images} images) after {a.eval_at or a.steps} training steps, "
                 f"batch {a.batch_size} x "
                 f"{a.crop}px crops", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    atomic_save_figure(fig, path)
    plt.close(fig)


def markdown(res: dict, a, command: str) -> str:
    lines = ["# Trainer parity with CompressAI (`python -m benchmarks.train_parity`)", "",
             f"`{command}`", "",
             "| trainer | lambda | steps | Kodak bpp | estimate bpp | PSNR dB | encode s (CPU s) "
             "| decode s (CPU s) |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for n, pts in res["points"].items():
        for p in sorted(pts, key=lambda p: p["lambda"]):
            lines.append(f"| {n} | {p['lambda']:g} | {p['steps']} | {p['bpp']:.4f} "
                         f"| {p['est_bpp']:.4f} "
                         f"| {p['psnr']:.2f} | {p['encode_s']:.2f} ({p['encode_cpu_s']:.2f}) "
                         f"| {p['decode_s']:.2f} ({p['decode_cpu_s']:.2f}) |")
    lines += ["", "| lambda | side by side s | load 1 min (mean, range) | "
              + " | ".join(f"{n} steps/s" for n in res["points"]) + " | ratio ours/theirs |",
              "| --- | --- | --- | " + " | ".join("---" for _ in res["points"]) + " | --- |"]
    for g in res["groups"]:
        sp = g["speed_side_by_side"]
        lr = g.get("steps_per_s_ratio", {})
        load = (f"{g['load_1min_mean']} ({g['load_1min_range'][0]:.2f}-"
                f"{g['load_1min_range'][1]:.2f})" if g["load_1min_mean"] else "")
        lines.append(f"| {g['lambda']:g} | {g['overlap_s']} | {load} | "
                     + " | ".join(f"{sp[n]['steps_per_s']:.3f}" if n in sp else ""
                                  for n in res["points"])
                     + " | " + ", ".join(f"{n} x{v:.2f}" for n, v in lr.items()) + " |")
    def fmt(v, spec):
        return "none (no overlap)" if v is None else format(v, spec)

    lines += ["", "BD-PSNR of ours against theirs (dB, positive: ours better): "
              + ", ".join(f"{n} {fmt(v, '+.3f')}" for n, v in res["bd_psnr_db"].items()),
              "BD-rate (%, negative: ours better): "
              + ", ".join(f"{n} {fmt(v, '+.1f')}" for n, v in res["bd_rate_pct"].items()),
              "steps/s ratio (median over lambdas): "
              + ", ".join(f"{n} x{v:.2f}" for n, v in res["steps_per_s_ratio"].items()
                          if v is not None)]
    return "\n".join(lines) + "\n"


@command(PROG, errors=(ImportError, RuntimeError))
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    a = build_parser().parse_args(argv)
    if a.crop % 64:
        raise CliError(f"--crop {a.crop} is not a multiple of 64 (CompressAI's hyperprior needs "
                       "it)")
    if a.snapshot_every and a.snapshot_every % a.ckpt_every:
        raise CliError(f"--snapshot-every {a.snapshot_every} is not a multiple of --ckpt-every "
                       f"{a.ckpt_every} (our copies are taken at checkpoints)")
    out = Path(a.out)
    if a.eval_run:
        P.evaluate(Path(a.eval_run), a.eval_kind, a)
        return 0
    if a.child:
        run = run_dirs(a, a.child_lambda)[a.child]
        if a.child == "theirs":
            P.run_theirs(a, a.child_lambda, run.resolve(), (out / "data").resolve())
        else:
            P.run_ours(a, a.child_lambda, run.resolve(), a.child[len("ours-"):])
        return 0
    P.compressai_train_module()
    P.link_data(a, out / "data")
    if not a.no_train:
        for lmbda in a.lambdas:
            run_group(a, lmbda)
    res = summarize(a)
    command = " ".join(["python -m benchmarks.train_parity", *argv])
    from plic.measurement import versions

    report = {"command": command, "host": versions(), "settings": {
        k: v for k, v in vars(a).items() if not k.startswith("child")}, **res}
    atomic_write_text(out / "parity.json", json.dumps(report, indent=1) + "\n")
    md = markdown(res, a, command)
    atomic_write_text(out / "parity.md", md)
    if a.result:
        atomic_write_text(Path(a.result), json.dumps(report, indent=1) + "\n")
    if a.plot and res["points"]:
        plot(res, Path(a.plot), a)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
