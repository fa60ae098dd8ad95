"""``python -m tb.sim``: emit, build and co-simulate one configuration.

This is what ``make sim`` runs::

    make sim ARRAY=128 GROUPS=4 [SIM=verilator|icarus] [SEED=n] [WAVES=1]
             [LAYER_SHARE=0|1] [RESET=soft|hard] [T=n]

    python -m tb.sim --array 128 --groups 4 [--sim icarus] [--seed 7] [--waves]
                     [--layer-share 0] [--reset hard] [-T 4] [--samples 3] [--no-stress]

By default the cocotb tests run on the bulk path (``--path bulk``,
tb/bulk.py: the generated testbench top ``tb_bulk_top`` runs blocks of the
schedule with no Python per cycle); ``--path bfm`` (``make sim SIMPATH=bfm``)
selects the per-cycle BFM of ``tb/test_lif_pe_array.py``; ``error_flags``
always runs there. The Verilog is emitted by :func:`gen.emit.emit` into
``sim_build/rtl/<config name>/``, built into ``sim_build/<sim>/<config name>/``
(reused while the Verilog is unchanged; ``sim_build/`` is
:func:`tb.build.sim_build_dir`) and simulated with the cocotb tests of
``tb/test_lif_pe_array.py``. One line per phase that does work (emit, build
with its estimated time, run) and a progress bar go to stderr (``-q``: none);
the run ends with a summary on stdout: outputs checked (beats, spikes,
membrane words), mismatches, cycles, cycles per tile and per timestep, the
simulation rate (cycles per second and per CPU-second), wall time. Exit status: 0 all checks passed, 1 a mismatch or a failed
simulation or build, 2 bad options or an unwritable build folder (one
``python -m tb.sim: error: ...`` line).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field

from golden.cli import OneLineParser, bounded_int, posint, run_main
from golden.config import ConfigError, HwConfig

from .build import (SIMULATORS, VISIBILITIES, BuildError, RunResult, build, build_bulk, emit_rtl,
                    mutate_rtl, run)
from .bulk import BULK_TESTS
from .bulk import TEST_MODULE as BULK_MODULE
from .cli import SimProgress, parse_cfg_items, phase

__all__ = ["SimOptions", "SimResult", "run_sim", "main", "MAX_TIMESTEPS", "MAX_SAMPLES"]

PROG = "python -m tb.sim"
TESTS = ("full_run", "reset_mid_run")
PATHS = ("bulk", "bfm")
ALL_TESTS = TESTS + ("error_flags",)
#: Largest ``-T`` / ``--samples`` the command line accepts: the run time
#: grows with their product (an ARRAY=128 run of the defaults takes seconds;
#: 256 x 256 would take days). Longer checking is ``tb.soak``'s job.
MAX_TIMESTEPS = 256
MAX_SAMPLES = 256


@dataclass
class SimOptions:
    """One co-simulation. ``extra_cfg`` adds HwConfig fields (widths, θ, ...)."""

    array: int = 128
    groups: int = 4
    sim: str = "verilator"
    seed: int = 1
    waves: bool = False
    layer_share: bool = True
    reset: str = "soft"
    timesteps: int = 3
    samples: int = 3
    stress: bool = True
    tests: tuple = TESTS
    extra_cfg: dict = field(default_factory=dict)
    # fault injection: a callable (verilog text) -> mutated text, and its tag
    mutate: object = None
    tag: str = ""
    stall_limit: int = 5000
    max_report: int = 8
    # Verilator signal visibility (tb.build.VISIBILITIES; None: $TB_VISIBILITY or "ports")
    visibility: str | None = None
    # "bulk" (default): tb/bulk.py's tb_bulk_top, blocks of stimulus per Python call;
    # "bfm": the per-cycle BFM (tb/bfm.py). error_flags always runs on the BFM.
    path: str = "bulk"
    # memory depths of tb_bulk_top (tb.bulk_top.BulkDepths fields); None: sized from the manifest
    bulk_depths: dict | None = None
    # fault injection in the driver (tb.bfm.DRIVER_FAULTS), e.g. "ignore_loads_after"
    driver_fault: str = ""

    def config(self) -> HwConfig:
        return HwConfig(array=self.array, groups=self.groups, reset=self.reset, **self.extra_cfg)

    def repro(self) -> str:
        cmd = (f"make sim ARRAY={self.array} GROUPS={self.groups} SIM={self.sim} SEED={self.seed} "
               f"LAYER_SHARE={int(self.layer_share)} RESET={self.reset} T={self.timesteps}")
        if not self.stress:
            cmd += " STRESS=0"
        if self.path != "bulk":
            cmd += f" SIMPATH={self.path}"
        if self.extra_cfg or self.samples != 3 or self.tag or self.driver_fault:
            extra = " ".join(f"{k}={v}" for k, v in sorted(self.extra_cfg.items()))
            cmd = (f"python -m tb.sim --array {self.array} --groups {self.groups} --sim {self.sim} "
                   f"--seed {self.seed} --layer-share {int(self.layer_share)} --reset {self.reset} "
                   f"-T {self.timesteps} --samples {self.samples}"
                   + ("" if self.stress else " --stress 0")
                   + ("" if self.path == "bulk" else f" --path {self.path}")
                   + (f" --cfg {extra}" if extra else "")
                   + (f"   (with mutation {self.tag!r} applied to the Verilog)" if self.tag else "")
                   + (f"   (with driver fault {self.driver_fault!r})" if self.driver_fault else ""))
        return cmd


@dataclass
class SimResult:
    ok: bool
    summary: dict
    text: str
    run: object = None
    build_seconds: float = 0.0
    wall_seconds: float = 0.0

    def failure_text(self) -> str:
        return self.text


def run_sim(opts: SimOptions, quiet: bool = True, *, report=None, progress=None) -> SimResult:
    """Emit, build (or reuse) and run; never raises for a failed simulation.

    Raises :class:`tb.build.BuildError` for a failed emission or build and
    :class:`golden.errors.OutputError` when the build folder is not writable
    (checked before any work). ``report(text)`` receives one line per phase
    that does work (emit, build with its estimated time, run);
    ``progress(record)`` the simulation's progress records
    (:func:`tb.build.run`, e.g. a :class:`tb.cli.SimProgress`).
    """
    t0 = time.monotonic()
    cfg = opts.config()
    verilog, manifest = emit_rtl(cfg, report=report)
    if opts.mutate is not None:
        verilog = mutate_rtl(cfg, verilog, opts.mutate, opts.tag)
    plan = {"seed": opts.seed, "samples": opts.samples, "timesteps": opts.timesteps,
            "layer_share": opts.layer_share, "stress": opts.stress, "tests": list(opts.tests),
            "repro": opts.repro(), "stall_limit": opts.stall_limit, "max_report": opts.max_report,
            "driver_fault": opts.driver_fault}

    def announce(path: str, tests: list) -> None:
        if report is not None:
            report(f"run:   {opts.sim} {', '.join(tests)} ({path} path); seed {opts.seed}, "
                   f"{opts.samples} samples x T={opts.timesteps}"
                   f"{'' if opts.stress else ', no stress'}{', waves' if opts.waves else ''}")

    bulk_tests = [t for t in opts.tests if t in BULK_TESTS] if opts.path == "bulk" else []
    bfm_tests = [t for t in opts.tests if t not in bulk_tests]
    runs = []
    if bulk_tests:
        b, depths = build_bulk(cfg, opts.sim, verilog, manifest, depths=opts.bulk_depths,
                               tag=opts.tag, waves=opts.waves, quiet=quiet, report=report,
                               visibility=opts.visibility)
        if depths:
            plan["bulk_depths"] = depths
        announce("bulk", bulk_tests)
        runs.append((b, run(b, dict(plan, tests=bulk_tests), test_module=BULK_MODULE,
                            quiet=quiet, progress=progress)))
    if bfm_tests:
        b = build(cfg, opts.sim, verilog, manifest, tag=opts.tag, waves=opts.waves, quiet=quiet,
                  report=report, visibility=opts.visibility)
        announce("bfm", bfm_tests)
        runs.append((b, run(b, dict(plan, tests=bfm_tests), quiet=quiet, progress=progress)))
    b, r = runs[0] if len(runs) == 1 else _merge(runs)
    wall = time.monotonic() - t0
    text = format_summary(opts, cfg, b, r, wall)
    if not r.ok:
        text += "\n" + r.failure_text()
    return SimResult(r.ok, r.summary, text, r, b.seconds, wall)


def _merge(runs):
    """One (build, result) of a bulk run and a per-cycle run (error_flags)."""
    (b, r0), (_, r1) = runs
    tests = dict(r0.summary.get("tests", {}), **r1.summary.get("tests", {}))
    r = RunResult(r0.ok and r1.ok, {"tests": tests}, r0.run_dir, r0.log, r0.seconds + r1.seconds,
                  r0.waves_file, r0.failures + r1.failures)
    return b, r


def format_summary(opts: SimOptions, cfg: HwConfig, b, r, wall: float) -> str:
    lines = [f"== {cfg.name} on {opts.sim}, seed {opts.seed}, T={opts.timesteps}, "
             f"samples={opts.samples}, L sharing {'on' if opts.layer_share else 'off'}"
             f"{', mutation ' + opts.tag if opts.tag else ''}",
             f"   verilog: {b.verilog}",
             f"   build:   {b.build_dir} ({'reused' if b.reused else f'built in {b.seconds:.1f} s'})",
             f"   log:     {r.log}"]
    for name, t in r.summary.get("tests", {}).items():
        c = t.get("checked")
        if not c:
            first = (t.get("failure") or "").splitlines()[:1]
            lines.append(f"   {name}: {'PASS' if t.get('ok') else 'FAIL'}"
                         + (f" ({first[0][:200]})" if first else ""))
            continue
        cov = c["coverage"]
        lines.append(
            f"   {name}: {'PASS' if t['ok'] else 'FAIL'}  beats {c['beats']}/{c['beats_expected']}, "
            f"spikes {c['spikes']}, values {c['values']}, membrane words {c['membrane_words']} "
            f"({c['membrane_rows']} rows), "
            + (f"spilled rows {c['spill_rows']} ({c['spill_words']} words), "
               if c.get('spill_rows') else "")
            + f"mismatches {c['mismatches']}")
        lines.append(
            f"      cycles {t['cycles']} (waiting for weight loads {t['wload_cycles']}, read-back "
            f"{t['readback_cycles']}, cmd gaps {t['gap_cycles']}, out stalled "
            f"{t['backpressure_cycles']}); {t['events']} events, {t['tiles']} tiles, "
            f"{t['timesteps']} timesteps, weights {t['weights']}"
            + (f", driver fault {t['driver_fault']}" if t.get("driver_fault") else ""))
        lines.append("      " + load_line(t))
        lines.append(
            f"      cycles/tile {t['cycles_per_tile']:.1f} (excl. exposed weight load and read-back), "
            f"cycles/timestep {t['cycles_per_timestep']:.1f}; coverage: {cov['spikes']} spikes, "
            f"saturated U hi/lo {cov['value_sat_hi']}/{cov['value_sat_lo']}, "
            f"{cov['readout_beats']} read-out beats; sim {t['sim_seconds']:.2f} s")
        cpu = t.get("sim_cpu_seconds")
        if cpu is not None:
            lines.append(
                f"      rate ({t.get('path', 'bfm')} path): "
                f"{t['cycles'] / max(t['sim_seconds'], 1e-9):,.0f} cycles/s, "
                f"{t['cycles'] / max(cpu, 1e-9):,.0f} cycles/CPU-s ({cpu:.2f} CPU-s)")
    if b.waves:
        lines.append(f"   waves:   {r.waves_file or '(no waveform file was written)'}")
        if b.sim == "verilator" and r.waves_file and r.waves_file.suffix == ".vcd":
            lines.append("            (VCD, not FST: Verilator's FST writer needs lz4.h; "
                         "apt-get install liblz4-dev)")
    lines.append(f"   result:  {'PASS' if r.ok else 'FAIL'}   wall time {wall:.1f} s "
                 f"(simulation {r.seconds:.1f} s)")
    return "\n".join(lines)


def load_line(t: dict) -> str:
    """The weight-load / utilization line of a test summary (tb.session.Session.finish keys)."""
    util = t.get("pe_utilization")
    return (f"weight rows loaded {t.get('wl_beats', 0)}, overlapped with commands "
            f"{t.get('wl_hidden_beats', 0)} (same edge as a command: "
            f"{t.get('wl_overlap_cycles', 0)} cycles, wload gaps {t.get('wl_gap_cycles', 0)}); "
            + (f"PE utilization {100 * util:.1f} %, " if util is not None else "")
            + f"EVENTs per cycle {t.get('events_per_cycle', 0):.3f}, "
            f"weight-load share {100 * t.get('wload_share', 0):.1f} %")


def _bool01(name):
    def conv(v: str) -> bool:
        if v in ("0", "1"):
            return v == "1"
        raise argparse.ArgumentTypeError(f"{name} must be 0 or 1, got {v!r}")
    return conv


_seed = bounded_int(0, "SEED must be a non-negative integer, got {v!r}")


def parse_args(argv) -> SimOptions:
    """The :class:`SimOptions` of a ``python -m tb.sim`` command line (exit 2
    with one error line on a bad option)."""
    return _parse(argv)[0]


def build_parser() -> OneLineParser:
    """The parser of ``python -m tb.sim`` (every option has a help text and
    shows its default)."""
    p = OneLineParser(
        prog=PROG, description="Emit, build and co-simulate one configuration of lif_pe_array "
                                "against the golden model (what `make sim` runs).",
        epilog="Phase lines (emit, build, run) and a progress bar go to stderr, the summary to "
               "stdout. Exit status: 0 pass, 1 mismatch or failed simulation/build, 2 bad "
               f"options or unwritable output. Output under $TB_SIM_BUILD or "
               f"$ELIF_BUILD_DIR/sim_build (default: sim_build/ in the checkout, else in the "
               f"working directory). Limits: -T and --samples at most {MAX_TIMESTEPS} and "
               f"{MAX_SAMPLES} (use python -m tb.soak for long runs).")
    d = SimOptions()
    p.add_argument("--array", type=posint("ARRAY"), default=d.array,
                   help="number of PEs (HwConfig.array)")
    p.add_argument("--groups", type=posint("GROUPS"), default=d.groups,
                   help="C#N channel groups sharing one LIF unit; must divide ARRAY")
    p.add_argument("--sim", choices=SIMULATORS, default=d.sim, help="simulator")
    p.add_argument("--seed", type=_seed, default=d.seed,
                   help="seed of the test network, input spikes, gaps and backpressure")
    p.add_argument("--waves", type=_bool01("WAVES"), nargs="?", const=True, default=int(d.waves),
                   metavar="0|1",
                   help="write a waveform (Icarus: VCD, Verilator: FST, or VCD without lz4.h) "
                        "into the run folder; builds a separate -waves build")
    p.add_argument("--layer-share", type=_bool01("LAYER_SHARE"), default=int(d.layer_share),
                   metavar="0|1", help="1: the test network has an L-shared block (LIF membrane "
                                       "shared across two layers); 0: none")
    p.add_argument("--reset", choices=("soft", "hard"), default=d.reset,
                   help="neuron reset after a spike: soft subtracts θ, hard sets 0")
    p.add_argument("-T", "--timesteps", type=posint("T", MAX_TIMESTEPS), default=d.timesteps,
                   help="timesteps per sample")
    p.add_argument("--samples", type=posint("samples", MAX_SAMPLES), default=d.samples,
                   help="input samples (sparse, dense, saturating, ...)")
    p.add_argument("--stress", type=_bool01("STRESS"), default=int(d.stress), metavar="0|1",
                   help="1: random command gaps and output backpressure; "
                        "0: none, for clean cycle counts")
    p.add_argument("--no-stress", dest="stress", action="store_false", default=argparse.SUPPRESS,
                   help="same as --stress 0")
    p.add_argument("--test", choices=ALL_TESTS, action="append", default=argparse.SUPPRESS,
                   help=f"run only this cocotb test (repeatable; default: {', '.join(TESTS)})")
    p.add_argument("--cfg", nargs="*", default=argparse.SUPPRESS, metavar="FIELD=VALUE",
                   help="other HwConfig fields, e.g. acc_width=12 fire=ge (default: none)")
    p.add_argument("--path", choices=PATHS, default="bulk",
                   help="'bulk': stimulus and captures in blocks through tb_bulk_top "
                        "(tb/bulk.py, fast); 'bfm': the per-cycle BFM (tb/bfm.py, for "
                        "debugging); error_flags always runs on the BFM")
    p.add_argument("--visibility", choices=VISIBILITIES, default=None,
                   help="Verilator: 'ports' makes only the top-level ports visible to cocotb "
                        "(default, or $TB_VISIBILITY); 'full' every internal signal (debugging, "
                        "~12x slower; WAVES=1 implies it)")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no phase lines or progress bar (the summary only)")
    return p


def _parse(argv) -> tuple[SimOptions, bool]:
    p = build_parser()
    a = p.parse_args(argv)
    extra = parse_cfg_items(getattr(a, "cfg", []), p.error)
    tests = getattr(a, "test", None)
    opts = SimOptions(array=a.array, groups=a.groups, sim=a.sim, seed=a.seed, waves=bool(a.waves),
                      layer_share=bool(a.layer_share), reset=a.reset, timesteps=a.timesteps,
                      samples=a.samples, stress=bool(a.stress), visibility=a.visibility,
                      path=a.path,
                      tests=tuple(tests) if tests else TESTS, extra_cfg=extra)
    try:
        cfg = opts.config()
    except (ConfigError, TypeError) as e:
        p.error(f"bad configuration: {e}")
    try:
        from .stimulus import StimulusError, make_network
        make_network(cfg, opts.seed, opts.layer_share)
    except StimulusError as e:
        p.error(str(e))
    return opts, a.quiet


def main(argv=None) -> int:
    opts, quiet = _parse(sys.argv[1:] if argv is None else argv)
    verbose = not quiet
    bar = SimProgress() if verbose else None
    try:
        res = run_sim(opts, quiet=True, report=phase if verbose else None, progress=bar)
    except BuildError as e:   # the log tail follows the error line
        print(f"{PROG}: error: build failed: {e}", file=sys.stderr)
        return 1
    finally:
        if bar is not None:
            bar.close()
    print(res.text)
    return 0 if res.ok else 1


if __name__ == "__main__":
    sys.exit(run_main(main, PROG))
