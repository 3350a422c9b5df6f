"""The evaluation run: encode everything, measure every pair, FID/KID per (method, target).

``evaluate(records, cfg, cluster=None)`` returns ``(rows, summary, info)`` and writes nothing
but caches; ``codec.evaluate.report`` writes the tables, plots and HTML. Its items (a
checkpoint on one image, a classic codec on one image, one reference image's measures) run
here or on a Dask cluster (``--cluster``, ``plic.cluster``) with the same values.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from plic.cluster import run_items
from plic.fsio import atomic_write_text
from plic.image_io import read_image

from .encode import STATUS_FAILED, STATUS_OK, Track, encode_classic, encode_track_image
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


_MEASURERS: dict = {}  # Measurer arguments -> Measurer, one per process (a worker's too)


def _measurer(nets, fitted, cache_dir, dists) -> Measurer:
    key = (tuple(nets or ()), fitted, str(cache_dir), dists)
    if key not in _MEASURERS:
        _MEASURERS.clear()
        _MEASURERS[key] = Measurer(nets, fitted, cache_dir, dists=dists)
    return _MEASURERS[key]


@dataclass
class MeasureTask:
    """One item of the measure step: a reference image and every decoded version of it."""

    image_id: str
    ref_path: str
    ref_sha256: str
    decoded: list  # (decoded PNG path, its sha256)
    measurer: tuple  # Measurer's (nets, fitted, cache_dir, dists)
    cache: str
    fast: bool = True
    fid: bool = False
    fid_shifted: bool = True


def measure_item(task: MeasureTask) -> list[dict]:
    """Every quality column of each decoded image against the reference (and their Inception
    features into the cache when ``task.fid``); here or on a cluster worker."""
    meas = _measurer(*task.measurer)
    ref = Lazy(task.ref_path)
    decs = [Lazy(path) for path, _ in task.decoded]
    cache = Path(task.cache)
    if task.fast:
        # the reference's trunk features once, then every decoded version of it, the
        # Inception features of both while the images are in memory
        vals = meas.measure_image(ref, [(d, sha) for d, (_, sha) in zip(decs, task.decoded)],
                                  task.ref_sha256)
    else:
        vals = [meas(ref(), d(), task.ref_sha256, sha) for d, (_, sha) in
                zip(decs, task.decoded)]
    if task.fid:
        _fid_one(ref, cache, task.ref_sha256, task.fid_shifted)
        for d, (_, sha) in zip(decs, task.decoded):
            _fid_one(d, cache, sha, task.fid_shifted)
    return vals


def _encode_item(job) -> list[dict]:
    track, rec, cache = job
    return encode_track_image(track, rec, cache)


def _failed(rows: list[dict], error: str) -> None:
    for r in rows:
        r.update(status=STATUS_FAILED, error=error)


def _check_cluster(cluster, records, cfg: EvalConfig, out: Path) -> None:
    """Refuse unless every worker sees the images, checkpoints and the fitted metric, and
    writes where this process reads (``plic.cluster.Cluster.check_paths``)."""
    inputs = [r.path for r in records] + [t.checkpoint for t in cfg.tracks]
    inputs += [cfg.metric] if cfg.metric else []
    outputs = [out] + ([Path(cfg.dist_out)] if cfg.classic and cfg.dist_out else [])
    cluster.check_paths(inputs=inputs, outputs=outputs)


def evaluate(records, cfg: EvalConfig, cluster=None):
    """Encode, measure, summarise; here, or with ``cluster`` (a connected
    ``plic.cluster.Cluster``) one item per (checkpoint, image), per classic (image, codec) and
    per reference image's measures on its workers: the same values either way. Items that
    fail are rows with status ``failed`` and their error, and ``errors`` in the info."""
    out = Path(cfg.out)
    cache = out / "cache"
    notes: list[str] = []
    errors: list = []
    if cluster is not None:
        _check_cluster(cluster, records, cfg, out)
    jobs = {"cluster": cluster, "jobs": 1, "progress": cfg.progress}

    # ours: one item per (checkpoint, image); rows in (checkpoint, image, target) order
    items = [(t, rec, cache) for t in cfg.tracks for rec in records]
    parts: list = [[] for _ in items]
    failed = run_items(_encode_item, items, parts.__setitem__, desc="ours: encode+decode",
                       unit="img", names=[f"{t.label} {rec.path}" for t, rec, _ in items],
                       **jobs)
    for e in failed:
        t, rec, _ = items[e.index]
        parts[e.index] = [{"method": t.label, "kind": "ours", "codec": t.model,
                           "checkpoint": str(t.checkpoint), "trained_with": t.trained_with,
                           "target_bpp": target, "image_id": rec.id, "ref_path": str(rec.path),
                           "ref_sha256": rec.sha256, "status": STATUS_FAILED,
                           "error": e.message} for target in t.targets]
    errors += [(e.name, e.message) for e in failed]
    rows: list[dict] = [r for part in parts for r in part]
    if cfg.classic:
        crow, cerrors = encode_classic(cfg.classic, records, cfg.classic_targets,
                                       Path(cfg.dist_out or out / "distortions"), jobs=cfg.jobs,
                                       progress=cfg.progress, backend=cfg.backend,
                                       cluster=cluster)
        rows += crow
        notes += [f"{where}: {msg}" for where, msg in cerrors]

    margs = (tuple(cfg.lpips or ()), cfg.metric, str(cache / "metrics"), cfg.dists)
    meas = _measurer(*margs)
    notes += [f"{col} empty: {why}" for col, why in meas.unavailable.items()]
    ok = [r for r in rows if r["status"] == STATUS_OK]
    by_image: dict[str, list[dict]] = {}
    for r in ok:
        by_image.setdefault(r["image_id"], []).append(r)
    paths = {r.id: str(r.path) for r in records}
    fid_on = cfg.fast and _fid_ready(cfg)
    tasks = [MeasureTask(image_id, paths[image_id], rs[0]["ref_sha256"],
                         [(r["decoded_path"], r["sha256"]) for r in rs], margs, str(cache),
                         fast=cfg.fast, fid=fid_on, fid_shifted=cfg.fid_shifted)
             for image_id, rs in by_image.items()]
    groups = list(by_image.values())

    def merge(i: int, vals: list[dict]) -> None:
        for r, v in zip(groups[i], vals):
            r.update(v)

    # the local default stays in this process (its measurer's networks are loaded once)
    failed = run_items(measure_item, tasks, merge, desc="measure", unit="image",
                       names=[t.ref_path for t in tasks], **jobs)
    for e in failed:
        _failed(groups[e.index], f"measure: {e.message}")
    errors += [(e.name, e.message) for e in failed]
    summary = summarise(rows, records)
    if cfg.fid:
        refs = {r.id: Lazy(r.path) for r in records}
        _add_fid(summary, rows, records, lambda i: refs[i], cache, cfg, notes)
    return rows, summary, {"notes": notes, "metric_names": meas.names,
                           "unavailable": meas.unavailable, "errors": errors}


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
