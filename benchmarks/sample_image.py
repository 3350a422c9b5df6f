"""The one sample image a benchmark runs on: picked by id from a data set, its report header,
and the options every single-image benchmark shares (``--image``, ``--threads``)."""

from __future__ import annotations

import numpy as np

from plic.measurement import host


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
