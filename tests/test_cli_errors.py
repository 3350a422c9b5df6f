"""The one error path of every command (``plic.cli``): a bad option and a missing input file
each give exit status 2, exactly one non-empty line on stderr, no traceback, and no new file
in the working folder (nor under ``$PLIC_RUNS``, which points into it here).

Every console script of pyproject.toml's [project.scripts] is here, and every other
``python -m`` command except the benchmarks. Each runs in-process through ``main(argv)``; a
few run as real processes too.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

SCRIPTS = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]

# module -> argv naming an input file (or folder) that does not exist; None: no input to miss
MISSING = {
    # the console scripts
    "plic.datasets": ["verify", "nosuch.csv"],
    "distortions.__main__": ["--data", "nosuch.csv", "--out", "dist"],
    "mturk.trials": ["--index", "nosuch.csv", "--out", "study"],
    "mturk.serve": ["--trials", "nosuch.csv", "--db", "judgments.sqlite"],
    "mturk.sim.crowd": ["--trials", "nosuch.csv", "--url", "http://127.0.0.1:9"],
    "mturk.publish": ["--db", "nosuch.sqlite", "--dry-run"],
    "mturk.market.collect": ["--db", "nosuch.sqlite", "--backend", "memory"],
    "mturk.market.manage": ["status", "--db", "nosuch.sqlite"],
    "mturk.aggregate": ["--db", "nosuch.sqlite", "--trials", "nosuch.csv", "--out", "o"],
    "mturk.mos": ["--db", "nosuch.sqlite", "--trials", "nosuch.csv", "--out", "o"],
    "mturk.dashboard.main": ["--db", "nosuch.sqlite", "--secret-file", "nosuch.txt"],
    "perceptual_metric.fit": ["--labels", "nosuch.csv", "--out", "metric.pt"],
    "perceptual_metric.predict": ["--metric", "nosuch.pt", "--trials", "nosuch.csv", "--out",
                                  "p.csv"],
    "codec.train.cli": ["--lpips", "nosuch.pt", "--out", "train"],
    "codec.train.ship": ["nosuch-run", "shipped.pt"],
    "codec.evaluate.cli": ["--model", "nosuch.pt", "--classic", "none", "--out", "eval"],
    "codec.compress": ["nosuch.png", "x.plic", "--model", "nosuch.pt"],
    "codec.decompress": ["nosuch.plic", "x.png"],
    # the other python -m commands
    "codec.untrained": None,
    "codec.evaluate.gap": ["nosuch-eval", "--out", "gap"],
    "codec.postdecode.figure": ["nosuch.png", "--model", "nosuch.pt", "--out", "f.png"],
    "codec.train.cpu_hours": ["nosuch.json", "--hevc", "nosuch.csv", "--out", "hours"],
    "codec.train.rd": ["nosuch.pt", "--data", "nosuch.csv", "--out", "rd"],
    "codec.train.postdecode.__main__": ["--lpips", "nosuch.pt", "--out", "pd"],
    "codec.train.postdecode.pairs": ["--data", "nosuch.csv", "--cache", "pairs"],
    "codec.train.postdecode.ship": ["nosuch-run", "shipped.pt"],
    "codec.train.probe": None,  # its inputs are built-in models: nothing to miss cheaply
    "perceptual_metric.__main__": ["predict", "--metric", "nosuch.pt", "--trials",
                                   "nosuch.csv", "--out", "p.csv"],
    "perceptual_metric.evaluate": ["--labels", "nosuch.csv", "--out", "scores"],
    "perceptual_metric.simulate": ["--data", "nosuch.csv", "--out", "sim"],
    "perceptual_metric.server_rounds": ["--index", "nosuch.csv", "--study", "study"],
    "perceptual_metric.active_savings": ["--trials", "nosuch.csv", "--out", "savings"],
    "mturk.sim.rating_report": ["--index", "nosuch.csv", "--out", "report"],
    "mturk.sim.twoafc_report": ["--index", "nosuch.csv", "--out", "report"],
    "mturk.store.copy": ["--from", "nosuch.sqlite", "--to", "copy.sqlite"],
    "mturk.active.study_rounds": ["--study", "nosuch-study"],
    "codec.evaluate.twins": ["nosuch-eval", "--pair", "a=b"],
}
PACKAGES = ("plic", "codec", "distortions", "mturk", "perceptual_metric")


def test_every_console_script_is_covered():
    modules = {target.partition(":")[0] for target in SCRIPTS.values()}
    assert modules <= set(MISSING), modules - set(MISSING)


def test_every_command_goes_through_plic_cli_and_is_covered():
    """Each module of the packages that defines a command's ``main`` (benchmarks live in
    benchmarks/) is decorated by plic.cli.command and is tested here, itself or through the
    thin entry point that runs the same ``main``."""
    covered = {id(importlib.import_module(m).main) for m in MISSING}
    found = []
    for pkg in PACKAGES:
        for path in sorted((REPO / pkg).rglob("*.py")):
            if "\ndef main(" not in path.read_text():
                continue
            module = ".".join(path.relative_to(REPO).with_suffix("").parts)
            found.append(module)
            main = importlib.import_module(module).main
            assert getattr(main, "prog", "").startswith("python -m "), module
            assert id(main) in covered, f"{module}: add it to MISSING"
    assert len(found) > 30, found


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """An empty working folder that also holds $PLIC_RUNS (so leftovers show up in it)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PLIC_RUNS", str(tmp_path / "runs"))
    monkeypatch.delenv("PLIC_DASHBOARD_SECRET", raising=False)
    return tmp_path


def _run(module: str, argv: list[str], capsys) -> tuple[int, str]:
    main = importlib.import_module(module).main
    try:
        rc = main(argv)
    except SystemExit as e:  # a usage error (argparse), as from the shell
        rc = e.code
    return rc, capsys.readouterr().err


def _one_line_and_nothing_left(rc, err: str, workdir: Path) -> None:
    assert rc == 2, (rc, err)
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].strip() and err.endswith("\n"), err
    assert ": error: " in lines[0], err
    left = sorted(str(p.relative_to(workdir)) for p in workdir.rglob("*"))
    assert left == [], left


@pytest.mark.parametrize("module", sorted(MISSING))
def test_bad_option(module, workdir, capsys):
    rc, err = _run(module, ["--no-such-option"], capsys)
    _one_line_and_nothing_left(rc, err, workdir)
    assert err.endswith("(see --help)\n"), err  # plic.cli.Parser's usage error


@pytest.mark.parametrize("module", sorted(m for m, argv in MISSING.items() if argv))
def test_missing_input(module, workdir, capsys):
    rc, err = _run(module, MISSING[module], capsys)
    _one_line_and_nothing_left(rc, err, workdir)
    assert "nosuch" in err


@pytest.mark.parametrize("argv", [
    ["-m", "codec.compress", "nosuch.png", "x.plic", "--model", "nosuch.pt"],
    ["-m", "mturk.trials", "--no-such-option"],
])
def test_as_a_process(argv, workdir):
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "PLIC_RUNS": str(workdir / "runs")}
    r = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=300,
                       cwd=workdir, env=env)
    _one_line_and_nothing_left(r.returncode, r.stderr, workdir)


def test_a_dispatcher_without_its_command(workdir, capsys):
    rc, err = _run("perceptual_metric.__main__", [], capsys)
    _one_line_and_nothing_left(rc, err, workdir)


def test_ctrl_c_is_one_line_and_130(capsys):
    from plic.cli import command

    @command("python -m plic.example")
    def main(argv=None):
        raise KeyboardInterrupt

    assert main([]) == 130
    assert capsys.readouterr().err == "plic.example: interrupted\n"


def test_a_file_error_names_the_file(capsys):
    from plic.cli import command

    @command("python -m plic.example")
    def main(argv=None):
        open("/nonexistent-dir/x.txt")

    assert main([]) == 2
    assert capsys.readouterr().err == ("plic.example: error: /nonexistent-dir/x.txt: "
                                       "No such file or directory\n")


def test_a_bug_keeps_its_traceback():
    from plic.cli import command

    @command("python -m plic.example")
    def main(argv=None):
        raise KeyError("a bug, not a bad input")

    with pytest.raises(KeyError):
        main([])


def test_plic_traceback_shows_the_traceback(monkeypatch):
    from plic.cli import CliError, command

    @command("python -m plic.example")
    def main(argv=None):
        raise CliError("bad input")

    monkeypatch.setenv("PLIC_TRACEBACK", "1")
    with pytest.raises(CliError, match="bad input"):
        main([])
