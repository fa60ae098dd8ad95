"""Run one integer network over a spike set on the generated RTL (demo helper).

:func:`build_core` emits and builds the core for ``cfg`` with the
testbench's own flow (:func:`tb.build.emit_rtl`, :func:`tb.build.build_bulk`
or :func:`tb.build.build`: same cache in ``sim_build/``, same Verilator
flags and lint waivers); :func:`run_network` runs the cocotb test
:mod:`tb.demo_cocotb` on it through :func:`tb.build.run_cocotb` with a plan
that names the network and spike files. Two paths (``tb.sim``'s
``--path`` names): ``"bulk"`` (default: the testbench top ``tb_bulk_top``
runs blocks of the program without Python in the loop, tb/bulk.py) and
``"bfm"`` (the per-cycle BFM, tb/bfm.py); both check the same beats and
rows with the same scoreboard and report the same cycle counts. The simulation runs in a
worker thread (``run_cocotb(progress=...)``) while the calling thread reports
progress (samples done) from the file the cocotb test rewrites after every
sample.

Result (:class:`RtlRun`): pass/fail, the scoreboard counts, cycles, the
RTL's read-out values ``[samples, T, outputs]`` and the run directory
(``<build>/runs/demo-<time>-<id>/``: plan, network, spikes, summary, log).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from golden.config import HwConfig
from golden.network import Network, save_network

from .build import TOPLEVEL, Build, build, build_bulk, emit_rtl, new_run_dir, run_cocotb

__all__ = ["TEST_MODULE", "PATHS", "TESTS", "DEMO_DEPTHS", "RtlRun", "build_core", "run_network"]

TEST_MODULE = "tb.demo_cocotb"
#: simulation paths (tb.sim's --path names) and the cocotb test of each
PATHS = ("bulk", "bfm")
TESTS = {"bulk": "demo_network_bulk", "bfm": "demo_network"}
#: tb_bulk_top memory depths of the demo's build: one block holds a whole
#: variant of the 360-sample test set (about 500 k operation words, 51,840
#: beats, up to 46,080 membrane rows), so the top never pauses mid-run and the
#: cycle counts are the core's (equal to the per-cycle path's); a larger
#: input set runs in several blocks (same checks, a few cycles more per pause)
DEMO_DEPTHS = {"ops": 1 << 20, "out": 1 << 16, "mem": 1 << 16}
#: depth of the spill capture memory and fill queue of a bulk build for a
#: network whose membranes spill (tb/bulk_top.py ``BulkDepths.sp``; 0 otherwise)
SPILL_DEPTH = 1 << 10


@dataclass
class RtlRun:
    """What one demo simulation reported."""

    ok: bool
    summary: dict
    readout: Optional[np.ndarray]   # int64 [samples, T, outputs] observed on the RTL
    run_dir: Path
    log: Path
    seconds: float
    failure: str = ""

    @property
    def predictions(self) -> np.ndarray:
        """Argmax of the RTL read-out summed over T."""
        return self.readout.sum(axis=1).argmax(axis=1)


def build_core(cfg: HwConfig, sim: str = "verilator", path: str = "bulk",
               depths: Optional[dict] = None, spill: bool = False) -> Build:
    """Emit (cached) and build (cached) the core for ``cfg``: with the bulk
    testbench top (``path`` "bulk", memory ``depths`` as
    :func:`tb.build.build_bulk`; the build's ``top`` says which) or alone
    ("bfm"). ``spill``: the bulk top gets its spill/fill engine
    (:data:`SPILL_DEPTH`), for networks whose membranes spill."""
    if path not in PATHS:
        raise ValueError(f"unknown simulation path {path!r} (expected one of {', '.join(PATHS)})")
    verilog, manifest = emit_rtl(cfg)
    if path == "bfm":
        return build(cfg, sim, verilog, manifest, quiet=True)
    if spill:
        depths = dict(depths or {}, sp=SPILL_DEPTH)
    return build_bulk(cfg, sim, verilog, manifest, depths=depths, quiet=True)[0]


def run_network(b: Build, net: Network, spikes: np.ndarray, *, stress: bool = False, seed: int = 1,
                progress: Optional[Callable[[int], None]] = None, poll: float = 0.5,
                tag: str = "demo", sample_ids=None, repro: Optional[str] = None) -> RtlRun:
    """Simulate ``net`` on build ``b`` over ``spikes`` (0/1 ``[samples, T, *in_shape]``)
    on the path of ``b`` (:func:`build_core`: bulk for a ``tb_bulk_top`` build).

    ``progress(samples_started)`` is called from this thread while the
    simulation runs. ``sample_ids`` (one int per sample) are the numbers
    mismatch messages give the samples (default 0, 1, ...); ``repro`` the
    command they print to reproduce the run. Never raises for a failed
    simulation: ``ok`` is False and ``failure`` says why (scoreboard report
    or the log tail).
    """
    net.validate(b.cfg)
    path = "bfm" if b.top == TOPLEVEL else "bulk"
    spikes = np.asarray(spikes)
    run_dir = new_run_dir(b, tag)
    save_network(net, run_dir / "network.npz")
    np.save(run_dir / "spikes.npy", spikes.astype(np.uint8))
    plan = {"cfg": b.cfg.to_dict(), "manifest": str(b.manifest_path), "sim": b.sim,
            "network": str(run_dir / "network.npz"), "spikes": str(run_dir / "spikes.npy"),
            "summary": str(run_dir / "summary.json"), "readout": str(run_dir / "readout.npy"),
            "progress": str(run_dir / "progress.json"), "stress": stress, "seed": seed,
            "stall_limit": 5000, "max_report": 8, "path": path,
            "repro": repro or f"python -m tb.demo (run directory {run_dir})"}
    if sample_ids is not None:
        plan["sample_ids"] = [int(i) for i in sample_ids]
    if b.bulk_depths:
        plan["bulk_depths"] = b.bulk_depths
    (run_dir / "plan.json").write_text(json.dumps(plan, indent=1))
    pfile = run_dir / "progress.json"
    last = [-1]

    def poll_progress():
        if not pfile.exists():
            return
        try:
            n = json.loads(pfile.read_text())["samples_started"]
        except (OSError, ValueError, KeyError):
            return
        if n != last[0]:
            progress(n)
            last[0] = n

    c = run_cocotb(b, TEST_MODULE, run_dir, env={"TB_PLAN": str(run_dir / "plan.json")},
                   testcase=TESTS[path],
                   progress=poll_progress if progress is not None else None, poll=poll)
    summary, log, secs = c.summary, c.log, c.seconds
    readout = np.load(run_dir / "readout.npy") if (run_dir / "readout.npy").exists() else None
    ok = c.sim_ok and c.ntests > 0 and c.nfailed == 0 and bool(summary.get("ok")) \
        and readout is not None
    failure = ""
    if not ok:
        failure = summary.get("failure") or (
            f"simulation failed without a scoreboard report ({c.error or 'no summary'}); "
            f"see {log}\n{c.log_tail(40)}")
    if progress is not None and ok:
        progress(int(spikes.shape[0]))
    return RtlRun(ok, summary, readout, run_dir, log, secs, failure)
