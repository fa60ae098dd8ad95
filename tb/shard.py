"""One shard of ``python -m tb.run``: some samples of a network on the RTL, fully checked.

:func:`run_shard` is the single function boundary between the runner
(:mod:`tb.run`, :mod:`tb.fanout`: which samples run where) and the
simulation path. It drives :func:`tb.demo_rtl.run_network` (cocotb + the
scoreboard: every beat and every membrane row after every timestep against
the golden schedule) on the bulk path by default (``path="bulk"``: the
testbench top ``tb_bulk_top`` runs blocks of the program without Python in
the loop, tb/bulk.py) or on the per-cycle BFM (``path="bfm"``, tb/bfm.py);
both return the same :class:`ShardResult` apart from ``path``, the cycle
counts (the bulk top's pauses between blocks add a few cycles each) and
the rates.

It emits and builds the configuration once per process (:func:`build_for`:
the content-addressed cache of :mod:`tb.build`, whose file locks serialise
concurrent builds of one configuration, also across hosts that share the
build folder), simulates the shard, and checks the RTL's recorded outputs
against :func:`golden.fixed_model.run_fixed` as well. Everything it returns
is plain data (numpy arrays, ints, strings): it pickles to any Dask worker
and back. Never raises for a failing simulation (``ok`` False, ``failing``
names the samples); raises :class:`tb.build.BuildError` for a failed build.
"""

from __future__ import annotations

import os
import resource
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from golden.config import HwConfig
from golden.network import Network

__all__ = ["ShardResult", "run_shard", "build_for", "remember_build", "format_samples", "COUNTS",
           "CYCLES", "PATHS"]

#: simulation paths (tb.sim's ``--path`` names); the first is the default
PATHS = ("bulk", "bfm")

#: Scoreboard counts that add up over shards (``checked`` of a summary).
COUNTS = ("beats", "beats_expected", "spikes", "values", "membrane_rows", "membrane_words",
          "spill_rows", "spill_words", "mismatches")
#: Cycle counters of a run (a summary's fields of the same name; ``wload_cycles``: the
#: exposed ones, the command stream waiting for weight loads), with the weight-load beat
#: counts and the EVENT / synapse counts the utilization is computed from.
CYCLES = ("cycles", "wload_cycles", "readback_cycles", "gap_cycles", "backpressure_cycles",
          "wl_beats", "wl_hidden_beats", "wl_overlap_cycles", "events", "synapses")


@dataclass
class ShardResult:
    """What one shard reported. ``outputs[k]`` belongs to ``sample_ids[k]``.

    ``outputs``: int64 ``[samples, T, outputs]`` observed on the RTL (the last
    layer's read-out values, or its spikes for a LIF last layer; None when the
    simulation produced nothing). ``checked``: the scoreboard counts
    (:data:`COUNTS`). ``sample_mismatches[k]``: mismatches of sample k.
    ``failing``: the sample ids that failed (all of the shard's when the
    failure cannot be attributed, e.g. a timeout or a crashed simulator);
    ``unchecked``: samples never reached because the run stopped early.
    ``seconds``: simulation wall time; ``cpu_seconds``: CPU time of the
    simulation processes; ``run_cpu_seconds``: the part of it spent in the
    checked run (simulating and checking: no start-up, no schedule).
    """

    sample_ids: tuple
    ok: bool
    outputs: Optional[np.ndarray]
    checked: dict
    cycles: dict
    sample_mismatches: list
    failing: tuple
    unchecked: tuple
    failure: str
    golden_equal: bool
    seconds: float
    cpu_seconds: float
    run_dir: str
    build_dir: str
    build_reused: bool
    path: str = "bulk"       # simulation path that produced it (tb.sim's --path names)
    run_cpu_seconds: float = 0.0
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)


def format_samples(ids) -> str:
    """Sample ids as ``--samples`` takes them: ``0-3,7,9-10`` (sorted, runs joined)."""
    ids = sorted({int(i) for i in ids})
    parts, k = [], 0
    while k < len(ids):
        j = k
        while j + 1 < len(ids) and ids[j + 1] == ids[j] + 1:
            j += 1
        parts.append(str(ids[k]) if j == k else f"{ids[k]}-{ids[j]}")
        k = j + 1
    return ",".join(parts)


_builds: dict = {}
_builds_lock = threading.Lock()


def spills(cfg: HwConfig, net: Network) -> bool:
    """Whether ``net``'s membranes spill on ``cfg`` (a region larger than ``mem_rows``)."""
    from golden.mapping import rows_needed
    return rows_needed(cfg, net.layers)[1] > cfg.mem_rows


def build_for(cfg: HwConfig, sim: str, path: str = "bulk", spill: bool = False):
    """The :class:`tb.build.Build` of ``cfg`` on ``sim`` for simulation ``path``
    (:func:`tb.demo_rtl.build_core`); emitted and built (or found in the
    cache) once per process, then remembered."""
    from .demo_rtl import build_core
    spill = spill and path == "bulk"
    key = (cfg.to_json(), sim, path, spill)
    with _builds_lock:
        if key not in _builds:
            _builds[key] = build_core(cfg, sim, path, spill=spill)
        return _builds[key]


def remember_build(cfg: HwConfig, sim: str, build, path: str = "bulk", spill: bool = False) -> None:
    """Let :func:`build_for` return ``build`` (made by the caller) in this process."""
    with _builds_lock:
        _builds[(cfg.to_json(), sim, path, spill and path == "bulk")] = build


def _child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_shard(cfg: HwConfig, net: Network, spikes: np.ndarray, sample_ids, sim: str = "verilator",
              *, stress: bool = False, seed: int = 1, repro: str = "",
              progress: Optional[Callable[[int], None]] = None, path: str = "bulk") -> ShardResult:
    """Simulate samples ``sample_ids`` (``spikes[k]`` is sample ``sample_ids[k]``,
    0/1 ``[samples, T, *net.in_shape]``) of ``net`` on the RTL of ``cfg``.

    ``repro`` is the command a mismatch report prints; ``progress(done)``
    is called with the samples started so far (single-process runs);
    ``path``: "bulk" (default) or "bfm" (:data:`PATHS`).
    """
    from golden.fixed_model import run_fixed

    from .demo_rtl import run_network

    ids = tuple(int(i) for i in sample_ids)
    spikes = np.asarray(spikes)
    if spikes.shape[0] != len(ids):
        raise ValueError(f"run_shard: {spikes.shape[0]} samples of spikes for {len(ids)} sample ids")
    if path not in PATHS:
        raise ValueError(f"run_shard: unknown path {path!r} (expected one of {', '.join(PATHS)})")
    b = build_for(cfg, sim, path, spills(cfg, net))
    cpu0 = _child_cpu()
    t0 = time.monotonic()
    r = run_network(b, net, spikes, stress=stress, seed=seed, progress=progress,
                    tag=f"run-s{ids[0]}" if ids else "run", sample_ids=ids, repro=repro)
    seconds = time.monotonic() - t0
    cpu = _child_cpu() - cpu0
    sm = r.summary or {}
    checked = {k: int(sm.get("checked", {}).get(k, 0)) for k in COUNTS}
    cycles = {k: int(sm.get(k, 0)) for k in CYCLES}
    per = [int(x) for x in sm.get("sample_mismatches", [])]
    golden = run_fixed(cfg, net, np.ascontiguousarray(np.swapaxes(spikes, 0, 1))).output
    golden = np.swapaxes(golden, 0, 1).reshape(len(ids), spikes.shape[1], -1)
    equal = r.readout is not None and r.readout.shape == golden.shape \
        and bool(np.array_equal(r.readout, golden))
    ok = bool(r.ok and equal)
    failure = r.failure
    if r.ok and not equal:
        failure = ("the RTL's recorded outputs differ from golden.fixed_model.run_fixed although "
                   "the scoreboard passed (a bug of the recording)")
    started = sm.get("sample_first_cycle", [])
    if ok:
        failing, unchecked = (), ()
    else:
        blamed = len(per) == len(ids) and any(per)
        failing = tuple(i for i, n in zip(ids, per) if n) if blamed else ids
        unchecked = tuple(i for i, c in zip(ids, started) if c < 0 and i not in failing) \
            if len(started) == len(ids) else ()
    return ShardResult(ids, ok, r.readout, checked, cycles,
                       per if len(per) == len(ids) else [0] * len(ids), failing, unchecked,
                       failure, equal, seconds, cpu, str(r.run_dir), str(b.build_dir), b.reused,
                       path, float(sm.get("sim_cpu_seconds", 0.0)))
