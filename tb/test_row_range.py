"""RTL regression of the membrane-row range check: every encodable ``base``.

Runs the sweep of :mod:`tb.row_sweep` (fill every membrane row, then for
CHAINED and INDEPENDENT and every ``base`` in ``0 .. 2**MA - 1``: reset,
LAYER, two tiles, read back every row) on the emitted Verilog and compares
every beat, ``error`` and every row with :class:`golden.core_model.CoreModel`.
Configurations have ``mem_rows`` not a power of two so that ``base + g`` can
pass ``2**MA`` (issue 10 §1: the RTL used to wrap such rows back into range,
set no error and overwrite rows 0..). Verilator for the sweep, one small
Icarus case. ``tests/test_gen_row_range.py`` is the same sweep in
amaranth.sim.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from golden.config import HwConfig
from tb.plan import load_plan, record

#: (array, groups, mem_rows, simulator)
CASES = [(8, 4, 17, "verilator"), (8, 4, 20, "verilator"), (16, 2, 24, "verilator"),
         (8, 4, 33, "verilator"), (8, 4, 20, "icarus")]


def _spike_bits(spikes) -> int:
    return sum(int(v) << k for k, v in enumerate(spikes))


def _expect(b) -> tuple:
    return (_spike_bits(b.spikes), [int(v) for v in b.values], b.wire_tile, b.group,
            int(b.last), int(b.readout))


def _got(d) -> tuple:
    sp = d["spikes"]
    sp = _spike_bits(sp) if np.ndim(sp) else int(sp)
    return (sp, [int(v) for v in d["values"]], int(d["tile"]), int(d["group"]),
            int(d["last"]), int(d["readout"]))


try:
    import cocotb
except ImportError:  # pragma: no cover
    cocotb = None


if cocotb is not None:

    @cocotb.test()
    async def row_range_sweep(dut):
        """Fill, then every (mode, base) case; first mismatches recorded."""
        import json
        from pathlib import Path

        from cocotb.clock import Clock
        from cocotb.triggers import FallingEdge, ReadOnly

        from tb.bfm import CoreBfm, exchange
        from tb.payload import layouts_from_manifest
        from tb.row_sweep import sweep_cases, sweep_weights

        plan = load_plan()
        cfg = HwConfig.from_dict(plan["cfg"])
        layouts = layouts_from_manifest(json.loads(Path(plan["manifest"]).read_text()), cfg)
        bfm = CoreBfm(dut, layouts, cfg, 0, stress=False)
        cmd, wl = layouts["cmd"], layouts["wload"]
        fill, fill_beats, cases = sweep_cases(cfg)
        t0 = time.monotonic()
        problems = []

        def pack(c):
            return cmd.pack(op=int(c.op), row=c.row, base=c.base, mode=int(c.mode),
                            first=c.first)

        async def read_rows():
            rows = []
            s, mw = cfg.slots, cfg.mem_width
            for r in range(cfg.mem_rows + 1):
                await FallingEdge(dut.clk)
                if r:
                    word = bfm.sig["dbg_data"].value.to_unsigned()
                    f = [(word >> (k * mw)) & ((1 << mw) - 1) for k in range(s)]
                    rows.append([v - (1 << mw) if v >> (mw - 1) else v for v in f])
                if r < cfg.mem_rows:
                    bfm.drive("dbg_addr", r)
            return np.array(rows, dtype=np.int64)

        bfm.drive_all_idle(rst=1)
        Clock(dut.clk, 10, unit="ns").start()
        problems += await bfm.reset(cycles=3)
        for r, row in enumerate(sweep_weights(cfg)):
            await FallingEdge(dut.clk)
            bfm.drive("wl_valid", 1)
            bfm.drive("wl_payload", wl.pack(addr=r, data=row))
        await FallingEdge(dut.clk)
        bfm.drive("wl_valid", 0)
        await ReadOnly()
        beats, _ = await exchange(bfm, [pack(c) for c in fill], len(fill_beats),
                                  max_cycles=20 * len(fill) + 100)
        if [_got(b) for b in beats] != [_expect(b) for b in fill_beats]:
            problems.append("fill program: beats differ from the golden model")
        checked = 0
        for case in cases if not problems else []:
            problems += await bfm.reset(cycles=1)
            beats, err = await exchange(bfm, [pack(c) for c in case.commands], len(case.beats))
            where = f"{case.mode.name} base={case.base}"
            got, exp = [_got(b) for b in beats], [_expect(b) for b in case.beats]
            if got != exp:
                problems.append(f"{where}: beats {got} != expected {exp}")
            if err != case.error:
                problems.append(f"{where}: error {err} != expected {int(case.error)}")
            mem = await read_rows()
            bad = np.flatnonzero((mem != case.membrane).any(axis=1)).tolist()
            checked += 1
            if bad:
                problems.append(f"{where}: membrane rows {bad} differ from the golden model")
                break       # the buffer no longer matches the model: later cases only echo it
        failure = None
        if problems:
            failure = f"[row_range_sweep] {len(problems)} problem(s): " + "; ".join(problems[:8])
        record(plan, "row_range_sweep", {"ok": failure is None, "cases": checked,
                                         "cases_expected": len(cases), "failure": failure,
                                         "sim_seconds": time.monotonic() - t0})
        assert failure is None, failure


@pytest.mark.parametrize("array, groups, mem_rows, sim", CASES,
                         ids=[f"a{a}g{g}m{m}-{s}" for a, g, m, s in CASES])
def test_row_range_sweep(array, groups, mem_rows, sim):
    import tb.build as tbb
    cfg = HwConfig(array=array, groups=groups, weight_rows=4, mem_rows=mem_rows)
    verilog, manifest = tbb.emit_rtl(cfg)
    b = tbb.build(cfg, sim, verilog, manifest)
    r = tbb.run(b, {"seed": 0, "tests": ["row_range_sweep"]}, test_module="tb.test_row_range")
    assert r.ok, r.failure_text()
    t = r.summary["tests"]["row_range_sweep"]
    assert t["cases"] == t["cases_expected"] == 2 << cfg.mem_addr_width
