"""Top level ``lif_pe_array``: ports exactly as docs/interface.md."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from golden.config import HwConfig

from .layouts import ERROR_WIDTH, cmd_layout, mrow_layout, out_layout, wload_layout
from .lif_stage import LifStage
from .membrane_buffer import MembraneBuffer
from .pe_array import PeArray
from .sequencer import Sequencer
from .weight_buffer import WeightBuffer

__all__ = ["LifPeArrayCore", "core_signature"]


def core_signature(cfg: HwConfig) -> wiring.Signature:
    """The top-level members (docs/interface.md "Ports"); the one port list.

    The manifest's ``ports`` (:func:`gen.emit.build_manifest`) are built from
    it, plus ``clk`` and ``rst`` of the ``sync`` domain.
    """
    return wiring.Signature({
        "cmd": In(stream.Signature(cmd_layout(cfg))),
        "out": Out(stream.Signature(out_layout(cfg))),
        "wload": In(stream.Signature(wload_layout(cfg))),
        "mfill": In(stream.Signature(mrow_layout(cfg))),
        "mspill": Out(stream.Signature(mrow_layout(cfg))),
        "dbg_addr": In(unsigned(cfg.mem_addr_width)),
        "dbg_data": Out(unsigned(cfg.slots * cfg.mem_width)),
        "busy": Out(1),
        "error": Out(ERROR_WIDTH),
    })


class LifPeArrayCore(wiring.Component):
    """PE array with ``A/N`` shared LIF units (EfficientLIF-Net C#N / L sharing).

    Members (flattened by the Verilog back end to ``cmd__valid``,
    ``cmd__ready``, ``cmd__payload``, ...; plus ``clk`` and ``rst`` of the
    ``sync`` domain):

    * ``cmd``   In stream, :func:`gen.layouts.cmd_layout`
    * ``out``   Out stream, :func:`gen.layouts.out_layout`
    * ``wload`` In stream, :func:`gen.layouts.wload_layout` (always ready)
    * ``mfill`` In stream, :func:`gen.layouts.mrow_layout` -- write a membrane
      row (off-chip fill); ``ready`` is 0 only in a cycle in which the LIF
      stage writes a row back (it has the write port)
    * ``mspill`` Out stream, :func:`gen.layouts.mrow_layout` -- every row a
      tile of a LAYER with ``spill = 1`` writes back, from a one-beat register;
      while it is full and not taken the LIF stage (and ``out``) waits
    * ``dbg_addr`` In (MA), ``dbg_data`` Out (S*MW) -- membrane read-back, 1 cycle,
      valid while ``busy`` is 0 and no TILE is accepted (it shares the LIF
      stage's read port)
    * ``busy`` Out, ``error`` Out (3) -- see docs/interface.md

    Block structure: :class:`Sequencer` (commands, EVENT pipeline, bank
    hand-off) -> :class:`WeightBuffer` -> :class:`PeArray` (two accumulator
    banks) -> :class:`LifStage` (``A/N`` :class:`gen.lif_unit.LifUnit`, membrane
    row control, output register) <-> :class:`MembraneBuffer`.
    """

    def __init__(self, cfg: HwConfig):
        if not isinstance(cfg, HwConfig):
            raise TypeError(f"expected a HwConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        super().__init__(core_signature(cfg))

    def elaborate(self, platform):
        cfg = self.cfg
        m = Module()
        m.submodules.sequencer = seq = Sequencer(cfg)
        m.submodules.weight_buffer = wbuf = WeightBuffer(cfg)
        m.submodules.pe_array = pes = PeArray(cfg)
        m.submodules.lif_stage = lif = LifStage(cfg)
        m.submodules.membrane_buffer = mbuf = MembraneBuffer(cfg)

        wiring.connect(m, wiring.flipped(self.cmd), seq.cmd)
        wiring.connect(m, wiring.flipped(self.wload), wbuf.wload)
        wiring.connect(m, seq.tile, lif.tile)
        # ---- mspill: a one-beat register loaded with every write-back of a
        # spilling tile (docs/interface.md "Membrane spill and fill"). While it
        # holds a beat that is not taken, the LIF stage is held (its out.ready
        # is 0) and `out` shows no beat, so no write-back can overtake it and
        # the core's beats never run ahead of its spills.
        spill_valid = Signal(1)
        spill_beat = Signal(mrow_layout(cfg))
        spill_stall = Signal(1)
        spill_load = Signal(1)
        m.d.comb += [
            spill_stall.eq(spill_valid & ~self.mspill.ready),
            spill_load.eq(lif.mem_wr_en & seq.tile.payload.spill),
            self.mspill.valid.eq(spill_valid),
            self.mspill.payload.eq(spill_beat),
            self.out.valid.eq(lif.out.valid & ~spill_stall),
            self.out.payload.eq(lif.out.payload),
            lif.out.ready.eq(self.out.ready & ~spill_stall),
        ]
        with m.If(spill_load):
            m.d.sync += [spill_valid.eq(1), spill_beat.addr.eq(lif.mem_wr_addr),
                         spill_beat.data.eq(lif.mem_wr_data)]
        with m.Elif(self.mspill.ready):
            m.d.sync += spill_valid.eq(0)
        # ---- mfill: writes a row through the buffer's one write port in any
        # cycle the LIF stage does not write back (rows >= mem_rows ignored).
        fill = Signal(1)
        m.d.comb += [
            self.mfill.ready.eq(~lif.mem_wr_en),
            fill.eq(self.mfill.valid & ~lif.mem_wr_en & (self.mfill.payload.addr < cfg.mem_rows)),
        ]
        m.d.comb += [
            wbuf.rd_addr.eq(seq.wb_rd_addr),
            wbuf.rd_en.eq(seq.wb_rd_en),
            pes.weights.eq(wbuf.rd_data),
            pes.add_en.eq(seq.add_en),
            pes.add_bank.eq(seq.add_bank),
            pes.clear_en.eq(seq.clear_en),
            pes.clear_bank.eq(seq.clear_bank),
            pes.rd_bank.eq(lif.pe_rd_bank),
            pes.rd_group.eq(lif.pe_rd_group),
            lif.currents.eq(pes.currents),
            pes.rd0_bank.eq(lif.pe_rd0_bank),
            lif.currents0.eq(pes.currents0),
            lif.next_valid.eq(seq.next_valid),
            lif.next_tile.eq(seq.next_tile),
            mbuf.rd_own.eq(lif.mem_rd_own),
            mbuf.rd_addr.eq(lif.mem_rd_addr),
            mbuf.rd_en.eq(lif.mem_rd_en),
            lif.mem_rd_data.eq(mbuf.rd_data),
            # selected by `fill` (0 whenever the LIF stage writes), not by
            # lif.mem_wr_en: the write-back data (the end of the LIF group
            # step, the a128g4 critical path) then meets no gate by the
            # stage's fan-out enable, and with mfill unused (the FPGA
            # wrapper) the multiplexer is constant.
            mbuf.wr_addr.eq(Mux(fill, self.mfill.payload.addr, lif.mem_wr_addr)),
            mbuf.wr_en.eq(lif.mem_wr_en | fill),
            mbuf.wr_data.eq(Mux(fill, self.mfill.payload.data, lif.mem_wr_data)),
            mbuf.dbg_addr.eq(self.dbg_addr),
            self.dbg_data.eq(mbuf.dbg_data),
            self.busy.eq(seq.busy | lif.busy | spill_valid),
            self.error.eq(seq.error),
        ]
        return m
