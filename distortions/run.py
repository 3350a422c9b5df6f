"""The parallel driver: references x codecs x targets -> files and index rows.

Work is split by image: each worker process reads one reference, crops it, and for every codec
still to do runs the rate search for each target, writes the decoded PNG and the bitstream, and
returns rows. The parent merges them and rewrites ``index.csv``/``searches.csv`` (atomically)
after every image, so a crash loses at most the images in flight. A codec that is missing on
this machine, a codec that fails on one image, or an unreadable image is reported with the file
and the fix; everything else is kept.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
import platform
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from plic.fsio import sha256_file
from plic.image_io import ImageReadError, png_bytes, read_image
from plic.quality import ms_ssim, ms_ssim_scales, psnr

from . import store as st
from .backends import BackendError, BackendOptions, BackendUnavailable, make_backend
from .ratesearch import RateCurve, search

DEFAULT_TARGETS = (0.075, 0.15, 0.3, 0.6)


@dataclass
class RunConfig:
    """What to distort and how (the CLI's options, one field each)."""

    out: str
    codecs: tuple[str, ...]
    targets: tuple[float, ...] = DEFAULT_TARGETS
    crop: int | None = None
    jobs: int = 0  # 0: all cores
    backend: BackendOptions = field(default_factory=BackendOptions)
    progress: bool = True


@dataclass
class RefTask:
    """One reference image and the (codec, targets) still to do for it."""

    ref_id: str
    path: str
    sha256: str
    todo: dict  # codec name -> list of target bpps
    versions: dict  # codec name -> version string (computed once in the parent)
    crop: int | None
    out: str
    backend: BackendOptions


@dataclass
class RefResult:
    ref_id: str
    rows: list = field(default_factory=list)
    searches: list = field(default_factory=list)
    errors: list = field(default_factory=list)  # (where, message)
    encodes: int = 0


@dataclass
class RunReport:
    """What a run did; ``errors`` hold (where, message with the fix)."""

    new_rows: int = 0
    reused_rows: int = 0
    unreachable: int = 0
    encodes: int = 0
    images_done: int = 0
    wrote_index: bool = False
    wrote_meta: bool = False
    errors: list = field(default_factory=list)


def crop_box(height: int, width: int, size: int | None) -> tuple[int, int, int] | None:
    """The deterministic (x, y, size) crop: centred, as ``plic.image_io.center_crop``."""
    if size is None:
        return None
    if size > min(height, width):
        raise ValueError(f"crop {size} larger than the image ({width}x{height})")
    return ((width - size) // 2, (height - size) // 2, size)


def _fmt_float(v: float) -> str:
    return repr(float(v))


def _quality(ref, dec) -> tuple[str, str]:
    q = psnr(ref, dec)
    try:
        ms_ssim_scales(*ref.shape[:2])
        m = _fmt_float(ms_ssim(ref, dec))
    except ValueError:  # too small for MS-SSIM: leave the cell empty
        m = ""
    return _fmt_float(q), m


def process_ref(task: RefTask) -> RefResult:
    """Worker: all pending codecs and targets of one reference image."""
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    res = RefResult(task.ref_id)
    store = st.Store(task.out)
    try:
        image = read_image(task.path)
    except ImageReadError as e:
        res.errors.append((task.path, f"{e}; fix or replace the file, or drop it from the "
                                      f"manifest"))
        return res
    box = crop_box(image.shape[0], image.shape[1], task.crop)
    if box is not None:
        x, y, s = box
        image = image[y:y + s, x:x + s].copy()
        ref_file = store.put_ref(f"{task.ref_id}-{task.sha256[:12]}-c{s}-{x}-{y}", png_bytes(image))
    else:
        ref_file = Path(task.path)
    ck = st.crop_key(box)
    h, w = image.shape[:2]
    for codec, targets in task.todo.items():
        version = task.versions[codec]
        try:
            backend = make_backend(codec, task.backend)
            curve = RateCurve(backend, image)
            made: dict[str, str] = {}  # param -> dist_id, within this image and codec
            for target in sorted(targets):
                sid = st.make_search_id(task.sha256, ck, codec, version, target)
                base = {"search_id": sid, "ref_id": task.ref_id, "ref_sha256": task.sha256,
                        "crop": ck, "codec": codec, "codec_version": version,
                        "target_bpp": _fmt_float(target)}
                enc = search(curve, target)
                if enc is None:
                    res.searches.append({**base, "status": st.STATUS_UNREACHABLE, "dist_id": "",
                                         "param": "", "bpp": ""})
                    continue
                param = backend.format_param(enc.param)
                did = st.make_dist_id(task.sha256, ck, codec, version, param)
                res.searches.append({**base, "status": st.STATUS_OK, "dist_id": did,
                                     "param": param, "bpp": _fmt_float(enc.bpp)})
                if param in made:
                    continue
                made[param] = did
                decoded = backend.decode(enc.data)
                if decoded.shape != image.shape:
                    raise BackendError(f"{codec}: decoded shape {decoded.shape} differs from "
                                       f"the input {image.shape}")
                img_path, img_sha = store.put_image(png_bytes(decoded))
                stream_path = store.put_stream(enc.data, backend.ext)
                q, m = _quality(image, decoded)
                res.rows.append({
                    "dist_id": did, "ref_id": task.ref_id, "ref_path": store.rel(ref_file),
                    "codec": codec, "codec_version": version, "param": param,
                    "target_bpp": _fmt_float(target), "bpp": _fmt_float(enc.bpp), "psnr": q,
                    "ms_ssim": m, "path": store.rel(img_path),
                    "bitstream_path": store.rel(stream_path), "sha256": img_sha,
                    "width": str(w), "height": str(h),
                    "crop_x": "" if box is None else str(box[0]),
                    "crop_y": "" if box is None else str(box[1]),
                    "crop_size": "" if box is None else str(box[2])})
            res.encodes += curve.encodes
        except Exception as e:  # noqa: BLE001 - one codec's failure must not lose the others
            # keep nothing half-done for this codec: its searches are retried next run
            res.rows = [r for r in res.rows if r["codec"] != codec]
            res.searches = [r for r in res.searches if r["codec"] != codec]
            msg = str(e) if isinstance(e, BackendError) else f"{type(e).__name__}: {e}"
            res.errors.append((f"{task.path} [{codec}]", msg))
    return res


def _versions(cfg: RunConfig, report: RunReport) -> dict[str, str]:
    """Version strings of the codecs that can run here; the others go to ``report.errors``."""
    versions = {}
    for name in cfg.codecs:
        try:
            b = make_backend(name, cfg.backend)
            b.check_available()
            versions[name] = b.version
        except (BackendUnavailable, BackendError, ValueError) as e:
            msg = str(e)
            report.errors.append((name, msg[len(name) + 2:] if msg.startswith(f"{name}: ")
                                  else msg))
    return versions


def _plan(records, versions, cfg, existing_rows, existing_searches, store):
    """Split the work into RefTasks, keeping every intact earlier result."""
    intact = {r["dist_id"]: r for r in existing_rows if store.row_is_intact(r)}
    done = {}
    for s in existing_searches:
        if s["status"] == st.STATUS_UNREACHABLE or s["dist_id"] in intact:
            done[s["search_id"]] = s
    tasks = []
    for rec in records:
        sha = rec.sha256 or sha256_file(rec.path)
        try:
            ck = st.crop_key(crop_box(*_size(rec), cfg.crop))
        except (OSError, ValueError):
            ck = None  # unreadable or too small: the worker reports it
        todo = {}
        for codec, version in versions.items():
            pending = [t for t in cfg.targets
                       if ck is None or st.make_search_id(sha, ck, codec, version, t) not in done]
            if pending:
                todo[codec] = pending
        if todo:
            tasks.append(RefTask(rec.id, str(rec.path), sha, todo, versions, cfg.crop,
                                 str(store.out), cfg.backend))
    return intact, done, tasks


def _size(rec) -> tuple[int, int]:
    """(height, width) from the manifest, else from the file's header."""
    if rec.height and rec.width:
        return int(rec.height), int(rec.width)
    from PIL import Image

    with Image.open(rec.path) as im:
        return im.height, im.width


def _meta(records, versions, cfg) -> dict:
    return {
        "producer": "distortions",
        "inputs": [{"id": r.id, "sha256": r.sha256} for r in records],
        "config": {"codecs": list(cfg.codecs), "targets": list(cfg.targets), "crop": cfg.crop,
                   "x265_preset": cfg.backend.x265_preset,
                   "checkpoint": cfg.backend.checkpoint,
                   **({"learned": dict(cfg.backend.learned)} if cfg.backend.learned else {})},
        "codec_versions": versions,
        "python": platform.python_version(),
    }


def _executor(jobs: int):
    # spawn: forking a parent that has loaded torch's thread pools can deadlock
    return cf.ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn"))


def run(records, cfg: RunConfig) -> RunReport:
    """Distort ``records`` (``plic.datasets.ImageRecord``s) as ``cfg`` says."""
    report = RunReport()
    store = st.Store(cfg.out)
    versions = _versions(cfg, report)
    intact, done, tasks = _plan(records, versions, cfg, store.read_index(),
                                store.read_searches(), store)
    rows, searches = dict(intact), dict(done)
    report.reused_rows = len(intact)
    if versions:
        report.wrote_meta = store.write_meta(_meta(records, versions, cfg))

    def merge(res: RefResult):
        report.errors.extend(res.errors)
        report.encodes += res.encodes
        report.images_done += 1
        for r in res.rows:
            if r["dist_id"] not in rows:  # two targets, one param: the first row stays
                rows[r["dist_id"]] = r
                report.new_rows += 1
        for s in res.searches:
            searches[s["search_id"]] = s
            report.unreachable += s["status"] == st.STATUS_UNREACHABLE
        if res.rows or res.searches:
            report.wrote_index |= store.write_index(list(rows.values()))
            store.write_searches(list(searches.values()))

    # an index whose stale rows were dropped is rewritten even when nothing is new
    if tasks or (store.index_path.is_file() and len(intact) != len(store.read_index())):
        report.wrote_index |= store.write_index(list(rows.values()))
        store.write_searches(list(searches.values()))
    jobs = cfg.jobs or os.cpu_count() or 1
    bar = _progress(len(tasks), cfg.progress)
    if jobs == 1 or len(tasks) <= 1:
        for task in tasks:
            merge(process_ref(task))
            bar.update(1)
    else:
        with _executor(min(jobs, len(tasks))) as ex:
            futures = {ex.submit(process_ref, t): t for t in tasks}
            for fut in cf.as_completed(futures):
                try:
                    merge(fut.result())
                except Exception as e:  # noqa: BLE001 - a dead worker loses only its image
                    t = futures[fut]
                    report.errors.append((t.path, f"worker failed: {e!r}"))
                bar.update(1)
    bar.close()
    return report


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc="distortions", unit="img", disable=not enabled or total == 0,
                file=sys.stderr)


def config_dict(cfg: RunConfig) -> dict:
    return asdict(cfg)
