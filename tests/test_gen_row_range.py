"""Membrane-row range check in amaranth.sim: every encodable ``base`` (issue 10 §1).

The sweep of :mod:`tb.row_sweep` (CHAINED and INDEPENDENT, ``base`` =
``0 .. 2**MA - 1``, after filling the whole buffer) is run on
:class:`gen.core.LifPeArrayCore` and compared with
:class:`golden.core_model.CoreModel`: every beat, ``error`` and every
membrane row after each case. The RTL once computed the last row of an
INDEPENDENT tile in too narrow a width, so ``base + g`` wrapped past
``2**MA`` back into range: no error bit 2 and rows 0.. overwritten. The same
sweep runs in Verilator / Icarus in ``tb/test_row_range.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Module, ResetInserter, Signal
from amaranth.sim import Simulator

from gen.core import LifPeArrayCore
from golden.config import HwConfig
from tb.row_sweep import sweep_cases, sweep_weights

#: (array, groups, mem_rows): mem_rows not a power of two, base + g can pass 2**MA.
SWEEP_CFGS = [(8, 4, 17), (8, 4, 20), (16, 2, 24), (8, 4, 33), (8, 2, 5)]


def _cmd_payload(c) -> dict:
    return {"op": int(c.op), "row": c.row, "base": c.base, "mode": int(c.mode), "first": c.first}


def run_sweep(cfg: HwConfig) -> list:
    """Run the sweep on the RTL; return the list of mismatch texts (empty = pass)."""
    fill, fill_beats, cases = sweep_cases(cfg)
    dut = LifPeArrayCore(cfg)
    top, rst = Module(), Signal()
    top.submodules.core = ResetInserter({"sync": rst})(dut)
    sim = Simulator(top)
    sim.add_clock(1e-6)
    problems = []
    s, mw = cfg.slots, cfg.mem_width

    def beat_tuple(b):
        return (int(b.spikes) if not hasattr(b.spikes, "tolist") else
                sum(int(v) << k for k, v in enumerate(b.spikes)),
                [int(v) for v in b.values], b.wire_tile, b.group, int(b.last), int(b.readout))

    async def send(ctx, cmds, n_beats):
        got, pending = [], list(cmds)
        ctx.set(dut.out.ready, 1)
        idle = 0
        for _ in range(50 * (len(cmds) + n_beats) + 50):
            if pending:
                ctx.set(dut.cmd.valid, 1)
                ctx.set(dut.cmd.payload, _cmd_payload(pending[0]))
            else:
                ctx.set(dut.cmd.valid, 0)
            taken = bool(pending) and ctx.get(dut.cmd.ready)
            if ctx.get(dut.out.valid):
                p = ctx.get(dut.out.payload)
                got.append((int(p.spikes), [int(v) for v in p.values], int(p.tile),
                            int(p.group), int(p.last), int(p.readout)))
            busy = ctx.get(dut.busy)
            await ctx.tick()
            if taken:
                pending.pop(0)
            idle = idle + 1 if (not pending and not busy) else 0
            if idle > 2 and len(got) >= n_beats:
                break
        ctx.set(dut.cmd.valid, 0)
        return got

    async def read_rows(ctx):
        rows = []
        for r in range(cfg.mem_rows):
            ctx.set(dut.dbg_addr, r)
            await ctx.tick()
            word = ctx.get(dut.dbg_data)
            f = [(word >> (k * mw)) & ((1 << mw) - 1) for k in range(s)]
            rows.append([v - (1 << mw) if v >> (mw - 1) else v for v in f])
        return np.array(rows, dtype=np.int64)

    async def bench(ctx):
        for r, row in enumerate(sweep_weights(cfg)):
            ctx.set(dut.wload.valid, 1)
            ctx.set(dut.wload.payload, {"addr": r, "data": [int(w) for w in row]})
            await ctx.tick()
        ctx.set(dut.wload.valid, 0)
        got = await send(ctx, fill, len(fill_beats))
        if got != [beat_tuple(b) for b in fill_beats]:
            problems.append("fill program: beats differ")
            return
        for case in cases:
            ctx.set(rst, 1)
            await ctx.tick()
            ctx.set(rst, 0)
            got = await send(ctx, case.commands, len(case.beats))
            where = f"{case.mode.name} base={case.base}"
            exp = [beat_tuple(b) for b in case.beats]
            if got != exp:
                problems.append(f"{where}: beats {got} != expected {exp}")
            err = ctx.get(dut.error)
            if err != case.error:
                problems.append(f"{where}: error {err} != expected {case.error}")
            mem = await read_rows(ctx)
            bad = np.flatnonzero((mem != case.membrane).any(axis=1)).tolist()
            if bad:
                problems.append(f"{where}: membrane rows {bad} differ from the golden model")
                return          # the buffer no longer matches: later cases would only echo it

    sim.add_testbench(bench)
    sim.run()
    return problems


@pytest.mark.parametrize("array, groups, mem_rows", SWEEP_CFGS,
                         ids=[f"a{a}g{g}m{m}" for a, g, m in SWEEP_CFGS])
def test_every_base_matches_golden(array, groups, mem_rows):
    cfg = HwConfig(array=array, groups=groups, weight_rows=4, mem_rows=mem_rows)
    problems = run_sweep(cfg)
    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(problems[:10])


def test_sweep_reaches_the_wrap_cases():
    """The sweep really contains INDEPENDENT tiles with only some rows out of
    range and rows past 2**MA (otherwise it could not catch the wrap bug)."""
    cfg = HwConfig(array=8, groups=4, weight_rows=4, mem_rows=20)
    _, _, cases = sweep_cases(cfg)
    ind = {c.base: c for c in cases if c.mode.name == "INDEPENDENT"}
    assert 31 + 3 >= 1 << cfg.mem_addr_width              # base 31: rows 31..34 pass 2**MA
    assert ind[30].error == ind[31].error == 4
    assert (ind[31].membrane == ind[30].membrane).all()   # nothing written
    assert ind[12].error == 0                              # rows 12..15, 16..19: in range
    assert ind[17].error == 4                              # tile 0 rows 17..20: partly out
