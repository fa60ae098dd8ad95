"""One report sweep: emit, synthesize, check and simulate every configuration.

For each :class:`golden.config.HwConfig` of the sweep :func:`run`

1. emits the Verilog and manifest (:func:`tb.build.emit_rtl`, cached by
   generator hash under the simulator build folder ``<sim_build>/rtl/``);
2. synthesizes it with Yosys (:func:`flow.synth.synthesize`, cached under
   ``cache_dir``);
3. measures tile throughput in cocotb with and without LIF/accumulate overlap
   (:func:`tb.throughput.measure`);
4. attributes cells to blocks and checks the netlist against the
   configuration and manifest (:mod:`flow.attribution`; a mismatch raises
   :class:`flow.attribution.ConsistencyError`).

Yosys runs and simulations share one pool of ``jobs`` worker threads;
simulations run one at a time (a lock), because the simulator builds patch
``os.environ``. Progress lines go to ``log`` (one per finished job, and a
heartbeat every :data:`HEARTBEAT_S` seconds naming the running jobs).
Nothing is written here except the caches of the steps above.
"""

from __future__ import annotations

import json
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path

from golden.config import HwConfig
from tb.build import emit_rtl
from tb.throughput import measure

from .attribution import (attribute_blocks, check_consistency, lif_share,
                          lif_share_with_controller, per_unit)
from .synth import SynthResult, synthesize

__all__ = ["HEARTBEAT_S", "BuildReport", "run"]

HEARTBEAT_S = 30.0                  # progress line while long jobs run


@dataclass
class BuildReport:
    """Everything the report shows for one configuration."""

    cfg: HwConfig
    manifest: dict
    synth: SynthResult | None = None
    blocks: dict | None = None       # {block key: flow.attribution.BlockCost}
    checks: list | None = None       # consistency checks made, one line each
    throughput: list | None = None   # tb.throughput.measure rows
    verilog: Path | None = None      # the emitted Verilog

    def as_dict(self) -> dict:
        """The JSON record of this build in ``hardware_report.json``."""
        d = {"config": self.cfg.to_dict(), "name": self.cfg.name,
             "lif_units": self.manifest["lif_units"],
             "membrane_buffer_bits": self.manifest["membrane_buffer"]["bits"],
             "weight_buffer_bits": self.manifest["weight_buffer"]["bits"],
             "lif_cycles_per_tile": self.manifest["cycles"]["lif_cycles_per_tile"],
             "checks": self.checks, "throughput": self.throughput}
        if self.synth is not None:
            d["synth"] = {"yosys": self.synth.yosys_version, "key": self.synth.key,
                          "seconds": self.synth.seconds, "depth": self.synth.depth,
                          "depth_from": self.synth.depth_from, "depth_to": self.synth.depth_to,
                          "total_cells": self.synth.total_gates(),
                          "flip_flops": self.synth.total_flip_flops()}
            d["blocks"] = {k: asdict(b) for k, b in self.blocks.items()}
            d["lif_share_cells"] = lif_share(self.blocks, "cells")
            d["lif_share_ge"] = lif_share(self.blocks, "ge")
            d["lif_share_with_controller_ge"] = lif_share_with_controller(self.blocks)
            d["per_unit"] = per_unit(self.blocks, self.cfg)
        return d


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run(cfgs: list, *, jobs: int = 2, cache_dir=None, yosys: str = "yosys",
        synth: bool = True, sim: str | None = "verilator", tiles: int = 16,
        log=_stderr) -> list:
    """Emit, synthesize (unless ``synth`` is false), simulate on ``sim``
    (unless it is None) and check every configuration of ``cfgs``; return
    one :class:`BuildReport` per configuration, in order.

    Raises the first error of any job (:class:`flow.synth.SynthError`,
    :class:`tb.build.BuildError`, ...: all :class:`golden.errors.ProjectError`)
    after cancelling the jobs not yet started, or
    :class:`flow.attribution.ConsistencyError`."""
    reports = []
    t0 = time.monotonic()
    for i, cfg in enumerate(cfgs, 1):
        log(f"[emit {i}/{len(cfgs)}] {cfg.name}")
        v, m = emit_rtl(cfg)
        reports.append(BuildReport(cfg, json.loads(Path(m).read_text()), verilog=v))
    def do_synth(r):
        r.synth = synthesize(r.verilog, r.manifest["top"], cache_dir, yosys=yosys)
        how = "cached" if r.synth.cached else f"{r.synth.seconds:.0f} s"
        return f"[yosys] {r.cfg.name}: {how}, {r.synth.total_gates():,} cells"

    def do_sim(r):
        t = time.monotonic()
        r.throughput = measure(r.cfg, sim, tiles=tiles)
        return f"[sim {sim}] {r.cfg.name}: {time.monotonic() - t:.0f} s"

    tasks = []
    for r in reports:
        if synth:
            tasks.append((do_synth, r))
        if sim is not None:
            tasks.append((do_sim, r))
    if tasks:
        log(f"[run] {sum(t[0] is do_synth for t in tasks)} Yosys jobs (about a minute each "
            f"for 128 PEs, cached afterwards) and {sum(t[0] is do_sim for t in tasks)} "
            f"throughput simulations, {jobs} at a time")
    running: dict = {}              # task label -> start time (heartbeat lines)

    def tracked(fn, r):
        label = f"{'yosys' if fn is do_synth else 'sim'} {r.cfg.name}"
        running[label] = time.monotonic()
        try:
            return fn(r)
        finally:
            running.pop(label, None)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        pending = {pool.submit(tracked, fn, r) for fn, r in tasks}
        done = 0
        try:
            while pending:
                finished, pending = wait(pending, timeout=HEARTBEAT_S,
                                         return_when=FIRST_COMPLETED)
                for f in finished:
                    done += 1
                    log(f"[{done}/{len(tasks)}] {f.result()} "
                        f"({time.monotonic() - t0:.0f} s elapsed)")
                if not finished:
                    now = time.monotonic()
                    log("  ... running: " + ", ".join(
                        f"{k} ({now - v:.0f} s)" for k, v in sorted(running.items())))
        except BaseException:
            for f in pending:
                f.cancel()
            raise
    if synth:
        for r in reports:
            r.blocks = attribute_blocks(r.synth)
            r.checks = check_consistency(r.cfg, r.manifest, r.synth, r.blocks)
    return reports
