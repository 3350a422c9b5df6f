"""``python -m benchmarks.cluster_overhead``: what ``--cluster`` costs and gives, measured.

The same distortions work (default: the 5 sample images, full size, jpeg and webp, the 4
default targets: 10 items) from a cold output folder, three ways:

- ``local``: ``python -m distortions --jobs 1`` (the items in this process, one after another);
- ``local:1``: a Dask LocalCluster of one worker process: the overhead of the engine;
- ``local:2``: two worker processes: the speed-up on this machine.

Each cluster's start (the LocalCluster up and its workers warm: the same imports this process
has made before timing ``local``) is timed apart from the run, and both are reported; the
outputs must be byte-identical (checked). Then each codec's cost per megapixel (all 4 targets'
rate search, one image, one thread, here), and from it a paper estimate of a CLIC-scale run
(160 Mpx, CLIC 2021's test set, x the measured codecs x 4 targets; and 100 times that) on N
workers, scaled by the measured local:2 efficiency (which says nothing about a network's or a
shared filesystem's cost: an estimate, not a measurement). Written to
``runs/bench/cluster.md`` and ``.json``; the load average is recorded beside the times.
"""

from __future__ import annotations

import io
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

from distortions.backends import BackendOptions
from distortions.checkpoints import choose_learned
from distortions.run import DEFAULT_TARGETS, DistortionsConfig, run
from plic.cli import CliError, command, parser
from plic.cluster import Cluster
from plic.datasets import DataError, add_data_args, records_from_args
from plic.image_io import image_size
from plic.measurement import load_averages, write_report
from plic.paths import runs_dir

CLIC_MPX = 160.0  # CLIC 2021's test set, about 160 megapixels
COST_CODECS = ("jpeg", "jpeg444", "webp", "avif", "jxl", "hevc-bpgcfg")
WORKERS = (1, 8, 32, 128)


def _warm() -> bool:
    """The imports an item makes, so a timed run pays none of them."""
    import PIL.Image  # noqa: F401
    import pytorch_msssim  # noqa: F401
    import torch  # noqa: F401

    from distortions import run as _run  # noqa: F401
    from plic import quality  # noqa: F401

    return True


def megapixels(records) -> float:
    """Pixels of the images (from the manifest, else the files' headers) / 1e6."""
    total = 0
    for r in records:
        if r.width and r.height:
            total += int(r.width) * int(r.height)
        else:
            w, h = image_size(r.path)
            total += w * h
    return total / 1e6


def _outputs(out: Path) -> tuple[bytes, bytes]:
    return (out / "index.csv").read_bytes(), (out / "searches.csv").read_bytes()


def cpu_seconds() -> dict:
    """CPU seconds (user + system) so far of this process and of each process under it (a
    LocalCluster's nannies and workers), by pid; ``"ended"``: the children that ended (a
    codec's ffmpeg)."""
    import resource

    import psutil

    me = psutil.Process()
    ended = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = {"ended": ended.ru_utime + ended.ru_stime}
    for proc in [me, *me.children(recursive=True)]:
        try:
            t = proc.cpu_times()
            out[proc.pid] = t.user + t.system
        except psutil.Error:
            pass
    return out


def _cpu_delta(before: dict, after: dict) -> float:
    return sum(v - before.get(pid, 0.0) for pid, v in after.items())


def _one(how: str, records, cfg: DistortionsConfig) -> dict:
    """One timed run: wall seconds of the start and of the run, and the CPU seconds the run
    took in this process and every process under it (load-independent, unlike wall time)."""
    shutil.rmtree(cfg.out, ignore_errors=True)
    if how == "local":
        c0, t0 = cpu_seconds(), time.perf_counter()
        report = run(records, cfg)
        t1, c1 = time.perf_counter(), cpu_seconds()
        return {"start_s": 0.0, "run_s": t1 - t0, "cpu_s": _cpu_delta(c0, c1),
                "items": report.items, "errors": len(report.errors),
                "outputs": _outputs(Path(cfg.out))}
    t0 = time.perf_counter()
    with Cluster(how, dashboard=False, log=io.StringIO()) as cl:
        cl.client.run(_warm)
        c1, t1 = cpu_seconds(), time.perf_counter()
        report = run(records, cfg, cluster=cl)
        t2, c2 = time.perf_counter(), cpu_seconds()
    return {"start_s": t1 - t0, "run_s": t2 - t1, "cpu_s": _cpu_delta(c1, c2),
            "items": report.items, "errors": len(report.errors),
            "outputs": _outputs(Path(cfg.out))}


def codec_costs(records, codecs, targets, backend: BackendOptions, work: Path) -> dict:
    """CPU seconds per megapixel of each codec's whole rate search (all targets), here,
    serially (CPU, not wall: on a shared machine the wall time is mostly the neighbours'; a
    worker with a core of its own takes about the CPU time)."""
    mpx = megapixels(records)
    out = {}
    for codec in codecs:
        folder = work / f"cost-{codec}"
        shutil.rmtree(folder, ignore_errors=True)
        c0, t0 = cpu_seconds(), time.perf_counter()
        rep = run(records, DistortionsConfig(out=str(folder), codecs=(codec,), targets=targets,
                                             jobs=1, progress=False, backend=backend))
        wall, cpu = time.perf_counter() - t0, _cpu_delta(c0, cpu_seconds())
        if rep.errors:
            out[codec] = {"error": rep.errors[0][1]}
        else:
            out[codec] = {"s_per_mpx": cpu / mpx, "wall_s": wall, "cpu_s": cpu,
                          "encodes": rep.encodes}
    return out


def estimate(costs: dict, efficiency: float, overhead: float, n_targets: int) -> dict:
    """CPU hours of a CLIC-scale run and of a corpus 100 times larger, and wall hours on N
    workers, from the measured per-megapixel costs."""
    ok = {c: v["s_per_mpx"] for c, v in costs.items() if "s_per_mpx" in v}
    s_per_mpx = sum(ok.values()) * (1 + max(overhead, 0.0))
    rows = []
    for scale, name in ((1, "CLIC 2021 test (160 Mpx)"), (100, "100 x CLIC (16,000 Mpx)")):
        cpu_h = CLIC_MPX * scale * s_per_mpx / 3600
        rows.append({"corpus": name, "mpx": CLIC_MPX * scale, "cpu_hours": cpu_h,
                     "wall_hours": {n: cpu_h / (n * (efficiency if n > 1 else 1.0))
                                    for n in WORKERS}})
    return {"codecs": list(ok), "targets": n_targets, "s_per_mpx_all_codecs": s_per_mpx,
            "efficiency": efficiency, "overhead": overhead, "rows": rows}


def _md(res: dict) -> str:
    t, lines = res["timing"], []
    lines += ["# --cluster benchmark (distortions)", "",
              f"command: `{res['command']}`", "",
              f"- work: {res['items']} items ({res['images']} images of {res['data']}"
              f"{', crop ' + str(res['crop']) if res['crop'] else ', full size'} x "
              f"{', '.join(res['codecs'])} x targets {', '.join(map(str, res['targets']))}), "
              f"repeats {res['repeat']} (medians)",
              f"- machine: {res['cpus']} CPUs, shared: load average before / after "
              f"{res['load_before']} / {res['load_after']}",
              f"- outputs identical across the three (index.csv and searches.csv bytes): "
              f"{res['identical']}", "",
              "| how | start (s) | run (s) | start + run (s) | run's CPU (s) |",
              "|---|---|---|---|---|"]
    for how in ("local", "local:1", "local:2"):
        v = t[how]
        lines.append(f"| {how} | {v['start_s']:.1f} | {v['run_s']:.1f} | "
                     f"{v['start_s'] + v['run_s']:.1f} | {v['cpu_s']:.1f} |")
    o, s = res["overhead"], res["speedup"]
    lines += ["", f"- overhead of local:1 against local: {100 * o['run']:+.1f}% on the run's "
                  f"wall time, {100 * o['total']:+.1f}% with the cluster's start, "
                  f"{100 * o['cpu']:+.1f}% in CPU seconds (this process and every process "
                  f"under it: less sensitive to the load) (goal: under 10%)",
              f"- speed-up of local:2 over local:1: {s['run']:.2f}x on the run, "
              f"{s['total']:.2f}x with the start (efficiency {s['run'] / 2:.0%} of 2 workers)",
              ""]
    if res.get("costs"):
        lines += ["## per-codec cost, here (one thread, all targets' rate search)", "",
                  f"{res['cost_images']} image(s), {res['cost_mpx']:.2f} Mpx", "",
                  "| codec | CPU s / Mpx | CPU s | wall s | encodes |", "|---|---|---|---|---|"]
        for c, v in res["costs"].items():
            lines.append(f"| {c} | {v['s_per_mpx']:.2f} | {v['cpu_s']:.1f} | {v['wall_s']:.1f} | "
                         f"{v['encodes']} |" if "s_per_mpx" in v
                         else f"| {c} | not measured: {v['error']} | | | |")
        e = res["estimate"]
        lines += ["", f"## paper estimate: {len(e['codecs'])} codecs x {e['targets']} targets, "
                      f"{e['s_per_mpx_all_codecs']:.1f} CPU s per Mpx for all of them (with "
                      f"the measured local:1 CPU overhead), N workers (one core each) at the "
                      f"measured local:2 efficiency ({e['efficiency']:.0%})", "",
                  "| corpus | CPU hours | " + " | ".join(f"{n} worker{'s' * (n > 1)} (h)"
                                                      for n in WORKERS) + " |",
                  "|---|---|" + "---|" * len(WORKERS)]
        for r in e["rows"]:
            lines.append(f"| {r['corpus']} | {r['cpu_hours']:.1f} | "
                         + " | ".join(f"{r['wall_hours'][n]:.2f}" for n in WORKERS) + " |")
        lines += ["", "An estimate from this machine's per-item CPU cost, not a measurement of "
                      "a cluster: it leaves out the shared filesystem's and the network's cost "
                      "and assumes the workers scale as local:2 did."]
    return "\n".join(lines) + "\n"


PROG = "python -m benchmarks.cluster_overhead"


@command(PROG)
def main(argv: list[str] | None = None) -> int:
    p = parser(PROG, __doc__)
    add_data_args(p)
    p.add_argument("--codecs", default="jpeg,webp", help="codecs of the timed work")
    p.add_argument("--targets", default=",".join(map(str, DEFAULT_TARGETS)))
    p.add_argument("--crop", type=int, default=None, help="centred crop (default: full images)")
    p.add_argument("--limit", type=int, default=None, help="only the first N images")
    p.add_argument("--repeat", type=int, default=1, help="repeats of the three (medians)")
    p.add_argument("--cost-codecs", default=",".join(COST_CODECS) + ",learned",
                   help="codecs whose cost per Mpx feeds the estimate; 'learned' adds the "
                        "first codec checkpoint of checkpoints/ (default: %(default)s)")
    p.add_argument("--cost-images", type=int, default=1, help="images for the per-codec costs")
    p.add_argument("--no-costs", action="store_true", help="skip the costs and the estimate")
    p.add_argument("--name", default="cluster", help="report name under runs/bench/")
    args = p.parse_args(argv)
    try:
        records = records_from_args(args)
    except DataError as e:
        raise CliError(e) from None
    records = records[:args.limit] if args.limit else records
    codecs = tuple(c for c in args.codecs.split(",") if c)
    targets = tuple(float(t) for t in args.targets.split(","))
    work = runs_dir() / "bench" / "cluster-work"
    _warm()
    load_before = load_averages()
    times: dict[str, list] = {h: [] for h in ("local", "local:1", "local:2")}
    outputs = {}
    for r in range(args.repeat):
        order = ["local", "local:1", "local:2"]
        order = order[r % 3:] + order[:r % 3]  # rotate: no configuration always goes first
        for how in order:
            cfg = DistortionsConfig(out=str(work / how.replace(":", "")), codecs=codecs,
                                    targets=targets, crop=args.crop, jobs=1, progress=False)
            res = _one(how, records, cfg)
            print(f"{how}: start {res['start_s']:.1f} s, run {res['run_s']:.1f} s, CPU "
                  f"{res['cpu_s']:.1f} s", file=sys.stderr)
            times[how].append(res)
            outputs[how] = res["outputs"]
    med = {h: {k: statistics.median(v[k] for v in vs) for k in ("start_s", "run_s", "cpu_s")}
           for h, vs in times.items()}
    total = {h: v["start_s"] + v["run_s"] for h, v in med.items()}
    res = {"command": "python -m benchmarks.cluster_overhead " + " ".join(
               argv if argv is not None else sys.argv[1:]),
           "data": args.data, "images": len(records), "crop": args.crop, "codecs": list(codecs),
           "targets": list(targets), "items": times["local"][0]["items"],
           "repeat": args.repeat, "cpus": os.cpu_count(),
           "identical": len(set(outputs.values())) == 1,
           "errors": {h: [v["errors"] for v in vs] for h, vs in times.items()},
           "timing": med,
           "overhead": {"run": med["local:1"]["run_s"] / med["local"]["run_s"] - 1,
                        "total": total["local:1"] / total["local"] - 1,
                        "cpu": med["local:1"]["cpu_s"] / med["local"]["cpu_s"] - 1},
           "speedup": {"run": med["local:1"]["run_s"] / med["local:2"]["run_s"],
                       "total": total["local:1"] / total["local:2"]}}
    if not args.no_costs:
        learned = choose_learned(None, None).codecs
        names = []
        for c in args.cost_codecs.split(","):
            if c == "learned":
                names += list(learned)[:1]
            elif c:
                names.append(c)
        backend = BackendOptions(learned=tuple(learned.items()))
        crecs = records[:args.cost_images]
        res["cost_images"] = len(crecs)
        res["cost_mpx"] = megapixels(crecs)
        res["costs"] = codec_costs(crecs, names, targets, backend, work)
        res["estimate"] = estimate(res["costs"], min(1.0, res["speedup"]["run"] / 2),
                                   res["overhead"]["cpu"], len(targets))
    res["load_after"] = load_averages()
    res["load_before"] = load_before
    write_report(runs_dir() / "bench", args.name, res, _md(res), json_end="\n")
    return 0 if res["identical"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
