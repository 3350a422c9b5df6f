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


# -- every schema of CONTRACTS.md: the document, the code's list and what the producer writes ---

from mturk.schema import MOS_COLUMNS, PREDICTIONS_COLUMNS  # noqa: E402
from plic.datasets import MANIFEST_COLUMNS  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DOCUMENTED = {  # heading in CONTRACTS.md -> the producer's column list
    "runs/distortions/index.csv": INDEX_COLUMNS,
    "runs/study/trials.csv": TRIALS_COLUMNS,
    "runs/study/labels.csv": LABELS_COLUMNS,
    "runs/study/predictions.csv": PREDICTIONS_COLUMNS,
    "runs/study/mos.csv": MOS_COLUMNS,
}


def header(path: Path) -> list[str]:
    return path.read_text().splitlines()[0].split(",")


def test_every_documented_table_is_checked():
    assert sorted(re.findall(r"^### `([^`]+)`", DOC, flags=re.M)) == sorted(DOCUMENTED)


@pytest.mark.parametrize("heading", sorted(DOCUMENTED))
def test_every_code_schema_matches_the_document(heading):
    assert doc_columns(heading) == DOCUMENTED[heading]


def test_manifests_match_the_document():
    section = DOC.split("## Image manifests", 1)[1].split("\n## ", 1)[0]
    cols = re.search(r"Columns: `([^`]+)`", section).group(1)
    assert [c.strip() for c in cols.split(",")] == MANIFEST_COLUMNS
    manifests = sorted((REPO / "data_manifests").glob("*.csv"))
    assert manifests
    for m in manifests:
        assert header(m) == MANIFEST_COLUMNS, m.name


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """The producers themselves, at toy size: distortions -> trials (2AFC and ACR) -> a
    SIMULATED lab study of each -> labels.csv and mos.csv -> a metric fitted on the labels ->
    predictions.csv. Returns {heading: the file its producer wrote}."""
    from distortions.run import DistortionsConfig, run
    from mturk.analysis.aggregate import aggregate
    from mturk.analysis.mos import aggregate_ratings
    from mturk.analysis.worker_quality import QualityRule
    from mturk.design.trials import TrialsConfig, build
    from mturk.sim.simulated_study import simulated_study
    from perceptual_metric.fit import FitConfig, fit
    from perceptual_metric.predict import main as predict_main
    from perceptual_metric.trunks import WeightsError
    from plic.datasets import resolve_data

    d = tmp_path_factory.mktemp("contracts")
    report = run(resolve_data("samples")[:2],
                 DistortionsConfig(out=str(d / "dist"), codecs=("jpeg", "webp"),
                                   targets=(3.0, 6.0), crop=64, jobs=1, progress=False))
    assert not report.errors
    index = d / "dist" / "index.csv"
    files = {"runs/distortions/index.csv": index}
    trials, _ = build(index, d / "study", TrialsConfig(batch_size=6, repeats=0, crop=32))
    files["runs/study/trials.csv"] = trials
    db, _ = simulated_study(trials, d / "study", workers=3, failed="2afc", oracle="psnr")
    # a toy study has too few sentinels for the default worker rule
    aggregate(db.path, trials, d / "study", rule=QualityRule(min_sentinels=0),
              write_scores=False)
    files["runs/study/labels.csv"] = d / "study" / "labels.csv"
    rated, _ = build(index, d / "acr", TrialsConfig(batch_size=6, design="acr", crop=32))
    db, _ = simulated_study(rated, d / "acr", workers=4, failed="acr", oracle="psnr")
    aggregate_ratings(db.path, rated, d / "acr")
    files["runs/study/mos.csv"] = d / "acr" / "mos.csv"
    try:
        fit(FitConfig(labels=str(d / "study" / "labels.csv"), out=str(d / "metric.pt"),
                      patch=32, steps=5, views=1, val_fraction=0.0), log=lambda *_: None)
    except WeightsError as e:
        pytest.skip(f"no ImageNet AlexNet weights here: {e}")
    pred = d / "study" / "predictions.csv"
    assert predict_main(["--metric", str(d / "metric.pt"), "--trials", str(trials),
                         "--out", str(pred)]) == 0
    files["runs/study/predictions.csv"] = pred
    return files


@pytest.mark.parametrize("heading", sorted(DOCUMENTED))
def test_each_producer_writes_exactly_the_documented_columns(pipeline, heading):
    path = pipeline[heading]
    assert header(path) == doc_columns(heading) == DOCUMENTED[heading]
    df = read_table(path, DOCUMENTED[heading])
    assert len(df) > 0
