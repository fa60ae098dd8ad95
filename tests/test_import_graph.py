"""The module import graph of gen/, golden/, tb/ (and flow/) is layered and acyclic.

Every ``import`` and ``from ... import`` statement is read with :mod:`ast`,
including the ones inside functions (an import moved into a function to dodge
a cycle is still a cycle of the design), and resolved to the project module
it names. Layers, lowest first::

    golden  <  gen  <  tb  <  flow (synthesis and reports: may import all the others)

A module never imports a module of a higher layer, and the module graph has
no cycle (also inside one package). tests/test_flow_layers.py checks the same
package order at package granularity.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: The layers, lowest first.
PACKAGES = ("golden", "gen", "tb", "flow")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict:
    """{dotted module name: path} of every .py file in the project packages."""
    mods = {}
    for pkg in PACKAGES:
        if (ROOT / pkg).is_dir():
            for path in sorted((ROOT / pkg).rglob("*.py")):
                mods[_module_name(path)] = path
    return mods


def _resolve(name: str, mods: dict):
    """The project module ``name`` refers to (itself or its closest project ancestor), or None."""
    while name:
        if name in mods:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(module: str, path: Path, mods: dict) -> set:
    """Project modules imported anywhere in ``path`` (top level, functions, ``if`` blocks)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_pkg = path.name == "__init__.py"
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base if is_pkg else base[:-1]
                base = base[:len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module
            # ``from pkg import sub``: sub may be a module of pkg
            targets = [f"{prefix}.{a.name}" for a in node.names] or [prefix]
        else:
            continue
        for t in targets:
            m = _resolve(t, mods)
            if m is not None and m != module:
                out.add(m)
    return out


def import_graph() -> dict:
    mods = project_modules()
    return {m: imports_of(m, p, mods) for m, p in mods.items()}


def find_cycle(graph: dict):
    """One import cycle as a list of modules (first == last), or None."""
    state: dict = {}
    stack: list = []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state:
                found = visit(n)
                if found:
                    return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def layer_violations(graph: dict) -> list:
    bad = []
    for m, deps in sorted(graph.items()):
        for d in sorted(deps):
            if PACKAGES.index(d.split(".")[0]) > PACKAGES.index(m.split(".")[0]):
                bad.append(f"{m} -> {d}")
    return bad


def test_graph_is_read():
    g = import_graph()
    # sanity: the reader sees top-level, relative and function-level imports
    assert "golden.config" in g["golden.network"]
    assert "golden.network" in g["golden.fixed_model"]
    assert "gen.emit" in g["tb.build"]           # a function-level import in tb/build.py
    assert "tb.throughput" in g["flow.sweep"]    # flow (the top layer) may import tb


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_lower_layers_never_import_higher_ones():
    bad = layer_violations(import_graph())
    assert not bad, "forbidden imports: " + "; ".join(bad)


@pytest.mark.parametrize("graph, want", [
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
    ({"a": {"b", "c"}, "b": {"c"}, "c": set()}, None),
], ids=["cycle", "acyclic"])
def test_find_cycle(graph, want):
    assert find_cycle(graph) == want


def test_layer_rule_flags_upward_imports():
    g = {"golden.x": {"gen.y", "golden.z"}, "gen.y": {"tb.w"}, "tb.w": {"gen.y"},
         "flow.r": {"tb.w", "golden.x"}, "tb.v": {"flow.r"}, "gen.z": {"flow.r"}}
    assert layer_violations(g) == ["gen.y -> tb.w", "gen.z -> flow.r", "golden.x -> gen.y",
                                   "tb.v -> flow.r"]
