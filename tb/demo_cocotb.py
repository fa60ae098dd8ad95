"""cocotb test of the demo: one trained network over a whole spike set on the RTL.

Runs inside the simulator (started by :func:`tb.demo_rtl.run_network`). The
JSON plan named by ``TB_PLAN`` gives the build's ``cfg`` and ``manifest``, a
``network`` file (:func:`golden.network.save_network`), a ``spikes`` file
(``.npy``, 0/1 ``[samples, T, *in_shape]``), and where to write ``summary``,
``readout`` and ``progress``.

The test builds the schedule with :func:`golden.schedule.build_schedule`,
drives it (no random gaps and no backpressure when ``stress`` is false, so
the cycle counts are those of the core) and checks every beat and every
membrane row after every timestep with :class:`tb.scoreboard.Scoreboard`,
exactly as ``tb/test_lif_pe_array.py`` does for its random networks. Two
tests, one per path (``plan["path"]``, :func:`tb.demo_rtl.run_network`
selects the one of its build): ``demo_network_bulk`` on the bulk testbench
top ``tb_bulk_top`` (:class:`tb.bulk.BulkRunner`: the program runs in blocks
without Python in the loop, the captured beats and rows are checked block by
block), ``demo_network`` with the per-cycle BFM (:class:`tb.bfm.CoreBfm`) on
``lif_pe_array`` itself. In addition it records what the *RTL* put out
on the last layer's beats (read-out values of a readout layer, spikes of a
LIF layer: what :attr:`golden.fixed_model.FixedResult.output` holds), so the
caller computes the RTL's own classification (``readout``: int64
``[samples, T, outputs]``), the cycle count at every sample boundary and the
mismatches of every sample (``sample_mismatches``). With ``sample_ids`` in
the plan (the samples' numbers in the caller's whole input set, e.g. one
shard of ``python -m tb.run``) mismatch messages name those numbers.
Progress (samples done) is written to the ``progress`` file after every
sample for the caller's progress bar.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

try:
    import cocotb
except ImportError:  # pragma: no cover - cocotb is a hard dependency
    cocotb = None

from golden.files import atomic_write
from tb.scoreboard import Scoreboard

__all__ = ["RecordingScoreboard"]


class RecordingScoreboard(Scoreboard):
    """A :class:`Scoreboard` that also keeps the observed read-out values.

    Call :meth:`attach` before the run. ``readout[sample, t, neuron]`` is
    filled from the RTL's beats (flat neuron ``tile·A + group·S + slot``);
    ``sample_first_cycle[b]`` is the cycle count when sample ``b``'s first
    beat arrived: the BFM's (``stats.cycles``), or on the bulk path the
    top's ``cycles`` captured with each beat (:meth:`beat_cycles`, before
    the :meth:`check_beats` of those beats).
    """

    def attach(self, samples: int, timesteps: int, outputs: int, stats, progress: Path | None,
               last=None, sample_ids=None):
        """``last``: ``(index, layer[, pe_neurons])`` of the layer whose beats are
        recorded (values of a readout layer, spikes of a LIF layer, at the flat
        output index of its tile's PE: ``pe_neurons`` ``[tiles, A]`` from the
        schedule's allocation, default the position mapping's
        :func:`golden.mapping.tile_pe_neurons`); None: every readout beat, at
        ``tile·A + group·S + slot``.
        ``sample_ids[b]``: the number messages give local sample ``b``."""
        self.readout = np.zeros((samples, timesteps, outputs), dtype=np.int64)
        self.sample_first_cycle = np.full(samples, -1, dtype=np.int64)
        self.sample_mismatches = np.zeros(samples, dtype=np.int64)
        self._stats, self._progress, self._cur = stats, progress, -1
        self._outputs, self._last = outputs, last
        self._ids = list(sample_ids) if sample_ids is not None else None
        self._blame = -1   # local sample a mismatch found now belongs to
        self._cyc, self._cyc_base = None, 0   # bulk path: cycles of the beats being checked
        self._batch = False
        self._nrn: dict = {}

    def beat_cycles(self, cycles: np.ndarray) -> None:
        """The cycle counts of the next ``len(cycles)`` beats (bulk path, tb/bulk.py)."""
        self._cyc, self._cyc_base = np.asarray(cycles, dtype=np.int64), self.next_beat

    def _cycle_of(self, idx: int) -> int:
        k = idx - self._cyc_base
        if self._cyc is not None and 0 <= k < self._cyc.size:
            return int(self._cyc[k])
        return self._stats.cycles if self._stats is not None else -1

    def _started(self, sample: int, idx: int) -> None:
        self._cur = sample
        self.sample_first_cycle[sample] = self._cycle_of(idx)

    def _write_progress(self) -> None:
        if self._progress is not None:
            atomic_write({self._progress: json.dumps({"samples_started": self._cur + 1,
                                                      "mismatches": self.n_mismatches})})

    def _gid(self, sample: int) -> int:
        return self._ids[sample] if self._ids is not None and 0 <= sample < len(self._ids) \
            else sample

    def _where(self, b) -> str:
        return super()._where(b._replace(sample=self._gid(b.sample)))

    def _fail(self, kind: str, text: str) -> None:
        super()._fail(kind, text)
        b = self._blame if self._blame >= 0 else self._cur
        if 0 <= b < self.sample_mismatches.size:
            self.sample_mismatches[b] += 1

    def check_membrane(self, te, row: int, got) -> bool:
        self._blame = te.sample
        try:
            return super().check_membrane(te._replace(sample=self._gid(te.sample)), row, got)
        finally:
            self._blame = -1

    def missing_beats(self) -> None:
        if self.next_beat < len(self.expected_beats):
            self._blame = self.expected_beats[self.next_beat].sample
        try:
            super().missing_beats()
        finally:
            self._blame = -1

    def check_beat(self, got: dict) -> bool:
        idx = self.next_beat
        exp = self.expected_beats[idx] if idx < len(self.expected_beats) else None
        self._blame = exp.sample if exp is not None else -1
        try:
            ok = super().check_beat(got)
        finally:
            self._blame = -1
        if exp is None or self._batch:   # check_beats records its beats itself
            return ok
        if exp.sample != self._cur:
            self._started(exp.sample, idx)
            self._write_progress()
        self._keep(exp, got)
        return ok

    def check_beats(self, got: dict) -> int:
        """:meth:`Scoreboard.check_beats` (the bulk path), recording every beat
        as :meth:`check_beat` does."""
        i0, n = self.next_beat, len(got["tile"])
        self._batch = True
        try:
            nbad = super().check_beats(got)
        finally:
            self._batch = False
        m = max(0, min(n, len(self.expected_beats) - i0))
        exp = self.expected_beats[i0:i0 + m]
        cur = self._cur
        for k, e in enumerate(exp):
            if e.sample != self._cur:
                self._started(e.sample, i0 + k)
            if self._last is None or e.layer == self._last[0]:
                self._keep(e, {f: v[k] for f, v in got.items()})
        if self._cur != cur:
            self._write_progress()
        return nbad

    def _keep(self, exp, got: dict) -> None:
        """Record beat ``exp``'s observed outputs (``got``) if it is one of the recorded layer's."""
        if self._last is not None:
            if exp.layer == self._last[0]:
                self._record(exp, got)
        elif exp.readout:
            s = self.cfg.slots
            base = exp.tile * self.cfg.array + exp.group * s
            n = max(0, min(s, self._outputs - base))
            if n:
                self.readout[exp.sample, exp.t, base:base + n] = _ints(got["values"])[:n]

    def _record(self, exp, got: dict) -> None:
        """Store the last layer's beat at its neurons' flat (C, H, W) output indices."""
        from golden.mapping import tile_pe_neurons
        s = self.cfg.slots
        layer = self._last[1]
        row = self._last[2][exp.tile] if len(self._last) > 2 else None
        if row is None:   # the position mapping (cached per tile)
            row = self._nrn.get(exp.tile)
            if row is None:
                row = self._nrn[exp.tile] = tile_pe_neurons(self.cfg, layer, [exp.tile])[0]
        nrn = row[exp.group * s:(exp.group + 1) * s]
        real = nrn >= 0
        vals = _ints(got["values" if exp.readout else "spikes"])[:s]
        self.readout[exp.sample, exp.t, nrn[real]] = vals[real]


def _ints(values) -> np.ndarray:
    """Decoded payload values as int64; an X/Z value (decoded to a string) becomes a
    sentinel (int64 min): the scoreboard has already failed the beat."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "iu":
        return values.astype(np.int64)
    return np.array([int(v) if isinstance(v, (int, np.integer)) else np.iinfo(np.int64).min
                     for v in np.asarray(values, dtype=object)], dtype=np.int64)


def _setup(plan: dict, stats=None):
    """(network run, recording scoreboard, schedule seconds) of the plan."""
    from tb.plan import load_network_run
    t0 = time.monotonic()
    nr = load_network_run(plan)
    t_sched = time.monotonic() - t0
    net, spikes = nr.net, nr.spikes
    ro = net.layers[-1]
    sb = RecordingScoreboard(nr.cfg, nr.beats, repro=plan.get("repro", ""),
                             layer_names={i: l.name for i, l in enumerate(net.layers)},
                             layer_modes={i: l.mode for i, l in enumerate(net.layers)},
                             max_report=plan.get("max_report", 8))
    progress = Path(plan["progress"]) if plan.get("progress") else None
    li = len(net.layers) - 1   # recorded at its PEs' neurons of the schedule's allocation
    sb.attach(spikes.shape[0], spikes.shape[1], int(np.prod(ro.out_chw)), stats, progress,
              last=(li, ro, np.stack([tp.pe_neurons for tp in nr.sched.allocation.tiles[li]])),
              sample_ids=plan.get("sample_ids"))
    return nr, sb, t_sched


def _finish(plan: dict, nr, sb, problems, timeout, c0: int, cyc: dict, t_sched: float,
            t_sim: float, path: str, extra: dict | None = None) -> None:
    """Write the readout and the summary of the run; assert it passed.
    ``cyc``: the cycle counters since reset (``cycles``, ``wload_cycles``, ...),
    ``c0`` the cycle count the sample cycles are counted from."""
    np.save(plan["readout"], sb.readout)
    sched, spikes = nr.sched, nr.spikes
    counts = sched.counts
    failure = None
    if problems or timeout or not sb.ok:
        failure = ("reset contract: " + "; ".join(problems) + "\n" if problems else "") \
            + (f"TIMEOUT: {timeout}\n" if timeout else "") + sb.report()
    first = sb.sample_first_cycle
    summary = {
        "ok": failure is None, "failure": failure, "checked": sb.counts(),
        **cyc,
        "wl_hidden_beats": cyc.get("wl_beats", 0) - cyc.get("wl_exposed_beats", 0),
        "synapses": counts.get("synapses", 0),
        "sample_first_cycle": (first - c0).tolist(),
        "sample_mismatches": sb.sample_mismatches.tolist(),
        "samples": int(spikes.shape[0]), "timesteps": int(spikes.shape[1]),
        "tiles": counts["tiles"], "events": counts["events"], "commands": counts["commands"],
        "beats": counts["beats"], "weight_loads": counts["weight_loads"],
        "weights": sched.allocation.weights, "allocation": sched.allocation.describe(),
        "schedule_seconds": t_sched, "sim_seconds": t_sim, "path": path, **(extra or {}),
    }
    atomic_write({Path(plan["summary"]): json.dumps(summary, indent=1)})
    assert failure is None, failure


if cocotb is not None:

    @cocotb.test()
    async def demo_network(dut):
        """Per-cycle path: reset, then the whole schedule through the BFM, fully checked."""
        from cocotb.clock import Clock

        from tb.bfm import BfmTimeout, CoreBfm
        from tb.plan import load_plan
        from tb.session import cpu_seconds

        plan = load_plan()
        nr, sb, t_sched = _setup(plan)
        bfm = CoreBfm(dut, nr.layouts, nr.cfg, plan.get("seed", 1),
                      stress=plan.get("stress", False), stall_limit=plan.get("stall_limit", 5000))
        sb._stats = bfm.stats   # sample_first_cycle from the BFM's cycle count
        oc = None
        if getattr(nr.sched.allocation, "membranes", "resident") == "spilled":
            from tb.offchip import OffChip
            oc = bfm.offchip = OffChip(nr.sched)
        bfm.drive_all_idle(rst=1)
        Clock(dut.clk, 10, unit="ns").start()
        problems = await bfm.reset(cycles=3)
        st = bfm.stats
        c0 = st.cycles
        timeout = None
        t_sim, cpu0 = time.monotonic(), cpu_seconds()
        if not problems:
            try:
                await bfm.run(nr.ops, sb, stop_after=plan.get("max_report", 8))
            except BfmTimeout as e:
                timeout = str(e)
            if timeout is None and sb.ok:
                sb.missing_beats()
            if oc is not None and timeout is None and oc.spills_checked != len(nr.ops.spills):
                sb._fail("spill", f"{oc.spills_checked} mspill beats received, "
                                  f"{len(nr.ops.spills)} expected")
        t_sim = time.monotonic() - t_sim
        extra = {"sim_cpu_seconds": cpu_seconds() - cpu0}
        if oc is not None:
            extra["offchip"] = oc.summary()
            extra["transfers"] = oc.transfers()
        cyc = {"cycles": st.cycles - c0, "wload_cycles": st.wload_cycles,
               "readback_cycles": st.readback_cycles, "gap_cycles": st.gap_cycles,
               "backpressure_cycles": st.backpressure_cycles, "wl_beats": st.wl_beats,
               "wl_exposed_beats": st.wl_exposed_beats, "wl_overlap_cycles": st.wl_overlap_cycles}
        _finish(plan, nr, sb, problems, timeout, c0, cyc, t_sched, t_sim, "bfm", extra)

    @cocotb.test()
    async def demo_network_bulk(dut):
        """Bulk path: reset ``tb_bulk_top``, run the program in blocks, check every
        captured beat and membrane row (tb/bulk.py's :class:`BulkRunner`)."""
        from types import SimpleNamespace

        from tb.bulk import BulkRunner
        from tb.bulk_top import END_CYCLES, START_CYCLES
        from tb.plan import load_plan
        from tb.session import cpu_seconds

        plan = load_plan()
        plan = dict(plan, seed=plan.get("seed", 1), stress=plan.get("stress", False))
        nr, sb, t_sched = _setup(plan)
        # BulkRunner reads the plan, the flattened operations and the layouts of a Session
        r = BulkRunner(dut, SimpleNamespace(plan=plan, cfg=nr.cfg, ops=nr.ops,
                                            layouts=nr.layouts))
        oc = None
        if getattr(nr.sched.allocation, "membranes", "resident") == "spilled":
            from tb.offchip import OffChip
            oc = r.offchip = OffChip(nr.sched)
        problems = await r.reset()
        c0 = r.counters()
        timeout = None
        t_sim, cpu0 = time.monotonic(), cpu_seconds()
        if not problems:
            timeout = await r.run(sb, stop_after=plan.get("max_report", 8))
            if timeout is None and sb.ok:
                sb.missing_beats()
        t_sim = time.monotonic() - t_sim
        c1 = r.counters()
        cyc = {k: c1[k] - c0[k] for k in c1}
        # the cycles the top's state machine adds (one block, no pause: the
        # per-cycle path's counts exactly; DEMO_DEPTHS hold the whole test set)
        prof = getattr(r, "profile", {})
        cyc["cycles"] -= START_CYCLES + END_CYCLES
        extra = {"sim_cpu_seconds": cpu_seconds() - cpu0, "bulk_cpu_seconds": prof,
                 "blocks": prof.get("blocks", 0), "pauses": prof.get("pauses", 0)}
        if oc is not None:
            extra["offchip"] = oc.summary()
            extra["transfers"] = oc.transfers()
        _finish(plan, nr, sb, problems, timeout, c0["cycles"] + START_CYCLES, cyc, t_sched, t_sim,
                "bulk", extra)
