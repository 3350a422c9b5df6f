"""Real files at or under a target: our checkpoints (``codec.api``) and the classic codecs
(the ``distortions`` backends with their rate search and cache). One row per (method, image,
target): where the bitstream and the decoded PNG are, and bpp measured from the file's size.

Our encodes are cached under ``OUT/cache/streams`` keyed by (checkpoint sha256, image sha256,
target); a rerun decodes nothing and encodes nothing it already has.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from plic.fsio import atomic_write_bytes, atomic_write_text, sha256_file
from plic.image_io import read_image, write_png
from plic.quality import bpp as bits_per_pixel
from plic.quality import est_bpp

STATUS_OK, STATUS_UNREACHABLE, STATUS_FAILED = "ok", "unreachable", "failed"


@dataclass
class Track:
    """One of our checkpoints: its label, path, sha256 and the targets to evaluate it at."""

    label: str
    checkpoint: Path
    sha256: str
    targets: tuple[float, ...]
    model: str = ""
    trained_with: str = ""


def track_from_checkpoint(path: str | os.PathLike, label: str | None = None,
                          targets: tuple[float, ...] | None = None) -> Track:
    """A Track; without ``targets`` the one recorded in the checkpoint (config or provenance)."""
    from plic.checkpoint import load_checkpoint

    path = Path(path)
    ck = load_checkpoint(path, kind="codec")
    cfg, prov = ck.get("config", {}) or {}, ck.get("provenance", {}) or {}
    if not targets:
        t = cfg.get("target_bpp") or prov.get("target_bpp")
        if not t:
            raise ValueError(f"{path}: the checkpoint records no track target_bpp (untrained or "
                             f"an older format); pass --target-bpp")
        targets = (float(t),)
    if label is None:
        track = prov.get("track") or cfg.get("target_bpp")
        label = f"ours-{ck['model']}" + (f"-{track}" if track and len(targets) == 1 else "")
    return Track(label, path, sha256_file(path), tuple(targets), ck["model"],
                 trained_with_text(prov))


OFFICIAL_NAMES = {"alex": "LPIPS-Alex", "vgg": "LPIPS-VGG", "squeeze": "LPIPS-Squeeze"}


def trained_with_text(prov: dict) -> str:
    """Which perceptual metric a codec checkpoint was trained with, from its provenance
    (``train_config.loss`` and ``train_config.lpips``): a codec trained with loss ``mse`` has
    none. Read beside the metric columns: a codec graded by its own loss is flattered."""
    if prov.get("init") == "random":
        return "untrained (random init)"
    tc = prov.get("train_config") or {}
    loss = tc.get("loss")
    if not loss:
        return "unknown (no train_config in the provenance)"
    if loss == "mse":
        return "none (MSE)"
    if float(tc.get("k_perceptual", 1.0)) <= 0:
        return f"none ({loss} loss, perceptual weight 0)"
    spec = tc.get("lpips") or "runs/metric.pt"
    name = OFFICIAL_NAMES.get(spec)
    if name is None:
        sha = prov.get("metric_sha256")
        name = f"fitted {Path(spec).name}" + (f" ({sha[:8]})" if sha else "")
    return name + (" + GAN" if loss == "full" and float(tc.get("k_gan", 0)) > 0 else "")


def trained_with(path: str | os.PathLike) -> str:
    """``trained_with_text`` of a codec checkpoint file."""
    from plic.checkpoint import load_checkpoint

    return trained_with_text(load_checkpoint(path, kind="codec").get("provenance") or {})


def file_bpp(path: str | os.PathLike, height: int, width: int) -> float:
    """bpp measured on the coded file itself (``plic.quality.bpp`` of its size)."""
    return bits_per_pixel(os.path.getsize(path), height, width)


def _key(*parts) -> str:
    return hashlib.sha256(json.dumps([str(p) for p in parts]).encode()).hexdigest()[:24]


_MODELS: dict = {}  # (checkpoint, sha256) -> loaded model, one per process (a worker's too)


def _model(track: Track):
    from codec import api

    key = (str(track.checkpoint), track.sha256)
    if key not in _MODELS:
        _MODELS.clear()  # one checkpoint at a time: a worker's memory holds one model
        _MODELS[key] = api.load(track.checkpoint)
    return _MODELS[key]


def encode_track(track: Track, records, cache: Path, progress=None) -> list[dict]:
    """Rows for every (image, target) of ``track``; encodes only what the cache lacks."""
    rows = []
    for rec in records:
        rows += encode_track_image(track, rec, cache)
        if progress is not None:
            progress.update(len(track.targets))
    return rows


def encode_track_image(track: Track, rec, cache: Path) -> list[dict]:
    """Rows for every target of ``track`` on one image (``rec``): one item of a run, here or
    on a cluster worker; encodes only what the cache lacks."""
    from codec import api

    rows = []
    ref = None
    for target in track.targets:
        key = _key("ours", track.sha256, rec.sha256, f"{target:.6g}")
        d = Path(cache) / "streams" / key[:2]
        stream, png, meta_p = d / f"{key}.plic", d / f"{key}.png", d / f"{key}.json"
        row = {"method": track.label, "kind": "ours", "codec": track.model,
               "checkpoint": str(track.checkpoint), "trained_with": track.trained_with,
               "target_bpp": target,
               "image_id": rec.id, "ref_path": str(rec.path), "ref_sha256": rec.sha256}
        meta = json.loads(meta_p.read_text()) if meta_p.is_file() else None
        if meta and meta["status"] != STATUS_OK:
            rows.append({**row, **meta})
            continue
        if not (meta and stream.is_file() and png.is_file()
                and sha256_file(png) == meta["sha256"]):
            model = _model(track)
            if ref is None:
                ref = read_image(rec.path)
            try:
                res = api.encode(ref, model, target_bpp=target)
            except api.RateControlError as e:
                meta = {"status": STATUS_UNREACHABLE, "error": str(e)}
                atomic_write_text(meta_p, json.dumps(meta))
                rows.append({**row, **meta})
                continue
            atomic_write_bytes(stream, res.data)
            t0 = time.perf_counter()
            dec = api.decompress(stream.read_bytes(), model)  # from the file, as a user would
            dec_s = time.perf_counter() - t0
            write_png(png, dec)
            h, w = ref.shape[:2]
            meta = {"status": STATUS_OK, "est_bpp": est_bpp(res.est_bits, h, w),
                    "param": res.bin_width, "encode_s": res.seconds, "decode_s": dec_s,
                    "sha256": sha256_file(png), "height": h, "width": w}
            atomic_write_text(meta_p, json.dumps(meta))
        rows.append({**row, **meta, "bitstream_path": str(stream), "decoded_path": str(png),
                     "bpp": file_bpp(stream, meta["height"], meta["width"])})
    return rows


def encode_classic(codecs, records, targets, dist_out: Path, jobs: int = 0,
                   progress: bool = True, backend=None, cluster=None) -> tuple[list[dict], list]:
    """Rows of the classic codecs (and the learned baselines, ``learned-NAME``, whose
    checkpoints ``backend.learned`` names) through ``distortions.run``, its cache in
    ``dist_out``; ``backend`` is a ``distortions.backends.BackendOptions`` (default: defaults);
    on ``cluster`` (a ``plic.cluster.Cluster``) the distortions run there."""
    from distortions import store as st
    from distortions.backends import BackendOptions
    from distortions.run import DistortionsConfig, run

    cfg = DistortionsConfig(out=str(dist_out), codecs=tuple(codecs), targets=tuple(targets),
                            jobs=jobs, backend=backend or BackendOptions(), progress=progress)
    report = run(records, cfg, cluster=cluster)
    store = st.Store(dist_out)
    index = {r["dist_id"]: r for r in store.read_index()}
    learned = dict(cfg.backend.learned)
    if cfg.backend.checkpoint:
        learned.setdefault("learned", cfg.backend.checkpoint)
    trained = {c: trained_with(learned[c]) for c in codecs if c in learned}
    by_search = {}
    for s in store.read_searches():
        if s["crop"] == "":
            by_search[(s["ref_sha256"], s["codec"], float(s["target_bpp"]))] = s
    rows = []
    for codec in codecs:
        for rec in records:
            for target in targets:
                kind = "learned" if codec.startswith("learned") else "classic"
                row = {"method": codec, "kind": kind, "codec": codec,
                       "checkpoint": str(learned.get(codec, "")),
                       "trained_with": trained.get(codec, ""), "target_bpp": target,
                       "image_id": rec.id, "ref_path": str(rec.path), "ref_sha256": rec.sha256}
                s = by_search.get((rec.sha256, codec, float(target)))
                if s is None:
                    rows.append({**row, "status": STATUS_FAILED, "error": "not coded (see "
                                 "the errors above)"})
                    continue
                if s["status"] != st.STATUS_OK:
                    rows.append({**row, "status": STATUS_UNREACHABLE,
                                 "error": f"{codec} cannot go down to {target} bpp"})
                    continue
                ix = index[s["dist_id"]]
                stream, png = store.resolve(ix["bitstream_path"]), store.resolve(ix["path"])
                h, w = int(ix["height"]), int(ix["width"])
                rows.append({**row, "status": STATUS_OK, "param": ix["param"],
                             "bitstream_path": str(stream), "decoded_path": str(png),
                             "sha256": ix["sha256"], "height": h, "width": w,
                             "bpp": file_bpp(stream, h, w), "codec_version": ix["codec_version"]})
    return rows, report.errors
