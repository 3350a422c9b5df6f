"""Benchmark of the context model: wavefront vs serial latent decoding, and what the integer
conversion costs in rate.

    python -m benchmarks.context_model [--presets small,paper] [--image kodim03] [--rate-images 2]
                                  [--no-serial]

For each preset of ``hific`` (random weights at a fixed seed, so the bpp is that of noise but
the times are those of the real networks and coder): the integer hyper decoder ``h_s[0]``, the
latent-decoding stage (every context step plus entropy decoding) with the wavefront schedule and
with the serial reference (one position per step, same stream), and the step counts. The rate
cost compares, on the same latents, the likelihood estimate of the integer step with that of its
float64 twin (same coder grids, only the arithmetic differs). Writes runs/bench/context.md and
.json; times are wall clock on a possibly shared CPU, the load average is recorded beside them.
"""

from __future__ import annotations

import copy
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from codec import models
from codec.coding import EscapeReader, EscapeWriter
from codec.context.intmath import ACT_BITS, to_fixed
from codec.context.latent import WavefrontLatentCoder
from codec.context.step import ParamGrid, step_weights
from codec.context.wavefront import (
    ordered_symbols,
    quantizer_source,
    run_schedule,
    serial_schedule,
    wavefront_schedule,
)
from codec.entropy import estimate_bits
from plic.cli import CliError, command, parser
from plic.datasets import resolve_data
from plic.image_io import center_crop, to_tensor
from plic.measurement import load_1min, write_report
from plic.paths import runs_dir

from .sample_image import NoSuchImage, pick_image


def _image(image_id: str, crop: int | None = None, data: str = "samples") -> torch.Tensor:
    try:
        img = pick_image(image_id, data)
    except NoSuchImage as e:
        raise CliError(f"--data {data}: {e}") from None
    if crop:
        img = center_crop(img, crop)
    return to_tensor(img)


def _latent_inputs(model, x, exact: bool = True):
    """(y, hyper features, seconds) with z_hat = round(z) (timing does not depend on z's coder);
    ``exact=False``: the float64 hyper decoder instead of the integer one."""
    with torch.no_grad():
        lat = model.analysis(x)
        z_hat = torch.round(lat[1])
        t0 = time.perf_counter()
        if exact:
            feats = model.h_s[0](z_hat)
        else:
            feats = torch.nn.Sequential.forward(copy.deepcopy(model.h_s[0]).double(),
                                                z_hat.double())
        return lat[0], feats, time.perf_counter() - t0


def _model(preset: str):
    torch.manual_seed(0)
    return models.build("hific", preset, context=True, coding_order="wavefront").eval()


def bench_decode(preset: str, x, serial: bool) -> dict:
    model = _model(preset)
    y, feats, t_hyper = _latent_inputs(model, x)
    esc = EscapeWriter()
    t0 = time.perf_counter()
    code = WavefrontLatentCoder().encode(model, y, feats, 1.0, esc)
    t_enc = time.perf_counter() - t0
    _, c, h, w = y.shape
    row = {"preset": preset, "latent": f"{c}x{h}x{w}", "hyper_decoder_int_s": round(t_hyper, 3),
           "encode_s": round(t_enc, 3), "latent_bytes": len(code.data)}
    kinds = [("wavefront", False)] + ([("serial", True)] if serial else [])
    for kind, is_serial in kinds:
        sched = (serial_schedule if is_serial else wavefront_schedule)(h, w, 5)
        t0, c0 = time.perf_counter(), time.process_time()
        out = WavefrontLatentCoder(serial=is_serial).decode(model, code.data, feats, y.shape, 1.0,
                                                            EscapeReader(bytes(esc.buf)))
        row[f"{kind}_steps"] = len(sched)
        row[f"{kind}_decode_s"] = round(time.perf_counter() - t0, 3)
        row[f"{kind}_decode_cpu_s"] = round(time.process_time() - c0, 3)
        if not torch.equal(out.v_hat, code.v_hat):
            raise AssertionError(f"{kind} decode differs from the encoder's latents")
    if serial:
        row["speedup"] = round(row["serial_decode_s"] / row["wavefront_decode_s"], 1)
    return row


def quick_train(model, xs: dict, steps: int, crop: int = 64, lam: float = 0.01) -> float:
    """A few Adam steps of rate + lam * 255^2 * MSE on random crops of ``xs`` (so the rate
    cost is measured on a model whose context model has learned something); final loss."""
    g = torch.Generator().manual_seed(0)
    images = list(xs.values())
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    loss = torch.tensor(0.0)
    for _ in tqdm(range(steps), desc="quick training", unit="step"):
        batch = []
        for _ in range(4):
            x = images[int(torch.randint(len(images), (1,), generator=g))]
            i = int(torch.randint(x.shape[2] - crop + 1, (1,), generator=g))
            j = int(torch.randint(x.shape[3] - crop + 1, (1,), generator=g))
            batch.append(x[0, :, i:i + crop, j:j + crop])
        x = torch.stack(batch)
        out = model(x, delta=1.0)
        rate = sum(b.sum() for b in out["bits"].values()) / (x.shape[0] * crop * crop)
        loss = rate + lam * 255**2 * torch.mean((out["x_hat"] - x) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return float(loss.detach())


def rate_cost(preset: str, xs: dict, train_steps: int = 0, checkpoint=None) -> list[dict]:
    """Integer path (hyper decoder + context step) vs its float64 twin on the same model and
    latents: likelihood estimates in bits with the same coder grids. ``checkpoint``: a trained
    codec checkpoint with a context model instead of the preset's random weights."""
    if checkpoint is not None:
        from codec.api import load

        model = load(checkpoint)
        if not getattr(model, "has_context", False):
            raise CliError(f"{checkpoint}: model {model.name!r} has no context model")
        preset = f"{model.name} {Path(checkpoint).name}"
    else:
        model = _model(preset)
    if train_steps:
        quick_train(model, xs, train_steps)
    grid = ParamGrid.from_entropy()
    rows = []
    for image_id, x in tqdm(xs.items(), desc=f"rate cost ({train_steps} steps)",
                            unit="image"):
        y, feats, _ = _latent_inputs(model, x)
        _, feats_float, _ = _latent_inputs(model, x, exact=False)
        shape = tuple(y.shape[1:])
        sched = wavefront_schedule(shape[1], shape[2], 5)
        bits = {}
        for kind, integer in (("int", True), ("float", False)):
            sw = step_weights(model.context, integer=integer)
            psi = to_fixed(feats[0], ACT_BITS) if integer else feats_float[0]
            _, k, idx = run_schedule(sw, grid, psi, shape, 1.0, sched,
                                     quantizer_source(y[0], grid, 1.0))
            bits[kind] = estimate_bits(*ordered_symbols(k, idx, sched))
        rows.append({"preset": preset, "train_steps": train_steps, "image": image_id,
                     "int_bits": round(bits["int"], 1),
                     "float_bits": round(bits["float"], 1),
                     "cost_percent": round(100 * (bits["int"] / bits["float"] - 1), 4)})
    return rows


def _rate_summary(rows: list[dict]) -> list[dict]:
    """One 'all' row per (model, train_steps): total bits and the cost over all images."""
    out = []
    for key in dict.fromkeys((r["preset"], r["train_steps"]) for r in rows):
        sel = [r for r in rows if (r["preset"], r["train_steps"]) == key]
        if len(sel) < 2:
            continue
        ib, fb = sum(r["int_bits"] for r in sel), sum(r["float_bits"] for r in sel)
        out.append({"preset": key[0], "train_steps": key[1],
                    "image": f"all {len(sel)}", "int_bits": round(ib, 1),
                    "float_bits": round(fb, 1), "cost_percent": round(100 * (ib / fb - 1), 4)})
    return out


def _table(rows: list[dict]) -> str:
    if not rows:
        return "(skipped)"
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(r.get(k, "")) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


PROG = "python -m benchmarks.context_model"


@command(PROG)
def main(argv=None) -> int:
    ap = parser(PROG, __doc__)
    ap.add_argument("--presets", default="small,paper")
    ap.add_argument("--image", default="kodim03")
    ap.add_argument("--rate-images", type=int, default=2)
    ap.add_argument("--no-serial", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--crop", type=int, default=None, help="centre crop (pixels) for quick runs")
    ap.add_argument("--rate-preset", default="small")
    ap.add_argument("--rate-data", default="samples",
                    help="image set of the rate cost (a manifest name, e.g. kodak, or a folder)")
    ap.add_argument("--train-steps", type=int, default=0,
                    help="also measure the rate cost after this many quick training steps")
    ap.add_argument("--checkpoint", default=None,
                    help="also measure the rate cost on this trained codec checkpoint (a model "
                         "with a context model, e.g. mbt2018)")
    ap.add_argument("--no-decode", action="store_true", help="skip the decoding table")
    ap.add_argument("--out", default=None, help="folder for context.md/.json (runs/bench)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    load = load_1min()
    x = _image(args.image, args.crop)
    decode_rows = [] if args.no_decode else [bench_decode(p, x, not args.no_serial)
                                             for p in args.presets.split(",")]
    rate_recs = {r.id: r for r in resolve_data(args.rate_data)}
    rate_ids = sorted(rate_recs)[:args.rate_images]
    rate_xs = {i: _image(i, args.crop, args.rate_data) for i in rate_ids}
    rate_rows = rate_cost(args.rate_preset, rate_xs)
    if args.train_steps:
        rate_rows += rate_cost(args.rate_preset, rate_xs, args.train_steps)
    if args.checkpoint:
        rate_rows += rate_cost(args.rate_preset, rate_xs, checkpoint=args.checkpoint)
    rate_rows += _rate_summary(rate_rows)
    report = {"load_average_1min": load, "threads": args.threads, "image": args.image,
              "model": "hific, random weights (seed 0)", "decode": decode_rows,
              "rate_cost": rate_rows}
    cmd = " ".join(["python -m benchmarks.context_model",
                    *(sys.argv[1:] if argv is None else argv)])
    md = (f"# Context model benchmark\n\n`{cmd}` — image {args.image}"
          f"{f' (centre {args.crop} px)' if args.crop else ''}, "
          f"hific with random weights (seed 0), {args.threads} thread(s), load average "
          f"{load:.1f} at the start (shared CPU).\n\n## Latent decoding: wavefront vs serial\n\n"
          f"{_table(decode_rows)}\n\n## Rate cost of the integer conversion ("
          f"{args.rate_preset} preset; train_steps 0 = untrained)\n\n{_table(rate_rows)}\n")
    out = Path(args.out) if args.out else runs_dir() / "bench"
    write_report(out, "context", report, md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
