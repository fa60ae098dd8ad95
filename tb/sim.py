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
(reused while the Verilog is unchanged) and simulated with the cocotb tests of
``tb/test_lif_pe_array.py``. The run ends with a summary: outputs checked
(beats, spikes, membrane words), mismatches, cycles, cycles per tile and per
timestep, the simulation rate (cycles per second and per CPU-second), wall
time. Exit status: 0 all checks passed, 1 a mismatch or a
simulation failure, 2 bad options.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from dataclasses import dataclass, field

from golden.config import ConfigError, HwConfig

from .build import SIMULATORS, VISIBILITIES, BuildError, build, emit_rtl, mutate_rtl, run
from .bulk import BULK_TESTS, TEST_MODULE as BULK_MODULE
from .cli import OneLineParser, bounded_int, parse_cfg_items, posint
from golden.errors import ProjectError

__all__ = ["SimOptions", "SimResult", "run_sim", "main"]

TESTS = ("full_run", "reset_mid_run")
PATHS = ("bulk", "bfm")
ALL_TESTS = TESTS + ("error_flags",)


class OptionError(ProjectError, ValueError):
    """A bad command-line / make option."""


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

    def config(self) -> HwConfig:
        return HwConfig(array=self.array, groups=self.groups, reset=self.reset, **self.extra_cfg)

    def repro(self) -> str:
        cmd = (f"make sim ARRAY={self.array} GROUPS={self.groups} SIM={self.sim} SEED={self.seed} "
               f"LAYER_SHARE={int(self.layer_share)} RESET={self.reset} T={self.timesteps}")
        if not self.stress:
            cmd += " STRESS=0"
        if self.path != "bulk":
            cmd += f" SIMPATH={self.path}"
        if self.extra_cfg or self.samples != 3 or self.tag:
            extra = " ".join(f"{k}={v}" for k, v in sorted(self.extra_cfg.items()))
            cmd = (f"python -m tb.sim --array {self.array} --groups {self.groups} --sim {self.sim} "
                   f"--seed {self.seed} --layer-share {int(self.layer_share)} --reset {self.reset} "
                   f"-T {self.timesteps} --samples {self.samples}"
                   + ("" if self.stress else " --stress 0")
                   + ("" if self.path == "bulk" else f" --path {self.path}")
                   + (f" --cfg {extra}" if extra else "")
                   + (f"   (with mutation {self.tag!r} applied to the Verilog)" if self.tag else ""))
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


def run_sim(opts: SimOptions, quiet: bool = True) -> SimResult:
    """Emit, build (or reuse) and run; never raises for a failed simulation."""
    t0 = time.monotonic()
    cfg = opts.config()
    verilog, manifest = emit_rtl(cfg)
    if opts.mutate is not None:
        verilog = mutate_rtl(cfg, verilog, opts.mutate, opts.tag)
    plan = {"seed": opts.seed, "samples": opts.samples, "timesteps": opts.timesteps,
            "layer_share": opts.layer_share, "stress": opts.stress, "tests": list(opts.tests),
            "repro": opts.repro(), "stall_limit": opts.stall_limit, "max_report": opts.max_report}
    bulk_tests = [t for t in opts.tests if t in BULK_TESTS] if opts.path == "bulk" else []
    bfm_tests = [t for t in opts.tests if t not in bulk_tests]
    runs = []
    if bulk_tests:
        from .bulk_top import (TOP, VERILATOR_FLAGS, BulkDepths, bulk_top_ports, depths_for,
                               write_bulk_top)
        mf = json.loads(Path(manifest).read_text())
        tdir, tag = Path(manifest).parent, opts.tag
        depths = None
        if opts.bulk_depths:
            depths = BulkDepths(**dict(vars(depths_for(mf)), **opts.bulk_depths))
            dname = "d" + "-".join(str(getattr(depths, k)) for k in ("ops", "wt", "out", "mem"))
            tdir, tag = tdir / dname, (f"{tag}-" if tag else "") + dname
            plan["bulk_depths"] = dict(vars(depths))
        top_v = write_bulk_top(mf, tdir, depths, source=str(manifest))
        b = build(cfg, opts.sim, verilog, manifest, tag=tag, waves=opts.waves, quiet=quiet,
                  visibility=opts.visibility, top=TOP, extra_sources=[top_v],
                  public=bulk_top_ports(mf), verilator_flags=VERILATOR_FLAGS)
        runs.append((b, run(b, dict(plan, tests=bulk_tests), test_module=BULK_MODULE, quiet=quiet)))
    if bfm_tests:
        b = build(cfg, opts.sim, verilog, manifest, tag=opts.tag, waves=opts.waves, quiet=quiet,
                  visibility=opts.visibility)
        runs.append((b, run(b, dict(plan, tests=bfm_tests), quiet=quiet)))
    b, r = runs[0] if len(runs) == 1 else _merge(runs)
    wall = time.monotonic() - t0
    text = format_summary(opts, cfg, b, r, wall)
    if not r.ok:
        text += "\n" + r.failure_text()
    return SimResult(r.ok, r.summary, text, r, b.seconds, wall)


def _merge(runs):
    """One (build, result) of a bulk run and a per-cycle run (error_flags)."""
    from .build import RunResult
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
            f"({c['membrane_rows']} rows), mismatches {c['mismatches']}")
        lines.append(
            f"      cycles {t['cycles']} (weight load {t['wload_cycles']}, read-back "
            f"{t['readback_cycles']}, cmd gaps {t['gap_cycles']}, out stalled "
            f"{t['backpressure_cycles']}); {t['events']} events, {t['tiles']} tiles, "
            f"{t['timesteps']} timesteps, weights {t['weights']}")
        lines.append(
            f"      cycles/tile {t['cycles_per_tile']:.1f} (excl. weight load and read-back), "
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


def _bool01(name):
    def conv(v: str) -> bool:
        if v in ("0", "1"):
            return v == "1"
        raise argparse.ArgumentTypeError(f"{name} must be 0 or 1, got {v!r}")
    return conv


_seed = bounded_int(0, "SEED must be a non-negative integer, got {v!r}")


def parse_args(argv) -> SimOptions:
    p = OneLineParser(prog="python -m tb.sim", description=__doc__.splitlines()[0], tag="tb.sim")
    p.add_argument("--array", type=posint("ARRAY"), default=128)
    p.add_argument("--groups", type=posint("GROUPS"), default=4)
    p.add_argument("--sim", choices=SIMULATORS, default="verilator")
    p.add_argument("--seed", type=_seed, default=1)
    p.add_argument("--waves", type=_bool01("WAVES"), nargs="?", const=True, default=False)
    p.add_argument("--layer-share", type=_bool01("LAYER_SHARE"), default=True)
    p.add_argument("--reset", choices=("soft", "hard"), default="soft")
    p.add_argument("-T", "--timesteps", type=posint("T"), default=3)
    p.add_argument("--samples", type=posint("samples"), default=3)
    p.add_argument("--stress", type=_bool01("STRESS"), default=True,
                   help="1 (default): random command gaps and output backpressure; "
                        "0: none, for clean cycle counts")
    p.add_argument("--no-stress", dest="stress", action="store_false",
                   help="same as --stress 0")
    p.add_argument("--test", choices=ALL_TESTS, action="append",
                   help="run only this cocotb test (repeatable)")
    p.add_argument("--path", choices=PATHS, default="bulk",
                   help="'bulk': stimulus and captures in blocks through tb_bulk_top "
                        "(tb/bulk.py, fast); 'bfm': the per-cycle BFM (tb/bfm.py, for "
                        "debugging); error_flags always runs on the BFM")
    p.add_argument("--visibility", choices=VISIBILITIES, default=None,
                   help="Verilator: 'ports' (default) makes only the top-level ports visible "
                        "to cocotb; 'full' every internal signal (debugging, ~12x slower; "
                        "also TB_VISIBILITY=full; WAVES=1 implies it)")
    p.add_argument("--cfg", nargs="*", default=[], metavar="FIELD=VALUE",
                   help="other HwConfig fields, e.g. acc_width=12 fire=ge")
    a = p.parse_args(argv)
    extra = parse_cfg_items(a.cfg, p.error)
    opts = SimOptions(array=a.array, groups=a.groups, sim=a.sim, seed=a.seed, waves=bool(a.waves),
                      layer_share=a.layer_share, reset=a.reset, timesteps=a.timesteps,
                      samples=a.samples, stress=a.stress, visibility=a.visibility, path=a.path,
                      tests=tuple(a.test) if a.test else TESTS, extra_cfg=extra)
    try:
        cfg = opts.config()
    except (ConfigError, TypeError) as e:
        p.error(f"bad configuration: {e}")
    try:
        from .stimulus import StimulusError, make_network
        make_network(cfg, opts.seed, opts.layer_share)
    except StimulusError as e:
        p.error(str(e))
    return opts


def main(argv=None) -> int:
    opts = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        res = run_sim(opts, quiet=True)
    except BuildError as e:
        print(f"tb.sim: build failed: {e}", file=sys.stderr)
        return 1
    except ValueError as e:  # ConfigError / EmitError from the generator
        print(f"tb.sim: error: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    print(res.text)
    return 0 if res.ok else 1


if __name__ == "__main__":
    sys.exit(main())
