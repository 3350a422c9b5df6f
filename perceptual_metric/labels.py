"""Reading ``labels.csv`` (the mturk contract) and serving its image triplets.

Every row names its images by id and by path (relative to the CSV's folder). Rows are joined by
those ids: an id that appears with two different paths, a missing file, or a ``p_b``/``n`` out of
range is an error that names the row and the fix, never a silent misalignment.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mturk.schema import LABELS_COLUMNS, LABELS_ID
from plic.fsio import sha256_file
from plic.image_io import read_image, to_tensor
from plic.tables import read_table, resolve_path


class LabelsError(ValueError):
    """A labels file that breaks the contract or points at missing images."""


@dataclass(frozen=True)
class Trial:
    trial_id: str
    ref_id: str
    a_id: str
    b_id: str
    ref_path: Path
    a_path: Path
    b_path: Path
    p_b: float  # fraction of kept judgments choosing B as closer to the reference
    n: int  # kept judgments
    a_codec: str
    b_codec: str

    @property
    def pair(self) -> str:
        """The codec pair, order-free: ``"jpeg vs webp"``."""
        return " vs ".join(sorted((self.a_codec or "?", self.b_codec or "?")))


def labels_sha256(path: str | os.PathLike) -> str:
    return sha256_file(path)


def simulated_source(path: str | os.PathLike) -> str | None:
    """Which file beside ``labels.csv`` says its labels are simulated, if one does:
    ``SIMULATED.json`` (perceptual_metric.simulate) or ``aggregate.json`` with ``simulated: true``
    (the mturk stage, fed by its simulated crowd)."""
    folder = Path(path).parent
    if (folder / "SIMULATED.json").is_file():
        return "SIMULATED.json"
    agg = folder / "aggregate.json"
    if agg.is_file():
        try:
            if json.loads(agg.read_text()).get("simulated"):
                return "aggregate.json"
        except (ValueError, AttributeError):
            return None
    return None


def read_labels(path: str | os.PathLike, check_files: bool = True) -> list[Trial]:
    """All rows of a ``labels.csv`` as ``Trial``s, validated (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise LabelsError(f"{path}: labels file not found; produce it with the mturk stage "
                          "(or python -m perceptual_metric.simulate for simulated labels)")
    df = read_table(path, LABELS_COLUMNS, LABELS_ID)
    if len(df) == 0:
        raise LabelsError(f"{path}: no labels")
    trials, id_paths = [], {}
    for i, r in enumerate(df.to_dict("records")):
        where = f"{path}: row {i + 2} (trial {r['trial_id']!r})"
        for col in ("trial_id", "ref_id", "a_id", "b_id", "ref_path", "a_path", "b_path"):
            if not r[col]:
                raise LabelsError(f"{where}: empty {col}")
        try:
            p_b, n = float(r["p_b"]), int(r["n"])
        except ValueError as e:
            raise LabelsError(f"{where}: p_b={r['p_b']!r}, n={r['n']!r} are not numbers") from e
        if not 0.0 <= p_b <= 1.0 or n < 1:
            raise LabelsError(f"{where}: p_b={p_b} must be in [0,1] and n={n} at least 1")
        paths = {}
        for side in ("ref", "a", "b"):
            ident, p = r[f"{side}_id"], resolve_path(r[f"{side}_path"], path)
            seen = id_paths.setdefault(ident, p)
            if seen != p:
                raise LabelsError(f"{where}: id {ident!r} points at {p}, elsewhere at {seen}")
            paths[side] = p
        trials.append(Trial(r["trial_id"], r["ref_id"], r["a_id"], r["b_id"], paths["ref"],
                            paths["a"], paths["b"], p_b, n, r["a_codec"], r["b_codec"]))
    if check_files:
        missing = sorted({str(p) for p in id_paths.values() if not p.is_file()})
        if missing:
            raise LabelsError(f"{path}: {len(missing)} image file(s) missing, e.g. {missing[:3]}; "
                              "paths are relative to the labels file's folder")
    return trials


def group_split(trials: Sequence[Trial], val_fraction: float, seed: int
                ) -> tuple[list[int], list[int]]:
    """Train/validation trial indices, split by reference image (no reference in both)."""
    from sklearn.model_selection import GroupShuffleSplit

    groups = [t.ref_id for t in trials]
    if len(set(groups)) < 2 or val_fraction <= 0:
        return list(range(len(trials))), []
    gss = GroupShuffleSplit(n_splits=1, test_size=val_fraction, random_state=seed)
    tr, va = next(gss.split(np.zeros(len(trials)), groups=groups))
    return sorted(tr.tolist()), sorted(va.tolist())


class ImageCache:
    """uint8 (H, W, 3) images by path, read once."""

    def __init__(self):
        self._images: dict[Path, np.ndarray] = {}

    def __call__(self, path: Path) -> np.ndarray:
        img = self._images.get(path)
        if img is None:
            img = self._images[path] = read_image(path)
        return img


class TripletDataset(torch.utils.data.Dataset):
    """(ref, a, b, p_b, n): float 3 x P x P crops in [0,1], one crop position per triplet.

    ``train=True`` takes random crops and random horizontal/vertical flips (the same for all
    three images); otherwise the centre crop. ``patch_size=None`` keeps whole images.
    """

    def __init__(self, trials: Sequence[Trial], patch_size: int | None = 64, train: bool = False,
                 flip: bool = True, seed: int = 0, cache: ImageCache | None = None):
        self.trials, self.patch_size, self.train, self.flip = list(trials), patch_size, train, flip
        self.cache = cache or ImageCache()
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.trials)

    def images(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The uint8 triplet of trial ``i`` (whole images, shapes checked)."""
        t = self.trials[i]
        ref, a, b = self.cache(t.ref_path), self.cache(t.a_path), self.cache(t.b_path)
        if not ref.shape == a.shape == b.shape:
            raise LabelsError(f"trial {t.trial_id}: image sizes differ "
                              f"(ref {ref.shape}, a {a.shape}, b {b.shape})")
        return ref, a, b

    def crop_box(self, h: int, w: int, rng: np.random.Generator | None = None
                 ) -> tuple[int, int, int, int]:
        """(y, x, height, width): random with ``rng`` (or in training), else the centre."""
        p = self.patch_size
        if p is None:
            return 0, 0, h, w
        if h < p or w < p:
            raise LabelsError(f"images of {w}x{h} are smaller than the {p} px patch; "
                              "lower --patch")
        if rng is None and self.train:
            rng = self.rng
        if rng is not None:
            return int(rng.integers(0, h - p + 1)), int(rng.integers(0, w - p + 1)), p, p
        return (h - p) // 2, (w - p) // 2, p, p

    def views(self, i: int, k: int, rng: np.random.Generator, flip: bool | None = None
              ) -> list[tuple[tuple[int, int, int, int], bool, bool]]:
        """``k`` crop boxes with (horizontal, vertical) flips for trial ``i``, drawn from ``rng``.
        Without a patch size every view is the whole image."""
        flip = self.flip if flip is None else flip
        h, w = self.images(i)[0].shape[:2]
        out = []
        for _ in range(k):
            box = self.crop_box(h, w, rng)
            fh, fv = (bool(rng.random() < 0.5), bool(rng.random() < 0.5)) if flip else (False,
                                                                                        False)
            out.append((box, fh, fv))
        return out

    def crop(self, i: int, box: tuple[int, int, int, int], fh: bool = False, fv: bool = False
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Float 3 x h x w tensors in [0,1] of the triplet's crop ``box``, flipped as asked."""
        y, x, ph, pw = box
        out = [to_tensor(im[y:y + ph, x:x + pw], batch=False) for im in self.images(i)]
        if fh:
            out = [o.flip(2) for o in out]
        if fv:
            out = [o.flip(1) for o in out]
        return out[0], out[1], out[2]

    def __getitem__(self, i: int):
        h, w = self.images(i)[0].shape[:2]
        box = self.crop_box(h, w)
        fh = fv = False
        if self.train and self.flip:
            fh, fv = bool(self.rng.random() < 0.5), bool(self.rng.random() < 0.5)
        t = self.trials[i]
        return (*self.crop(i, box, fh, fv), torch.tensor(t.p_b, dtype=torch.float32),
                torch.tensor(float(t.n), dtype=torch.float32))
