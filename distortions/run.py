"""The driver: references x codecs x targets -> files and index rows.

One item is one (reference image, codec) with its pending targets: the targets share one rate
curve (``ratesearch.RateCurve``), so they share most of their encodes, and a target's answer is
the same whichever other targets were searched beside it. Items run here (in-process or in a
pool of ``--jobs`` processes) or on a Dask cluster (``--cluster``, ``plic.cluster``): the same
function on the same items, so the files and tables are the same. Each item reads its
reference, crops it, runs the rate search for each target, writes the decoded PNG and the
bitstream (content-addressed: two workers writing one file write the same bytes) and returns
rows. The parent merges them in any order to the same tables (rows are kept by id; of two
targets landing on one parameter the lower one names the row, as a serial run does) and
rewrites ``index.csv``/``searches.csv`` (atomically) every few seconds and at the end, also on
an interrupt, so a crash loses at most the items in flight. A codec that is missing on this
machine, a codec that fails on one image, or an unreadable image is reported with the file and
the fix; everything else is kept.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from plic.cluster import run_items
from plic.fsio import sha256_file
from plic.image_io import ImageReadError, image_size, png_bytes, read_image
from plic.quality import ms_ssim, ms_ssim_scales, psnr

from . import store as st
from .backends import BackendError, BackendOptions, BackendUnavailable, make_backend
from .ratesearch import RateCurve, search

DEFAULT_TARGETS = (0.075, 0.15, 0.3, 0.6)
FLUSH_S = 2.0  # rewrite the tables at most this often while items arrive (and at the end)


@dataclass
class DistortionsConfig:
    """What to distort and how (the CLI's options, one field each)."""

    out: str
    codecs: tuple[str, ...]
    targets: tuple[float, ...] = DEFAULT_TARGETS
    crop: int | None = None
    jobs: int = 0  # 0: all cores
    backend: BackendOptions = field(default_factory=BackendOptions)
    progress: bool = True


@dataclass
class ItemTask:
    """One item: a reference image, one codec and the targets still to do for them."""

    ref_id: str
    path: str
    sha256: str
    codec: str
    targets: list  # target bpps
    version: str  # the codec's version string (computed once in the parent)
    crop: int | None
    out: str
    backend: BackendOptions

    @property
    def name(self) -> str:
        return f"{self.path} [{self.codec}]"


@dataclass
class ItemResult:
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
    items_done: int = 0
    items: int = 0
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


def process_item(task: ItemTask) -> ItemResult:
    """Worker: the pending targets of one (reference image, codec)."""
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    res = ItemResult(task.ref_id)
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
    codec, version = task.codec, task.version
    try:
        backend = make_backend(codec, task.backend)
        curve = RateCurve(backend, image)
        made: dict[str, str] = {}  # param -> dist_id, within this image and codec
        for target in sorted(task.targets):
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
        res.rows, res.searches = [], []
        msg = str(e) if isinstance(e, BackendError) else f"{type(e).__name__}: {e}"
        res.errors.append((task.name, msg))
    return res


def _versions(cfg: DistortionsConfig, report: RunReport) -> dict[str, str]:
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
    """Split the work into items, keeping every intact earlier result."""
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
        for codec, version in versions.items():
            pending = [t for t in cfg.targets
                       if ck is None or st.make_search_id(sha, ck, codec, version, t) not in done]
            if pending:
                tasks.append(ItemTask(rec.id, str(rec.path), sha, codec, pending, version,
                                      cfg.crop, str(store.out), cfg.backend))
    return intact, done, tasks


def _size(rec) -> tuple[int, int]:
    """(height, width) from the manifest, else from the file's header."""
    if rec.height and rec.width:
        return int(rec.height), int(rec.width)
    w, h = image_size(rec.path)
    return h, w


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


def available_versions(codecs: tuple[str, ...], backend: BackendOptions) -> dict[str, str]:
    """{codec: version} of the codecs that run on this machine (a cluster's workers must give
    the same: another ffmpeg or checkpoint would write other files under the same ids)."""
    return _versions(DistortionsConfig(out="", codecs=tuple(codecs), backend=backend), RunReport())


def check_cluster(cluster, records, cfg: DistortionsConfig) -> None:
    """Refuse (``plic.cluster.ClusterError``) unless every worker sees the inputs (images,
    checkpoints), writes where this process reads (the output folder, an HEVC cache), and has
    the same codec versions."""
    b = cfg.backend
    checkpoints = [p for _, p in b.learned] + [p for p in (b.checkpoint, b.postdecode) if p]
    cluster.check_paths(inputs=[r.path for r in records] + checkpoints,
                        outputs=[cfg.out] + ([b.hevc_cache] if b.hevc_cache else []))
    cluster.same_on_workers(available_versions, "codec versions", tuple(cfg.codecs),
                            cfg.backend)


def run(records, cfg: DistortionsConfig, cluster=None) -> RunReport:
    """Distort ``records`` (``plic.datasets.ImageRecord``s) as ``cfg`` says, here or on
    ``cluster`` (a connected ``plic.cluster.Cluster``: same files and tables)."""
    report = RunReport()
    store = st.Store(cfg.out)
    if cluster is not None:
        Path(cfg.out).mkdir(parents=True, exist_ok=True)
        check_cluster(cluster, records, cfg)
    versions = _versions(cfg, report)
    intact, done, tasks = _plan(records, versions, cfg, store.read_index(),
                                store.read_searches(), store)
    rows, searches = dict(intact), dict(done)
    # merge rules that do not depend on the order items arrive in, equal to a serial run's:
    # a row id keeps its earliest (item, target); a search id its latest item
    row_rank = {k: (-1, 0.0) for k in rows}
    search_rank = {k: -1 for k in searches}
    report.reused_rows, report.items = len(intact), len(tasks)
    if versions:
        report.wrote_meta = store.write_meta(_meta(records, versions, cfg))
    pending = {"dirty": False, "at": time.monotonic()}

    def flush(force: bool = False):
        if pending["dirty"] and (force or time.monotonic() - pending["at"] >= FLUSH_S):
            report.wrote_index |= store.write_index(list(rows.values()))
            store.write_searches(list(searches.values()))
            pending.update(dirty=False, at=time.monotonic())

    def merge(i: int, res: ItemResult):
        report.errors.extend(res.errors)
        report.encodes += res.encodes
        report.items_done += 1
        for r in res.rows:
            rank = (i, float(r["target_bpp"]))
            if r["dist_id"] not in rows:
                report.new_rows += 1
            elif row_rank[r["dist_id"]] <= rank:
                continue  # two targets, one param: the first row stays
            rows[r["dist_id"]], row_rank[r["dist_id"]] = r, rank
        for s in res.searches:
            report.unreachable += s["status"] == st.STATUS_UNREACHABLE
            if search_rank.get(s["search_id"], -1) <= i:
                searches[s["search_id"]], search_rank[s["search_id"]] = s, i
        pending["dirty"] |= bool(res.rows or res.searches)
        flush()

    # an index whose stale rows were dropped is rewritten even when nothing is new
    if tasks or (store.index_path.is_file() and len(intact) != len(store.read_index())):
        report.wrote_index |= store.write_index(list(rows.values()))
        store.write_searches(list(searches.values()))
    jobs = cfg.jobs or os.cpu_count() or 1
    try:
        failed = run_items(process_item, tasks, merge, names=[t.name for t in tasks],
                           cluster=cluster, jobs=jobs, desc="distortions", unit="item",
                           progress=cfg.progress)
    finally:
        flush(force=True)
    report.errors += [(e.name, f"worker failed: {e.message}") for e in failed]
    report.errors = list(dict.fromkeys(report.errors))  # an unreadable image: once, not per codec
    return report


def config_dict(cfg: DistortionsConfig) -> dict:
    return asdict(cfg)
