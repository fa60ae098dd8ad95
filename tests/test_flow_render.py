"""Tests of flow/render.py: the markdown text of the hardware report, from
canned builds (no tools)."""

from __future__ import annotations

from flow.attribution import attribute_blocks
from flow.memory_table import memory_rows
from flow.render import paper_ratio_rows, render_markdown
from flow.sweep import BuildReport
from tests.yosys_canned import canned_cfg, canned_manifest, canned_result


def _report(synth: bool) -> BuildReport:
    cfg = canned_cfg()
    r = BuildReport(cfg, canned_manifest(cfg))
    if synth:
        r.synth = canned_result()
        r.blocks = attribute_blocks(r.synth)
        r.checks = ["LIF units: netlist 2"]
    return r


def test_summary_row_from_canned_netlist():
    md = render_markdown([_report(True)], memory_rows(16), " --array 4")
    assert "`python -m flow.report --array 4`" in md
    # ARRAY | GROUPS | LIF units | PE acc cells | LIF cells | LIF share (cells): 20 / (20 + 30)
    assert "| 4 | 2 | 2 | 30 | 20 | **40.0 %** |" in md
    assert f"* `{canned_cfg().name}`: LIF units: netlist 2 ✓" in md
    assert "Not measured (`--no-sim`)." in md
    assert "![area by block](area_by_block.png)" in md


def test_no_synth_report_says_so_and_has_no_area_plot():
    md = render_markdown([_report(False)], memory_rows(16), "")
    assert "Not made (`--no-synth`)." in md
    assert "area_by_block.png" not in md
    assert "memory_by_scheme.png" in md


def test_paper_ratio_rows_name_the_schemes_of_table1():
    rows = paper_ratio_rows(memory_rows(16))
    assert rows and all(r.startswith("| ") for r in rows)
    schemes = {r.split("|")[3].strip() for r in rows}
    assert schemes <= {"L", "C#2", "L+C#2"} and "C#2" in schemes
    # C#2 halves the forward memory, in the paper and here
    for r in rows:
        cells = [c.strip() for c in r.split("|")]
        if cells[3] == "C#2":
            assert cells[4] == "0.500" and cells[5] == "0.500", r
