"""Stream contract of the whole core (docs/interface.md), on a small build.

The environment is free except for the stream rules: ``cmd`` keeps
``valid`` and payload until accepted, ``rst`` is 1 exactly in step 0. Every
other input (``out__ready``, ``wload``, ``mfill``, ``mspill__ready``,
``dbg_addr``, command contents,
including reserved op/mode codes and out-of-range rows) is free in every
step. Checked from the first cycle after reset:

* ``out``: ``valid`` and payload stable until accepted;
* every accepted TILE gives exactly ``N`` beats, in command order, groups
  ``0..N-1`` with ``last`` on ``N-1``, the tile index it was closed with and
  the READOUT flag of its layer; no beat without an accepted TILE;
* ``busy = 0`` only when every accepted TILE has delivered its beats, and
  after ``W`` cycles with ``out__ready = 1``, ``mspill__ready = 1`` and no
  command the core is idle;
* ``mspill``: ``valid`` and payload stable until accepted;
* ``error`` bits are sticky; bit 0 is set exactly by an accepted reserved
  op or LAYER mode, bit 1 exactly by an accepted EVENT with ``row >=
  weight_rows``, bit 2 only by an accepted TILE;
* the first cycle after reset: no beat offered, ``error = 0``, ``busy = 0``,
  ``cmd__ready = 1``, ``wload__ready = 1``.

:func:`core_job` with ``x_init=True`` removes every flip-flop's initial
value from the design under proof (Yosys ``setattr -unset init``): the
solver then picks any power-up state, which is how "X" appears in a formal
model. The same properties must hold after one reset cycle.

``cmd__ready`` independent of ``cmd__valid`` and payload is a structural
fact, checked by :func:`ready_cone_job`: in the flattened netlist, the
combinational input cone of ``cmd__ready`` (stopping at flip-flops and
memories) contains neither input.
"""

from __future__ import annotations

from amaranth.hdl import Array, Assert, Assume, Signal, unsigned

from gen.core import LifPeArrayCore
from gen.layouts import TILE_INDEX_WIDTH, Mode, Op
from golden.config import HwConfig

from .dut import Dut, core_verilog
from .harness import TOP, Harness
from .jobs import Job

__all__ = ["core_harness", "core_job", "ready_cone_job", "drain_cycles"]

MODULE = "lif_pe_array"
FIFO = 4          # tiles that can be pending delivery: 2 banks + 1 beat in `out`, plus 1 spare


def drain_cycles(cfg: HwConfig) -> int:
    """Cycles after which an idle input and a free ``out`` must leave the core idle:
    up to 3 pending tiles (two full banks and a last beat in ``out``), ``N+1``
    LIF cycles each, plus the EVENT pipeline, the output register and the
    mspill register (``mspill__ready`` = 1 too)."""
    return 3 * (cfg.groups + 1) + 3


def core_harness(cfg: HwConfig):
    h = Harness()
    m = h.m
    n = cfg.groups
    dut = Dut(LifPeArrayCore(cfg), MODULE)
    m.submodules.dut = dut.instance()
    started = h.started
    for name in ("cmd.valid", "cmd.payload", "out.ready", "wload.valid", "wload.payload",
                 "dbg_addr", "mfill.valid", "mfill.payload", "mspill.ready"):
        h.input(dut[name])
    cvalid, cready, cmd = dut["cmd.valid"], dut["cmd.ready"], dut["cmd.payload"]
    ovalid, oready, beat = dut["out.valid"], dut["out.ready"], dut["out.payload"]
    error, busy = dut["error"], dut["busy"]

    # -- environment: the command stream obeys the stream rules
    p_cmd_wait = h.past(cvalid & ~cready, "past_cmd_wait")
    p_cmd = h.past(cmd, "past_cmd")
    with m.If(started & p_cmd_wait):
        m.d.comb += Assume(cvalid & (cmd.as_value() == p_cmd.as_value()))

    accept = Signal(name="h_accept")
    m.d.comb += accept.eq(started & cvalid & cready)
    is_tile = accept & (cmd.op == Op.TILE)
    is_layer = accept & (cmd.op == Op.LAYER)
    is_event = accept & (cmd.op == Op.EVENT)
    bad_code = accept & ((cmd.op == Op.RESERVED) | ((cmd.op == Op.LAYER) & (cmd.mode == Mode.RESERVED)))
    bad_row = is_event & (cmd.row >= cfg.weight_rows)

    # -- reference bookkeeping: layer state and the FIFO of pending tiles
    h_mode = Signal(unsigned(2), init=Mode.CHAINED.value, name="h_mode")
    h_tile = Signal(unsigned(TILE_INDEX_WIDTH), name="h_tile")
    with m.If(is_layer & (cmd.mode != Mode.RESERVED)):
        m.d.sync += [h_mode.eq(cmd.mode.as_value()), h_tile.eq(0)]
    with m.Elif(is_tile):
        m.d.sync += h_tile.eq(h_tile + 1)
    fifo_tile = Array(Signal(unsigned(TILE_INDEX_WIDTH), name=f"h_fifo_tile{i}")
                      for i in range(FIFO))
    fifo_ro = Array(Signal(name=f"h_fifo_readout{i}") for i in range(FIFO))
    head = Signal(range(FIFO), name="h_head")
    tail = Signal(range(FIFO), name="h_tail")
    count = Signal(range(FIFO + 1), name="h_pending")
    exp_g = Signal(range(n + 1), name="h_group")
    deliver = Signal(name="h_deliver")
    m.d.comb += deliver.eq(started & ovalid & oready)
    pop = deliver & (exp_g == n - 1)
    with m.If(is_tile):
        m.d.sync += [fifo_tile[tail].eq(h_tile), fifo_ro[tail].eq(h_mode == Mode.READOUT.value),
                     tail.eq(tail + 1)]
    m.d.sync += count.eq(count + is_tile - pop)
    with m.If(deliver):
        m.d.sync += exp_g.eq(exp_g + 1)
        with m.If(pop):
            m.d.sync += [exp_g.eq(0), head.eq(head + 1)]

    p_started = h.past(started, "past_started")
    p_out_wait = h.past(ovalid & ~oready, "past_out_wait")
    p_beat = h.past(beat, "past_beat")
    p_error = h.past(error, "past_error")
    p_bad_code = h.past(bad_code, "past_bad_code")
    p_bad_row = h.past(bad_row, "past_bad_row")
    p_tile = h.past(is_tile, "past_tile")
    quiet = Signal(range(drain_cycles(cfg) + 2), name="h_quiet")   # cycles ready & no command
    svalid, sready, sbeat = dut["mspill.valid"], dut["mspill.ready"], dut["mspill.payload"]
    p_sp_wait = h.past(svalid & ~sready, "past_spill_wait")
    p_sbeat = h.past(sbeat, "past_spill_beat")
    with m.If(started & oready & sready & ~cvalid):
        with m.If(quiet <= drain_cycles(cfg)):
            m.d.sync += quiet.eq(quiet + 1)
    with m.Else():
        m.d.sync += quiet.eq(0)

    with m.If(started):
        m.d.comb += [
            Assert(count < FIFO, "at most 3 tiles pending delivery"),
            Assert(busy | (count == 0), "busy = 0 only when every TILE delivered its beats"),
            Assert((quiet <= drain_cycles(cfg)) | ~busy,
                   "idle within W cycles of free out and no command"),
        ]
        with m.If(p_started & p_sp_wait):
            m.d.comb += Assert(svalid & (sbeat.as_value() == p_sbeat.as_value()),
                               "mspill: valid and payload stable until accepted")
        with m.If(p_started & p_out_wait):
            m.d.comb += Assert(ovalid & (beat.as_value() == p_beat.as_value()),
                               "out: valid and payload stable until accepted")
        with m.If(deliver):
            m.d.comb += [
                Assert(count > 0, "no beat without an accepted TILE"),
                Assert(beat.group == exp_g, "beats of a tile: groups 0..N-1 in order"),
                Assert(beat.last == (exp_g == n - 1), "last exactly on group N-1"),
                Assert(beat.tile == fifo_tile[head], "beat tile index = index at TILE"),
                Assert(beat.readout == fifo_ro[head], "beat readout flag = layer mode"),
                Assert(~beat.readout | (beat.spikes == 0), "no spikes in READOUT"),
            ]
        with m.If(~p_started):
            m.d.comb += [
                Assert(~ovalid, "after reset: no beat offered"),
                Assert(error == 0, "after reset: error = 0"),
                Assert(~busy, "after reset: busy = 0"),
                Assert(cready, "after reset: cmd__ready = 1"),
                Assert(dut["wload.ready"], "wload__ready = 1"),
            ]
        with m.Else():
            m.d.comb += [
                Assert((error & p_error) == p_error, "error bits sticky"),
                Assert(error[0] == (p_error[0] | p_bad_code),
                       "error bit 0 exactly on reserved op / mode"),
                Assert(error[1] == (p_error[1] | p_bad_row),
                       "error bit 1 exactly on EVENT row >= weight_rows"),
                Assert(~error[2] | p_error[2] | p_tile, "error bit 2 only on a TILE"),
                Assert(dut["wload.ready"], "wload__ready = 1"),
            ]
    show = ["rst", "dut_cmd__valid", "dut_cmd__ready", "dut_cmd__payload", "dut_out__valid",
            "dut_out__ready", "dut_out__payload", "dut_busy", "dut_error", "h_pending",
            "h_group"]
    return h, show


def core_job(cfg: HwConfig, depth: int, *, x_init: bool = False, mutate=None,
             mode: str = "bmc") -> Job:
    text = core_verilog(cfg, MODULE)
    if mutate:
        text = mutate(text)
    h, show = core_harness(cfg)
    script = ["read_verilog -sv dut.v", "read_rtlil harness.il", f"prep -top {TOP}"]
    if x_init:
        # any power-up state of the core's flip-flops (the harness keeps its own)
        script.append(f"setattr -unset init */w:* {TOP}/w:* %d")
    script += ["memory_map", "opt -fast"]
    return Job({"dut.v": text, "harness.il": h.rtlil()}, "\n".join(script), mode, depth, show)


#: Flip-flop and memory cell types that end a combinational cone.
_STATE_CELLS = "$dff,$sdff,$dffe,$sdffe,$sdffce,$adff,$adffe,$aldff,$aldffe,$dffsr,$dffsre,$ff,$mem_v2"


def ready_cone_job(cfg: HwConfig, mutate=None) -> Job:
    """A Yosys-only check (``mode = "yosys"``): no combinational path from
    ``cmd__valid``/``cmd__payload`` to ``cmd__ready``."""
    text = core_verilog(cfg, MODULE)
    if mutate:
        text = mutate(text)
    script = "\n".join([
        "read_verilog -sv dut.v", f"hierarchy -top {MODULE}", "proc", "flatten", "opt_clean",
        f"select -set cone o:cmd__ready %ci*:-{_STATE_CELLS}",
        "select -assert-none @cone w:cmd__valid w:cmd__payload %u %i",
    ])
    return Job({"dut.v": text}, script, "yosys", 0, [])
