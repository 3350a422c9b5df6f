"""The context model inside a codec model, and the wavefront latent coder.

``ContextLatentMixin`` (put it before ``LatentModel`` in the bases) adds ``self.context`` and
makes the hyper decoders ``ExactSequential`` and the hyper heads ``ExactLaplaceHead``;
``latent_params(features, y_hat)`` then returns the context model's (means, scales).
``WavefrontLatentCoder`` is the ``codec.coding.LatentCoder`` registered as coding order
``wavefront``: it converts the context model to fixed point, reads
the hyper features as the integers they are, and runs ``codec.context.wavefront.run_schedule``.
"""

from __future__ import annotations

import torch

from ..coding import CodingError, StageCode, encode_symbols, register_latent_coder
from ..entropy import SCALE_TABLE, estimate_bits
from ..layers import LaplaceHead
from .intmath import ACT_BITS, from_fixed, to_fixed
from .intnet import ExactSequential, IntConv
from .kernels import step_hooks
from .masked import ContextModel
from .step import ParamGrid, discretize_fixed, step_weights
from .wavefront import (
    StreamSource,
    ordered_symbols,
    quantizer_source,
    run_schedule,
    serial_schedule,
    wavefront_schedule,
)


def _round_ste(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.round(x) - x).detach()


class ContextLatentMixin:
    """Context model for a ``LatentModel``; inert until ``attach_context`` is called."""

    @property
    def has_context(self) -> bool:
        # nn.Module keeps submodules in _modules: a class attribute would shadow them
        return "context" in self._modules

    def attach_context(self, channels: int, hyper_channels: int, kernel: int = 5,
                       ctx_channels: int | None = None, hidden: int | None = None) -> None:
        """Add the context model and make the whole parameter path integer-exact in eval mode:
        every hyper decoder an ``ExactSequential``, every hyper stage's head exact."""
        self.context = ContextModel(channels, hyper_channels, ctx_channels, hidden, kernel)
        for i in range(len(self.h_s)):
            self.h_s[i] = ExactSequential(*self.h_s[i])
        for i in range(1, len(self.heads)):
            self.heads[i] = ExactLaplaceHead.from_head(self.heads[i])

    def latent_params(self, features: torch.Tensor, y_hat: torch.Tensor | None = None):
        if not self.has_context:
            return super().latent_params(features)
        if y_hat is None:
            raise ValueError("a context model's latent parameters need y_hat; code the latent "
                             "with the 'wavefront' coding order")
        return self.context(y_hat.to(features.dtype), features)

    def latent_context_input(self, y: torch.Tensor, delta: torch.Tensor, mode: str):
        """Training: y + uniform noise (``noise``) or delta * round(y / delta) with a
        straight-through gradient (other quantizers, and eval). The coder centres the rounding
        on the discretised means instead; its real rate is what ``codec.api`` reports."""
        if not self.has_context:
            return None
        if self.training and mode == "noise":
            return y + delta * (torch.rand_like(y) - 0.5)
        return delta * _round_ste(y / delta)


class ExactLaplaceHead(LaplaceHead):
    """A hyper stage's head (unit bins) whose eval output is already discretised by integer
    arithmetic: means on the 1/64 grid and scales equal to ``SCALE_TABLE`` entries, so the
    core's float ``discretize`` maps them back to the same indices on any machine (a table
    entry's log is within 1e-6 steps of its index, far from a rounding boundary)."""

    @classmethod
    def from_head(cls, head: LaplaceHead) -> ExactLaplaceHead:
        new = cls(head.proj.in_channels, head.channels, head.predict_means)
        new.load_state_dict(head.state_dict())
        return new

    def forward(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.training:
            return super().forward(feats)
        x_fx = to_fixed(feats, ACT_BITS)
        if not torch.equal(from_fixed(x_fx, ACT_BITS).to(feats.dtype), feats):
            raise CodingError("hyper features are not integer-exact (ExactSequential needed)")
        out = IntConv(self.proj)(x_fx)
        if self.predict_means:
            means_fx, log_scales_fx = out.chunk(2, dim=1)
        else:
            means_fx, log_scales_fx = torch.zeros_like(out), out
        grid = ParamGrid.from_entropy()
        m, idx = discretize_fixed(means_fx, log_scales_fx, grid, 1.0)
        means = m.double() / 2**grid.mean_bits
        scales = torch.from_numpy(SCALE_TABLE)[idx.cpu()].to(feats.device)
        return means.to(feats.dtype), scales.to(feats.dtype)


def _fixed_features(features: torch.Tensor) -> torch.Tensor:
    """(1, Ch, H, W) float hyper features -> (Ch, H, W) int64, checking they are on the grid."""
    if features.shape[0] != 1:
        raise CodingError("the wavefront coder codes one image at a time")
    # x * 2**ACT_BITS is exact in the features' own float type, and it is an integer iff x is
    # on the fixed-point grid (the to_fixed/from_fixed round trip's test, in fewer passes)
    bad = CodingError("hyper features are not integer-exact: the model must be in eval mode "
                      "with an ExactSequential h_s[0]")
    if not features.is_floating_point():
        raise bad
    scaled = features[0] * float(2**ACT_BITS)
    lo, hi = torch.aminmax(scaled)
    if not (-(2.0**62) < float(lo) and float(hi) < 2.0**62):  # also NaN and inf
        raise bad
    fixed = scaled.to(torch.int64)  # truncates: equal to scaled iff it is an integer
    if not torch.equal(fixed.to(scaled.dtype), scaled):
        raise bad
    return fixed


class WavefrontLatentCoder:
    """Coding order ``wavefront``; ``serial=True`` decodes one position per step (reference)."""

    def __init__(self, serial: bool = False):
        self.serial = serial

    def _setup(self, model, features):
        if not getattr(model, "has_context", False):
            raise CodingError(f"model {model.name!r} has no context model for 'wavefront'")
        return step_weights(model.context), ParamGrid.from_entropy(), _fixed_features(features)

    def encode(self, model, y, features, delta, escapes) -> StageCode:
        sw, grid, psi = self._setup(model, features)
        shape = tuple(y.shape[1:])
        sched = wavefront_schedule(shape[1], shape[2], sw.kernel)
        y_hat, k, idx = run_schedule(sw, grid, psi, shape, delta, sched,
                                     quantizer_source(y[0], grid, delta),
                                     *step_hooks(sw, psi.device))
        ks, ids = ordered_symbols(k, idx, sched)
        data = encode_symbols(ks, ids, escapes)
        return StageCode(data, from_fixed(y_hat, ACT_BITS).float()[None], estimate_bits(ks, ids),
                         k[None])

    def decode(self, model, data, features, shape, delta, escapes) -> StageCode:
        sw, grid, psi = self._setup(model, features)
        c, h, w = tuple(shape)[-3:]
        if tuple(psi.shape[1:]) != (h, w):
            raise CodingError(f"hyper features {tuple(psi.shape)} do not match {shape}")
        sched = (serial_schedule if self.serial else wavefront_schedule)(h, w, sw.kernel)
        source = StreamSource(data, escapes)
        y_hat, k, idx = run_schedule(sw, grid, psi, (c, h, w), delta, sched, source,
                                     *step_hooks(sw, psi.device))
        source.finish()
        ks, ids = ordered_symbols(k, idx, sched)
        return StageCode(data, from_fixed(y_hat, ACT_BITS).float()[None], estimate_bits(ks, ids),
                         k[None])


register_latent_coder("wavefront", WavefrontLatentCoder())
