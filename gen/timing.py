"""Cycle timing of ``lif_pe_array`` (docs/interface.md "Timing"), defined once.

* :func:`tile_period` -- steady-state cycles per tile of a stream whose tiles
  have ``events`` EVENTs each: ``max(events + 1, groups + 1)`` (the command
  side needs ``E + 1`` cycles per tile, the LIF stage ``N + 1``; the two
  accumulator banks overlap them). :data:`TILE_PERIOD_FORMULA` is the same
  rule as the text the manifest carries; a test evaluates it against the
  function.
* :func:`cycles` -- every latency/throughput number of the manifest's
  ``cycles`` object for one configuration.

Used by :mod:`gen.emit` (manifest), :mod:`tb.throughput` (expected period)
and the timing tests; nothing else restates these numbers.
"""

from __future__ import annotations

from golden.config import HwConfig

__all__ = ["tile_period", "TILE_PERIOD_FORMULA", "cycles"]

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
        "event_latency": 2,             # accepted at edge k -> in the accumulator after edge k+1
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
    }
