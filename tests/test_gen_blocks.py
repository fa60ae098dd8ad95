"""Unit tests of the generator's blocks with amaranth.sim, against golden/fixedpoint.py."""

from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from gen.lif_unit import LifUnit
from gen.membrane_buffer import MembraneBuffer
from gen.pe_array import PeArray
from golden import fixedpoint as fp
from golden.config import HwConfig

LIF_CFGS = {
    "default": HwConfig(),
    "hard_ge": HwConfig(reset="hard", fire="ge"),
    "lambda_one": HwConfig(leak_int=256),                    # λ = 1: L = V exactly
    "small_lambda": HwConfig(leak_int=1, theta_int=3),      # λ = 2**-8
    "narrow": HwConfig(array=8, groups=2, weight_width=4, acc_width=6, mem_width=5,
                       frac_bits=2, leak_bits=1, leak_int=1, theta_int=15, fire="ge"),
    "acc_wider": HwConfig(acc_width=20, mem_width=12, frac_bits=4, leak_bits=5,
                          leak_int=27, theta_int=2047, fire="ge", reset="soft"),
    "mem_wider": HwConfig(acc_width=10, mem_width=18, leak_bits=3, leak_int=7,
                          theta_int=1000, reset="hard"),
}


def _run_comb(dut, body):
    sim = Simulator(dut)
    sim.add_testbench(body)
    sim.run()


def _lif_vectors(cfg: HwConfig, rng: random.Random, count: int):
    th = cfg.theta_int
    vs = {cfg.mem_min, cfg.mem_min + 1, -1, 0, 1, th - 1, th, th + 1, cfg.mem_max - 1, cfg.mem_max}
    xs = {cfg.acc_min, cfg.acc_min + 1, -1, 0, 1, th - 1, th, th + 1, cfg.acc_max}
    vs = sorted(v for v in vs if cfg.mem_min <= v <= cfg.mem_max)
    xs = sorted(x for x in xs if cfg.acc_min <= x <= cfg.acc_max)
    pairs = [(v, x) for v in vs for x in xs]
    # values whose leak lands exactly on a rounding tie (V * leak_int = k*2**b + 2**(b-1))
    for v in range(cfg.mem_min, cfg.mem_max + 1, max(1, (cfg.mem_max - cfg.mem_min) // 64)):
        pairs.append((v, 0))
    pairs += [(rng.randint(cfg.mem_min, cfg.mem_max), rng.randint(cfg.acc_min, cfg.acc_max))
              for _ in range(count)]
    # membranes near θ with small currents: exercises the comparison boundary
    pairs += [(rng.randint(th - 4, min(th + 4, cfg.mem_max)), rng.randint(-2, 2))
              for _ in range(count // 4)]
    return pairs


@pytest.mark.parametrize("name", sorted(LIF_CFGS))
def test_lif_unit_matches_lif_step(name):
    cfg = LIF_CFGS[name]
    dut = LifUnit(cfg)
    pairs = _lif_vectors(cfg, random.Random(name), 250)
    mismatches = []

    async def bench(ctx):
        for v, x in pairs:
            ctx.set(dut.v, v)
            ctx.set(dut.x, x)
            got = (ctx.get(dut.u), ctx.get(dut.spike), ctx.get(dut.v_next))
            exp = fp.lif_step(cfg, v, x)
            if got != exp:
                mismatches.append((v, x, got, exp))

    _run_comb(dut, bench)
    assert not mismatches, f"{len(mismatches)} mismatches, first (v, x, got, expected): {mismatches[:3]}"


def test_lif_unit_lambda_one_keeps_v():
    cfg = LIF_CFGS["lambda_one"]
    dut = LifUnit(cfg)

    async def bench(ctx):
        for v in (cfg.mem_min, -3, 0, 5, cfg.theta_int - 10):
            ctx.set(dut.v, v)
            ctx.set(dut.x, 0)
            assert ctx.get(dut.u) == v          # F3 with λ = 1 is the identity

    _run_comb(dut, bench)


def test_lif_unit_saturates_and_resets():
    cfg = HwConfig()   # soft, gt, θ = 256
    dut = LifUnit(cfg)

    async def bench(ctx):
        ctx.set(dut.v, cfg.mem_max)
        ctx.set(dut.x, cfg.acc_max)
        assert ctx.get(dut.u) == cfg.mem_max                         # F4 saturates high
        assert ctx.get(dut.spike) == 1
        assert ctx.get(dut.v_next) == cfg.mem_max - cfg.theta_int    # F6 soft
        ctx.set(dut.v, cfg.mem_min)
        ctx.set(dut.x, cfg.acc_min)
        assert ctx.get(dut.u) == cfg.mem_min                         # F4 saturates low
        assert ctx.get(dut.spike) == 0
        ctx.set(dut.v, 0)
        ctx.set(dut.x, cfg.theta_int)
        assert ctx.get(dut.spike) == 0                               # F5 strict >

    _run_comb(dut, bench)


@pytest.mark.parametrize("cfg", [HwConfig(array=8, groups=2, weight_width=8, acc_width=9),
                                 HwConfig(array=6, groups=3, weight_width=4, acc_width=4)],
                         ids=["a8g2", "a6g3_acc4"])
def test_pe_array_saturating_banks(cfg):
    dut = PeArray(cfg)
    rng = random.Random(7)
    ops = []
    for _ in range(120):
        kind = rng.choice(["add", "add", "add", "clear"])
        ops.append((kind, rng.randrange(2),
                    [rng.choice([cfg.weight_min, cfg.weight_max, rng.randint(cfg.weight_min, cfg.weight_max)])
                     for _ in range(cfg.array)]))
    model = np.zeros((2, cfg.array), dtype=np.int64)
    errors = []

    async def bench(ctx):
        for i, (kind, bank, w) in enumerate(ops):
            ctx.set(dut.add_en, kind == "add")
            ctx.set(dut.add_bank, bank)
            ctx.set(dut.weights, w)
            ctx.set(dut.clear_en, kind == "clear")
            ctx.set(dut.clear_bank, bank)
            # currents0: group 0 of rd0_bank as it will be after this edge
            rd0 = (i // 3) % 2
            ctx.set(dut.rd0_bank, rd0)
            if not (kind == "clear" and rd0 == bank):     # (contract: no clear of rd0_bank)
                after = (fp.accumulate(cfg, [model[bank], w]) if kind == "add" and rd0 == bank
                         else model[rd0])
                got0 = [int(v) for v in ctx.get(dut.currents0)]
                if got0 != [int(v) for v in after[:cfg.slots]]:
                    errors.append(("currents0", kind, bank, rd0, got0))
            await ctx.tick()
            if kind == "add":
                model[bank] = fp.accumulate(cfg, [model[bank], w])   # F2, one saturating add
            else:
                model[bank] = 0
            ctx.set(dut.add_en, 0)
            ctx.set(dut.clear_en, 0)
            for b in range(2):
                for g in range(cfg.groups):
                    ctx.set(dut.rd_bank, b)
                    ctx.set(dut.rd_group, g)
                    got = [int(v) for v in ctx.get(dut.currents)]
                    exp = [int(v) for v in model[b, g * cfg.slots:(g + 1) * cfg.slots]]
                    if got != exp:
                        errors.append((kind, b, g, got, exp))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert not errors, errors[:3]
    assert model.max() == cfg.acc_max or model.min() == cfg.acc_min, "saturation never exercised"


def test_membrane_buffer_ports():
    cfg = HwConfig(array=8, groups=2, mem_rows=5, mem_width=9, frac_bits=4, theta_int=16)
    dut = MembraneBuffer(cfg)
    rng = random.Random(3)
    rows = {r: [rng.randint(cfg.mem_min, cfg.mem_max) for _ in range(cfg.slots)]
            for r in range(cfg.mem_rows)}

    def unpack(word):
        mw = cfg.mem_width
        f = [(word >> (k * mw)) & ((1 << mw) - 1) for k in range(cfg.slots)]
        return [x - (1 << mw) if x >> (mw - 1) else x for x in f]

    async def bench(ctx):
        for r, vals in rows.items():
            ctx.set(dut.wr_addr, r)
            ctx.set(dut.wr_data, vals)
            ctx.set(dut.wr_en, 1)
            await ctx.tick()
        ctx.set(dut.wr_en, 0)
        # rd_own = 0: the one read port serves dbg on every edge (rd_en ignored).
        for r in (3, 1):
            ctx.set(dut.dbg_addr, r)
            ctx.set(dut.rd_addr, (r + 1) % cfg.mem_rows)
            await ctx.tick()
            assert unpack(ctx.get(dut.dbg_data)) == rows[r]
            assert [int(v) for v in ctx.get(dut.rd_data)] == rows[r]
        # rd_own = 1: the LIF stage's address, dbg_addr ignored, dbg_data = its read.
        ctx.set(dut.rd_own, 1)
        for r in (4, 0, 2):
            ctx.set(dut.rd_addr, r)
            ctx.set(dut.rd_en, 1)
            ctx.set(dut.dbg_addr, (r + 1) % cfg.mem_rows)
            await ctx.tick()
            assert [int(v) for v in ctx.get(dut.rd_data)] == rows[r]
            assert unpack(ctx.get(dut.dbg_data)) == rows[r]
        # rd_en = 0 holds the last data even when the addresses change.
        ctx.set(dut.rd_en, 0)
        ctx.set(dut.rd_addr, 1)
        ctx.set(dut.dbg_addr, 3)
        await ctx.tick()
        assert [int(v) for v in ctx.get(dut.rd_data)] == rows[2]
        # A write and a read of the same row in one cycle return the old row.
        new = [1] * cfg.slots
        ctx.set(dut.wr_addr, 1)
        ctx.set(dut.wr_data, new)
        ctx.set(dut.wr_en, 1)
        ctx.set(dut.rd_en, 1)
        await ctx.tick()
        assert [int(v) for v in ctx.get(dut.rd_data)] == rows[1]
        ctx.set(dut.wr_en, 0)
        await ctx.tick()
        assert [int(v) for v in ctx.get(dut.rd_data)] == new

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


# ------------------------------------------------ membrane buffer controller
def _run_lif_stage(cfg, descs, currents, mem_init):
    """Drive LifStage with tile descriptors; model the PE array (``currents``
    [tile][group] -> S values) and the membrane memory in the testbench.
    Returns (reads, writes, beats): row addresses read, (row, V') written, and
    (spikes, values) per beat."""
    from gen.lif_stage import LifStage

    dut = LifStage(cfg)
    mem = {r: list(v) for r, v in mem_init.items()}
    log = {"reads": [], "writes": [], "beats": []}

    async def bench(ctx):
        ctx.set(dut.out.ready, 1)
        pending = list(enumerate(descs))
        rd_data = [0] * cfg.slots
        shown = False           # like the Sequencer: announced on next_tile one cycle ahead
        tile_no = 0
        for _ in range(200):
            if pending and shown:
                ctx.set(dut.tile.valid, 1)
                ctx.set(dut.tile.payload, pending[0][1])
                tile_no = pending[0][0]
            else:
                ctx.set(dut.tile.valid, 0)
            nxt = pending[1:] if shown else pending
            ctx.set(dut.next_valid, 1 if nxt else 0)
            if nxt:
                ctx.set(dut.next_tile, nxt[0][1])
            shown = shown or bool(pending)
            group = min(ctx.get(dut.pe_rd_group), cfg.groups - 1)
            ctx.set(dut.currents, currents[tile_no][group])
            ctx.set(dut.currents0, currents[tile_no][0])
            ctx.set(dut.mem_rd_data, rd_data)
            rd_en, rd_addr = ctx.get(dut.mem_rd_en), ctx.get(dut.mem_rd_addr)
            wr_en, wr_addr = ctx.get(dut.mem_wr_en), ctx.get(dut.mem_wr_addr)
            wr_data = [int(v) for v in ctx.get(dut.mem_wr_data)]
            done = ctx.get(dut.tile.ready) and pending
            if ctx.get(dut.out.valid):
                p = ctx.get(dut.out.payload)
                log["beats"].append((int(p.spikes), [int(v) for v in p.values]))
            await ctx.tick()
            if rd_en:
                log["reads"].append(rd_addr)
                rd_data = mem[rd_addr]
            if wr_en:
                log["writes"].append((wr_addr, wr_data))
                mem[wr_addr] = wr_data
            if done:
                pending.pop(0)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return log


@pytest.mark.parametrize("mode,first,bad,exp_reads,exp_write_rows", [
    ("CHAINED", 0, 0, [5], [5]),
    ("CHAINED", 1, 0, [], [5]),
    ("INDEPENDENT", 0, 0, [5, 6, 7], [5, 6, 7]),
    ("INDEPENDENT", 1, 0, [], [5, 6, 7]),
    ("CHAINED", 0, 1, [], []),
    ("READOUT", 0, 0, [], []),
])
def test_membrane_controller_rows(mode, first, bad, exp_reads, exp_write_rows):
    from gen.layouts import Mode

    cfg = HwConfig(array=6, groups=3, mem_rows=8, leak_int=128, theta_int=100)
    rng = random.Random(mode + str(first))
    mem_init = {r: [rng.randint(-300, 300) for _ in range(cfg.slots)] for r in range(8)}
    x = [[[rng.randint(-200, 200) for _ in range(cfg.slots)] for _ in range(cfg.groups)]]
    desc = {"bank": 0, "tile": 9, "row": 5, "mode": Mode[mode].value, "first": first, "bad": bad}
    log = _run_lif_stage(cfg, [desc], x, mem_init)
    assert log["reads"] == exp_reads
    assert [w[0] for w in log["writes"]] == exp_write_rows
    # the values: F7 chaining from the rows actually read (or 0)
    exp_beats, writes = [], []
    v = None
    for g in range(cfg.groups):
        xg = np.array(x[0][g])
        if mode == "READOUT":
            exp_beats.append((0, list(xg)))
            continue
        if g == 0 or mode == "INDEPENDENT":
            row = 5 + (g if mode == "INDEPENDENT" else 0)
            v = np.zeros(cfg.slots, np.int64) if (first or bad) else np.array(mem_init[row])
        u, o, v = fp.lif_step(cfg, v, xg)
        exp_beats.append((sum(int(b) << k for k, b in enumerate(o)), [int(e) for e in u]))
        writes.append([int(e) for e in v])
    assert log["beats"] == exp_beats
    if mode == "INDEPENDENT" and not bad:
        assert [w[1] for w in log["writes"]] == writes
    elif mode == "CHAINED" and not bad:
        assert [w[1] for w in log["writes"]] == writes[-1:]
