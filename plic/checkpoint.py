"""The model-checkpoint contract (codec models and the perceptual metric alike).

A checkpoint is one file holding a plain dict that loads with
``torch.load(..., weights_only=True)``::

    {"format": "plic-checkpoint", "format_version": 1,
     "kind": "codec" | "metric" | ...,   # who reads it
     "model": str,                        # registry name, e.g. "hific-small" or "lpips-alex"
     "config": dict,                      # plain values only: enough to rebuild the module
     "state_dict": dict[str, Tensor],
     "provenance": dict}                  # plain values: data/metric hashes, git commit, scores

Optimiser, scheduler and RNG state live in a separate training-state file (``save_training_state``)
so model checkpoints stay small.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .fsio import atomic_torch_save
from .paths import REPO_ROOT

FORMAT = "plic-checkpoint"
FORMAT_VERSION = 1
REQUIRED_KEYS = ("format", "format_version", "kind", "model", "config", "state_dict", "provenance")


class CheckpointError(ValueError):
    """A file that is not a valid checkpoint of the expected kind."""


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"],
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def _plain(obj: Any, where: str) -> None:
    """Refuse values that weights_only loading could not read back."""
    # exact types: subclasses (e.g. torch's TorchVersion str) are not loadable with weights_only
    if obj is None or type(obj) in (bool, int, float, str):
        return
    if type(obj) in (list, tuple):
        for i, v in enumerate(obj):
            _plain(v, f"{where}[{i}]")
        return
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            if not isinstance(k, str):
                raise CheckpointError(f"{where}: key {k!r} is not a string")
            _plain(v, f"{where}.{k}")
        return
    raise CheckpointError(f"{where}: {type(obj).__name__} is not a plain value")


def make_checkpoint(kind: str, model: str, config: Mapping, state_dict: Mapping,
                    provenance: Mapping | None = None) -> dict:
    import torch

    _plain(dict(config), "config")
    prov = {"git_commit": git_commit(), "torch": str(torch.__version__), **(provenance or {})}
    _plain(prov, "provenance")
    sd = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind, "model": model,
            "config": dict(config), "state_dict": sd, "provenance": prov}


def save_checkpoint(path: str | os.PathLike, kind: str, model: str, config: Mapping,
                    state_dict: Mapping, provenance: Mapping | None = None) -> Path:
    """Write a model checkpoint atomically; returns its path."""
    return atomic_torch_save(make_checkpoint(kind, model, config, state_dict, provenance), path)


def _load_error(e: Exception) -> str:
    """torch.load's failure in one line: its unpickler's reason, without the paragraphs that
    suggest weights_only=False (which would run arbitrary code from the file)."""
    msg = str(e)
    marker = "WeightsUnpickler error:"
    if marker in msg:
        msg = msg.split(marker, 1)[1].split("Check the documentation", 1)[0]
    return f"{type(e).__name__}: {' '.join(msg.split())}"


def load_checkpoint(path: str | os.PathLike, kind: str | None = None,
                    map_location: str = "cpu") -> dict:
    """Load and validate a checkpoint; ``kind`` checks who it is for."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # pickle errors come in many types
        raise CheckpointError(f"{path}: not a loadable checkpoint ({_load_error(e)})") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a {FORMAT} file")
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {missing}")
    if ckpt["format_version"] > FORMAT_VERSION:
        raise CheckpointError(f"{path}: format version {ckpt['format_version']} is newer than "
                              f"this code's {FORMAT_VERSION}; update plic")
    if kind is not None and ckpt["kind"] != kind:
        raise CheckpointError(f"{path}: a {ckpt['kind']!r} checkpoint, expected {kind!r}")
    return ckpt


def save_training_state(path: str | os.PathLike, state: Mapping) -> Path:
    """Optimiser/scheduler/RNG/step state, kept apart from the model checkpoint."""
    return atomic_torch_save(dict(state), path)


def load_training_state(path: str | os.PathLike) -> dict:
    import torch

    return torch.load(Path(path), map_location="cpu", weights_only=False)


# Provenance names files relative to the repository or a run's parent folder, never by the
# absolute path of the machine that made them (docs/CONTRACTS.md).
_MACHINE_PREFIXES = ("/home/", "/root/", "/tmp/", "/work/", "/Users/", "/var/folders/",
                     "/private/", "~/")


def machine_paths(obj: Any, where: str = "provenance") -> list[str]:
    """``where=value`` for every string of ``obj`` (dicts and lists walked) that is an absolute
    path or holds one of a machine's folders (home, temp, the work tree): empty when clean."""
    import tempfile

    prefixes = {*_MACHINE_PREFIXES, str(Path.home()) + "/", tempfile.gettempdir() + "/",
                str(REPO_ROOT) + "/"}
    found = []
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            found += machine_paths(v, f"{where}.{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            found += machine_paths(v, f"{where}[{i}]")
    elif isinstance(obj, str):
        absolute = obj.startswith(("/", "~")) or (len(obj) > 2 and obj[1:3] in (":\\", ":/"))
        if absolute or any(p in obj for p in prefixes):
            found.append(f"{where}={obj}")
    return found


def relative_paths(obj: Any, bases: list[str | os.PathLike]) -> Any:
    """A copy of ``obj`` (dicts and lists walked) whose strings name every file under one of
    ``bases`` relative to it: ``BASE/x`` becomes ``x`` and ``BASE`` itself ``.``, inside longer
    strings too (a command line); the longest base wins."""
    roots = sorted({str(Path(b)).rstrip("/") for b in bases if str(b)}, key=len, reverse=True)
    if isinstance(obj, Mapping):
        return {k: relative_paths(v, roots) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(relative_paths(v, roots) for v in obj)
    if not isinstance(obj, str):
        return obj
    for root in roots:
        if obj == root:
            return "."
        obj = obj.replace(root + "/", "")
    return obj
