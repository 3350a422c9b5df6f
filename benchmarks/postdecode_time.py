"""Decode time of ``hevc-bpgcfg-pd`` beside plain ``hevc-bpgcfg``, on one 768x512 image.

    python -m benchmarks.postdecode_time [--model CKPT] [--image kodim03] [--qp 43] [--repeat 5]
        [--threads 2] [--out runs/bench]

Each repeat decodes the same stream both ways, alternating: ffmpeg's HEVC decode alone, then
the full post-decoded decode (ffmpeg + the learned stage). Reported per image: wall seconds and
CPU seconds (this process's user + system time plus ffmpeg's, as children), medians over the
repeats, and the stage's own share (its CPU time inside ``codec.postdecode.enhance``). The
budget is 1 s of CPU a 768x512 image for the stage; CPU time, unlike wall time, does not grow
with the load of a shared machine (the 1-minute load average is reported beside it). The
pixels are checked to be identical at every repeat.
"""

from __future__ import annotations

import functools
import hashlib
import os
import resource
import statistics
import sys
import time

from codec import hevc
from codec.postdecode import api, container
from plic.cli import CliError, command, parser
from plic.measurement import write_report
from plic.paths import REPO_ROOT
from plic.quality import bpp

from .sample_image import image_meta, parse_and_pick

BUDGET_CPU_S = 1.0


def _cpu() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _timed(fn):
    w, c = time.perf_counter(), _cpu()
    out = fn()
    return out, time.perf_counter() - w, _cpu() - c


PROG = "python -m benchmarks.postdecode_time"


@command(PROG)
def main(argv: list[str] | None = None) -> int:
    p = parser(PROG, __doc__)
    p.add_argument("--model", default=str(REPO_ROOT / "checkpoints" / "hevc-bpgcfg-pd.pt"),
                   help="post-decoder checkpoint (default checkpoints/hevc-bpgcfg-pd.pt)")
    p.add_argument("--image", default="kodim03", help="sample image id (768x512)")
    p.add_argument("--qp", type=int, default=43, help="HEVC QP (default 43, about 0.15 bpp)")
    p.add_argument("--repeat", type=int, default=5, help="repeats (default 5)")
    p.add_argument("--threads", type=int, default=2,
                   help="torch threads of the caller (default 2; the stage itself runs on one)")
    p.add_argument("--out", default="", help="also write bench_postdecode.{json,md} here")
    args, image = parse_and_pick(p, argv, p.prog)
    try:
        model = api.load(args.model)
    except (OSError, ValueError) as e:
        raise CliError(e) from None
    data = api.encode(image, model, qp=args.qp).data
    payload = container.unpack(data)[1]
    api.decode(data, model)  # warm-up: imports, first oneDNN kernels
    plain, full, stage = [], [], []
    digest = None
    for _ in range(args.repeat):
        _, w0, c0 = _timed(lambda: hevc.decode(payload))
        res, w1, c1 = _timed(lambda: api.decode(data, model))
        dec = hevc.decode(payload)
        _, w2, c2 = _timed(functools.partial(api.enhance, dec, args.qp, model))
        plain.append((w0, c0))
        full.append((w1, c1))
        stage.append((w2, c2))
        d = hashlib.sha256(res.image.tobytes()).hexdigest()
        if digest not in (None, d):
            print("error: decoded pixels changed between repeats", file=sys.stderr)
            return 1
        digest = d

    def med(rows, i):
        return round(statistics.median(r[i] for r in rows), 3)

    report = {**image_meta(args.image, image, args.repeat), "qp": args.qp,
              "bytes": len(data), "bpp": round(bpp(len(data), *image.shape[:2]), 4),
              "model": os.path.relpath(args.model, REPO_ROOT) if os.path.isabs(args.model)
              else args.model,
              "hevc_wall_s": med(plain, 0), "hevc_cpu_s": med(plain, 1),
              "pd_wall_s": med(full, 0), "pd_cpu_s": med(full, 1),
              "stage_wall_s": med(stage, 0), "stage_cpu_s": med(stage, 1),
              "stage_cpu_budget_s": BUDGET_CPU_S, "within_budget": med(stage, 1) <= BUDGET_CPU_S,
              "pixels_sha256": digest}
    md = (f"# hevc-bpgcfg-pd decode time ({report['size']} {args.image}, QP {args.qp}, "
          f"{report['bpp']} bpp; {report['threads']} torch threads, load {report['loadavg']})\n\n"
          f"| decode | wall s | CPU s |\n| --- | --- | --- |\n"
          f"| hevc-bpgcfg (ffmpeg) | {report['hevc_wall_s']} | {report['hevc_cpu_s']} |\n"
          f"| hevc-bpgcfg-pd (ffmpeg + stage) | {report['pd_wall_s']} | {report['pd_cpu_s']} |\n"
          f"| the stage alone | {report['stage_wall_s']} | {report['stage_cpu_s']} |\n\n"
          f"stage CPU {report['stage_cpu_s']} s, budget {BUDGET_CPU_S} s: "
          f"{'within' if report['within_budget'] else 'OVER'}; medians of {args.repeat}.\n")
    if args.out:
        write_report(args.out, "bench_postdecode", report, md)
    else:
        print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
