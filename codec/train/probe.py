"""The largest training batch that fits on a device: ``python -m codec.train.probe``.

    python -m codec.train.probe --model hific --preset small --crop 256 --device cuda
        [--lpips alex] [--max-batch 256] [--headroom 0.9]

One full training step of the adversarial stage (autoencoder, perceptual metric, conditioned
discriminator, both backward passes) at batch 1, 2, 4, ... until the device runs out of memory or
``--max-batch`` is reached; prints the largest batch that ran (times ``--headroom``, rounded down
to a multiple of the smallest tried, so that allocator fragmentation late in a run does not tip
it over). Used by ``scripts/gpu_train.sh``. On a CPU nothing runs out of memory in a useful way:
the probe there only checks that the largest batch runs.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable

import torch

from plic.cli import CliError, command, parser


class ProbeError(RuntimeError):
    pass


def _is_oom(e: BaseException) -> bool:
    if isinstance(e, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(e, RuntimeError) and "out of memory" in str(e).lower()


def largest_fitting(fits: Callable[[int], None], sizes: Iterable[int]) -> int:
    """The largest of the increasing ``sizes`` for which ``fits(size)`` returns without running
    out of memory (stops at the first that does); 0 when none fits. Other errors propagate."""
    best = 0
    for n in sizes:
        try:
            fits(n)
        except Exception as e:  # noqa: BLE001 - only out-of-memory is an answer
            if not _is_oom(e):
                raise
            break
        best = n
    return best


def doubling(start: int, limit: int) -> list[int]:
    out, n = [], max(1, start)
    while n <= limit:
        out.append(n)
        n *= 2
    return out


def step_fits(model_name: str, preset: str, crop: int, device: str, lpips: str = "alex",
              model_config: str = "", disc_width: int = 0) -> Callable[[int], None]:
    """A function that runs one full training step on a random batch of ``n`` crops."""
    from .config import PRESET_DEFAULTS, TrainConfig
    from .discriminator import Discriminator
    from .loop import build_model, load_metric
    from .losses import bpp_per_image, discriminator_loss, generator_loss, mse255, perceptual

    cfg = TrainConfig(model=model_name, preset=preset, model_config=model_config,
                      crop=crop).resolved()
    model = build_model(cfg).to(device).train()
    metric = load_metric(lpips, device) if lpips else None
    with torch.no_grad():
        s = int(getattr(model, "stride", 1))
        y_ch = model(torch.rand(1, 3, s, s, device=device))["y"].shape[1]
    disc = Discriminator(disc_width or PRESET_DEFAULTS[preset]["disc_width"], y_ch).to(device)

    def fits(n: int) -> None:
        try:
            x = torch.rand(n, 3, crop, crop, device=device)
            res = model(x, delta=1.0)
            loss = bpp_per_image(res["bits"], crop, crop).mean() + 0.01 * mse255(res["x_hat"], x)
            if metric is not None:
                loss = loss + perceptual(metric, res["x_hat"], x)
            loss = loss + generator_loss(disc(res["x_hat"], res["y"].detach()))
            loss.backward()
            y = res["y"].detach()
            logits = disc(torch.cat([x, res["x_hat"].detach()]), torch.cat([y, y]))
            discriminator_loss(*logits.chunk(2)).backward()
            if device.startswith("cuda"):
                torch.cuda.synchronize()
        finally:
            model.zero_grad(set_to_none=True)
            disc.zero_grad(set_to_none=True)
            if device.startswith("cuda"):
                torch.cuda.empty_cache()

    return fits


PROG = "python -m codec.train.probe"


@command(PROG, errors=(KeyError, ProbeError))
def main(argv: list[str] | None = None) -> int:
    p = parser(PROG, __doc__)
    p.add_argument("--model", default="hific")
    p.add_argument("--preset", default="small")
    p.add_argument("--model-config", default="", help="as codec.train's --model-config")
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--lpips", default="alex", help="metric of the perceptual term ('' for none)")
    p.add_argument("--device", default="", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--start", type=int, default=1, help="smallest batch tried")
    p.add_argument("--max-batch", type=int, default=256, help="largest batch tried")
    p.add_argument("--headroom", type=float, default=0.9,
                   help="fraction of the largest batch that ran to report (0 < h <= 1)")
    a = p.parse_args(argv)
    if not 0 < a.headroom <= 1:
        p.error("--headroom must be in (0, 1]")
    device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    fits = step_fits(a.model, a.preset, a.crop, device, a.lpips, a.model_config)
    sizes = doubling(a.start, a.max_batch)
    if not device.startswith("cuda"):
        sizes = sizes[-1:]
    best = largest_fitting(fits, sizes)
    if best == 0:
        raise CliError(f"not even batch {sizes[0]} fits on {device}")
    step = sizes[0]
    print(max(step, int(best * a.headroom) // step * step))
    return 0


if __name__ == "__main__":
    sys.exit(main())
