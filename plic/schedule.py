"""The learning-rate schedule: one pure function of the step, for every training loop.

``lr_at(step, total, base, milestones, gamma, decay_fraction)``: ``base * gamma**k``, k the
``milestones`` (fractions of ``total``) passed at ``step`` (0-based): the codec's step-down
schedule (HiFiC's milestones); then, with ``decay_fraction`` > 0, a linear decay to 0 over the
last ``decay_fraction`` of the steps: the perceptual metric's constant-then-linear schedule
(LPIPS's).
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def lr_at(step: int, total: int, base: float, milestones: Sequence[float] = (),
          gamma: float = 0.5, decay_fraction: float = 0.0) -> float:
    """Learning rate at ``step`` of ``total`` steps (pure: depends on nothing else)."""
    k = sum(step >= math.ceil(m * total) for m in milestones)
    lr = base * gamma ** k
    if decay_fraction > 0:
        decay_steps = max(1, int(round(total * decay_fraction)))
        if step >= total - decay_steps:
            lr = lr * max(0.0, (total - step) / decay_steps)
    return lr
