"""Throughput measurement of ``lif_pe_array`` in cocotb (Verilator or Icarus).

Two halves, like ``tb/test_lif_pe_array.py``:

* the cocotb test :func:`throughput` (runs inside the simulator; its plan is
  the JSON file named by ``TB_THROUGHPUT_PLAN``) drives, for every case
  ``(events E, overlap)`` of the plan, one CHAINED layer of ``tiles`` tiles
  of ``E`` EVENTs + TILE each, with ``out__ready`` held at 1, and records:

  - ``cycles``: clock edges from the edge accepting the first command to the
    edge transferring the tile stream's last output beat;
  - ``period``: steady-state cycles per tile, measured between the TILE
    commands of the second half of the layer (the first tiles run ahead
    into the free second accumulator bank);
  - with ``overlap = True`` commands stream back to back (normal use: the LIF
    phase of tile j runs while tile j+1 accumulates); with ``overlap =
    False`` the host waits after each TILE until ``busy`` is sampled 0 (all
    beats received) before the next EVENT, so LIF and accumulation never
    overlap.

  It checks the beat count and the (tile, group, last) fields of every beat
  and that ``error`` stays 0; values are not checked here (that is the job of
  ``tb/test_lif_pe_array.py``).

* :func:`measure` (host side) emits and builds the core with
  :func:`tb.build.emit_rtl` / :func:`tb.build.build` (shared build cache) and
  runs the test with :func:`tb.build.run_cocotb`, returning the rows.
  Thread-safe: builds and runs do not touch ``os.environ``.

Command line: ``python -m tb.throughput --array 16 --groups 4 [--sim icarus]``
prints the rows as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from gen.timing import tile_period
from golden.cli import OneLineParser, posint, run_main
from golden.encoding import Mode, Op
from golden.errors import ProjectError

__all__ = ["ThroughputError", "measure", "default_events", "expected_period"]

PLAN_ENV = "TB_THROUGHPUT_PLAN"
TEST_MODULE = "tb.throughput"


class ThroughputError(ProjectError, RuntimeError):
    """The measurement could not be made (build failure, wrong beats, hang)."""


def default_events(groups: int) -> list:
    """Events per tile measured by default: 1, N and 4N (deduplicated, sorted)."""
    return sorted({1, groups, 4 * groups})


def expected_period(events: int, groups: int) -> int:
    """Steady-state period with overlap: :func:`gen.timing.tile_period`."""
    return tile_period(events, groups)


# --------------------------------------------------------------------------
# cocotb side
# --------------------------------------------------------------------------
try:
    import cocotb
except ImportError:  # pragma: no cover
    cocotb = None


def _bit(sig, key: str, bfm, cycle: int, events: int, overlap: bool) -> int:
    """The value of output ``key`` as int; :class:`ThroughputError` on X/Z."""
    v = sig[key].value
    if not v.is_resolvable:
        from tb.bfm import PORTS
        raise ThroughputError(f"E={events} overlap={overlap}: " + bfm.unresolved_message(
            f"{PORTS[key]}={v}", "throughput case", cycle=cycle))
    return int(v)


async def _run_case(bfm, layouts, cfg, events: int, tiles: int, overlap: bool,
                    limit: int) -> dict:
    """Drive one layer of ``tiles`` tiles; return the measured figures."""
    from cocotb.triggers import FallingEdge, ReadOnly

    sig = bfm.sig
    cmd = layouts["cmd"]
    ops = [cmd.pack(op=Op.LAYER, base=0, mode=Mode.CHAINED, first=1)]
    tile_ops = []
    for t in range(tiles):
        ops += [cmd.pack(op=Op.EVENT, row=(t + e) % cfg.weight_rows) for e in range(events)]
        ops.append(cmd.pack(op=Op.TILE))
        tile_ops.append(len(ops) - 1)
    tile_set = set(tile_ops)
    n_beats = tiles * cfg.groups
    out = layouts["out"]
    f_tile, f_group, f_last = (out.fields[k] for k in ("tile", "group", "last"))

    def field(word, f):
        return (word >> f.offset) & ((1 << f.width) - 1)

    i = 0
    cycle = 0
    first_edge = None
    tile_edges = []
    beats = 0
    last_beat_edge = None
    waiting = False            # no-overlap: waiting for busy == 0 after a TILE
    problems = []
    bfm.drive("out_ready", 1)
    while beats < n_beats or i < len(ops):
        await FallingEdge(sig["clk"])
        cycle += 1
        if cycle > limit:
            raise ThroughputError(f"E={events} overlap={overlap}: no completion after {limit} "
                                  f"cycles (commands sent {i}/{len(ops)}, beats {beats}/{n_beats})")
        offer = i < len(ops) and not waiting
        if offer:
            bfm.drive("cmd_payload", ops[i])
        bfm.drive("cmd_valid", 1 if offer else 0)
        await ReadOnly()
        # the rising edge that follows this ReadOnly is edge number `cycle`
        # X/Z on a sampled control output (Icarus; see tb/bfm.py): fail at once,
        # not as a hang; each output is read once, only where it was read before
        if offer and _bit(sig, "cmd_ready", bfm, cycle, events, overlap):
            if first_edge is None:
                first_edge = cycle
            if i in tile_set:
                tile_edges.append(cycle)
                waiting = not overlap
            i += 1
        if _bit(sig, "out_valid", bfm, cycle, events, overlap):
            word = sig["out_payload"].value.to_unsigned()
            want_tile, want_group = divmod(beats, cfg.groups)
            got = (field(word, f_tile), field(word, f_group), field(word, f_last))
            want = (want_tile, want_group, int(want_group == cfg.groups - 1))
            if got != want and len(problems) < 5:
                problems.append(f"beat {beats}: (tile, group, last) = {got}, expected {want}")
            beats += 1
            last_beat_edge = cycle
        if waiting and not offer and not _bit(sig, "busy", bfm, cycle, events, overlap):
            waiting = False
        err = _bit(sig, "error", bfm, cycle, events, overlap)
        if err and len(problems) < 5:
            problems.append(f"error = {err} at cycle {cycle}")
    # let the last edge happen before the next case starts driving
    await FallingEdge(sig["clk"])
    bfm.drive("cmd_valid", 0)
    if problems:
        raise ThroughputError(f"E={events} overlap={overlap}: " + "; ".join(problems))
    cycles = last_beat_edge - first_edge + 1
    # steady state: the first tiles run ahead into the free second bank, so
    # the period is taken over the second half of the tiles only
    h = (tiles - 1) // 2
    period = (tile_edges[-1] - tile_edges[h]) / (tiles - 1 - h)
    return {"events": events, "overlap": overlap, "tiles": tiles, "cycles": cycles,
            "cycles_per_tile": cycles / tiles, "period": period}


if cocotb is not None:
    @cocotb.test()
    async def throughput(dut):
        """Measure every case of the plan; write the rows to the plan's ``result``."""
        from cocotb.clock import Clock

        from golden.config import HwConfig
        from tb.bfm import CoreBfm
        from tb.payload import layouts_from_manifest

        plan = json.loads(Path(os.environ[PLAN_ENV]).read_text())
        cfg = HwConfig.from_dict(plan["cfg"])
        layouts = layouts_from_manifest(json.loads(Path(plan["manifest"]).read_text()), cfg)
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
        bfm = CoreBfm(dut, layouts, cfg, seed=0, stress=False)
        problems = await bfm.reset()
        if problems:
            raise ThroughputError("; ".join(problems))
        # weight rows with small values so that no X is ever accumulated
        from cocotb.triggers import FallingEdge, ReadOnly
        wl = layouts["wload"]
        n_rows = min(cfg.weight_rows, max(plan["events"]) + plan["tiles"])
        for r in range(n_rows):
            await FallingEdge(dut.clk)
            bfm.drive("wl_payload", wl.pack(addr=r, data=[((r + p) % 5) - 2
                                                          for p in range(cfg.array)]))
            bfm.drive("wl_valid", 1)
            await ReadOnly()
        await FallingEdge(dut.clk)
        bfm.drive("wl_valid", 0)
        rows = []
        for events in plan["events"]:
            for overlap in (True, False):
                limit = 50 + plan["tiles"] * (events + 2 * cfg.groups + 10)
                rows.append(await _run_case(bfm, layouts, cfg, events, plan["tiles"],
                                            overlap, limit))
        from golden.files import atomic_write
        atomic_write({plan["result"]: json.dumps(rows, indent=1)})


# --------------------------------------------------------------------------
# host side
# --------------------------------------------------------------------------
def measure(cfg, sim: str = "icarus", events=None, tiles: int = 16, quiet: bool = True) -> list:
    """Emit, build (cached) and simulate ``cfg``; return one dict per
    (events, overlap) case with ``expected_period`` added. Raises
    :class:`ThroughputError`."""
    from golden.files import atomic_write
    from tb.build import BuildError, build, emit_rtl, new_run_dir, run_cocotb

    events = list(events) if events else default_events(cfg.groups)
    if tiles < 4:
        raise ThroughputError(f"tiles={tiles}: need at least 4 tiles to measure a period")
    if tiles > cfg.mem_rows:
        raise ThroughputError(f"tiles={tiles}: more than mem_rows={cfg.mem_rows} "
                              f"(one CHAINED membrane row per tile)")
    try:
        v, m = emit_rtl(cfg)
        b = build(cfg, sim, v, m)
    except BuildError as e:
        raise ThroughputError(str(e).splitlines()[0]) from None
    run_dir = new_run_dir(b, "throughput")
    result = run_dir / "throughput.json"
    plan = {"cfg": cfg.to_dict(), "manifest": str(m), "events": events, "tiles": tiles,
            "result": str(result)}
    atomic_write({run_dir / "plan.json": json.dumps(plan, indent=1)})
    log = run_cocotb(b, TEST_MODULE, run_dir, env={PLAN_ENV: str(run_dir / "plan.json")},
                     quiet=quiet).log
    if not result.exists():
        tail = ""
        if log.exists():
            err = [ln for ln in log.read_text(errors="replace").splitlines()
                   if "Error" in ln or "FAIL" in ln]
            tail = err[-1].strip() if err else ""
        raise ThroughputError(f"throughput run of {cfg.name} on {sim} produced no result "
                              f"({tail or 'see ' + str(log)})")
    rows = json.loads(result.read_text())
    for r in rows:
        r["expected_period"] = expected_period(r["events"], cfg.groups)
        r["groups"] = cfg.groups
        r["array"] = cfg.array
        r["sim"] = sim
    return rows


PROG = "python -m tb.throughput"


def _events(v: str) -> list:
    try:
        events = [int(e) for e in v.split(",") if e.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {v!r}") from None
    if not events or min(events) < 0:
        raise argparse.ArgumentTypeError(f"expected integers >= 0, got {v!r}")
    return events


def _run(argv) -> int:
    from golden.config import ConfigError, HwConfig

    p = OneLineParser(prog=PROG, description="Measure the tile throughput of one build with and "
                                             "without LIF overlap; prints the rows as JSON.")
    p.add_argument("--array", type=posint("--array"), default=128, help="number of PEs")
    p.add_argument("--groups", type=posint("--groups"), default=4,
                   help="C#N channel groups; must divide --array")
    p.add_argument("--sim", choices=("icarus", "verilator"), default="icarus", help="simulator")
    p.add_argument("--tiles", type=posint("--tiles"), default=16,
                   help="tiles of the measured layer (at least 4, at most mem_rows)")
    p.add_argument("--events", type=_events, default=argparse.SUPPRESS,
                   help="comma-separated events per tile (default: 1,N,4N)")
    a = p.parse_args(argv)
    try:
        cfg = HwConfig(array=a.array, groups=a.groups)
    except ConfigError as e:
        p.error(str(e))
    rows = measure(cfg, a.sim, getattr(a, "events", None), a.tiles)
    print(json.dumps(rows, indent=1))
    return 0


def main(argv=None) -> int:
    """The command line; returns the exit status (0, or 2 with one error line)."""
    return run_main(_run, PROG, argv)


if __name__ == "__main__":
    sys.exit(main())
