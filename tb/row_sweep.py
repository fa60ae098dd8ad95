"""The membrane-row range sweep (issue 10 §1): every encodable ``base``.

For one configuration, :func:`sweep_cases` yields one case per
``(mode, base)`` with ``mode`` in CHAINED / INDEPENDENT and ``base`` in
``0 .. 2**MA - 1`` (``MA = mem_addr_width``): after a reset, send
``LAYER(mode, base, first = base & 1)``, ``EVENT 0``, ``TILE``, ``EVENT 1``,
``TILE`` and read every membrane row back. Before the first case the whole
membrane buffer is filled with non-zero values (a CHAINED ``first = 1`` layer
over rows ``0 .. mem_rows - 1``), so a write to a wrong row and a read of a
wrong row are both visible.

The expected beats, ``error`` and membrane contents come from
:class:`golden.core_model.CoreModel` (the documented rule: the range check
uses the full-width row ``base + tile·N + g``; an INDEPENDENT tile with any
row out of range is wholly bad: error bit 2, reads replaced by 0, nothing
written). Pure Python; the RTL drivers are ``tb/test_row_range.py`` (cocotb)
and ``tests/test_gen_row_range.py`` (amaranth.sim).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from golden.config import HwConfig
from golden.core_model import CoreModel
from golden.encoding import Mode, Op
from golden.schedule import Command

__all__ = ["SweepCase", "fill_program", "sweep_weights", "sweep_cases"]


class SweepCase(NamedTuple):
    """One reset-to-read-back case: commands, expected beats, error and rows."""

    mode: Mode
    base: int
    commands: list        # golden.schedule.Command
    beats: list           # golden.beat.Beat
    error: int
    membrane: np.ndarray  # int64 [mem_rows, S] after the case


def sweep_weights(cfg: HwConfig) -> np.ndarray:
    """Two weight rows [2, A], non-zero and different on every PE."""
    p = np.arange(cfg.array, dtype=np.int64)
    w0 = np.clip(3 + (p % 5), cfg.weight_min, cfg.weight_max)
    w1 = np.clip(-(2 + p % 3), cfg.weight_min, cfg.weight_max)
    return np.stack([w0, w1]).astype(np.int64)


def fill_program(cfg: HwConfig) -> list:
    """Commands that write every membrane row (CHAINED, first = 1, base 0)."""
    cmds = [Command(Op.LAYER, 0, 0, Mode.CHAINED, 1)]
    for _ in range(cfg.mem_rows):
        cmds += [Command(Op.EVENT, 0), Command(Op.EVENT, 0), Command(Op.TILE)]
    return cmds


def sweep_cases(cfg: HwConfig):
    """(fill commands, fill beats, [SweepCase, ...]) for every (mode, base)."""
    model = CoreModel(cfg, strict=True)
    for r, row in enumerate(sweep_weights(cfg)):
        model.load_weight(r, row)
    fill = fill_program(cfg)
    fill_beats = [b for c in fill for b in model.command(c)]
    assert model.error == 0 and model.mem_written.all()
    cases = []
    for mode in (Mode.CHAINED, Mode.INDEPENDENT):
        for base in range(1 << cfg.mem_addr_width):
            model.reset()
            cmds = [Command(Op.LAYER, 0, base, mode, base & 1), Command(Op.EVENT, 0),
                    Command(Op.TILE), Command(Op.EVENT, 1), Command(Op.TILE)]
            beats = [b for c in cmds for b in model.command(c)]
            cases.append(SweepCase(mode, base, cmds, beats, model.error, model.mem.copy()))
    return fill, fill_beats, cases
