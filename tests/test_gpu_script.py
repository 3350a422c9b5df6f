"""scripts/gpu_train.sh in its CPU rehearsal (--dry-run), and the batch probe it uses."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from codec.train.probe import doubling, largest_fitting
from plic.checkpoint import load_checkpoint, machine_paths

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_train.sh"


def test_largest_fitting_stops_at_the_first_out_of_memory():
    tried = []

    def fits(n):
        tried.append(n)
        if n > 16:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")

    assert largest_fitting(fits, doubling(1, 256)) == 16
    assert tried == [1, 2, 4, 8, 16, 32]  # nothing larger is tried after an OOM
    assert largest_fitting(lambda n: (_ for _ in ()).throw(RuntimeError("out of memory")),
                           [4]) == 0
    with pytest.raises(ValueError):  # any other failure is a bug, not an answer
        largest_fitting(lambda n: (_ for _ in ()).throw(ValueError("bad config")), [1, 2])
    assert doubling(3, 20) == [3, 6, 12]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_dry_run_writes_the_gpu_outputs(tmp_path):
    out = tmp_path / "OUT"
    env = {"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "HOME": str(tmp_path),
           "PLIC_RUNS": str(tmp_path / "runs")}
    r = subprocess.run(["bash", str(SCRIPT), "--dry-run", "--track", "0.075", "--out", str(out)],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    files = sorted(p.name for p in out.iterdir())
    assert files == ["gpu_tests.log", "hific-0.075.pt", "rd.json", "rd.md", "run.log",
                     "summary.json", "train_metrics.jsonl"]
    assert len(files) <= 8 and all((out / f).stat().st_size < 16 * 2 ** 20 for f in files)
    ck = load_checkpoint(out / "hific-0.075.pt", kind="codec")
    prov = ck["provenance"]
    assert prov["track"] == "0.075" and prov["train_config"]["loss"] == "full"
    assert prov["train_config"]["lpips"] == "alex" and prov["steps"] >= 1
    assert "codec.train" in prov["command"] and "--lambda-switching" in prov["command"]
    assert machine_paths(prov) == []  # its scratch folder and --out named relatively
    summary = json.loads((out / "summary.json").read_text())
    assert summary["device"] == "cpu" and summary["batch"] == 2
    assert summary["steps"] == prov["steps"] and summary["steps_per_s"] > 0
    rd = json.loads((out / "rd.json").read_text())["results"][0]
    assert rd["checkpoint"].endswith("hific-0.075.pt")
    assert [c["bin_width"] for c in rd["curve"]] == [0.5, 1.0, 2.0]
    assert all(c["images"] == 2 and c["bpp"] > 0 for c in rd["curve"])
    bpps = [c["bpp"] for c in rd["curve"]]
    assert bpps == sorted(bpps, reverse=True)  # wider bins, fewer bits


def test_bad_options_are_refused(tmp_path):
    for args in (["--track", "0.6", "--out", str(tmp_path)], ["--frobnicate"], []):
        r = subprocess.run(["bash", str(SCRIPT), "--dry-run", *args], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and "gpu_train.sh" in r.stderr, (args, r.stderr)
    r = subprocess.run(["bash", str(SCRIPT), "--help"], cwd=ROOT, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and "--minutes" in r.stdout and "--dry-run" in r.stdout
