"""Command decoder and tile scheduler of ``lif_pe_array``.

The :class:`Sequencer` accepts the command stream (docs/interface.md), runs
the two-stage EVENT pipeline (weight read, then accumulate), hands closed tiles
to the LIF stage and tracks which accumulator bank is free.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from golden.config import HwConfig

from .layouts import (ERROR_WIDTH, Mode, Op, TILE_INDEX_WIDTH, cmd_layout, error_layout,
                      row_cursor_width, tile_layout)

__all__ = ["Sequencer"]


class Sequencer(wiring.Component):
    """Decodes commands and owns the accumulator-bank handshake.

    Ports:

    * ``cmd``  In stream (:func:`gen.layouts.cmd_layout`). ``ready`` is 0 exactly
      while the bank that would accumulate the next tile (``acc_sel``) still
      holds an unfinished tile, i.e. when both banks are busy. It does not
      depend on ``valid`` or the payload.
    * ``wb_rd_addr``/``wb_rd_en`` Out -- weight-buffer read of an EVENT's row, in
      the cycle the EVENT is accepted.
    * ``add_en``/``add_bank`` Out -- two cycles later (the weight buffer's
      registered read data), add the row to the bank the EVENT was accepted
      into (F2).
    * ``clear_en``/``clear_bank`` Out -- zero a bank when the LIF stage is done
      with it.
    * ``tile`` Out stream (:func:`gen.layouts.tile_layout`): the oldest closed
      tile. The consumer keeps ``ready`` at 0 while it works on the tile and
      raises it in the cycle it finishes; that transfer frees and clears the bank.
    * ``next_valid``/``next_tile`` Out (:func:`gen.layouts.tile_layout`): the
      tile that will be on ``tile`` after the current one is transferred (or,
      while ``tile.valid`` is 0, from the next edge): the other full bank, or
      the tile a TILE command closes in this cycle (combinational from
      ``cmd``). The LIF stage reads its membrane row one cycle ahead with it.
    * ``error`` Out, 3 -- sticky flags (:class:`golden.encoding.Error`: bit 0
      reserved op/mode, bit 1 EVENT row out of range, bit 2 membrane row out
      of range); the offending command is dropped (a bad TILE is still handed
      over, with ``bad = 1``; a dropped LAYER keeps the previous layer state).
      Fields a command does not use are ignored (``mode`` in EVENT/TILE).
    * ``busy`` Out -- an EVENT is in flight or a bank holds a tile.

    Latencies: EVENT accepted on edge ``k`` reads its weight row on edge ``k``
    and is in the accumulator after edge ``k+2``; TILE accepted on edge ``k``
    makes ``tile.valid`` 1 after edge ``k`` (the tile's last EVENT is added on
    edge ``k+1`` at the latest, before the LIF stage reads group 0 of the bank
    in the cycle after edge ``k+1``).
    """

    def __init__(self, cfg: HwConfig):
        self._cfg = cfg
        super().__init__({
            "cmd": In(stream.Signature(cmd_layout(cfg))),
            "wb_rd_addr": Out(unsigned(cfg.weight_addr_width)),
            "wb_rd_en": Out(1),
            "add_en": Out(1),
            "add_bank": Out(1),
            "clear_en": Out(1),
            "clear_bank": Out(1),
            "tile": Out(stream.Signature(tile_layout(cfg))),
            "next_valid": Out(1),
            "next_tile": Out(tile_layout(cfg)),
            "error": Out(ERROR_WIDTH),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        cfg = self._cfg
        m = Module()
        tl = tile_layout(cfg)

        # Layer state (LAYER command). Reset: CHAINED, first = 1, base 0.
        layer_mode = Signal(Mode, init=Mode.CHAINED)
        layer_first = Signal(1, init=1)
        layer_spill = Signal(1)
        tile_index = Signal(unsigned(TILE_INDEX_WIDTH))
        # row_cursor = base + tile*stride (stride 1 CHAINED, N INDEPENDENT) at
        # full width (row_cursor_width): it stops advancing once out of range,
        # and neither it nor the tile's last row can wrap back into range.
        row_cursor = Signal(unsigned(row_cursor_width(cfg)))

        # Bank bookkeeping: acc_sel accumulates, lif_sel is the oldest full bank.
        acc_sel = Signal(1)
        lif_sel = Signal(1)
        bank_full = Signal(2)
        bank_desc = [Signal(tl, name=f"bank{b}_desc") for b in range(2)]

        # EVENT pipeline: stage 1 (weight row being read), stage 2 (row in the
        # weight buffer's output register), then the add.
        event_valid = Signal(1)
        event_bank = Signal(1)
        event_valid2 = Signal(1)
        event_bank2 = Signal(1)
        errors = Signal(error_layout())

        cmd = self.cmd.payload
        cmd_ready = Signal(1)
        accept = Signal(1)
        m.d.comb += [
            cmd_ready.eq(~Mux(acc_sel, bank_full[1], bank_full[0])),
            self.cmd.ready.eq(cmd_ready),
            accept.eq(self.cmd.valid & cmd_ready),
            self.error.eq(errors),
            self.busy.eq(event_valid | event_valid2 | bank_full.any()),
        ]

        # ---- EVENT: read the weight row now, accumulate two cycles later (F2).
        is_event = accept & (cmd.op == Op.EVENT)
        event_row_ok = Signal(1)
        m.d.comb += [
            event_row_ok.eq(cmd.row < cfg.weight_rows),
            self.wb_rd_addr.eq(cmd.row),
            self.wb_rd_en.eq(is_event & event_row_ok),
        ]
        m.d.sync += [
            event_valid.eq(is_event & event_row_ok),
            event_bank.eq(acc_sel),
            event_valid2.eq(event_valid),
            event_bank2.eq(event_bank),
        ]
        m.d.comb += [self.add_en.eq(event_valid2), self.add_bank.eq(event_bank2)]

        # ---- Handing tiles to the LIF stage.
        m.d.comb += [
            self.tile.valid.eq(Mux(lif_sel, bank_full[1], bank_full[0])),
            self.tile.payload.eq(Mux(lif_sel, bank_desc[1], bank_desc[0])),
            self.clear_bank.eq(lif_sel),
        ]
        tile_done = self.tile.valid & self.tile.ready
        m.d.comb += self.clear_en.eq(tile_done)

        # (Combinational logic here is written as plain expressions, never
        # under If/Switch: see gen/pe_array.py on `always @*` at time 0.)
        is_tile = accept & (cmd.op == Op.TILE)
        full_set = Signal(2)
        full_clr = Signal(2)
        m.d.comb += [
            full_set.eq(Mux(is_tile, Mux(acc_sel, 0b10, 0b01), 0)),
            full_clr.eq(Mux(tile_done, Mux(lif_sel, 0b10, 0b01), 0)),
        ]
        m.d.sync += bank_full.eq((bank_full & ~full_clr) | full_set)
        with m.If(tile_done):
            m.d.sync += lif_sel.eq(~lif_sel)

        # ---- TILE: close the accumulating bank.
        independent = layer_mode == Mode.INDEPENDENT
        tile_last_row = Signal(unsigned(row_cursor_width(cfg)))
        tile_bad = Signal(1)
        m.d.comb += [
            tile_last_row.eq(row_cursor + Mux(independent, cfg.groups - 1, 0)),
            tile_bad.eq((layer_mode != Mode.READOUT) & (tile_last_row >= cfg.mem_rows)),
        ]
        desc = Signal(tl)
        m.d.comb += [
            desc.bank.eq(acc_sel), desc.tile.eq(tile_index),
            desc.row.eq(row_cursor), desc.mode.eq(layer_mode),
            desc.first.eq(layer_first), desc.bad.eq(tile_bad), desc.spill.eq(layer_spill),
        ]
        # ---- The tile after the current one (see `next_tile`).
        other_full = Mux(lif_sel, bank_full[0], bank_full[1])
        waiting = self.tile.valid & other_full
        m.d.comb += [
            self.next_valid.eq(waiting | is_tile),
            self.next_tile.eq(Mux(waiting, Mux(lif_sel, bank_desc[0], bank_desc[1]), desc)),
        ]

        with m.If(accept):
            with m.Switch(cmd.op):
                with m.Case(Op.TILE):
                    for b in range(2):
                        with m.If(acc_sel == b):
                            m.d.sync += bank_desc[b].eq(desc)
                    m.d.sync += [acc_sel.eq(~acc_sel), tile_index.eq(tile_index + 1)]
                    with m.If(row_cursor < cfg.mem_rows):
                        m.d.sync += row_cursor.eq(row_cursor + Mux(independent, cfg.groups, 1))
                    with m.If(tile_bad):
                        m.d.sync += errors.mem_row_range.eq(1)
                with m.Case(Op.LAYER):
                    with m.If(cmd.mode == Mode.RESERVED):
                        m.d.sync += errors.reserved_op_or_mode.eq(1)
                    with m.Else():
                        m.d.sync += [
                            layer_mode.eq(cmd.mode),
                            layer_first.eq(cmd.first), layer_spill.eq(cmd.spill),
                            tile_index.eq(0),
                            row_cursor.eq(cmd.base),
                        ]
                with m.Case(Op.EVENT):
                    with m.If(~event_row_ok):
                        m.d.sync += errors.event_row_range.eq(1)
                with m.Case(Op.RESERVED):
                    m.d.sync += errors.reserved_op_or_mode.eq(1)
        return m

