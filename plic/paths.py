"""Where things live: the repository root and the default output folder."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
MANIFEST_DIR = REPO_ROOT / "data_manifests"
DATA_ROOT_ENV = "PLIC_DATA_ROOT"
RUNS_ENV = "PLIC_RUNS"


def runs_dir() -> Path:
    """Root of all outputs: ``$PLIC_RUNS`` or ``<repo>/runs`` (git-ignored)."""
    return Path(os.environ.get(RUNS_ENV, REPO_ROOT / "runs"))
