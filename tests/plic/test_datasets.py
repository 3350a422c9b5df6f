"""Manifests: good, missing and corrupted files, and the --data forms."""

from __future__ import annotations

import argparse
import shutil

import numpy as np
import pytest
from PIL import Image

from plic import datasets
from plic.datasets import MANIFEST_COLUMNS, DataError, resolve_data
from plic.tables import SchemaError, read_table, write_table


def test_samples_ship_with_the_repo_and_verify():
    recs = resolve_data("samples")
    assert len(recs) >= 4
    assert all(r.path.is_file() and r.path.is_relative_to(datasets.MANIFEST_DIR) for r in recs)
    total = sum(r.path.stat().st_size for r in recs)
    assert total < 4.5e6
    ids = [r.id for r in recs]
    assert len(set(ids)) == len(ids)
    with Image.open(recs[0].path) as im:
        assert im.size == (recs[0].width, recs[0].height)


@pytest.mark.parametrize("name,count", [("kodak", 24), ("bsds500", 500)])
def test_mirror_manifests_verify(shared_dir, name, count):
    recs = resolve_data(name, shared_dir / "data")
    assert len(recs) == count


def test_bsds_splits(shared_dir):
    sizes = {s: len(resolve_data("bsds500", shared_dir / "data", split=s))
             for s in ("train", "val", "test")}
    assert sizes == {"train": 200, "val": 100, "test": 200}


def _copy_manifest(tmp_path, n=2):
    """A manifest of n sample images whose files live under tmp_path/root."""
    recs = resolve_data("samples")[:n]
    root = tmp_path / "root"
    (root / "imgs").mkdir(parents=True)
    rows = []
    for r in recs:
        shutil.copy(r.path, root / "imgs" / r.path.name)
        rows.append({"id": r.id, "path": f"imgs/{r.path.name}", "sha256": r.sha256,
                     "width": r.width, "height": r.height, "split": "s", "license": "",
                     "source_url": ""})
    man = tmp_path / "m" / "set.csv"
    write_table(man, rows, MANIFEST_COLUMNS, id_column="id")
    return man, root, recs


def test_manifest_resolves_against_data_root(tmp_path, monkeypatch):
    man, root, recs = _copy_manifest(tmp_path)
    got = resolve_data(str(man), root)
    assert [r.id for r in got] == [r.id for r in recs]
    monkeypatch.setenv("PLIC_DATA_ROOT", str(root))
    assert [r.path for r in resolve_data(str(man))] == [r.path for r in got]


def test_missing_file_is_a_clear_error(tmp_path):
    man, root, recs = _copy_manifest(tmp_path)
    (root / "imgs" / recs[1].path.name).unlink()
    with pytest.raises(DataError) as e:
        resolve_data(str(man), root)
    msg = str(e.value)
    assert "missing" in msg and recs[1].path.name in msg and "--data-root" in msg
    assert "fetch" in msg


def test_corrupted_file_is_a_clear_error(tmp_path):
    man, root, recs = _copy_manifest(tmp_path)
    p = root / "imgs" / recs[0].path.name
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF
    p.write_bytes(bytes(data))
    with pytest.raises(DataError, match="altered.*" + recs[0].path.name):
        resolve_data(str(man), root)


def test_bad_manifest_schema(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("id,path\nx,y\n")
    with pytest.raises(SchemaError, match="contract"):
        resolve_data(str(bad))


def test_unknown_data_value():
    with pytest.raises(DataError, match="not a manifest name"):
        resolve_data("no-such-set")


def test_folder_of_images(tmp_path):
    for i in range(3):
        Image.fromarray(np.full((20, 30, 3), i * 40, np.uint8)).save(tmp_path / f"im{i}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    recs = resolve_data(str(tmp_path))
    assert [r.id for r in recs] == ["im0", "im1", "im2"]
    assert (recs[0].width, recs[0].height) == (30, 20)


def test_empty_folder(tmp_path):
    with pytest.raises(DataError, match="no images"):
        resolve_data(str(tmp_path))


def test_split_filter(tmp_path):
    man, root, _ = _copy_manifest(tmp_path)
    with pytest.raises(DataError, match="no images in split"):
        resolve_data(str(man), root, split="train")


def test_data_args():
    ap = argparse.ArgumentParser()
    datasets.add_data_args(ap)
    args = ap.parse_args([])
    assert args.data == "samples" and args.data_root is None
    assert len(datasets.records_from_args(args)) >= 4


def test_cli_verify_and_list(capsys):
    assert datasets.main(["verify", "samples"]) == 0
    assert "verified" in capsys.readouterr().out
    assert datasets.main(["list"]) == 0
    assert "samples" in capsys.readouterr().out
    assert datasets.main(["verify", "nope"]) == 2


def test_make_manifest_round_trip(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "a.png")
    out = tmp_path / "a.csv"
    datasets.make_manifest(folder, out, prefix="x-", split="train",
                           url_template="http://example.org/{name}")
    df = read_table(out, MANIFEST_COLUMNS, id_column="id")
    assert df.loc[0, "id"] == "x-a" and df.loc[0, "path"] == "imgs/a.png"
    assert df.loc[0, "source_url"] == "http://example.org/a.png"
    assert len(resolve_data(str(out))) == 1


def test_crop_set_is_a_verified_set_of_centre_crops(tmp_path, sample_images):
    from plic.image_io import read_image

    recs = resolve_data("samples")[:2]
    small = tmp_path / "small"
    small.mkdir()
    Image.fromarray(np.full((40, 90, 3), 7, np.uint8)).save(small / "tiny.png")
    manifest = datasets.crop_set(recs + resolve_data(str(small)), 128, tmp_path / "crops", "c")
    got = resolve_data(str(manifest))  # every file checked against the manifest's sha256
    assert [r.id for r in got] == [recs[0].id, recs[1].id, "tiny"]
    full = sample_images[recs[0].id]
    h, w = full.shape[:2]
    y, x = (h - 128) // 2, (w - 128) // 2
    assert np.array_equal(read_image(got[0].path), full[y : y + 128, x : x + 128])
    assert (got[2].width, got[2].height) == (90, 40)  # smaller than the crop: kept whole
    before = [p.stat().st_mtime_ns for p in sorted((tmp_path / "crops").glob("*.png"))]
    datasets.crop_set(recs + resolve_data(str(small)), 128, tmp_path / "crops", "c")
    assert [p.stat().st_mtime_ns for p in sorted((tmp_path / "crops").glob("*.png"))] == before
    assert datasets.main(["crop", "samples", "--size", "0", "--out", str(tmp_path / "z")]) == 2
