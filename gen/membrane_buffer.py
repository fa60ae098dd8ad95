"""Membrane buffer: ``mem_rows`` rows of ``S`` signed membrane words."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.config import HwConfig

__all__ = ["MembraneBuffer"]


class MembraneBuffer(wiring.Component):
    """``lib.memory.Memory`` of ``mem_rows`` x ``S*MW`` bits (slot ``k`` at bits
    ``k*MW``), one write port and ONE synchronous read port, shared by the LIF
    stage and the debug read-back (so synthesis builds one copy of the memory).

    * ``rd_own`` In: the LIF stage owns the read port (it is working on or
      starting a tile). While ``rd_own = 1`` the port reads ``rd_addr`` on edges
      with ``rd_en = 1`` and holds its data otherwise; while ``rd_own = 0`` it
      reads ``dbg_addr`` on every edge.
    * ``rd_addr``/``rd_en`` In, ``rd_data`` Out (S x signed MW): LIF-stage read,
      data one cycle after an edge with ``rd_own = rd_en = 1``, held while
      ``rd_own = 1, rd_en = 0``. Not transparent: a read on the edge that
      writes the same row returns the old row (the LIF stage forwards the
      written value itself in that one case).
    * ``wr_addr``/``wr_en``/``wr_data`` In: write on the edge.
    * ``dbg_addr`` In, ``dbg_data`` Out (S*MW): the same read data as a plain
      word: row ``dbg_addr`` one cycle after an edge with ``rd_own = 0``; after
      an edge with ``rd_own = 1`` it is the LIF stage's read (undefined for the
      user). Rows ``>= mem_rows`` read as undefined.

    The row addressing (which row a tile and group use) is done by
    :class:`gen.lif_stage.LifStage`; this block only stores. Contents are not
    cleared by reset.
    """

    def __init__(self, cfg: HwConfig):
        self._cfg = cfg
        row = data.ArrayLayout(signed(cfg.mem_width), cfg.slots)
        super().__init__({
            "rd_addr": In(unsigned(cfg.mem_addr_width)),
            "rd_own": In(1),
            "rd_en": In(1),
            "rd_data": Out(row),
            "wr_addr": In(unsigned(cfg.mem_addr_width)),
            "wr_en": In(1),
            "wr_data": In(row),
            "dbg_addr": In(unsigned(cfg.mem_addr_width)),
            "dbg_data": Out(unsigned(cfg.slots * cfg.mem_width)),
        })

    def elaborate(self, platform):
        cfg = self._cfg
        m = Module()
        m.submodules.membrane_mem = mem = Memory(
            shape=unsigned(cfg.slots * cfg.mem_width), depth=max(2, cfg.mem_rows), init=[])
        # (a 1-row memory would have 0-bit addresses, which the Verilog back end
        # emits as an illegal [-1:0] range; the spare row is never addressed.)
        wr = mem.write_port()
        rd = mem.read_port()
        m.d.comb += [
            wr.addr.eq(self.wr_addr), wr.data.eq(self.wr_data), wr.en.eq(self.wr_en),
            rd.addr.eq(Mux(self.rd_own, self.rd_addr, self.dbg_addr)),
            rd.en.eq(~self.rd_own | self.rd_en),
            self.rd_data.eq(rd.data),
            self.dbg_data.eq(rd.data),
        ]
        return m
