"""Training crops and the validation set.

Every training sample has a global number ``k`` (step * global batch + position in the batch).
The image, the crop position and the flip of sample ``k`` are a pure function of ``(seed, k)``,
so a run resumed at step ``s`` sees exactly the batches the uninterrupted run would have seen,
whatever the number of loader workers, and ``P`` processes of a torchrun share one global batch
that is identical to a single process's batch.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from plic.datasets import ImageRecord, resolve_data
from plic.image_io import center_crop, read_image, to_tensor


def _upscale_to(img: np.ndarray, size: int) -> np.ndarray:
    """Images smaller than the crop are enlarged (bicubic) so their short side is ``size``."""
    from PIL import Image

    h, w = img.shape[:2]
    s = size / min(h, w)
    im = Image.fromarray(img).resize((max(size, round(w * s)), max(size, round(h * s))),
                                     Image.BICUBIC)
    return np.asarray(im)


class RandomCrops(Dataset):
    """Sample ``k`` -> a random ``crop`` x ``crop`` patch with a random horizontal flip.

    Images are visited in a fresh permutation each epoch (epoch = k // number of images). Decoded
    images are cached per worker process.
    """

    def __init__(self, records: list[ImageRecord], crop: int, seed: int = 0):
        if not records:
            raise ValueError("no training images")
        self.paths = [r.path for r in records]
        self.crop, self.seed = crop, seed
        self._cache: dict[int, np.ndarray] = {}
        self._perm: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:  # samples are numbered without end; the sampler decides
        return 2 ** 62

    def _image(self, i: int) -> np.ndarray:
        if i not in self._cache:
            img = read_image(self.paths[i])
            if min(img.shape[:2]) < self.crop:
                img = _upscale_to(img, self.crop)
            self._cache[i] = img
        return self._cache[i]

    def image_index(self, k: int) -> int:
        n = len(self.paths)
        epoch, j = divmod(k, n)
        if self._perm is None or self._perm[0] != epoch:
            self._perm = (epoch, np.random.default_rng([self.seed, epoch]).permutation(n))
        return int(self._perm[1][j])

    def __getitem__(self, k: int) -> torch.Tensor:
        img = self._image(self.image_index(k))
        rng = np.random.default_rng([self.seed, k, 1])
        h, w = img.shape[:2]
        top = int(rng.integers(0, h - self.crop + 1))
        left = int(rng.integers(0, w - self.crop + 1))
        patch = img[top:top + self.crop, left:left + self.crop]
        if rng.random() < 0.5:
            patch = patch[:, ::-1]
        return to_tensor(patch, batch=False)


class GlobalBatchSampler(Sampler[int]):
    """Sample numbers of this process's share of each global batch, from ``start_step`` on."""

    def __init__(self, global_batch: int, start_step: int = 0, rank: int = 0, world: int = 1):
        if global_batch % world:
            raise ValueError(f"batch size {global_batch} is not divisible by {world} processes")
        self.global_batch, self.start_step, self.rank, self.world = (global_batch, start_step,
                                                                     rank, world)
        self.local = global_batch // world

    def __len__(self) -> int:
        return 2 ** 62

    def __iter__(self) -> Iterator[int]:
        step = self.start_step
        while True:
            base = step * self.global_batch + self.rank * self.local
            yield from range(base, base + self.local)
            step += 1


def train_loader(records: list[ImageRecord], crop: int, global_batch: int, *, seed: int = 0,
                 start_step: int = 0, rank: int = 0, world: int = 1, workers: int = 0,
                 pin_memory: bool = False) -> DataLoader:
    sampler = GlobalBatchSampler(global_batch, start_step, rank, world)
    # Own generator: the loader must not draw from (and so shift) the global torch RNG.
    return DataLoader(RandomCrops(records, crop, seed), batch_size=sampler.local, sampler=sampler,
                      num_workers=workers, persistent_workers=workers > 0, pin_memory=pin_memory,
                      generator=torch.Generator().manual_seed(seed))


def training_records(data: str, data_root: str = "", split: str = "") -> list[ImageRecord]:
    return resolve_data(data, data_root or None, split=split or None)


def validation_images(data: str, data_root: str = "", count: int = 4, crop: int = 256,
                      multiple: int = 64) -> list[tuple[str, np.ndarray]]:
    """A few fixed images (first ``count`` of the set), centre-cropped to a multiple of
    ``multiple`` pixels so every model stride divides them."""
    records = resolve_data(data, data_root or None)
    out = []
    for r in records[:count]:
        img = read_image(r.path)
        if crop:
            img = center_crop(img, min(crop, *img.shape[:2]))
        h, w = (s // multiple * multiple for s in img.shape[:2])
        top, left = (img.shape[0] - h) // 2, (img.shape[1] - w) // 2
        out.append((r.id, np.ascontiguousarray(img[top:top + h, left:left + w])))
    return out
