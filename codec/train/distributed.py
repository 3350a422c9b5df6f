"""torchrun / DistributedDataParallel: one CPU process by default, gloo on CPU, NCCL on CUDA.

``torchrun --nproc_per_node P -m codec.train ...`` sets RANK, WORLD_SIZE and LOCAL_RANK; each
process then takes ``batch_size / P`` samples of the same global batch (``codec.train.data``), and
DDP averages the gradients, so P processes take the step one process would take on the whole
batch (up to floating-point summation order and the per-process quantisation noise).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup(device: str) -> Dist:
    """Join the process group when launched by torchrun; a plain run is a world of one."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    d = Dist(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return d


def device_for(d: Dist, requested: str) -> str:
    if requested:
        dev = requested
    else:
        dev = "cuda" if torch.cuda.is_available() else "cpu"
    if dev == "cuda" and d.enabled:
        torch.cuda.set_device(d.local_rank)
        dev = f"cuda:{d.local_rank}"
    return dev


def wrap(module: torch.nn.Module, d: Dist, device: str) -> torch.nn.Module:
    if not d.enabled:
        return module
    ids = [torch.device(device).index] if device.startswith("cuda") else None
    return torch.nn.parallel.DistributedDataParallel(module, device_ids=ids)


def unwrap(module: torch.nn.Module) -> torch.nn.Module:
    return getattr(module, "module", module)


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()


def all_true(flag: bool, d: Dist, device: str = "cpu") -> bool:
    """True on every process only when ``flag`` is true on all of them (for the NaN guard)."""
    if not d.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item() > 0)


def teardown(d: Dist) -> None:
    if d.enabled and dist.is_initialized():
        dist.destroy_process_group()
