"""Compress an image into a plic bitstream.

    python -m codec.compress IMAGE OUT --model CKPT [--target-bpp X | --bin-width D]

Prints the real rate (8 x file bytes / pixels, header included), the likelihood estimate beside
it and the time. ``--target-bpp`` searches the bin width so that the file is at or under X;
``--bin-width`` sets it directly (default 1). Any image size works.
"""

from __future__ import annotations

import argparse
import sys

import torch

from . import api
from .checkpoint import CheckpointError
from .fsio import atomic_write_bytes
from .image_io import ImageReadError, read_image


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m codec.compress", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image", help="input image (any format Pillow reads)")
    p.add_argument("out", help="bitstream file to write")
    p.add_argument("--model", required=True, help="codec checkpoint (python -m codec.init)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--target-bpp", type=float, help="largest allowed real bits per pixel")
    g.add_argument("--bin-width", type=float, help="quantisation bin width delta of the latent")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        image = read_image(args.image)
        model = api.load(args.model, device=args.device)
        res = api.encode(image, model, target_bpp=args.target_bpp, bin_width=args.bin_width)
    except (ImageReadError, CheckpointError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    atomic_write_bytes(args.out, res.data)
    h, w = image.shape[:2]
    print(f"{args.out}: {len(res.data)} bytes, {res.bpp:.4f} bpp "
          f"(estimate {res.est_bits / (h * w):.4f} bpp), bin width {res.bin_width:.6g}, "
          f"{w}x{h} px, {res.seconds:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
