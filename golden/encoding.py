"""The command set of ``lif_pe_array``: op, mode and error-bit encodings.

This is the one definition of every number on the wire that is not a width
(docs/interface.md "Command stream" and "Errors"). The RTL payload layouts
(:mod:`gen.layouts`) use these enums as field shapes, the golden models and
the schedule build commands from them, the manifest lists them
(:func:`gen.emit.build_manifest`).

* :class:`Op` -- ``cmd.op`` (2 bits); :class:`Mode` -- ``cmd.mode`` (2 bits).
  Both are ``IntEnum`` (members are plain ints, so Python code can pack and
  compare them) with :class:`amaranth.lib.enum.EnumView` as the view class (a
  layout field of this shape is an enum view in the RTL). Value 3 of each is
  ``RESERVED``: it sets error bit 0 and the command is dropped (a reserved
  ``mode`` matters only in a LAYER; other commands ignore the field).
* :class:`Error` -- the sticky ``error`` output (3 bits) as an ``IntFlag``;
  :func:`error_layout` is the same as a struct of named 1-bit fields for RTL.
* :data:`TILE_INDEX_WIDTH` -- width of the ``tile`` field of an output beat.
* :data:`MODE_BY_NAME` -- network layer mode name (``"chained"`` ...) -> Mode.

Imports only amaranth (no project module), so both ``golden/`` and ``gen/``
sit above it.
"""

from __future__ import annotations

from amaranth.hdl import unsigned
from amaranth.lib import data, enum

__all__ = ["Op", "Mode", "Error", "error_layout", "ERROR_WIDTH", "TILE_INDEX_WIDTH",
           "MODE_BY_NAME"]

#: Width of the tile counter reported in every output beat (wraps modulo 2**16).
TILE_INDEX_WIDTH = 16


class Op(enum.IntEnum, shape=2, view_class=enum.EnumView):
    """``cmd.op``."""
    EVENT = 0
    TILE = 1
    LAYER = 2
    RESERVED = 3


class Mode(enum.IntEnum, shape=2, view_class=enum.EnumView):
    """``cmd.mode``; used by LAYER only."""
    CHAINED = 0
    READOUT = 1
    INDEPENDENT = 2
    RESERVED = 3


class Error(enum.IntFlag, shape=3):
    """Bits of the sticky ``error`` output (docs/interface.md "Errors")."""
    RESERVED_OP_OR_MODE = 1 << 0   # reserved op, or LAYER with reserved mode
    EVENT_ROW_RANGE = 1 << 1       # EVENT row >= weight_rows
    MEM_ROW_RANGE = 1 << 2         # a membrane row of a tile >= mem_rows


#: Width of the ``error`` output.
ERROR_WIDTH = len(Error)


def error_layout() -> data.StructLayout:
    """``error`` as named 1-bit fields, bit ``i`` = the :class:`Error` flag ``1 << i``."""
    by_bit = sorted(Error, key=lambda e: e.value)
    assert [e.value for e in by_bit] == [1 << i for i in range(ERROR_WIDTH)]
    return data.StructLayout({e.name.lower(): unsigned(1) for e in by_bit})


MODE_BY_NAME = {"chained": Mode.CHAINED, "readout": Mode.READOUT,
                "independent": Mode.INDEPENDENT}
