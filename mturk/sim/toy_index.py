"""A tiny ``index.csv`` made on the spot (Pillow JPEG at a few qualities), for tests and the bench.

Not a substitute for ``distortions``: it exists so the study tools can be exercised without it.
Each reference is a crop of a sample image (or a synthetic pattern when none is given); each
"codec" is JPEG at one quality, all filed under the same ``target_bpp`` so they form 2AFC pairs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from distortions.schema import INDEX_COLUMNS, INDEX_ID
from plic.fsio import sha256_file
from plic.image_io import jpeg_round_trip, write_png
from plic.quality import bpp, ms_ssim, psnr
from plic.tables import rel_path, write_table


def _pattern(rng: np.random.Generator, size: int) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size] / size
    img = np.stack([np.sin(8 * x + rng.uniform(0, 6)), np.cos(6 * y + rng.uniform(0, 6)),
                    np.sin(5 * (x + y))], axis=-1)
    img = (img + 1) * 110 + rng.normal(0, 12, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_toy_index(out_dir: str | Path, images: dict[str, np.ndarray] | None = None,
                   n_refs: int = 2, size: int = 64, qualities=(5, 25, 60, 90),
                   target_bpps=(1.0,), seed: int = 0, with_ms_ssim: bool = False) -> Path:
    """Write ``out_dir/index.csv`` and its PNGs; returns the index path.

    ``with_ms_ssim`` fills the ms_ssim column (it imports torch, slow to start); else it is empty.
    """
    out = Path(out_dir)
    (out / "img").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    refs = {}
    if images:
        for rid in sorted(images)[:n_refs]:
            im = images[rid]
            refs[rid] = np.ascontiguousarray(im[:size, :size])
    else:
        for i in range(n_refs):
            refs[f"toy{i}"] = _pattern(rng, size)
    index = out / "index.csv"
    rows = []
    for rid, ref in refs.items():
        ref_path = write_png(out / "img" / f"{rid}_ref.png", ref)
        for target in target_bpps:
            for q in qualities:
                dec, data = jpeg_round_trip(ref, q)
                did = f"{rid}-jpegq{q}-t{target}"
                bs = out / "img" / f"{did}.jpg"
                bs.write_bytes(data)
                p = write_png(out / "img" / f"{did}.png", dec)
                rows.append(dict(
                    dist_id=did, ref_id=rid, ref_path=rel_path(ref_path, index),
                    codec=f"jpeg-q{q}", codec_version="pillow", param=str(q),
                    target_bpp=target, bpp=bpp(len(data), size, size), psnr=psnr(ref, dec),
                    ms_ssim=ms_ssim(ref, dec) if with_ms_ssim else "", path=rel_path(p, index),
                    bitstream_path=rel_path(bs, index), sha256=sha256_file(p), width=size,
                    height=size, crop_x=0, crop_y=0, crop_size=size))
    return write_table(index, rows, INDEX_COLUMNS, INDEX_ID)
