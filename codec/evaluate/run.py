"""The evaluation run: encode everything, measure every pair, FID/KID per (method, target).

``evaluate(records, cfg)`` returns ``(rows, summary, notes)`` and writes nothing but caches;
``codec.evaluate.report`` writes the tables, plots and HTML.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from plic.fsio import atomic_write_text
from plic.image_io import read_image

from .encode import STATUS_OK, Track, encode_classic, encode_track
from .measure import LPIPS_NETS, Measurer

QUALITY_COLUMNS = ["psnr", "ms_ssim", "lpips_alex", "lpips_vgg", "lpips_squeeze", "dists",
                   "metric_fitted"]


@dataclass
class EvalConfig:
    out: Path
    tracks: list[Track] = field(default_factory=list)
    classic: tuple[str, ...] = ()
    classic_targets: tuple[float, ...] = ()
    dist_out: Path | None = None  # distortions cache; default OUT/distortions
    lpips: tuple[str, ...] = LPIPS_NETS
    metric: str | None = None
    dists: bool = True
    fid: bool = True
    fid_shifted: bool = True
    jobs: int = 0
    fast: bool = True  # per image, trunks shared (False: the per-pair reference path)
    progress: bool = True
    backend: object = None  # distortions.backends.BackendOptions (x265 preset, learned codecs)


def _bar(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="img", disable=not enabled or total == 0,
                file=sys.stderr)


class Lazy:
    """An image read on first use and kept: ``Lazy(path)()``."""

    def __init__(self, path):
        self.path, self.value = path, None

    def __call__(self) -> np.ndarray:
        if self.value is None:
            self.value = read_image(self.path)
        return self.value


def _fid_one(image, cache: Path, sha: str, shifted: bool) -> np.ndarray:
    """Inception features of one image's patches (``image``: an array or a ``Lazy``), cached
    per image sha256: a reference is computed once for every codec and target."""
    from codec.evaluate import fid

    p = cache / "fid" / f"{sha}{'' if shifted else '-plain'}.npy"
    if p.is_file():
        return np.load(p)
    f = fid.features([image() if callable(image) else image], shifted=shifted)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".tmp.npy")
    np.save(tmp, f)
    tmp.replace(p)
    return f


def _fid_features(images, cache: Path, shas, shifted: bool) -> np.ndarray:
    return np.concatenate([_fid_one(im, cache, sha, shifted) for im, sha in zip(images, shas)])


def _fid_ready(cfg) -> bool:
    if not cfg.fid:
        return False
    from codec.evaluate import fid

    try:
        fid.inception_path()
    except fid.FIDUnavailable:
        return False
    return True


def evaluate(records, cfg: EvalConfig):
    out = Path(cfg.out)
    cache = out / "cache"
    notes: list[str] = []
    rows: list[dict] = []
    n_ours = sum(len(t.targets) for t in cfg.tracks) * len(records)
    bar = _bar(n_ours, "ours: encode+decode", cfg.progress)
    for t in cfg.tracks:
        rows += encode_track(t, records, cache, progress=bar)
    bar.close()
    if cfg.classic:
        crow, errors = encode_classic(cfg.classic, records, cfg.classic_targets,
                                      Path(cfg.dist_out or out / "distortions"), jobs=cfg.jobs,
                                      progress=cfg.progress, backend=cfg.backend)
        rows += crow
        notes += [f"{where}: {msg}" for where, msg in errors]

    meas = Measurer(cfg.lpips, cfg.metric, cache / "metrics", dists=cfg.dists)
    notes += [f"{col} empty: {why}" for col, why in meas.unavailable.items()]
    refs = {r.id: Lazy(r.path) for r in records}
    ok = [r for r in rows if r["status"] == STATUS_OK]
    bar = _bar(len(ok), "measure", cfg.progress)
    if cfg.fast:
        # per reference image: its trunk features once, then every decoded version of it,
        # the Inception features of both while the images are in memory
        fid_on = _fid_ready(cfg)
        by_image: dict[str, list[dict]] = {}
        for r in ok:
            by_image.setdefault(r["image_id"], []).append(r)
        for image_id, rs in by_image.items():
            decs = [Lazy(r["decoded_path"]) for r in rs]
            vals = meas.measure_image(refs[image_id], [(d, r["sha256"]) for d, r in
                                                       zip(decs, rs)], rs[0]["ref_sha256"])
            if fid_on:
                _fid_one(refs[image_id], cache, rs[0]["ref_sha256"], cfg.fid_shifted)
            for r, d, v in zip(rs, decs, vals):
                r.update(v)
                if fid_on:
                    _fid_one(d, cache, r["sha256"], cfg.fid_shifted)
                bar.update(1)
            refs[image_id].value = None  # done with this reference: free it
    else:
        for r in ok:
            dec = read_image(r["decoded_path"])
            r.update(meas(refs[r["image_id"]](), dec, r["ref_sha256"], r["sha256"]))
            bar.update(1)
    bar.close()
    summary = summarise(rows, records)
    if cfg.fid:
        _add_fid(summary, rows, records, lambda i: refs[i], cache, cfg, notes)
    return rows, summary, {"notes": notes, "metric_names": meas.names,
                           "unavailable": meas.unavailable}


def _mean(vals):
    vals = [v for v in vals if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return float(np.mean(vals)) if vals else None


def summarise(rows: list[dict], records) -> list[dict]:
    """One row per (method, target): means over the images coded at or under the target.

    ``n_images`` says how many of the set made it (a codec that cannot reach a target on some
    images is averaged over fewer, and the table marks it).
    """
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["method"], r["target_bpp"]), []).append(r)
    out = []
    for (method, target), rs in groups.items():
        ok = [r for r in rs if r["status"] == STATUS_OK]
        s = {"method": method, "kind": rs[0]["kind"], "codec": rs[0]["codec"],
             "trained_with": rs[0].get("trained_with", ""), "target_bpp": target,
             "n_images": len(ok), "n_set": len(records),
             "bpp": _mean(r["bpp"] for r in ok),
             "est_bpp": _mean(r.get("est_bpp") for r in ok)}
        for col in QUALITY_COLUMNS:
            s[col] = _mean(r.get(col) for r in ok)
        s["ms_ssim_scales"] = min((r["ms_ssim_scales"] for r in ok if "ms_ssim_scales" in r),
                                  default=None)
        s.update(fid=None, kid=None, kid_std=None, fid_patches=None)
        out.append(s)
    out.sort(key=lambda s: (s["kind"] != "classic", s["method"], s["target_bpp"]))
    return out


def _fid_kid_cached(f_ref, f_dec, cache: Path, shifted: bool, ref_shas, dec_shas) -> dict:
    """FID/KID of two feature sets, cached by the images they came from (the Frechet distance
    of 2048-d features is the slow part of a rerun)."""
    import hashlib
    import json

    from codec.evaluate import fid

    key = hashlib.sha256(json.dumps([list(ref_shas), list(dec_shas), shifted]).encode())
    p = cache / "fid" / f"fidkid-{key.hexdigest()[:32]}.json"
    if p.is_file():
        return json.loads(p.read_text())
    res = fid.fid_kid_features(f_ref, f_dec)
    out = {"fid": float(res.fid), "kid": float(res.kid), "kid_std": float(res.kid_std),
           "fid_patches": int(res.n_patches)}
    atomic_write_text(p, json.dumps(out))
    return out


def _add_fid(summary, rows, records, ref_image, cache, cfg, notes):
    from codec.evaluate import fid

    try:
        fid.inception_path()
    except fid.FIDUnavailable as e:
        notes.append(f"FID/KID not computed: {e}")
        return
    # equal patch counts in every row: FID is biased by the sample size, so a row averaged over
    # fewer images (a codec that could not reach the target on some) gets no FID/KID
    groups = [s for s in summary if s["n_images"] == s["n_set"]]
    for s in summary:
        if 0 < s["n_images"] < s["n_set"]:
            notes.append(f"{s['method']} @ {s['target_bpp']:g}: no FID/KID, only "
                         f"{s['n_images']}/{s['n_set']} images reached the target (FID and KID "
                         f"are compared at equal patch counts only)")
    bar = _bar(len(groups), "FID/KID", cfg.progress)
    for s in groups:
        ok = [r for r in rows if r["method"] == s["method"] and r["target_bpp"] == s["target_bpp"]
              and r["status"] == STATUS_OK]
        # reference patches of exactly the images this method coded: equal counts per side
        f_ref = _fid_features([ref_image(r["image_id"]) for r in ok], cache,
                              [r["ref_sha256"] for r in ok], cfg.fid_shifted)
        f_dec = _fid_features([Lazy(r["decoded_path"]) for r in ok], cache,
                              [r["sha256"] for r in ok], cfg.fid_shifted)
        if len(f_ref) < 2:
            notes.append(f"{s['method']} @ {s['target_bpp']}: fewer than 2 patches, no FID")
        else:
            s.update(_fid_kid_cached(f_ref, f_dec, cache, cfg.fid_shifted,
                                     [r["ref_sha256"] for r in ok], [r["sha256"] for r in ok]))
        bar.update(1)
    bar.close()
