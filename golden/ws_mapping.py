"""The weight-stationary mapping (docs/schedule.md, "Weight-stationary mapping").

A tile holds ``cs`` output channels at ``p`` horizontally adjacent output
positions in every lane set (a lane set is one group's ``S`` PEs in CHAINED
mode, all ``A`` PEs otherwise). A weight row is indexed by the
kernel-relative input ``(c_in, dy, dx')`` of the tile's window, so every
tile of one *chunk* (one set of output channels) uses the same rows, at
every position, timestep and sample:

* lane sets and lanes: CHAINED ``sets = N``, ``lanes = S``, channels per set
  ``cl = C/N`` (group ``g`` holds channels ``g·cl ..``); INDEPENDENT and
  READOUT ``sets = 1``, ``lanes = A``, ``cl = C``;
* ``cs = min(cl, lanes)`` channels per tile and set, ``p = min(lanes // cs, W)``
  positions per tile (1 for a linear layer), ``chunks = ceil(cl / cs)``;
* slot ``k`` of a lane set (PE ``set·lanes + k``) holds position ``q = k // cs``
  and channel ``c = k % cs`` of the tile; ``k ≥ p·cs`` is padding;
* positions: ``bf = W // p`` full blocks per output row, plus one edge block of
  ``W mod p`` positions when ``p`` does not divide ``W``;
* tile order, chunk-major: ``j = chunk·blocks + l``; ``l < H·bf`` is the full
  block ``(h, b) = divmod(l, bf)``, then the edge blocks ``h = l − H·bf``;
  so a chunk's tiles are consecutive and a chunk's full and edge blocks are
  two consecutive runs (two weight blocks, *variants*: the edge variant has
  zero columns for the missing positions);
* conv rows: ``kx = (p−1)·stride + k``; row ``r = (c_in·k + dy)·kx + dx'``
  holds, for slot ``(q, c)``, ``W[ch, c_in, dy, dx' − q·stride]`` when
  ``0 ≤ dx' − q·stride < k`` (else 0); a tile whose block starts at output
  ``(h, w0)`` sends input ``(c_in, h·stride − pad + dy, w0·stride − pad + dx')``
  as an EVENT of row ``r``; linear rows: the input index.

Residual layers (docs/fixed-point.md F2c): the shortcut is a second conv (or
linear) input with the layer's own neurons, so it is laid out the same way
(:func:`ws_skip_check`): its rows, indexed by the kernel-relative input of the
shortcut's window, follow the layer's own rows in every weight block, and a
tile's shortcut EVENTs (ascending source index) follow its own EVENTs.

Pure functions of a build (:class:`golden.config.HwConfig`) and a layer's
geometry; :func:`ws_variant_weights` also reads the layer's int64 ``weight``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .config import HwConfig
from .geometry import LayerGeometry

__all__ = ["WsShape", "ws_shape", "ws_pe_neurons", "ws_tile_events", "ws_variants",
           "ws_variant_weights", "ws_skip_check", "ws_block_rows"]


class WsShape(NamedTuple):
    """How the weight-stationary mapping cuts one layer (see the module docstring)."""

    sets: int
    lanes: int
    cl: int
    cs: int
    p: int
    chunks: int
    bf: int          # full position blocks per output row
    edge: int        # positions of the edge block (0: none)
    h: int
    w: int
    kx: int          # row window width (conv); 1 for linear
    rows: int        # weight rows of one variant

    @property
    def blocks(self) -> int:
        """Position blocks (tiles) per chunk."""
        return self.h * (self.bf + (self.edge > 0))

    @property
    def tiles(self) -> int:
        return self.chunks * self.blocks


def ws_shape(cfg: HwConfig, layer: LayerGeometry) -> WsShape:
    """The :class:`WsShape` of ``layer`` on ``cfg``'s array."""
    c, h, w = layer.out_chw
    if layer.mode == "chained":
        sets, lanes, cl = cfg.groups, cfg.slots, c // cfg.groups
    else:
        sets, lanes, cl = 1, cfg.array, c
    cs = min(cl, lanes)
    p = 1 if layer.kind == "linear" else max(1, min(lanes // cs, w))
    chunks = -(-cl // cs)
    bf, edge = w // p, w % p
    if layer.kind == "linear":
        kx, rows = 1, layer.in_shape[0]
    else:
        kx = (p - 1) * layer.stride + layer.kernel
        rows = layer.in_shape[0] * layer.kernel * kx
    return WsShape(sets, lanes, cl, cs, p, chunks, bf, edge, h, w, kx, rows)


def _block_origin(sh: WsShape, local: np.ndarray):
    """(h, w0, positions) of the position blocks ``local`` (indices within a chunk)."""
    full = sh.h * sh.bf
    is_full = local < full
    h = np.where(is_full, local // max(1, sh.bf), local - full)
    b = np.where(is_full, local % max(1, sh.bf), sh.bf)
    npos = np.where(is_full, sh.p, sh.edge)
    return h, b * sh.p, npos


def ws_pe_neurons(cfg: HwConfig, layer: LayerGeometry, tiles=None) -> np.ndarray:
    """int64 ``[tiles, A]``: flat output index of each PE's neuron, -1 = padding."""
    sh = ws_shape(cfg, layer)
    if tiles is None:
        tiles = np.arange(sh.tiles, dtype=np.int64)
    j = np.asarray(tiles, dtype=np.int64).reshape(-1, 1)
    pe = np.arange(cfg.array, dtype=np.int64)[None, :]
    chunk, local = j // sh.blocks, j % sh.blocks
    hh, w0, npos = _block_origin(sh, local)
    s, k = pe // sh.lanes, pe % sh.lanes
    q, c = k // sh.cs, k % sh.cs
    ch_in_set = chunk * sh.cs + c
    ok = (s < sh.sets) & (q < npos) & (ch_in_set < sh.cl)
    channel = s * sh.cl + ch_in_set
    neuron = (channel * sh.h + hh) * sh.w + w0 + q
    return np.where(ok, neuron, -1)


def ws_tile_events(cfg: HwConfig, layer: LayerGeometry, j: int):
    """``(fanin, rows)`` of tile ``j``: the flat input indices connected to a
    real neuron of the tile (ascending) and the row (within the tile's weight
    block) an EVENT for each of them selects (int64 arrays of equal size)."""
    sh = ws_shape(cfg, layer)
    if layer.kind == "linear":
        r = np.arange(sh.rows, dtype=np.int64)
        return r, r
    cin, hi, wi = layer.in_shape
    k, st, pad = layer.kernel, layer.stride, layer.padding
    hh, w0, npos = (int(v[0]) for v in _block_origin(sh, np.array([j % sh.blocks])))
    ih0, iw0 = hh * st - pad, w0 * st - pad
    dy = np.arange(k)
    dx = np.arange(sh.kx)
    # dx' reaches a real position q < npos with 0 <= dx' - q*st < k
    rel_q = dx[:, None] - np.arange(npos)[None, :] * st
    used = ((rel_q >= 0) & (rel_q < k)).any(axis=1)
    ih, iw = ih0 + dy, iw0 + dx
    okh = (ih >= 0) & (ih < hi)
    okw = (iw >= 0) & (iw < wi) & used
    dyv, dxv = dy[okh], dx[okw]
    pos = (ih[okh][:, None] * wi + iw[okw][None, :]).ravel()
    rel = (dyv[:, None] * sh.kx + dxv[None, :]).ravel()
    ci = np.arange(cin, dtype=np.int64)[:, None]
    fanin = (ci * (hi * wi) + pos[None, :]).ravel()
    rows = (ci * (k * sh.kx) + rel[None, :]).ravel()
    return fanin.astype(np.int64), rows.astype(np.int64)


def ws_variants(cfg: HwConfig, layer: LayerGeometry) -> list:
    """The weight blocks of ``layer`` in tile order: ``[(chunk, positions, j0, j1)]``,
    tiles ``j0 .. j1-1`` use the block of ``chunk`` with ``positions`` real
    positions per tile (``p``, or the edge block's)."""
    sh = ws_shape(cfg, layer)
    out = []
    for ch in range(sh.chunks):
        j0 = ch * sh.blocks
        if sh.bf:
            out.append((ch, sh.p, j0, j0 + sh.h * sh.bf))
        if sh.edge:
            out.append((ch, sh.edge, j0 + sh.h * sh.bf, j0 + sh.blocks))
    return out


def ws_variant_weights(cfg: HwConfig, layer, chunk: int, positions: int, weights: bool = True):
    """``(weights, connected)`` of one weight block: int64 ``[rows, A]`` (None
    when ``weights`` is False: geometry only, ``layer`` needs no ``weight``) and
    bool ``[rows, A]``, True where the row feeds a real synapse of the PE."""
    sh = ws_shape(cfg, layer)
    a = cfg.array
    pe = np.arange(a, dtype=np.int64)
    s, k = pe // sh.lanes, pe % sh.lanes
    q, c = k // sh.cs, k % sh.cs
    ch_in_set = chunk * sh.cs + c
    real = (s < sh.sets) & (q < positions) & (ch_in_set < sh.cl)
    channel = s * sh.cl + ch_in_set
    if layer.kind == "linear":
        conn = np.broadcast_to(real[None, :], (sh.rows, a)).copy()
        if not weights:
            return None, conn
        out = np.zeros((sh.rows, a), dtype=np.int64)
        out[:, real] = layer.weight[channel[real]].T
        return out, conn
    kk = layer.kernel
    r = np.arange(sh.rows, dtype=np.int64)
    ci, rem = r // (kk * sh.kx), r % (kk * sh.kx)
    dy, dxp = rem // sh.kx, rem % sh.kx
    dx = dxp[:, None] - q[None, :] * layer.stride
    conn = real[None, :] & (dx >= 0) & (dx < kk)
    if not weights:
        return None, conn
    vals = layer.weight[np.clip(channel, 0, layer.out_channels - 1)[None, :], ci[:, None],
                        dy[:, None], np.clip(dx, 0, kk - 1)]
    return np.where(conn, vals, 0).astype(np.int64), conn


def ws_skip_check(cfg: HwConfig, layer, skip) -> WsShape:
    """The :class:`WsShape` of ``skip`` (a residual layer's shortcut seen as a layer
    with the same neurons: ``out_chw``, ``mode``, ``kind`` of ``layer``, the
    shortcut's input, kernel, stride, padding and weight). Its tiles, slots and
    chunks are those of ``layer`` (they depend on the output only), so tile ``j``
    of both is the same set of neurons; only ``kx`` and ``rows`` differ."""
    own, sh = ws_shape(cfg, layer), ws_shape(cfg, skip)
    if own[:10] != sh[:10]:         # sets .. w: a function of the output shape and mode only
        raise AssertionError(f"shortcut layout {sh} differs from the layer's {own}")
    return sh


def ws_block_rows(cfg: HwConfig, layer, skip=None) -> int:
    """Rows of one weight block (without bias rows): the layer's own rows, plus the
    shortcut's (:func:`ws_skip_check`) for a residual layer."""
    return ws_shape(cfg, layer).rows + (0 if skip is None else ws_skip_check(cfg, layer, skip).rows)
