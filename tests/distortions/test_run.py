"""The driver: index schema, one row per (image, codec, param), idempotence, resume, bad input."""

import json
import os
from pathlib import Path

import pytest

from distortions.__main__ import main
from distortions.backends import BackendOptions
from distortions.run import DistortionsConfig, run
from distortions.schema import INDEX_COLUMNS, INDEX_ID
from distortions.store import SEARCH_COLUMNS, SEARCH_ID
from plic.datasets import ImageRecord, resolve_data
from plic.fsio import sha256_file
from plic.image_io import read_image
from plic.tables import read_table, resolve_path

CROP = 96


@pytest.fixture(scope="module")
def records():
    return resolve_data("samples")[:2]


def _cfg(out, **kw):
    base = dict(out=str(out), codecs=("jpeg", "webp"), targets=(0.3, 0.6, 30.0, 40.0),
                crop=CROP, jobs=1, progress=False)
    base.update(kw)
    return DistortionsConfig(**base)


def _snapshot(folder: Path) -> dict:
    return {str(p): (p.stat().st_mtime_ns, p.stat().st_size)
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, records):
    out = tmp_path_factory.mktemp("dist")
    report = run(records, _cfg(out))
    return out, report


def test_index_schema_and_files(first_run, records):
    out, report = first_run
    assert not report.errors
    index = out / "index.csv"
    df = read_table(index, INDEX_COLUMNS, INDEX_ID)
    assert len(df) == report.new_rows > 0
    assert df["dist_id"].is_unique
    for r in df.to_dict("records"):
        img = resolve_path(r["path"], index)
        assert sha256_file(img) == r["sha256"]
        stream = resolve_path(r["bitstream_path"], index)
        nbytes = stream.stat().st_size
        assert float(r["bpp"]) == pytest.approx(8 * nbytes / (CROP * CROP))
        assert float(r["bpp"]) <= float(r["target_bpp"])
        ref = read_image(resolve_path(r["ref_path"], index))
        assert ref.shape == (CROP, CROP, 3) and int(r["width"]) == int(r["height"]) == CROP
        assert int(r["crop_size"]) == CROP and r["crop_x"] != "" and r["crop_y"] != ""
        assert 0 < float(r["ms_ssim"]) <= 1 and float(r["psnr"]) > 15
        assert r["codec"] in ("jpeg", "webp") and r["ref_id"] in {x.id for x in records}
    # the cropped reference is the centre of the source image
    r0 = df.iloc[0]
    src = read_image(next(x.path for x in records if x.id == r0["ref_id"]))
    x, y = int(r0["crop_x"]), int(r0["crop_y"])
    ref = read_image(resolve_path(r0["ref_path"], index))
    assert (ref == src[y:y + CROP, x:x + CROP]).all()
    meta = json.loads((out / "meta.json").read_text())
    assert {i["id"]: i["sha256"] for i in meta["inputs"]} == {r.id: r.sha256 for r in records}
    assert meta["config"]["crop"] == CROP and set(meta["codec_versions"]) == {"jpeg", "webp"}
    assert set(df["codec_version"]) == set(meta["codec_versions"].values())


def test_one_row_per_distinct_param(first_run):
    out, _ = first_run
    df = read_table(out / "index.csv", INDEX_COLUMNS, INDEX_ID)
    assert not df.duplicated(["ref_id", "codec", "param"]).any()
    # 30 and 40 bpp both land on the top quality: one row, kept under the first target
    top = df[df["target_bpp"].astype(float) >= 30]
    assert len(top) == len(df.drop_duplicates(["ref_id", "codec"]))
    assert set(top["target_bpp"].astype(float)) == {30.0}
    searches = read_table(out / "searches.csv", SEARCH_COLUMNS, SEARCH_ID)
    both = searches[searches["target_bpp"].astype(float) >= 30]
    assert (both.groupby(["ref_id", "codec"])["dist_id"].nunique() == 1).all()


def test_unreachable_targets_are_recorded_not_rowed(tmp_path, records):
    report = run(records[:1], _cfg(tmp_path, codecs=("jpeg",), targets=(0.02,)))
    assert report.unreachable == 1 and report.new_rows == 0 and not report.errors
    searches = read_table(tmp_path / "searches.csv", SEARCH_COLUMNS, SEARCH_ID)
    assert list(searches["status"]) == ["unreachable"]
    assert len(read_table(tmp_path / "index.csv", INDEX_COLUMNS, INDEX_ID)) == 0
    again = run(records[:1], _cfg(tmp_path, codecs=("jpeg",), targets=(0.02,)))
    assert again.encodes == 0  # unreachable is remembered


def test_second_run_writes_nothing(first_run, records):
    out, _ = first_run
    before = _snapshot(out)
    report = run(records, _cfg(out))
    assert report.new_rows == 0 and report.encodes == 0
    assert not report.wrote_index and not report.wrote_meta
    assert _snapshot(out) == before


def test_resume_redoes_only_damaged_rows(tmp_path, records):
    run(records[:1], _cfg(tmp_path, codecs=("jpeg",)))
    index = tmp_path / "index.csv"
    df = read_table(index, INDEX_COLUMNS, INDEX_ID)
    victim = df.iloc[0]
    resolve_path(victim["path"], index).write_bytes(b"corrupt")
    report = run(records[:1], _cfg(tmp_path, codecs=("jpeg",)))
    assert report.new_rows == 1 and report.reused_rows == len(df) - 1
    again = read_table(index, INDEX_COLUMNS, INDEX_ID)
    assert sorted(again["dist_id"]) == sorted(df["dist_id"])  # same ids: stable hashes
    assert sha256_file(resolve_path(victim["path"], index)) == victim["sha256"]


def test_new_codec_adds_rows_and_keeps_old(tmp_path, records):
    run(records[:1], _cfg(tmp_path, codecs=("jpeg",), targets=(1.5,)))
    report = run(records[:1], _cfg(tmp_path, codecs=("jpeg", "webp"), targets=(1.5,)))
    assert report.reused_rows == 1 and report.new_rows == 1
    df = read_table(tmp_path / "index.csv", INDEX_COLUMNS, INDEX_ID)
    assert sorted(df["codec"]) == ["jpeg", "webp"]


def test_unreadable_image_and_missing_ffmpeg_keep_the_rest(tmp_path, records):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png at all")
    recs = [records[0], ImageRecord("broken", bad, sha256_file(bad), 512, 768)]
    cfg = _cfg(tmp_path / "out", codecs=("jpeg", "hevc-bpgcfg"), targets=(1.5,),
               backend=BackendOptions(ffmpeg=str(tmp_path / "missing" / "ffmpeg")))
    report = run(recs, cfg)
    messages = " ".join(f"{w}: {m}" for w, m in report.errors)
    assert "broken.png" in messages and "cannot read" in messages
    assert "ffmpeg not found" in messages and "apt-get install ffmpeg" in messages
    df = read_table(tmp_path / "out" / "index.csv", INDEX_COLUMNS, INDEX_ID)
    assert list(df["codec"]) == ["jpeg"] and list(df["ref_id"]) == [records[0].id]


def test_failing_codec_keeps_other_codecs(tmp_path, records, monkeypatch):
    from distortions.backends import pillow_codecs

    def boom(self, image, param):
        raise RuntimeError("encoder crashed")

    monkeypatch.setattr(pillow_codecs.WebpBackend, "encode", boom)
    report = run(records[:1], _cfg(tmp_path, codecs=("webp", "jpeg"), targets=(1.5,)))
    assert len(report.errors) == 1 and "[webp]" in report.errors[0][0]
    assert "encoder crashed" in report.errors[0][1]
    df = read_table(tmp_path / "index.csv", INDEX_COLUMNS, INDEX_ID)
    assert list(df["codec"]) == ["jpeg"]
    monkeypatch.undo()
    fixed = run(records[:1], _cfg(tmp_path, codecs=("webp", "jpeg"), targets=(1.5,)))
    assert fixed.new_rows == 1 and not fixed.errors  # the failed codec is retried


def test_parallel_equals_serial(tmp_path, records, first_run):
    out, _ = first_run
    report = run(records, _cfg(tmp_path, jobs=2))
    assert not report.errors
    serial = read_table(out / "index.csv", INDEX_COLUMNS, INDEX_ID)
    parallel = read_table(tmp_path / "index.csv", INDEX_COLUMNS, INDEX_ID)
    assert serial.equals(parallel)


def test_cli(tmp_path, capsys):
    out = tmp_path / "cli"
    argv = ["--data", "samples", "--crop", "64", "--codecs", "jpeg", "--targets", "1.0,2.0",
            "--out", str(out), "--jobs", "1", "--no-progress"]
    assert main(argv) == 0
    df = read_table(out / "index.csv", INDEX_COLUMNS, INDEX_ID)
    assert len(df) >= 5 and set(df["crop_size"]) == {"64"}
    mtime = os.stat(out / "index.csv").st_mtime_ns
    assert main(argv) == 0
    assert "index unchanged" in capsys.readouterr().out
    assert os.stat(out / "index.csv").st_mtime_ns == mtime
    with pytest.raises(SystemExit):
        main(["--codecs", "nope"])
    assert main(["--data", "no-such-set", "--out", str(out)]) == 2
