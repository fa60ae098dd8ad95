"""The design under proof: a generator block as emitted Verilog, and an
Amaranth ``Instance`` of it for a property harness.

Proofs run on the same Verilog text that co-simulation builds (no ``src``
attributes, internal attributes stripped, as :func:`gen.emit.generate_verilog`
writes it), so a fault of :mod:`tb.mutations` or :mod:`formal.faults` can be
applied to it as text before the proof. The harness only sees the block's
ports.
"""

from __future__ import annotations

from amaranth.back import verilog
from amaranth.hdl import ClockSignal, Instance, ResetSignal, Signal
from amaranth.lib import wiring

__all__ = ["Dut", "block_verilog", "core_verilog"]


def block_verilog(component: wiring.Component, name: str) -> str:
    """Verilog of one block, emitted like the core's (no paths in it)."""
    return verilog.convert(component, name=name, emit_src=False, strip_internal_attrs=True)


def core_verilog(cfg, name: str) -> str:
    """Verilog of the whole ``LifPeArrayCore``, exactly as ``gen.emit`` writes it."""
    from gen.emit import generate_verilog
    return generate_verilog(cfg, top=name)


class Dut:
    """Ports of a component as harness signals, and the ``Instance`` that binds them.

    ``Dut(component, module_name, sync=True)``: ``self[path]`` is the harness
    signal (same shape, views for layouts) of the port at ``path`` (e.g.
    ``("out", "payload")`` or ``("busy",)``), ``self.instance()`` the
    ``Instance`` (``clk``/``rst`` from the harness's ``sync`` domain when
    ``sync``).
    """

    def __init__(self, component: wiring.Component, module: str, *, sync: bool = True,
                 prefix: str = "dut"):
        self.module = module
        self.sync = sync
        component._MustUse__silence = True   # only its signature is used
        self.ports = {}
        self._dirs = {}
        for path, member in component.signature.members.flatten():
            if not member.is_port:
                continue
            sig = Signal(member.shape, name=f"{prefix}_" + "__".join(map(str, path)))
            self.ports[tuple(path)] = sig
            self._dirs[tuple(path)] = "i" if member.flow == wiring.In else "o"

    def __getitem__(self, path):
        if isinstance(path, str):
            path = tuple(path.split("."))
        return self.ports[path]

    def instance(self) -> Instance:
        kw = {}
        for path, sig in self.ports.items():
            value = sig.as_value() if hasattr(sig, "as_value") else sig
            kw[f"{self._dirs[path]}_{'__'.join(map(str, path))}"] = value
        if self.sync:
            kw["i_clk"] = ClockSignal()
            kw["i_rst"] = ResetSignal()
        return Instance(self.module, **kw)
