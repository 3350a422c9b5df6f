"""What a stream can cost per byte under the untrusted-input policy (issue 32).

    python -m benchmarks.untrusted_streams [--models CKPT,...] [--image kodim03] [--shapes HxW,...]

For each codec checkpoint (default: every ``checkpoints/*.pt``) the reference is a Kodak stream:
``--image`` coded at bin width 1 (the API's default), decoded in ``--repeat`` runs (the best
kept); its seconds per byte is the yardstick. Then, for each shape, two streams:

* the cheapest stream of that size there is (a flat image at bin width 2^19: every symbol zero),
  decoded without the policy (the cost per byte a stream buys today) and with it
  (``untrusted=True``: the time it takes to refuse it);
* the cheapest stream of that size the policy ACCEPTS: a noise image coded at the largest bin
  width whose stream has at least ``decode_work / max_pixels_per_byte`` bytes (bisection on the
  bin width, the encoder's analysis once), decoded with the policy on. Its seconds per byte
  over the reference's is the ratio the issue bounds: at most 10.

Decoding cost is nearly independent of the symbols' values (it follows the pixels computed and
the wavefront steps), so the accepted stream with the fewest bytes is the dearest per byte of
its shape. Writes runs/bench/untrusted.md and .json (rows are kept as they finish: ``--resume``
skips those done). Run it with ``nice`` on a shared machine; wall times follow the load, which
each row records.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from codec import api, limits
from codec.bitstream import BIN_WIDTH_RANGE, unpack
from plic.checkpoint import load_checkpoint
from plic.cli import command, parser
from plic.fsio import atomic_write_text
from plic.measurement import host, load_1min, write_report
from plic.paths import runs_dir
from plic.quality import bpp

from .sample_image import pick_image

ROOT = Path(__file__).resolve().parents[1]
SHAPES = ("1x1,64x64,64x256,256x256,512x768,1024x1024,2048x2048,4096x16,16x4096,16384x64,"
          "64x16384,8192x193,3072x3072")
LOG2_LO, LOG2_HI = math.log2(BIN_WIDTH_RANGE[0]) + 0.5, math.log2(BIN_WIDTH_RANGE[1]) - 0.5


def _decode_time(data: bytes, model, repeat: int, **kw) -> tuple[float, float]:
    """(wall, process CPU) seconds of decoding ``data``, each the best of ``repeat``."""
    wall = cpu = math.inf
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        api.decode(data, model, **kw)
        wall, cpu = min(wall, time.perf_counter() - t0), min(cpu, time.process_time() - c0)
    return wall, cpu


def reference(model, image: np.ndarray, repeat: int, per_byte: int) -> dict:
    data = api.compress(image, model, bin_width=1.0)
    s, c = _decode_time(data, model, repeat, max_pixels_per_byte=per_byte)  # must be accepted
    h, w = image.shape[:2]
    return {"bytes": len(data), "bpp": round(bpp(len(data), h, w), 4), "decode_s": round(s, 4),
            "decode_cpu_s": round(c, 4), "s_per_byte": s / len(data),
            "cpu_s_per_byte": c / len(data),
            "work_per_byte": round(limits.decode_work(model, h, w, _order(model)) / len(data), 1)}


def _order(model) -> str:
    return model.config.get("coding_order", "parallel")


def cheapest_accepted(model, h: int, w: int, per_byte: int, seed: int = 0
                      ) -> tuple[bytes | None, int]:
    """The stream of a noise image of this size with the fewest bytes at or over
    ``decode_work / per_byte`` (None if no bin width gets there), and that byte floor."""
    need = math.ceil(limits.decode_work(model, h, w, _order(model)) / per_byte)
    img = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    enc = api.Encoder(img, model)

    def code(log2_delta: float) -> bytes:
        return enc.code(2.0**log2_delta).data

    top = code(LOG2_HI)
    if len(top) >= need:
        return top, need
    lo_data = code(LOG2_LO)
    if len(lo_data) < need:
        return None, need
    lo, hi, best = LOG2_LO, LOG2_HI, lo_data   # bytes(lo) >= need > bytes(hi)
    for _ in range(14):
        mid = (lo + hi) / 2
        d = code(mid)
        if len(d) >= need:
            lo, best = mid, d
        else:
            hi = mid
    return best, need


def bench_shape(model, name: str, h: int, w: int, ref: dict, per_byte: int, repeat: int,
                unbounded: bool) -> dict:
    order = _order(model)
    work = limits.decode_work(model, h, w, order)
    row = {"model": name, "shape": f"{h}x{w}", "work": work,
           "steps": limits.wavefront_steps(model, h, w, order), "load_1min": load_1min()}
    zero = api.compress(np.full((h, w, 3), 128, np.uint8), model, bin_width=2.0**19)
    row["zero_bytes"] = len(zero)
    t0 = time.perf_counter()
    try:
        api.decode(zero, model, untrusted=True, max_pixels_per_byte=per_byte)
        row["zero_refused_ms"] = None
    except limits.StreamCostError:
        row["zero_refused_ms"] = round(1e3 * (time.perf_counter() - t0), 2)
    if unbounded:
        s, c = _decode_time(zero, model, 1)
        row["zero_unbounded_ratio"] = round(s / len(zero) / ref["s_per_byte"], 2)
        row["zero_unbounded_cpu_ratio"] = round(c / len(zero) / ref["cpu_s_per_byte"], 2)
    data, need = cheapest_accepted(model, h, w, per_byte)
    row["accepted_min_bytes"] = need
    if data is None:
        row.update(accepted_bytes=None, ratio=None, cpu_ratio=None)
        return row
    header, _ = unpack(data)
    s, c = _decode_time(data, model, repeat, untrusted=True, max_pixels_per_byte=per_byte)
    row.update(accepted_bytes=len(data), accepted_bpp=round(bpp(len(data), h, w), 4),
               bin_width=float(f"{header.delta:.6g}"), decode_s=round(s, 4),
               decode_cpu_s=round(c, 4), ratio=round(s / len(data) / ref["s_per_byte"], 2),
               cpu_ratio=round(c / len(data) / ref["cpu_s_per_byte"], 2))
    return row


def to_markdown(meta: dict, refs: dict, rows: list[dict]) -> str:
    lines = ["# benchmarks.untrusted_streams", "",
             f"Policy: decoding work (pixels computed + {meta['step_pixels']} a wavefront step + "
             f"{meta['stream_pixels']} a stream) "
             f"<= {meta['per_byte']} a stream byte. Reference: {meta['image']} at bin width 1; "
             f"decodes best of {meta['repeat']}; {meta['threads']} torch threads, "
             f"{meta['machine']}, torch {meta['torch']}, load {meta['loadavg']} at start "
             "(per row below).", "",
             "| model | Kodak bytes | bpp | decode s | CPU s | ms/KB | CPU ms/KB | work/byte |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in refs.items():
        lines.append(f"| {name} | {r['bytes']} | {r['bpp']} | {r['decode_s']} | "
                     f"{r['decode_cpu_s']} | {1e6 * r['s_per_byte']:.1f} | "
                     f"{1e6 * r['cpu_s_per_byte']:.1f} | {r['work_per_byte']} |")
    cols = ["model", "shape", "work", "steps", "zero_bytes", "zero_unbounded_ratio",
            "zero_unbounded_cpu_ratio", "zero_refused_ms", "accepted_min_bytes",
            "accepted_bytes", "accepted_bpp", "decode_s", "decode_cpu_s", "ratio", "cpu_ratio",
            "load_1min"]
    lines += ["", "ratio (cpu_ratio): wall (process CPU) seconds per byte of the cheapest "
              "accepted stream over the Kodak stream's (target <= 10); "
              "zero_unbounded_ratio: the same for the all-zero stream decoded without the "
              "policy. On a loaded machine CPU time is the steadier of the two.", "",
              "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join("" if r.get(c) is None else str(r.get(c)) for c in cols) + " |"
              for r in rows]
    for key, what in (("cpu_ratio", "CPU"), ("ratio", "wall")):
        worst = max((r for r in rows if r.get(key) is not None), key=lambda r: r[key],
                    default=None)
        if worst:
            lines += ["", f"Worst accepted stream ({what} time): {worst['model']} "
                      f"{worst['shape']}, {worst[key]}x the Kodak stream's seconds per byte "
                      f"(target <= 10: {'met' if worst[key] <= 10 else 'NOT met'})."]
    return "\n".join(lines) + "\n"


PROG = "python -m benchmarks.untrusted_streams"


@command(PROG)
def main(argv=None) -> int:
    p = parser(PROG, __doc__)
    p.add_argument("--models", default=None,
                   help="comma-separated codec checkpoints (default: the codec checkpoints in "
                        "checkpoints/)")
    p.add_argument("--image", default="kodim03", help="id in the sample set (Kodak images)")
    p.add_argument("--shapes", default=SHAPES, help="comma-separated HxW image sizes")
    p.add_argument("--max-pixels-per-byte", type=int, default=limits.UNTRUSTED_PIXELS_PER_BYTE,
                   help="the policy's limit (default: the untrusted mode's)")
    p.add_argument("--repeat", type=int, default=3, help="decodes per stream, best kept")
    p.add_argument("--no-unbounded", action="store_true",
                   help="skip decoding the all-zero streams without the policy (the slow part)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--resume", action="store_true", help="keep the rows of an earlier run")
    p.add_argument("--out", default=str(runs_dir() / "bench"), help="output folder")
    args, unknown = p.parse_known_args(argv)
    if unknown:  # make bench passes the same options to every benchmark
        print(f"benchmarks.untrusted_streams: ignoring {unknown}")
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        shapes = [tuple(int(v) for v in s.lower().split("x")) for s in args.shapes.split(",")]
        assert all(len(s) == 2 and min(s) > 0 for s in shapes)
    except (ValueError, AssertionError):
        p.error(f"--shapes {args.shapes!r}: expected HxW,HxW,...")
    paths = ([Path(m) for m in args.models.split(",")] if args.models
             else [p for p in sorted((ROOT / "checkpoints").glob("*.pt"))
                   if load_checkpoint(p)["kind"] == "codec"])  # plic streams only
    image = pick_image(args.image)
    out = Path(args.out)
    partial = out / "untrusted.partial.json"
    done = json.loads(partial.read_text()) if args.resume and partial.is_file() else {}
    refs, rows = done.get("refs", {}), done.get("rows", [])
    have = {(r["model"], r["shape"]) for r in rows}
    per_byte = args.max_pixels_per_byte
    meta = {"image": args.image, "per_byte": per_byte, "step_pixels": limits.STEP_PIXELS,
            "stream_pixels": limits.STREAM_PIXELS,
            "repeat": args.repeat, **host()}
    out.mkdir(parents=True, exist_ok=True)
    for path in paths:
        model = api.load(path)
        name = path.stem
        if name not in refs:
            refs[name] = reference(model, image, args.repeat, per_byte)
            print(name, "reference", refs[name], flush=True)
        for h, w in tqdm(shapes, desc=name, unit="shape"):
            if (name, f"{h}x{w}") in have:
                continue
            rows.append(bench_shape(model, name, h, w, refs[name], per_byte, args.repeat,
                                    not args.no_unbounded))
            print(rows[-1], flush=True)
            atomic_write_text(partial, json.dumps({"refs": refs, "rows": rows}))
    write_report(out, "untrusted", {"meta": meta, "refs": refs, "rows": rows},
                 to_markdown(meta, refs, rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
