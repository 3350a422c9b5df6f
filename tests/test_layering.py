"""The house rule: imports follow the data flow (docs/CONTRACTS.md)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("codec", "distortions", "mturk", "perceptual_metric")
TOP_PREFIXES = ("codec.train", "codec.evaluate", "codec.demo")


def layer(module: str) -> int | None:
    """0 codec core, 1 distortions, 2 mturk, 3 perceptual_metric, 4 top; None: not ours."""
    root = module.split(".")[0]
    if root == "codec":
        return 4 if module.startswith(TOP_PREFIXES) else 0
    return {"distortions": 1, "mturk": 2, "perceptual_metric": 3}.get(root)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> list[str]:
    mod = module_name(path)
    is_pkg = path.name == "__init__.py"
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = mod.split(".")
                base = base if is_pkg else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.append(target)
            # `from codec import train` imports the module codec.train
            out += [f"{target}.{a.name}" for a in node.names if a.name != "*"]
    return out


def violations(files) -> list[str]:
    bad = []
    for f in files:
        mod = module_name(f)
        mine = layer(mod)
        for imp in imports_of(f):
            theirs = layer(imp)
            if theirs is None or mine is None:
                continue
            # a package __init__ re-exporting from deeper in itself is fine only downward
            if theirs > mine:
                bad.append(f"{mod} (layer {mine}) imports {imp} (layer {theirs})")
    return bad


def project_files():
    return [p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py")]


def test_imports_follow_the_data_flow():
    files = project_files()
    assert files, "no modules found"
    assert violations(files) == []


def test_the_checker_catches_a_violation(tmp_path, monkeypatch):
    # A core module importing the metric, written under a fake repo: must be reported.
    fake = tmp_path / "codec"
    fake.mkdir()
    (fake / "bad.py").write_text("def f():\n    from perceptual_metric import fit\n")
    (fake / "rel.py").write_text("from .train import loop\n")
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    found = violations([fake / "bad.py", fake / "rel.py"])
    assert any("perceptual_metric" in v for v in found)
    assert any("codec.train" in v for v in found)


def test_layers_of_known_modules():
    assert layer("codec.quality") == 0
    assert layer("codec.train") == 4 and layer("codec.evaluate.report") == 4
    assert layer("distortions.backends") == 1
    assert layer("mturk.db") == 2 and layer("perceptual_metric.fit") == 3
    assert layer("torch") is None
