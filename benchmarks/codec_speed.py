"""Benchmark of the codec core: compress / decompress time of one Kodak image per preset.

    python -m benchmarks.codec_speed [--presets tiny,small,paper] [--image kodim03] [--repeat 3]

Untrained (random) weights at a fixed seed: the times are those of the real transforms and the
real entropy coder, the bpp is that of noise. When ``compressai`` is importable (the ``bench``
extra) its ``bmshj2018-hyperprior`` (quality 3, random weights, ``update(force=True)``) runs in
the same process on the same image, so the two columns are comparable. Writes
runs/bench/codec.md and runs/bench/codec.json. Times are wall clock on a possibly shared CPU; the
load average at the start is recorded beside them.
"""

from __future__ import annotations

import statistics
import sys
import time

import numpy as np
import torch

from codec import api, models
from plic.cli import command, parser
from plic.image_io import to_tensor
from plic.measurement import write_report
from plic.paths import runs_dir
from plic.quality import bpp

from .sample_image import image_meta, parse_and_pick


def _median_time(fn, repeat: int):
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def bench_plic(image: np.ndarray, name: str, preset: str, repeat: int) -> dict:
    torch.manual_seed(0)
    model = models.build(name, preset).eval()
    api.encode(image[:64, :64], model)  # warm-up: allocator, probe, hash
    t_enc, res = _median_time(lambda: api.encode(image, model, bin_width=1.0), repeat)
    t_dec, out = _median_time(lambda: api.decompress(res.data, model), repeat)
    assert out.shape == image.shape
    mb = sum(t.numel() * t.element_size() for t in model.state_dict().values()) / 2**20
    return {"codec": f"plic {name}", "preset": preset, "weights_MiB": round(mb, 2),
            "bytes": len(res.data), "bpp": round(res.bpp, 4), "compress_s": round(t_enc, 3),
            "decompress_s": round(t_dec, 3)}


COMPRESSAI_FIX = "pip install --no-deps compressai==1.2.8 (the [bench] extra)"


def import_bmshj2018_hyperprior():
    """CompressAI's ``bmshj2018_hyperprior`` factory, or (None, why not), through
    ``benchmarks.codec_decode.import_compressai_zoo`` (placeholders for its point-cloud imports)."""
    from .compressai_import import import_compressai_zoo

    return import_compressai_zoo("bmshj2018_hyperprior")


def bench_compressai(image: np.ndarray, repeat: int, factory) -> dict:
    bmshj2018_hyperprior = factory
    torch.manual_seed(0)
    net = bmshj2018_hyperprior(quality=3, pretrained=False).eval()
    net.update(force=True)
    h, w = image.shape[:2]
    x = to_tensor(image)
    hp, wp = -(-h // 64) * 64, -(-w // 64) * 64
    x = torch.nn.functional.pad(x, (0, wp - w, 0, hp - h), mode="replicate")
    with torch.no_grad():
        warm = net.compress(x[..., :64, :64])  # warm-up, as for plic
        net.decompress(warm["strings"], warm["shape"])
        t_enc, enc = _median_time(lambda: net.compress(x), repeat)
        t_dec, _ = _median_time(lambda: net.decompress(enc["strings"], enc["shape"]), repeat)
    n = sum(len(s[0]) for s in enc["strings"])
    return {"codec": "compressai bmshj2018-hyperprior", "preset": "quality 3",
            "weights_MiB": round(sum(p.numel() * 4 for p in net.parameters()) / 2**20, 2),
            "bytes": n, "bpp": round(bpp(n, h, w), 4), "compress_s": round(t_enc, 3),
            "decompress_s": round(t_dec, 3)}


def to_markdown(meta: dict, rows: list[dict]) -> str:
    cols = ["codec", "preset", "weights_MiB", "bytes", "bpp", "compress_s", "decompress_s"]
    lines = ["# benchmarks.codec_speed", "",
             f"Image {meta['image']} ({meta['size']}), untrained weights (seed 0), median of "
             f"{meta['repeat']}; {meta['threads']} torch threads, load average "
             f"{meta['loadavg']} at start, {meta['machine']}.", "",
             "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    if not any(r["codec"].startswith("compressai") for r in rows):
        lines += ["", f"CompressAI not importable ({meta.get('compressai_missing')}): "
                      f"{COMPRESSAI_FIX}."]
    return "\n".join(lines) + "\n"


PROG = "python -m benchmarks.codec_speed"


@command(PROG)
def main(argv=None) -> int:
    p = parser(PROG, __doc__)
    p.add_argument("--presets", default="tiny,small,paper", help="comma-separated presets")
    p.add_argument("--models", default="hific", help="comma-separated registry names")
    p.add_argument("--image", default="kodim03", help="id in the sample set (Kodak images)")
    p.add_argument("--repeat", type=int, default=1, help="runs per measurement (median)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1: steadiest on a shared CPU; 0: torch default)")
    p.add_argument("--out", default=str(runs_dir() / "bench"), help="output folder")
    args, image = parse_and_pick(p, argv, "benchmarks.codec_speed")
    meta = image_meta(args.image, image, args.repeat)
    rows = []
    for name in args.models.split(","):
        for preset in args.presets.split(","):
            row = bench_plic(image, name, preset, args.repeat)
            print(row, flush=True)
            rows.append(row)
    factory, meta["compressai_missing"] = import_bmshj2018_hyperprior()
    if factory is None:
        print(f"benchmarks.codec_speed: CompressAI not importable "
              f"({meta['compressai_missing']}); to compare: {COMPRESSAI_FIX}", file=sys.stderr)
    ref = None if factory is None else bench_compressai(image, args.repeat, factory)
    if ref is not None:
        print(ref, flush=True)
        rows.append(ref)
    write_report(args.out, "codec", {"meta": meta, "rows": rows}, to_markdown(meta, rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
