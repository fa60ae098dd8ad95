"""Serial I/O wrapper of the core for FPGA place and route.

The core has more I/O bits than any FPGA package has pins (``wload__payload``
alone is ``RA + A*WW`` bits), so :class:`IoWrapper` puts it behind a few pins
and registers every core port, so the post-route critical path is a
core-internal path (or a wrapper path), never a pad-to-pad one.

Pins of the wrapper (module ``fpga_top``, all in the ``sync`` domain of
``clk``/``rst``)::

    sdi                 serial data in, shared by the three input shift registers
    sh_cmd sh_wload sh_ctl
                        shift enable of the cmd / wload / ctl shift register:
                        ``sr <= {sdi, sr[W-1:1]}``, i.e. the host shifts the word
                        LSB first, W cycles per word
    go_cmd go_wload     copy the shift register into the holding register of
                        the stream and raise its ``valid``; ``valid`` falls in
                        the cycle after the core accepted it (valid & ready)
    go_ctl              copy the ctl shift register to the ``dbg_addr`` register
    cmd_pend wload_pend out: the holding register's ``valid`` (wait for 0
                        before the next ``go_*``)
    out_full            out: one ``out`` beat is held in the beat buffer
    cap                 load the output shift register with :data:`OUT_FIELDS`
                        (beat buffer, registered ``dbg_data``/``busy``/``error``,
                        ``out_full``) and empty the beat buffer
    sh_out, sdo         shift the output shift register right; ``sdo`` = its bit 0

Core side: ``cmd__valid/payload``, ``wload__valid/payload`` and ``dbg_addr``
come from flip-flops; ``out__ready`` is ``~out_full`` (a flip-flop); ``out__*``,
``dbg_data``, ``busy`` and ``error`` go into flip-flops (the beat buffer
captures a beat when ``out__valid & out__ready``). At the stream level the
wrapper is transparent: the core sees the commands and weight rows in the
order given and its beats come out unchanged (backpressure while the beat
buffer is full).

:func:`wrapper_verilog` emits the wrapper with the core as a black-box
``Instance`` of the ``lif_pe_array`` module written by :mod:`gen.emit`
(synthesized from that file); ``IoWrapper(cfg, core=LifPeArrayCore(cfg))``
holds the real component for simulation.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Elaboratable, Instance, Module, Signal, Value

from gen.emit import DEFAULT_TOP, build_manifest
from golden.config import HwConfig

__all__ = ["WRAP_TOP", "CORE_INSTANCE", "PINS", "IoWrapper", "OUT_FIELDS", "out_fields",
           "out_width", "wrapper_verilog", "wrapper_flip_flops"]

#: Module name of the wrapper top level.
WRAP_TOP = "fpga_top"
#: Instance name of the core inside the wrapper (prefix of its flattened cell names).
CORE_INSTANCE = "core"

#: One-bit pins of the wrapper besides ``clk`` and ``rst`` (module docstring).
PINS = ("sdi", "sh_cmd", "sh_wload", "sh_ctl", "go_cmd", "go_wload", "go_ctl", "cap", "sh_out",
        "sdo", "cmd_pend", "wload_pend", "out_full")

#: Order of the fields in the output shift register, bit 0 first.
OUT_FIELDS = ("out_full", "busy", "error", "dbg_data", "out_payload")


def _port_widths(cfg: HwConfig) -> dict:
    return {p["name"]: p["width"] for p in build_manifest(cfg)["ports"]}


def out_fields(cfg: HwConfig) -> dict:
    """{field: (offset, width)} of the output shift register (:data:`OUT_FIELDS`)."""
    w = _port_widths(cfg)
    widths = {"out_full": 1, "busy": 1, "error": w["error"], "dbg_data": w["dbg_data"],
              "out_payload": w["out__payload"]}
    off, res = 0, {}
    for f in OUT_FIELDS:
        res[f] = (off, widths[f])
        off += widths[f]
    return res


def out_width(cfg: HwConfig) -> int:
    """Bits of the output shift register."""
    return sum(wd for _, wd in out_fields(cfg).values())


def wrapper_flip_flops(cfg: HwConfig) -> int:
    """Flip-flops the wrapper adds (shift, holding, capture registers; before
    synthesis removes constant or unused ones)."""
    w = _port_widths(cfg)
    ins = 2 * (w["cmd__payload"] + w["wload__payload"] + w["dbg_addr"]) + 2
    outs = (w["out__payload"] + 1) + (w["dbg_data"] + 1 + w["error"])
    return ins + outs + out_width(cfg)


class IoWrapper(Elaboratable):
    """The core behind shift registers (pins: module docstring).

    ``core``: ``None`` -> a black-box ``Instance`` of ``core_module`` (for
    synthesis with the Verilog of :mod:`gen.emit`); or a
    :class:`gen.core.LifPeArrayCore` of the same ``cfg`` (for simulation).
    """

    def __init__(self, cfg: HwConfig, core=None, core_module: str = DEFAULT_TOP):
        self.cfg, self.core, self.core_module = cfg, core, core_module
        w = _port_widths(cfg)
        self.w = w
        for pin in PINS:
            setattr(self, pin, Signal(name=pin))
        self.out_width = out_width(cfg)

    def pins(self) -> list:
        return [getattr(self, pin) for pin in PINS]

    def elaborate(self, platform):
        m = Module()
        w = self.w
        # core-side signals, flat bit vectors named like the Verilog ports
        c = {name: Signal(wd, name=f"c_{name}") for name, wd in w.items()
             if name not in ("clk", "rst")}
        if self.core is None:
            ports = {}
            for p in build_manifest(self.cfg)["ports"]:
                if p["name"] == "clk":
                    ports["i_clk"] = Signal(1, name="core_clk")
                    m.d.comb += ports["i_clk"].eq(self._clk())
                elif p["name"] == "rst":
                    ports["i_rst"] = Signal(1, name="core_rst")
                    m.d.comb += ports["i_rst"].eq(self._rst())
                else:
                    ports[("i_" if p["dir"] == "in" else "o_") + p["name"]] = c[p["name"]]
            m.submodules[CORE_INSTANCE] = Instance(self.core_module, **ports)
            if "mspill__ready" in c:    # membrane spill/fill not wired to pins: never blocks
                m.d.comb += c["mspill__ready"].eq(1)
        else:
            core = self.core
            m.submodules[CORE_INSTANCE] = core
            m.d.comb += [
                core.cmd.valid.eq(c["cmd__valid"]), core.cmd.payload.eq(c["cmd__payload"]),
                c["cmd__ready"].eq(core.cmd.ready),
                core.wload.valid.eq(c["wload__valid"]),
                core.wload.payload.eq(c["wload__payload"]),
                c["wload__ready"].eq(core.wload.ready),
                c["out__valid"].eq(core.out.valid),
                c["out__payload"].eq(Value.cast(core.out.payload)),
                core.out.ready.eq(c["out__ready"]),
                core.mspill.ready.eq(1),
                core.dbg_addr.eq(c["dbg_addr"]), c["dbg_data"].eq(core.dbg_data),
                c["busy"].eq(core.busy), c["error"].eq(core.error),
            ]

        def shifter(width, enable, name):
            sr = Signal(width, name=f"{name}_sr")
            with m.If(enable):
                m.d.sync += sr.eq(Cat(sr[1:], self.sdi) if width > 1 else self.sdi)
            return sr

        # input streams: shift register -> holding register + valid
        for s, sh, go, pend in (("cmd", self.sh_cmd, self.go_cmd, self.cmd_pend),
                                ("wload", self.sh_wload, self.go_wload, self.wload_pend)):
            sr = shifter(w[f"{s}__payload"], sh, s)
            payload = Signal(w[f"{s}__payload"], name=f"{s}_hold")
            valid = Signal(name=f"{s}_valid")
            with m.If(valid & c[f"{s}__ready"]):
                m.d.sync += valid.eq(0)
            with m.If(go):
                m.d.sync += [payload.eq(sr), valid.eq(1)]
            m.d.comb += [c[f"{s}__payload"].eq(payload), c[f"{s}__valid"].eq(valid),
                         pend.eq(valid)]
        ctl_sr = shifter(w["dbg_addr"], self.sh_ctl, "ctl")
        dbg_addr = Signal(w["dbg_addr"], name="dbg_addr_q")
        with m.If(self.go_ctl):
            m.d.sync += dbg_addr.eq(ctl_sr)
        m.d.comb += c["dbg_addr"].eq(dbg_addr)

        # output stream: one-beat buffer, status registers, output shift register
        beat = Signal(w["out__payload"], name="beat_q")
        full = Signal(name="beat_full")
        m.d.comb += [c["out__ready"].eq(~full), self.out_full.eq(full)]
        dbg_q = Signal(w["dbg_data"], name="dbg_data_q")
        busy_q = Signal(name="busy_q")
        err_q = Signal(w["error"], name="error_q")
        m.d.sync += [dbg_q.eq(c["dbg_data"]), busy_q.eq(c["busy"]), err_q.eq(c["error"])]
        osr = Signal(self.out_width, name="out_sr")
        fields = {"out_full": full, "busy": busy_q, "error": err_q, "dbg_data": dbg_q,
                  "out_payload": beat}
        with m.If(self.cap):
            m.d.sync += [osr.eq(Cat(*(fields[f] for f in OUT_FIELDS))), full.eq(0)]
        with m.Elif(self.sh_out):
            m.d.sync += osr.eq(osr >> 1)
        # after the cap clear, so a beat arriving while the buffer is empty is kept
        with m.If(c["out__valid"] & ~full):
            m.d.sync += [beat.eq(c["out__payload"]), full.eq(1)]
        m.d.comb += self.sdo.eq(osr[0])
        return m

    @staticmethod
    def _clk():
        from amaranth.hdl import ClockSignal
        return ClockSignal("sync")

    @staticmethod
    def _rst():
        from amaranth.hdl import ResetSignal
        return ResetSignal("sync")


def wrapper_verilog(cfg: HwConfig, core_module: str = DEFAULT_TOP) -> str:
    """Verilog of ``fpga_top`` (the core as a black-box instance of ``core_module``)."""
    from amaranth.back import verilog

    wrap = IoWrapper(cfg, core=None, core_module=core_module)
    return verilog.convert(wrap, name=WRAP_TOP, ports=wrap.pins(), emit_src=False,
                           strip_internal_attrs=True)
