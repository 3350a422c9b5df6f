"""Codec training (top layer): ``python -m codec.train --help``.

Modules: ``config`` (TrainConfig, tracks, pure schedules), ``data`` (crops, loader, validation
images), ``losses``, ``discriminator``, ``amp`` (mixed precision scoped to the autoencoder),
``distributed`` (torchrun/DDP), ``rundir`` (checkpoints, training state), ``validate``, ``loop``
(``train(cfg)``), ``cli`` (``main(argv)``).
"""

from .cli import main
from .config import TRACKS, TrainConfig, stage_at

__all__ = ["TRACKS", "TrainConfig", "main", "stage_at", "train"]


def train(cfg, **kw):
    from .loop import train as _train

    return _train(cfg, **kw)
