"""Compress an image into a plic bitstream.

    python -m codec.compress IMAGE OUT --model CKPT [--target-bpp X | --bin-width D]

Prints the real rate (8 x file bytes / pixels, header included), the likelihood estimate beside
it and the time. ``--target-bpp`` searches the bin width so that the file is at or under X;
``--bin-width`` sets it directly (default 1). A post-decoded HEVC checkpoint
(``codec.postdecode``) codes at ``--qp`` instead. Any image size up to ``--max-pixels`` works
(default: what the model codes within 8 GiB, ``codec.limits``). Images are read by the table in
``plic.image_io``: 16-bit samples keep their high byte, float images are refused, and so is
transparency unless ``--alpha drop``. A missing folder of OUT is created. Errors: one line on
stderr, exit status 2, no file written (``plic.cli``).
"""

from __future__ import annotations

import sys

import torch

from plic.cli import CliError, check_output, checked, command, device, number, parser, write_output
from plic.image_io import ALPHA_POLICIES, read_image
from plic.quality import est_bpp

from . import api, limits
from .bitstream import MAX_PIXELS
from .hevc import HevcError
from .postdecode import cli as postdecode_cli

PROG = "python -m codec.compress"


@command(PROG, errors=(OSError, MemoryError, HevcError))
def main(argv=None) -> int:
    p = parser(PROG, __doc__)
    p.add_argument("image", help="input image (any format Pillow reads; see plic.image_io)")
    p.add_argument("out", help="bitstream file to write (a missing folder is created)")
    p.add_argument("--model", required=True, help="codec checkpoint (python -m codec.untrained)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--qp", type=number(int, 0, 51),
                   help="HEVC QP, 0..51, for a post-decoded HEVC checkpoint "
                        "(codec.postdecode; default 32)")
    g.add_argument("--target-bpp", type=number(float, 0, api.MAX_TARGET_BPP, lo_open=True),
                   help=f"largest allowed real bits per pixel, in (0, {api.MAX_TARGET_BPP:g}]")
    g.add_argument("--bin-width", type=checked(api.check_bin_width),
                   help="quantisation bin width delta of the latent, in "
                        f"{api.BIN_WIDTH_RANGE_TEXT}")
    p.add_argument("--max-pixels", type=number(int, 1, MAX_PIXELS),
                   help="largest image to code (default: what the model codes in "
                        f"{limits.MEMORY_BUDGET / 2**30:g} GiB; the format allows {MAX_PIXELS})")
    p.add_argument("--alpha", choices=ALPHA_POLICIES, default="error",
                   help="an image with transparent pixels: refuse it (error, the default) or "
                        "code its colours without the alpha channel (drop)")
    p.add_argument("--device", type=device, default="cpu", help="torch device (default cpu)")
    p.add_argument("--threads", type=number(int, 1, 1024, allow_zero=True), default=0,
                   help="torch CPU threads (0: torch's default). Coding itself runs on one "
                        "CPU thread, so the stream never depends on this")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = check_output(args.out, source=args.image)
    model = api.load(args.model, device=args.device)
    if postdecode_cli.is_postdecoder(model):  # HEVC + the learned stage
        return postdecode_cli.compress(args, model, out)
    if args.qp is not None:
        raise CliError("--qp is for a post-decoded HEVC checkpoint (codec.postdecode), "
                       "not this codec")
    limit = args.max_pixels or limits.default_max_pixels(model)
    image = read_image(args.image, alpha=args.alpha, max_pixels=limit)
    res = api.encode(image, model, target_bpp=args.target_bpp, bin_width=args.bin_width,
                     max_pixels=limit)
    write_output(out, res.data)
    h, w = image.shape[:2]
    print(f"{args.out}: {len(res.data)} bytes, {res.bpp:.4f} bpp "
          f"(estimate {est_bpp(res.est_bits, h, w):.4f} bpp), bin width {res.bin_width:.6g}, "
          f"{w}x{h} px, {res.seconds:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
