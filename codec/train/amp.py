"""Mixed precision for the autoencoder only.

The entropy-parameter path (hyper transforms, priors, likelihoods) must stay in float32: the
decoder recomputes those parameters and they have to match the encoder's, and low-precision
likelihoods bias the rate. So autocast is not wrapped around the whole forward; it is switched on
inside ``g_a`` and ``g_s`` alone with forward hooks, and their outputs are cast back to float32
before anything else sees them.
"""

from __future__ import annotations

import torch
from torch import nn

AUTOENCODER = ("g_a", "g_s")


def autocast_autoencoder(model: nn.Module, device_type: str = "cuda",
                         dtype: torch.dtype = torch.bfloat16) -> list:
    """Run ``model.g_a`` and ``model.g_s`` under autocast; returns the hook handles."""
    handles = []
    for name in AUTOENCODER:
        sub = getattr(model, name, None)
        if sub is None:
            raise ValueError(f"{type(model).__name__} has no {name}: cannot scope mixed precision")
        ctx: list = []

        def pre(_mod, _args, ctx=ctx):
            c = torch.autocast(device_type=device_type, dtype=dtype)
            c.__enter__()
            ctx.append(c)

        def post(_mod, _args, out, ctx=ctx):
            ctx.pop().__exit__(None, None, None)
            return out.float()

        handles += [sub.register_forward_pre_hook(pre), sub.register_forward_hook(post)]
    return handles
