"""flow/ is the top layer: golden < gen < tb < flow. No module of a lower
package imports a higher one (checked on the source, every import statement,
including those inside functions)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ORDER = ("golden", "gen", "tb", "flow")


def _imported_packages(path: Path) -> set:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    own = path.relative_to(REPO).parts[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            found.add(own if node.level else (node.module or "").split(".")[0])
    return found & set(ORDER)


@pytest.mark.parametrize("pkg", ORDER[:-1])
def test_no_lower_package_imports_a_higher_one(pkg):
    higher = set(ORDER[ORDER.index(pkg) + 1:])
    bad = {str(p.relative_to(REPO)): sorted(_imported_packages(p) & higher)
           for p in sorted((REPO / pkg).rglob("*.py"))}
    assert {k: v for k, v in bad.items() if v} == {}


def test_report_and_synth_left_gen():
    assert not (REPO / "gen" / "report.py").exists()
    assert not (REPO / "gen" / "synth.py").exists()
