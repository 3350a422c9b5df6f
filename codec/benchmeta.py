"""What a benchmark records about where it ran, the image it runs on and how its report is
written: one definition for
``codec.bench``, ``codec.decode_bench``, ``codec.train_bench``, ``codec.context.bench``,
``codec.train.rd`` and ``distortions.bench``.

On a shared machine wall times swing with the load, so every report carries the 1-minute load
average beside its numbers.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path

import numpy as np

from plic.fsio import atomic_write_text


def machine() -> str:
    """The processor's name where the platform says it, else the architecture."""
    return platform.processor() or platform.machine()


def load_1min() -> float:
    return round(os.getloadavg()[0], 2)


def load_averages() -> list[float]:
    """The 1-, 5- and 15-minute load averages."""
    return [round(v, 2) for v in os.getloadavg()]


def host() -> dict:
    """Torch threads, load, machine and torch version: the fields every codec bench reports."""
    import torch

    return {"threads": torch.get_num_threads(), "loadavg": load_1min(), "machine": machine(),
            "torch": str(torch.__version__)}


def versions() -> dict:
    """Python and torch versions, the architecture and the CPU count (``codec.train_bench``)."""
    import torch

    return {"python": sys.version.split()[0], "torch": str(torch.__version__),
            "machine": platform.machine(), "cpu_count": os.cpu_count()}


def image_meta(image_id: str, image: np.ndarray, repeat: int) -> dict:
    """The report header of a bench over one image: the image, its size, repeats, ``host()``."""
    return {"image": image_id, "size": f"{image.shape[1]}x{image.shape[0]}", "repeat": repeat,
            **host()}


class NoSuchImage(LookupError):
    """The asked image id is not in the data set; the message lists the ids there are."""


def parse_and_pick(p, argv, prog: str):
    """(args, image) of a bench over one sample image: ``p``'s known options (others are named
    and ignored), torch's threads set from ``--threads`` (0: torch's default), and the
    ``--image`` of the sample set (unknown: ``p.error``)."""
    import torch

    args, unknown = p.parse_known_args(argv)
    if unknown:
        print(f"{prog}: ignoring {unknown}")
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        return args, pick_image(args.image)
    except NoSuchImage as e:
        p.error(f"--image: {e}")


def pick_image(image_id: str, data: str = "samples") -> np.ndarray:
    """The uint8 RGB image ``image_id`` of the data set ``data`` (a manifest name or a folder)."""
    from plic.datasets import resolve_data
    from plic.image_io import read_image

    recs = {r.id: r for r in resolve_data(data)}
    if image_id not in recs:
        raise NoSuchImage(f"no image {image_id!r} in {data} ({', '.join(sorted(recs))})")
    return read_image(recs[image_id].path)


def write_report(folder: str | os.PathLike, stem: str, data: dict, md: str, indent: int = 2,
                 json_end: str = "") -> None:
    """``folder/stem.json`` (``data``) and ``folder/stem.md``, written atomically (the folder is
    made), then the Markdown printed."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / f"{stem}.json", json.dumps(data, indent=indent) + json_end)
    atomic_write_text(folder / f"{stem}.md", md)
    print(md)
