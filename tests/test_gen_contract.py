"""The interface contract of docs/interface.md, point by point, in amaranth.sim.

Each test states one sentence of the document ("Reset", "busy", "Unused
fields", "Errors", "Debug read-back", "Timing") and checks it on the RTL
(:class:`gen.core.LifPeArrayCore`). Reset is driven through the ``sync``
domain's own reset (the ``rst`` port of the Verilog), not a ResetInserter.
Where the numbers matter, the expected values come from
:class:`golden.core_model.CoreModel` or are worked out by hand in the test.
"""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator

from gen.core import LifPeArrayCore
from gen.timing import cycles
from golden.config import ConfigError, HwConfig
from golden.core_model import CoreModel
from golden.encoding import Error, Mode, Op
from golden.schedule import Command

CMD0 = {"op": 0, "row": 0, "base": 0, "mode": 0, "first": 0}


def _cmd(c: Command) -> dict:
    return {"op": int(c.op), "row": c.row, "base": c.base, "mode": int(c.mode), "first": c.first}


def simulate(cfg: HwConfig, bench):
    """Run ``bench(ctx, dut, rst)``; ``rst`` is the sync domain's reset."""
    dut = LifPeArrayCore(cfg)
    top = Module()
    top.domains.sync = cd = ClockDomain("sync")
    top.submodules.core = dut
    sim = Simulator(top)
    sim.add_clock(1e-6, domain="sync")
    out = {}

    async def tb(ctx):
        await bench(ctx, dut, cd.rst, out)

    sim.add_testbench(tb)
    sim.run()
    return out


async def load(ctx, dut, rows):
    for r, row in enumerate(rows):
        ctx.set(dut.wload.valid, 1)
        ctx.set(dut.wload.payload, {"addr": r, "data": [int(w) for w in row]})
        await ctx.tick()
    ctx.set(dut.wload.valid, 0)


async def send(ctx, dut, cmds, beats=None, limit=100):
    """Send commands (Command or dict) back to back; collect beats seen with
    ``out.ready`` as currently set. Returns the number of stall cycles."""
    stalls = 0
    for c in cmds:
        ctx.set(dut.cmd.valid, 1)
        ctx.set(dut.cmd.payload, _cmd(c) if isinstance(c, Command) else {**CMD0, **c})
        for _ in range(limit):
            ready = ctx.get(dut.cmd.ready)
            _collect(ctx, dut, beats)
            await ctx.tick()
            if ready:
                break
            stalls += 1
        else:
            raise AssertionError(f"command {c} not accepted in {limit} cycles")
    ctx.set(dut.cmd.valid, 0)
    return stalls


def _collect(ctx, dut, beats):
    if beats is not None and ctx.get(dut.out.valid) and ctx.get(dut.out.ready):
        p = ctx.get(dut.out.payload)
        beats.append((int(p.spikes), [int(v) for v in p.values], int(p.tile), int(p.group),
                      int(p.last), int(p.readout)))


async def drain(ctx, dut, beats, cycles_=40):
    ctx.set(dut.out.ready, 1)
    for _ in range(cycles_):
        _collect(ctx, dut, beats)
        await ctx.tick()


async def read_row(ctx, dut, cfg, row):
    ctx.set(dut.dbg_addr, row)
    await ctx.tick()
    return _row(ctx.get(dut.dbg_data), cfg)


def _row(word, cfg):
    mw = cfg.mem_width
    f = [(word >> (k * mw)) & ((1 << mw) - 1) for k in range(cfg.slots)]
    return [v - (1 << mw) if v >> (mw - 1) else v for v in f]


def _model_beats(model, cmds):
    out = []
    for c in cmds:
        for b in model.command(c):
            out.append((sum(int(v) << k for k, v in enumerate(b.spikes)),
                        [int(v) for v in b.values], b.wire_tile, b.group, b.last, b.readout))
    return out


CFG = HwConfig(array=4, groups=2, weight_rows=4, mem_rows=6)
W = np.array([[120, 60, -40, 127], [100, 90, 127, 127], [50, -128, 80, 30], [1, 2, 3, 4]])


# ------------------------------------------------------------------ reset
@pytest.mark.parametrize("ready_on_reset_edge", [1, 0])
def test_reset_is_synchronous_drops_the_edge_command_and_keeps_a_started_write(
        ready_on_reset_edge):
    """docs "Reset": outputs change on the first edge that samples rst = 1; a beat
    valid on that edge with out__ready = 1 is transferred (stream rule) and the
    rest of the tile is lost; a command presented on that edge is dropped; a
    membrane write enabled on that edge still happens (here: group 1, computed
    on the reset edge because out__ready = 1 freed the output register; its
    beat is lost), nothing after it; afterwards base = 0, tile 0, CHAINED,
    first = 1."""
    cfg = HwConfig(array=4, groups=2, weight_rows=4, mem_rows=6)

    async def bench(ctx, dut, rst, out):
        await load(ctx, dut, W)
        # fill rows 2, 3 (INDEPENDENT, first = 1), known values
        await send(ctx, dut, [Command(Op.LAYER, 0, 2, Mode.INDEPENDENT, 1), Command(Op.EVENT, 3),
                              Command(Op.TILE)])
        await drain(ctx, dut, [])
        before = [await read_row(ctx, dut, cfg, r) for r in (2, 3)]
        # same rows, first = 0, out blocked: group 0's beat waits
        ctx.set(dut.out.ready, 0)
        await send(ctx, dut, [Command(Op.LAYER, 0, 2, Mode.INDEPENDENT, 0), Command(Op.EVENT, 0),
                              Command(Op.TILE)])
        for _ in range(6):
            await ctx.tick()
        assert ctx.get(dut.out.valid) == 1 and ctx.get(dut.out.payload.group) == 0
        # raise rst together with out.ready and a TILE: nothing changes before the edge
        ctx.set(rst, 1)
        ctx.set(dut.out.ready, ready_on_reset_edge)
        ctx.set(dut.cmd.valid, 1)
        ctx.set(dut.cmd.payload, {**CMD0, "op": int(Op.TILE)})
        assert ctx.get(dut.out.valid) == 1 and ctx.get(dut.busy) == 1
        out["cmd_ready_on_reset_edge"] = ctx.get(dut.cmd.ready)
        await ctx.tick()                       # the reset edge
        ctx.set(rst, 0)
        ctx.set(dut.cmd.valid, 0)
        assert ctx.get(dut.out.valid) == 0 and ctx.get(dut.busy) == 0
        assert ctx.get(dut.error) == 0
        late = []
        await drain(ctx, dut, late)
        out["late_beats"] = late
        out["after"] = [await read_row(ctx, dut, cfg, r) for r in (2, 3)]
        out["before"] = before
        # after reset: no LAYER -> CHAINED, base 0, tile 0, first = 1
        beats = []
        await send(ctx, dut, [Command(Op.EVENT, 0), Command(Op.TILE)], beats)
        await drain(ctx, dut, beats)
        out["beats"] = beats
        out["row0"] = await read_row(ctx, dut, cfg, 0)

    out = simulate(cfg, bench)
    assert out["cmd_ready_on_reset_edge"] == 1          # it looked accepted, yet:
    assert out["late_beats"] == [], "the TILE on the reset edge or the rest of the tile survived"
    # group 0 (row 2) was written with its beat; group 1 (row 3) on the reset edge
    model = CoreModel(cfg)
    for r, row in enumerate(W):
        model.load_weight(r, row)
    _model_beats(model, [Command(Op.LAYER, 0, 2, Mode.INDEPENDENT, 1), Command(Op.EVENT, 3),
                         Command(Op.TILE), Command(Op.LAYER, 0, 2, Mode.INDEPENDENT, 0),
                         Command(Op.EVENT, 0), Command(Op.TILE)])
    assert out["after"][0] == model.mem[2].tolist() != out["before"][0]
    if ready_on_reset_edge:      # group 1 computed on the reset edge: written, beat lost
        assert out["after"][1] == model.mem[3].tolist() != out["before"][1]
    else:                        # out blocked on the reset edge: group 1 never computed
        assert out["after"][1] == out["before"][1]
    model.reset()
    assert out["beats"] == _model_beats(model, [Command(Op.EVENT, 0), Command(Op.TILE)])
    assert out["beats"][0][1] == [120, 60] and out["beats"][0][2] == 0   # first = 1, tile 0
    assert out["row0"] == model.mem[0].tolist()                          # base 0


# ---------------------------------------------------------- wload / EVENT
def test_wload_and_event_on_the_same_edge_reads_the_old_row():
    async def bench(ctx, dut, rst, out):
        await load(ctx, dut, W)
        ctx.set(dut.out.ready, 1)
        await send(ctx, dut, [{"op": int(Op.LAYER), "mode": int(Mode.READOUT)}])
        ctx.set(dut.wload.valid, 1)
        ctx.set(dut.wload.payload, {"addr": 1, "data": [-5, -6, -7, -8]})
        await send(ctx, dut, [{"op": int(Op.EVENT), "row": 1}])    # same edge as the write
        ctx.set(dut.wload.valid, 0)
        beats = []
        await send(ctx, dut, [{"op": int(Op.EVENT), "row": 1}, {"op": int(Op.TILE)}], beats)
        await drain(ctx, dut, beats)
        out["x"] = [v for b in beats for v in b[1]]

    out = simulate(CFG, bench)
    assert out["x"] == [100 - 5, 90 - 6, 127 - 7, 127 - 8]    # old row, then new row


# ------------------------------------------------------------------- busy
def test_busy_is_outstanding_beats_or_an_event_of_the_two_previous_edges():
    async def bench(ctx, dut, rst, out):
        await load(ctx, dut, W)
        ctx.set(dut.out.ready, 1)
        trace = []
        await send(ctx, dut, [{"op": int(Op.LAYER), "first": 1}])
        trace.append(ctx.get(dut.busy))                    # after LAYER: 0
        await send(ctx, dut, [{"op": int(Op.EVENT), "row": 0}])
        trace.append(ctx.get(dut.busy))                    # EVENT on the previous edge: 1
        await ctx.tick()
        trace.append(ctx.get(dut.busy))                    # ... two edges ago (being added): 1
        await ctx.tick()
        trace.append(ctx.get(dut.busy))                    # open tile waits for its TILE: 0
        await ctx.tick()
        trace.append(ctx.get(dut.busy))
        await send(ctx, dut, [{"op": int(Op.TILE)}])
        trace.append(ctx.get(dut.busy))                    # beats outstanding: 1
        out["trace"] = trace

    assert simulate(CFG, bench)["trace"] == [0, 1, 1, 0, 0, 1]


@pytest.mark.parametrize("groups", [1, 2])
def test_busy_stays_1_while_the_last_beat_waits_on_out(groups):
    """§4: with out__ready held at 0 the last beat of a tile waits in the output
    register; busy must stay 1 until it transfers (GROUPS = 1: the LIF stage is
    idle again while that beat waits)."""
    cfg = HwConfig(array=4, groups=groups, weight_rows=4, mem_rows=6)

    async def bench(ctx, dut, rst, out):
        await load(ctx, dut, W)
        ctx.set(dut.out.ready, 0)
        await send(ctx, dut, [{"op": int(Op.LAYER), "first": 1}, {"op": int(Op.EVENT)},
                              {"op": int(Op.TILE)}])
        seen = []
        for _ in range(30):
            await ctx.tick()
            seen.append((ctx.get(dut.out.valid), ctx.get(dut.busy)))
        out["seen"] = seen
        ctx.set(dut.out.ready, 1)
        n = 0
        for _ in range(10):
            n += ctx.get(dut.out.valid)
            await ctx.tick()
        out["after"] = (n, ctx.get(dut.busy))

    out = simulate(cfg, bench)
    assert out["seen"][-1][0] == 1                              # a beat is waiting
    assert all(busy == 1 for _, busy in out["seen"]), out["seen"]
    assert out["after"] == (groups, 0)


# --------------------------------------------------- unused / reserved fields
def test_unused_fields_are_ignored_and_a_reserved_mode_layer_is_dropped():
    cfg = HwConfig(array=4, groups=2, weight_rows=4, mem_rows=6)
    cmds = [Command(Op.LAYER, 3, 0, Mode.INDEPENDENT, 1),         # row unused by LAYER
            Command(Op.EVENT, 0, 5, Mode.RESERVED, 1),            # base/mode/first unused
            Command(Op.TILE, 2, 7, Mode.RESERVED, 0),             # rows 0, 1
            Command(Op.LAYER, 0, 4, Mode.RESERVED, 0),            # dropped: error bit 0
            Command(Op.EVENT, 1), Command(Op.TILE, 0, 0, Mode.RESERVED, 1)]   # tile 1: rows 2, 3

    async def bench(ctx, dut, rst, out):
        await load(ctx, dut, W)
        ctx.set(dut.out.ready, 1)
        beats = []
        await send(ctx, dut, cmds[:3], beats)
        await drain(ctx, dut, beats)
        out["err_before"] = ctx.get(dut.error)
        await send(ctx, dut, cmds[3:], beats)
        await drain(ctx, dut, beats)
        out["beats"], out["error"] = beats, ctx.get(dut.error)
        out["rows"] = [await read_row(ctx, dut, cfg, r) for r in range(6)]

    out = simulate(cfg, bench)
    assert out["err_before"] == 0                       # mode = 3 inside EVENT/TILE: no error
    assert out["error"] == Error.RESERVED_OP_OR_MODE
    # the dropped LAYER kept INDEPENDENT, base 0, first = 1 and the tile counter:
    assert [b[2] for b in out["beats"]] == [0, 0, 1, 1]
    assert out["beats"][2][1] == [100, 90] and out["beats"][3][1] == [127, 127]   # first: U = X
    model = CoreModel(cfg)
    for r, row in enumerate(W):
        model.load_weight(r, row)
    assert out["beats"] == _model_beats(model, cmds)
    assert model.error == out["error"]
    for r in range(4):
        assert out["rows"][r] == model.mem[r].tolist()


def test_first_with_a_row_out_of_range_still_sets_bit_2():
    cfg = HwConfig(array=4, groups=2, weight_rows=4, mem_rows=5)

    async def bench(ctx, dut, rst, out):
        await load(ctx, dut, W)
        ctx.set(dut.out.ready, 1)
        beats = []
        # INDEPENDENT base 4: rows 4 (ok) and 5 (out of range): wholly bad
        await send(ctx, dut, [Command(Op.LAYER, 0, 4, Mode.INDEPENDENT, 1), Command(Op.EVENT, 0),
                              Command(Op.TILE)], beats)
        await drain(ctx, dut, beats)
        out["error"], out["beats"] = ctx.get(dut.error), beats

    out = simulate(cfg, bench)
    assert out["error"] == Error.MEM_ROW_RANGE
    assert [b[1] for b in out["beats"]] == [[120, 60], [-40, 127]]     # V = 0: U = X


# ------------------------------------------------------------- debug port
def test_dbg_data_is_valid_from_the_first_idle_edge():
    """docs/interface.md "Debug read-back": dbg shares the LIF read port; a read
    sampled on an edge with busy = 0 shows the row (the just-written value),
    one cycle later."""
    async def bench(ctx, dut, rst, out):
        await load(ctx, dut, W)
        ctx.set(dut.out.ready, 1)
        await send(ctx, dut, [Command(Op.LAYER, 0, 1, Mode.CHAINED, 1), Command(Op.EVENT, 3),
                              Command(Op.TILE)])
        await drain(ctx, dut, [])
        out["old"] = await read_row(ctx, dut, CFG, 1)
        ctx.set(dut.dbg_addr, 0)                     # a different row while busy
        await send(ctx, dut, [Command(Op.LAYER, 0, 1, Mode.CHAINED, 0), Command(Op.EVENT, 0),
                              Command(Op.TILE)])
        ctx.set(dut.dbg_addr, 1)
        while not ctx.get(dut.busy) == 0:
            await ctx.tick()
        await ctx.tick()                             # the first edge sampled with busy = 0
        out["new"] = _row(ctx.get(dut.dbg_data), CFG)
        out["again"] = await read_row(ctx, dut, CFG, 1)
        out["row0"] = await read_row(ctx, dut, CFG, 0)

    out = simulate(CFG, bench)
    assert out["new"] != out["old"] and out["new"] == out["again"]
    assert out["row0"] != out["new"]


# ------------------------------------------------------------------ banks
def test_bank_free_latency_matches_the_manifest():
    """§4: TILE on edge k -> its bank accumulates again after edge
    k + bank_free_latency (out__ready = 1)."""
    for groups in (1, 2, 4):
        cfg = HwConfig(array=8, groups=groups, weight_rows=4, mem_rows=4)

        async def bench(ctx, dut, rst, out):
            ctx.set(dut.out.ready, 1)
            await send(ctx, dut, [{"op": int(Op.LAYER), "first": 1}, {"op": int(Op.TILE)}])
            # edge k was the first TILE's; the second TILE fills the other bank
            edge = 0
            ctx.set(dut.cmd.valid, 1)
            ctx.set(dut.cmd.payload, {**CMD0, "op": int(Op.TILE)})
            assert ctx.get(dut.cmd.ready)
            await ctx.tick()
            edge = 1
            ctx.set(dut.cmd.payload, {**CMD0, "op": int(Op.EVENT)})
            while not ctx.get(dut.cmd.ready):
                await ctx.tick()
                edge += 1
            out["free_after_edge"] = edge
            ctx.set(dut.cmd.valid, 0)

        out = simulate(cfg, bench)
        assert out["free_after_edge"] == cycles(cfg)["bank_free_latency"], groups


def test_under_backpressure_a_bank_is_freed_on_the_edge_presenting_its_last_beat():
    cfg = HwConfig(array=8, groups=2, weight_rows=4, mem_rows=4)

    async def bench(ctx, dut, rst, out):
        ctx.set(dut.out.ready, 0)
        await send(ctx, dut, [{"op": int(Op.LAYER), "first": 1}, {"op": int(Op.TILE)},
                              {"op": int(Op.TILE)}])
        for _ in range(10):
            await ctx.tick()
        # both banks hold tiles, group 0 of tile 0 waits on out
        out["ready_blocked"] = ctx.get(dut.cmd.ready)
        ctx.set(dut.out.ready, 1)
        await ctx.tick()            # group 0 leaves; group 1 (last) is presented on this edge
        ctx.set(dut.out.ready, 0)
        out["after"] = (ctx.get(dut.out.valid), ctx.get(dut.out.payload.last),
                        ctx.get(dut.cmd.ready))

    out = simulate(cfg, bench)
    assert out["ready_blocked"] == 0
    assert out["after"] == (1, 1, 1)       # last beat still waiting, bank already free


@pytest.mark.parametrize("groups", [2, 4])
def test_first_two_tiles_never_stall(groups):
    cfg = HwConfig(array=8, groups=groups, weight_rows=4, mem_rows=4)

    async def bench(ctx, dut, rst, out):
        ctx.set(dut.out.ready, 0)                          # held 0 throughout
        out["stalls"] = await send(ctx, dut, [{"op": int(Op.LAYER), "first": 1}]
                                   + [{"op": int(Op.EVENT)}] * 3 + [{"op": int(Op.TILE)}]
                                   + [{"op": int(Op.EVENT)}] * 2 + [{"op": int(Op.TILE)}])
        ctx.set(dut.cmd.valid, 1)
        ctx.set(dut.cmd.payload, {**CMD0, "op": int(Op.EVENT)})
        ready = []
        for _ in range(20):
            ready.append(ctx.get(dut.cmd.ready))
            await ctx.tick()
        out["third"] = ready

    out = simulate(cfg, bench)
    assert out["stalls"] == 0
    assert not any(out["third"])         # the third tile waits for a bank


def test_leak_bits_at_least_1():
    with pytest.raises(ConfigError):
        HwConfig(leak_bits=0, leak_int=1)
    HwConfig(leak_bits=1, leak_int=1)


# ------------------------------------------------------- §4: value widths
def test_values_are_sign_extended_when_acc_is_wider_than_mem():
    """§4: VW = max(AW, MW) = AW; U (MW bits) must be sign-extended into VW."""
    cfg = HwConfig(array=4, groups=2, weight_rows=4, mem_rows=4, weight_width=8,
                   acc_width=12, mem_width=8, frac_bits=4, leak_bits=2, leak_int=2,
                   theta_int=50)
    w = np.array([[-100, -3, 90, -128], [-100, -100, -100, -100], [0] * 4, [0] * 4])

    async def bench(ctx, dut, rst, out):
        await load(ctx, dut, w)
        ctx.set(dut.out.ready, 1)
        cmds = [Command(Op.LAYER, 0, 0, Mode.CHAINED, 1), Command(Op.EVENT, 0),
                Command(Op.EVENT, 1), Command(Op.TILE),
                Command(Op.LAYER, 0, 0, Mode.READOUT, 0), Command(Op.EVENT, 1),
                Command(Op.EVENT, 1), Command(Op.EVENT, 0), Command(Op.TILE)]
        beats = []
        await send(ctx, dut, cmds, beats)
        await drain(ctx, dut, beats)
        out["beats"], out["cmds"] = beats, cmds

    out = simulate(cfg, bench)
    model = CoreModel(cfg)
    for r, row in enumerate(w):
        model.load_weight(r, row)
    exp = _model_beats(model, out["cmds"])
    assert out["beats"] == exp
    vals = [v for b in exp for v in b[1]]
    assert min(vals) < cfg.mem_min                 # a READOUT X below the membrane range
    assert any(cfg.mem_min <= v < 0 for b in exp if not b[5] for v in b[1])   # negative U


# -------------------------------------------------- §4: tile counter width
@pytest.mark.slow
def test_tile_counter_wraps_mod_2_16_and_rows_use_the_full_tile():
    """§4: a layer of 2**16 + 2 tiles (whole core; about 130k cycles, so `slow`;
    the Sequencer-only test below is the fast default form). The ``tile`` field counts 0 .. 65535, 0, 1
    (wraps modulo 2**16); the row check uses the unreduced tile, so CHAINED tile
    65536 (row 65536 + base, out of range) is bad: it reads 0 and writes nothing,
    even though the 16-bit field shows 0."""
    cfg = HwConfig(array=2, groups=1, weight_rows=2, mem_rows=2)
    n_tiles = (1 << 16) + 2

    async def bench(ctx, dut, rst, out):
        await load(ctx, dut, [[7, -3], [1, 1]])
        ctx.set(dut.out.ready, 1)
        # row 0 <- V' = [7, -3] (first = 1)
        await send(ctx, dut, [Command(Op.LAYER, 0, 0, Mode.CHAINED, 1), Command(Op.EVENT, 0),
                              Command(Op.TILE)])
        await drain(ctx, dut, [], 6)
        await send(ctx, dut, [Command(Op.LAYER, 0, 0, Mode.CHAINED, 0)])
        ctx.set(dut.cmd.valid, 1)
        ctx.set(dut.cmd.payload, {**CMD0, "op": int(Op.TILE)})
        sent, tiles, lasts = 0, [], []
        # GROUPS = 1, no EVENTs: one TILE every 2 cycles; count accepted TILEs
        while sent < n_tiles:
            if ctx.get(dut.out.valid):
                tiles.append(ctx.get(dut.out.payload.tile))
                if len(tiles) > 65533:
                    lasts.append([int(v) for v in ctx.get(dut.out.payload.values)])
            sent += ctx.get(dut.cmd.ready)
            await ctx.tick()
        ctx.set(dut.cmd.valid, 0)
        for _ in range(8):
            if ctx.get(dut.out.valid):
                tiles.append(ctx.get(dut.out.payload.tile))
                lasts.append([int(v) for v in ctx.get(dut.out.payload.values)])
            await ctx.tick()
        out["tiles"], out["lasts"] = tiles, lasts
        out["error"] = ctx.get(dut.error)
        out["row0"] = await read_row(ctx, dut, cfg, 0)

    out = simulate(cfg, bench)
    tiles = out["tiles"]
    assert len(tiles) == n_tiles
    assert tiles[:3] == [0, 1, 2] and tiles[-4:] == [65534, 65535, 0, 1]
    assert tiles == [t % 65536 for t in range(n_tiles)]
    assert out["error"] == Error.MEM_ROW_RANGE              # tiles 2.. are out of range
    # tile 65536 shows field 0 but is out of range: V = 0, so U = X = 0, row 0 untouched
    assert out["lasts"][-2] == [0, 0]
    model = CoreModel(cfg, strict=False)
    model.load_weight(0, [7, -3])
    model.load_weight(1, [1, 1])
    model.command(Command(Op.LAYER, 0, 0, Mode.CHAINED, 1))
    model.command(Command(Op.EVENT, 0))
    model.command(Command(Op.TILE))
    model.command(Command(Op.LAYER, 0, 0, Mode.CHAINED, 0))
    for _ in range(3):                            # tiles 0, 1 (rows 0, 1) and 2 (bad)
        model.command(Command(Op.TILE))
    model.tile = (1 << 16)                        # jump: tiles 3 .. 65535 are all alike
    (beat,) = model.command(Command(Op.TILE))
    assert beat.wire_tile == 0 and beat.values.tolist() == out["lasts"][-2]
    # row 0 holds what tile 0 wrote (L of [7, -3] = [2, -1]); tile 65536 did not touch it
    assert out["row0"] == model.mem[0].tolist() == [2, -1]


def test_sequencer_tile_counter_wraps_and_rows_use_the_full_tile():
    """The fast form of the test above, on the Sequencer alone (one TILE per
    cycle): the descriptor's ``tile`` counts modulo 2**16, ``bad`` uses the
    unreduced tile (CHAINED tile 65536 at base 0 is out of range)."""
    from gen.sequencer import Sequencer
    cfg = HwConfig(array=2, groups=1, weight_rows=2, mem_rows=2)
    dut = Sequencer(cfg)
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    n_tiles = (1 << 16) + 2
    out = {"tiles": [], "bad": []}

    async def bench(ctx):
        ctx.set(dut.tile.ready, 1)
        ctx.set(dut.cmd.valid, 1)
        ctx.set(dut.cmd.payload, {**CMD0, "op": int(Op.LAYER), "first": 1})
        await ctx.tick()
        ctx.set(dut.cmd.payload, {**CMD0, "op": int(Op.TILE)})
        sent = 0
        while sent < n_tiles or ctx.get(dut.tile.valid):
            if sent == n_tiles:
                ctx.set(dut.cmd.valid, 0)
            if ctx.get(dut.tile.valid):
                d = ctx.get(dut.tile.payload)
                out["tiles"].append(int(d.tile))
                out["bad"].append(int(d.bad))
            sent += ctx.get(dut.cmd.valid) & ctx.get(dut.cmd.ready)
            await ctx.tick()
        out["error"] = ctx.get(dut.error)

    sim.add_testbench(bench)
    sim.run()
    assert out["tiles"] == [t % 65536 for t in range(n_tiles)]
    assert out["bad"] == [0, 0] + [1] * (n_tiles - 2)       # rows 0, 1 only; 65536 stays bad
    assert out["error"] == Error.MEM_ROW_RANGE
