"""One switch for the training fast paths: ``PLIC_TRAIN_FAST=0`` gives the straightforward formulas.

The fast paths compute the same functions as the plain formulas beside them, rearranged for speed
on the CPU (``python -m benchmarks.train_speed --compare`` measures both in one run):

* ``codec.layers.GDN`` in training: the 1x1 channel mixing as one matrix product and
  ``x * rsqrt(norm)`` instead of ``F.conv2d`` + ``sqrt`` + divide;
* ``codec.train.losses.perceptual``: the metric's features of the reference image are taken
  without autograd, so the backward pass runs through the reconstruction's half of the trunk only;
* ``codec.train.discriminator``: the latent's contribution to the first convolution is computed
  once per latent and shared by the real and the fake image; the images' own part of that
  convolution has 3 input channels instead of 3 + the conditioning's;
* ``THREAD_ENV`` for ``python -m codec.train`` and the benchmark's "after" runs (see below).

Measured and left out: channels-last batches (a few per cent, but ``torch.rand_like`` then draws
the quantisation noise in another element order, so runs would not repeat the plain path's),
fusing the Laplace likelihoods (under 1% of a step) and ``torch.compile`` of GDN (25% of GDN,
about 2% of a step, for 20 s of compilation per shape).

Nothing here touches evaluation or coding: a layer in eval mode, or run without autograd, takes
the plain formula, so decoded pixels are unchanged. Values agree with the plain formulas to float
rounding (``tests/codec/test_fastpath.py``); state-dict keys are the same.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import MutableMapping

ENV = "PLIC_TRAIN_FAST"
# OpenMP threads that sleep when they wait instead of spinning (libgomp spins ~300,000 times by
# default). On a machine whose cores are shared with other work, a spinning thread holds a core
# that the thread it waits for needs: measured on the shared 2-core machine, a 2-thread training
# step took 5-25x longer with the default than with this (benchmarks.train_speed --compare).
THREAD_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}
_enabled = os.environ.get(ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def enabled() -> bool:
    return _enabled


def set_enabled(flag: bool) -> bool:
    """Switch the fast paths on or off for this process; returns the previous setting."""
    global _enabled
    previous, _enabled = _enabled, bool(flag)
    return previous


def apply_thread_env(environ: MutableMapping[str, str] | None = None) -> bool:
    """Put ``THREAD_ENV`` into ``environ`` (default: this process's, where it only takes effect
    before torch is imported) unless the fast paths are off or the variable is already set.
    Returns whether it can take effect."""
    if not enabled():
        return False
    if environ is None:
        if "torch" in sys.modules:
            return False
        environ = os.environ
    for key, value in THREAD_ENV.items():
        environ.setdefault(key, value)
    return True


@contextlib.contextmanager
def switched(flag: bool):
    """``with switched(False): ...`` runs the block on the straightforward formulas."""
    previous = set_enabled(flag)
    try:
        yield
    finally:
        set_enabled(previous)
