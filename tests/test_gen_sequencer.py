"""Unit tests of the Sequencer and WeightBuffer blocks on their own (amaranth.sim).

Expected values come from docs/interface.md (command encoding, EVENT/TILE
timing, membrane rows, error bits, bank overlap) and the HwConfig, through the
small reference model below; payloads are packed/unpacked bit by bit from the
documented field order, not through gen.layouts.
"""

from __future__ import annotations

import random

import pytest
from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator

from gen.sequencer import Sequencer
from gen.timing import cycles
from gen.weight_buffer import WeightBuffer
from golden.config import HwConfig

EVENT, TILE, LAYER, OP_RESERVED = 0, 1, 2, 3
CHAINED, READOUT, INDEPENDENT, MODE_RESERVED = 0, 1, 2, 3

# weight_rows / mem_rows not powers of two: RA = 3 bits address 8 rows (5 valid),
# MA = 3 bits address 8 membrane rows (6 valid).
CFG = HwConfig(array=6, groups=3, weight_rows=5, mem_rows=6)
#: edges from an EVENT's accepting edge to the edge that adds its row
ADD_DELAY = cycles(CFG)["event_latency"] - 1
CFGS = {
    "a6g3_w5_m6": CFG,
    "a4g1_w3_m3": HwConfig(array=4, groups=1, weight_rows=3, mem_rows=3),
    "a8g4_w6_m13": HwConfig(array=8, groups=4, weight_rows=6, mem_rows=13),
}


def clog2(n):
    return max(1, (n - 1).bit_length())


def cmd_word(cfg, op, row=0, base=0, mode=0, first=0):
    """cmd__payload per docs/interface.md: op(2), row(RA), base(MA), mode(2), first(1)."""
    ra, ma = clog2(cfg.weight_rows), clog2(cfg.mem_rows)
    assert 0 <= op < 4 and 0 <= row < (1 << ra) and 0 <= base < (1 << ma)
    assert 0 <= mode < 4 and first in (0, 1)
    return op | row << 2 | base << (2 + ra) | mode << (2 + ra + ma) | first << (4 + ra + ma)


def decode_cmd(cfg, word):
    ra, ma = clog2(cfg.weight_rows), clog2(cfg.mem_rows)
    return dict(op=word & 3, row=(word >> 2) & ((1 << ra) - 1),
                base=(word >> (2 + ra)) & ((1 << ma) - 1),
                mode=(word >> (2 + ra + ma)) & 3, first=(word >> (4 + ra + ma)) & 1)


class RefModel:
    """Command semantics of docs/interface.md, at the Sequencer's boundary."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.reset()

    def reset(self):
        self.base, self.mode, self.first, self.tile, self.bank = 0, CHAINED, 1, 0, 0
        self.error = 0

    def apply(self, word):
        """Returns ('read', row, bank) | ('tile', desc) | None (dropped / LAYER)."""
        cfg, c = self.cfg, decode_cmd(self.cfg, word)
        if c["op"] == OP_RESERVED:
            self.error |= 1
            return None
        if c["op"] == LAYER:
            if c["mode"] == MODE_RESERVED:
                self.error |= 1
                return None
            self.base, self.mode, self.first, self.tile = c["base"], c["mode"], c["first"], 0
            return None
        if c["op"] == EVENT:
            if c["row"] >= cfg.weight_rows:
                self.error |= 2
                return None
            return ("read", c["row"], self.bank)
        # TILE
        n = cfg.groups
        if self.mode == CHAINED:
            rows = [self.base + self.tile]
        elif self.mode == INDEPENDENT:
            rows = [self.base + self.tile * n + g for g in range(n)]
        else:
            rows = []
        bad = int(any(r >= cfg.mem_rows for r in rows))
        self.error |= 4 * bad
        desc = dict(bank=self.bank, tile=self.tile % (1 << 16), mode=self.mode,
                    first=self.first, bad=bad, row=rows[0] if rows else None)
        self.tile += 1
        self.bank ^= 1
        return ("tile", desc)


class Harness:
    """Sequencer in an explicit sync domain (so the test can drive reset) and a
    per-edge log of what crossed each interface. ``edge`` counts rising edges;
    an entry (e, ...) was present in the cycle that ends with edge e."""

    def __init__(self, cfg, auto_consumer=None):
        self.cfg = cfg
        self.dut = Sequencer(cfg)
        self.top = Module()
        self.top.domains.sync = self.cd = ClockDomain("sync")
        self.top.submodules.dut = self.dut
        self.edge = 0
        self.accepted, self.reads, self.adds, self.tiles, self.clears = [], [], [], [], []
        self.ready_log, self.error_log, self.busy_log = [], [], []
        self.cycle_log = []                # (edge, tile valid, tile ready, next_valid, next_tile)
        self.auto = auto_consumer          # None, or a random.Random for hold times
        self.wait, self.hold = 0, 0

    async def step(self, ctx):
        d = self.dut
        tv = ctx.get(d.tile.valid)
        if self.auto is not None:
            ctx.set(d.tile.ready, int(bool(tv) and self.wait >= self.hold))
        tr = ctx.get(d.tile.ready)
        e = self.edge
        self.cycle_log.append((e, tv, tr, ctx.get(d.next_valid),
                               ctx.get(d.next_tile.as_value()), ctx.get(d.tile.payload.as_value())))
        self.ready_log.append((e, ctx.get(d.cmd.ready)))
        self.busy_log.append((e, ctx.get(d.busy)))
        if ctx.get(d.cmd.valid) and ctx.get(d.cmd.ready):
            self.accepted.append((e, ctx.get(d.cmd.payload.as_value())))
        if ctx.get(d.wb_rd_en):
            self.reads.append((e, ctx.get(d.wb_rd_addr)))
        if ctx.get(d.add_en):
            self.adds.append((e, ctx.get(d.add_bank)))
        if ctx.get(d.clear_en):
            self.clears.append((e, ctx.get(d.clear_bank)))
        if tv and tr:
            p = ctx.get(d.tile.payload)
            self.tiles.append((e, dict(bank=int(p.bank), tile=int(p.tile), row=int(p.row),
                                       mode=int(p.mode), first=int(p.first), bad=int(p.bad))))
            self.wait = 0
            if self.auto is not None:
                self.hold = self.auto.choice([0, 0, 1, 2, 3, 5, 8])
        elif tv:
            self.wait += 1
        await ctx.tick()
        self.error_log.append((e, ctx.get(d.error)))
        self.edge += 1

    async def issue(self, ctx, word, limit=40):
        """Offer ``word`` until it transfers; returns the edge it transferred on."""
        ctx.set(self.dut.cmd.valid, 1)
        ctx.set(self.dut.cmd.payload.as_value(), word)
        for _ in range(limit):
            ready = ctx.get(self.dut.cmd.ready)
            e = self.edge
            await self.step(ctx)
            if ready:
                ctx.set(self.dut.cmd.valid, 0)
                return e
        raise AssertionError(f"command {word:#x} not accepted in {limit} cycles")

    async def idle(self, ctx, n):
        ctx.set(self.dut.cmd.valid, 0)
        for _ in range(n):
            await self.step(ctx)

    async def reset(self, ctx):
        ctx.set(self.cd.rst, 1)
        await self.step(ctx)
        ctx.set(self.cd.rst, 0)

    def run(self, bench):
        async def tb(ctx):
            await bench(ctx, self)
        sim = Simulator(self.top)
        sim.add_clock(1e-6)
        sim.add_testbench(tb)
        sim.run()


def _check_desc(cfg, got, exp):
    for k in ("bank", "tile", "mode", "first", "bad"):
        assert got[k] == exp[k], (k, got, exp)
    if exp["row"] is not None and not exp["bad"]:
        assert got["row"] == exp["row"], (got, exp)


# ------------------------------------------------------------------ decode
def test_event_pipeline_timing_and_throughput():
    cfg = CFG
    h = Harness(cfg)
    rows = [0, 4, 2, 2, 1, 3]

    async def bench(ctx, h):
        d = h.dut
        ctx.set(d.tile.ready, 0)
        assert ctx.get(d.cmd.ready) == 1 and ctx.get(d.busy) == 0
        await h.issue(ctx, cmd_word(cfg, LAYER, mode=CHAINED, base=0, first=1))
        assert ctx.get(d.add_en) == 0                      # LAYER adds nothing
        # back-to-back EVENTs: one accepted per cycle; each read in its own cycle
        for i, r in enumerate(rows):
            ctx.set(d.cmd.valid, 1)
            ctx.set(d.cmd.payload.as_value(), cmd_word(cfg, EVENT, row=r))
            assert ctx.get(d.cmd.ready) == 1
            assert ctx.get(d.wb_rd_en) == 1 and ctx.get(d.wb_rd_addr) == r
            await h.step(ctx)
            assert ctx.get(d.add_en) == int(i + 1 >= ADD_DELAY)
            assert ctx.get(d.busy) == 1
        # the cycles after the last EVENT: the adds still in flight; nothing
        # read now (valid = 0)
        ctx.set(d.cmd.valid, 0)
        for _ in range(ADD_DELAY):
            assert ctx.get(d.wb_rd_en) == 0
            assert ctx.get(d.add_en) == 1 and ctx.get(d.add_bank) == 0
            assert ctx.get(d.busy) == 1
            await h.step(ctx)
        assert ctx.get(d.add_en) == 0 and ctx.get(d.busy) == 0
        # valid = 0 with an EVENT payload: not accepted, nothing read or added
        ctx.set(d.cmd.payload.as_value(), cmd_word(cfg, EVENT, row=1))
        assert ctx.get(d.wb_rd_en) == 0
        await h.idle(ctx, 2)
        assert ctx.get(d.add_en) == 0

    h.run(bench)
    ev = [e for e, w in h.accepted if decode_cmd(cfg, w)["op"] == EVENT]
    assert ev == list(range(ev[0], ev[0] + len(rows)))               # 1 per cycle
    assert h.reads == [(e, r) for e, r in zip(ev, rows)]              # read on edge k
    assert h.adds == [(e + ADD_DELAY, 0) for e in ev]                 # added on edge k+2


def test_tile_handoff_descriptor_and_bank_flip():
    cfg = CFG  # N = 3, mem_rows = 6
    h = Harness(cfg)
    log = {}

    async def bench(ctx, h):
        d = h.dut
        ctx.set(d.tile.ready, 0)
        await h.issue(ctx, cmd_word(cfg, LAYER, mode=CHAINED, base=2, first=0))
        e_ev = await h.issue(ctx, cmd_word(cfg, EVENT, row=1))
        assert ctx.get(d.tile.valid) == 0
        e_t = await h.issue(ctx, cmd_word(cfg, TILE))
        assert e_t == e_ev + 1
        # TILE on edge k: tile.valid is 1 after edge k, the EVENT just before it
        # is added on edge k+1 into the bank being closed
        assert ctx.get(d.add_en) == 1 and ctx.get(d.add_bank) == 0
        assert e_t + 1 == e_ev + ADD_DELAY
        assert ctx.get(d.tile.valid) == 1
        p = ctx.get(d.tile.payload)
        log["t0"] = dict(bank=int(p.bank), tile=int(p.tile), row=int(p.row), mode=int(p.mode),
                         first=int(p.first), bad=int(p.bad))
        assert ctx.get(d.clear_en) == 0                     # not released yet
        # next EVENT accumulates into the other bank, right away
        e2 = await h.issue(ctx, cmd_word(cfg, EVENT, row=3))
        assert e2 == e_t + 1
        log["e2"] = e2
        # release tile 0: clear_en for its bank in the cycle tile.ready is raised
        ctx.set(d.tile.ready, 1)
        assert ctx.get(d.clear_en) == 1 and ctx.get(d.clear_bank) == 0
        await h.step(ctx)
        ctx.set(d.tile.ready, 0)
        assert ctx.get(d.tile.valid) == 0
        await h.issue(ctx, cmd_word(cfg, TILE))
        p = ctx.get(d.tile.payload)
        log["t1"] = dict(bank=int(p.bank), tile=int(p.tile), row=int(p.row), mode=int(p.mode),
                         first=int(p.first), bad=int(p.bad))
        # INDEPENDENT: first row = base + tile * N
        await h.issue(ctx, cmd_word(cfg, LAYER, mode=INDEPENDENT, base=0, first=1))
        ctx.set(d.tile.ready, 1)
        await h.step(ctx)                                   # release tile 1
        ctx.set(d.tile.ready, 0)
        await h.issue(ctx, cmd_word(cfg, TILE))             # tile 0 of the new layer
        ctx.set(d.tile.ready, 1)
        await h.step(ctx)
        await h.issue(ctx, cmd_word(cfg, TILE))             # tile 1
        await h.step(ctx)
        await h.issue(ctx, cmd_word(cfg, LAYER, mode=READOUT, base=7, first=0))
        await h.issue(ctx, cmd_word(cfg, TILE))
        await h.idle(ctx, 2)
        assert ctx.get(d.error) == 0

    h.run(bench)
    assert (log["e2"] + ADD_DELAY, 1) in h.adds           # into the other bank
    assert log["t0"]["bank"] == 0 and log["t0"]["tile"] == 0 and log["t0"]["row"] == 2
    assert log["t0"]["mode"] == CHAINED and log["t0"]["first"] == 0 and log["t0"]["bad"] == 0
    assert log["t1"]["bank"] == 1 and log["t1"]["tile"] == 1 and log["t1"]["row"] == 3
    got = [t for _, t in h.tiles]
    assert [t["bank"] for t in got] == [0, 1, 0, 1, 0]
    assert [(t["tile"], t["mode"], t["first"], t["bad"]) for t in got[2:]] == [
        (0, INDEPENDENT, 1, 0), (1, INDEPENDENT, 1, 0), (0, READOUT, 0, 0)]
    assert [t["row"] for t in got[2:4]] == [0, 0 + 1 * cfg.groups]
    assert h.clears == [(e, t["bank"]) for e, t in h.tiles]


def test_ready_drops_only_when_both_banks_busy():
    cfg = CFG
    h = Harness(cfg)

    async def bench(ctx, h):
        d = h.dut
        ctx.set(d.tile.ready, 0)
        assert ctx.get(d.cmd.ready) == 1                   # 1 right after reset
        await h.issue(ctx, cmd_word(cfg, EVENT, row=0))
        await h.issue(ctx, cmd_word(cfg, TILE))            # bank 0 busy
        assert ctx.get(d.cmd.ready) == 1
        await h.issue(ctx, cmd_word(cfg, EVENT, row=1))    # into bank 1
        await h.issue(ctx, cmd_word(cfg, TILE))            # bank 1 busy too
        # both banks busy: ready is 0 whatever valid/payload are
        for valid in (0, 1):
            for word in (cmd_word(cfg, EVENT, row=2), cmd_word(cfg, TILE),
                         cmd_word(cfg, LAYER, mode=READOUT), cmd_word(cfg, OP_RESERVED)):
                ctx.set(d.cmd.valid, valid)
                ctx.set(d.cmd.payload.as_value(), word)
                assert ctx.get(d.cmd.ready) == 0
        # hold an EVENT for 4 cycles: nothing accepted, read or added, no error
        ctx.set(d.cmd.valid, 1)
        ctx.set(d.cmd.payload.as_value(), cmd_word(cfg, EVENT, row=2))
        n_acc = len(h.accepted)
        for _ in range(4):
            assert ctx.get(d.wb_rd_en) == 0
            await h.step(ctx)
            assert ctx.get(d.cmd.ready) == 0 and ctx.get(d.add_en) == 0
        assert len(h.accepted) == n_acc and ctx.get(d.error) == 0
        assert ctx.get(d.busy) == 1
        # release the older tile (bank 0): ready returns after that edge
        assert ctx.get(d.tile.payload).bank == 0
        ctx.set(d.tile.ready, 1)
        await h.step(ctx)
        ctx.set(d.tile.ready, 0)
        assert ctx.get(d.cmd.ready) == 1
        assert ctx.get(d.tile.valid) == 1 and ctx.get(d.tile.payload).bank == 1
        assert ctx.get(d.wb_rd_en) == 1 and ctx.get(d.wb_rd_addr) == 2
        e = await h.issue(ctx, cmd_word(cfg, EVENT, row=2))  # the held EVENT, into bank 0
        ctx.set(d.cmd.valid, 0)
        await h.idle(ctx, ADD_DELAY - 1)
        assert ctx.get(d.add_en) == 1 and ctx.get(d.add_bank) == 0 and e == h.edge - ADD_DELAY
        ctx.set(d.tile.ready, 1)
        await h.step(ctx)
        ctx.set(d.tile.ready, 0)
        await h.step(ctx)
        assert ctx.get(d.busy) == 0 and ctx.get(d.cmd.ready) == 1

    h.run(bench)
    stalled = [e for e, r in h.ready_log if not r]
    assert len(stalled) == 5                      # 4 held cycles + the release cycle
    assert h.clears == [(e, t["bank"]) for e, t in h.tiles] and len(h.tiles) == 2


def test_layer_resets_tile_counter_and_reserved_dropped():
    cfg = CFG
    h = Harness(cfg, auto_consumer=random.Random(0))

    async def bench(ctx, h):
        d = h.dut
        await h.issue(ctx, cmd_word(cfg, LAYER, mode=CHAINED, base=1, first=0))
        for _ in range(3):
            await h.issue(ctx, cmd_word(cfg, TILE))        # tiles 0, 1, 2: rows 1, 2, 3
        await h.idle(ctx, 12)
        assert ctx.get(d.error) == 0
        # reserved op: error bit 0, dropped (no read, no tile, counter unchanged)
        await h.issue(ctx, cmd_word(cfg, OP_RESERVED, row=1, base=0, mode=0, first=1))
        assert ctx.get(d.error) == 0b001 and ctx.get(d.add_en) == 0
        assert ctx.get(d.tile.valid) == 0
        # reserved mode: error bit 0, LAYER dropped (base/mode/first/counter kept)
        await h.issue(ctx, cmd_word(cfg, LAYER, mode=MODE_RESERVED, base=0, first=1))
        assert ctx.get(d.error) == 0b001
        await h.issue(ctx, cmd_word(cfg, TILE))            # tile 3, row 4
        await h.idle(ctx, 12)
        await h.issue(ctx, cmd_word(cfg, LAYER, mode=CHAINED, base=0, first=1))
        await h.issue(ctx, cmd_word(cfg, TILE))            # tile counter back to 0
        await h.idle(ctx, 12)
        for _ in range(10):                                # sticky
            assert ctx.get(d.error) == 0b001
            await h.step(ctx)
        await h.reset(ctx)
        assert ctx.get(d.error) == 0

    h.run(bench)
    got = [(t["tile"], t["row"], t["mode"], t["first"], t["bad"]) for _, t in h.tiles]
    assert got == [(0, 1, CHAINED, 0, 0), (1, 2, CHAINED, 0, 0), (2, 3, CHAINED, 0, 0),
                   (3, 4, CHAINED, 0, 0), (0, 0, CHAINED, 1, 0)]
    assert h.reads == []


def test_error_bit1_event_row_out_of_range():
    cfg = CFG   # weight_rows = 5, RA = 3: rows 5..7 are addressable but out of range
    h = Harness(cfg, auto_consumer=random.Random(1))

    async def bench(ctx, h):
        d = h.dut
        await h.issue(ctx, cmd_word(cfg, EVENT, row=cfg.weight_rows - 1))
        await h.step(ctx)
        assert ctx.get(d.error) == 0
        for bad_row in range(cfg.weight_rows, 1 << cfg.weight_addr_width):
            ctx.set(d.cmd.valid, 1)
            ctx.set(d.cmd.payload.as_value(), cmd_word(cfg, EVENT, row=bad_row))
            assert ctx.get(d.wb_rd_en) == 0                  # dropped: no read
            await h.issue(ctx, cmd_word(cfg, EVENT, row=bad_row))
            assert ctx.get(d.add_en) == 0                    # ... and no add
            assert ctx.get(d.error) == 0b010
        await h.issue(ctx, cmd_word(cfg, EVENT, row=0))     # good events still work
        await h.idle(ctx, ADD_DELAY - 1)
        assert ctx.get(d.add_en) == 1
        await h.idle(ctx, 20)
        assert ctx.get(d.error) == 0b010 and ctx.get(d.busy) == 0
        await h.reset(ctx)
        assert ctx.get(d.error) == 0
        await h.idle(ctx, 3)
        assert ctx.get(d.error) == 0

    h.run(bench)
    assert [r for _, r in h.reads] == [cfg.weight_rows - 1, 0]
    assert len(h.adds) == 2


@pytest.mark.parametrize("mode,base,exp_bad", [
    (CHAINED, 4, [0, 0, 1, 1]),           # rows 4, 5, 6, 7
    (CHAINED, 7, [1, 1, 1, 1]),           # base itself >= mem_rows (MA = 3 bits)
    (INDEPENDENT, 0, [0, 0, 1, 1]),       # rows 0-2, 3-5, 6-8, ...
    (INDEPENDENT, 1, [0, 1, 1, 1]),       # rows 1-3, 4-6 (6 is out)
    (READOUT, 7, [0, 0, 0, 0]),           # no membrane rows at all
])
def test_error_bit2_membrane_row_out_of_range(mode, base, exp_bad):
    cfg = CFG   # N = 3, mem_rows = 6
    h = Harness(cfg, auto_consumer=random.Random(2))
    err = []

    async def bench(ctx, h):
        d = h.dut
        await h.issue(ctx, cmd_word(cfg, LAYER, mode=mode, base=base, first=0))
        for _ in exp_bad:
            await h.issue(ctx, cmd_word(cfg, EVENT, row=0))
            await h.issue(ctx, cmd_word(cfg, TILE))
            err.append(ctx.get(d.error))
        await h.idle(ctx, 15)
        err.append(ctx.get(d.error))
        await h.reset(ctx)
        err.append(ctx.get(d.error))

    h.run(bench)
    # every TILE is still handed over (bad flag set), and the counter advances
    got = [t for _, t in h.tiles]
    assert [t["tile"] for t in got] == list(range(len(exp_bad)))
    assert [t["bad"] for t in got] == exp_bad
    assert [t["bank"] for t in got] == [i % 2 for i in range(len(exp_bad))]
    stride = cfg.groups if mode == INDEPENDENT else 1
    for i, t in enumerate(got):
        if mode != READOUT and not exp_bad[i]:
            assert t["row"] == base + i * stride
    # bit 2 set by the first bad TILE, sticky until reset
    exp_err = [4 if any(exp_bad[:i + 1]) else 0 for i in range(len(exp_bad))]
    assert err == exp_err + [exp_err[-1], 0]


@pytest.mark.parametrize("name", sorted(CFGS))
def test_random_command_stream_against_reference(name):
    """Random commands (including reserved op/mode, out-of-range rows, gaps in
    valid, junk in unused fields) and a consumer holding tiles for random times,
    compared edge by edge with the reference model."""
    cfg = CFGS[name]
    rng = random.Random(name)
    ra, ma = cfg.weight_addr_width, cfg.mem_addr_width
    words = []
    for i in range(400):
        if i in (150, 300):
            words.append("reset")
            continue
        op = rng.choices([EVENT, TILE, LAYER, OP_RESERVED], [55, 25, 18, 2])[0]
        junk = dict(row=rng.randrange(1 << ra), base=rng.randrange(1 << ma),
                    mode=rng.randrange(4), first=rng.randrange(2))
        if op == LAYER:
            junk["mode"] = rng.choices([0, 1, 2, 3], [4, 2, 4, 1])[0]
            junk["base"] = rng.randrange(min(1 << ma, cfg.mem_rows + 1))
        words.append(cmd_word(cfg, op, **junk))
    h = Harness(cfg, auto_consumer=rng)

    async def bench(ctx, h):
        for w in words:
            if w == "reset":
                await h.idle(ctx, 25)                # all tiles released first
                await h.reset(ctx)
                h.accepted.append((h.edge - 1, "reset"))
                continue
            while rng.random() < 0.15:               # gap: random payload, valid = 0
                ctx.set(h.dut.cmd.payload.as_value(), cmd_word(cfg, TILE))
                await h.idle(ctx, 1)
            await h.issue(ctx, w)
        await h.idle(ctx, 15)

    h.run(bench)
    model = RefModel(cfg)
    exp_reads, exp_adds, exp_tiles, exp_err = [], [], [], {}
    tile_accept_edges = []
    for e, w in h.accepted:
        if w == "reset":
            model.reset()
            exp_err[e] = 0
            continue
        r = model.apply(w)
        if r and r[0] == "read":
            exp_reads.append((e, r[1]))
            exp_adds.append((e + ADD_DELAY, r[2]))
        elif r and r[0] == "tile":
            exp_tiles.append(r[1])
            tile_accept_edges.append(e)
        exp_err[e] = model.error
    assert h.reads == exp_reads
    assert h.adds == exp_adds
    got_tiles = [t for _, t in h.tiles]
    assert len(got_tiles) == len(exp_tiles)
    for g, x in zip(got_tiles, exp_tiles):
        _check_desc(cfg, g, x)
    assert h.clears == [(e, t["bank"]) for e, t in h.tiles]
    # tiles handed over in order, never before the edge after their TILE
    for (e_out, _), e_in in zip(h.tiles, tile_accept_edges):
        assert e_out > e_in
    # error bits: value after each accepting edge; unchanged between commands
    cur = 0
    for e, v in h.error_log:
        cur = exp_err.get(e, cur)
        assert v == cur, (e, v, cur)
    # cmd.ready == not (two tiles outstanding), per cycle (reset clears both)
    resets = {e for e, w in h.accepted if w == "reset"}
    t_in, t_out, outstanding = set(tile_accept_edges), {e for e, _ in h.tiles}, 0
    saw_stall = False
    for e, ready in h.ready_log:
        if e - 1 in resets:
            outstanding = 0
        assert ready == (outstanding < 2), (e, ready, outstanding)
        saw_stall |= not ready
        outstanding += (e in t_in) - (e in t_out)
    assert saw_stall, "backpressure never exercised"
    assert any(v & 1 for _, v in h.error_log) and any(v & 2 for _, v in h.error_log)
    assert any(t["bad"] for t in got_tiles) and any(not t["bad"] for t in got_tiles)


# ------------------------------------------------------------ weight buffer
def test_weight_buffer_write_then_read():
    cfg = HwConfig(array=4, groups=2, weight_width=6, acc_width=8, weight_rows=5)
    dut = WeightBuffer(cfg)
    rng = random.Random(5)
    ra, ww = clog2(cfg.weight_rows), cfg.weight_width
    lo, hi = -(1 << (ww - 1)), (1 << (ww - 1)) - 1

    def wload_word(addr, weights):
        """addr (RA) then A x WW, weight p at bits RA + p*WW, two's complement."""
        word = addr
        for p, w in enumerate(weights):
            word |= (w & ((1 << ww) - 1)) << (ra + p * ww)
        return word

    rows = {r: [rng.randint(lo, hi) for _ in range(cfg.array)] for r in range(cfg.weight_rows)}
    rows[0] = [lo, hi, -1, 0]

    async def bench(ctx):
        assert ctx.get(dut.wload.ready) == 1
        ctx.set(dut.rd_en, 0)
        for r, w in rows.items():
            ctx.set(dut.wload.valid, 1)
            ctx.set(dut.wload.payload.as_value(), wload_word(r, w))
            assert ctx.get(dut.wload.ready) == 1
            await ctx.tick()
        # out-of-range addresses are ignored (would alias rows if decoded mod depth)
        for a in range(cfg.weight_rows, 1 << ra):
            ctx.set(dut.wload.payload.as_value(), wload_word(a, [7, 7, 7, 7]))
            assert ctx.get(dut.wload.ready) == 1
            await ctx.tick()
        # valid = 0: no write
        ctx.set(dut.wload.valid, 0)
        ctx.set(dut.wload.payload.as_value(), wload_word(1, [5, 5, 5, 5]))
        await ctx.tick()
        # read on the rd_en edge, shown after the next edge (registered output)
        seq = (4, 0, 3, 1, 2, 2)
        ctx.set(dut.rd_en, 1)
        for i, r in enumerate(seq):
            ctx.set(dut.rd_addr, r)
            await ctx.tick()
            if i:
                assert [int(v) for v in ctx.get(dut.rd_data)] == rows[seq[i - 1]], r
        # rd_en = 0 holds: the last row read (seq[-1]) shows up and stays
        ctx.set(dut.rd_en, 0)
        ctx.set(dut.rd_addr, 0)
        for _ in range(3):
            await ctx.tick()
            assert [int(v) for v in ctx.get(dut.rd_data)] == rows[seq[-1]]
        # written on the accepting edge: a read on the next edge sees it
        new = [hi, lo, 3, -3]
        ctx.set(dut.wload.valid, 1)
        ctx.set(dut.wload.payload.as_value(), wload_word(3, new))
        await ctx.tick()
        ctx.set(dut.wload.valid, 0)
        ctx.set(dut.rd_addr, 3)
        ctx.set(dut.rd_en, 1)
        await ctx.tick()
        ctx.set(dut.rd_en, 0)
        await ctx.tick()
        assert [int(v) for v in ctx.get(dut.rd_data)] == new
        rows[3] = new
        # a read and a write of the same row on one edge: the read gets the old row
        new2 = [-3, 3, lo, hi]
        ctx.set(dut.wload.valid, 1)
        ctx.set(dut.wload.payload.as_value(), wload_word(3, new2))
        ctx.set(dut.rd_en, 1)
        await ctx.tick()
        ctx.set(dut.wload.valid, 0)
        ctx.set(dut.rd_en, 1)
        await ctx.tick()
        assert [int(v) for v in ctx.get(dut.rd_data)] == rows[3]
        ctx.set(dut.rd_en, 0)
        await ctx.tick()
        assert [int(v) for v in ctx.get(dut.rd_data)] == new2

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_next_tile_announces_every_tile_one_cycle_ahead(seed):
    """``next_tile`` contract (gen/sequencer.py; the LIF stage reads the row of the
    tile it will start one cycle ahead): in the cycle before a tile becomes
    valid on ``tile`` (stage idle, or the previous tile transferring),
    ``next_valid`` = 1 and ``next_tile`` = that tile's descriptor."""
    cfg = CFG
    rng = random.Random(seed)
    h = Harness(cfg, auto_consumer=random.Random(seed + 10))

    async def bench(ctx, h):
        for _ in range(40):
            c = rng.random()
            if c < 0.2:
                await h.issue(ctx, cmd_word(cfg, LAYER, mode=rng.choice([CHAINED, INDEPENDENT,
                                                                         READOUT]),
                                            base=rng.randrange(cfg.mem_rows), first=rng.randint(0, 1)))
            elif c < 0.6:
                await h.issue(ctx, cmd_word(cfg, TILE))
            elif c < 0.8:
                await h.issue(ctx, cmd_word(cfg, EVENT, row=rng.randrange(cfg.weight_rows)))
            else:
                await h.idle(ctx, rng.randint(1, 4))
        await h.idle(ctx, 40)

    h.run(bench)
    log = h.cycle_log
    starts = 0
    for (_, tv0, tr0, nv0, nt0, _), (_, tv1, _, _, _, p1) in zip(log, log[1:]):
        new_tile = tv1 and (not tv0 or tr0)           # a different tile is shown from now
        if new_tile:
            starts += 1
            assert nv0 == 1 and nt0 == p1, "tile not announced on next_tile one cycle ahead"
    assert starts >= 10 and len(h.tiles) == starts
