"""Bus-functional model of ``lif_pe_array`` for cocotb 2.x.

One coroutine (:meth:`CoreBfm.run`) drives all the interfaces, because every
awaited trigger costs tens of microseconds in Verilator. Each clock cycle it

1. waits for the falling edge and drives the inputs for the next rising edge:
   the command stream (with random gaps: ``valid`` low for random cycles),
   concurrently the weight-load stream (its own random gaps; each beat
   fenced on the number of commands accepted), ``dbg_addr`` for membrane
   read-back, and a random ``out__ready`` (backpressure);
2. waits for ``ReadOnly`` and samples the settled outputs, which are exactly
   what the next rising edge will see: a transfer happens on a stream whose
   ``valid`` and ``ready`` are both 1 now.

The work is made by :func:`flatten` from a :class:`golden.schedule.Schedule`
(docs/schedule.md "Driving a schedule"): an :class:`Ops`, the main list of
operations

* ``(IDLE, n)``  wait until ``busy`` = 0 (sampled in a cycle without a
  command offered) and ``n`` beats were received; check ``error`` = 0;
* ``(WAITWL, w)`` wait until ``w`` weight-load beats were accepted (the
  cycles spent here are the *exposed* weight-load cycles, ``wload_cycles``);
* ``(CMD, payload)`` one command beat;
* ``(RB, timestep_end)`` read back every membrane row of a TimestepEnd
  through ``dbg_addr``/``dbg_data`` (one row per cycle, pipelined);

and its weight-load stream ``Ops.wl`` of ``(payload, fence)``: beat ``j`` is
presented only after ``fence`` command beats were accepted.

Spilled membranes (docs/schedule.md "Spilled membranes"): the main stream
also holds ``(MARK, pass)`` (the host reads the pass's input map: counted by
:class:`tb.offchip.OffChip`) and ``(WAITMF, f)`` (wait until ``f`` fill beats
were accepted, before the pass's first command); ``Ops.mf`` is the ``mfill``
stream, driven concurrently, each beat presented only once the beats of its
pass's ``fills_after`` item were received, with its data taken from the
off-chip memory; every ``mspill`` beat (random ``mspill__ready`` under
stress) is checked against ``Ops.spills`` in order.

Every received beat goes to the :class:`~tb.scoreboard.Scoreboard`. A
watchdog ends the run when no progress is made for ``stall_limit`` cycles
(a dropped beat or a hung core) and says what it was waiting for.

X/Z (meaningful on Icarus; always false on two-state Verilator, same code):
every control output the BFM samples anyway (``busy`` and ``out__valid``
every cycle, ``cmd__ready``/``wload__ready`` while offering) must be 0/1,
and at every idle point (``busy`` = 0, before a pass that waits idle and before membrane
read-back) every output port must be. An X/Z ends the run at once with
:meth:`Scoreboard.unresolved` (one line: port, value, cycle, sim time,
operation; the report adds the repro command), never as a watchdog timeout.
:func:`exchange` raises :class:`BfmUnresolved` instead.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from itertools import chain, repeat

import numpy as np

from gen.emit import PORT_NAMES
from golden.schedule import LayerPass, TimestepEnd

from .payload import StreamLayout, unpack_binstr, unpack_bits
from golden.errors import ProjectError

__all__ = ["Ops", "DRIVER_FAULTS", "ScheduleError", "WAITWL", "flatten", "flatten_scalar", "pack_commands", "pack_weight_loads", "CoreBfm", "Backpressure", "BfmTimeout", "BfmUnresolved", "PORTS"]

#: Short key -> port name (gen.emit.PORT_NAMES, built from the core's signature;
#: Amaranth flattens stream members with "__"): ``cmd_valid`` -> ``cmd__valid``,
#: ``wl_payload`` -> ``wload__payload``, ...
PORTS = {name.replace("wload__", "wl_").replace("__", "_"): name for name in PORT_NAMES}
OUTPUTS = ("cmd_ready", "out_valid", "out_payload", "wl_ready", "dbg_data", "busy", "error",
           "mfill_ready", "mspill_valid")

IDLE, WL, CMD, RB, WAITWL, WAITMF, MARK = 0, 1, 2, 3, 4, 5, 6


class BfmTimeout(ProjectError, RuntimeError):
    """The core made no progress for too long."""


class BfmUnresolved(ProjectError, RuntimeError):
    """A sampled output held X/Z (raised by :func:`exchange`; :meth:`CoreBfm.run`
    reports it through the scoreboard instead)."""


class Ops(list):
    """The flattened stimulus: this list is the **main operation stream**
    (``(kind, arg)`` pairs, see the module docstring) and :attr:`wl` the
    **weight-load stream**, driven concurrently with it.

    ``wl[j] = (payload, fence)``: beat ``j`` of the ``wload`` stream may be
    presented only after ``fence`` command beats (counted from the start of
    the run) were accepted. Fences never decrease (a pass's loads never
    overtake an earlier pass's). The main stream's ``(WAITWL, w)`` waits
    until ``w`` weight-load beats were accepted.
    """

    def __init__(self, ops=(), wl=()):
        super().__init__(ops)
        self.wl = list(wl)
        # spilled membranes (docs/schedule.md "Spilled membranes"): the mfill
        # stream [(MemRow, fence in beats received, pass key)], the expected
        # mspill beats [(MemRow, pass key)], the traffic key of every wl beat
        # and of every expected out beat
        self.mf: list = []
        self.spills: list = []
        self.wl_key: list = []
        self.beat_key: list = []
        # per fill: the index in ``spills`` of the spill it reads back (-1: none),
        # and off-chip row -> index of its last spill so far (while flattening)
        self.mf_src: list = []
        self.last_spill: dict = {}


def _mem_ops(ops: Ops, item, fills_fence: int, n_beats: int) -> None:
    """Append a pass's fills / expected spills / traffic keys; ``(MARK, item)``
    and ``(WAITMF, fills so far)`` go on the main stream before its commands."""
    from .offchip import pass_key
    key = pass_key(item)
    ops.mf.extend((f, fills_fence, key) for f in getattr(item, "fills", []))
    # the spill each fill reads back: the last one of its off-chip row before this pass
    ops.mf_src.extend(ops.last_spill.get(f.vrow, -1) for f in getattr(item, "fills", []))
    for sp in getattr(item, "spills", []):
        ops.last_spill[sp.vrow] = len(ops.spills)
        ops.spills.append((sp, key))
    ops.beat_key.extend([key] * len(item.beats))
    ops.append((MARK, item))
    if getattr(item, "fills", []):
        ops.append((WAITMF, len(ops.mf)))


def _beats_through(sched) -> dict:
    """item index -> beats of items 0..index (the fills_after fences)."""
    out, nb = {}, 0
    for idx, it in enumerate(sched.items):
        if isinstance(it, LayerPass):
            nb += len(it.beats)
        out[idx] = nb
    return out


def _wl_keys(sched) -> list:
    """Traffic key of every weight-load beat, in stream order."""
    keys = []
    static = sched.allocation.block_base
    for (i, k), _ in static.items():
        keys.extend([(0, i, k, -1)] * sched.allocation.plans[i].blocks[k].rows)
    for it in sched.items:
        if isinstance(it, LayerPass) and it.weight_loads:
            keys.extend([(it.t, it.layer, it.chunk, -1)] * len(it.weight_loads))
    return keys


#: driver faults of :func:`flatten` (fault injection, tb/test_fault_injection.py)
DRIVER_FAULTS = ("ignore_loads_after",)


class ScheduleError(ProjectError, ValueError):
    """A schedule whose fences cannot be driven (``loads_after`` out of order)."""


def _fences(sched, fault: str | None):
    """Per item: (wait_idle, fence of its loads, cumulative weight loads through it).

    The fence of a pass's loads is the number of commands up to and including
    item ``loads_after`` (0 for -1), raised to the previous pass's fence."""
    if fault is not None and fault not in DRIVER_FAULTS:
        raise ScheduleError(f"unknown driver fault {fault!r} (known: {', '.join(DRIVER_FAULTS)})")
    cum_cmds: dict = {}
    nc = fence = 0
    nw = len(sched.static_weight_loads)
    out = []
    for idx, item in enumerate(sched.items):
        if not isinstance(item, LayerPass):
            out.append(None)
            continue
        la = getattr(item, "loads_after", -1)
        if item.weight_loads and la >= 0:
            if la not in cum_cmds:
                raise ScheduleError(f"sched.items[{idx}].loads_after = {la} is not an earlier "
                                    f"LayerPass")
            fence = max(fence, cum_cmds[la])
        nw += len(item.weight_loads)
        nc += len(item.commands)
        cum_cmds[idx] = nc
        out.append((bool(getattr(item, "wait_idle", True)), 0 if fault else fence, nw))
    return out


def flatten(sched, layouts: dict[str, StreamLayout], fault: str | None = None) -> tuple[Ops, list]:
    """Schedule -> (:class:`Ops`, expected beats in order).

    Main stream per LayerPass (docs/schedule.md "Driving a schedule"):
    ``(IDLE, beats so far)`` if ``wait_idle`` (left out when no command was
    sent since the last IDLE), ``(WAITWL, weight loads up to
    and including this pass)`` if that number grew, then its commands; per
    TimestepEnd ``IDLE`` and ``RB``. The weight-load stream holds
    ``sched.static_weight_loads`` (fence 0) and every pass's loads in item
    order, fenced by ``loads_after`` (see :class:`Ops`). ``fault =
    "ignore_loads_after"`` drops every fence (fault injection: rows are
    rewritten under in-flight EVENTs). Raises :class:`ScheduleError` for a
    ``loads_after`` that is not an earlier LayerPass.

    Payloads are packed with the vectorised :meth:`StreamLayout.pack_rows`
    (each weight-load list that several passes share is packed once); the
    result equals :func:`flatten_scalar`'s (tb/test_bulk.py checks it).
    """
    cmd_l, wl_l = layouts["cmd"], layouts["wload"]
    info = _fences(sched, fault)
    # pass 1: every Command in order, every distinct weight-load list once
    cmds: list = []
    wl_first: dict = {}        # id(list of WeightLoad) -> index of its first packed word
    wls: list = []
    loads = [sched.static_weight_loads] + [it.weight_loads for it in sched.items
                                           if isinstance(it, LayerPass)]
    for lst in loads:
        if lst and id(lst) not in wl_first:
            wl_first[id(lst)] = len(wls)
            wls.extend(lst)
    for it in sched.items:
        if isinstance(it, LayerPass):
            cmds.extend(it.commands)
    cmd_words = pack_commands(cmd_l, cmds)
    wl_words = pack_weight_loads(wl_l, wls)
    # pass 2: the two streams
    ops = Ops()
    wl = ops.wl
    beats: list = []
    nc = 0
    waited = 0
    idle = False      # an IDLE was emitted and no command since

    def add_loads(lst, fence):
        k = wl_first[id(lst)]
        wl.extend(zip(wl_words[k:k + len(lst)], repeat(fence)))

    thru = _beats_through(sched)
    spilled = getattr(sched.allocation, "membranes", "resident") == "spilled"
    if sched.static_weight_loads:
        ops.append((IDLE, 0))
        idle = True
        add_loads(sched.static_weight_loads, 0)
    for item, inf in zip(sched.items, info):
        if isinstance(item, LayerPass):
            wait_idle, fence, nw = inf
            if item.weight_loads:
                add_loads(item.weight_loads, fence)
            if wait_idle and not idle:   # (no command since the last IDLE: still idle)
                ops.append((IDLE, len(beats)))
                idle = True
            if nw > waited:
                ops.append((WAITWL, nw))
                waited = nw
            if spilled:
                _mem_ops(ops, item, thru.get(getattr(item, "fills_after", -1), 0), len(beats))
            ops.extend(zip(repeat(CMD), cmd_words[nc:nc + len(item.commands)]))
            idle = idle and not item.commands
            nc += len(item.commands)
            beats.extend(item.beats)
        elif isinstance(item, TimestepEnd):
            if not idle:
                ops.append((IDLE, len(beats)))
                idle = True
            if item.membrane:
                ops.append((RB, item))
    if len(wl) > waited:
        ops.append((WAITWL, len(wl)))
    ops.append((IDLE, len(beats)))
    ops.wl_key = _wl_keys(sched)
    return ops, beats


def pack_commands(cmd_l: StreamLayout, cmds) -> list[int]:
    """``cmd`` payload ints of :class:`golden.schedule.Command` s (vectorised)."""
    if not cmds:
        return []
    names = ("op", "row", "base", "mode", "first", "spill")
    if tuple(cmds[0]._fields) != names:
        raise TypeError(f"pack_commands: Command fields {cmds[0]._fields}, expected {names}")
    # one flat iterator over the tuples: 5x faster than np.array(list of tuples)
    a = np.fromiter(chain.from_iterable(cmds), dtype=np.int64,
                    count=len(names) * len(cmds)).reshape(len(cmds), len(names))
    return cmd_l.pack_rows(len(cmds), **{k: a[:, i] for i, k in enumerate(names)})


def pack_weight_loads(wl_l: StreamLayout, wls) -> list[int]:
    """``wload`` payload ints of :class:`golden.schedule.WeightLoad` s (vectorised)."""
    if not wls:
        return []
    return wl_l.pack_rows(len(wls), addr=np.array([w.addr for w in wls], dtype=np.int64),
                          data=np.stack([np.asarray(w.data, dtype=np.int64) for w in wls]))


def flatten_scalar(sched, layouts: dict[str, StreamLayout],
                   fault: str | None = None) -> tuple[Ops, list]:
    """:func:`flatten` with the scalar :meth:`StreamLayout.pack`, one payload
    at a time: the independent oracle of the vectorised packer."""
    cmd_l, wl_l = layouts["cmd"], layouts["wload"]
    ops = Ops()
    beats: list = []
    waited = 0
    idle = False
    thru = _beats_through(sched)
    spilled = getattr(sched.allocation, "membranes", "resident") == "spilled"
    if sched.static_weight_loads:
        ops.append((IDLE, 0))
        idle = True
        ops.wl.extend((wl_l.pack(addr=w.addr, data=w.data), 0) for w in sched.static_weight_loads)
    for item, inf in zip(sched.items, _fences(sched, fault)):
        if isinstance(item, LayerPass):
            wait_idle, fence, nw = inf
            ops.wl.extend((wl_l.pack(addr=w.addr, data=w.data), fence) for w in item.weight_loads)
            if wait_idle and not idle:   # (no command since the last IDLE: still idle)
                ops.append((IDLE, len(beats)))
                idle = True
            if nw > waited:
                ops.append((WAITWL, nw))
                waited = nw
            if spilled:
                _mem_ops(ops, item, thru.get(getattr(item, "fills_after", -1), 0), len(beats))
            ops.extend((CMD, cmd_l.pack(op=c.op, row=c.row, base=c.base, mode=c.mode,
                                        first=c.first, spill=c.spill)) for c in item.commands)
            idle = idle and not item.commands
            beats.extend(item.beats)
        elif isinstance(item, TimestepEnd):
            if not idle:
                ops.append((IDLE, len(beats)))
                idle = True
            if item.membrane:
                ops.append((RB, item))
    if len(ops.wl) > waited:
        ops.append((WAITWL, len(ops.wl)))
    ops.append((IDLE, len(beats)))
    ops.wl_key = _wl_keys(sched)
    return ops, beats


class Backpressure:
    """Random ``out__ready``: phases of random length with different ready
    probabilities (always ready, light, heavy, full stall)."""

    LEVELS = (1.0, 1.0, 0.85, 0.5, 0.15, 0.0)

    def __init__(self, rng: random.Random, enabled: bool = True):
        self.rng, self.enabled = rng, enabled
        self.left, self.p = 0, 1.0

    def next(self) -> int:
        if not self.enabled:
            return 1
        if self.left <= 0:
            self.p = self.rng.choice(self.LEVELS)
            self.left = self.rng.randint(4, 40) if self.p == 0.0 else self.rng.randint(20, 300)
        self.left -= 1
        return 1 if self.p >= 1.0 or self.rng.random() < self.p else 0


@dataclass
class Stats:
    cycles: int = 0
    wload_cycles: int = 0       # exposed: the command stream waited for weight loads (WAITWL)
    wl_beats: int = 0           # weight-load beats accepted
    wl_valid_cycles: int = 0    # cycles with wload__valid = 1
    wl_gap_cycles: int = 0      # random gaps of the weight-load stream
    wl_overlap_cycles: int = 0  # cycles with a cmd and a wload transfer on the same edge
    wl_exposed_beats: int = 0   # weight-load beats accepted while the command stream waited
    readback_cycles: int = 0
    gap_cycles: int = 0
    backpressure_cycles: int = 0
    commands: int = 0
    tiles: int = 0


class CoreBfm:
    """Drives one ``lif_pe_array`` instance; see the module docstring."""

    def __init__(self, dut, layouts: dict[str, StreamLayout], cfg, seed: int, *,
                 stress: bool = True, stall_limit: int = 5000):
        self.dut, self.layouts, self.cfg = dut, layouts, cfg
        self.rng = random.Random(seed)
        self.stress = stress
        self.stall_limit = stall_limit
        self.sig = {}
        missing = []
        for key, name in PORTS.items():
            try:
                self.sig[key] = getattr(dut, name)
            except AttributeError:
                missing.append(name)
        if missing:
            raise RuntimeError(f"the DUT lacks port(s) {', '.join(missing)} of docs/interface.md")
        self.stats = Stats()
        self._driven: dict = {}
        out = layouts["out"]
        self._out_fields = [(f.name, f) for f in out.fields.values()]
        self.mem_words = cfg.slots
        self.mem_width = cfg.mem_width
        #: tb.offchip.OffChip of a spilled-membrane run (set by the caller)
        self.offchip = None

    # ------------------------------------------------------------- helpers
    def drive(self, key: str, value: int) -> None:
        """Write an input only when it changes (each write is a VPI call)."""
        if self._driven.get(key) != value:
            self.sig[key].value = value
            self._driven[key] = value

    def drive_all_idle(self, rst: int) -> None:
        self._driven.clear()
        for key, v in (("rst", rst), ("cmd_valid", 0), ("cmd_payload", 0), ("wl_valid", 0),
                       ("wl_payload", 0), ("out_ready", 0), ("dbg_addr", 0), ("mfill_valid", 0),
                       ("mfill_payload", 0), ("mspill_ready", 1)):
            self.drive(key, v)

    def decode_beat(self, word: int) -> dict:
        got = {}
        for name, f in self._out_fields:
            bits = (word >> f.offset) & ((1 << f.width) - 1)
            got[name] = unpack_bits(bits, f.count, f.elem_width, f.signed) if f.is_vector else bits
        return got

    def unresolved_outputs(self) -> list[str]:
        """Outputs that hold X or Z right now (meaningful on Icarus)."""
        bad = []
        for key in OUTPUTS:
            v = self.sig[key].value
            if not v.is_resolvable:
                bad.append(f"{PORTS[key]}={v}")
        return bad

    def unresolved_message(self, what: str, where: str = "", cycle: int | None = None) -> str:
        """One line for an X/Z finding; ``what`` is e.g. ``"busy=X"``."""
        try:
            from cocotb.utils import get_sim_time
            t = f", sim time {get_sim_time('ns'):g} ns"
        except Exception:  # pragma: no cover - outside a simulator
            t = ""
        cyc = self.stats.cycles if cycle is None else cycle
        return f"X/Z on output {what} at cycle {cyc}{t}" + (f" ({where})" if where else "")

    # --------------------------------------------------------------- reset
    async def reset(self, cycles: int = 3) -> list[str]:
        """Hold ``rst`` for ``cycles`` rising edges; returns contract
        violations seen (a beat offered during reset, X/Z outputs after it)."""
        from cocotb.triggers import FallingEdge, ReadOnly
        clk = self.sig["clk"]
        problems = []
        await FallingEdge(clk)
        self.drive_all_idle(rst=1)
        for k in range(cycles):
            await FallingEdge(clk)
            self.stats.cycles += 1
            if k == cycles - 1:
                self.drive("rst", 0)
            await ReadOnly()
            # every ReadOnly here follows a rising edge that sampled rst = 1
            if self.sig["out_valid"].value.is_resolvable and int(self.sig["out_valid"].value):
                problems.append(f"out__valid = 1 while in reset (cycle {k})")
        bad = self.unresolved_outputs()
        if bad:
            problems.append("outputs not 0/1 after reset: " + ", ".join(bad))
        elif int(self.sig["error"].value):
            problems.append(f"error = {int(self.sig['error'].value)} after reset")
        return problems

    # ----------------------------------------------------------------- run
    async def run(self, ops: list, sb, *, abort_at_op: int | None = None,
                  stop_after: int | None = None) -> None:
        """Execute ``ops`` (an :class:`Ops` of :func:`flatten`: the main
        stream and, concurrently, its weight-load stream ``ops.wl``),
        checking beats with ``sb``.

        Weight-load beat ``j`` is presented once ``ops.wl[j][1]`` commands
        were accepted (on an earlier edge), with random gaps under stress;
        ``(WAITWL, w)`` holds the main stream until ``w`` weight-load beats
        were accepted. With ``abort_at_op`` the run stops (mid-stream, valids
        left as they are) once that many main operations have completed;
        with ``stop_after`` it stops once the scoreboard counted that many
        mismatches. Raises :class:`BfmTimeout` when the watchdog fires.
        Returns at once after reporting an X/Z output with ``sb.unresolved``
        (see the module docstring); ``sb.unresolved_text`` is then set.
        """
        from cocotb.triggers import FallingEdge, ReadOnly
        sig, rng, st = self.sig, self.rng, self.stats
        clk = sig["clk"]
        fe, ro = FallingEdge(clk), ReadOnly()
        bp = Backpressure(random.Random(rng.random()), self.stress)
        wl_rng = random.Random(rng.random())
        gap_p = 0.25 if self.stress else 0.0
        n = len(ops)
        wls = getattr(ops, "wl", [])
        nwl = len(wls)
        mfs, exp_sp = getattr(ops, "mf", []), getattr(ops, "spills", [])
        wl_key, beat_key = getattr(ops, "wl_key", []), getattr(ops, "beat_key", [])
        oc = self.offchip
        mf_l, sp_l = self.layouts.get("mfill"), self.layouts.get("mspill")
        nmf = len(mfs)
        mi = n_mf = sp_i = 0       # next fill beat / fills accepted / spills received
        mf_v = 0
        mf_gap = 0
        sp_bp = Backpressure(random.Random(rng.random()), self.stress)
        i = j = 0                  # next main operation / next weight-load beat
        n_cmd = n_wl = 0           # command / weight-load beats accepted in this run
        cmd_v = wl_v = 0
        gap = wl_gap = 0
        idle_ok = False
        rb = None                  # [TimestepEnd, sorted rows, index of the next row to drive]
        prev_row = cur_row = None  # dbg row driven in the previous / this cycle
        stall = 0
        # (the last operation is an IDLE: busy = 0 includes the mspill register,
        # so every spill was received before the loop ends)
        while i < n:
            if abort_at_op is not None and i >= abort_at_op:
                return
            if stop_after is not None and sb.n_mismatches >= stop_after:
                return
            await fe
            st.cycles += 1
            # ------------------------------------------------------- drive
            waiting_wl = False
            while i < n and not cmd_v and rb is None:
                kind, arg = ops[i]
                if kind == IDLE:
                    if not (idle_ok and sb.next_beat >= arg):
                        break
                    bad = self.unresolved_outputs()
                    if bad:
                        sb.unresolved(self.unresolved_message(
                            ", ".join(bad), f"core idle, operation {i} of {n}"))
                        return
                    err = int(sig["error"].value)
                    if err:
                        sb.error_flag(err, f"at operation {i} (cycle {st.cycles})")
                    i += 1
                    stall = 0
                elif kind == WAITWL:
                    if n_wl < arg:
                        waiting_wl = True
                        break
                    i += 1
                    stall = 0
                elif kind == WAITMF:
                    if n_mf < arg:
                        break
                    i += 1
                    stall = 0
                elif kind == MARK:
                    if oc is not None:
                        oc.spike_in(arg)
                    i += 1
                elif kind == CMD:
                    if gap:
                        gap -= 1
                        st.gap_cycles += 1
                    else:
                        self.drive("cmd_payload", arg)
                        cmd_v = 1
                    break
                else:  # RB
                    rb = [arg, sorted(arg.membrane), 0]
                    break
            # weight-load stream: fence on the commands accepted on earlier edges
            if not wl_v and j < nwl:
                if wl_gap:
                    wl_gap -= 1
                    st.wl_gap_cycles += 1
                elif n_cmd >= wls[j][1]:
                    self.drive("wl_payload", wls[j][0])
                    wl_v = 1
            # membrane fill stream: fenced on the beats received; data from the off-chip memory
            if not mf_v and mi < nmf:
                if mf_gap:
                    mf_gap -= 1
                elif sb.next_beat >= mfs[mi][1]:
                    row = mfs[mi][0]
                    data = oc.fill(row, mfs[mi][2]) if oc is not None else row.data
                    self.drive("mfill_payload", mf_l.pack(addr=row.addr, data=data))
                    mf_v = 1
            self.drive("cmd_valid", cmd_v)
            self.drive("wl_valid", wl_v)
            self.drive("mfill_valid", mf_v)
            sp_ready = sp_bp.next() if exp_sp else 1
            self.drive("mspill_ready", sp_ready)
            if rb is not None and rb[2] < len(rb[1]):
                cur_row = rb[1][rb[2]]
                self.drive("dbg_addr", cur_row)
                rb[2] += 1
            ready = bp.next()
            self.drive("out_ready", ready)
            if waiting_wl:
                st.wload_cycles += 1
            elif rb is not None:
                st.readback_cycles += 1
            if wl_v:
                st.wl_valid_cycles += 1
            # ------------------------------------------------------ sample
            await ro
            # X/Z: a 1-bit is_resolvable is as cheap as the old `== 1`
            v = sig["busy"].value
            if not v.is_resolvable:
                return self._x(sb, "busy", v, i, n)
            busy = int(v)
            cmd_fire = False
            if cmd_v:
                v = sig["cmd_ready"].value
                if not v.is_resolvable:
                    return self._x(sb, "cmd_ready", v, i, n)
                cmd_fire = bool(int(v))
            if cmd_fire:
                st.commands += 1
                n_cmd += 1
                cmd_v = 0
                i += 1
                stall = 0
                if gap_p and rng.random() < gap_p:
                    gap = rng.randint(1, 6)
            if wl_v:
                v = sig["wl_ready"].value
                if not v.is_resolvable:
                    return self._x(sb, "wl_ready", v, i, n)
                if int(v):
                    if oc is not None and j < len(wl_key):
                        oc.weight(wl_key[j])
                    wl_v = 0
                    j += 1
                    n_wl += 1
                    st.wl_beats += 1
                    st.wl_overlap_cycles += cmd_fire
                    st.wl_exposed_beats += waiting_wl
                    stall = 0
                    if gap_p and wl_rng.random() < gap_p:
                        wl_gap = wl_rng.randint(1, 6)
            if mf_v:
                v = sig["mfill_ready"].value
                if not v.is_resolvable:
                    return self._x(sb, "mfill_ready", v, i, n)
                if int(v):
                    mf_v = 0
                    mi += 1
                    n_mf += 1
                    stall = 0
                    if gap_p and wl_rng.random() < gap_p:
                        mf_gap = wl_rng.randint(1, 6)
            v = sig["mspill_valid"].value
            if not v.is_resolvable:
                return self._x(sb, "mspill_valid", v, i, n)
            if int(v) and sp_ready:
                word = sig["mspill_payload"].value.to_unsigned()
                fa, fd = sp_l.fields["addr"], sp_l.fields["data"]
                addr = (word >> fa.offset) & ((1 << fa.width) - 1)
                data = unpack_bits((word >> fd.offset) & ((1 << fd.width) - 1), fd.count,
                                   fd.elem_width, fd.signed)
                if sp_i >= len(exp_sp):
                    sb._fail("spill", f"unexpected mspill beat (row {addr}) after the "
                                      f"{len(exp_sp)} expected")
                else:
                    sb.spill_rows_checked += 1
                    sb.spill_words_checked += len(data)
                    if not oc.spill(exp_sp[sp_i][0], exp_sp[sp_i][1], addr, data):
                        sb._fail("spill", oc.spill_mismatches[-1] if oc.spill_mismatches else
                                 f"spill {sp_i} differs")
                sp_i += 1
                stall = 0
            v = sig["out_valid"].value
            if not v.is_resolvable:
                return self._x(sb, "out_valid", v, i, n)
            if int(v):
                if ready and oc is not None and sb.next_beat < len(beat_key):
                    oc.spike_out(beat_key[sb.next_beat])
                if ready:
                    v = sig["out_payload"].value
                    sb.check_beat(self.decode_beat(v.to_unsigned()) if v.is_resolvable
                                  else self.layouts["out"].unpack_logic(v.binstr))
                    stall = 0
                else:
                    st.backpressure_cycles += 1
            if rb is not None and prev_row is not None:
                v = sig["dbg_data"].value
                got = unpack_bits(v.to_unsigned(), self.mem_words, self.mem_width, True) \
                    if v.is_resolvable else \
                    unpack_binstr(v.binstr, 0, self.mem_words, self.mem_width, True)
                sb.check_membrane(rb[0], prev_row, got)
                if prev_row == rb[1][-1]:
                    rb = None
                    i += 1
                    stall = 0
            prev_row, cur_row = cur_row, None
            idle_ok = busy == 0 and not self._driven.get("cmd_valid")
            stall += 1
            if stall > self.stall_limit:
                kind, arg = ops[i] if i < n else (IDLE, sb.beats_expected)
                if kind == WAITWL:
                    fence = wls[j][1] if j < nwl else None
                    what = (f"weight-load beats ({n_wl} of {arg} accepted; the next beat's "
                            f"fence is {fence} commands, {n_cmd} accepted)")
                else:
                    what = {IDLE: f"the core to become idle with {arg} beats received "
                                  f"(busy={busy}, beats received {sb.next_beat})",
                            CMD: "cmd__ready", RB: "membrane read-back"}[kind]
                raise BfmTimeout(f"no progress for {self.stall_limit} cycles at operation {i} "
                                 f"of {n} (cycle {st.cycles}): waiting for {what}")

    def _x(self, sb, key: str, v, i: int, n: int) -> None:
        """Report X/Z on ``key`` (sampled in ``run``) to the scoreboard."""
        sb.unresolved(self.unresolved_message(f"{PORTS[key]}={v}", f"operation {i} of {n}"))


async def exchange(bfm: CoreBfm, payloads: list, n_beats: int, max_cycles: int = 200) -> tuple:
    """Send raw command payloads back to back with ``out__ready`` = 1 and
    collect beats until ``n_beats`` arrived and the core is idle (or
    ``max_cycles`` passed). Returns ``(beats, error)``; for directed tests."""
    from cocotb.triggers import FallingEdge, ReadOnly
    sig = bfm.sig
    beats, i, idle_cycles = [], 0, 0
    for _ in range(max_cycles):
        await FallingEdge(sig["clk"])
        bfm.stats.cycles += 1
        if i < len(payloads):
            bfm.drive("cmd_payload", payloads[i])
        bfm.drive("cmd_valid", int(i < len(payloads)))
        bfm.drive("out_ready", 1)
        await ReadOnly()
        got = {}
        for key in ("cmd_ready", "out_valid", "busy"):
            v = sig[key].value
            if not v.is_resolvable:
                raise BfmUnresolved(bfm.unresolved_message(f"{PORTS[key]}={v}", "exchange"))
            got[key] = int(v)
        if i < len(payloads) and got["cmd_ready"]:
            i += 1
        if got["out_valid"]:
            v = sig["out_payload"].value
            if not v.is_resolvable:
                raise BfmUnresolved(bfm.unresolved_message(f"out__payload={v}",
                                                           "exchange, out__valid = 1"))
            beats.append(bfm.decode_beat(v.to_unsigned()))
        idle_cycles = idle_cycles + 1 if (i == len(payloads) and got["busy"] == 0) else 0
        if len(beats) >= n_beats and idle_cycles > 2:
            break
    bad = bfm.unresolved_outputs()
    if bad:
        raise BfmUnresolved(bfm.unresolved_message(", ".join(bad), "end of exchange"))
    return beats, int(sig["error"].value)
