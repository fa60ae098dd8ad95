"""Stream payload layouts and command/mode encodings of ``lif_pe_array``.

Every payload layout of the core is defined here, once, from a
:class:`golden.config.HwConfig`. Field order (bit 0 upward) is the order of
``docs/interface.md``; the emitter reads the bit offsets back from these
layouts to write the manifest, so the document, the RTL and the testbench
cannot drift apart.

Public names:

* :class:`Op`, :class:`Mode`, :class:`Error`, :data:`TILE_INDEX_WIDTH` --
  re-exported from :mod:`golden.encoding`, where the command set is defined.
* :func:`error_layout` -- the ``error`` output as named 1-bit fields.
* :func:`cmd_layout`, :func:`out_layout`, :func:`wload_layout`,
  :func:`mrow_layout` -- the payloads of the top-level streams (``mrow`` is
  both ``mfill`` and ``mspill``).
* :func:`tile_layout` -- the internal descriptor of a closed tile, passed from
  the :class:`gen.sequencer.Sequencer` to the :class:`gen.lif_stage.LifStage`.
* :func:`row_cursor_width` -- width of the full-width membrane-row cursor.
"""

from __future__ import annotations

from amaranth.hdl import signed, unsigned
from amaranth.lib import data

from golden.config import HwConfig
from golden.encoding import ERROR_WIDTH, TILE_INDEX_WIDTH, Error, Mode, Op, error_layout

__all__ = ["Op", "Mode", "Error", "ERROR_WIDTH", "TILE_INDEX_WIDTH", "error_layout",
           "cmd_layout", "out_layout", "wload_layout", "mrow_layout", "tile_layout", "row_cursor_width",
           "layout_fields"]


def cmd_layout(cfg: HwConfig) -> data.StructLayout:
    """Command payload: ``op``, ``row`` (RA), ``base`` (MA), ``mode``, ``first``,
    ``spill`` (LAYER: offer the layer's write-backs on ``mspill``)."""
    return data.StructLayout({
        "op": Op,
        "row": unsigned(cfg.weight_addr_width),
        "base": unsigned(cfg.mem_addr_width),
        "mode": Mode,
        "first": unsigned(1),
        "spill": unsigned(1),
    })


def mrow_layout(cfg: HwConfig) -> data.StructLayout:
    """Membrane row beat of ``mfill`` (in) and ``mspill`` (out): ``addr`` (MA),
    ``data`` (S x signed MW, slot ``k`` at bits ``k*MW``)."""
    return data.StructLayout({
        "addr": unsigned(cfg.mem_addr_width),
        "data": data.ArrayLayout(signed(cfg.mem_width), cfg.slots),
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

    The cursor holds ``base + tile*stride`` (stride 1 CHAINED, N INDEPENDENT)
    at full width: it starts at any encodable ``base`` (up to ``2**MA - 1``,
    which may be far above ``mem_rows`` when ``mem_rows`` is not a power of
    two) and advances only while it is ``< mem_rows``, so it never exceeds
    ``max(2**MA - 1, mem_rows - 1 + N)``. The last row of a tile, ``cursor +
    N - 1``, must fit too, or ``base + g`` would wrap back into range (issue
    10 §1); this width holds both.
    """
    cursor_max = max((1 << cfg.mem_addr_width) - 1, cfg.mem_rows - 1 + cfg.groups)
    return (cursor_max + cfg.groups - 1).bit_length()


def tile_layout(cfg: HwConfig) -> data.StructLayout:
    """Descriptor of a closed tile (internal, Sequencer -> LifStage).

    ``bank``: accumulator bank holding the tile's currents; ``tile``: index for
    the output beats; ``row``: first membrane row (CHAINED: the row,
    INDEPENDENT: row of group 0); ``mode``/``first``: latched from the LAYER
    command; ``bad``: a membrane row would be out of range (error bit 2), so the
    buffer is neither read (V = 0) nor written; ``spill``: latched from the
    LAYER command, the tile's write-backs go out on ``mspill``.
    """
    return data.StructLayout({
        "bank": unsigned(1),
        "tile": unsigned(TILE_INDEX_WIDTH),
        "row": unsigned(row_cursor_width(cfg)),
        "mode": Mode,
        "first": unsigned(1),
        "bad": unsigned(1),
        "spill": unsigned(1),
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
