"""benchmarks.codec_decode (issue 6) on a crop: every decoder decodes the encoder's latents (the
benchmark checks that itself and fails otherwise), the table and the target lines are written,
and the CompressAI import leaves no placeholder module behind."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

import codec.context.wavefront as wavefront
from benchmarks import codec_decode, compressai_import


def test_decode_bench_runs_on_a_crop(tmp_path):
    assert codec_decode.main(["--presets", "small", "--crop", "64", "--no-compressai",
                              "--out", str(tmp_path)]) == 0
    rep = json.loads((tmp_path / "codec_decode.json").read_text())
    kinds = [r["decoder"] for r in rep["rows"]]
    assert kinds[:2] == ["serial reference", "wavefront pytorch"]
    assert kinds[-1] == "synthesis transform g_s alone"
    decodes, synthesis = rep["rows"][:-1], rep["rows"][-1]
    assert all(r["preset"] == "small" and r["bytes"] > 0 for r in decodes)
    assert all(0 < r["latent_decode_s"] < r["decode_s"] for r in decodes)
    assert all(0 < r["latent_decode_cpu_s"] <= r["decode_cpu_s"] for r in decodes)
    assert 0 < synthesis["decode_s"]
    if "wavefront c++" in kinds:  # the kernel built: the speed-up line is there
        assert any(n.startswith("small: wavefront C++") for n in rep["targets"])
    md = (tmp_path / "codec_decode.md").read_text()
    assert md.startswith("# benchmarks.codec_decode")
    assert md.count("| plic hific | small |") == len(kinds)


def test_decode_bench_refuses_a_bad_crop(tmp_path):
    with pytest.raises(SystemExit):
        codec_decode.main(["--crop", "100", "--out", str(tmp_path)])


def test_a_decoder_that_differs_fails_the_benchmark(monkeypatch):
    reference, commit = wavefront.step_params, wavefront.commit_step

    def wrong_params(sw, grid, delta, y_hat_pad, psi, rows, cols):
        """Off by one mean step at the last position only (no later context sees it, so the
        stream still decodes, to other latents)."""
        m, idx = reference(sw, grid, delta, y_hat_pad, psi, rows, cols)
        last = (rows == psi.shape[1] - 1) & (cols == psi.shape[2] - 1)
        return m + last[:, None].long(), idx

    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    monkeypatch.setattr(codec_decode.kernels, "load", lambda kind: object())
    monkeypatch.setattr(codec_decode.kernels, "compiled_params",
                        lambda mod, *args: wrong_params(*args))
    monkeypatch.setattr(codec_decode.kernels, "compiled_commit",
                        lambda mod, *args: commit(*args))
    with pytest.raises(AssertionError, match="differ"):
        codec_decode.bench_preset(image, "small", ["wavefront pytorch", "wavefront c++"])


def test_targets_read_the_rows():
    rows = [{"preset": "paper", "decoder": "serial reference", "latent_decode_s": 60.0},
            {"preset": "paper", "decoder": "wavefront c++", "latent_decode_s": 2.0},
            {"preset": "small", "decoder": "serial reference", "latent_decode_s": 10.0},
            {"preset": "small", "decoder": "wavefront c++", "latent_decode_s": 0.5,
             "decode_s": 2.0},
            {"preset": "quality 3", "decoder": "serial (theirs)", "decode_s": 10.0}]
    notes = codec_decode.targets(rows)
    assert "30.0x" in notes[0] and "NOT met" in notes[0]
    assert "20.0x" in notes[1] and "NOT met" in notes[1]
    assert "0.200" in notes[2] and "NOT met" in notes[2]
    assert notes[3].endswith("met)") and "NOT" not in notes[3]


def test_compressai_import_leaves_no_placeholders():
    factory, why = codec_decode.import_mbt2018()
    if factory is None:
        pytest.skip(f"compressai not usable here: {why}")
    for name, mod in sys.modules.items():
        loader = getattr(getattr(mod, "__spec__", None), "loader", None)
        assert not isinstance(loader, compressai_import._PlaceholderFinder), name
    torch.manual_seed(0)
    net = factory(quality=1, pretrained=False).eval()
    assert sum(p.numel() for p in net.parameters()) > 0
