"""Tests of flow/plots.py: both plots render to PNG bytes in memory."""

from __future__ import annotations

import pytest

from flow.attribution import attribute_blocks
from flow.memory_table import memory_rows
from flow.plots import plot_area, plot_memory
from flow.sweep import BuildReport
from tests.yosys_canned import canned_cfg, canned_manifest, canned_result

pytest.importorskip("matplotlib")
PNG = b"\x89PNG\r\n\x1a\n"


def test_area_plot_is_a_png():
    cfg = canned_cfg()
    r = BuildReport(cfg, canned_manifest(cfg), synth=canned_result())
    r.blocks = attribute_blocks(r.synth)
    assert plot_area([r]).startswith(PNG)


def test_memory_plot_is_a_png():
    assert plot_memory(memory_rows(16)).startswith(PNG)
