"""The house rule: imports follow the data flow (docs/CONTRACTS.md)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Lowest first; a module's layer is that of the most specific package (or module) it is in.
LAYERS = (
    ("plic",),                                   # 0 ground: paths, tables, image I/O, quality...
    ("codec",),                                  # 1 the codec engine (models, coding, streams)
    ("distortions",),                            # 2
    ("mturk",),                                  # 3
    ("perceptual_metric",),                      # 4
    ("codec.train", "codec.evaluate"),           # 5 top: the user's training and evaluation
    ("benchmarks",),                             # 6 roof: every benchmark; nothing imports it
)
PACKAGES = ("plic", "codec", "distortions", "mturk", "perceptual_metric", "benchmarks")
# Inside a layer, its parts in the same order, lowest first (docs/ARCHITECTURE.md draws them): a
# part imports only parts below it. Every subpackage and module of the package must be listed.
SUBLAYERS = {
    "mturk": (
        ("mturk.schema", "mturk.tokens"),   # the contracts: tables' columns, keyed page names
        ("mturk.active",),                  # which pairs to ask next (acquisition, rounds)
        ("mturk.design",),                  # the designs' trials: 2AFC, ratings (ACR/DSIS)
        ("mturk.store",),                   # StudyDB: the judgments database and migrations
        ("mturk.analysis",),                # labels, MOS, worker quality, screening, SUREAL
        ("mturk.web",),                     # the study server: Flask app, blueprints, pages
        ("mturk.market",),                  # MTurk: backends, publish, collect, manage, cost
        ("mturk.sim",),                     # simulated crowds and their reports
        ("mturk.dashboard",),               # the requester's dashboard (its own Flask app)
        ("mturk.trials", "mturk.serve", "mturk.publish", "mturk.aggregate", "mturk.mos"),
                                            # the README's commands (thin entry points)
    ),
}


def in_package(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _most_specific(module: str, groups) -> int | None:
    found, depth = None, -1
    for i, packages in enumerate(groups):
        for p in packages:
            # the most specific entry wins: codec.train is top, not engine
            if in_package(module, p) and p.count(".") > depth:
                found, depth = i, p.count(".")
    return found


def layer(module: str) -> float | None:
    """The layer of ``module`` (0 ground ... 5 top, 6 the benchmarks; a part of a layer with
    ``SUBLAYERS`` gets ``layer + (its part's index + 1) / 100``: mturk.web is 3.06); None: not
    the project's."""
    found = _most_specific(module, LAYERS)
    if found is None:
        return None
    pkg = next((p for p in LAYERS[found] if in_package(module, p)), None)
    if pkg in SUBLAYERS and module != pkg:
        part = _most_specific(module, SUBLAYERS[pkg])
        if part is not None:
            return found + (part + 1) / 100
    return found


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
    ground = tmp_path / "plic"
    ground.mkdir()
    (ground / "up.py").write_text("from codec import api\n")
    assert violations([ground / "up.py"]) == ["plic.up (layer 0) imports codec (layer 1)",
                                              "plic.up (layer 0) imports codec.api (layer 1)"]


def test_layers_of_known_modules():
    assert layer("plic") == 0 and layer("plic.quality") == 0
    assert layer("codec.api") == 1 and layer("codec.context.step") == 1
    assert layer("codec.train") == 5 and layer("codec.evaluate.report") == 5
    assert layer("codec.trainer") == 1  # packages, not prefixes
    assert layer("benchmarks.train_speed") == 6 and layer("benchmarks") == 6
    assert layer("distortions.backends") == 2
    assert layer("mturk") == 3 and layer("perceptual_metric.fit") == 4
    assert layer("mturk.schema") == 3.01 and layer("mturk.tokens") == 3.01
    assert layer("mturk.active.acquire") < layer("mturk.design.trials") < layer("mturk.store")
    assert layer("mturk.store.study_db") < layer("mturk.analysis.aggregate") \
        < layer("mturk.web.app")
    assert layer("mturk.web.app") < layer("mturk.market.publish") < layer("mturk.sim.crowd")
    assert layer("mturk.sim.crowd") < layer("mturk.dashboard.app") < layer("mturk.trials") \
        < layer("perceptual_metric")
    assert layer("mturk.trialsx") is None or layer("mturk.trialsx") == 3   # packages, not prefixes
    assert layer("plicx") is None and layer("torch") is None


def test_every_part_of_a_layered_package_has_its_place():
    """A new subpackage or module of mturk must be placed in SUBLAYERS (and so in the order that
    docs/ARCHITECTURE.md draws), or this fails: nothing escapes the check by being unlisted."""
    arch = (REPO / "docs" / "ARCHITECTURE.md").read_text()
    for pkg, parts in SUBLAYERS.items():
        root = REPO / pkg
        children = sorted(f"{pkg}.{p.stem}" for p in root.glob("*.py") if p.stem != "__init__")
        children += sorted(f"{pkg}.{d.name}" for d in root.iterdir()
                           if d.is_dir() and (d / "__init__.py").is_file())
        listed = {m for group in parts for m in group}
        assert [c for c in children if c not in listed] == []
        assert sorted(listed - set(children)) == []       # nothing listed that is gone
        subpackages = [m for group in parts for m in group if (REPO / m.replace(".", "/")).is_dir()]
        at = [arch.find(f"`{m}`") for m in subpackages]
        assert -1 not in at, [m for m, i in zip(subpackages, at) if i == -1]
        assert at == sorted(at), "docs/ARCHITECTURE.md draws the subpackages in SUBLAYERS' order"


def test_nothing_imports_the_benchmarks(tmp_path, monkeypatch):
    """``benchmarks`` is the roof: a library module (even the top, codec.train) importing a
    benchmark is reported."""
    top = tmp_path / "codec" / "train"
    top.mkdir(parents=True)
    (top / "bad.py").write_text("def f():\n    from benchmarks.codec_decode import main\n")
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    assert violations([top / "bad.py"]) == [
        "codec.train.bad (layer 5) imports benchmarks.codec_decode (layer 6)",
        "codec.train.bad (layer 5) imports benchmarks.codec_decode.main (layer 6)"]


def test_benchmarks_live_in_benchmarks():
    """Every benchmark is a module of the top-level ``benchmarks`` package (README: ``make bench``),
    none is inside a library package: no ``bench*.py`` or ``*_bench.py`` there, and each module
    that ``scripts/bench.sh`` runs exists."""
    strays = [str(p.relative_to(REPO)) for pkg in PACKAGES if pkg != "benchmarks"
              for p in (REPO / pkg).rglob("*.py")
              if p.stem.startswith("bench") or p.stem.endswith("_bench")]
    assert strays == []
    script = (REPO / "scripts" / "bench.sh").read_text()
    loop = script.split("for mod in ", 1)[1].split("; do", 1)[0]
    listed = loop.replace("\\", " ").split()
    assert listed, "scripts/bench.sh names no benchmark"
    assert [m for m in listed if not (REPO / (m.replace(".", "/") + ".py")).is_file()] == []


def test_the_checker_catches_an_upward_import_inside_a_package(tmp_path, monkeypatch):
    store = tmp_path / "mturk" / "store"
    store.mkdir(parents=True)
    (store / "bad.py").write_text("from ..web.app import create_app\n")
    (store / "ok.py").write_text("from ..design.rating import SCALE_MAX\n")
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    assert violations([store / "bad.py"]) == [
        "mturk.store.bad (layer 3.04) imports mturk.web.app (layer 3.06)",
        "mturk.store.bad (layer 3.04) imports mturk.web.app.create_app (layer 3.06)"]
    assert violations([store / "ok.py"]) == []


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
