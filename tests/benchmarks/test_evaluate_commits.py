"""benchmarks.evaluate_commits: the comparison of two results.json, and its one-line errors (the
timed runs themselves are minutes long: README records a measured run)."""

from __future__ import annotations

import pytest

from benchmarks.evaluate_commits import main, max_differences


def _doc(psnr, fid, extra_row=False):
    rows = [{"method": "jpeg", "target_bpp": 0.3, "image_id": "a", "psnr": psnr,
             "lpips_alex": 0.25, "dists": None}]
    if extra_row:
        rows.append({"method": "jpeg", "target_bpp": 0.3, "image_id": "b", "psnr": 1.0})
    return {"per_image": rows,
            "summary": [{"method": "jpeg", "target_bpp": 0.3, "psnr": psnr, "fid": fid}]}


def test_max_differences_joins_by_id_and_skips_missing_values():
    d = max_differences(_doc(30.0, 100.0), _doc(30.0 + 2e-7, 100.5, extra_row=True))
    assert d["per_image.psnr"] == pytest.approx(2e-7)
    assert d["per_image.lpips_alex"] == 0
    assert "per_image.dists" not in d  # empty on both sides: nothing to compare
    assert d["summary.fid"] == pytest.approx(0.5)
    assert d["per_image_rows"] == [1, 2, 1]


def test_bad_revision_is_one_clear_error(tmp_path, capsys):
    assert main(["--before", "no-such-revision-xyz", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no-such-revision-xyz" in err and err.startswith("benchmarks.evaluate_commits: error:")
