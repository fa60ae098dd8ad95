"""Properties of the arithmetic blocks: LifUnit (F3-F6), PeArray (F2), LifStage (F7).

* :func:`lif_unit_harness` -- combinational: for every ``V`` and ``X`` the
  unit's ``U``, ``O``, ``V'`` equal :mod:`formal.spec`. One step with all
  inputs free is a proof for all inputs (the block has no state).
* :func:`pe_array_harness` -- from reset, under any sequence of add / clear /
  read commands (the only caller rule: never add to and clear the same bank
  in one cycle; ``rd_group < N``), every read current equals a shadow model
  that applies F2 per event.
* :func:`lif_stage_harness` -- from reset, one tile with any descriptor
  (any mode, ``first``/``bad``, bank, row in range), any currents, any
  membrane contents, any output backpressure: the beats are exactly groups
  ``0..N-1`` in order with the F3-F7 values (V from the buffer or 0 for
  group 0, carried ``V'`` after), the right membrane writes (row, data,
  exactly once per written group), stream rules of ``out``, and the tile
  handshake and timing of the docstring of :class:`gen.lif_stage.LifStage`.
"""

from __future__ import annotations

from amaranth.hdl import Assert, Assume, Cat, Const, Mux, Signal, signed, unsigned

from gen.layouts import Mode
from gen.lif_stage import LifStage
from gen.lif_unit import LifUnit
from gen.pe_array import PeArray
from golden.config import HwConfig

from . import spec
from .dut import Dut, block_verilog
from .harness import TOP, Harness
from .jobs import Job

__all__ = ["lif_unit_harness", "pe_array_harness", "lif_stage_harness", "lif_unit_job",
           "pe_array_job", "lif_stage_job"]


def _named(h, expr, name):
    """``expr`` in a signal of its own exact width (for the counterexample)."""
    from amaranth.hdl import Value
    expr = Value.cast(expr)
    sig = Signal(expr.shape(), name=name)
    h.m.d.comb += sig.eq(expr)
    return sig


def _script(extra: str = "") -> str:
    return "\n".join(["read_verilog -sv dut.v", "read_rtlil harness.il",
                      f"prep -top {TOP}", extra]).strip()


# --------------------------------------------------------------- LIF unit
def lif_unit_harness(cfg: HwConfig, module: str = "lif_unit"):
    h = Harness(sync=False)
    dut = Dut(LifUnit(cfg), module, sync=False)
    h.m.submodules.dut = dut.instance()
    v, x = h.input(dut["v"]), h.input(dut["x"])
    lo, hi = cfg.mem_min, cfg.mem_max
    l = _named(h, spec.leak(cfg, v), "spec_l")
    u = _named(h, spec.integrate(cfg, l, x), "spec_u")
    o = _named(h, spec.fire(cfg, u), "spec_o")
    vn = _named(h, spec.reset(cfg, u, o), "spec_v_next")
    h.m.d.comb += [
        # the spec's own claims (docs/fixed-point.md F3, F6)
        Assert(spec.is_nearest_tie_up(cfg, v, l), "F3: L is λ·V rounded to nearest, ties up"),
        Assert((l >= lo) & (l <= hi), "F3: L fits mem_width"),
        Assert((vn >= lo) & (vn <= hi), "F6: V' fits mem_width (soft reset cannot overflow)"),
        # the unit equals the spec
        Assert(dut["u"] == u, "U = sat_mem(L + X)"),
        Assert(dut["spike"] == o, "O = fire(U)"),
        Assert(dut["v_next"] == vn, "V' = reset(U, O)"),
    ]
    show = ["dut_v", "dut_x", "dut_u", "dut_spike", "dut_v_next", "spec_l", "spec_u",
            "spec_o", "spec_v_next"]
    return h, show


def lif_unit_job(cfg: HwConfig, mutate=None) -> Job:
    text = block_verilog(LifUnit(cfg), "lif_unit")
    if mutate:
        text = mutate(text)
    h, show = lif_unit_harness(cfg)
    return Job({"dut.v": text, "harness.il": h.rtlil()}, _script(), "bmc", 1, show,
               signed=frozenset(n for n in show if n != "dut_spike" and n != "spec_o"))


# --------------------------------------------------------------- PE array
def pe_array_harness(cfg: HwConfig):
    """F2 as a step relation on what the read port shows.

    In any two consecutive cycles that read the same bank and group: if the
    first cycle added a weight row to that bank, the second shows
    ``sat_acc(X + w)`` of what the first showed (per slot); if it cleared the
    bank, 0; otherwise the same value. In the first cycle after reset every
    read shows 0. Read selections are free in every cycle, so every PE of
    every bank is observed; by induction over time the shown current is F2
    applied to the bank's event history. The relation only looks one cycle
    back, so k-induction proves it for traces of any length.
    """
    h = Harness()
    m = h.m
    dut = Dut(PeArray(cfg), "pe_array")
    m.submodules.dut = dut.instance()
    for name in ("add_en", "add_bank", "weights", "clear_en", "clear_bank", "rd_bank",
                 "rd_group"):
        h.input(dut[name])
    add_en, add_bank, clr_en, clr_bank = (dut["add_en"], dut["add_bank"], dut["clear_en"],
                                          dut["clear_bank"])
    rd_bank, rd_group, cur = dut["rd_bank"], dut["rd_group"], dut["currents"]
    # caller contract (gen/pe_array.py docstring; LifStage never reads group >= N)
    m.d.comb += Assume(~(add_en & clr_en & (add_bank == clr_bank)))
    m.d.comb += Assume(rd_group < cfg.groups)
    s = cfg.slots
    p_add = h.past(add_en & (add_bank == rd_bank), "past_add_here")
    p_clr = h.past(clr_en & (clr_bank == rd_bank), "past_clear_here")
    p_sel = h.past(Cat(rd_bank, rd_group), "past_sel")
    p_cur = h.past(cur, "past_currents")
    # the weights of the read group's PEs, slot k = PE rd_group*S + k
    w_sel = Signal(data_array(cfg.weight_width, s), name="h_weights_of_group")
    with m.Switch(rd_group):
        for g in range(cfg.groups):
            with m.Case(g):
                for k in range(s):
                    m.d.comb += w_sel[k].eq(dut["weights"][g * s + k])
    p_w = h.past(w_sel, "past_weights_of_group")
    p_started = h.past(h.started, "past_started")
    with m.If(h.started):
        for k in range(s):
            with m.If(~p_started):
                m.d.comb += Assert(cur[k] == 0, "F2: every accumulator is 0 after reset")
            with m.Elif(p_sel == Cat(rd_bank, rd_group)):
                with m.If(p_clr):
                    m.d.comb += Assert(cur[k] == 0, "F2: clear sets 0")
                with m.Elif(p_add):
                    m.d.comb += Assert(cur[k] == spec.accumulate(cfg, p_cur[k], p_w[k]),
                                       "F2: X <- sat_acc(X + w)")
                with m.Else():
                    m.d.comb += Assert(cur[k] == p_cur[k], "F2: no event, X unchanged")
    show = ["dut_add_en", "dut_add_bank", "dut_clear_en", "dut_clear_bank", "dut_weights",
            "dut_rd_bank", "dut_rd_group", "dut_currents"]
    return h, show


def data_array(width, count):
    from amaranth.lib import data
    return data.ArrayLayout(signed(width), count)


def pe_array_job(cfg: HwConfig, depth: int, mutate=None) -> Job:
    text = block_verilog(PeArray(cfg), "pe_array")
    if mutate:
        text = mutate(text)
    h, show = pe_array_harness(cfg)
    return Job({"dut.v": text, "harness.il": h.rtlil()}, _script(), "prove", depth, show)


# --------------------------------------------------------------- LIF stage
def lif_stage_harness(cfg: HwConfig):
    h = Harness()
    m = h.m
    n, s, mw = cfg.groups, cfg.slots, cfg.mem_width
    dut = Dut(LifStage(cfg), "lif_stage")
    m.submodules.dut = dut.instance()
    started = h.started

    # -- environment: constant currents of both banks, constant buffer contents
    xs = h.const(Signal(unsigned(2 * cfg.array * cfg.acc_width), name="env_currents"))
    mem = h.const(Signal(unsigned(cfg.mem_rows * s * mw), name="env_membrane"))

    def x_of(bank, pe):
        return xs.word_select(bank * cfg.array + pe, cfg.acc_width).as_signed()

    def mem_of(row, k):
        return mem.word_select(row * s + k, mw).as_signed()

    rd_bank, rd_group = dut["pe_rd_bank"], dut["pe_rd_group"]
    for k in range(s):
        # combinational read of the selected bank and group (like PeArray)
        sel = Signal(signed(cfg.acc_width), name=f"env_current_{k}")
        with m.Switch(Cat(rd_group, rd_bank)):
            for b in range(2):
                for g in range(n):
                    with m.Case(g | (b << len(rd_group))):
                        m.d.comb += sel.eq(x_of(b, g * s + k))
        m.d.comb += dut["currents"][k].eq(sel)
        # group 0 of pe_rd0_bank (PeArray currents0; the currents are constant here)
        m.d.comb += dut["currents0"][k].eq(Mux(dut["pe_rd0_bank"], x_of(1, k), x_of(0, k)))
    # synchronous membrane read (1 cycle, holds while not enabled)
    rd_data = Signal(unsigned(s * mw), name="env_mem_rd_data")
    with m.If(dut["mem_rd_en"]):
        with m.Switch(dut["mem_rd_addr"]):
            for r in range(cfg.mem_rows):
                with m.Case(r):
                    m.d.sync += rd_data.eq(mem.word_select(r, s * mw))
    m.d.comb += dut["mem_rd_data"].as_value().eq(rd_data)

    # -- one tile: any descriptor, offered at any time, held until accepted
    desc = h.const(Signal(dut["tile.payload"].shape(), name="env_desc"))
    go = h.input(Signal(name="env_go"))
    offered = Signal(name="h_offered")        # valid has been raised
    taken = Signal(name="h_taken")            # the tile transferred
    tvalid = dut["tile.valid"]
    # the tile is announced on next_tile in the cycle before it becomes valid
    # (Sequencer next_tile; LifStage docstring)
    announced = Signal(name="h_announced")
    with m.If(started & go):
        m.d.sync += announced.eq(1)
    m.d.comb += [
        tvalid.eq(started & ~taken & announced),
        dut["next_valid"].eq(started & go & ~announced),
        dut["next_tile"].eq(desc),
    ]
    with m.If(tvalid):
        m.d.sync += offered.eq(1)
    with m.If(tvalid & dut["tile.ready"]):
        m.d.sync += taken.eq(1)
    m.d.comb += dut["tile.payload"].eq(desc)
    independent = desc.mode == Mode.INDEPENDENT
    readout = desc.mode == Mode.READOUT
    last_row = desc.row + independent.as_unsigned() * (n - 1)
    # Sequencer guarantees: no reserved mode; rows of a good tile are in range.
    m.d.comb += Assume(desc.mode != Mode.RESERVED)
    m.d.comb += Assume(desc.bad | readout | (last_row < cfg.mem_rows))
    oready = h.input(dut["out.ready"])

    # -- expected beats (spec F3-F7), checked in the first cycle a beat is shown
    ovalid, beat = dut["out.valid"], dut["out.payload"]
    p_valid, p_ready = h.past(ovalid, "past_valid"), h.past(oready, "past_ready")
    p_beat = h.past(beat, "past_beat")
    p_wr_en = h.past(dut["mem_wr_en"], "past_wr_en")
    p_wr_addr = h.past(dut["mem_wr_addr"], "past_wr_addr")
    p_wr_data = h.past(dut["mem_wr_data"], "past_wr_data")
    p_tile_xfer = h.past(tvalid & dut["tile.ready"], "past_tile_xfer")
    new_beat = Signal(name="h_new_beat")
    m.d.comb += new_beat.eq(started & ovalid & (~p_valid | p_ready))
    produced = Signal(range(n + 2), name="h_produced")     # beats shown so far
    carry = [Signal(signed(mw + 2), name=f"h_carry_{k}") for k in range(s)]
    read_buffer = ~desc.first & ~desc.bad & ~readout
    writes = ~desc.bad & ~readout

    with m.If(started):
        # stream rule: a shown beat stays, unchanged, until accepted
        with m.If(p_valid & ~p_ready):
            m.d.comb += Assert(ovalid & (beat.as_value() == p_beat.as_value()),
                               "out: valid and payload stable until accepted")
        # nothing is written or shown except for a produced beat of the tile
        m.d.comb += Assert(~p_wr_en | new_beat, "membrane written only with a beat")
        m.d.comb += Assert(~new_beat | (offered & (produced < n)),
                           "at most N beats, only for an offered tile")
        # the tile transfers on the edge that produces the last beat
        m.d.comb += Assert(p_tile_xfer == (new_beat & (produced == n - 1)),
                           "tile accepted exactly with its last beat")
        for g in range(n):
            with m.If(new_beat & (produced == g)):
                us, os, vns = [], [], []
                for k in range(s):
                    if g == 0:
                        v_in = spec.select(read_buffer, _mem_at(mem_of, desc.row, cfg, k), 0)
                    else:
                        row_g = (desc.row + g)[:len(desc.row)]
                        v_in = spec.select(independent,
                                           spec.select(read_buffer,
                                                       _mem_at(mem_of, row_g, cfg, k), 0),
                                           carry[k])
                    x = x_of(desc.bank, g * s + k)
                    _l, u, o, vn = spec.lif_step(cfg, v_in, x)
                    u = _named(h, u, f"spec_u_g{g}_{k}")
                    o = _named(h, o, f"spec_o_g{g}_{k}")
                    vn = _named(h, vn, f"spec_vn_g{g}_{k}")
                    us.append(u), os.append(o), vns.append(vn)
                    m.d.comb += [
                        Assert(beat.values[k] == spec.select(readout, x, u),
                               "beat value: U (F3-F5 chain) or X (read-out)"),
                        Assert(beat.spikes[k] == (~readout & o), "beat spike: O (F5)"),
                    ]
                    m.d.sync += carry[k].eq(vn)
                    # membrane write-back: V' of the last group (CHAINED) or of
                    # every group (INDEPENDENT), to the group's row
                    with m.If(p_wr_en):
                        m.d.comb += Assert(p_wr_data[k] == vn, "written V' (F6)")
                m.d.comb += [
                    Assert(beat.group == g, "beat group in order"),
                    Assert(beat.last == (g == n - 1), "last on group N-1"),
                    Assert(beat.tile == desc.tile, "beat tile index"),
                    Assert(beat.readout == readout, "beat readout flag"),
                    Assert(p_wr_en == (writes & (independent | (g == n - 1))),
                           "membrane written exactly for the written groups"),
                ]
                with m.If(p_wr_en):
                    m.d.comb += Assert(
                        p_wr_addr == (desc.row + independent.as_unsigned() * g)[:len(p_wr_addr)],
                        "membrane write row")
                m.d.sync += produced.eq(g + 1)
        # timing (LifStage docstring): offered in cycle c and out never blocked
        # -> beat of group g is new in cycle c+2+g
        since = Signal(range(n + 8), name="h_since")
        blocked = Signal(name="h_blocked")
        with m.If(offered | tvalid):
            with m.If(since < n + 7):
                m.d.sync += since.eq(since + 1)
            with m.If(ovalid & ~oready):
                m.d.sync += blocked.eq(1)
        with m.If(offered & ~blocked):
            m.d.comb += Assert(new_beat == ((since >= 2) & (since <= n + 1)),
                               "timing: beat g new in cycle c+2+g when out is not blocked")
        # reads only in range for a tile that reads
        with m.If(dut["mem_rd_en"]):
            m.d.comb += Assert(read_buffer & (dut["mem_rd_addr"] < cfg.mem_rows),
                               "membrane read only when V comes from the buffer, in range")
    show = ["env_go", "dut_next_valid", "dut_tile__valid", "dut_tile__ready", "dut_out__valid",
            "dut_out__ready",
            "dut_out__payload", "dut_mem_rd_en", "dut_mem_rd_addr", "dut_mem_wr_en",
            "dut_mem_wr_addr", "dut_mem_wr_data", "h_produced"]
    return h, show


def _mem_at(mem_of, row, cfg, k):
    """Buffer word ``k`` of the (variable) row ``row`` (rows beyond the buffer read 0)."""
    out = Const(0, signed(cfg.mem_width))
    for r in range(cfg.mem_rows):
        out = spec.select(row == r, mem_of(r, k), out)
    return out


def lif_stage_job(cfg: HwConfig, depth: int, mutate=None) -> Job:
    text = block_verilog(LifStage(cfg), "lif_stage")
    if mutate:
        text = mutate(text)
    h, show = lif_stage_harness(cfg)
    return Job({"dut.v": text, "harness.il": h.rtlil()}, _script(), "bmc", depth, show)
