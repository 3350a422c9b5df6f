"""The image files a study shows: centre crops, all written by one PNG encoder, and the sentinels'
near-lossless side.

Every image a worker sees is written here by ``mturk.trials`` into ``OUT/views/``: the centre
``crop`` x ``crop`` pixels (``--crop``, default 256; 0 keeps whole images), so that the page can
show it at one image pixel per device pixel or larger (``mturk.web.page``). Writing them all with
the same encoder and settings means no file tells its origin by its chunks or compression.

A sentinel's obvious side is not the reference's own file: it is the reference crop coded with
JPEG 4:4:4 at quality ``NEAR_LOSSLESS_QUALITY`` and decoded (about 45 dB PSNR), so neither its
URL nor its bytes equal the reference's.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from plic.image_io import jpeg_round_trip, read_image, write_png
from plic.quality import bpp

NEAR_LOSSLESS_QUALITY = 97
NEAR_LOSSLESS_CODEC = "near-lossless"
NEAR_SUFFIX = "~near"


def centre_crop(img: np.ndarray, crop: int) -> np.ndarray:
    """The centre ``min(crop, h)`` x ``min(crop, w)`` pixels; ``crop`` 0: the whole image."""
    if crop < 0:
        raise ValueError("crop must be >= 0")
    h, w = img.shape[:2]
    if crop == 0:
        return img
    ch, cw = min(crop, h), min(crop, w)
    y, x = (h - ch) // 2, (w - cw) // 2
    return np.ascontiguousarray(img[y:y + ch, x:x + cw])


def near_lossless(img: np.ndarray) -> tuple[np.ndarray, float]:
    """(decoded JPEG 4:4:4 at NEAR_LOSSLESS_QUALITY, its bpp)."""
    dec, data = jpeg_round_trip(img, NEAR_LOSSLESS_QUALITY, subsampling=0)
    return dec, bpp(len(data), img.shape[0], img.shape[1])


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.~-]", "_", name)[:150]


class ViewWriter:
    """Writes each image once into ``folder`` (``<id>.png``); returns paths there."""

    def __init__(self, folder: str | Path, crop: int):
        self.folder = Path(folder)
        self.crop = int(crop)
        self._done: dict[str, tuple[Path, tuple[int, int]]] = {}
        self._near_bpp: dict[str, float] = {}

    def view(self, image_id: str, source: str | Path) -> tuple[Path, tuple[int, int]]:
        """(written file, (height, width)) of the shown part of ``source``."""
        if image_id not in self._done:
            img = centre_crop(read_image(source), self.crop)
            path = write_png(self.folder / f"{_safe(image_id)}.png", img)
            self._done[image_id] = (path, img.shape[:2])
        return self._done[image_id]

    def near(self, ref_id: str, ref_source: str | Path) -> tuple[str, Path, float]:
        """(id, file, bpp) of the reference's near-lossless view."""
        near_id = ref_id + NEAR_SUFFIX
        if near_id not in self._done:
            img = centre_crop(read_image(ref_source), self.crop)
            dec, rate = near_lossless(img)
            path = write_png(self.folder / f"{_safe(near_id)}.png", dec)
            self._done[near_id] = (path, dec.shape[:2])
            self._near_bpp[near_id] = rate
        return near_id, self._done[near_id][0], self._near_bpp[near_id]
