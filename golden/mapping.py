"""Which neuron sits on which PE of which tile, which inputs form a tile's fan-in,
and what a weight-buffer row holds (docs/schedule.md, "Neuron -> PE mapping").

Pure functions of a build (:class:`golden.config.HwConfig`: ``array`` A,
``groups`` N, ``slots`` S = A/N) and a layer's geometry
(:class:`golden.geometry.LayerGeometry`); :func:`tile_weights` also reads the
layer's int64 ``weight`` (a :class:`golden.network.Layer`). Used by
:meth:`golden.network.Network.validate` (sizes), :mod:`golden.schedule`
(the full plan) and :mod:`golden.quantize` (buffer sizing).
"""

from __future__ import annotations

import numpy as np

from .config import HwConfig
from .geometry import LayerGeometry, sharing_units

__all__ = [
    "layer_tiles", "tile_pe_neurons", "tile_fanin", "tile_fanin_sizes", "tile_weights",
    "membrane_rows_of_block", "rows_needed",
]


def layer_tiles(cfg: HwConfig, layer: LayerGeometry) -> int:
    """Number of tiles of ``layer``.

    chained: ``ceil(C/N · H · W / S)``; independent and readout:
    ``ceil(C · H · W / A)``. A linear layer counts as (C, 1, 1).
    """
    c, h, w = layer.out_chw
    if layer.mode == "chained":
        slots = (c // cfg.groups) * h * w
        return -(-slots // cfg.slots)
    return -(-(c * h * w) // cfg.array)


def tile_pe_neurons(cfg: HwConfig, layer: LayerGeometry, tiles=None) -> np.ndarray:
    """int64 ``[tiles, A]``: flat output index (C, H, W order) of each PE's neuron, -1 = padding.

    chained: tile ``j``, PE ``p = g·S + k`` holds neuron ``g·Cg·H·W + s`` with
    ``s = j·S + k < Cg·H·W`` (``Cg = C/N``), i.e. slot ``s = c'·H·W + h·W + w``
    of group ``g``. independent / readout: PE ``p`` of tile ``j`` holds
    neuron ``n = j·A + p < C·H·W``. ``tiles`` (optional) selects rows: a
    sequence of tile indices instead of all :func:`layer_tiles` tiles.
    """
    c, h, w = layer.out_chw
    a, s_, n = cfg.array, cfg.slots, cfg.groups
    if tiles is None:
        tiles = np.arange(layer_tiles(cfg, layer), dtype=np.int64)
    j = np.asarray(tiles, dtype=np.int64).reshape(-1, 1)
    p = np.arange(a, dtype=np.int64)[None, :]
    if layer.mode == "chained":
        per_group = (c // n) * h * w
        slot = j * s_ + p % s_
        neuron = (p // s_) * per_group + slot
        return np.where(slot < per_group, neuron, -1)
    neuron = j * a + p
    return np.where(neuron < c * h * w, neuron, -1)


#: Above this many input positions a tile's receptive-field union is collected
#: sparsely instead of in a dense [H_in, W_in] mask.
_DENSE_MASK_MAX = 1 << 20


def _conv_fanin_positions(layer: LayerGeometry, neurons: np.ndarray) -> np.ndarray:
    """Sorted unique flat input positions (h·W_in + w) in the union of the receptive fields of ``neurons``.

    Memory is bounded by the neurons' receptive fields, not by the input size.
    """
    _, hi, wi = layer.in_shape
    _, ho, wo = layer.out_chw
    k, st, pad = layer.kernel, layer.stride, layer.padding
    pos = np.unique(neurons % (ho * wo))
    oh, ow = pos // wo, pos % wo
    dense = hi * wi <= max(_DENSE_MASK_MAX, 4 * pos.size * k * k)
    mask = np.zeros((hi, wi), dtype=bool) if dense else None
    parts = []
    for kh in range(k):
        ih = oh * st - pad + kh
        for kw in range(k):
            iw = ow * st - pad + kw
            ok = (ih >= 0) & (ih < hi) & (iw >= 0) & (iw < wi)
            if dense:
                mask[ih[ok], iw[ok]] = True
            else:
                parts.append(ih[ok] * wi + iw[ok])
    if dense:
        return np.flatnonzero(mask.ravel()).astype(np.int64)
    return np.unique(np.concatenate(parts)).astype(np.int64) if parts else np.zeros(0, np.int64)


def tile_fanin(cfg: HwConfig, layer: LayerGeometry, pe_neurons: np.ndarray) -> np.ndarray:
    """Sorted unique flat input indices connected to any real neuron of one tile.

    ``pe_neurons`` is one row of :func:`tile_pe_neurons`. Linear: all inputs.
    Conv: every input channel at every position of the union of the real
    neurons' receptive fields (stride and zero padding respected).
    """
    real = pe_neurons[pe_neurons >= 0]
    if layer.kind == "linear":
        return np.arange(layer.in_shape[0], dtype=np.int64)
    cin, hi, wi = layer.in_shape
    if real.size == 0:
        return np.zeros(0, dtype=np.int64)
    pos = _conv_fanin_positions(layer, real)
    return (np.arange(cin, dtype=np.int64)[:, None] * (hi * wi) + pos[None, :]).ravel()


def tile_fanin_sizes(cfg: HwConfig, layer: LayerGeometry) -> np.ndarray:
    """int64 ``[tiles]``: fan-in size of every tile of ``layer``.

    Works tile by tile (never a ``[tiles, A]`` array); time grows with the
    number of tiles, so :meth:`Network.validate` bounds that first.
    """
    tiles = layer_tiles(cfg, layer)
    if layer.kind == "linear":
        return np.full(tiles, layer.in_shape[0], dtype=np.int64)
    cin = layer.in_shape[0]
    out = np.zeros(tiles, dtype=np.int64)
    for j in range(tiles):
        row = tile_pe_neurons(cfg, layer, [j])[0]
        real = row[row >= 0]
        if real.size:
            out[j] = cin * _conv_fanin_positions(layer, real).size
    return out


def tile_weights(cfg: HwConfig, layer: LayerGeometry, pe_neurons: np.ndarray,
                 fanin: np.ndarray) -> np.ndarray:
    """int64 ``[len(fanin), A]``: weight-buffer rows of one tile of ``layer`` (a Layer: it reads ``weight``).

    Row ``r`` holds, for every PE, the weight from input ``fanin[r]`` to the
    PE's neuron; 0 where unconnected (outside the kernel window) or padding.
    """
    a = cfg.array
    out = np.zeros((fanin.size, a), dtype=np.int64)
    real = np.flatnonzero(pe_neurons >= 0)
    if real.size == 0 or fanin.size == 0:
        return out
    nrn = pe_neurons[real]
    if layer.kind == "linear":
        # a linear layer's out_chw is (C, 1, 1): the neuron index is the output feature
        out[:, real] = layer.weight[nrn][:, fanin].T
        return out
    cin, hi, wi = layer.in_shape
    _, ho, wo = layer.out_chw
    k, st, pad = layer.kernel, layer.stride, layer.padding
    o, pos = nrn // (ho * wo), nrn % (ho * wo)
    oh, ow = pos // wo, pos % wo
    ci, ipos = fanin // (hi * wi), fanin % (hi * wi)
    ih, iw = ipos // wi, ipos % wi
    kh = ih[:, None] - (oh * st - pad)[None, :]
    kw = iw[:, None] - (ow * st - pad)[None, :]
    ok = (kh >= 0) & (kh < k) & (kw >= 0) & (kw < k)
    vals = layer.weight[o[None, :], ci[:, None], np.clip(kh, 0, k - 1), np.clip(kw, 0, k - 1)]
    out[:, real] = np.where(ok, vals, 0)
    return out


def membrane_rows_of_block(cfg: HwConfig, layer: LayerGeometry) -> int:
    """Membrane-buffer rows of the sharing unit whose first layer is ``layer``.

    chained: one row per tile; independent: ``N`` rows per tile; readout: 0.
    """
    if layer.mode == "readout":
        return 0
    tiles = layer_tiles(cfg, layer)
    return tiles if layer.mode == "chained" else tiles * cfg.groups


def rows_needed(cfg: HwConfig, layers) -> tuple[int, int]:
    """``(weight_rows, mem_rows)`` the chain ``layers`` needs on ``cfg``'s array
    shape (``cfg.weight_rows`` / ``cfg.mem_rows`` themselves are not read).

    Weight rows: the largest fan-in of any tile of any layer (what one tile's
    weight rows hold with per-tile reloading). Membrane rows: the rows of all
    sharing units (:func:`membrane_rows_of_block`) stacked. Both at least 1.
    Time grows with the number of tiles: bound them first (e.g.
    :meth:`golden.network.Network.validate` against the largest buffers).
    """
    layers = list(layers)
    mem = max(1, sum(membrane_rows_of_block(cfg, layers[b[0]]) for b in sharing_units(layers)))
    weights = max([1] + [int(tile_fanin_sizes(cfg, layer).max(initial=0)) for layer in layers])
    return weights, mem
