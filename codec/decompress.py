"""Decompress a plic bitstream to a PNG.

    python -m codec.decompress IN OUT.png [--model CKPT]

Without ``--model`` the checkpoint is looked for, by the model name and weights hash the stream
records, among the ``*.pt`` files next to IN and under runs/codec/. Prints the real rate, the
likelihood estimate and the time.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import api, bitstream
from .checkpoint import CheckpointError, load_checkpoint
from .fsio import atomic_write_bytes
from .image_io import png_bytes
from .paths import runs_dir


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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m codec.decompress", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", help="bitstream file (from python -m codec.compress)")
    p.add_argument("out", help="PNG to write")
    p.add_argument("--model", help="codec checkpoint; default: found by the stream's hash")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    args = p.parse_args(argv)
    try:
        data = Path(args.input).read_bytes()
        if args.model is None:
            header, _ = bitstream.unpack(data)
            found = find_checkpoint(header, [Path(args.input).resolve().parent,
                                             runs_dir() / "codec"])
            if found is None:
                raise CheckpointError(
                    f"{args.input}: no checkpoint of {header.model_name!r} with weights hash "
                    f"{header.weights_hash.hex()} next to it or under {runs_dir() / 'codec'}; "
                    "pass --model CKPT")
            args.model = found
        model = api.load(args.model, device=args.device)
        res = api.decode(data, model)
    except OSError as e:
        print(f"error: {args.input}: {e.strerror}", file=sys.stderr)
        return 2
    except (bitstream.BitstreamError, CheckpointError) as e:
        print(f"error: {args.input}: {e}", file=sys.stderr)
        return 2
    atomic_write_bytes(args.out, png_bytes(res.image))
    h, w = res.image.shape[:2]
    print(f"{args.out}: {w}x{h} px from {len(data)} bytes, {res.bpp:.4f} bpp "
          f"(estimate {res.est_bits / (h * w):.4f} bpp), model {args.model}, "
          f"{res.seconds:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
