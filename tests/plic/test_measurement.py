"""One definition of what every benchmark records (plic.measurement: the host fields, the report
files) and of its sample image (benchmarks.sample_image)."""

from __future__ import annotations

import json

import pytest

from benchmarks import sample_image
from plic import measurement


def test_image_meta_carries_the_image_and_the_host():
    image = sample_image.pick_image("kodim03")
    meta = sample_image.image_meta("kodim03", image, 3)
    assert list(meta) == ["image", "size", "repeat", "threads", "loadavg", "machine", "torch"]
    assert meta["size"] == f"{image.shape[1]}x{image.shape[0]}" and meta["repeat"] == 3
    assert set(measurement.versions()) == {"python", "torch", "machine", "cpu_count"}
    assert len(measurement.load_averages()) == 3


def test_an_unknown_image_names_the_ones_there_are():
    with pytest.raises(sample_image.NoSuchImage, match="kodim03"):
        sample_image.pick_image("kodim99")


def test_report_files_hold_the_data_and_the_markdown(tmp_path, capsys):
    measurement.write_report(tmp_path / "b", "x", {"a": [1, 2]}, "# x\n", json_end="\n")
    assert json.loads((tmp_path / "b" / "x.json").read_text()) == {"a": [1, 2]}
    assert (tmp_path / "b" / "x.json").read_text().endswith("]\n}\n")
    assert (tmp_path / "b" / "x.md").read_text() == "# x\n" == capsys.readouterr().out[:4]
