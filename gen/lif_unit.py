"""One shared leaky-integrate-and-fire unit (docs/fixed-point.md F3-F6).

A :class:`LifUnit` is purely combinational (latency 0): the
:class:`gen.lif_stage.LifStage` registers its input (the carried membrane) and
its outputs (the output beat and the next carry), so one group step takes one
clock cycle. The group-to-group recurrence ``V' -> leak -> integrate -> fire ->
reset -> V'`` is the core's critical path, so the unit is built to put ONE
carry chain on it:

* the leak rounding is folded into the current: with ``P = V·leak_int``,
  ``L + X - c = (P + (X - c)·2^lb + 2^(lb-1)) >> lb`` exactly (an arithmetic
  shift is a floor, and ``(X - c)·2^lb`` is a multiple of ``2^lb``), and
  ``(X - c)·2^lb + 2^(lb-1)`` is a concatenation, not an addition;
* ``s - c`` for ``c`` = 0 (``u_sum`` = L + X), θ (``u_minus_theta``),
  ``θ + 1`` (``above_theta``, fire = "gt"), ``mem_max + 1`` and ``mem_min``
  are formed in parallel, one adder each after
  ``P`` (a shift for a power-of-two ``leak_int``, a shift-add tree otherwise);
  ``X - c`` depends on the current only (not on ``V``);
* saturation (F4), firing (F5) and ``U - θ`` (F6) are then sign bits and
  multiplexers: ``sat(s) > θ`` equals ``s > θ`` because saturation is
  monotone and ``mem_min < θ <= mem_max``.

The results are bit-identical to the sequential formulas F3-F6.

Each LifUnit is elaborated as its own Verilog module so that the number of
shared LIF units (``HwConfig.lif_units``) can be counted in the netlist.
Named intermediate signals (``leak_product``, ``u_sum``, ``u_minus_theta``,
``over``, ``under``, ``theta_ge``, ``u``, ``spike``, ``v_next``) appear as wires of that
module.
"""

from __future__ import annotations

from amaranth.hdl import C, Cat, Module, Mux, Signal, signed
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
        mem_max, mem_min, theta = cfg.mem_max, cfg.mem_min, cfg.theta_int

        # F3 product P = V * leak_int (leak_int needs lb+1 bits unsigned, lb+2 signed).
        leak_product = Signal(signed(mw + lb + 2))
        m.d.comb += leak_product.eq(self.v * C(cfg.leak_int, signed(lb + 2)))

        # s - c = floor((P + (X - c)*2^lb + 2^(lb-1)) / 2^lb) = L + X - c (F3, F4),
        # every width exact (Amaranth widens + and -).
        def shifted_sum(c, name):
            xc = self.x - C(c, signed(max(mw, cfg.acc_width) + 2)) if c else self.x
            y = Cat(C(1 << (lb - 1), lb), xc).as_signed()
            s = Signal(signed(max(len(leak_product), len(y)) + 1 - lb), name=name)
            m.d.comb += s.eq((leak_product + y) >> lb)
            return s

        u_sum = shifted_sum(0, "u_sum")                       # L + X
        u_minus_theta = shifted_sum(theta, "u_minus_theta")   # L + X - θ
        above_max = shifted_sum(mem_max + 1, "above_max")     # >= 0 iff L + X > mem_max
        below_min = shifted_sum(mem_min, "below_min")         # < 0 iff L + X < mem_min
        over, under = Signal(name="over"), Signal(name="under")
        m.d.comb += [over.eq(~above_max[-1]), under.eq(below_min[-1])]

        # F4: U = sat_MW(L + X).
        m.d.comb += self.u.eq(Mux(over, mem_max, Mux(under, mem_min, u_sum)))

        # F5: O = U > θ (fire="gt") or U >= θ (fire="ge"); as mem_min < θ <= mem_max,
        # U > θ iff L + X > θ (never if θ = mem_max) and U >= θ iff L + X >= θ.
        # L + X > θ is the sign bit of its own adder (L + X - θ - 1), in
        # parallel with the others, not `L + X >= θ` AND a wide OR of
        # `u_minus_theta` (two more LUT levels on the recurrence).
        theta_ge = Signal()                 # L + X >= θ
        m.d.comb += theta_ge.eq(~u_minus_theta[-1])
        if cfg.fire == "gt" and theta < mem_max:
            # (no named wire in between: Amaranth would name the output port after it)
            above_theta = shifted_sum(theta + 1, "above_theta")   # >= 0 iff L + X > θ
            m.d.comb += self.spike.eq(~above_theta[-1])
        elif cfg.fire == "gt":
            m.d.comb += self.spike.eq(0)
        else:
            m.d.comb += self.spike.eq(theta_ge)

        # F6: soft V' = U - θ·O (only formed when U >= θ, so it cannot overflow:
        # U - θ = mem_max - θ when saturated high, else L + X - θ); hard V' = 0 if O else U.
        if cfg.reset == "soft":
            m.d.comb += self.v_next.eq(Mux(self.spike, Mux(over, mem_max - theta, u_minus_theta),
                                           self.u))
        else:
            m.d.comb += self.v_next.eq(Mux(self.spike, 0, self.u))
        return m
