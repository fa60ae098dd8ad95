"""The JSON plan a host hands to a cocotb test, and the summary it writes back.

The host side (:func:`tb.build.run`, :func:`tb.demo_rtl.run_network`) writes
``plan.json`` into the run directory and passes its path to the simulation
process in ``TB_PLAN`` (:data:`PLAN_ENV`); the cocotb tests read it with
:func:`load_plan` and merge their results into the plan's ``summary`` file
with :func:`record`. Pure Python: importable without a simulator.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from golden.files import atomic_write

__all__ = ["PLAN_ENV", "load_plan", "record", "NetworkRun", "load_network_run"]

PLAN_ENV = "TB_PLAN"


def load_plan() -> dict:
    """The plan of this simulation run (the JSON file named by ``TB_PLAN``)."""
    return json.loads(Path(os.environ[PLAN_ENV]).read_text())


def record(plan: dict, name: str, data: dict) -> None:
    """Merge one cocotb test's summary into the run's summary.json (atomically)."""
    path = Path(plan["summary"])
    summary = json.loads(path.read_text()) if path.exists() else {"tests": {}}
    summary["tests"][name] = data
    atomic_write({path: json.dumps(summary, indent=1)})


@dataclass
class NetworkRun:
    """A plan's network and spikes, scheduled and flattened for the BFM."""

    cfg: object        # golden.config.HwConfig
    net: object        # golden.network.Network
    spikes: object     # numpy array, 0/1 [samples, T, *in_shape]
    sched: object      # golden.schedule.Schedule
    layouts: dict      # tb.payload layouts of the build's manifest
    ops: list          # BFM operations (tb.bfm.flatten)
    beats: list        # expected output beats


def load_network_run(plan: dict) -> NetworkRun:
    """Read the plan's ``cfg``, ``network`` (.npz), ``spikes`` (.npy) and
    ``manifest``; build the golden schedule and the BFM operations."""
    import numpy as np

    from golden.config import HwConfig
    from golden.network import load_network
    from golden.schedule import build_schedule
    from tb.bfm import flatten
    from tb.payload import layouts_from_manifest

    cfg = HwConfig.from_dict(plan["cfg"])
    net = load_network(plan["network"])
    spikes = np.load(plan["spikes"])
    sched = build_schedule(cfg, net, spikes)
    layouts = layouts_from_manifest(json.loads(Path(plan["manifest"]).read_text()), cfg)
    ops, beats = flatten(sched, layouts)
    return NetworkRun(cfg, net, spikes, sched, layouts, ops, beats)
