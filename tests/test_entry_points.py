"""Every console script of pyproject.toml's [project.scripts] resolves to a callable ``main``
of its module that answers --help (exit 0), and its module still runs as ``python -m``."""

from __future__ import annotations

import importlib
import inspect
import shutil
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


def test_the_users_commands_are_declared():
    assert {"plic-distortions", "plic-trials", "plic-serve", "plic-publish", "plic-aggregate",
            "plic-mos", "plic-fit", "plic-train", "plic-evaluate", "plic-compress",
            "plic-decompress", "plic-dashboard", "plic-datasets"} <= set(SCRIPTS)
    assert all(name.startswith("plic-") for name in SCRIPTS)


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_entry_point_resolves_to_a_callable_main(name, capsys):
    module, _, attr = SCRIPTS[name].partition(":")
    assert attr == "main", SCRIPTS[name]
    fn = getattr(importlib.import_module(module), attr)
    assert callable(fn) and fn.__name__ == "main"
    params = list(inspect.signature(fn).parameters.values())
    assert params and params[0].default is None  # main(argv=None): tests pass argv
    with pytest.raises(SystemExit) as e:
        fn(["--help"])
    assert e.value.code in (0, None)
    assert "usage" in capsys.readouterr().out.lower()


def test_installed_scripts_run(tmp_path):
    """The installed wrapper (pip install -e .) when this environment has it."""
    exe = Path(sys.executable).parent / "plic-compress"
    if not exe.exists() and shutil.which("plic-compress") is None:
        pytest.skip("console scripts not installed here (pip install -e .)")
    exe = exe if exe.exists() else Path(shutil.which("plic-compress"))
    r = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=120,
                       cwd=tmp_path)
    assert r.returncode == 0 and "usage" in r.stdout.lower()
    r = subprocess.run([sys.executable, "-m", "codec.compress", "--help"], capture_output=True,
                       text=True, timeout=120, cwd=REPO)
    assert r.returncode == 0 and "usage" in r.stdout.lower()
