"""Stream payload layouts and command/mode encodings of ``lif_pe_array``.

Every payload layout of the core is defined here, once, from a
:class:`golden.config.HwConfig`. Field order (bit 0 upward) is the order of
``docs/interface.md``; the emitter reads the bit offsets back from these
layouts to write the manifest, so the document, the RTL and the testbench
cannot drift apart.

Public names:

* :class:`Op`, :class:`Mode` -- 2-bit encodings of ``cmd.op`` and ``cmd.mode``.
* :func:`cmd_layout`, :func:`out_layout`, :func:`wload_layout` -- the payloads
  of the three top-level streams.
* :func:`tile_layout` -- the internal descriptor of a closed tile, passed from
  the :class:`gen.sequencer.Sequencer` to the :class:`gen.lif_stage.LifStage`.
* :data:`TILE_INDEX_WIDTH` -- width of the ``tile`` field of an output beat.
"""

from __future__ import annotations

from amaranth.hdl import signed, unsigned
from amaranth.lib import data, enum

from golden.config import HwConfig

__all__ = ["Op", "Mode", "TILE_INDEX_WIDTH", "cmd_layout", "out_layout",
           "wload_layout", "tile_layout", "row_cursor_width", "layout_fields"]

#: Width of the tile counter reported in every output beat (wraps modulo 2**16).
TILE_INDEX_WIDTH = 16


class Op(enum.Enum, shape=2):
    """``cmd.op``. The value 3 is reserved (error bit 0, command dropped)."""
    EVENT = 0
    TILE = 1
    LAYER = 2


class Mode(enum.Enum, shape=2):
    """``cmd.mode`` of a LAYER command. The value 3 is reserved (error bit 0)."""
    CHAINED = 0
    READOUT = 1
    INDEPENDENT = 2


def cmd_layout(cfg: HwConfig) -> data.StructLayout:
    """Command payload: ``op``, ``row`` (RA), ``base`` (MA), ``mode``, ``first``."""
    return data.StructLayout({
        "op": unsigned(2),
        "row": unsigned(cfg.weight_addr_width),
        "base": unsigned(cfg.mem_addr_width),
        "mode": unsigned(2),
        "first": unsigned(1),
    })


def out_layout(cfg: HwConfig) -> data.StructLayout:
    """Output beat: ``spikes`` (S), ``values`` (S x signed VW), ``tile`` (16),
    ``group`` (GW), ``last``, ``readout``."""
    return data.StructLayout({
        "spikes": unsigned(cfg.slots),
        "values": data.ArrayLayout(signed(cfg.value_width), cfg.slots),
        "tile": unsigned(TILE_INDEX_WIDTH),
        "group": unsigned(cfg.group_width),
        "last": unsigned(1),
        "readout": unsigned(1),
    })


def wload_layout(cfg: HwConfig) -> data.StructLayout:
    """Weight-buffer write: ``addr`` (RA), ``data`` (A x signed WW)."""
    return data.StructLayout({
        "addr": unsigned(cfg.weight_addr_width),
        "data": data.ArrayLayout(signed(cfg.weight_width), cfg.array),
    })


def row_cursor_width(cfg: HwConfig) -> int:
    """Width of the internal membrane-row cursor.

    The cursor holds ``base + tile*stride`` and stops advancing once it is out
    of range, so it never exceeds ``mem_rows + 2*groups``; one more bit than
    that keeps the out-of-range test exact.
    """
    return (cfg.mem_rows + 2 * cfg.groups).bit_length()


def tile_layout(cfg: HwConfig) -> data.StructLayout:
    """Descriptor of a closed tile (internal, Sequencer -> LifStage).

    ``bank``: accumulator bank holding the tile's currents; ``tile``: index for
    the output beats; ``row``: first membrane row (CHAINED: the row,
    INDEPENDENT: row of group 0); ``mode``/``first``: latched from the LAYER
    command; ``bad``: a membrane row would be out of range (error bit 2), so the
    buffer is neither read (V = 0) nor written.
    """
    return data.StructLayout({
        "bank": unsigned(1),
        "tile": unsigned(TILE_INDEX_WIDTH),
        "row": unsigned(row_cursor_width(cfg)),
        "mode": unsigned(2),
        "first": unsigned(1),
        "bad": unsigned(1),
    })


def layout_fields(layout: data.StructLayout) -> dict:
    """Manifest description of a struct layout: ``{name: {offset, width, ...}}``.

    Array fields also carry ``elem_width``, ``count`` and ``signed``.
    """
    out = {}
    for name, field in layout:
        shape = field.shape
        entry = {"offset": field.offset, "width": field.width}
        if isinstance(shape, data.ArrayLayout):
            elem = shape.elem_shape
            elem = elem if not isinstance(elem, data.Layout) else unsigned(elem.size)
            entry.update(elem_width=elem.width, count=shape.length, signed=elem.signed)
        else:
            entry["signed"] = bool(getattr(shape, "signed", False))
        out[name] = entry
    return out
