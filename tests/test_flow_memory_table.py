"""Tests of flow/memory_table.py: the report's LIF membrane-memory rows."""

from __future__ import annotations

import pytest

from flow.memory_table import MEMORY_ARCHS, MEMORY_SCHEMES, MEMORY_SIZES, memory_rows


def test_memory_rows_cover_archs_sizes_schemes():
    rows = memory_rows(16)
    assert {(r.arch, r.input_size, r.scheme) for r in rows} == \
        {(a, s, c) for a in MEMORY_ARCHS for s in MEMORY_SIZES for c in MEMORY_SCHEMES}
    assert len(rows) == len(MEMORY_ARCHS) * len(MEMORY_SIZES) * len(MEMORY_SCHEMES)
    for r in rows:
        assert r.mem_width == 16 and r.timesteps == 5
        n = {"C#2": 2, "C#4": 4, "C#8": 8}.get(r.scheme)
        if n:
            assert r.fwd_ratio == pytest.approx(1 / n)
        # 16-bit hardware membranes take half the 32-bit figure
        assert r.fwd_mib_hw == pytest.approx(r.fwd_mib_32 / 2)
