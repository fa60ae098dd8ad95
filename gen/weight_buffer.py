"""Weight buffer: ``weight_rows`` rows of ``A`` signed weights."""

from __future__ import annotations

from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.config import HwConfig

from .layouts import wload_layout

__all__ = ["WeightBuffer"]


class WeightBuffer(wiring.Component):
    """``lib.memory.Memory`` of ``weight_rows`` x ``A*WW`` bits.

    * ``wload``   In stream (:func:`gen.layouts.wload_layout`); ``ready`` is
      always 1 and a row is written on the edge it is accepted. A row with
      ``addr >= weight_rows`` (possible only when ``weight_rows`` is not a power
      of two) is ignored.
    * ``rd_addr``/``rd_en`` In; ``rd_data`` Out (A x signed WW): synchronous
      read with a registered output: the memory reads row ``rd_addr`` on an
      edge with ``rd_en = 1`` and ``rd_data`` shows it after the next edge
      (two cycles after the read edge; it holds while ``rd_en = 0``). The read
      happens on the ``rd_en`` edge: a write of the same row on that edge
      is not seen (the old row is returned), writes on earlier edges are.

    The output register (``rd_q``) cuts the block RAM's clock-to-out from the
    PE adders (docs/generator.md "Pipeline").
    """

    def __init__(self, cfg: HwConfig):
        self._cfg = cfg
        super().__init__({
            "wload": In(stream.Signature(wload_layout(cfg))),
            "rd_addr": In(unsigned(cfg.weight_addr_width)),
            "rd_en": In(1),
            "rd_data": Out(data.ArrayLayout(signed(cfg.weight_width), cfg.array)),
        })

    def elaborate(self, platform):
        cfg = self._cfg
        m = Module()
        m.submodules.weight_mem = mem = Memory(
            shape=unsigned(cfg.array * cfg.weight_width), depth=max(2, cfg.weight_rows), init=[])
        # (a 1-row memory would have 0-bit addresses, which the Verilog back end
        # emits as an illegal [-1:0] range; the spare row is never addressed.)
        wr = mem.write_port()
        rd = mem.read_port()
        rd_q = Signal(unsigned(cfg.array * cfg.weight_width))
        m.d.sync += rd_q.eq(rd.data)
        m.d.comb += [
            self.wload.ready.eq(1),
            wr.addr.eq(self.wload.payload.addr),
            wr.data.eq(self.wload.payload.data),
            wr.en.eq(self.wload.valid & (self.wload.payload.addr < cfg.weight_rows)),
            rd.addr.eq(self.rd_addr),
            rd.en.eq(self.rd_en),
            self.rd_data.eq(rd_q),
        ]
        return m
