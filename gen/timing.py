"""Cycle timing of ``lif_pe_array`` (docs/interface.md "Timing"), defined once.

* :func:`tile_period` -- steady-state cycles per tile of a stream whose tiles
  have ``events`` EVENTs each: ``max(events + 1, groups + 1)`` (the command
  side needs ``E + 1`` cycles per tile, the LIF stage ``N + 1``; the two
  accumulator banks overlap them). :data:`TILE_PERIOD_FORMULA` is the same
  rule as the text the manifest carries; a test evaluates it against the
  function.
* :func:`cycles` -- every latency/throughput number of the manifest's
  ``cycles`` object for one configuration.
* :func:`stream_cycles` -- the cycle count of a whole command and weight-load
  stream (passes of tiles, weight loads fenced as in docs/schedule.md) driven
  by an ideal host (no gaps, ``out__ready`` held at 1), from the same rules.

Used by :mod:`gen.emit` (manifest), :mod:`tb.throughput` (expected period)
and the timing tests; nothing else restates these numbers.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

from golden.config import HwConfig
from golden.encoding import Op

__all__ = ["tile_period", "TILE_PERIOD_FORMULA", "cycles", "PassTiming", "stream_cycles"]

#: :func:`tile_period` as a Python expression in ``events`` and ``groups``.
TILE_PERIOD_FORMULA = "max(events + 1, groups + 1)"


def tile_period(events: int, groups: int) -> int:
    """Steady-state period per tile, in cycles, with ``out__ready`` held at 1."""
    return max(events + 1, groups + 1)


def cycles(cfg: HwConfig) -> dict:
    """Latency and throughput of each phase, in clock cycles (docs/interface.md
    "Timing"). Assumes ``out__ready`` stays 1 unless stated."""
    n = cfg.groups
    return {
        "event_interval": 1,            # one EVENT accepted per cycle
        "event_latency": 3,             # accepted (row read) at edge k -> in the accumulator after edge k+2
        "tile_close_interval": 1,       # a TILE occupies the command stream for one cycle
        "lif_cycles_per_tile": n + 1,   # membrane read register + one cycle per group
        "first_beat_latency": 2,        # TILE accepted at edge k -> out__valid after edge k+2
        "last_beat_latency": n + 1,     # ... beat of group N-1 valid after edge k+N+1
        "bank_free_latency": n + 1,     # TILE at edge k -> its bank accumulates again after k+N+1
        "beat_interval": 1,             # one output beat per cycle within a tile
        "min_events_no_stall": n,       # tiles with >= N events never stall cmd
        "tile_period_formula": TILE_PERIOD_FORMULA,
        "wload_interval": 1,
        "dbg_latency": 1,
        "mfill_interval": 1,            # one fill per cycle, except a write-back cycle
        "mspill_latency": 1,            # write-back on edge k -> mspill__valid after edge k
        "mspill_beats_per_tile": 1,     # CHAINED; INDEPENDENT: N (one per group)
    }


class PassTiming(NamedTuple):
    """One pass of a stream for :func:`stream_cycles`.

    ``events``: EVENTs of each tile, in order (each tile is its EVENTs then a
    TILE); ``layer_cmds``: LAYER commands before the first tile; ``loads``:
    weight-load beats of the pass; ``loads_after``: index of the pass whose
    commands must all be accepted before the first of them (-1: none);
    ``wait_idle``: the first command waits until the core is idle.
    """

    events: Sequence[int]
    layer_cmds: int = 0
    loads: int = 0
    loads_after: int = -1
    wait_idle: bool = False


def stream_cycles(passes: Sequence[PassTiming], cfg: HwConfig) -> dict:
    """Cycles of ``passes`` on the build ``cfg``, driven without gaps.

    Rules (docs/interface.md "Timing"): one command per cycle while
    ``cmd__ready``; a tile's commands go into the accumulator bank of its
    parity, free one edge after the edge that presented the last beat of the
    tile two before; the last beat of tile ``j`` (TILE on edge ``a``) is
    presented on edge ``L_j = max(a + last_beat_latency, L_(j-1) + lif_cycles_per_tile)``
    (:func:`cycles`); one weight-load
    beat per cycle, the first of a pass no earlier than the edge that accepts
    the last command of its ``loads_after`` pass, and a pass's first command
    one edge after its last load; ``wait_idle``: one edge after the last beat
    so far. Returns ``cycles`` (edge of the last beat + 1), ``load_wait``
    (edges a first command waited for loads beyond what the banks and the
    idle wait imposed), ``idle_wait``, ``lif_wait`` (edges commands waited
    for a bank), ``loads``, ``commands`` and ``passes``: per pass ``(end,
    load_wait)`` with ``end`` the edge after its last command.
    """
    c = cycles(cfg)
    last_lat, lif = c["last_beat_latency"], c["lif_cycles_per_tile"]
    t = 0                  # edge at which the next command may be accepted at the earliest
    last_beat = [-10, -10]  # L of the last tile in each bank
    prev_l = -10           # L of the previous tile
    bank = 0
    wl_free = 0            # next edge the wload stream is free
    pass_end = []          # edge of the last command of each pass
    out = {"load_wait": 0, "idle_wait": 0, "lif_wait": 0, "loads": 0, "commands": 0}
    per_pass = []
    for p in passes:
        start = t
        lw0 = out["load_wait"]
        if p.loads:
            fence = pass_end[p.loads_after] if p.loads_after >= 0 else 0
            first = max(wl_free, fence)
            wl_free = first + p.loads
            out["loads"] += p.loads
        ready = wl_free                # one edge after the last load so far (at wl_free - 1)
        idle = prev_l + 1 if p.wait_idle else 0
        begin = max(start, idle, ready)
        out["load_wait"] += max(0, ready - max(start, idle))
        out["idle_wait"] += max(0, idle - start)
        t = begin
        if p.layer_cmds:                     # LAYER waits for the bank like any command
            f = max(t, last_beat[bank] + 1)
            out["lif_wait"] += f - t
            t = f + p.layer_cmds
            out["commands"] += p.layer_cmds
        for e in p.events:
            f = max(t, last_beat[bank] + 1)
            out["lif_wait"] += f - t
            a = f + int(e)                   # TILE accepted on edge a
            prev_l = max(a + last_lat, prev_l + lif)
            last_beat[bank] = prev_l
            bank ^= 1
            t = a + 1
            out["commands"] += int(e) + 1
        pass_end.append(t - 1)
        per_pass.append((t, out["load_wait"] - lw0))
    out["cycles"] = max(prev_l + 1, t)
    out["passes"] = per_pass
    return out


def schedule_timing(sched) -> list:
    """:class:`PassTiming` of every pass of a :class:`golden.schedule.Schedule`
    (its static weight loads as a first pass without tiles)."""
    out = [PassTiming([], loads=len(sched.static_weight_loads))] if sched.static_weight_loads else []
    index = {}                       # sched.items index -> pass index
    for k, it in enumerate(sched.items):
        if hasattr(it, "commands"):
            index[k] = len(out) + len(index)
    for it in sched.items:
        if not hasattr(it, "commands"):
            continue
        events, e, layer_cmds = [], 0, 0
        for cmd in it.commands:
            if cmd.op == Op.EVENT:
                e += 1
            elif cmd.op == Op.TILE:
                events.append(e)
                e = 0
            elif not events and e == 0:
                layer_cmds += 1
        after = index[it.loads_after] if it.loads_after >= 0 else -1
        out.append(PassTiming(events, layer_cmds, len(it.weight_loads), after, bool(it.wait_idle)))
    return out
