"""``python -m benchmarks.evaluate_commits``: the evaluation of an earlier commit and of this
checkout, side by side in one run on one machine, from the same state (the codecs' files already
made, no metric or Inception feature cached), and whether they give the same numbers.

    python -m benchmarks.evaluate_commits --before 117faec --data kodak --after-args= \\
        --after-args=--no-dists -- --classic learned,hevc-bpgcfg --classic-targets 0.15,0.3

The earlier commit runs from ``git archive REV`` in a temporary folder (this checkout's venv, its
code first on ``PYTHONPATH``). Every run gets its own fresh ``--out`` and shares one
``--dist-cache``, filled first by an untimed run without metrics. Each timed run records wall
seconds, CPU seconds (user + system of the process and its children) and the 1-minute load
average before and after; runs alternate (before, after, before, after, ...) so a change of load
hits both. Writes ``bench.json`` and ``bench.md`` in ``--out``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from plic.cli import CliError, Parser, command
from plic.paths import REPO_ROOT

COMPARED = ("bpp", "psnr", "ms_ssim", "lpips_alex", "lpips_vgg", "lpips_squeeze", "dists",
            "metric_fitted")
SUMMARY_COMPARED = (*COMPARED, "fid", "kid", "fid_patches")


def _load() -> float:
    return os.getloadavg()[0]


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(cmd: list[str], cwd: Path, env: dict, log: Path) -> dict:
    """Run ``cmd``; wall and CPU seconds, load average before and after, exit status."""
    l0, c0, t0 = _load(), _cpu(), time.perf_counter()
    with log.open("w") as f:
        rc = subprocess.run(cmd, cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT).returncode
    return {"wall_s": round(time.perf_counter() - t0, 1), "cpu_s": round(_cpu() - c0, 1),
            "load_start": round(l0, 2), "load_end": round(_load(), 2), "rc": rc,
            "log": str(log)}


def max_differences(a: dict, b: dict) -> dict:
    """Largest |a - b| per column over the per-image rows and the summary rows that both
    results.json have, joined by (method, target, image) / (method, target)."""
    out = {}

    def join(rows, keys):
        return {tuple(r.get(k) for k in keys): r for r in rows}

    for part, keys, cols in (("per_image", ("method", "target_bpp", "image_id"), COMPARED),
                             ("summary", ("method", "target_bpp"), SUMMARY_COMPARED)):
        ja, jb = join(a[part], keys), join(b[part], keys)
        common = sorted(set(ja) & set(jb), key=str)
        out[f"{part}_rows"] = [len(ja), len(jb), len(common)]
        for col in cols:
            diffs = [abs(ja[k][col] - jb[k][col]) for k in common
                     if ja[k].get(col) is not None and jb[k].get(col) is not None]
            if diffs:
                out[f"{part}.{col}"] = max(diffs)
    return out


PROG = "python -m benchmarks.evaluate_commits"


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog=PROG,
        description="The evaluation of an earlier commit and of this checkout, side by side in "
                    "one run from the same state (codec files made, no metric cached): wall and "
                    "CPU seconds, load averages, and the largest difference of their numbers.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Arguments after -- go to every python -m codec.evaluate run (both sides).")
    p.add_argument("--before", default="HEAD", help="git revision of 'before' (default HEAD)")
    p.add_argument("--data", default="samples", help="data set of every run (default samples)")
    p.add_argument("--data-root", default=None, help="data root of every run")
    p.add_argument("--after-args", action="append", default=[],
                   help="extra arguments of an 'after' run, e.g. --after-args=--no-dists for "
                        "the columns the earlier commit has; repeat for several variants "
                        "(default: one, with none)")
    p.add_argument("--repeat", type=int, default=1, help="before/after pairs (default 1)")
    p.add_argument("--threads", type=int, default=1,
                   help="OMP_NUM_THREADS of every run (default 1: equal and robust under load)")
    p.add_argument("--out", default=None, help="output folder (default runs/bench/evaluate)")
    p.add_argument("--dist-cache", default=None,
                   help="codec files shared by every run (default OUT/dist-cache)")
    return p


@command(PROG)
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    args = build_parser().parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    from plic.paths import runs_dir

    out = Path(args.out or runs_dir() / "bench" / "evaluate").resolve()
    out.mkdir(parents=True, exist_ok=True)
    try:
        rev = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", args.before],
                             capture_output=True, text=True, check=True).stdout.strip()
    except (subprocess.CalledProcessError, FileNotFoundError) as e:
        raise CliError(f"--before {args.before!r} is not a git revision here ({e})") from None
    tmp = Path(tempfile.mkdtemp(prefix="eval-before-"))
    archive = subprocess.run(["git", "-C", str(REPO_ROOT), "archive", rev], capture_output=True,
                             check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tf:
        tf.extractall(tmp, filter="data")
    data = ["--data", args.data] + (["--data-root", args.data_root] if args.data_root else [])
    dist = Path(args.dist_cache).resolve() if args.dist_cache else out / "dist-cache"
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    env.setdefault("PLIC_SHARED", str(REPO_ROOT.parent / "shared"))
    env_before = {**env, "PYTHONPATH": str(tmp)}
    base = [sys.executable, "-m", "codec.evaluate", *data, *extra, "--dist-cache", str(dist),
            "--no-progress"]
    print(f"bench: before = {rev[:10]} (in {tmp}), after = this checkout; "
          f"{args.repeat} pair(s); load {_load():.2f}", file=sys.stderr)
    fill = timed([*base, "--lpips", "none", "--no-fid", "--out", str(out / "fill")], tmp,
                 env_before, out / "fill.log")
    print(f"bench: codec files ready ({fill['wall_s']} s, untimed)", file=sys.stderr)
    if fill["rc"] != 0:
        print(f"error: filling the codec files failed; see {fill['log']}", file=sys.stderr)
        return 1
    try:
        return _pairs(args, out, base, tmp, env, env_before, rev, extra)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _pairs(args, out: Path, base: list, tmp: Path, env: dict, env_before: dict, rev: str,
           extra: list) -> int:
    sides = {"before": (tmp, env_before, [])}
    for v in args.after_args or [""]:
        sides["after" + (f" {v}" if v else "")] = (REPO_ROOT, env, shlex.split(v))
    runs: dict[str, list] = {s: [] for s in sides}
    for i in range(args.repeat):
        for k, (side, (cwd, e, more)) in enumerate(sides.items()):
            o = out / f"run{k}-{i}"
            r = timed([*base, "--out", str(o), *more], cwd, e, out / f"run{k}-{i}.log")
            r["out"] = str(o)
            runs[side].append(r)
            print(f"bench: {side} #{i}: {r['wall_s']} s wall, {r['cpu_s']} s CPU, load "
                  f"{r['load_start']} -> {r['load_end']}, exit {r['rc']}", file=sys.stderr)
            if r["rc"] != 0:
                print(f"error: the {side} run failed; see {r['log']}", file=sys.stderr)
                return 1
    res = {s: json.loads((Path(runs[s][0]["out"]) / "results.json").read_text())
           for s in runs}
    med = {s: {k: statistics.median(r[k] for r in runs[s]) for k in ("wall_s", "cpu_s")}
           for s in runs}
    after = [s for s in sides if s != "before"]
    doc = {"before": rev, "after": "working tree", "data": args.data, "extra": extra,
           "threads": args.threads, "runs": runs, "median": med, "cpu": os.cpu_count(),
           "compare": {s: {"speedup_wall": round(med["before"]["wall_s"] / med[s]["wall_s"], 2),
                           "speedup_cpu": round(med["before"]["cpu_s"] / med[s]["cpu_s"], 2),
                           "max_abs_difference": max_differences(res["before"], res[s])}
                       for s in after}}
    (out / "bench.json").write_text(json.dumps(doc, indent=1))
    lines = [f"before = {rev[:10]}, after = this checkout; `python -m codec.evaluate "
             f"{shlex.join(['--data', args.data, *extra])}`, OMP_NUM_THREADS={args.threads}",
             "", "| run | wall s | CPU s | load start -> end |", "|---|---|---|---|"]
    for s in runs:
        for i, r in enumerate(runs[s]):
            lines.append(f"| {s} #{i} | {r['wall_s']} | {r['cpu_s']} | {r['load_start']} -> "
                         f"{r['load_end']} |")
    lines.append("")
    for s, c in doc["compare"].items():
        diffs = c["max_abs_difference"]
        worst = max((v for k, v in diffs.items() if not k.endswith("_rows")), default=0.0)
        lines.append(f"{s}: {c['speedup_wall']}x wall, {c['speedup_cpu']}x CPU (medians); "
                     f"largest difference of a shared number {worst:.2e} (rows before/after/"
                     f"common: {diffs.get('per_image_rows')})")
    (out / "bench.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
