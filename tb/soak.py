"""``python -m tb.soak`` / ``make soak``: long randomized co-simulation.

Runs the co-simulation of :mod:`tb.test_lif_pe_array` (through
:func:`tb.sim.run_sim`) over and over with a new seed each time until a
target number of output spike bits has been compared with the golden model::

    python -m tb.soak                                   # 1,000,000 spikes, ARRAY=128 GROUPS=4
    python -m tb.soak --spikes 30000 --array 32 --groups 4
    python -m tb.soak --minutes 20 --json soak.json     # stop after 20 min at the latest
    python -m tb.soak --fired 1000000                   # ... and until 1e6 checked spikes were 1

Every run draws, from its seed: a new random test network (:mod:`tb.stimulus`:
conv C#N, L-shared block or not, linear C#N, independent and read-out
layers), new input spikes (sparse / dense / saturating samples), the number
of samples and timesteps, and the BFM's random output backpressure and
command-stream gaps (``stress``). About one run in three also runs the
``reset_mid_run`` test: ``rst`` asserted in the middle of the schedule with
commands and beats in flight, then the whole schedule again, fully checked.
Each run is checked completely: every beat (spike bits, values, header
fields), every membrane row after every timestep, the error flags, and the
X/Z state of the outputs after reset (Icarus).

With ``--random-configs`` every run also draws its build from its seed
(:func:`random_config`): ARRAY 8-64, GROUPS 1-8, reset soft or hard, and
one of the width/θ/λ sets of :data:`RANDOM_EXTRAS` (``fire=ge``, narrow
accumulator and membrane, 5-bit weights); ``--array``, ``--groups`` and
``--reset`` are then ignored, ``--cfg`` fields still apply on top. Each new
configuration is emitted and built once (cached in ``sim_build/``).

What is counted (summed over the checked runs):

* ``spike bits``: output spike bits compared (``S`` per beat, 0s and 1s);
* ``fired``: how many of those were 1 (neurons that fired);
* ``beats``, ``values`` (membrane U or read-out X words), ``membrane
  words`` (read back through ``dbg_addr`` after each timestep);
* ``mismatches`` (any mismatch fails the soak);
* cycles and rates: simulated cycles per second of simulation time, spike
  bits per second of wall time.

``--runs N`` adds a third target: at least N runs.

Exit status: 0 no mismatch and the target reached, 1 a mismatch or a failed
simulation, 2 bad options or an unwritable build folder (one
``python -m tb.soak: error: ...`` line), 3 the time limit stopped the soak
before the target.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from golden.cli import OneLineParser, bounded_int, run_main
from golden.config import ConfigError
from golden.files import atomic_write, check_writable_dir

from .cli import parse_cfg_items, phase

__all__ = ["SoakOptions", "SoakResult", "run_soak", "random_config", "main"]

PROG = "python -m tb.soak"

#: what ``--random-configs`` draws from (see :func:`random_config`)
RANDOM_ARRAYS = (8, 16, 32, 64)
RANDOM_GROUPS = (1, 2, 4, 8)
RANDOM_EXTRAS = ({}, {"fire": "ge"}, {"acc_width": 11, "mem_width": 12, "theta_int": 300},
                 {"weight_width": 5, "theta_int": 9, "leak_int": 128})


@dataclass
class SoakOptions:
    array: int = 128
    groups: int = 4
    sim: str = "verilator"
    spikes: int = 1_000_000          # target: output spike bits compared
    fired: int = 0                   # optional second target: spike bits that were 1
    runs: int = 0                    # optional third target: at least this many runs
    seed0: int = 1000                # run k uses seed seed0 + k
    minutes: float = 0.0             # 0 = no time limit
    reset_every: int = 3             # about one run in this many adds reset_mid_run
    samples: tuple = (3, 9)          # inclusive range of samples per run
    timesteps: tuple = (2, 5)        # inclusive range of timesteps per run
    reset: str = "soft"
    extra_cfg: dict = field(default_factory=dict)
    random_configs: bool = False     # every run draws ARRAY, GROUPS, reset, widths from its seed
    keep_going: bool = False         # continue after a failing run
    stall_limit: int = 5000          # BFM watchdog (cycles without progress)
    # self-test hook: a Verilog mutation (text -> text) and its build tag (tb/mutations.py)
    mutate: object = None
    tag: str = ""


@dataclass
class SoakResult:
    ok: bool = True
    runs: int = 0
    failed_runs: int = 0
    reset_runs: int = 0
    beats: int = 0
    spike_bits: int = 0
    fired: int = 0
    values: int = 0
    membrane_words: int = 0
    mismatches: int = 0
    cycles: int = 0
    sim_seconds: float = 0.0         # time inside the cocotb tests (sum)
    wall_seconds: float = 0.0        # everything, including simulator start-up and schedules
    build_seconds: float = 0.0
    sat_values: int = 0              # U at the membrane saturation limits (either end)
    readout_beats: int = 0
    target_reached: bool = False
    config: str = ""
    failures: list = field(default_factory=list)
    run_log: list = field(default_factory=list)

    @property
    def cycles_per_second(self) -> float:
        return self.cycles / self.sim_seconds if self.sim_seconds else 0.0

    @property
    def spikes_per_second(self) -> float:
        return self.spike_bits / self.wall_seconds if self.wall_seconds else 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["cycles_per_second"] = self.cycles_per_second
        d["spike_bits_per_wall_second"] = self.spikes_per_second
        return d

    def text(self) -> str:
        return "\n".join([
            f"== soak {self.config}: {'PASS' if self.ok and self.target_reached else 'FAIL' if not self.ok else 'INCOMPLETE'}",
            f"   runs {self.runs} ({self.reset_runs} with a mid-run reset, {self.failed_runs} failed)",
            f"   checked: spike bits {self.spike_bits:,} (fired {self.fired:,}), beats {self.beats:,}, "
            f"values {self.values:,}, membrane words {self.membrane_words:,}",
            f"   coverage: U at saturation {self.sat_values:,}, read-out beats {self.readout_beats:,}",
            f"   mismatches {self.mismatches}"
            + (f" (failed runs: {self.failed_runs}; see the first failure below)" if self.failed_runs else ""),
            f"   simulated cycles {self.cycles:,} in {self.sim_seconds:.1f} s of simulation "
            f"-> {self.cycles_per_second:,.0f} cycles/s",
            f"   wall {self.wall_seconds:.1f} s (builds {self.build_seconds:.1f} s) -> "
            f"{self.spikes_per_second:,.0f} spike bits/s, "
            f"{(self.fired / self.wall_seconds if self.wall_seconds else 0):,.0f} fired spikes/s",
        ])


def random_config(seed: int, timesteps: tuple = (2, 5)) -> dict:
    """The build and run shape ``--random-configs`` gives seed ``seed``:
    ``array``, ``groups``, ``extra_cfg``, ``layer_share``, ``reset``,
    ``timesteps`` (in that order from ``random.Random(seed)``; the draws of
    the former ``tb/test_lif_pe_array.py::test_soak_random_configs``)."""
    rng = random.Random(seed)
    array = rng.choice(RANDOM_ARRAYS)
    groups = rng.choice([g for g in RANDOM_GROUPS if array % g == 0])
    extra = dict(rng.choice(RANDOM_EXTRAS))
    return {"array": array, "groups": groups, "extra_cfg": extra,
            "layer_share": rng.random() < 0.7, "reset": rng.choice(["soft", "hard"]),
            "timesteps": rng.randint(*timesteps)}


def _plan_run(opts: SoakOptions, k: int):
    """The SimOptions of run ``k`` (deterministic in ``seed0 + k``)."""
    from .sim import SimOptions
    seed = opts.seed0 + k
    rng = random.Random(seed * 1_000_003 + 17)
    tests = ("full_run",)
    if opts.reset_every and rng.randrange(opts.reset_every) == 0:
        tests = ("full_run", "reset_mid_run")
    shape = {"array": opts.array, "groups": opts.groups, "extra_cfg": {}, "reset": opts.reset,
             "layer_share": rng.random() < 0.7, "timesteps": rng.randint(*opts.timesteps)}
    if opts.random_configs:
        shape = random_config(seed, opts.timesteps)
    return SimOptions(array=shape["array"], groups=shape["groups"], sim=opts.sim, seed=seed,
                      layer_share=shape["layer_share"], timesteps=shape["timesteps"],
                      samples=rng.randint(*opts.samples),
                      stress=True, tests=tests, extra_cfg={**shape["extra_cfg"], **opts.extra_cfg},
                      reset=shape["reset"], stall_limit=opts.stall_limit, mutate=opts.mutate,
                      tag=opts.tag)


def run_soak(opts: SoakOptions, progress=None, report=None) -> SoakResult:
    """Run until ``opts.spikes`` spike bits were checked (or a failure / the
    time limit). ``progress(text)`` is called after every run, ``report(text)``
    before a first (long) emission or build of a configuration."""
    from .sim import run_sim
    res = SoakResult()
    t0 = time.monotonic()
    k = 0
    while res.spike_bits < opts.spikes or res.fired < opts.fired or res.runs < opts.runs:
        if opts.minutes and time.monotonic() - t0 > 60 * opts.minutes:
            break
        so = _plan_run(opts, k)
        k += 1
        cfg_name = so.config().name
        res.config = f"random configurations (last {cfg_name})" if opts.random_configs else cfg_name
        r = run_sim(so, quiet=True, report=report)
        res.runs += 1
        res.build_seconds += r.build_seconds
        res.reset_runs += "reset_mid_run" in so.tests
        entry = {"config": cfg_name, "seed": so.seed, "samples": so.samples, "T": so.timesteps,
                 "layer_share": so.layer_share, "tests": list(so.tests), "ok": r.ok}
        for name, t in r.summary.get("tests", {}).items():
            c = t.get("checked")
            if not c:
                continue
            cov = c["coverage"]
            res.beats += c["beats"]
            res.spike_bits += c["spikes"]
            res.fired += cov["spikes"]
            res.values += c["values"]
            res.membrane_words += c["membrane_words"]
            res.mismatches += c["mismatches"]
            res.sat_values += cov["value_sat_hi"] + cov["value_sat_lo"]
            res.readout_beats += cov["readout_beats"]
            res.cycles += t.get("cycles", 0)
            res.sim_seconds += t.get("sim_seconds", 0.0)
            entry[name] = {"spikes": c["spikes"], "cycles": t.get("cycles", 0),
                           "mismatches": c["mismatches"]}
        res.run_log.append(entry)
        if not r.ok:
            res.ok = False
            res.failed_runs += 1
            res.failures.append(r.text)
        res.wall_seconds = time.monotonic() - t0
        if progress:
            progress(f"run {res.runs:3d} {cfg_name + ' ' if opts.random_configs else ''}"
                     f"seed {so.seed} samples {so.samples} T {so.timesteps} "
                     f"L {'on ' if so.layer_share else 'off'} {'+reset ' if len(so.tests) > 1 else '       '}"
                     f"{'PASS' if r.ok else 'FAIL'}  total spike bits {res.spike_bits:,} / {opts.spikes:,}"
                     + (f", fired {res.fired:,} / {opts.fired:,}" if opts.fired else "")
                     + f"  ({res.wall_seconds:.0f} s)")
        if not r.ok and not opts.keep_going:
            break
    res.wall_seconds = time.monotonic() - t0
    res.target_reached = res.spike_bits >= opts.spikes and res.fired >= opts.fired \
        and res.runs >= opts.runs
    return res


# --------------------------------------------------------------------- CLI
def _int_at_least(lo):
    return bounded_int(lo, f"expected an integer >= {lo}, got {{v!r}}")


def _range_upto(top: int):
    """argparse type: ``N`` or ``LO-HI`` with ``1 <= LO <= HI <= top``."""
    def conv(v):
        lo, sep, hi = v.partition("-")
        try:
            a, b = int(lo), int(hi if sep else lo)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected N or LO-HI, got {v!r}") from None
        if not 1 <= a <= b <= top:
            raise argparse.ArgumentTypeError(f"expected 1 <= LO <= HI <= {top}, got {v!r}")
        return (a, b)
    return conv


def _minutes(v):
    try:
        x = float(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of minutes, got {v!r}") from None
    if not x >= 0 or x == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number of minutes >= 0, got {v!r}")
    return x


def build_parser() -> OneLineParser:
    """The parser of ``python -m tb.soak`` (every option has a help text and
    shows its default)."""
    from .build import SIMULATORS
    from .sim import MAX_SAMPLES, MAX_TIMESTEPS
    d = SoakOptions()
    p = OneLineParser(
        prog=PROG, description="Long randomized co-simulation: run tb.sim with a new seed per run "
                               "until the targets are reached (what `make soak` runs).",
        epilog="Exit status: 0 no mismatch and the targets reached, 1 a mismatch or a failed "
               "simulation, 2 bad options or an unwritable build folder (one line), 3 the time "
               "limit stopped the soak first. Build output as for python -m tb.sim.")
    p.add_argument("--array", type=_int_at_least(1), default=d.array,
                   help="number of PEs (ignored with --random-configs)")
    p.add_argument("--groups", type=_int_at_least(1), default=d.groups,
                   help="C#N channel groups; must divide ARRAY (ignored with --random-configs)")
    p.add_argument("--sim", choices=SIMULATORS, default=d.sim, help="simulator")
    p.add_argument("--reset", choices=("soft", "hard"), default=d.reset,
                   help="neuron reset after a spike (ignored with --random-configs)")
    p.add_argument("--spikes", type=_int_at_least(1), default=d.spikes,
                   help="target: output spike bits compared with the golden model")
    p.add_argument("--fired", type=_int_at_least(0), default=d.fired,
                   help="also run until this many checked spike bits were 1 (0: no target)")
    p.add_argument("--runs", type=_int_at_least(0), default=d.runs,
                   help="also run at least this many runs (0: no target)")
    p.add_argument("--random-configs", action="store_true",
                   help="every run draws ARRAY 8-64, GROUPS, reset and a width/θ/λ set from its "
                        "seed (--array/--groups/--reset are then ignored)")
    p.add_argument("--seed", type=_int_at_least(0), default=d.seed0,
                   help="seed of the first run; run k uses seed+k")
    p.add_argument("--minutes", type=_minutes, default=d.minutes,
                   help="stop after this many minutes even below the target (exit 3); 0 = none")
    p.add_argument("--samples", type=_range_upto(MAX_SAMPLES), default="%d-%d" % d.samples,
                   metavar="LO-HI", help=f"samples per run, drawn in this range (HI <= {MAX_SAMPLES})")
    p.add_argument("-T", "--timesteps", type=_range_upto(MAX_TIMESTEPS), metavar="LO-HI",
                   default="%d-%d" % d.timesteps,
                   help=f"timesteps per run, drawn in this range (HI <= {MAX_TIMESTEPS})")
    p.add_argument("--reset-every", type=_int_at_least(0), default=d.reset_every,
                   help="about one run in N adds the mid-run reset test; 0 = never")
    p.add_argument("--cfg", nargs="*", default=argparse.SUPPRESS, metavar="FIELD=VALUE",
                   help="other HwConfig fields, e.g. fire=ge theta_int=300 (default: none)")
    p.add_argument("--keep-going", action="store_true", help="continue after a failing run")
    p.add_argument("--json", metavar="PATH", help="also write the figures as JSON to PATH")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no per-run progress lines or build announcements")
    return p


def parse_args(argv) -> tuple[SoakOptions, str | None, bool]:
    """``(options, --json path or None, --quiet)`` of a command line (exit 2
    with one error line on a bad option)."""
    p = build_parser()
    a = p.parse_args(argv)
    extra = parse_cfg_items(getattr(a, "cfg", []), p.error)
    opts = SoakOptions(array=a.array, groups=a.groups, sim=a.sim, spikes=a.spikes, fired=a.fired,
                       runs=a.runs, random_configs=a.random_configs, seed0=a.seed,
                       minutes=a.minutes, reset_every=a.reset_every, samples=a.samples,
                       timesteps=a.timesteps, reset=a.reset, extra_cfg=extra,
                       keep_going=a.keep_going)
    try:
        from .sim import SimOptions
        from .stimulus import StimulusError, make_network
        cfg = SimOptions(array=a.array, groups=a.groups, reset=a.reset, extra_cfg=extra).config()
        make_network(cfg, a.seed, True)
    except (ConfigError, TypeError) as e:
        p.error(f"bad configuration: {str(e).splitlines()[0]}")
    except StimulusError as e:
        p.error(str(e).splitlines()[0])
    if a.json:
        jp = Path(a.json)
        if jp.exists() and jp.is_dir():
            p.error(f"--json {a.json}: is a directory")
        if not jp.parent.is_dir():
            p.error(f"--json {a.json}: folder {jp.parent} does not exist")
    return opts, a.json, a.quiet


def _run(argv) -> int:
    from .build import SIM_BUILD_ENV, sim_build_dir
    opts, json_path, quiet = parse_args(argv)
    check_writable_dir(sim_build_dir(), f"simulator build folder (${SIM_BUILD_ENV})")
    if json_path:
        check_writable_dir(Path(json_path).parent, "--json folder")
    progress = None if quiet else (lambda s: print(s, flush=True))
    # announce first emissions and builds (they take long), not every run's start
    report = None if quiet else (lambda s: phase(s) if not s.startswith("run:") else None)
    res = run_soak(opts, progress, report)
    print(res.text())
    if res.failures:
        print("\nfirst failure:\n" + res.failures[0])
    if json_path:
        atomic_write({json_path: json.dumps(res.to_dict(), indent=1)})
    if not res.ok:
        return 1
    return 0 if res.target_reached else 3


def main(argv=None) -> int:
    """The command line; returns the exit status (see the module docstring)."""
    return run_main(_run, PROG, argv)


if __name__ == "__main__":
    sys.exit(main())
