"""The post-decoder's training options: one dataclass (command line, checkpoint provenance).

Loss (no rate term: the HEVC bits are fixed)::

    L = k_mse * MSE[0,255] + k_perceptual * d(x_hat, x) + k_gan * L_G(D(x_hat | x_hevc))

Stages as ``codec.train`` (``codec.train.config.stage_at``): ``mse`` -> ``perceptual`` (+ the
frozen metric) -> ``adversarial`` (+ the non-saturating GAN; the discriminator trains only
there). The discriminator is ``codec.train.discriminator.Discriminator`` conditioned on the HEVC
decode instead of a latent.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from plic.config_args import option

from .pairs import DEFAULT_QPS

# channels, blocks, crop, batch, discriminator width, steps
PRESETS = {
    "small": {"channels": 64, "blocks": 3, "crop": 128, "batch_size": 8, "disc_width": 32,
              "steps": 6000},
    "tiny": {"channels": 8, "blocks": 1, "crop": 32, "batch_size": 2, "disc_width": 8,
             "steps": 12},
}


@dataclass
class PostDecodeConfig:
    preset: str = option("small", "size of the stage, crops and run", choices=tuple(PRESETS))
    steps: int = option(0, "total training steps (0: the preset's)")
    batch_size: int = option(0, "crops per step (0: the preset's)")
    crop: int = option(0, "square crop side in pixels, even (0: the preset's)")
    channels: int = option(0, "stage width (0: the preset's)")
    blocks: int = option(0, "residual blocks of the stage (0: the preset's)")
    data: str = option("bsds500", "training images: manifest name, .csv or folder")
    data_split: str = option("train", "manifest split to train on ('' for all)")
    data_root: str = option("", "folder manifest paths resolve against")
    limit: int = option(0, "first N training images only (0: all)")
    qps: list = option(list(DEFAULT_QPS), "QPs the pairs are coded at (one drawn per crop)",
                       type=int)
    pairs: str = option("", "pairs cache folder (default runs/postdecode/pairs)")
    x265_preset: str = option("slow", "x265 preset of the pairs (the codec's: slow)")
    val_data: str = option("bsds500", "validation images (held out)")
    val_split: str = option("val", "their split")
    val_images: int = option(6, "number of validation images")
    val_qps: list = option([38, 43, 47], "QPs validated at", type=int)
    val_every: int = option(0, "validate and checkpoint every N steps (0: 10 times per run)")
    lpips: str = option("", "perceptual metric: a metric checkpoint or an official LPIPS name "
                            "(alex, vgg, squeeze); default runs/metric.pt")
    lr: float = option(2e-4, "Adam learning rate of the stage")
    lr_disc: float = option(1e-4, "Adam learning rate of the discriminator")
    lr_milestones: list = option([0.6, 0.85], "fractions of the run where the rates halve",
                                 type=float)
    lr_gamma: float = option(0.5, "factor applied at each milestone")
    perceptual_start: float = option(0.02, "fraction of the run where the perceptual term starts")
    adversarial_start: float = option(0.3, "fraction of the run where the GAN term starts")
    k_mse: float = option(0.005, "weight of the MSE on the [0, 255] scale")
    k_perceptual: float = option(1.0, "weight of the perceptual metric")
    k_gan: float = option(0.1, "weight of the non-saturating generator loss")
    disc_width: int = option(0, "discriminator base width (0: the preset's)")
    disc_condition: bool = option(True, "condition the discriminator on the HEVC decode")
    grad_clip: float = option(1.0, "clip the stage's gradient norm (0: off)")
    init: str = option("", "start from this post-decoder checkpoint's weights, or a run "
                           "directory's last.pt and discriminator (a new schedule: fine-tune)")
    seed: int = option(0, "seed: crops, QPs and flips derive from (seed, step)")
    threads: int = option(0, "torch CPU threads (0: torch default)")
    out: str = option("", "run directory (default runs/train/hevc-bpgcfg-pd)")
    stop_at: int = option(0, "stop after this step as if interrupted")
    max_minutes: float = option(0.0, "stop after this many minutes, checkpointed (0: no limit)")
    ship: str = option("", "also ship last.pt to this file at every checkpoint")
    ship_max_mb: float = option(20.0, "refuse to ship a larger file")
    resume: bool = option(False, "continue the run in --out where its training state left it")

    loss = "full"  # codec.train.config.stage_at reads it

    def resolved(self) -> PostDecodeConfig:
        c = PostDecodeConfig(**asdict(self))
        pre = PRESETS[c.preset]
        for k in ("steps", "batch_size", "crop", "channels", "blocks", "disc_width"):
            setattr(c, k, getattr(c, k) or pre[k])
        if c.crop % 2:
            raise ValueError(f"--crop {c.crop} must be even (the stage works at half size)")
        c.qps = sorted({int(q) for q in c.qps})
        c.val_qps = [int(q) for q in c.val_qps]
        if not c.qps or not all(0 <= q <= 51 for q in c.qps + c.val_qps):
            raise ValueError("QPs must be in 0..51")
        c.val_every = c.val_every or max(1, c.steps // 10)
        if not c.out:
            from plic.paths import runs_dir

            c.out = str(runs_dir() / "train" / "hevc-bpgcfg-pd")
        return c

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> PostDecodeConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})
