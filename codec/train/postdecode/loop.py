"""Training the post-decoder: ``train(cfg)``, one flat loop on ``codec.train``'s pieces.

Each step: a batch of crops of (image, its HEVC decode at a QP drawn per crop) from the pairs
cache (``pairs``), the stage's output on the decodes, the stage's loss (``config`` docstring:
MSE, the frozen metric of ``codec.train.losses.perceptual``, the non-saturating GAN of
``codec.train.losses`` with ``codec.train.discriminator``), one Adam step, then (adversarial
stage) one discriminator step on [image; output] conditioned on the decode. Crops, QPs and flips
are a pure function of (seed, sample number) and the RNG is re-seeded every step, so a resumed
run repeats the uninterrupted one. The run directory is ``codec.train.rundir``'s: ``last.pt``
(a ``postdecode`` checkpoint), ``train_state.pt``, ``metrics.jsonl``, ``config.json``.
"""

from __future__ import annotations

import math
import platform
import time
from pathlib import Path

import numpy as np
import torch

from codec.postdecode import api as pd_api
from codec.postdecode.stage import build
from plic.checkpoint import git_commit
from plic.datasets import resolve_data
from plic.image_io import center_crop, read_image, to_tensor
from plic.quality import psnr, psnr_from_mse
from plic.schedule import lr_at

from .. import rundir
from ..config import stage_at
from ..discriminator import Discriminator
from ..loop import TrainingDiverged, _reseed, load_metric
from ..losses import discriminator_loss, generator_loss, mse255, perceptual
from .config import PostDecodeConfig
from .pairs import build_pairs, load_pair
from .ship import portable, rel, ship

RESUMABLE_CHANGES = {"resume", "stop_at", "max_minutes", "ship", "threads", "ship_max_mb"}


class PairBatches:
    """Sample ``k`` -> (original crop, decode crop, QP), a pure function of (seed, k)."""

    def __init__(self, pairs, qps, crop: int, seed: int):
        self.qps, self.crop, self.seed = list(qps), crop, seed
        self.images = []
        for p in pairs:
            x = read_image(p.original)
            ys = {q: read_image(p.decoded[q]) for q in self.qps}
            if any(y.shape != x.shape for y in ys.values()):
                raise ValueError(f"{p.ref_id}: a cached decode does not match the image; "
                                 f"delete {p.decoded[self.qps[0]].parent} and rebuild")
            if min(x.shape[:2]) < crop:
                raise ValueError(f"{p.ref_id}: {x.shape[1]}x{x.shape[0]} is smaller than "
                                 f"the crop {crop}")
            self.images.append((x, ys))

    def sample(self, k: int) -> tuple[np.ndarray, np.ndarray, int]:
        rng = np.random.default_rng([self.seed, k])
        x, ys = self.images[int(rng.integers(len(self.images)))]
        q = self.qps[int(rng.integers(len(self.qps)))]
        h, w = x.shape[:2]
        top = int(rng.integers(0, (h - self.crop) // 2 + 1)) * 2   # even: the decoder's grid
        left = int(rng.integers(0, (w - self.crop) // 2 + 1)) * 2
        sl = (slice(top, top + self.crop), slice(left, left + self.crop))
        a, b = x[sl], ys[q][sl]
        if rng.random() < 0.5:
            a, b = a[:, ::-1], b[:, ::-1]
        return a, b, q

    def batch(self, step: int, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rows = [self.sample(step * size + i) for i in range(size)]

        def t(imgs):
            return to_tensor(np.stack(imgs))

        return (t([r[0] for r in rows]), t([r[1] for r in rows]),
                torch.tensor([float(r[2]) for r in rows]))


def validation_pairs(cfg: PostDecodeConfig, cache) -> list[tuple[str, np.ndarray, dict]]:
    """(id, centre 256 crop of the image, {qp: same crop of its HEVC decode}); the whole image
    is coded, so the crop holds the codec's real artefacts."""
    records = resolve_data(cfg.val_data, cfg.data_root or None, split=cfg.val_split or None)
    pairs = build_pairs(records[:cfg.val_images], cfg.val_qps, cache,
                        preset=cfg.x265_preset, progress=False)
    out = []
    for p in pairs:
        x, _ = load_pair(p, cfg.val_qps[0])
        size = min(256, *x.shape[:2]) // 2 * 2
        out.append((p.ref_id, center_crop(x, size),
                    {q: center_crop(load_pair(p, q)[1], size) for q in cfg.val_qps}))
    return out


@torch.no_grad()
def validate(model, val, metric) -> dict:
    """Per QP: PSNR and the metric of the stage's real output (``codec.postdecode.api.enhance``:
    exact mode, uint8) and of the plain HEVC decode."""
    was = model.training
    model.eval()
    out = {}
    try:
        for q in sorted({q for _, _, ys in val for q in ys}):
            rows = []
            for _id, x, ys in val:
                z = pd_api.enhance(ys[q], q, model)
                row = {"psnr": psnr(x, z), "psnr_hevc": psnr(x, ys[q])}
                if metric is not None:
                    row["perceptual"] = float(metric(to_tensor(z), to_tensor(x)).mean())
                    row["perceptual_hevc"] = float(metric(to_tensor(ys[q]), to_tensor(x)).mean())
                rows.append(row)
            for k in rows[0]:
                out[f"qp{q}_{k}"] = float(np.mean([r[k] for r in rows]))
    finally:
        model.train(was)
    return out


def _load_init(path: str, model, disc) -> dict:
    """Weights of a post-decoder checkpoint (or a run directory's last.pt and discriminator)
    into ``model`` (and ``disc``); what they were, for the provenance."""
    from plic.fsio import sha256_file

    p = Path(path)
    state = None
    if p.is_dir():
        state, p = p / rundir.STATE, p / "last.pt"
    if not p.is_file():
        raise FileNotFoundError(f"--init {path!r}: no such checkpoint or run directory")
    src = pd_api.load(p)
    if src.config != model.config:
        raise ValueError(f"--init {path}: a stage of config {src.config}, this run builds "
                         f"{model.config} (pass the same --channels/--blocks)")
    model.load_state_dict(src.state_dict(), strict=True)
    if state is not None and state.is_file():
        saved = rundir.load_state(state.parent).get("disc")
        if saved:
            disc.load_state_dict(saved, strict=True)
    from plic.checkpoint import load_checkpoint

    prov = load_checkpoint(p)["provenance"]
    return {"path": rel(p), "sha256": sha256_file(p),
            **{k: prov[k] for k in ("step", "steps", "train_seconds", "init_from", "command")
               if k in prov}}


def _check_resume(saved: dict, cfg: PostDecodeConfig) -> None:
    rundir.check_resume(saved, cfg.to_dict(), PostDecodeConfig().to_dict(), RESUMABLE_CHANGES)


def train(cfg: PostDecodeConfig, *, metric=None, progress: bool = True) -> dict:
    from tqdm import tqdm

    t_call = time.perf_counter()
    cfg = cfg.resolved()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if metric is None and cfg.k_perceptual > 0:
        metric = load_metric(cfg.lpips, "cpu")
    out = Path(cfg.out)
    state_path = out / rundir.STATE
    if state_path.exists() and not cfg.resume:
        raise FileExistsError(f"{out} already holds a run ({state_path}); pass --resume to "
                              f"continue it or choose another --out")
    cache = Path(cfg.pairs) if cfg.pairs else None
    records = resolve_data(cfg.data, cfg.data_root or None, split=cfg.data_split or None)
    if cfg.limit:
        records = records[:cfg.limit]
    data = PairBatches(build_pairs(records, cfg.qps, cache, preset=cfg.x265_preset,
                                   progress=progress), cfg.qps, cfg.crop, cfg.seed)
    val = validation_pairs(cfg, cache)
    out.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(cfg.seed)
    model = build({"channels": cfg.channels, "blocks": cfg.blocks}).train()
    disc = Discriminator(cfg.disc_width, 3 if cfg.disc_condition else 0)
    init_from = _load_init(cfg.init, model, disc) if cfg.init else None
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    opt_disc = torch.optim.Adam(disc.parameters(), lr=cfg.lr_disc)
    start, seconds_before = 0, 0.0
    if cfg.resume and state_path.exists():
        st = rundir.load_state(out)
        _check_resume(st["config"], cfg)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt_main"])
        disc.load_state_dict(st["disc"])
        opt_disc.load_state_dict(st["opt_disc"])
        start, seconds_before = st["step"], float(st.get("train_seconds", 0.0))
        rundir.set_rng_state(st["rng"])
        rows = [r for r in rundir.read_metrics(out) if r.get("step", 0) <= start]
        import json

        (out / "metrics.jsonl").write_text("".join(json.dumps(r, sort_keys=True) + "\n"
                                                   for r in rows))
    rundir.write_config(out, cfg.to_dict())
    provenance = {"train_config": portable(cfg.to_dict()), "trained_for": "hevc-bpgcfg",
                  "torch_threads": torch.get_num_threads(),
                  "cpu": platform.processor() or platform.machine(),
                  "git_commit_at_start": git_commit(), "data": rel(cfg.data),
                  "data_split": cfg.data_split, "n_train_images": len(records),
                  "metric": cfg.lpips if not Path(cfg.lpips or "-").is_file() else rel(cfg.lpips)}
    if init_from is not None:
        provenance["init_from"] = init_from
    if Path(cfg.lpips or "-").is_file():
        from plic.fsio import sha256_file

        provenance["metric_sha256"] = sha256_file(cfg.lpips)

    stop = min(cfg.steps, cfg.stop_at) if cfg.stop_at else cfg.steps
    log_every = max(1, min(50, cfg.steps // 100))
    scores: dict = {}
    stopped = stop
    t0 = time.perf_counter()
    bar = tqdm(range(start, stop), initial=start, total=stop, disable=not progress,
               desc="train hevc-bpgcfg-pd", dynamic_ncols=True)
    for step in bar:
        x, y, qp = data.batch(step, cfg.batch_size)
        _reseed(cfg.seed, step, 0)
        stage = stage_at(step, cfg)
        for o, base in ((opt, cfg.lr), (opt_disc, cfg.lr_disc)):
            for g in o.param_groups:
                g["lr"] = lr_at(step, cfg.steps, base, cfg.lr_milestones, cfg.lr_gamma)
        x_hat = model(y, qp)
        mse = mse255(x_hat, x)
        loss = cfg.k_mse * mse
        terms = {"mse": float(mse.detach()), "mse_hevc": float(mse255(y, x))}
        if stage != "mse" and metric is not None and cfg.k_perceptual > 0:
            p = perceptual(metric, x_hat, x)
            loss = loss + cfg.k_perceptual * p
            terms["perceptual"] = float(p.detach())
        cond = y if cfg.disc_condition else None
        if stage == "adversarial":
            disc.requires_grad_(False)
            g_loss = generator_loss(disc(x_hat, cond))
            loss = loss + cfg.k_gan * g_loss
            terms["g_loss"] = float(g_loss.detach())
        terms["loss"] = float(loss.detach())
        opt.zero_grad(set_to_none=True)
        finite = math.isfinite(terms["loss"])
        if finite:
            loss.backward()
            if cfg.grad_clip:
                finite = bool(torch.isfinite(torch.nn.utils.clip_grad_norm_(
                    model.parameters(), cfg.grad_clip)))
        if not finite:
            raise TrainingDiverged(f"non-finite loss or gradient at step {step} (stage {stage}, "
                                   f"terms {terms}); stopped without saving. Lower --lr and "
                                   f"continue with --resume.")
        opt.step()
        if stage == "adversarial":
            disc.requires_grad_(True)
            real, fake = disc(torch.cat([x, x_hat.detach()]), cond).chunk(2)
            d_loss = discriminator_loss(real, fake)
            if not bool(torch.isfinite(d_loss)):
                raise TrainingDiverged(f"non-finite discriminator loss at step {step}")
            opt_disc.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_disc.step()
            terms["d_loss"] = float(d_loss.detach())

        done = step + 1
        if done % log_every == 0 or done == stop:
            row = {"step": done, "stage": stage, "lr": opt.param_groups[0]["lr"],
                   "psnr": psnr_from_mse(max(terms["mse"], 1e-10)),
                   "psnr_hevc": psnr_from_mse(max(terms["mse_hevc"], 1e-10)),
                   "steps_per_s": (done - start) / (time.perf_counter() - t0), **terms}
            rundir.append_metrics(out, row)
            bar.set_postfix(stage=stage, dpsnr=f"{row['psnr'] - row['psnr_hevc']:+.2f}",
                            p=f"{terms.get('perceptual', 0):.3f}")
        time_up = bool(cfg.max_minutes) and done < stop and (
            time.perf_counter() - t_call >= 60.0 * cfg.max_minutes)
        if done % cfg.val_every == 0 or done == stop or time_up:
            wall = seconds_before + time.perf_counter() - t0
            scores = validate(model, val, metric)
            rundir.append_metrics(out, {"step": done, "val": scores})
            prov = {**provenance, "step": done, "stage": stage, "val": scores,
                    "train_seconds": round(wall, 1)}
            pd_api.save(model, out / "last.pt", prov)
            rundir.save_state(out, {"step": done, "config": cfg.to_dict(), "train_seconds": wall,
                                    "model": model.state_dict(), "opt_main": opt.state_dict(),
                                    "disc": disc.state_dict(), "opt_disc": opt_disc.state_dict()})
            if cfg.ship:
                ship(out, Path(cfg.ship), max_mb=cfg.ship_max_mb)
        if time_up:
            stopped = done
            break
    bar.close()
    return {"step": stopped, "out": str(out), "val": scores, "time_up": stopped < stop}
