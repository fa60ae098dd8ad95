"""Top-level amaranth.sim test of LifPeArrayCore against golden/fixedpoint.py.

A small reference of the command contract (docs/interface.md) is built here
from the per-operation primitives only (F2 accumulate, lif_step); the test
drives weights, several layers/tiles in every mode with random backpressure on
``out`` and compares every beat, the membrane buffer (through ``dbg_*``),
``busy`` and ``error``.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from gen.core import LifPeArrayCore
from gen.layouts import Error, Mode, Op
from golden import fixedpoint as fp
from golden.config import HwConfig

CFGS = [
    HwConfig(array=8, groups=2, weight_rows=16, mem_rows=8, leak_int=192, theta_int=300),
    HwConfig(array=8, groups=4, weight_rows=12, mem_rows=6, weight_width=6, acc_width=9,
             mem_width=10, frac_bits=4, leak_bits=3, leak_int=8, theta_int=40,
             reset="hard", fire="ge"),
    HwConfig(array=8, groups=1, weight_rows=8, mem_rows=4, leak_int=1, theta_int=100),
    # membrane narrower than the accumulator: values are VW = AW bits, U sign-extended
    HwConfig(array=8, groups=2, weight_rows=8, mem_rows=6, weight_width=8, acc_width=13,
             mem_width=9, frac_bits=5, leak_bits=4, leak_int=12, theta_int=90),
]


class Reference:
    """Command-level reference of docs/interface.md built from golden primitives."""

    def __init__(self, cfg: HwConfig, weights: np.ndarray):
        self.cfg, self.w = cfg, weights
        self.mem = {}          # row -> np.array of S membrane words
        self.mode, self.first, self.cursor, self.tile = Mode.CHAINED.value, 1, 0, 0
        self.events = []
        self.error = 0
        self.beats = []

    def cmd(self, c):
        cfg, n, s = self.cfg, self.cfg.groups, self.cfg.slots
        op = c.get("op", 0)
        if op == Op.LAYER.value:
            if c.get("mode", 0) == Mode.RESERVED:
                self.error |= Error.RESERVED_OP_OR_MODE
                return
            self.mode, self.first = c.get("mode", 0), c.get("first", 0)
            self.cursor, self.tile = c.get("base", 0), 0
        elif op == Op.EVENT.value:
            if c["row"] >= cfg.weight_rows:
                self.error |= Error.EVENT_ROW_RANGE
                return
            self.events.append(self.w[c["row"]])
        elif op == Op.TILE.value:
            x = fp.accumulate(cfg, np.array(self.events).reshape(-1, cfg.array))
            self.events = []
            indep = self.mode == Mode.INDEPENDENT.value
            readout = self.mode == Mode.READOUT.value
            bad = (not readout) and self.cursor + (n - 1 if indep else 0) >= cfg.mem_rows
            if bad:
                self.error |= Error.MEM_ROW_RANGE
            v = None
            for g in range(n):
                xg = x[g * s:(g + 1) * s]
                row = self.cursor + (g if indep else 0)
                if readout:
                    self.beats.append((0, list(xg), self.tile % 65536, g, g == n - 1, 1))
                    continue
                if g == 0 or indep:
                    v = np.zeros(s, np.int64) if (self.first or bad) else self.mem[row]
                u, o, v = fp.lif_step(cfg, v, xg)
                spikes = sum(int(b) << k for k, b in enumerate(o))
                self.beats.append((spikes, list(u), self.tile % 65536, g, g == n - 1, 0))
                if not bad and (indep or g == n - 1):
                    self.mem[row] = v.copy()
            if self.cursor < cfg.mem_rows:
                self.cursor += n if indep else 1
            self.tile += 1
        else:
            self.error |= Error.RESERVED_OP_OR_MODE


def program(cfg: HwConfig, rng: random.Random):
    """A command list: every mode, first/non-first, cross-layer reuse, errors."""
    cmds = []
    n = cfg.groups

    def tile(events):
        # row 0 holds the maximum weights: picking it often makes spikes and
        # saturation likely.
        cmds.extend({"op": Op.EVENT, "row": rng.choice([0, rng.randrange(cfg.weight_rows)])}
                    for _ in range(events))
        cmds.append({"op": Op.TILE})

    def layer(mode, base, first):
        cmds.append({"op": Op.LAYER, "mode": mode, "base": base, "first": first})

    for t in range(3):                      # 3 timesteps of a 2-layer sharing block
        for _layer in range(2):
            layer(Mode.CHAINED.value, 1, int(t == 0 and _layer == 0))
            tile(rng.choice([0, 1, n, 2 * n + 1]))
            tile(rng.choice([1, 3]))
        layer(Mode.INDEPENDENT.value, 0, int(t == 0))
        tile(rng.randrange(0, 4))
        layer(Mode.READOUT.value, 0, 0)
        tile(rng.randrange(0, 6))
    return cmds


def run(cfg: HwConfig, seed: int, cmds=None, ready_prob=0.6, weights=None):
    """Simulate ``cmds`` (default: a random program) on the core, compare every
    beat, the final membrane rows, busy and error with :class:`Reference`."""
    rng = random.Random(seed)
    if weights is None:
        weights = np.array([[rng.randint(cfg.weight_min, cfg.weight_max)
                             for _ in range(cfg.array)]
                            for _ in range(cfg.weight_rows)], dtype=np.int64)
        # Make saturation and firing likely: one row at the maximum.
        weights[0, :] = cfg.weight_max
    cmds = program(cfg, rng) if cmds is None else cmds
    ref = Reference(cfg, weights)
    for c in cmds:
        ref.cmd(c)

    dut = LifPeArrayCore(cfg)
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    got = []
    state = {"done": False}
    final = {"mem": {}}

    async def driver(ctx):
        for r, row in enumerate(weights):
            ctx.set(dut.wload.valid, 1)
            ctx.set(dut.wload.payload, {"addr": r, "data": [int(w) for w in row]})
            await ctx.tick()
        ctx.set(dut.wload.valid, 0)
        for c in cmds:
            if rng.random() < 0.2:
                await ctx.tick()            # idle cycle between commands
            ctx.set(dut.cmd.valid, 1)
            ctx.set(dut.cmd.payload, {"op": 0, "row": 0, "base": 0, "mode": 0, "first": 0, **c})
            await ctx.tick().until(dut.cmd.ready)
            ctx.set(dut.cmd.valid, 0)
        state["done"] = True

    async def sink(ctx):
        while len(got) < len(ref.beats):
            ctx.set(dut.out.ready, int(rng.random() < ready_prob))
            await ctx.tick()
            # sample on the edge: a beat transfers when valid & ready were 1.
        ctx.set(dut.out.ready, 0)

    async def monitor(ctx):
        async for _clk_edge, _rst, valid, ready, payload in ctx.tick().sample(
                dut.out.valid, dut.out.ready, dut.out.payload):
            if valid and ready:
                got.append((int(payload.spikes), [int(v) for v in payload.values],
                            int(payload.tile), int(payload.group), bool(payload.last),
                            int(payload.readout)))

    async def checker(ctx):
        while not (state["done"] and len(got) == len(ref.beats)):
            await ctx.tick()
        for _ in range(4):
            await ctx.tick()
        final["busy"] = ctx.get(dut.busy)
        final["out_valid"] = ctx.get(dut.out.valid)
        final["error"] = ctx.get(dut.error)
        s, mw = cfg.slots, cfg.mem_width
        for row in sorted(ref.mem):
            ctx.set(dut.dbg_addr, row)
            await ctx.tick()
            word = ctx.get(dut.dbg_data)
            fields = [(word >> (k * mw)) & ((1 << mw) - 1) for k in range(s)]
            final["mem"][row] = [f - (1 << mw) if f >> (mw - 1) else f for f in fields]

    sim.add_testbench(driver)
    sim.add_testbench(sink)
    sim.add_process(monitor)
    sim.add_testbench(checker)
    sim.run_until(2e-3)
    assert state["done"], "command stream stalled"
    assert len(got) == len(ref.beats)
    for i, (g, e) in enumerate(zip(got, ref.beats)):
        e = (e[0], [int(v) for v in e[1]], e[2], e[3], bool(e[4]), e[5])
        assert g == e, f"beat {i}: got {g}, expected {e}"
    assert final["busy"] == 0 and final["out_valid"] == 0
    assert final["error"] == ref.error
    for row, expect in ref.mem.items():
        assert final["mem"][row] == [int(v) for v in expect], f"membrane row {row}"
    return ref


@pytest.mark.parametrize("ready_prob", [1.0, 0.6, 0.15])
@pytest.mark.parametrize("cfg", CFGS, ids=lambda c: f"a{c.array}g{c.groups}{c.reset}{c.fire}"
                                                   f"acc{c.acc_width}m{c.mem_width}")
def test_core_matches_reference(cfg, ready_prob):
    ref = run(cfg, seed=cfg.groups + int(ready_prob * 10), ready_prob=ready_prob)
    assert ref.beats, "program produced no beats"
    assert any(b[0] for b in ref.beats), "no spike in the reference: test too weak"
    if cfg.acc_width > cfg.mem_width:       # sign extension of U into VW must be exercised
        assert any(v < 0 for b in ref.beats if not b[5] for v in b[1]), "no negative U"


def test_core_error_flags():
    cfg = HwConfig(array=8, groups=2, weight_rows=12, mem_rows=3)
    cmds = [
        {"op": 3},                                       # reserved op -> bit 0
        {"op": 2, "mode": 3},                            # reserved mode -> bit 0
        {"op": 0, "row": 13},                            # row >= weight_rows -> bit 1
        {"op": 2, "mode": Mode.INDEPENDENT.value, "base": 2, "first": 1},
        {"op": 0, "row": 1},
        {"op": 1},                                       # rows 2,3: 3 out of range -> bit 2
        {"op": 2, "mode": Mode.CHAINED.value, "base": 2, "first": 1},
        {"op": 1}, {"op": 1},                            # second tile row 3 -> bad
    ]
    ref = run(cfg, seed=1, cmds=cmds, ready_prob=1.0)
    assert ref.error == 7


def test_worked_example_from_docs():
    """The numbers of docs/interface.md "Worked example" (computed by hand
    from F2-F6; also checked against golden/fixedpoint.py by the Reference)."""
    cfg = HwConfig(array=4, groups=2, weight_rows=4, mem_rows=2)
    cmds = [{"op": 2, "mode": 0, "base": 0, "first": 1}, {"op": 0, "row": 0},
            {"op": 0, "row": 1}, {"op": 1},
            {"op": 2, "mode": 0, "base": 0, "first": 0}, {"op": 0, "row": 1},
            {"op": 0, "row": 2}, {"op": 0, "row": 1}, {"op": 1}]
    weights = np.array([[120, 60, -40, 127], [100, 90, 127, 127], [50, -128, 80, 30],
                        [0, 0, 0, 0]])
    ref = run(cfg, seed=0, cmds=cmds, ready_prob=1.0, weights=weights)
    assert [(b[0], [int(v) for v in b[1]], b[3], bool(b[4])) for b in ref.beats] == [
        (0b00, [220, 150], 0, False), (0b10, [142, 292], 1, True),
        (0b01, [286, 61], 0, False), (0b11, [342, 299], 1, True)]
    assert [int(v) for v in ref.mem[0]] == [86, 43]


@pytest.mark.parametrize("cfg", [CFGS[0], CFGS[2]], ids=lambda c: f"a{c.array}g{c.groups}")
def test_same_row_reread_right_after_write_back(cfg):
    """One CHAINED tile per time step on the same row, commands back to back:
    the next tile's row is read (one cycle ahead) on the edge that writes it
    back, so the LIF stage must forward the written V' (gen/lif_stage.py)."""
    cmds = []
    for t in range(5):
        cmds += [{"op": Op.LAYER, "mode": Mode.CHAINED.value, "base": 2, "first": int(t == 0)},
                 {"op": Op.EVENT, "row": t % cfg.weight_rows}, {"op": Op.TILE}]
    ref = run(cfg, seed=7, cmds=cmds, ready_prob=1.0)
    assert len({tuple(int(v) for v in b[1]) for b in ref.beats}) > 2, "membrane never changes"
