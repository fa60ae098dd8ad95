"""Double-buffered saturating accumulator array (docs/fixed-point.md F2).

The :class:`PeArray` holds two banks of ``A`` signed ``acc_width``
accumulators. While one bank accumulates the events of tile ``j+1``, the other
holds the finished currents of tile ``j`` for the LIF stage.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from golden.config import HwConfig

__all__ = ["PeArray", "mux_tree"]


class PeArray(wiring.Component):
    """Two banks of ``A`` saturating accumulators, one adder per PE.

    Ports (all synchronous to ``sync``; updates take effect on the next edge):

    * ``add_en``   In, 1  -- add ``weights`` to bank ``add_bank``:
      ``X[p] <- sat_AW(X[p] + weights[p])`` for every PE ``p`` (F2).
    * ``add_bank`` In, 1
    * ``weights``  In, A x signed WW -- one weight-buffer row.
    * ``clear_en`` In, 1  -- set every accumulator of ``clear_bank`` to 0. The
      caller never adds to and clears the same bank in one cycle.
    * ``clear_bank`` In, 1
    * ``rd_bank``  In, 1; ``rd_group`` In, GW -- combinational read selector.
    * ``currents`` Out, S x signed AW -- PEs ``rd_group*S .. rd_group*S+S-1`` of
      bank ``rd_bank`` (slot ``k`` = PE ``rd_group*S + k``), no latency.
    * ``rd0_bank`` In, 1; ``currents0`` Out, S x signed AW -- PEs ``0 .. S-1``
      (group 0) of bank ``rd0_bank`` as they will be after this edge: the sum
      of an add to that bank on this edge included (combinational; the
      caller does not clear ``rd0_bank`` on an edge where it uses it). The
      LIF stage registers group 0 of a tile on the edge that may still add
      the tile's last EVENT.

    After reset both banks are 0.
    """

    def __init__(self, cfg: HwConfig):
        self._cfg = cfg
        super().__init__({
            "add_en": In(1),
            "add_bank": In(1),
            "weights": In(data.ArrayLayout(signed(cfg.weight_width), cfg.array)),
            "clear_en": In(1),
            "clear_bank": In(1),
            "rd_bank": In(1),
            "rd_group": In(unsigned(cfg.group_width)),
            "currents": Out(data.ArrayLayout(signed(cfg.acc_width), cfg.slots)),
            "rd0_bank": In(1),
            "currents0": Out(data.ArrayLayout(signed(cfg.acc_width), cfg.slots)),
        })

    def elaborate(self, platform):
        cfg = self._cfg
        m = Module()
        aw, lo, hi = cfg.acc_width, cfg.acc_min, cfg.acc_max
        assert (lo, hi) == (-(1 << (aw - 1)), (1 << (aw - 1)) - 1)   # full AW range (overflow test)
        banks = [[Signal(signed(aw), name=f"acc_b{b}_p{p}") for p in range(cfg.array)]
                 for b in range(2)]

        for p in range(cfg.array):
            # One adder per PE; its operand is the selected bank (F2).
            acc_in = Signal(signed(aw), name=f"acc_in_p{p}")
            acc_sum = Signal(signed(aw + 1), name=f"acc_sum_p{p}")
            acc_ovf = Signal(1, name=f"acc_ovf_p{p}")
            acc_bound = Signal(signed(aw), name=f"acc_bound_p{p}")
            acc_sat = Signal(signed(aw), name=f"acc_sat_p{p}")
            m.d.comb += [
                acc_in.eq(Mux(self.add_bank, banks[1][p], banks[0][p])),
                acc_sum.eq(acc_in + self.weights[p]),
                # sat_AW (F2) as overflow detection: the AW+1-bit sum leaves the
                # AW-bit range [lo, hi] exactly when its two top bits differ, and
                # then its sign says which end. Same values as comparing with
                # lo/hi, without two more carry chains after the adder.
                acc_ovf.eq(acc_sum[aw] ^ acc_sum[aw - 1]),
                acc_bound.eq(Mux(acc_sum[aw], lo, hi)),
                acc_sat.eq(Mux(acc_ovf, acc_bound, acc_sum[:aw])),
            ]
            if p < cfg.slots:
                # group 0 of bank rd0_bank after this edge (see `currents0`)
                m.d.comb += self.currents0[p].eq(
                    Mux(self.add_en & (self.add_bank == self.rd0_bank), acc_sat,
                        Mux(self.rd0_bank, banks[1][p], banks[0][p])))
            for b in range(2):
                with m.If(self.clear_en & (self.clear_bank == b)):
                    m.d.sync += banks[b][p].eq(0)
                with m.Elif(self.add_en & (self.add_bank == b)):
                    m.d.sync += banks[b][p].eq(acc_sat)

        # Read mux: bank x group -> the S currents of one group. Built from
        # Mux trees (continuous assignments), not Array/Switch: a combinational
        # process would be emitted as `always @*`, which Icarus does not
        # evaluate at time 0 when none of its inputs ever changes.
        for k in range(cfg.slots):
            by_group = [mux_tree(self.rd_group, [banks[b][g * cfg.slots + k]
                                                 for g in range(cfg.groups)])
                        for b in range(2)]
            m.d.comb += self.currents[k].eq(Mux(self.rd_bank, by_group[1], by_group[0]))
        return m


def mux_tree(index, items):
    """``items[index]`` as a balanced tree of 2:1 ``Mux`` on the bits of ``index``.

    Indices beyond ``len(items)`` select the last item.
    """
    items = list(items)
    bit = 0
    while len(items) > 1:
        if len(items) % 2:
            items.append(items[-1])
        items = [Mux(index[bit], hi, lo) for lo, hi in zip(items[0::2], items[1::2])]
        bit += 1
    return items[0]
