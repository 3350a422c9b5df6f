"""``codec.compress`` / ``codec.decompress`` for the HEVC post-decoder (``hevc-bpgcfg-pd``).

``codec.compress IMAGE OUT --model PD.pt [--target-bpp X | --qp Q]`` codes with HEVC at QP Q
(default 32), or at the smallest QP whose whole file is at or under X; ``codec.decompress``
recognises the container's magic and decodes with the post-decoder checkpoint whose weights
hash the stream names (``--model``, else the ``*.pt`` files next to the stream, under
runs/codec/ and in checkpoints/). Same one-line errors and exit status as for ``.plic`` streams:
errors are raised to the command's one error path (``plic.cli.command``).
"""

from __future__ import annotations

from pathlib import Path

from plic.checkpoint import CheckpointError, load_checkpoint
from plic.cli import CliError, write_output
from plic.image_io import png_bytes, read_image
from plic.paths import REPO_ROOT, runs_dir

from .. import bitstream
from . import api, container
from .stage import NAME


def is_postdecoder(model) -> bool:
    return getattr(model, "name", None) == NAME


def find_checkpoint(weights_hash: bytes, dirs: list[Path]) -> Path | None:
    """The first post-decoder checkpoint in ``dirs`` whose weights have this hash."""
    for d in dirs:
        if not d.is_dir():
            continue
        for path in sorted(d.rglob("*.pt")):
            try:
                ckpt = load_checkpoint(path, kind=api.KIND)
            except CheckpointError:
                continue
            if bitstream.weights_hash(ckpt["state_dict"]) == weights_hash:
                return path
    return None


def compress(args, model, out) -> int:
    """The rest of ``codec.compress`` once ``--model`` is a post-decoder."""
    if getattr(args, "bin_width", None) is not None:
        raise CliError("--bin-width is a learned codec's latent bin width; a post-decoded HEVC "
                       "checkpoint codes at a QP: pass --qp or --target-bpp")
    limit = args.max_pixels or api.default_max_pixels(model)
    image = read_image(args.image, alpha=args.alpha, max_pixels=limit)
    res = api.encode(image, model, qp=getattr(args, "qp", None), target_bpp=args.target_bpp,
                     max_pixels=limit)
    write_output(out, res.data)
    h, w = image.shape[:2]
    print(f"{args.out}: {len(res.data)} bytes, {res.bpp:.4f} bpp, HEVC QP {res.qp} + "
          f"post-decoder {args.model}, {w}x{h} px, {res.seconds:.2f} s")
    return 0


def decompress(args, data: bytes, out) -> int:
    """The rest of ``codec.decompress`` for a stream with the post-decoder's magic."""
    try:
        model_path = args.model
        if model_path is None:
            header, _ = container.unpack(data)
            dirs = [Path(args.input).resolve().parent, runs_dir() / "codec",
                    REPO_ROOT / "checkpoints"]
            model_path = find_checkpoint(header.weights_hash, dirs)
            if model_path is None:
                raise CheckpointError(
                    f"{args.input}: no post-decoder checkpoint with weights hash "
                    f"{header.weights_hash.hex()} next to it, under {runs_dir() / 'codec'} or "
                    f"in {REPO_ROOT / 'checkpoints'}; pass --model CKPT")
        model = api.load(model_path, device=args.device)
        res = api.decode(data, model, max_pixels=args.max_pixels)
        write_output(out, png_bytes(res.image))
    except (bitstream.BitstreamError, MemoryError) as e:
        raise CliError(f"{args.input}: {e}") from None
    h, w = res.image.shape[:2]
    print(f"{args.out}: {w}x{h} px from {len(data)} bytes, {res.bpp:.4f} bpp, HEVC QP {res.qp}, "
          f"post-decoder {model_path}, {res.seconds:.2f} s (HEVC {res.hevc_seconds:.2f} s, "
          f"stage {res.stage_seconds:.2f} s)")
    return 0
