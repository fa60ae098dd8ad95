"""Small building blocks shared by the property harnesses.

A harness is an Amaranth ``Module`` around a :class:`formal.dut.Dut` instance,
converted to RTLIL with its free inputs as top-level ports: a top-level input
is unconstrained in every step of the proof (``anyseq``); :meth:`Harness.const`
adds a free input that keeps its step-0 value (``anyconst``).
"""

from __future__ import annotations

from amaranth.back import rtlil
from amaranth.hdl import Assume, Module, ResetSignal, Signal, Value

__all__ = ["Harness", "TOP"]

#: Module name of every harness (the top of each proof).
TOP = "harness"


def _v(x):
    return x.as_value() if hasattr(x, "as_value") else Value.cast(x)


class Harness:
    """``m``: the module; ``started``: 0 in step 0, 1 afterwards (reset-less);
    ``rst`` is assumed 1 exactly in step 0 (``reset_at_start``)."""

    def __init__(self, *, sync: bool = True):
        self.m = Module()
        self.free = []
        self.sync = sync
        if sync:
            self.started = Signal(reset_less=True, name="h_started")
            self.m.d.sync += self.started.eq(1)
            self.m.d.comb += Assume(ResetSignal() == ~self.started)

    def input(self, sig):
        """Make ``sig`` a free input (any value in every step)."""
        self.free.append(sig)
        return sig

    def const(self, sig):
        """Make ``sig`` a free input that never changes (any value, fixed for the run)."""
        self.input(sig)
        prev = self.past(sig, reset_less=True)   # (a reset past would read 0 in step 1)
        self.m.d.comb += Assume(~self.started | (_v(sig) == _v(prev)))
        return sig

    def past(self, sig, name=None, *, reset_less=False):
        """A register holding ``sig`` of the previous step (init value in step 0,
        and in step 1 too unless ``reset_less``: the reset in step 0 clears it)."""
        reg = Signal(sig.shape(), name=name or f"past_{getattr(sig, 'name', 'x')}",
                     reset_less=reset_less)
        self.m.d.sync += _v(reg).eq(_v(sig))
        return reg

    def rtlil(self) -> str:
        ports = [_v(s) for s in self.free]
        return rtlil.convert(self.m, name=TOP, ports=ports)
