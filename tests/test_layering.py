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


def in_package(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


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


def import_graph(files) -> dict[str, set[str]]:
    """Module -> the project's modules it imports (function-level imports included); an import
    of a name that is not a module (``from m import f``) counts as an import of ``m``."""
    mods = {module_name(f) for f in files}
    graph = {}
    for f in files:
        mine = module_name(f)
        deps = set()
        for imp in imports_of(f):
            while imp and imp not in mods:
                imp = imp.rpartition(".")[0]
            if imp and imp != mine and not in_package(mine, imp):  # a package's own __init__
                deps.add(imp)
        graph[mine] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(max(10000, sys.getrecursionlimit()))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_circles():
    assert cycles(import_graph(project_files())) == []


def test_the_circle_finder_finds_a_circle():
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(g) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
