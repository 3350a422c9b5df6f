"""The training loop: one flat function, ``train(cfg)``.

Each step: a global batch of crops (``data``), one bin width drawn for the batch from the model's
``delta_range``, the forward pass, the stage's loss (``config.stage_at``), one step of the main
optimiser and of the top prior's optimiser, then (adversarial stage only) one discriminator step
on the same batch. Randomness is re-seeded from ``(seed, step, rank)`` at every step, so a resumed
run repeats the uninterrupted one exactly.
"""

from __future__ import annotations

import importlib
import json
import math
import platform
import random
import time
from pathlib import Path

import numpy as np
import torch

from plic.checkpoint import git_commit
from plic.fsio import sha256_file
from plic.paths import runs_dir
from plic.quality import psnr_from_mse
from plic.schedule import lr_at

from . import distributed, rundir
from .amp import autocast_autoencoder
from .config import TrainConfig, draw_delta, parse_model_config, rate_weight, stage_at
from .data import train_loader, training_records, validation_images
from .discriminator import Discriminator
from .losses import bpp_per_image, discriminator_loss, generator_loss, mse255, perceptual
from .ship import ship
from .validate import validate

OFFICIAL_LPIPS = ("alex", "vgg", "squeeze")
# Options that may differ between a run and its resumption.
RESUMABLE_CHANGES = {"resume", "stop_at", "max_minutes", "ship", "workers", "threads", "device"}


class TrainingDiverged(RuntimeError):
    """A non-finite loss or gradient: training stopped, the last good checkpoint is kept."""


def build_model(cfg: TrainConfig) -> torch.nn.Module:
    overrides = {**parse_model_config(cfg.model_config), "target_bpp": cfg.target_bpp}
    if cfg.delta_range:
        overrides["delta_range"] = list(cfg.delta_range)
    if cfg.quantizer:
        overrides["quantizer"] = cfg.quantizer
    if ":" in cfg.model:  # a user's factory, "package.module:function"
        mod, fn = cfg.model.split(":", 1)
        return getattr(importlib.import_module(mod), fn)(preset=cfg.preset, **overrides)
    from ..models import build

    return build(cfg.model, cfg.preset, **overrides)


def load_metric(spec: str, device: str):
    """A frozen differentiable ``d(x, y)``: a fitted metric checkpoint or an official LPIPS."""
    import perceptual_metric

    spec = spec or str(runs_dir() / "metric.pt")
    if spec in OFFICIAL_LPIPS:
        metric = perceptual_metric.official(spec)
    elif Path(spec).is_file():
        metric = perceptual_metric.load(spec)
    else:
        raise FileNotFoundError(
            f"--lpips {spec!r}: no such metric checkpoint. Fit one (python -m perceptual_metric), "
            f"pass an official name ({', '.join(OFFICIAL_LPIPS)}), or train MSE-only with "
            f"--loss mse")
    return metric.to(device).eval().requires_grad_(False)


def _init_paths(path: str) -> tuple[Path, Path | None]:
    """``--init`` names a codec checkpoint, or a run directory: its ``last.pt`` and, for the
    discriminator, its training state."""
    p = Path(path)
    if p.is_dir():
        if not (p / "last.pt").is_file():
            raise FileNotFoundError(f"--init {path!r}: a directory without last.pt (not a run "
                                    "directory of python -m codec.train)")
        state = p / rundir.STATE
        return p / "last.pt", state if state.is_file() else None
    if not p.is_file():
        raise FileNotFoundError(f"--init {path!r}: no such checkpoint or run directory")
    return p, None


def _load_init_disc(disc: torch.nn.Module, state_path: Path) -> bool:
    """The discriminator of the run ``--init`` names, when it has one of the same shape."""
    saved = rundir.load_state(state_path.parent).get("disc")
    if not saved:
        return False
    try:
        disc.load_state_dict(saved, strict=True)
    except RuntimeError as e:
        raise ValueError(f"--init {state_path.parent}: its discriminator does not fit this run's "
                         f"(--disc-width, --disc-condition): {str(e).splitlines()[0]}") from e
    return True


def _load_init(model: torch.nn.Module, path: str) -> dict:
    """Load ``path``'s weights into ``model`` (strict); what it was, for the provenance."""
    from plic.checkpoint import load_checkpoint

    path = str(_init_paths(path)[0])
    ck = load_checkpoint(path, kind="codec")
    if ck["model"] != model.name:
        raise ValueError(f"--init {path}: a {ck['model']!r} checkpoint, the run trains "
                         f"{model.name!r}")
    try:
        model.load_state_dict(ck["state_dict"], strict=True)
    except RuntimeError as e:
        raise ValueError(f"--init {path}: weights do not fit the model (pass the same --preset "
                         f"and --model-config): {str(e).splitlines()[0]}") from e
    prov = ck["provenance"]
    keep = ("git_commit", "steps", "step", "train_seconds", "command", "data", "track",
            "init_from")
    return {"path": str(path), "sha256": sha256_file(path),
            **{k: prov[k] for k in keep if k in prov}}


def _step_seed(seed: int, step: int, rank: int) -> int:
    return ((seed * 1_000_003 + step) * 64 + rank) % (2 ** 63)


def _reseed(seed: int, step: int, rank: int) -> None:
    s = _step_seed(seed, step, rank)
    torch.manual_seed(s)
    random.seed(s)
    np.random.seed(s % 2 ** 32)


def _check_resume(saved: dict, cfg: TrainConfig) -> None:
    rundir.check_resume(saved, cfg.to_dict(), TrainConfig().to_dict(), RESUMABLE_CHANGES)


def train(cfg: TrainConfig, *, model: torch.nn.Module | None = None, metric=None,
          progress: bool = True) -> dict:
    """Train per ``cfg``; returns ``{"step", "out", "best", "val"}``. ``model``/``metric`` may be
    passed in (tests, notebooks); otherwise they come from ``cfg.model`` and ``cfg.lpips``."""
    from torch.utils.tensorboard import SummaryWriter
    from tqdm import tqdm

    t_call = time.perf_counter()
    cfg = cfg.resolved()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    dist = distributed.setup(cfg.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    device = distributed.device_for(dist, cfg.device)
    if cfg.loss == "full" and metric is None and cfg.k_perceptual > 0:
        metric = load_metric(cfg.lpips, device)  # before anything is written: a bad path fails
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(cfg.seed)  # same initial weights on every process
    model = build_model(cfg) if model is None else model
    init_from = _load_init(model, cfg.init) if cfg.init else None
    model.to(device).train()
    stride = int(getattr(model, "stride", 1))
    if cfg.crop % stride:
        raise ValueError(f"--crop {cfg.crop} is not a multiple of the model's stride {stride}")
    full = cfg.loss == "full"
    disc = None
    if full:
        with torch.no_grad():  # the latent's channel count, for the conditioned discriminator
            y_ch = model(torch.rand(1, 3, stride, stride, device=device))["y"].shape[1]
        disc = Discriminator(cfg.disc_width, y_ch if cfg.disc_condition else 0).to(device)
        init_state = _init_paths(cfg.init)[1] if cfg.init else None
        if init_state is not None and _load_init_disc(disc, init_state):
            init_from["discriminator_from"] = str(init_state)

    opt_main = torch.optim.Adam(model.main_parameters(), lr=cfg.lr)
    prior_params = list(model.top_prior_parameters())
    opt_prior = torch.optim.Adam(prior_params, lr=cfg.lr_prior) if prior_params else None
    opt_disc = torch.optim.Adam(disc.parameters(), lr=cfg.lr_disc) if disc is not None else None

    start, best, last_good, seconds_before = 0, math.inf, None, 0.0
    state_path = out / rundir.STATE
    if cfg.resume and state_path.exists():
        st = rundir.load_state(out)
        _check_resume(st["config"], cfg)
        model.load_state_dict(st["model"])
        opt_main.load_state_dict(st["opt_main"])
        if opt_prior is not None:
            opt_prior.load_state_dict(st["opt_prior"])
        if disc is not None:
            disc.load_state_dict(st["disc"])
            opt_disc.load_state_dict(st["opt_disc"])
        start, best, last_good = st["step"], st["best"], st["step"]
        seconds_before = float(st.get("train_seconds", 0.0))
        rundir.set_rng_state(st["rng"])
        if dist.main:  # drop log lines of steps that will be replayed
            rows = [r for r in rundir.read_metrics(out) if r.get("step", 0) <= start]
            (out / "metrics.jsonl").write_text("".join(json.dumps(r, sort_keys=True) + "\n"
                                                       for r in rows))
    elif state_path.exists():
        raise FileExistsError(f"{out} already holds a run ({state_path}); pass --resume to "
                              f"continue it or choose another --out")
    if dist.main:
        rundir.write_config(out, cfg.to_dict())

    if device.startswith("cuda") and cfg.amp:
        autocast_autoencoder(model, "cuda", torch.bfloat16)
    net = distributed.wrap(model, dist, device)
    net_disc = distributed.wrap(disc, dist, device) if disc is not None else None

    records = training_records(cfg.data, cfg.data_root, cfg.data_split)
    loader = train_loader(records, cfg.crop, cfg.batch_size, seed=cfg.seed, start_step=start,
                          rank=dist.rank, world=dist.world, workers=cfg.workers,
                          pin_memory=device.startswith("cuda"))
    val_images = validation_images(cfg.val_data, cfg.data_root, cfg.val_images, cfg.val_crop,
                                   multiple=max(64, stride)) if dist.main else []
    writer = SummaryWriter(str(out / "tb")) if dist.main else None
    lo, hi = (model.config.get("delta_range") or [1.0, 1.0])
    stop = min(cfg.steps, cfg.stop_at) if cfg.stop_at else cfg.steps
    log_every = max(1, min(100, cfg.steps // 100))
    provenance = {"train_config": cfg.to_dict(), "track": cfg.track, "target_bpp": cfg.target_bpp,
                  "processes": dist.world, "device": device,
                  "torch_threads": torch.get_num_threads(),
                  "cpu": platform.processor() or platform.machine(),
                  "git_commit_at_start": git_commit(),
                  "data": cfg.data, "data_split": cfg.data_split, "n_train_images": len(records)}
    if init_from is not None:
        provenance["init_from"] = init_from
    if full and cfg.k_perceptual > 0 and Path(cfg.lpips or "-").is_file():
        provenance["metric_sha256"] = sha256_file(cfg.lpips)
    val = {}

    stopped = stop
    batches = iter(loader)
    bar = tqdm(range(start, stop), initial=start, total=stop, disable=not (progress and dist.main),
               desc=f"train {model.name} {cfg.track}", dynamic_ncols=True)
    t0 = time.perf_counter()
    for step in bar:
        x = next(batches).to(device, non_blocking=True)
        _reseed(cfg.seed, step, dist.rank)
        delta = draw_delta(cfg.seed, step, lo, hi)  # one per global batch, log-uniform
        stage = stage_at(step, cfg)
        for opt, base in ((opt_main, cfg.lr), (opt_prior, cfg.lr_prior), (opt_disc, cfg.lr_disc)):
            if opt is not None:
                for g in opt.param_groups:
                    g["lr"] = lr_at(step, cfg.steps, base, cfg.lr_milestones, cfg.lr_gamma)

        # -- autoencoder, hyperpriors and top prior ----------------------------------------
        res = net(x, delta=delta)
        x_hat = res["x_hat"]
        bpp = bpp_per_image(res["bits"], x.shape[-2], x.shape[-1]).mean()
        lam = rate_weight(float(bpp.detach()), cfg)
        mse = mse255(x_hat, x)
        loss = lam * bpp + cfg.k_mse * mse
        terms = {"bpp": float(bpp.detach()), "mse": float(mse.detach()), "lambda": lam}
        if stage != "mse" and metric is not None and cfg.k_perceptual > 0:
            p = perceptual(metric, x_hat, x)
            loss = loss + cfg.k_perceptual * p
            terms["perceptual"] = float(p.detach())
        if stage == "adversarial":
            disc.requires_grad_(False)  # L_G reaches the decoder, not D
            g_loss = generator_loss(disc(x_hat, res["y"].detach()))
            loss = loss + cfg.k_gan * g_loss
            terms["g_loss"] = float(g_loss.detach())
        terms["loss"] = float(loss.detach())

        opt_main.zero_grad(set_to_none=True)
        if opt_prior is not None:
            opt_prior.zero_grad(set_to_none=True)
        finite = math.isfinite(terms["loss"])
        if finite:
            loss.backward()
            if cfg.grad_clip:
                norm = torch.nn.utils.clip_grad_norm_(model.main_parameters(), cfg.grad_clip)
                finite = bool(torch.isfinite(norm))
        if not distributed.all_true(finite, dist, device):
            where = (f"{out / 'last.pt'} (step {last_good})" if last_good
                     else "none yet (no checkpoint was written before this step)")
            msg = (f"non-finite loss or gradient at step {step} (stage {stage}, delta {delta:.3f},"
                   f" terms {terms}); training stopped without saving. Last good checkpoint: "
                   f"{where}. Lower --lr or --grad-clip and continue with --resume.")
            if writer is not None:
                writer.close()
            raise TrainingDiverged(msg)
        opt_main.step()
        if opt_prior is not None:
            opt_prior.step()

        # -- discriminator: only in its stage ----------------------------------------------
        if stage == "adversarial":
            disc.requires_grad_(True)
            # one latent conditions both halves (the discriminator shares its part of the work)
            logits = net_disc(torch.cat([x, x_hat.detach()]), res["y"].detach())
            real, fake = logits.chunk(2)
            d_loss = discriminator_loss(real, fake)
            if not distributed.all_true(bool(torch.isfinite(d_loss)), dist, device):
                raise TrainingDiverged(f"non-finite discriminator loss at step {step}; stopped "
                                       f"without saving (last good checkpoint: step {last_good})")
            opt_disc.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_disc.step()
            terms["d_loss"] = float(d_loss.detach())

        done = step + 1
        if dist.main and (done % log_every == 0 or done == stop):
            row = {"step": done, "stage": stage, "delta": delta,
                   "lr": opt_main.param_groups[0]["lr"],
                   "psnr": psnr_from_mse(max(terms["mse"], 1e-10)),
                   "steps_per_s": (done - start) / (time.perf_counter() - t0), **terms}
            rundir.append_metrics(out, row)
            for k, v in row.items():
                if isinstance(v, float):
                    writer.add_scalar(f"train/{k}", v, done)
            bar.set_postfix(stage=stage, bpp=f"{terms['bpp']:.3f}", psnr=f"{row['psnr']:.2f}")

        # -- validation and checkpoints ----------------------------------------------------
        # --max-minutes: every process stops at the same step once any one is over its time
        time_up = bool(cfg.max_minutes) and done < stop and not distributed.all_true(
            time.perf_counter() - t_call < 60.0 * cfg.max_minutes, dist, device)
        validate_now = done % cfg.val_every == 0 or done == stop or time_up
        if done % cfg.ckpt_every == 0 or validate_now:
            if dist.main:
                wall = seconds_before + time.perf_counter() - t0  # training + validation so far
                provenance["train_seconds"] = round(wall, 1)
                if validate_now:
                    val, recons = validate(model, val_images, bin_width=cfg.val_bin_width,
                                           metric=metric, device=device)
                    objective = (cfg.lambda_rate * val["bpp"] + cfg.k_mse * val["mse"]
                                 + cfg.k_perceptual * val.get("perceptual", 0.0))
                    val["objective"] = objective
                    rundir.append_metrics(out, {"step": done, "val": val})
                    for k, v in val.items():
                        writer.add_scalar(f"val/{k}", float(v), done)
                    if recons:
                        writer.add_image("val/reconstruction", recons[0], done, dataformats="HWC")
                    prov = {**provenance, "step": done, "stage": stage, "val": val}
                    if objective < best:
                        best = objective
                        rundir.save_model(out / "best.pt", model, prov)
                rundir.save_model(out / "last.pt", model,
                                  {**provenance, "step": done, "stage": stage, "val": val})
                rundir.save_state(out, {
                    "step": done, "best": best, "config": cfg.to_dict(), "train_seconds": wall,
                    "model": model.state_dict(), "opt_main": opt_main.state_dict(),
                    "opt_prior": opt_prior.state_dict() if opt_prior else None,
                    "disc": disc.state_dict() if disc is not None else None,
                    "opt_disc": opt_disc.state_dict() if opt_disc else None})
                last_good = done
                if cfg.ship:
                    ship(out, Path(cfg.ship))
            distributed.barrier(dist)
        if time_up:
            stopped = done
            break
    bar.close()
    if writer is not None:
        writer.close()
    distributed.teardown(dist)
    return {"step": stopped, "out": str(out), "best": best, "val": val,
            "time_up": stopped < stop}
