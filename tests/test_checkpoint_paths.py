"""Shipped checkpoints carry no machine's folders (issue 31): every string of their provenance,
nested ones included, is free of absolute paths and of home, temp or work-tree prefixes."""

from __future__ import annotations

import pytest
import torch

from plic.checkpoint import machine_paths, relative_paths
from plic.paths import REPO_ROOT

SHIPPED = sorted((REPO_ROOT / "checkpoints").glob("*.pt"))


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_provenance_holds_relative_paths_only(path):
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    assert isinstance(ckpt["provenance"], dict) and ckpt["provenance"]
    assert machine_paths(ckpt["provenance"]) == []


def test_there_are_shipped_checkpoints():
    assert len(SHIPPED) >= 2


def test_machine_paths_finds_nested_and_embedded_paths():
    prov = {"run_dir": "runs/train/x", "n": 3, "out": "/work/train_runs/ft",
            "chain": {"init_from": {"path": "/home/me/a.pt", "ok": "checkpoints/a.pt"}},
            "command": "python -m codec.train --init /tmp/run1 --steps 2",
            "list": ["fine", "~/data", f"{REPO_ROOT}/x"], "win": "C:\\runs\\a.pt"}
    found = machine_paths(prov)
    assert sorted(f.split("=")[0] for f in found) == [
        "provenance.chain.init_from.path", "provenance.command", "provenance.list[1]",
        "provenance.list[2]", "provenance.out", "provenance.win"]


def test_relative_paths_cuts_the_longest_base_everywhere():
    prov = {"out": "/w/runs/ft", "ship": "/w/main/checkpoints/a.pt", "run": "/w/runs",
            "cmd": "python -m codec.train --init /w/runs/shared --ship /w/main/c.pt",
            "deep": [{"p": "/w/runs/shared/last.pt"}], "n": 1.5, "other": "/w/runsx/a"}
    out = relative_paths(prov, ["/w/main", "/w/runs/"])
    assert out == {"out": "ft", "ship": "checkpoints/a.pt", "run": ".",
                   "cmd": "python -m codec.train --init shared --ship c.pt",
                   "deep": [{"p": "shared/last.pt"}], "n": 1.5, "other": "/w/runsx/a"}
    assert prov["out"] == "/w/runs/ft"  # a copy
