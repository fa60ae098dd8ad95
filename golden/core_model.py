"""Transaction-level model of the ``lif_pe_array`` core (docs/interface.md).

An independent second implementation of the arithmetic: it executes the
command stream tile by tile on a weight buffer and a membrane buffer, the way
the hardware does, using only :mod:`golden.fixedpoint` primitives. It knows
nothing about networks or the neuron -> PE mapping; tests run a schedule's
commands through it and compare against the schedule's expectations (which
come from :func:`golden.fixed_model.run_fixed`).

Behaviour beyond the happy path (docs/interface.md, "Errors"):

* reserved ``op`` or LAYER with reserved ``mode``: error bit 0, command
  dropped (a dropped LAYER keeps the previous base, mode, first and tile
  counter);
* fields a command does not use are ignored (``mode``, even 3, in an EVENT or
  TILE; ``row`` in a LAYER; ...);
* EVENT with ``row >= weight_rows``: error bit 1, dropped;
* TILE whose membrane rows are out of range: error bit 2. The rows are
  computed at full width, ``base + tile`` (CHAINED) or ``base + tile*N + g``
  for every group ``g`` (INDEPENDENT), with the tile counter NOT reduced to
  16 bits; the tile is bad if any of them is ``>= mem_rows`` (an INDEPENDENT
  tile with only some rows out of range is wholly bad), whatever ``first``
  is. A bad tile still yields its N beats, computed as if ``first`` were set
  (every membrane read replaced by 0), writes nothing, and the tile counter
  still advances.

``strict=True`` additionally raises :class:`CoreModelError` when a command
reads a weight row or a membrane row that was never written (with
``first = 0``): real hardware would return stale data, which the schedule must
never rely on.
"""

from __future__ import annotations

import numpy as np

from . import fixedpoint as fp
from .beat import Beat
from .config import HwConfig
from .encoding import Error, Mode, Op
from .errors import ProjectError

__all__ = ["CoreModel", "CoreModelError", "tile_rows", "ERR_OPCODE", "ERR_WEIGHT_ROW",
           "ERR_MEM_ROW"]

# Short names of the golden.encoding.Error flags (kept for existing callers).
ERR_OPCODE = Error.RESERVED_OP_OR_MODE
ERR_WEIGHT_ROW = Error.EVENT_ROW_RANGE
ERR_MEM_ROW = Error.MEM_ROW_RANGE


class CoreModelError(ProjectError, RuntimeError):
    """A strict-mode read of a buffer row that was never written."""


def tile_rows(cfg: HwConfig, mode: Mode, base: int, tile: int) -> list:
    """Membrane rows of tile ``tile`` of a layer at ``base`` (full width, unreduced).

    CHAINED: ``[base + tile]``; INDEPENDENT: ``[base + tile*N + g for g in 0..N-1]``;
    READOUT: ``[]``. The tile is bad (error bit 2) iff any row is ``>= mem_rows``.
    """
    if mode == Mode.READOUT:
        return []
    if mode == Mode.CHAINED:
        return [base + tile]
    n = cfg.groups
    return [base + tile * n + g for g in range(n)]


class CoreModel:
    """State: weight buffer [weight_rows, A], membrane buffer [mem_rows, S], A accumulators,
    latched ``base``/``mode``/``first``, tile counter, sticky ``error`` flags."""

    def __init__(self, cfg: HwConfig, strict: bool = True):
        self.cfg = cfg
        self.strict = strict
        self.weights = np.zeros((cfg.weight_rows, cfg.array), dtype=np.int64)
        self.weight_written = np.zeros(cfg.weight_rows, dtype=bool)
        self.mem = np.zeros((cfg.mem_rows, cfg.slots), dtype=np.int64)
        self.mem_written = np.zeros(cfg.mem_rows, dtype=bool)
        self.reset()

    def reset(self) -> None:
        """The ``rst`` state: accumulators 0, tile 0, base 0, CHAINED with first = 1,
        no errors. Buffers keep their contents (a write-back in flight when
        ``rst`` is sampled is lost or done, see docs/interface.md "Reset")."""
        self.acc = np.zeros(self.cfg.array, dtype=np.int64)
        self.tile = 0
        self.base = 0
        self.mode = Mode.CHAINED
        self.first = 1
        self.spill = 0
        self.error = 0
        #: (row, int64 [S]) of every write-back of a LAYER with ``spill = 1``, in
        #: order: what the core offers on ``mspill`` (the caller may clear it)
        self.spilled = []

    # ------------------------------------------------------------ streams
    def load_weight(self, addr: int, data) -> None:
        """Write weight row ``addr`` (``data`` [A] signed ints within weight_width)."""
        cfg = self.cfg
        d = np.asarray(data, dtype=np.int64)
        if d.shape != (cfg.array,):
            raise ValueError(f"weight row must have {cfg.array} entries, got shape {d.shape}")
        if not 0 <= addr < cfg.weight_rows:
            raise ValueError(f"weight row address {addr} outside 0..{cfg.weight_rows - 1}")
        if d.min() < cfg.weight_min or d.max() > cfg.weight_max:
            raise ValueError(f"weight row {addr}: values outside [{cfg.weight_min}, {cfg.weight_max}]")
        self.weights[addr] = d
        self.weight_written[addr] = True

    def fill(self, row: int, data) -> None:
        """An ``mfill`` beat: write membrane row ``row`` (rows >= mem_rows are ignored)."""
        d = np.asarray(data, dtype=np.int64)
        if d.shape != (self.cfg.slots,):
            raise ValueError(f"membrane row must have {self.cfg.slots} entries, got shape {d.shape}")
        if 0 <= row < self.cfg.mem_rows:
            self.mem[row] = d
            self.mem_written[row] = True

    def read_membrane(self, row: int) -> np.ndarray:
        """Membrane row ``row`` (int64 [S]), like ``dbg_data``."""
        return self.mem[row].copy()

    def command(self, cmd) -> list:
        """Execute one command (anything with op/row/base/mode/first); returns the beats it produced."""
        op = Op(int(cmd.op))
        if op == Op.LAYER:
            mode = Mode(int(cmd.mode))
            if mode == Mode.RESERVED:
                self.error |= Error.RESERVED_OP_OR_MODE
                return []
            self.base, self.mode, self.first = int(cmd.base), mode, int(cmd.first)
            self.spill = int(getattr(cmd, "spill", 0))
            self.tile = 0
            return []
        if op == Op.EVENT:
            row = int(cmd.row)
            if not 0 <= row < self.cfg.weight_rows:
                self.error |= Error.EVENT_ROW_RANGE
                return []
            if self.strict and not self.weight_written[row]:
                raise CoreModelError(f"EVENT reads weight row {row}, which was never loaded")
            self.acc = fp.saturate(self.acc + self.weights[row], self.cfg.acc_width)   # F2
            return []
        if op == Op.TILE:
            beats = self._close_tile()
            self.acc = np.zeros(self.cfg.array, dtype=np.int64)
            self.tile += 1
            return beats
        self.error |= Error.RESERVED_OP_OR_MODE
        return []

    # ---------------------------------------------------------------- LIF

    def _read(self, row: int, ok: bool) -> np.ndarray:
        if self.first or not ok:                                   # F7 first timestep
            return np.zeros(self.cfg.slots, dtype=np.int64)
        if self.strict and not self.mem_written[row]:
            raise CoreModelError(f"TILE reads membrane row {row} (first = 0), which was never written")
        return self.mem[row].copy()

    def _close_tile(self) -> list:
        cfg = self.cfg
        n, s_ = cfg.groups, cfg.slots
        tile = self.tile
        xg = self.acc.reshape(n, s_)
        if self.mode == Mode.READOUT:                              # F8
            zero = np.zeros(s_, dtype=np.int64)
            return [Beat(zero, xg[g].copy(), tile, g, int(g == n - 1), 1) for g in range(n)]
        rows = tile_rows(cfg, self.mode, self.base, tile)
        ok = max(rows) < cfg.mem_rows
        if not ok:
            self.error |= Error.MEM_ROW_RANGE
        beats, writes = [], []
        if self.mode == Mode.CHAINED:                              # F7 chained
            v = self._read(rows[0], ok)
            for g in range(n):
                u, o, v = fp.lif_step(cfg, v, xg[g])               # F3-F6
                beats.append(Beat(o, u, tile, g, int(g == n - 1), 0))
            writes.append((rows[0], v))
        else:                                                      # F7 independent
            for g in range(n):
                u, o, v = fp.lif_step(cfg, self._read(rows[g], ok), xg[g])
                beats.append(Beat(o, u, tile, g, int(g == n - 1), 0))
                writes.append((rows[g], v))
        if ok:
            for row, v in writes:
                self.mem[row] = v
                self.mem_written[row] = True
                if self.spill:
                    self.spilled.append((row, v.copy()))
        return beats
