"""Trials from a tiny index: pairing rules, sentinels, batches, reproducibility, idempotence."""

from __future__ import annotations

import pytest

from distortions.schema import INDEX_COLUMNS
from mturk.design.trials import TrialsConfig, build, main
from mturk.schema import TRIALS_COLUMNS, TRIALS_ID
from mturk.sim.toy_index import make_toy_index
from plic.image_io import read_image
from plic.tables import read_table, resolve_path


@pytest.fixture(scope="module")
def index(tmp_path_factory, sample_images):
    d = tmp_path_factory.mktemp("idx")
    return make_toy_index(d, images=sample_images, n_refs=2, size=48,
                          qualities=(5, 30, 70, 95), target_bpps=(0.5, 1.0))


def test_trials_follow_the_rules(index, tmp_path):
    from plic.image_io import center_crop
    from plic.quality import psnr

    out, written = build(index, tmp_path, TrialsConfig(batch_size=8, sentinel_share=0.25,
                                                        repeats=1, crop=32))
    assert written
    t = read_table(out, TRIALS_COLUMNS, TRIALS_ID)
    idx = read_table(index, INDEX_COLUMNS, "dist_id").set_index("dist_id")
    tests = t[(t.kind == "test") & (t.repeat_of == "")]
    repeats, sents = t[t.repeat_of != ""], t[t.kind == "sentinel"]
    # 2 refs x 2 targets x C(4, 2) pairs, each once
    assert len(tests) == 2 * 2 * 6
    assert len({frozenset(p) for p in zip(tests.a_id, tests.b_id)}) == len(tests)
    for r in tests.itertuples():
        a, b = idx.loc[r.a_id], idx.loc[r.b_id]
        assert a.ref_id == b.ref_id == r.ref_id
        assert a.target_bpp == b.target_bpp == r.target_bpp
        assert r.a_id != r.b_id and r.expected == ""
        # what the page shows: the centre 32 x 32 of the distortion, written into views/
        shown = read_image(resolve_path(r.a_path, out))
        assert r.a_path.startswith("views/") and shown.shape == (32, 32, 3)
        assert (shown == center_crop(read_image(resolve_path(a.path, index)), 32)).all()
    for r in sents.itertuples():
        near = r.expected
        other = "b" if near == "a" else "a"
        assert getattr(r, f"{near}_codec") == "near-lossless"
        assert getattr(r, f"{near}_id") == r.ref_id + "~near"
        deg = idx.loc[getattr(r, f"{other}_id")]
        worst = idx[idx.ref_id == r.ref_id].psnr.astype(float).min()
        assert float(deg.psnr) == worst
        # the obvious side is close to the reference, but neither its file nor its bytes
        ref_p, near_p = resolve_path(r.ref_path, out), resolve_path(getattr(r, f"{near}_path"),
                                                                   out)
        assert ref_p != near_p and ref_p.read_bytes() != near_p.read_bytes()
        assert psnr(read_image(ref_p), read_image(near_p)) > 40
    for r in repeats.itertuples():              # the same pair again, sides swapped
        orig = t.set_index("trial_id").loc[r.repeat_of]
        assert (orig.a_id, orig.b_id, orig.batch_id) == (r.a_id, r.b_id, r.batch_id)
        assert orig.left != r.left and orig.repeat_of == "" and r.kind == "test"
    for _, g in t.groupby("batch_id"):
        assert len(g) <= 8
        assert (g.kind == "sentinel").sum() == 2 and (g.repeat_of != "").sum() == 1
    assert set(t.left) == {"a", "b"}
    # every shown file was written by this stage, one encoder, nothing outside views/
    for col in ("ref_path", "a_path", "b_path"):
        assert t[col].str.startswith("views/").all()


def test_seeded_reproducible_and_idempotent(index, tmp_path):
    cfg = TrialsConfig(batch_size=6, seed=3)
    p1, _ = build(index, tmp_path / "one", cfg)
    p2, _ = build(index, tmp_path / "two", cfg)
    assert p1.read_text() == p2.read_text()
    mtime = p1.stat().st_mtime_ns
    assert build(index, tmp_path / "one", cfg)[1] is False       # nothing to do
    assert p1.stat().st_mtime_ns == mtime
    p3, _ = build(index, tmp_path / "three", TrialsConfig(batch_size=6, seed=4))
    assert p3.read_text() != p1.read_text()
    # same comparisons, whatever the seed
    a = read_table(p1, TRIALS_COLUMNS)
    b = read_table(p3, TRIALS_COLUMNS)
    def pairs(df):
        return set(df[(df.kind == "test") & (df.repeat_of == "")].trial_id)

    assert pairs(a) == pairs(b)


def test_cli_and_errors(index, tmp_path, capsys):
    assert main(["--index", str(index), "--out", str(tmp_path), "--batch-size", "10"]) == 0
    assert "trials" in capsys.readouterr().out
    assert main(["--index", str(tmp_path / "missing.csv"), "--out", str(tmp_path)]) == 2
    assert main(["--index", str(index), "--out", str(tmp_path), "--sentinel-share", "1.5"]) == 2
    assert main(["--index", str(index), "--out", str(tmp_path), "--crop", "-1"]) == 2
    assert main(["--index", str(index), "--out", str(tmp_path), "--batch-size", "3",
                 "--repeats", "2"]) == 2               # no room left for a test
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(line.startswith("mturk.trials: error:") for line in err)
