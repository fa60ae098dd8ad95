"""Test schedules for the concurrent weight-load stream (docs/schedule.md "Driving a schedule").

:func:`double_buffer` rewrites a ``per_tile`` schedule of
:func:`golden.schedule.build_schedule` (every tile reloads rows
``0 .. F-1``) into a double-buffered one: tile passes alternate between the
two halves of the weight buffer (rows ``0 .. R/2-1`` and ``R/2 .. R-1``,
``R = weight_rows``), and a pass's loads are fenced only on the commands of
the pass two before it (the last one that read the same half), so the loads
of pass ``k+1`` stream while the EVENTs of pass ``k`` are sent. Weights,
beats and membrane rows are unchanged (only the row addresses move), so the
same scoreboard checks it. It is the testbench's own workload for real
``cmd``/``wload`` concurrency until the schedule streams weights itself
(issue 12); ``python -m tb.sim --double-buffer 1`` runs it.
"""

from __future__ import annotations

from golden.schedule import OP_EVENT, Command, LayerPass, WeightLoad

__all__ = ["double_buffer", "DoubleBufferError"]


class DoubleBufferError(ValueError):
    """The schedule cannot be double-buffered (static weights, or a tile's
    fan-in larger than half the weight buffer)."""


def double_buffer(sched):
    """The double-buffered version of a ``per_tile`` schedule (see the module docstring).

    Raises :class:`DoubleBufferError` when the schedule is not ``per_tile``
    or a tile's fan-in exceeds ``weight_rows // 2``.
    """
    if sched.allocation.weights != "per_tile":
        raise DoubleBufferError(f"double buffering needs a per_tile schedule, this one is "
                                f"{sched.allocation.weights!r}")
    half = sched.cfg.weight_rows // 2
    if sched.allocation.weight_rows_used > half:
        raise DoubleBufferError(f"a tile's fan-in of {sched.allocation.weight_rows_used} rows "
                                f"does not fit half of weight_rows = {sched.cfg.weight_rows}")
    moved: dict = {}            # (id(load list), offset) -> moved list (kept shared)
    items, last = [], [-1, -1]  # last[h]: index of the last pass that used half h
    k = 0
    for it in sched.items:
        if not isinstance(it, LayerPass):
            items.append(it)
            continue
        h = k % 2
        off = h * half
        key = (id(it.weight_loads), off)
        if key not in moved:
            moved[key] = [WeightLoad(w.addr + off, w.data) for w in it.weight_loads]
        cmds = [Command(c.op, c.row + off, c.base, c.mode, c.first) if c.op == OP_EVENT else c
                for c in it.commands]
        items.append(it._replace(weight_loads=moved[key], commands=cmds, loads_after=last[h]))
        last[h] = len(items) - 1
        k += 1
    return sched._replace(items=items)
