"""Test of tb/throughput.py (used by the hardware report): the measured tile
period with overlap equals the timing contract max(E+1, N+1), and waiting
for ``busy == 0`` after each TILE is slower. Icarus, ARRAY=4."""

from __future__ import annotations

import shutil

import pytest

from gen.timing import tile_period
from golden.config import HwConfig

needs_iverilog = pytest.mark.skipif(shutil.which("iverilog") is None,
                                    reason="iverilog not installed")


@needs_iverilog
def test_throughput_matches_timing_contract():
    from tb.throughput import measure
    cfg = HwConfig(array=4, groups=2, weight_rows=16, mem_rows=8)
    rows = measure(cfg, "icarus", events=[1, 2, 8], tiles=8)
    by = {(r["events"], r["overlap"]): r for r in rows}
    for e in (1, 2, 8):
        assert by[(e, True)]["period"] == tile_period(e, cfg.groups)
        assert by[(e, False)]["period"] > by[(e, True)]["period"]
