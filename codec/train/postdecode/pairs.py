"""Training pairs of the post-decoder: images and their HEVC decodes, cached on disk.

    python -m codec.train.postdecode.pairs [--data bsds500 --data-split train] [--qps 36,38,...]

Every image of the set is coded by ``hevc-bpgcfg`` (``codec.hevc``: BPG's settings, the same
bytes the codec writes) at each QP and decoded by ffmpeg; the decode is cached as a PNG:

    CACHE/<version-key>/<image id>/qp<NN>.png    the HEVC decode at QP NN
    CACHE/<version-key>/<image id>/meta.json     {"sha256": image hash, "bytes": {qp: size}}
    CACHE/<version-key>/version.txt              ffmpeg / x265 / preset: what the key stands for

The key is a hash of ``codec.hevc.version``, so another ffmpeg or preset never reuses pairs. A
rerun (or a resumed one, after a kill) codes only what is missing. The default QPs, 36 to 50,
cover the three tracks (0.075, 0.15, 0.3 bpp) on Kodak and BSDS500 with a margin.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from codec import hevc
from plic.cli import command, parser
from plic.datasets import ImageRecord, resolve_data
from plic.fsio import atomic_write_bytes, atomic_write_text
from plic.image_io import png_bytes, read_image
from plic.paths import runs_dir

DEFAULT_QPS = tuple(range(36, 51, 2))


def default_cache() -> Path:
    return runs_dir() / "postdecode" / "pairs"


@dataclass
class Pair:
    ref_id: str
    original: Path
    decoded: dict[int, Path]      # qp -> cached HEVC decode
    bytes: dict[int, int]         # qp -> HEVC stream size


def version_dir(cache: Path, ffmpeg: str = "ffmpeg", preset: str = hevc.DEFAULT_PRESET) -> Path:
    version = hevc.version(hevc.find_ffmpeg(ffmpeg), preset)
    key = hashlib.sha256(version.encode()).hexdigest()[:12]
    d = Path(cache) / key
    d.mkdir(parents=True, exist_ok=True)
    if not (d / "version.txt").is_file():
        atomic_write_text(d / "version.txt", version + "\n")
    return d


def build_pairs(records: list[ImageRecord], qps=DEFAULT_QPS, cache: Path | None = None,
                ffmpeg: str = "ffmpeg", preset: str = hevc.DEFAULT_PRESET,
                progress: bool = True) -> list[Pair]:
    """Every (image, QP) decode, coded now when not cached yet."""
    from tqdm import tqdm

    root = version_dir(Path(cache or default_cache()), ffmpeg, preset)
    exe = hevc.find_ffmpeg(ffmpeg)
    out = []
    for r in tqdm(records, desc="hevc pairs", disable=not progress, dynamic_ncols=True):
        d = root / r.id
        meta_path = d / "meta.json"
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        image = None
        sizes = {int(k): v for k, v in meta.get("bytes", {}).items()}
        for qp in qps:
            png = d / f"qp{qp:02d}.png"
            if qp in sizes and png.is_file():
                continue
            if image is None:
                image = read_image(r.path)
            data = hevc.encode(image, qp, exe, preset)
            atomic_write_bytes(png, png_bytes(hevc.decode(data, exe)))
            sizes[qp] = len(data)
            meta = {"sha256": r.sha256, "path": r.path.name,
                    "bytes": {str(k): v for k, v in sorted(sizes.items())}}
            atomic_write_text(meta_path, json.dumps(meta, sort_keys=True) + "\n")
        out.append(Pair(r.id, Path(r.path), {q: d / f"qp{q:02d}.png" for q in qps},
                        {q: sizes[q] for q in qps}))
    return out


def load_pair(pair: Pair, qp: int) -> tuple[np.ndarray, np.ndarray]:
    """(original, HEVC decode at ``qp``), both uint8 H x W x 3."""
    x, y = read_image(pair.original), read_image(pair.decoded[qp])
    if x.shape != y.shape:
        raise ValueError(f"{pair.ref_id}: cached decode {y.shape} does not match the image "
                         f"{x.shape}; delete {pair.decoded[qp].parent} and rebuild")
    return x, y


def parse_qps(text: str) -> tuple[int, ...]:
    try:
        qps = tuple(sorted({int(v) for v in text.split(",") if v.strip()}))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of QPs: {text!r}") from None
    if not qps or not all(0 <= q <= 51 for q in qps):
        raise argparse.ArgumentTypeError(f"QPs must be in 0..51: {text!r}")
    return qps


PROG = "python -m codec.train.postdecode.pairs"


@command(PROG, errors=(OSError, hevc.HevcError))
def main(argv: list[str] | None = None) -> int:
    p = parser(PROG, __doc__)
    p.add_argument("--data", default="bsds500", help="manifest name, .csv or folder")
    p.add_argument("--data-split", default="train", help="manifest split ('' for all)")
    p.add_argument("--data-root", default="", help="folder manifest paths resolve against")
    p.add_argument("--qps", type=parse_qps, default=DEFAULT_QPS,
                   help=f"comma-separated QPs (default {','.join(map(str, DEFAULT_QPS))})")
    p.add_argument("--cache", default="", help=f"cache folder (default {default_cache()})")
    p.add_argument("--ffmpeg", default="ffmpeg", help="ffmpeg binary")
    p.add_argument("--x265-preset", default=hevc.DEFAULT_PRESET, choices=hevc.X265_PRESETS)
    p.add_argument("--limit", type=int, default=0, help="first N images only (0: all)")
    a = p.parse_args(argv)
    records = resolve_data(a.data, a.data_root or None, split=a.data_split or None)
    if a.limit:
        records = records[:a.limit]
    pairs = build_pairs(records, a.qps, Path(a.cache) if a.cache else None, a.ffmpeg,
                        a.x265_preset)
    n = len(pairs) * len(a.qps)
    print(f"{len(pairs)} images x {len(a.qps)} QPs = {n} pairs cached")
    return 0


if __name__ == "__main__":
    sys.exit(main())
