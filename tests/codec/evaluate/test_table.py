"""Table 1's provenance column ("trained with") and its FID rule (equal patch counts)."""

from __future__ import annotations

import pytest

from codec.evaluate.encode import trained_with, trained_with_text
from codec.evaluate.report import fid_patch_count, markdown_table


def test_trained_with_reads_loss_and_metric():
    assert trained_with_text({"train_config": {"loss": "mse", "lpips": "alex"}}) == "none (MSE)"
    assert trained_with_text({"train_config": {"loss": "full", "lpips": "alex", "k_gan": 0.15}}
                             ) == "LPIPS-Alex + GAN"
    assert trained_with_text({"train_config": {"loss": "full", "lpips": "vgg", "k_gan": 0}}
                             ) == "LPIPS-VGG"
    fitted = trained_with_text({"train_config": {"loss": "full", "lpips": "runs/demo/metric.pt",
                                                 "k_gan": 0.15},
                                "metric_sha256": "abcdef0123456789"})
    assert fitted == "fitted metric.pt (abcdef01) + GAN"
    # the training loop's default metric when --lpips is empty
    assert trained_with_text({"train_config": {"loss": "full", "lpips": ""}}).startswith(
        "fitted metric.pt")
    assert "perceptual weight 0" in trained_with_text(
        {"train_config": {"loss": "full", "lpips": "alex", "k_perceptual": 0.0}})
    assert trained_with_text({"init": "random"}) == "untrained (random init)"
    assert trained_with_text({}).startswith("unknown")


def test_shipped_baselines_say_mse():
    from plic.checkpoint import load_checkpoint
    from plic.paths import REPO_ROOT

    # the learned codecs (the HEVC post-decoder's checkpoint is a stage, not a codec)
    ckpts = [p for p in sorted((REPO_ROOT / "checkpoints").glob("*.pt"))
             if load_checkpoint(p)["kind"] == "codec"]
    if not ckpts:
        pytest.skip("no shipped checkpoints")
    for p in ckpts:
        prov_loss = trained_with(p)
        assert prov_loss, p
        if "small-bsds500" in p.stem:  # the two MSE baselines of the README
            assert prov_loss == "none (MSE)"


def _row(method, kind, n, fid=None, patches=None, trained=""):
    return {"method": method, "kind": kind, "trained_with": trained, "target_bpp": 0.15,
            "n_images": n, "n_set": 4, "bpp": 0.14, "psnr": 30.0, "ms_ssim": 0.95, "fid": fid,
            "fid_patches": patches, "kid": None if fid is None else 0.01, "kid_std": 0.0,
            "lpips_alex": 0.3, "lpips_vgg": 0.4, "lpips_squeeze": 0.2, "dists": 0.25,
            "metric_fitted": None}


def test_table_has_one_patch_count_and_marks_training():
    rows = [_row("hevc-bpgcfg", "classic", 4, 100.0, 24),
            _row("learned-x", "learned", 4, 120.0, 24, "none (MSE)"),
            _row("jpeg", "classic", 3)]  # partial: no FID
    md = markdown_table(rows, {})
    head, _, *body = md.splitlines()
    assert "FID (24 patches)" in head and "trained with" in head and "DISTS" in head
    cells = [c.strip() for c in body[1].split("|")]
    assert cells[2] == "none (MSE)"
    jpeg = [c.strip() for c in body[2].split("|")]
    assert jpeg[1] == "jpeg (3/4 img)" and jpeg[2] == "–" and jpeg[7] == "–"  # no FID
    with pytest.raises(ValueError, match="different patch counts"):
        fid_patch_count([_row("a", "classic", 4, 1.0, 24), _row("b", "classic", 4, 1.0, 16)])
