"""codec.evaluate.twins: the perceptual-vs-MSE-twin claim is judged cell by cell."""

import json

import pytest

from codec.evaluate import twins


def _row(method, target, **m):
    base = {"method": method, "target_bpp": target, "bpp": target * 0.95, "psnr": 27.0,
            "ms_ssim": 0.9, "fid": 100.0, "kid": 0.02, "lpips_alex": 0.3, "lpips_vgg": 0.4,
            "lpips_squeeze": 0.25, "dists": 0.2}
    return {**base, **m}


def _summary():
    return [
        _row("full", 0.15, psnr=26.0, fid=80.0, kid=0.01, lpips_alex=0.2, lpips_vgg=0.35,
             lpips_squeeze=0.2, dists=0.15),
        _row("mse", 0.15),
        _row("hevc-bpgcfg", 0.15, psnr=28.5, fid=150.0, kid=0.04, lpips_alex=0.32),
        _row("hevc-bpgcfg", 0.3, psnr=31.0),
    ]


def test_claim_holds_when_every_cell_goes_the_claimed_way():
    p = twins.compare(_summary(), "full", "mse")
    assert p["holds"] and p["failing"] == [] and p["target_bpp"] == 0.15
    cells = {c["metric"]: c for c in p["cells"]}
    assert cells["ms_ssim"]["holds"] is None  # shown, not judged
    # gap to HEVC at the same target: positive = behind (PSNR 28.5 vs 26.0), negative = ahead
    assert cells["psnr"]["gap"] == pytest.approx(2.5)
    assert cells["fid"]["gap"] == pytest.approx(-70.0)


@pytest.mark.parametrize("metric,value", [("lpips_vgg", 0.41), ("kid", 0.02), ("psnr", 27.5),
                                          ("bpp", 0.15 * 0.95 * 1.05)])
def test_one_contrary_cell_fails_the_claim_and_is_named(metric, value):
    s = _summary()
    s[0][metric] = value
    p = twins.compare(s, "full", "mse")
    assert not p["holds"] and p["failing"] == [metric]


def test_equal_bpp_within_the_slack_still_holds():
    s = _summary()
    s[0]["bpp"] = s[1]["bpp"] * (1 + twins.BPP_SLACK / 2)
    assert twins.compare(s, "full", "mse")["holds"]


def test_an_unmeasured_claimed_metric_is_not_a_pass():
    s = _summary()
    s[0]["fid"] = None  # e.g. not every image reached the target
    p = twins.compare(s, "full", "mse")
    assert not p["holds"] and p["unmeasured"] == ["fid"] and p["failing"] == []


def test_twin_is_taken_at_the_perceptual_rows_target():
    s = _summary() + [_row("mse", 0.3, psnr=10.0)]
    p = twins.compare(s, "full", "mse")
    assert {c["metric"]: c["twin"] for c in p["cells"]}["psnr"] == 27.0


def test_cli_writes_table_and_json(tmp_path, capsys):
    (tmp_path / "results.json").write_text(json.dumps({"summary": _summary()}))
    assert twins.main([str(tmp_path), "--pair", "full=mse"]) == 0
    out = json.loads((tmp_path / "twins.json").read_text())
    assert out[0]["holds"] is True
    text = (tmp_path / "twins.md").read_text()
    assert "claim holds" in text and "| FID | 80.00 | 100.00 | yes |" in text


def test_cli_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "results.json").write_text(json.dumps({"summary": _summary()}))
    assert twins.main([str(tmp_path), "--pair", "full=nope"]) == 2
    assert twins.main([str(tmp_path), "--pair", "fullmse"]) == 2
    assert twins.main([str(tmp_path / "missing"), "--pair", "a=b"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(e.startswith("codec.evaluate.twins: error:") for e in err)
    assert not (tmp_path / "twins.md").exists()
