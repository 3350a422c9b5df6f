"""Shared fixtures. Tests that need ../shared skip cleanly when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PLIC_SHARED", REPO.parent / "shared"))

# Two cores: keep each test process from oversubscribing them.
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not (SHARED / "data").is_dir():
        pytest.skip(f"../shared mirror not present at {SHARED}")
    return SHARED


@pytest.fixture(scope="session")
def kodak_dir(shared_dir) -> Path:
    d = shared_dir / "data" / "kodak"
    if not d.is_dir():
        pytest.skip("Kodak not in ../shared")
    return d


@pytest.fixture(scope="session")
def sample_images():
    """The built-in sample set as uint8 RGB arrays, keyed by id."""
    from plic.datasets import resolve_data
    from plic.image_io import read_image

    return {r.id: read_image(r.path) for r in resolve_data("samples")}
