"""What a measurement records about where it ran (machine, load, versions) and how its report is
written: one definition for every benchmark (the ``benchmarks`` package) and ``codec.train.rd``.

On a shared machine wall times swing with the load, so every report carries the 1-minute load
average beside its numbers.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path

from .fsio import atomic_write_text


def machine() -> str:
    """The processor's name where the platform says it, else the architecture."""
    return platform.processor() or platform.machine()


def load_1min() -> float:
    return round(os.getloadavg()[0], 2)


def load_averages() -> list[float]:
    """The 1-, 5- and 15-minute load averages."""
    return [round(v, 2) for v in os.getloadavg()]


def host() -> dict:
    """Torch threads, load, machine and torch version: the fields every codec benchmark
    reports."""
    import torch

    return {"threads": torch.get_num_threads(), "loadavg": load_1min(), "machine": machine(),
            "torch": str(torch.__version__)}


def versions() -> dict:
    """Python and torch versions, the architecture and the CPU count
    (``benchmarks.train_speed``)."""
    import torch

    return {"python": sys.version.split()[0], "torch": str(torch.__version__),
            "machine": platform.machine(), "cpu_count": os.cpu_count()}


def write_report(folder: str | os.PathLike, stem: str, data: dict, md: str, indent: int = 2,
                 json_end: str = "") -> None:
    """``folder/stem.json`` (``data``) and ``folder/stem.md``, written atomically (the folder is
    made), then the Markdown printed."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / f"{stem}.json", json.dumps(data, indent=indent) + json_end)
    atomic_write_text(folder / f"{stem}.md", md)
    print(md)
