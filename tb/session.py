"""The per-test session of the cocotb co-simulation tests (both paths).

:class:`Session` derives everything one cocotb test needs from the plan
(configuration, network, schedule, flattened stimulus, scoreboard factory,
summary/progress records); :func:`cpu_seconds` measures the simulating
process. Shared by the per-cycle tests (``tb/test_lif_pe_array.py``) and the
bulk path (``tb/bulk.py``), so neither imports the other.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from tb.plan import record

try:
    import cocotb
except ImportError:  # pragma: no cover - cocotb is a hard dependency
    cocotb = None

#: cycle counters of a checked run (tb.bfm.Stats fields; tb.bulk.BulkRunner.counters)
CYCLE_KEYS = ("cycles", "wload_cycles", "readback_cycles", "gap_cycles", "backpressure_cycles",
              "wl_beats", "wl_valid_cycles", "wl_gap_cycles", "wl_overlap_cycles",
              "wl_exposed_beats")


def cpu_seconds() -> float:
    """CPU seconds of this process (the simulator and cocotb share it)."""
    import resource
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Session:
    """Everything one cocotb test needs, derived from the plan."""

    def __init__(self, dut, plan: dict, bfm: bool = True):
        from golden.config import HwConfig
        from golden.schedule import build_schedule

        from tb.bfm import CoreBfm, flatten
        from tb.payload import layouts_from_manifest
        from tb.stimulus import make_network, make_spikes

        self.plan = plan
        self.cfg = HwConfig.from_dict(plan["cfg"])
        manifest = json.loads(Path(plan["manifest"]).read_text())
        self.layouts = layouts_from_manifest(manifest, self.cfg)
        self.net = make_network(self.cfg, plan["seed"], plan["layer_share"])
        spikes = make_spikes(self.net, plan["seed"], plan["samples"], plan["timesteps"])
        self.sched = build_schedule(self.cfg, self.net, spikes)
        self.ops, self.beats = flatten(self.sched, self.layouts, plan.get("driver_fault") or None)
        # the bulk path (tb/bulk.py) drives tb_bulk_top instead of the per-cycle BFM
        self.bfm = CoreBfm(dut, self.layouts, self.cfg, plan["seed"], stress=plan["stress"],
                           stall_limit=plan.get("stall_limit", 5000)) if bfm else None

    def scoreboard(self):
        from tb.scoreboard import Scoreboard
        return Scoreboard(self.cfg, self.beats, repro=self.plan.get("repro", ""),
                          layer_names={i: l.name for i, l in enumerate(self.net.layers)},
                          layer_modes={i: l.mode for i, l in enumerate(self.net.layers)},
                          max_report=self.plan.get("max_report", 8),
                          neuron_of=self.neuron_of)

    def neuron_of(self, layer: int, tile: int, pe: int) -> str:
        """Which output neuron PE ``pe`` of ``tile`` holds (golden.schedule mapping)."""
        try:
            idx = int(self.sched.allocation.tiles[layer][tile].pe_neurons[pe])
        except (KeyError, IndexError):
            return "neuron ?"
        if idx < 0:
            return "padding"
        c, h, w = self.net.layers[layer].out_chw
        return f"neuron {idx} (c {idx // (h * w)}, h {idx // w % h}, w {idx % w})"

    async def start_clock(self, dut):
        from cocotb.clock import Clock
        Clock(dut.clk, 10, unit="ns").start()

    async def checked_run(self, name: str) -> None:
        """Run all operations against a fresh scoreboard; record and assert."""
        from tb.bfm import BfmTimeout
        from dataclasses import asdict
        sb = self.scoreboard()
        st = self.bfm.stats
        s0, t0, cpu0 = asdict(st), time.monotonic(), cpu_seconds()
        timeout = None
        writer = None
        if self.plan.get("progress"):
            writer = cocotb.start_soon(self.write_progress(name, sb))
        try:
            await self.bfm.run(self.ops, sb, stop_after=self.plan.get("max_report", 8))
        except BfmTimeout as e:
            timeout = str(e)
        finally:
            if writer is not None:
                writer.cancel()
                self.progress_record(name, sb)
        sb.missing_beats() if timeout is None and sb.ok else None
        s1 = asdict(st)
        self.finish(name, sb, timeout, {k: s1[k] - s0[k] for k in CYCLE_KEYS},
                    time.monotonic() - t0, cpu0)

    def finish(self, name: str, sb, timeout, cyc: dict, secs: float, cpu0: float) -> None:
        """Record the summary of one checked run (``cyc``: cycle counters,
        :data:`CYCLE_KEYS`) and assert.

        ``wload_cycles`` are the *exposed* weight-load cycles (the command
        stream waited for weight loads); ``wl_beats`` the weight rows
        loaded, ``wl_hidden_beats`` those accepted while the command stream
        was not waiting for them, ``wl_overlap_cycles`` the cycles with a
        ``cmd`` and a ``wload`` transfer on the same edge. ``pe_utilization``
        (``counts["synapses"] / (A · cycles)``, when the schedule counts
        synapses), ``events_per_cycle`` and ``wload_share`` (exposed /
        cycles) are over all cycles of the run."""
        counts = self.sched.counts
        cycles, wl, rbk = cyc["cycles"], cyc["wload_cycles"], cyc["readback_cycles"]
        compute = cycles - wl - rbk
        cpu = cpu_seconds() - cpu0
        data = {"ok": sb.ok and timeout is None, "checked": sb.counts(),
                "cycles": cycles, "compute_cycles": compute,
                "wload_cycles": wl, "readback_cycles": rbk,
                "gap_cycles": cyc["gap_cycles"], "backpressure_cycles": cyc["backpressure_cycles"],
                "wl_beats": cyc.get("wl_beats", 0), "wl_valid_cycles": cyc.get("wl_valid_cycles", 0),
                "wl_gap_cycles": cyc.get("wl_gap_cycles", 0),
                "wl_overlap_cycles": cyc.get("wl_overlap_cycles", 0),
                "wl_hidden_beats": cyc.get("wl_beats", 0) - cyc.get("wl_exposed_beats", 0),
                "events_per_cycle": counts["events"] / max(1, cycles),
                "wload_share": wl / max(1, cycles),
                "pe_utilization": (counts["synapses"] / (self.cfg.array * max(1, cycles))
                                   if "synapses" in counts else None),
                "driver_fault": self.plan.get("driver_fault") or None,
                "tiles": counts["tiles"], "timesteps": counts["timesteps"],
                "events": counts["events"], "commands": counts["commands"],
                "weight_loads": counts["weight_loads"],
                "weights": self.sched.allocation.weights,
                "cycles_per_tile": compute / max(1, counts["tiles"]),
                "cycles_per_timestep": cycles / max(1, counts["timesteps"]),
                "sim_seconds": secs, "sim_cpu_seconds": cpu,
                "path": "bfm" if self.bfm is not None else "bulk"}
        data.update(getattr(self, "extra", {}))
        failure = None
        if timeout is not None or not sb.ok:
            failure = f"[{name}] seed {self.plan['seed']}: " + \
                (f"TIMEOUT: {timeout}\n" if timeout else "") + sb.report()
            if timeout and sb.ok and self.plan.get("repro"):
                failure += f"\nreproduce: {self.plan['repro']}"
        data["failure"] = failure
        self.record(name, data)
        assert failure is None, failure

    def progress_record(self, name: str, sb) -> None:
        """Rewrite the plan's ``progress`` file: test, beats received of the
        expected, cycles (read by the host's progress bar, tb.build.run)."""
        from golden.files import atomic_write
        atomic_write({self.plan["progress"]: json.dumps({
            "test": name, "beats": sb.next_beat, "beats_expected": sb.beats_expected,
            "cycles": self.bfm.stats.cycles})})

    async def write_progress(self, name: str, sb, every: int = 1000, seconds: float = 1.0):
        """:meth:`progress_record` at most every ``seconds`` of wall time,
        looking every ``every`` clock cycles."""
        from cocotb.triggers import ClockCycles
        last = 0.0
        while True:
            await ClockCycles(self.bfm.sig["clk"], every)
            now = time.monotonic()
            if now - last >= seconds:
                last = now
                self.progress_record(name, sb)

    def record(self, name: str, data: dict) -> None:
        prev = json.loads(Path(self.plan["summary"]).read_text()).get("tests", {}).get(name) \
            if Path(self.plan["summary"]).exists() else None
        if prev and prev.get("failure") and not data.get("failure"):
            data["failure"] = prev["failure"]
        record(self.plan, name, data)

    def fail(self, name: str, text: str) -> None:
        """Record and raise a one-line finding with the seed and repro command."""
        msg = f"[{name}] seed {self.plan['seed']}: {text}"
        if self.plan.get("repro") and "reproduce:" not in text:
            msg += f"; reproduce: {self.plan['repro']}"
        self.record(name, {"ok": False, "failure": msg})
        raise AssertionError(msg)

    async def reset(self, name: str) -> None:
        problems = await self.bfm.reset(cycles=3)
        if problems:
            msg = f"[{name}] reset contract: " + "; ".join(problems)
            if self.plan.get("repro"):
                msg += f"\nreproduce: {self.plan['repro']}"
            self.record(name, {"ok": False, "failure": msg})
            raise AssertionError(msg)
