"""The run directory: small model checkpoints and a separate training state.

    OUT/last.pt          model checkpoint (checkpoint contract, kind "codec"): latest good step
    OUT/best.pt          model checkpoint with the best validation objective so far
    OUT/train_state.pt   step, model + discriminator weights, optimisers, RNG states, best score
    OUT/metrics.jsonl    one JSON line per logged step and per validation
    OUT/config.json      the resolved TrainConfig
    OUT/tb/              TensorBoard events

Every file is written atomically, so a crash or kill leaves the previous version intact.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch

from plic.checkpoint import load_training_state, save_checkpoint, save_training_state
from plic.fsio import atomic_write_text

STATE = "train_state.pt"


def save_model(path: Path, model: torch.nn.Module, provenance: dict) -> Path:
    """A kind-"codec" checkpoint: registry name, model config, weights, provenance."""
    try:
        from .. import api
    except ImportError:
        api = None
    if api is not None and hasattr(api, "save"):
        return Path(api.save(model, path, provenance=provenance) or path)
    return save_checkpoint(path, "codec", model.name, model.config, model.state_dict(),
                           provenance)


def rng_state() -> dict:
    s = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
         "python": random.getstate()}
    if torch.cuda.is_available():
        s["cuda"] = torch.cuda.get_rng_state_all()
    return s


def set_rng_state(s: dict) -> None:
    torch.set_rng_state(s["torch"])
    np.random.set_state(s["numpy"])
    random.setstate(s["python"])
    if "cuda" in s and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s["cuda"])


def save_state(out: Path, state: dict) -> Path:
    return save_training_state(out / STATE, {**state, "rng": rng_state()})


def load_state(out: Path) -> dict:
    path = out / STATE
    if not path.is_file():
        raise FileNotFoundError(f"--resume: no training state at {path}; start without --resume")
    return load_training_state(path)


def check_resume(saved: dict, now: dict, default: dict, resumable) -> None:
    """Refuse (``ValueError``, naming each change) to resume a run whose configuration ``saved``
    differs from ``now`` in an option not in ``resumable``; an option added after the run
    started is absent from ``saved``: it had the ``default``."""
    saved = {**default, **saved}
    diff = sorted(k for k in now if k not in resumable and saved[k] != now[k])
    if diff:
        raise ValueError("--resume with a different configuration: " + ", ".join(
            f"{k}: {saved[k]!r} -> {now[k]!r}" for k in diff))


def write_config(out: Path, config: dict) -> None:
    atomic_write_text(out / "config.json", json.dumps(config, indent=2, sort_keys=True) + "\n")


def append_metrics(out: Path, row: dict) -> None:
    with open(out / "metrics.jsonl", "a") as f:
        f.write(json.dumps(row, sort_keys=True) + "\n")


def read_metrics(out: Path) -> list[dict]:
    path = Path(out) / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
