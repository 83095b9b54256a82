"""The import rule of CONTRIBUTING.md's "Layers": a package imports only its own layer or lower ones,
and no module imports itself back through others (no cycle, within a layer too).

Every module under gristmill/ is parsed with ``ast`` (nothing is imported), and every import
counts: top-level, at the bottom of a module (after the names the other side needs, the usual way
to hide a cycle), inside a function (lazy), under ``if TYPE_CHECKING:``, relative, and
``importlib.import_module("gristmill....")`` with a literal name.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "gristmill"

BASE, STAGES, REPORT, PIPELINES, TOP = range(5)
LAYER_NAMES = {BASE: "base (formats, infra, core modules)", STAGES: "stages", REPORT: "report",
               PIPELINES: "pipelines", TOP: "cli"}
# The first name under gristmill. -> its layer. "gristmill" itself is the package's __init__ (__version__).
LAYERS = {
    "gristmill": BASE, "errors": BASE, "units": BASE, "config": BASE, "manifest": BASE, "stage": BASE,
    "locks": BASE, "progress": BASE, "clikit": BASE, "formats": BASE, "infra": BASE,
    "corpus": STAGES, "tokenize": STAGES, "train": STAGES,
    "report": REPORT,
    "pipelines": PIPELINES,
    "cli": TOP, "__main__": TOP,
    "data": TOP,  # shipped corpora and the scripts that built them; nothing imports them
}
STAGE_PACKAGES = ("corpus", "tokenize", "train")

# Known breaks of the rule, each to be fixed (the test fails once one is gone, so it is deleted here).
KNOWN: dict[tuple[str, str], str] = {}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(name: str) -> bool:
    rel = Path(*name.split("."))
    return (PKG.parent / rel).with_suffix(".py").is_file() or (PKG.parent / rel / "__init__.py").is_file()


def imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, gristmill module) for every import in the file, wherever it sits."""
    me = module_name(path)
    package = me.split(".") if path.name == "__init__.py" else me.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
            # ``from gristmill.infra import slurm`` imports the module gristmill.infra.slurm
            names = [f"{base}.{a.name}" if _is_module(f"{base}.{a.name}") else base for a in node.names]
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "import_module" and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            names = [node.args[0].value]
        else:
            continue
        for name in dict.fromkeys(names):
            if name == "gristmill" or name.startswith("gristmill."):
                yield node.lineno, name


def top(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "gristmill"


def _is_cli_module(name: str) -> bool:
    last = name.rsplit(".", 1)[-1]
    return last == "cli" or last.endswith("_cli")


def why_not(importer: str, imported: str) -> str | None:
    """Why ``importer`` may not import ``imported`` (None when it may)."""
    a, b = top(importer), top(imported)
    la, lb = LAYERS[a], LAYERS[b]
    if lb > la:
        return f"{LAYER_NAMES[la]} must not import {LAYER_NAMES[lb]}"
    if la == STAGES and a != b and _is_cli_module(imported):
        return "a stage must not import another stage's CLI"
    if la == BASE and a != "infra" and b == "infra":
        return "formats and the core modules must not import infra (Dask, Slurm, torch, matplotlib)"
    return None


def all_edges() -> list[tuple[str, int, str]]:
    return [(module_name(p), line, name) for p in sorted(PKG.rglob("*.py")) for line, name in imports(p)]


def test_every_package_has_a_layer():
    names = {module_name(p) for p in PKG.rglob("*.py")} | {imported for _, _, imported in all_edges()}
    unknown = sorted({top(name) for name in names} - LAYERS.keys())
    assert not unknown, f"give {unknown} a layer in tests/test_layers.py and CONTRIBUTING.md"


def test_no_lower_layer_imports_a_higher_one():
    bad, seen = [], set()
    for importer, line, imported in all_edges():
        reason = why_not(importer, imported)
        if reason is None:
            continue
        seen.add((importer, imported))
        if (importer, imported) not in KNOWN:
            bad.append(f"{importer} (line {line}) imports {imported}: {reason}")
    assert not bad, "layer rule broken (see CONTRIBUTING.md, Layers):\n" + "\n".join(bad)
    fixed = sorted(set(KNOWN) - seen)
    assert not fixed, f"no longer broken, delete from KNOWN: {fixed}"


@pytest.mark.parametrize(("importer", "imported", "ok"), [
    ("gristmill.train.cli", "gristmill.pipelines.slurm", False),
    ("gristmill.infra.dask", "gristmill.corpus.ingest", False),
    ("gristmill.formats.shard_manifest", "gristmill.infra.hardware", False),
    ("gristmill.corpus.apply", "gristmill.report.render", False),
    ("gristmill.report.render", "gristmill.pipelines.runner", False),
    ("gristmill.pipelines.runner", "gristmill.cli", False),
    ("gristmill.tokenize.shards", "gristmill.corpus.cli", False),
    ("gristmill.tokenize.shards", "gristmill.corpus.documents", True),
    ("gristmill.train.cli", "gristmill.infra.slurm", True),
    ("gristmill.infra.dask", "gristmill.stage", True),
    ("gristmill.cli", "gristmill.pipelines.cli", True),
])
def test_the_rule_itself(importer, imported, ok):
    assert (why_not(importer, imported) is None) == ok


def import_cycles(edges: list[tuple[str, int, str]]) -> list[list[str]]:
    """Each set of modules that import one another in a ring (Tarjan's strongly connected components)."""
    graph: dict[str, set[str]] = {}
    for importer, _, imported in edges:
        if importer != imported:
            graph.setdefault(importer, set()).add(imported)
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        order[v] = low[v] = len(order)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in order:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], order[w])
        if low[v] == order[v]:
            ring = stack[stack.index(v):]
            del stack[stack.index(v):]
            if len(ring) > 1:
                cycles.append(sorted(ring))

    for v in sorted(graph):
        if v not in order:
            visit(v)
    return sorted(cycles)


def test_no_import_cycle():
    """A cycle works only while each side imports the other late enough (at its bottom, in a function,
    under TYPE_CHECKING): one reordered import and the package no longer loads. Move what both sides
    need into a module below them both."""
    cycles = import_cycles(all_edges())
    assert not cycles, "modules that import each other:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_a_cycle_through_an_import_at_the_bottom_is_seen(tmp_path, monkeypatch):
    pkg = tmp_path / "gristmill"
    (pkg / "corpus").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "corpus" / "__init__.py").write_text("")
    (pkg / "corpus" / "readers.py").write_text(  # what corpus/readers.py did before issue 15
        "class Raw: ...\n\ndef read(): return text()\n\n"
        "from gristmill.corpus.readers_text import text  # noqa: E402\n")
    (pkg / "corpus" / "readers_text.py").write_text("from gristmill.corpus.readers import Raw\n"
                                                    "def text(): return [Raw()]\n")
    (pkg / "corpus" / "ingest.py").write_text("from gristmill.corpus import readers\n")  # uses it: no cycle
    monkeypatch.setattr(sys.modules[__name__], "PKG", pkg)
    assert import_cycles(all_edges()) == [["gristmill.corpus.readers", "gristmill.corpus.readers_text"]]


def test_lazy_relative_and_type_checking_imports_are_seen(tmp_path, monkeypatch):
    pkg = tmp_path / "gristmill"
    (pkg / "corpus").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "corpus" / "__init__.py").write_text("")
    (pkg / "corpus" / "x.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from gristmill.report import render\n"
        "def f():\n    import gristmill.pipelines.runner\n    from ..cli import cli\n"
        "    return importlib.import_module('gristmill.report.figures')\n")
    monkeypatch.setattr(sys.modules[__name__], "PKG", pkg)
    assert sorted(n for _, n in imports(pkg / "corpus" / "x.py")) == [
        "gristmill.cli", "gristmill.pipelines.runner", "gristmill.report", "gristmill.report.figures"]


def test_no_test_module_imports_another():
    """Shared test code lives in conftest.py fixtures or in helper modules (tests/expect.py, fakes.py, ...):
    importing a test module would also collect its tests, and ties one test file to another's internals."""
    root = PKG.parent
    bad = []
    for path in sorted((root / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or "", *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                last = name.split(".")[-1]
                if name.startswith("tests.") and (last.startswith("test_") or last == "conftest"):
                    bad.append(f"{path.relative_to(root)} (line {node.lineno}) imports {name}")
                    break
    assert not bad, "move what they share to a conftest.py fixture or a helper module:\n" + "\n".join(bad)
