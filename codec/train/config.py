"""Training configuration: one dataclass, the three rate tracks, presets, and pure schedules.

The dataclass is the single definition of every option: its fields carry their help text and the
command line is generated from it (``codec.train.cli``). A copy (``asdict``) goes into every model
checkpoint's provenance and into the training-state file, so a run directory alone says how it was
trained.

Loss (HiFiC, Mentzer et al. 2020, with the rate summed over all entropy stages)::

    L = lambda_rate * bpp + k_mse * MSE[0,255] + k_perceptual * d(x_hat, x) + k_gan * L_G

Stages: ``mse`` (rate + MSE warm-up) -> ``perceptual`` (+ the frozen metric) -> ``adversarial``
(+ the non-saturating GAN term; the discriminator trains only here). MSE-only baselines stay in
``mse`` throughout (``loss="mse"``).
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import asdict, dataclass, fields

from plic.config_args import option

# One named config per track: target bits per pixel and the rate weight that aims at it.
# lambda_rate_low is HiFiC's lambda^(b): the weight used while the batch is under the target
# when lambda switching is on.
TRACKS: dict[str, dict] = {
    "0.075": {"target_bpp": 0.075, "lambda_rate": 2.0, "lambda_rate_low": 2.0 ** -4},
    "0.15": {"target_bpp": 0.15, "lambda_rate": 1.0, "lambda_rate_low": 2.0 ** -4},
    "0.3": {"target_bpp": 0.3, "lambda_rate": 0.5, "lambda_rate_low": 2.0 ** -4},
}

# Presets scale the step count (the seed: 10 M iterations); everything else keeps its fractions.
PRESET_STEPS = {"paper": 10_000_000, "small": 200_000, "tiny": 60}
PRESET_DEFAULTS = {
    "paper": {"batch_size": 8, "crop": 256, "disc_width": 64},
    "small": {"batch_size": 8, "crop": 256, "disc_width": 32},
    "tiny": {"batch_size": 4, "crop": 64, "disc_width": 8},
}
STAGES = ("mse", "perceptual", "adversarial")


@dataclass
class TrainConfig:
    model: str = option("hific", "registry name (codec.models.names()) or 'module:factory'")
    preset: str = option("small", "model preset: paper, small or tiny (also scales the step count)",
                         choices=tuple(PRESET_STEPS))
    track: str = option("0.15", "rate track (target bpp)", choices=tuple(TRACKS))
    steps: int = option(0, "total training steps (0: the preset's count)")
    batch_size: int = option(0, "global batch size, split over processes (0: preset default)")
    crop: int = option(0, "random square crop size in pixels (0: preset default)")
    data: str = option("samples", "training images: manifest name, manifest .csv or folder")
    data_split: str = option("", "manifest split to train on (empty: all; bsds500 uses 'train')")
    data_root: str = option("", "folder manifest paths resolve against (default: $PLIC_DATA_ROOT "
                                "or ../shared/data)")
    val_data: str = option("samples", "validation images (a few, centre-cropped)")
    val_images: int = option(4, "number of validation images")
    val_crop: int = option(256, "centre crop of validation images (0: full image)")
    val_every: int = option(0, "validate every N steps (0: 10 times per run)")
    val_bin_width: float = option(1.0, "bin width delta used when validating")
    ckpt_every: int = option(0, "write last.pt and the training state every N steps (0: at "
                                "validation)")
    out: str = option("", "run directory (default: runs/train/MODEL-TRACK)")
    loss: str = option("auto", "full (MSE -> +perceptual -> +GAN) or mse (rate + MSE only); auto: "
                               "mse for the baselines, full otherwise",
                       choices=("auto", "full", "mse"))
    lpips: str = option("", "perceptual metric: a metric checkpoint path or an official LPIPS name "
                            "(alex, vgg, squeeze); default runs/metric.pt")
    lr: float = option(1e-4, "Adam learning rate of the autoencoder and hyperpriors")
    lr_prior: float = option(1e-3, "Adam learning rate of the fixed top prior")
    lr_disc: float = option(1e-4, "Adam learning rate of the discriminator")
    lr_milestones: tuple = option((0.2, 0.4, 0.5, 0.6), "fractions of the run where the learning "
                                                        "rate steps down (the seed: 2,4,5,6 M of "
                                                        "10 M)", type=float)
    lr_gamma: float = option(0.5, "factor applied at each milestone")
    perceptual_start: float = option(0.1, "fraction of the run where the perceptual term starts")
    adversarial_start: float = option(0.5, "fraction of the run where the GAN term starts")
    target_bpp: float = option(0.0, "target rate (0: the track's)")
    lambda_rate: float = option(0.0, "rate weight (0: the track's)")
    lambda_rate_low: float = option(0.0, "rate weight under the target with --lambda-switching "
                                         "(0: the track's)")
    lambda_switching: bool = option(False, "HiFiC lambda switching: the low rate weight while the "
                                           "batch is under the target rate")
    k_mse: float = option(0.075 * 2 ** -5, "weight of the MSE on the [0, 255] scale")
    k_perceptual: float = option(1.0, "weight of the perceptual metric")
    k_gan: float = option(0.15, "weight of the non-saturating generator loss")
    quantizer: str = option("", "override the model's training quantiser: noise, ste or universal "
                                "(empty: the model's default)")
    model_config: str = option("", "override fields of the preset's model config, KEY=VALUE[,...] "
                                   "with JSON values, e.g. 'N=64,M=64' (empty: the preset as is)")
    init: str = option("", "start from the weights of this codec checkpoint (same model and "
                           "config; a new schedule: continue or fine-tune a run), or of a run "
                           "directory's last.pt, its discriminator included")
    delta_range: tuple = option((), "range LO HI the training bin width delta is drawn from, "
                                    "log-uniformly, one per batch (empty: the model's delta_range)",
                                    type=float)
    disc_width: int = option(0, "discriminator base width (0: preset default)")
    disc_condition: bool = option(True, "condition the discriminator on the latent y (HiFiC)")
    grad_clip: float = option(1.0, "clip the gradient norm (0: off)")
    amp: bool = option(True, "bfloat16 autocast for the autoencoder (g_a, g_s) on CUDA only")
    workers: int = option(2, "data loader worker processes")
    seed: int = option(0, "seed: crops, quantisation noise and bin widths derive from (seed, step)")
    device: str = option("", "cpu or cuda (default: cuda when available)")
    threads: int = option(0, "torch CPU threads (0: torch default)")
    stop_at: int = option(0, "stop after this step as if interrupted (resume later with --resume)")
    max_minutes: float = option(0.0, "stop after this many minutes of wall time in this "
                                     "invocation, after validating and writing the checkpoint and "
                                     "training state, as if interrupted (resume later with "
                                     "--resume; 0: no limit)")
    ship: str = option("", "also ship the run's last.pt to this file (codec.train.ship: command, "
                           "cumulative steps and wall time in the provenance) at every "
                           "checkpoint, so a session that ends at any time leaves a checkpoint to "
                           "--init from")
    resume: bool = option(False, "continue the run in --out exactly where its training state left "
                                 "it (starts it when --out has none; a finished run does nothing)")

    def resolved(self) -> TrainConfig:
        """Fill every 0/empty default from the preset and track."""
        c = TrainConfig(**asdict(self))
        c.lr_milestones = tuple(c.lr_milestones)
        c.delta_range = tuple(float(v) for v in c.delta_range)
        if c.delta_range and len(c.delta_range) != 2:
            raise ValueError(f"--delta-range takes two numbers LO HI, got {c.delta_range}")
        parse_model_config(c.model_config)  # fail early on a malformed spec
        pre = PRESET_DEFAULTS[c.preset]
        tr = TRACKS[c.track]
        c.steps = c.steps or PRESET_STEPS[c.preset]
        c.batch_size = c.batch_size or pre["batch_size"]
        c.crop = c.crop or pre["crop"]
        c.disc_width = c.disc_width or pre["disc_width"]
        c.target_bpp = c.target_bpp or tr["target_bpp"]
        c.lambda_rate = c.lambda_rate or tr["lambda_rate"]
        c.lambda_rate_low = c.lambda_rate_low or tr["lambda_rate_low"]
        if c.loss == "auto":
            from ..models import baselines

            c.loss = "mse" if c.model in baselines() else "full"
        c.val_every = c.val_every or max(1, c.steps // 10)
        c.ckpt_every = c.ckpt_every or c.val_every
        if not c.out:
            from plic.paths import runs_dir

            c.out = str(runs_dir() / "train" / f"{c.model.replace(':', '-')}-{c.track}")
        return c

    def to_dict(self) -> dict:
        d = asdict(self)
        d["lr_milestones"] = list(d["lr_milestones"])
        d["delta_range"] = list(d["delta_range"])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        c = cls(**{k: v for k, v in d.items() if k in names})
        c.lr_milestones = tuple(c.lr_milestones)
        c.delta_range = tuple(c.delta_range)
        return c


def parse_model_config(spec: str) -> dict:
    """``'N=64,M=64,quantizer="ste"'`` -> ``{"N": 64, "M": 64, "quantizer": "ste"}`` (values are
    JSON; a bare word that is not JSON is taken as a string)."""
    out: dict = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--model-config: {item!r} is not KEY=VALUE")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value.strip()
    return out


def draw_delta(seed: int, step: int, lo: float, hi: float) -> float:
    """The batch's bin width: log-uniform in [lo, hi], a pure function of (seed, step), so every
    process of a global batch and a resumed run draw the same value."""
    if not (0 < lo <= hi):
        raise ValueError(f"bin width range [{lo}, {hi}] must satisfy 0 < lo <= hi")
    u = random.Random(f"{seed}:{step}").random()
    return lo * (hi / lo) ** u


def stage_at(step: int, cfg: TrainConfig) -> str:
    """Which loss stage a step belongs to (pure: depends only on step and config)."""
    if cfg.loss == "mse":
        return "mse"
    if step >= math.ceil(cfg.adversarial_start * cfg.steps):
        return "adversarial"
    if step >= math.ceil(cfg.perceptual_start * cfg.steps):
        return "perceptual"
    return "mse"


def rate_weight(bpp: float, cfg: TrainConfig) -> float:
    """lambda for this batch: HiFiC switching lowers it while the batch is under the target."""
    if cfg.lambda_switching and bpp < cfg.target_bpp:
        return cfg.lambda_rate_low
    return cfg.lambda_rate
