"""Hardware cost report: area by block, LIF share, buffers, depth, cycles vs GROUPS.

``python -m flow.report`` (= ``make report``) sweeps ``--array`` x ``--groups``
(default ARRAY=128, GROUPS 1,2,4,8; other fields are :class:`HwConfig`
defaults): :func:`flow.sweep.run` emits, synthesizes (:mod:`flow.synth`),
attributes and checks (:mod:`flow.attribution`) and simulates every build;
then the LIF membrane-memory table of VGG16/ResNet19
(:mod:`flow.memory_table`) is added and ``<out-dir>/hardware_report.md``
(:mod:`flow.render`), ``<out-dir>/area_by_block.png``,
``<out-dir>/memory_by_scheme.png`` (:mod:`flow.plots`) and
``<out-dir>/hardware_report.json`` (with the place-and-route section of
:func:`flow.fpga.report_section` for ``--fpga-array`` x ``--groups`` and the
iCE40 check, unless ``--no-fpga``/``--no-synth``) are written in one
:func:`golden.files.atomic_write` (mode 0644, all or none).

Error contract (:mod:`golden.cli`): a bad option, a missing Yosys or
matplotlib, or an unwritable output, cache or simulator build folder prints
one ``python -m flow.report: error: ...`` line and exits with status 2
*before* any emit, synthesis or simulation; a failed Yosys run, build or
simulation during the sweep prints one such line and exits 2; a failed
netlist consistency check exits 1. In every error case no report file is
written. Progress lines go to stderr; the path of the markdown report goes
to stdout. Method: ``docs/report.md``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import tb.build
from golden.cli import OneLineParser, bounded_int, error_line, posint, run_main
from golden.config import ConfigError, HwConfig
from golden.errors import ProjectError
from golden.files import atomic_write, check_writable_dir
from golden.paths import build_path
from golden.traffic import plot_png as traffic_plot, traffic_markdown

from . import fpga, sweep
from .attribution import ConsistencyError
from .memory_table import memory_rows
from .plots import plot_area, plot_memory, require_matplotlib
from .render import render_markdown
from .synth import SynthError, yosys_version

__all__ = ["PROG", "DEFAULT_ARRAYS", "DEFAULT_GROUPS", "ReportError", "main"]

PROG = "python -m flow.report"
DEFAULT_ARRAYS = (128,)
DEFAULT_GROUPS = (1, 2, 4, 8)


class ReportError(ProjectError, ValueError):
    """A bad report option (exit status 2)."""


def _int_list(name: str):
    def parse(text: str) -> list:
        try:
            vals = [int(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated integers, got {text!r}") from None
        if not vals:
            raise argparse.ArgumentTypeError("empty list")
        return vals
    parse.__name__ = name
    return parse


def _csv(values) -> str:
    # a string default goes through the option's type, and reads well in --help
    return ",".join(str(v) for v in values)


def _parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog=PROG,
                      description="Synthesize each ARRAY x GROUPS build with Yosys and report "
                                  "cells per block, LIF share, buffer bits, logic depth, cycles, "
                                  "measured throughput and the LIF memory table "
                                  "(docs/report.md).")
    p.add_argument("--array", type=_int_list("array"), default=_csv(DEFAULT_ARRAYS),
                   metavar="A[,A...]", help="PE counts; replaces the default")
    p.add_argument("--groups", type=_int_list("groups"), default=_csv(DEFAULT_GROUPS),
                   metavar="N[,N...]", help="C#N group counts; replaces the default. "
                                            "Every N must divide every A.")
    p.add_argument("--jobs", type=posint("jobs"), default=2,
                   help="parallel Yosys runs / simulations")
    p.add_argument("--out-dir", default=str(build_path("reports")), help="report folder")
    p.add_argument("--cache-dir", default=str(build_path("build", "report_cache")),
                   help="synthesis cache folder")
    p.add_argument("--sim", choices=tb.build.SIMULATORS, default="verilator",
                   help="simulator for the throughput runs (Icarus manages only a few "
                        "cycles per second on a 128-PE build)")
    p.add_argument("--tiles", type=bounded_int(4, "tiles must be an integer of at least 4, "
                                                  "got {v!r}"),
                   default=16, help="tiles per throughput run")
    p.add_argument("--no-sim", action="store_true", help="skip the throughput simulations")
    p.add_argument("--no-synth", action="store_true",
                   help="skip Yosys (memory table, manifest figures and throughput only)")
    p.add_argument("--yosys", default="yosys", help="Yosys executable")
    g = p.add_argument_group("FPGA place and route (flow/fpga.py; needs the fpga extra)")
    g.add_argument("--no-fpga", action="store_true",
                   help="skip the ECP5 place-and-route section and the iCE40 fit check "
                        "(implied by --no-synth)")
    g.add_argument("--fpga-array", type=_int_list("fpga-array"), default="32",
                   metavar="A[,A...]",
                   help="ARRAY values placed and routed on ECP5 (GROUPS: --groups); "
                        "128 takes tens of minutes per build")
    g.add_argument("--fpga-ice40", type=fpga.parse_build, default="32:4",
                   metavar="ARRAY:GROUPS", help="iCE40 HX8K fit-check build, or 'none'")
    g.add_argument("--fpga-seed", type=bounded_int(0, "fpga-seed must be a non-negative "
                                                      "integer, got {v!r}"),
                   default=1, help="nextpnr seed")
    g.add_argument("--fpga-cache-dir", default="build/fpga_cache",
                   help="place-and-route result cache folder")
    return p


def _configs(args) -> list:
    cfgs = []
    for a in args.array:
        for g in args.groups:
            try:
                cfgs.append(HwConfig(array=a, groups=g))
            except ConfigError as e:
                msg = str(e)
                opt = "--groups" if msg.startswith("groups") else "--array"
                raise ReportError(f"{opt}: ARRAY={a} GROUPS={g}: {msg}") from None
    return cfgs


def _fpga_on(args) -> bool:
    return not (args.no_fpga or args.no_synth)


def _fpga_configs(args) -> list:
    """ECP5 builds of the report: --fpga-array x --groups (and the iCE40 build checked)."""
    cfgs = []
    pairs = [(a, g) for a in args.fpga_array for g in args.groups]
    if args.fpga_ice40:
        pairs.append(args.fpga_ice40)
    for a, g in pairs:
        try:
            cfgs.append(HwConfig(array=a, groups=g))
        except ConfigError as e:
            raise ReportError(f"--fpga-array/--fpga-ice40: ARRAY={a} GROUPS={g}: {e}") from None
    return cfgs[:len(args.fpga_array) * len(args.groups)]


def _check_before_work(args) -> tuple:
    """Every check that can fail without building anything: options, tools,
    folders. Returns ``(configurations, output folder)``."""
    cfgs = _configs(args)
    if _fpga_on(args):
        _fpga_configs(args)
    bad = [c for c in cfgs if args.tiles > c.mem_rows]
    if bad and not args.no_sim:
        raise ReportError(f"--tiles={args.tiles}: more than mem_rows={bad[0].mem_rows}")
    if not args.no_synth:
        try:
            yosys_version(args.yosys)
        except SynthError as e:
            raise ReportError(f"--yosys: {e}") from None
    require_matplotlib()
    out = check_writable_dir(args.out_dir, "--out-dir")
    if not args.no_synth:
        check_writable_dir(args.cache_dir, "--cache-dir")
    if _fpga_on(args):
        check_writable_dir(args.fpga_cache_dir, "--fpga-cache-dir")
    # emit_rtl and the simulator builds write here (tb.build, $TB_SIM_BUILD)
    check_writable_dir(tb.build.sim_build_dir(), "simulator build folder")
    return cfgs, out


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parser().parse_args(argv)
    cfgs, out = _check_before_work(args)
    fpga_cfgs = _fpga_configs(args) if _fpga_on(args) else []
    try:
        reports = sweep.run(cfgs, jobs=args.jobs, cache_dir=args.cache_dir, yosys=args.yosys,
                            synth=not args.no_synth, sim=None if args.no_sim else args.sim,
                            tiles=args.tiles)
    except ConsistencyError as e:
        print(error_line(PROG, f"consistency check failed: {e}"), file=sys.stderr)
        return 1
    fpga_md, fpga_data = "", []
    if _fpga_on(args):
        ice = HwConfig(array=args.fpga_ice40[0], groups=args.fpga_ice40[1]) \
            if args.fpga_ice40 else None
        fpga_md, fpga_data = fpga.report_section(fpga_cfgs, ice, seed=args.fpga_seed,
                                                 cache_dir=args.fpga_cache_dir)
    mem = memory_rows(cfgs[0].mem_width)
    md = render_markdown(reports, mem, " " + shlex.join(argv) if argv else "")
    files = {out / "hardware_report.md":
             md + "\n\n" + traffic_markdown("dram_traffic.png") + ("\n" + fpga_md if fpga_md else "")}
    if any(r.synth is not None for r in reports):
        files[out / "area_by_block.png"] = plot_area(reports)
    files[out / "memory_by_scheme.png"] = plot_memory(mem)
    files[out / "dram_traffic.png"] = traffic_plot()
    data = {"builds": [r.as_dict() for r in reports], "memory": [r.as_dict() for r in mem],
            "fpga": fpga_data}
    files[out / "hardware_report.json"] = json.dumps(data, indent=1) + "\n"
    atomic_write(files)
    print(f"wrote {', '.join(Path(p).name for p in files)} to {out}", file=sys.stderr)
    print(out / "hardware_report.md")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, PROG))
