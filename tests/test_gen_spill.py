"""amaranth.sim test of the membrane spill/fill ports (docs/interface.md
"Membrane spill and fill") against golden.core_model.CoreModel.

Random phases: ``mfill`` rows (concurrent with the previous phase's commands
when their rows are disjoint from that phase's), then LAYER (random ``spill``,
``first``, mode) / EVENT / TILE commands; random ``out__ready`` and
``mspill__ready``. Every beat and every ``mspill`` beat is compared with
CoreModel (which applies the fills before the phase's commands).
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from gen.core import LifPeArrayCore
from gen.layouts import Mode, Op
from golden.config import HwConfig
from golden.core_model import CoreModel
from golden.schedule import Command

CFGS = [HwConfig(array=8, groups=2, weight_rows=8, mem_rows=8),
        HwConfig(array=8, groups=4, weight_rows=8, mem_rows=12, reset="hard", theta_int=200)]


def _phases(cfg: HwConfig, rng: random.Random, n: int):
    """[(fills [(row, data)], commands)] with each phase's rows in one half of the buffer."""
    half = cfg.mem_rows // 2
    out = []
    for p in range(n):
        lo = (p % 2) * half
        mode = rng.choice([Mode.CHAINED, Mode.CHAINED, Mode.INDEPENDENT])
        per = 1 if mode == Mode.CHAINED else cfg.groups
        tiles = max(1, min(3, half // per))
        rows = list(range(lo, lo + tiles * per))
        first = int(rng.random() < 0.2)
        fills = [] if first else [(r, np.array([rng.randint(-300, 300) for _ in range(cfg.slots)]))
                                  for r in rows]
        cmds = [Command(Op.LAYER, 0, lo, mode, first, int(rng.random() < 0.7))]
        for _ in range(tiles):
            cmds += [Command(Op.EVENT, rng.randrange(cfg.weight_rows))
                     for _ in range(rng.randint(0, 5))]
            cmds.append(Command(Op.TILE))
        out.append((fills, cmds))
    return out


@pytest.mark.parametrize("ci", range(len(CFGS)))
def test_spill_fill_against_core_model(ci):
    cfg = CFGS[ci]
    rng = random.Random(ci + 5)
    weights = np.array([[rng.randint(cfg.weight_min, cfg.weight_max) for _ in range(cfg.array)]
                        for _ in range(cfg.weight_rows)])
    phases = _phases(cfg, rng, 14)
    model = CoreModel(cfg, strict=False)
    for r in range(cfg.weight_rows):
        model.load_weight(r, weights[r])
    exp_beats, exp_spills = [], []
    for fills, cmds in phases:
        for r, d in fills:
            model.fill(r, d)
        for c in cmds:
            exp_beats += model.command(c)
        exp_spills += model.spilled
        model.spilled = []
    dut = LifPeArrayCore(cfg)
    got_beats, got_spills = [], []
    fill_stall = [0]

    async def bench(ctx):
        for r in range(cfg.weight_rows):
            ctx.set(dut.wload.valid, 1)
            ctx.set(dut.wload.payload, {"addr": r, "data": [int(x) for x in weights[r]]})
            await ctx.tick()
        ctx.set(dut.wload.valid, 0)
        fq, cq = [], []         # fill / command queues: (item, phase)
        for p, (fills, cmds) in enumerate(phases):
            fq += [(f, p) for f in fills]
            cq += [(c, p) for c in cmds]
        # fills of phase p wait for every beat of phase p-2 (same rows) and are
        # all accepted before phase p's first command
        need = [0, 0]
        nb = 0
        for _, cmds in phases:
            nb += sum(c.op == Op.TILE for c in cmds) * cfg.groups
            need.append(nb)
        fills_done = [0] * len(phases)
        n_fill_of = [len(f) for f, _ in phases]
        fi = ci_ = 0
        cycles = 0
        while len(got_beats) < len(exp_beats) or ci_ < len(cq) or fi < len(fq) or \
                len(got_spills) < len(exp_spills):
            cycles += 1
            assert cycles < 20000, "hung"
            fv = cv = 0
            if fi < len(fq):
                (row, d), p = fq[fi]
                if len(got_beats) >= need[p] and rng.random() < 0.8:
                    ctx.set(dut.mfill.payload, {"addr": row, "data": [int(x) for x in d]})
                    fv = 1
            if ci_ < len(cq):
                c, p = cq[ci_]
                if fills_done[p] == n_fill_of[p] and rng.random() < 0.85:
                    ctx.set(dut.cmd.payload, {"op": c.op, "row": c.row, "base": c.base,
                                              "mode": c.mode, "first": c.first, "spill": c.spill})
                    cv = 1
            ctx.set(dut.mfill.valid, fv)
            ctx.set(dut.cmd.valid, cv)
            oready = int(rng.random() < 0.7)
            sready = int(rng.random() < 0.6)
            ctx.set(dut.out.ready, oready)
            ctx.set(dut.mspill.ready, sready)
            f_fire = fv and ctx.get(dut.mfill.ready)
            fill_stall[0] += fv and not f_fire
            c_fire = cv and ctx.get(dut.cmd.ready)
            o_fire = oready and ctx.get(dut.out.valid)
            s_fire = sready and ctx.get(dut.mspill.valid)
            if o_fire:
                b = ctx.get(dut.out.payload)
                got_beats.append((int(b.spikes), [int(v) for v in b.values], int(b.group)))
            if s_fire:
                s = ctx.get(dut.mspill.payload)
                got_spills.append((int(s.addr), [int(v) for v in s.data]))
            await ctx.tick()
            if f_fire:
                fills_done[fq[fi][1]] += 1
                fi += 1
            if c_fire:
                ci_ += 1
        assert not ctx.get(dut.error)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    want_b = [(sum(int(o) << k for k, o in enumerate(b.spikes)), [int(v) for v in b.values], b.group)
              for b in exp_beats]
    assert got_beats == want_b
    assert got_spills == [(r, [int(x) for x in v]) for r, v in exp_spills]
    assert len(exp_spills) > 10


def test_fill_waits_for_write_back():
    """mfill.ready is 0 exactly in the cycles the LIF stage writes a row back."""
    cfg = CFGS[0]
    dut = LifPeArrayCore(cfg)
    seen = []

    async def bench(ctx):
        ctx.set(dut.out.ready, 1)
        ctx.set(dut.mspill.ready, 1)
        ctx.set(dut.mfill.valid, 1)
        ctx.set(dut.mfill.payload, {"addr": 7, "data": [0] * cfg.slots})
        for c in [Command(Op.LAYER, 0, 0, Mode.CHAINED, 1, 1)] + [Command(Op.TILE)] * 3:
            ctx.set(dut.cmd.valid, 1)
            ctx.set(dut.cmd.payload, {"op": c.op, "row": 0, "base": c.base, "mode": c.mode,
                                      "first": c.first, "spill": c.spill})
            while not ctx.get(dut.cmd.ready):
                seen.append((ctx.get(dut.mfill.ready), ctx.get(dut.mspill.valid)))
                await ctx.tick()
            seen.append((ctx.get(dut.mfill.ready), ctx.get(dut.mspill.valid)))
            await ctx.tick()
        ctx.set(dut.cmd.valid, 0)
        for _ in range(12):
            seen.append((ctx.get(dut.mfill.ready), ctx.get(dut.mspill.valid)))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    # three write-backs (one per CHAINED tile): three cycles with ready = 0,
    # each followed by a spill beat in the next cycle
    idx = [i for i, (r, _) in enumerate(seen) if not r]
    assert len(idx) == 3
    assert all(seen[i + 1][1] for i in idx)


@pytest.mark.parametrize("events", [0, 2, 5])
def test_spilling_costs_no_cycle(events):
    """With mspill__ready = 1 and concurrent fills into other rows, a stream of
    CHAINED tiles takes exactly as many cycles with spill = 1 as with spill = 0."""
    cfg = CFGS[0]
    rng = random.Random(events)

    def run(spill: int, fill: bool) -> int:
        dut = LifPeArrayCore(cfg)
        cmds = [Command(Op.LAYER, 0, 0, Mode.CHAINED, 0, spill)]
        for _ in range(4):
            cmds += [Command(Op.EVENT, rng.randrange(cfg.weight_rows)) for _ in range(events)]
            cmds.append(Command(Op.TILE))
        n_beats = 4 * cfg.groups
        res = {}

        async def bench(ctx):
            ctx.set(dut.out.ready, 1)
            ctx.set(dut.mspill.ready, 1)
            i = beats = spills = fills = cycle = 0
            while beats < n_beats or ctx.get(dut.busy):
                ctx.set(dut.cmd.valid, int(i < len(cmds)))
                if i < len(cmds):
                    c = cmds[i]
                    ctx.set(dut.cmd.payload, {"op": c.op, "row": c.row, "base": c.base,
                                              "mode": c.mode, "first": c.first, "spill": c.spill})
                ctx.set(dut.mfill.valid, int(fill and fills < 40))
                ctx.set(dut.mfill.payload, {"addr": 4 + fills % 4, "data": [fills] * cfg.slots})
                fire = i < len(cmds) and ctx.get(dut.cmd.ready)
                beats += ctx.get(dut.out.valid)
                spills += ctx.get(dut.mspill.valid)
                fills += bool(fill and fills < 40 and ctx.get(dut.mfill.ready))
                await ctx.tick()
                i += bool(fire)
                cycle += 1
            res["cycles"], res["spills"] = cycle, spills

        sim = Simulator(dut)
        sim.add_clock(1e-6)
        sim.add_testbench(bench)
        sim.run()
        assert res["spills"] == (4 if spill else 0)
        return res["cycles"]

    state = rng.getstate()
    base = run(0, False)
    rng.setstate(state)
    assert run(1, True) == base
