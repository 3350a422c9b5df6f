"""A 1:1 crop of the original, ``hevc-bpgcfg`` and ``hevc-bpgcfg-pd`` side by side, at one target.

    python -m codec.postdecode.figure kodim23.png --model checkpoints/hevc-bpgcfg-pd.pt \\
        --target-bpp 0.15 --out docs/postdecode_kodim23.png [--crop 256 --x 300 --y 120]

Both codecs are coded at the smallest QP whose whole file is at or
under the target (``hevc-bpgcfg``: the raw HEVC stream; ``hevc-bpgcfg-pd``: the same HEVC bytes
in its container), then decoded (ffmpeg; ffmpeg + the learned stage). The crop (default: the
centre ``--crop`` pixels) of each is placed side by side without scaling, the labels (codec,
QP, bpp, PSNR of the whole image) in a strip above them.
"""

from __future__ import annotations

import sys

import numpy as np

from plic.cli import command, parser
from plic.image_io import read_image, write_png
from plic.quality import bpp as bits_per_pixel
from plic.quality import psnr

from .. import hevc
from . import api


def hevc_at(image: np.ndarray, target: float) -> tuple[int, bytes]:
    """Plain hevc-bpgcfg at ``target``: the smallest QP whose raw stream is at or under it."""
    h, w = image.shape[:2]
    return api.search_qp(lambda q: hevc.encode(image, q), target, h, w)


def figure(image: np.ndarray, model, target: float, crop: int = 256, x: int | None = None,
           y: int | None = None) -> tuple[np.ndarray, dict]:
    from PIL import Image, ImageDraw

    h, w = image.shape[:2]
    qp, plain = hevc_at(image, target)
    base = hevc.decode(plain)
    res = api.encode(image, model, target_bpp=target)
    ours = api.decompress(res.data, model)
    info = {"hevc": {"qp": qp, "bpp": bits_per_pixel(len(plain), h, w),
                     "psnr": psnr(image, base)},
            "pd": {"qp": res.qp, "bpp": res.bpp, "psnr": psnr(image, ours)}}
    c = min(crop, h, w)
    x = (w - c) // 2 if x is None else min(max(0, x), w - c)
    y = (h - c) // 2 if y is None else min(max(0, y), h - c)
    tiles = [a[y:y + c, x:x + c] for a in (image, base, ours)]
    strip = 34
    canvas = Image.new("RGB", (3 * c + 2 * 4, c + strip), "white")
    draw = ImageDraw.Draw(canvas)
    labels = ["original",
              f"hevc-bpgcfg QP {qp}\n{info['hevc']['bpp']:.3f} bpp, {info['hevc']['psnr']:.2f} dB",
              f"hevc-bpgcfg-pd QP {res.qp}\n{res.bpp:.3f} bpp, {info['pd']['psnr']:.2f} dB"]
    for i, (tile, label) in enumerate(zip(tiles, labels)):
        canvas.paste(Image.fromarray(np.ascontiguousarray(tile)), (i * (c + 4), strip))
        draw.multiline_text((i * (c + 4) + 4, 2), label, fill="black", spacing=2)
    info["crop"] = {"x": x, "y": y, "size": c}
    return np.asarray(canvas), info


PROG = "python -m codec.postdecode.figure"


@command(PROG, errors=(OSError, hevc.HevcError))
def main(argv: list[str] | None = None) -> int:
    p = parser(PROG, __doc__)
    p.add_argument("image", help="the original image")
    p.add_argument("--model", required=True, help="post-decoder checkpoint")
    p.add_argument("--target-bpp", type=float, default=0.15, help="target (default 0.15)")
    p.add_argument("--crop", type=int, default=256, help="crop side in pixels (default 256)")
    p.add_argument("--x", type=int, default=None, help="crop left edge (default: centred)")
    p.add_argument("--y", type=int, default=None, help="crop top edge (default: centred)")
    p.add_argument("--out", required=True, help="PNG to write")
    a = p.parse_args(argv)
    img, info = figure(read_image(a.image), api.load(a.model), a.target_bpp, a.crop, a.x, a.y)
    write_png(a.out, img)
    print(f"{a.out}: {info}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
