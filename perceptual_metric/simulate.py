"""Simulated 2AFC labels from a hidden metric: for tests, demos and sanity checks of the fit.

NOT human judgments. A hidden "oracle" LPIPS (AlexNet trunk, random sparse non-negative weights)
scores two distortions of each reference patch; each simulated judge picks B with probability
sigmoid((d(ref, A) - d(ref, B)) / T) and ``p_b`` is the binomial fraction over ``n`` judges.
Every trial id starts with ``sim-`` and ``SIMULATED.json`` beside the labels says so, with the
oracle's seed and temperature; ``oracle.pt`` holds the hidden metric (checkpoint kind ``metric``)::

    python -m perceptual_metric.simulate --out runs/sim --trials 400 --patch-size 64
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter

from mturk.schema import LABELS_COLUMNS, LABELS_ID
from mturk.sim.twoafc_crowd import careful_p_right
from plic.checkpoint import save_checkpoint
from plic.cli import command, parser
from plic.datasets import add_data_args, records_from_args
from plic.fsio import atomic_write_text
from plic.image_io import jpeg_round_trip, read_image, to_tensor, write_png
from plic.paths import runs_dir
from plic.tables import rel_path, write_table

from .lpips_model import LPIPS
from .trunks import WeightsError

FAMILIES = ("jpeg", "blur", "noise", "pixelate", "posterize")


def distort(img: np.ndarray, family: str, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """A random-strength distortion of a uint8 RGB patch; returns (image, parameter)."""
    pil = Image.fromarray(img)
    if family == "jpeg":
        q = int(rng.integers(5, 60))
        return jpeg_round_trip(img, q)[0], f"q{q}"
    if family == "blur":
        s = float(rng.uniform(0.5, 2.5))
        return np.asarray(pil.filter(ImageFilter.GaussianBlur(s))), f"s{s:.2f}"
    if family == "noise":
        s = float(rng.uniform(3, 25))
        out = img.astype(np.float64) + rng.normal(0, s, img.shape)
        return np.clip(np.rint(out), 0, 255).astype(np.uint8), f"s{s:.1f}"
    if family == "pixelate":
        f = int(rng.integers(2, 5))
        h, w = img.shape[:2]
        small = pil.resize((max(1, w // f), max(1, h // f)), Image.BILINEAR)
        return np.asarray(small.resize((w, h), Image.BILINEAR)), f"f{f}"
    if family == "posterize":
        bits = int(rng.integers(2, 5))
        return (img >> (8 - bits)) << (8 - bits), f"b{bits}"
    raise ValueError(f"unknown distortion {family!r}")


def make_oracle(seed: int, net: str = "alex", sparsity: float = 0.9, spread: float = 3.0) -> LPIPS:
    """The hidden metric: ImageNet trunk (random if none resolves), sparse log-normal weights."""
    try:
        oracle = LPIPS.build(net, "lin", download=False)
    except WeightsError:
        torch.manual_seed(seed)
        oracle = LPIPS.build(net, "scratch")
    g = torch.Generator().manual_seed(seed)
    ws = []
    for c in oracle.trunk.channels:  # layers weighted unevenly too: far from uniform weights
        w = torch.exp(torch.randn(c, generator=g) + spread * torch.randn(1, generator=g)) / c
        ws.append(w * (torch.rand(c, generator=g) >= sparsity))
    oracle.set_linear(ws)
    return oracle.freeze()


def simulate(out: Path, images: list[np.ndarray], trials: int = 400, patch_size: int = 64,
             seed: int = 0, judges: tuple[int, int] = (3, 7), temperature: float = 0.25,
             refs_per_trial: float = 0.125) -> dict:
    """Write ``out/labels.csv`` + images + SIMULATED.json + oracle.pt; returns the metadata."""
    rng = np.random.default_rng(seed)
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    n_refs = max(4, int(round(trials * refs_per_trial)))
    refs = []
    for r in range(n_refs):
        src = images[int(rng.integers(len(images)))]
        h, w = src.shape[:2]
        if min(h, w) < patch_size:
            raise ValueError(f"source image {w}x{h} is smaller than the {patch_size} px patch")
        y, x = int(rng.integers(0, h - patch_size + 1)), int(rng.integers(0, w - patch_size + 1))
        refs.append((f"simref{r:04d}", src[y:y + patch_size, x:x + patch_size].copy()))
    rows, sides = [], []
    for t in range(trials):
        ref_id, ref = refs[t % n_refs]
        pair = []
        for side in "ab":
            fam = FAMILIES[int(rng.integers(len(FAMILIES)))]
            img, param = distort(ref, fam, rng)
            pair.append((f"sim{t:05d}{side}-{fam}-{param}", fam, img))
        sides.append((ref, pair[0][2], pair[1][2]))
        rows.append({"trial_id": f"sim-{t:05d}", "ref_id": ref_id, "a_id": pair[0][0],
                     "b_id": pair[1][0], "a_codec": pair[0][1], "b_codec": pair[1][1],
                     "_imgs": (ref, pair[0][2], pair[1][2])})
    oracle = make_oracle(seed)

    def batch(k, i, j):
        return to_tensor(np.stack([s[k] for s in sides[i:j]]))

    bs = max(1, (64 * 64 * 64) // (patch_size * patch_size))  # memory flat for big patches
    with torch.no_grad():
        d = [oracle.pair_distances(batch(0, i, i + bs), batch(1, i, i + bs), batch(2, i, i + bs))
             for i in range(0, trials, bs)]
    d_a, d_b = torch.cat([x[0] for x in d]), torch.cat([x[1] for x in d])
    diff = (d_a - d_b).numpy().astype(np.float64)
    scale = temperature * float(np.std(diff)) + 1e-12
    # the simulated observer's one formula (mturk.sim): B is "right", closeness = -distance
    p_true = np.array([careful_p_right(0.0, float(x), scale, 0.0) for x in diff])
    ns = rng.integers(judges[0], judges[1] + 1, size=trials)
    ks = rng.binomial(ns, p_true)
    labels = out / "labels.csv"
    written = set()
    for r, n, k in zip(rows, ns, ks):
        ref, a, b = r.pop("_imgs")
        for ident, img in ((r["ref_id"], ref), (r["a_id"], a), (r["b_id"], b)):
            p = out / "images" / f"{ident}.png"
            if ident not in written:
                write_png(p, img)
                written.add(ident)
            r[{r["ref_id"]: "ref_path", r["a_id"]: "a_path", r["b_id"]: "b_path"}[ident]] = \
                rel_path(p, labels)
        r.update(p_b=float(k) / float(n), n=int(n), a_bpp="", b_bpp="")
    write_table(labels, rows, LABELS_COLUMNS, LABELS_ID)
    save_checkpoint(out / "oracle.pt", "metric", "lpips-alex-simulation-oracle", oracle.config(),
                    oracle.state_dict(), {"simulated": True, "seed": seed})
    meta = {"simulated": True,
            "note": "labels simulated from a hidden metric plus binomial noise; not human data",
            "oracle": "oracle.pt", "oracle_trunk_id": oracle.trunk_id, "seed": seed,
            "trials": trials, "references": n_refs, "patch_size": patch_size,
            "temperature": temperature, "judges": list(judges),
            "oracle_expected_2afc": float(np.mean(np.maximum(p_true, 1 - p_true)))}
    atomic_write_text(out / "SIMULATED.json", json.dumps(meta, indent=2) + "\n")
    return meta


PROG = "python -m perceptual_metric.simulate"


@command(PROG)
def main(argv: list[str] | None = None) -> int:
    ap = parser(PROG, __doc__.split("\n\n")[0], formatter_class=argparse.HelpFormatter)
    ap.add_argument("--out", type=Path, default=runs_dir() / "sim", help="output folder")
    ap.add_argument("--trials", type=int, default=400, help="number of labelled trials")
    ap.add_argument("--patch-size", type=int, default=64, help="reference patch size (px)")
    ap.add_argument("--seed", type=int, default=0, help="seed of patches, oracle and judges")
    ap.add_argument("--temperature", type=float, default=0.25,
                    help="judge noise, as a fraction of the std of oracle differences")
    add_data_args(ap)
    args = ap.parse_args(argv)
    images = [read_image(r.path) for r in records_from_args(args)]
    meta = simulate(args.out, images, args.trials, args.patch_size, args.seed,
                    temperature=args.temperature)
    print(f"wrote {args.out / 'labels.csv'}: {meta['trials']} simulated trials on "
          f"{meta['references']} references (oracle expected 2AFC "
          f"{meta['oracle_expected_2afc']:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
