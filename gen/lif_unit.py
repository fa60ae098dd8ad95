"""One shared leaky-integrate-and-fire unit (docs/fixed-point.md F3-F6).

A :class:`LifUnit` is purely combinational (latency 0): the
:class:`gen.lif_stage.LifStage` registers its input (the carried membrane) and
its outputs (the output beat and the next carry), so one group step takes one
clock cycle. The group-to-group recurrence ``V' -> leak -> integrate -> fire ->
reset -> V'`` is the core's critical path; the leak multiplies by the
constant ``leak_int`` (``MW x (leak_bits+1)`` bits), which synthesis reduces to
a shift-add tree.

Each LifUnit is elaborated as its own Verilog module so that the number of
shared LIF units (``HwConfig.lif_units``) can be counted in the netlist.
Named intermediate signals (``leak_product``, ``leaked``, ``u_sum``, ``u``,
``spike``, ``v_next``) appear as wires of that module.
"""

from __future__ import annotations

from amaranth.hdl import C, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from golden.config import HwConfig

__all__ = ["LifUnit"]


class LifUnit(wiring.Component):
    """Combinational LIF step.

    Ports:

    * ``v``      In, signed MW  -- incoming membrane V (carried or from the buffer).
    * ``x``      In, signed AW  -- accumulated current X of this slot.
    * ``u``      Out, signed MW -- membrane before reset, U = sat_MW(L + X) (F3, F4).
    * ``spike``  Out, 1         -- O (F5).
    * ``v_next`` Out, signed MW -- V' after reset (F6), carried to the next group.
    """

    def __init__(self, cfg: HwConfig):
        self._cfg = cfg
        super().__init__({
            "v": In(signed(cfg.mem_width)),
            "x": In(signed(cfg.acc_width)),
            "u": Out(signed(cfg.mem_width)),
            "spike": Out(1),
            "v_next": Out(signed(cfg.mem_width)),
        })

    def elaborate(self, platform):
        cfg = self._cfg
        m = Module()
        mw, lb = cfg.mem_width, cfg.leak_bits

        # F3: L = (V * leak_int + 2**(leak_bits-1)) >> leak_bits, at full width
        # (mem_width + leak_bits + 1 bits, leak_int needs leak_bits+1 bits as a
        # signed constant). Arithmetic shift = floor; the +half gives rounding to
        # nearest, ties toward +inf.
        prod_width = mw + lb + 2
        leak_product = Signal(signed(prod_width))
        m.d.comb += leak_product.eq(self.v * C(cfg.leak_int, signed(lb + 2))
                                    + C(1 << (lb - 1), signed(lb + 1)))
        leaked = Signal(signed(mw))          # λ <= 1, so L fits MW (F3)
        m.d.comb += leaked.eq(leak_product >> lb)

        # F4: U = sat_MW(L + X), sum formed at max(MW, AW) + 1 bits.
        sum_width = max(mw, cfg.acc_width) + 1
        u_sum = Signal(signed(sum_width))
        m.d.comb += u_sum.eq(leaked + self.x)
        mem_max, mem_min = cfg.mem_max, cfg.mem_min
        m.d.comb += self.u.eq(Mux(u_sum > mem_max, mem_max,
                                  Mux(u_sum < mem_min, mem_min, u_sum)))

        # F5: O = U > θ (fire="gt") or U >= θ (fire="ge").
        theta = C(cfg.theta_int, signed(mw + 1))
        if cfg.fire == "gt":
            m.d.comb += self.spike.eq(self.u > theta)
        else:
            m.d.comb += self.spike.eq(self.u >= theta)

        # F6: soft V' = U - θ·O (cannot overflow: only formed when U >= θ);
        # hard V' = 0 if O else U.
        if cfg.reset == "soft":
            m.d.comb += self.v_next.eq(Mux(self.spike, self.u - theta, self.u))
        else:
            m.d.comb += self.v_next.eq(Mux(self.spike, 0, self.u))
        return m

