"""Each contract's schema: the code's column lists match docs/CONTRACTS.md, tables and
checkpoints round-trip, and broken files are refused."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from distortions.schema import INDEX_COLUMNS
from mturk.schema import LABELS_COLUMNS, TRIALS_COLUMNS
from plic import checkpoint as ck
from plic.tables import SchemaError, read_table, rel_path, resolve_path, write_table

DOC = (Path(__file__).resolve().parents[1] / "docs" / "CONTRACTS.md").read_text()


def doc_columns(heading: str) -> list[str]:
    """The backticked column list under the table's heading in CONTRACTS.md."""
    section = DOC.split(f"### `{heading}`", 1)[1]
    block = re.search(r"\n\n`([^`]+)`", section).group(1)
    return [c.strip() for c in block.replace("\n", " ").split(",")]


@pytest.mark.parametrize("heading,columns", [
    ("runs/distortions/index.csv", INDEX_COLUMNS),
    ("runs/study/trials.csv", TRIALS_COLUMNS),
    ("runs/study/labels.csv", LABELS_COLUMNS),
])
def test_code_schemas_match_the_document(heading, columns):
    assert doc_columns(heading) == columns


def test_table_round_trip_and_refusals(tmp_path):
    cols = ["id", "path", "x"]
    p = tmp_path / "t" / "table.csv"
    img = tmp_path / "t" / "imgs" / "a.png"
    write_table(p, [{"id": "r1", "path": rel_path(img, p), "x": 0.1},
                    {"id": "r2", "path": "imgs/b.png", "x": None}], cols, id_column="id")
    df = read_table(p, cols, id_column="id")
    assert df["path"].tolist() == ["imgs/a.png", "imgs/b.png"]
    assert float(df.loc[0, "x"]) == 0.1 and df.loc[1, "x"] == ""
    assert resolve_path(df.loc[0, "path"], p) == img.resolve()
    with pytest.raises(SchemaError, match="missing"):
        write_table(p, [{"id": "r1", "path": "x"}], cols)
    with pytest.raises(SchemaError, match="duplicate"):
        write_table(p, [{"id": "r", "path": "", "x": 1}] * 2, cols, id_column="id")
    with pytest.raises(SchemaError, match="contract"):
        read_table(p, ["id", "path"])


def test_checkpoint_round_trip(tmp_path):
    model = torch.nn.Linear(3, 2)
    path = ck.save_checkpoint(tmp_path / "m.pt", "codec", "toy", {"width": 3, "n": [1, 2]},
                              model.state_dict(), {"data_sha256": "ab"})
    # the contract: a plain dict loadable with weights_only=True
    raw = torch.load(path, weights_only=True)
    assert set(ck.REQUIRED_KEYS) <= set(raw)
    got = ck.load_checkpoint(path, kind="codec")
    assert got["model"] == "toy" and got["config"] == {"width": 3, "n": [1, 2]}
    assert got["provenance"]["data_sha256"] == "ab" and "torch" in got["provenance"]
    fresh = torch.nn.Linear(3, 2)
    fresh.load_state_dict(got["state_dict"], strict=True)
    assert torch.equal(fresh.weight, model.weight)


def test_checkpoint_refusals(tmp_path):
    with pytest.raises(ck.CheckpointError, match="not a plain value"):
        ck.save_checkpoint(tmp_path / "x.pt", "codec", "m", {"f": object()}, {})
    p = ck.save_checkpoint(tmp_path / "m.pt", "metric", "m", {}, {})
    with pytest.raises(ck.CheckpointError, match="expected 'codec'"):
        ck.load_checkpoint(p, kind="codec")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ck.CheckpointError, match="not a loadable"):
        ck.load_checkpoint(tmp_path / "junk.pt")
    torch.save({"hello": 1}, tmp_path / "other.pt")
    with pytest.raises(ck.CheckpointError, match="not a plic-checkpoint"):
        ck.load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(ck.CheckpointError, match="not found"):
        ck.load_checkpoint(tmp_path / "absent.pt")


def test_training_state_is_separate(tmp_path):
    opt = torch.optim.Adam(torch.nn.Linear(2, 2).parameters())
    p = ck.save_training_state(tmp_path / "state.pt", {"step": 3, "opt": opt.state_dict()})
    assert ck.load_training_state(p)["step"] == 3
