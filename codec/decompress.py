"""Decompress a plic bitstream to a PNG.

    python -m codec.decompress IN OUT.png [--model CKPT] [--max-pixels N] [--untrusted]

Without ``--model`` the checkpoint is looked for, by the model name and weights hash the stream
records, among the ``*.pt`` files next to IN and under runs/codec/. A post-decoded HEVC stream
(``codec.postdecode``) is decoded by ffmpeg and the learned stage whose weights it names (also
looked for in checkpoints/). Prints the real rate, the
likelihood estimate and the time. A stream whose image is over ``--max-pixels`` (default: what
the model decodes within 8 GiB, ``codec.limits``) is refused before anything large is
allocated. For streams from strangers, ``--untrusted`` also refuses, from the header alone, a
stream whose decoding work is over ``--max-pixels-per-byte`` pixels (default 320 in that mode:
``codec.limits.UNTRUSTED_PIXELS_PER_BYTE``) for each of its bytes: the work is the pixels
computed (padded to the model's stride), plus 512 for each wavefront step of a context model's
latent, plus 8192 for the stream (docs/BITSTREAM.md). The pixels do not depend on the
machine's thread count (decoding runs on one CPU thread). A missing folder of OUT is created.
Errors: one line on stderr, exit status 2, no file written (``plic.cli``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from plic.checkpoint import CheckpointError, load_checkpoint
from plic.cli import CliError, check_output, command, device, number, parser, write_output
from plic.image_io import png_bytes
from plic.paths import runs_dir
from plic.quality import est_bpp

from . import api, bitstream, limits
from .hevc import HevcError
from .postdecode import cli as postdecode_cli
from .postdecode.container import is_stream as is_postdecode_stream


def find_checkpoint(header: bitstream.Header, dirs: list[Path]) -> Path | None:
    """The first codec checkpoint in ``dirs`` with the stream's model name and weights hash."""
    for d in dirs:
        if not d.is_dir():
            continue
        for path in sorted(d.rglob("*.pt")):
            try:
                ckpt = load_checkpoint(path, kind="codec")
            except CheckpointError:
                continue
            if (ckpt["model"] == header.model_name
                    and bitstream.weights_hash(ckpt["state_dict"]) == header.weights_hash):
                return path
    return None


PROG = "python -m codec.decompress"


@command(PROG, errors=(OSError, HevcError))
def main(argv=None) -> int:
    p = parser(PROG, __doc__)
    p.add_argument("input", help="bitstream file (from python -m codec.compress)")
    p.add_argument("out", help="PNG to write (a missing folder is created)")
    p.add_argument("--model", help="codec checkpoint; default: found by the stream's hash")
    p.add_argument("--max-pixels", type=number(int, 1, bitstream.MAX_PIXELS),
                   help="largest image to decode (default: what the model decodes in "
                        f"{limits.MEMORY_BUDGET / 2**30:g} GiB; the format allows "
                        f"{bitstream.MAX_PIXELS})")
    p.add_argument("--untrusted", action="store_true",
                   help="a stream from an untrusted source: refuse it unless its decoding work "
                        "is within --max-pixels-per-byte (default "
                        f"{limits.UNTRUSTED_PIXELS_PER_BYTE} in this mode)")
    p.add_argument("--max-pixels-per-byte", type=number(int, 1, bitstream.MAX_PIXELS),
                   help="largest decoding work (pixels computed, plus "
                        f"{limits.STEP_PIXELS} a wavefront step and {limits.STREAM_PIXELS} a "
                        "stream) per stream byte; any mode")
    p.add_argument("--device", type=device, default="cpu", help="torch device (default cpu)")
    args = p.parse_args(argv)
    try:
        out = check_output(args.out, source=args.input)
        try:
            data = Path(args.input).read_bytes()
        except OSError as e:
            raise CliError(f"{args.input}: {e.strerror or e}") from None
        if is_postdecode_stream(data):  # HEVC + the learned stage (codec.postdecode)
            return postdecode_cli.decompress(args, data, out)
        model_path = args.model
        if model_path is None:
            header, _ = bitstream.unpack(data)
            model_path = find_checkpoint(header, [Path(args.input).resolve().parent,
                                                  runs_dir() / "codec"])
            if model_path is None:
                raise CheckpointError(
                    f"{args.input}: no checkpoint of {header.model_name!r} with weights hash "
                    f"{header.weights_hash.hex()} next to it or under {runs_dir() / 'codec'}; "
                    "pass --model CKPT")
        model = api.load(model_path, device=args.device)
        res = api.decode(data, model, max_pixels=args.max_pixels, untrusted=args.untrusted,
                         max_pixels_per_byte=args.max_pixels_per_byte)
        write_output(out, png_bytes(res.image))
    except (bitstream.BitstreamError, MemoryError) as e:
        raise CliError(f"{args.input}: {e}") from None
    h, w = res.image.shape[:2]
    print(f"{args.out}: {w}x{h} px from {len(data)} bytes, {res.bpp:.4f} bpp "
          f"(estimate {est_bpp(res.est_bits, h, w):.4f} bpp), model {model_path}, "
          f"{res.seconds:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
