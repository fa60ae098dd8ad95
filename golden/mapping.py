"""Which neuron sits on which PE of which tile, which inputs form a tile's fan-in,
and what a weight-buffer row holds (docs/schedule.md, "Neuron -> PE mapping").

Two mappings (:data:`MAPPINGS`): weight-stationary (:mod:`golden.ws_mapping`;
rows shared by all tiles of a chunk of output channels) and position (the
functions ``tile_*`` here; each tile its own rows). :func:`plan_layer` lays a
layer out with either as a :class:`LayerPlan` (tiles and weight blocks);
:func:`choose_mappings` picks one per sharing unit.

Pure functions of a build (:class:`golden.config.HwConfig`: ``array`` A,
``groups`` N, ``slots`` S = A/N) and a layer's geometry
(:class:`golden.geometry.LayerGeometry`); :func:`tile_weights` also reads the
layer's int64 ``weight`` (a :class:`golden.network.Layer`). Used by
:meth:`golden.network.Network.validate` (sizes), :mod:`golden.schedule`
(the full plan) and :mod:`golden.quantize` (buffer sizing).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .config import HwConfig
from .errors import ProjectError
from .fixedpoint import bias_rows, bias_split
from .geometry import LayerGeometry, sharing_units
from .ws_mapping import (ws_pe_neurons, ws_shape, ws_tile_events, ws_variant_weights,
                         ws_variants)

__all__ = [
    "WEIGHT_STATIONARY", "POSITION", "MAPPINGS", "NOMINAL_RATE", "MappingError", "TilePlan",
    "WeightBlock", "LayerPlan", "plan_layer", "mapping_cost", "choose_mappings", "layer_tiles", "tile_pe_neurons", "tile_fanin", "tile_fanin_sizes", "tile_weights",
    "membrane_rows_of_block", "pass_rows", "rows_needed", "weight_rows_total", "layer_bias_rows", "bias_block_rows",
]

#: The two neuron -> PE mappings (docs/schedule.md). Weight-stationary rows
#: are shared by all tiles of a chunk; position rows belong to one tile.
WEIGHT_STATIONARY, POSITION = "weight_stationary", "position"
MAPPINGS = (WEIGHT_STATIONARY, POSITION)
#: Input spike rate at which :func:`mapping_cost` compares the mappings.
NOMINAL_RATE = 0.15


class MappingError(ProjectError, ValueError):
    """An unknown mapping name."""


def _check_mapping(mapping: str) -> str:
    if mapping not in MAPPINGS:
        raise MappingError(f"unknown mapping {mapping!r}; choose one of {', '.join(MAPPINGS)}")
    return mapping


def layer_tiles(cfg: HwConfig, layer: LayerGeometry, mapping: str) -> int:
    """Number of tiles of ``layer`` under ``mapping``.

    position, chained: ``ceil(C/N · H · W / S)``; position, independent and
    readout: ``ceil(C · H · W / A)``; weight_stationary:
    :attr:`golden.ws_mapping.WsShape.tiles`. A linear layer counts as (C, 1, 1).
    """
    if _check_mapping(mapping) == WEIGHT_STATIONARY:
        return ws_shape(cfg, layer).tiles
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
        tiles = np.arange(layer_tiles(cfg, layer, POSITION), dtype=np.int64)
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
    tiles = layer_tiles(cfg, layer, POSITION)
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
    return _tile_weights(cfg, layer, pe_neurons, fanin, True)[0]


def _tile_weights(cfg: HwConfig, layer, pe_neurons: np.ndarray, fanin: np.ndarray, weights: bool):
    """``(weights or None, connected)`` of :func:`tile_weights`; ``connected``
    (bool ``[F, A]``) is True where the row feeds a real synapse."""
    a = cfg.array
    out = np.zeros((fanin.size, a), dtype=np.int64) if weights else None
    conn = np.zeros((fanin.size, a), dtype=bool)
    real = np.flatnonzero(pe_neurons >= 0)
    if real.size == 0 or fanin.size == 0:
        return out, conn
    nrn = pe_neurons[real]
    if layer.kind == "linear":
        # a linear layer's out_chw is (C, 1, 1): the neuron index is the output feature
        conn[:, real] = True
        if weights:
            out[:, real] = layer.weight[nrn][:, fanin].T
        return out, conn
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
    conn[:, real] = ok
    if weights:
        vals = layer.weight[o[None, :], ci[:, None], np.clip(kh, 0, k - 1), np.clip(kw, 0, k - 1)]
        out[:, real] = np.where(ok, vals, 0)
    return out, conn


def layer_bias_rows(cfg: HwConfig, layer) -> int:
    """Bias rows per weight block of ``layer`` (docs/fixed-point.md F2b); 0 without a
    bias (a bare :class:`LayerGeometry` has none)."""
    return bias_rows(cfg, getattr(layer, "bias", None))


def bias_block_rows(cfg: HwConfig, layer, pe_neurons: np.ndarray, weights: bool = True):
    """``(weights, connected)`` of the bias rows of a weight block whose tiles have
    ``pe_neurons`` [A]'s channels and padding: int64 ``[R, A]`` (None when
    ``weights`` is False), piece ``r`` of :func:`golden.fixedpoint.bias_split` of
    each real PE's channel, 0 on padding PEs; bool ``[R, A]`` real PEs."""
    n = layer_bias_rows(cfg, layer)
    _, h, w = layer.out_chw
    real = pe_neurons >= 0
    conn = np.broadcast_to(real[None, :], (n, pe_neurons.size)).copy()
    if not weights:
        return None, conn
    pieces = bias_split(cfg, getattr(layer, "bias", None))            # [R, C]
    out = np.zeros((n, pe_neurons.size), dtype=np.int64)
    if n:
        out[:, real] = pieces[:, pe_neurons[real] // (h * w)]
    return out, conn


class TilePlan(NamedTuple):
    """One tile: PE neurons ``[A]`` (-1 padding), fan-in inputs ``[F]`` in ascending
    input index, the row of its weight block each of them selects ``[F]``, the
    index of that block in :attr:`LayerPlan.blocks` and the block rows of its
    always-on bias EVENTs ``[R]`` (F2b; sent first, every timestep)."""

    pe_neurons: np.ndarray
    fanin: np.ndarray
    rows: np.ndarray
    block: int
    bias_rows: np.ndarray = np.zeros(0, np.int64)
    #: residual layer (F2c): the shortcut's fan-in (flat indices of the source layer's
    #: output spikes, ascending) and its block rows; EVENTs after the layer's own
    skip_fanin: np.ndarray = np.zeros(0, np.int64)
    skip_rows: np.ndarray = np.zeros(0, np.int64)


class _SkipView:
    """A residual layer's shortcut seen as a layer of its own (same neurons, the
    shortcut's input, kernel and weight) for :func:`tile_fanin` / :func:`_tile_weights`."""

    def __init__(self, layer):
        g = layer.skip_geometry
        self.kind, self.in_shape, self.out_chw, self.mode = g.kind, g.in_shape, layer.out_chw, layer.mode
        self.kernel, self.stride, self.padding = g.kernel, g.stride, g.padding
        self.weight = getattr(layer, "skip_weight", None)


class WeightBlock(NamedTuple):
    """Weight-buffer rows loaded together and used by tiles ``j0 .. j1-1``.

    ``weights`` int64 ``[R, A]`` (None for a geometry-only plan);
    ``synapses`` int64 ``[R]``: real synapses a row feeds (PEs whose neuron is
    connected to the row's input); ``chunk`` the output-channel chunk (position
    mapping: the tile)."""

    weights: object
    synapses: np.ndarray
    j0: int
    j1: int
    chunk: int

    @property
    def rows(self) -> int:
        return int(self.synapses.size)


class LayerPlan(NamedTuple):
    """A layer laid onto the array: its mapping, tiles and weight blocks (in use order)."""

    mapping: str
    tiles: list
    blocks: list

    @property
    def weight_rows(self) -> int:
        """Rows of all blocks (what loading the whole layer writes)."""
        return sum(b.rows for b in self.blocks)

    @property
    def largest_block(self) -> int:
        return max((b.rows for b in self.blocks), default=0)


def plan_layer(cfg: HwConfig, layer, mapping: str, weights: bool = True) -> LayerPlan:
    """Lay ``layer`` onto ``cfg``'s array with ``mapping`` (docs/schedule.md).

    ``weights=False`` builds the geometry only (``layer`` may be a bare
    :class:`LayerGeometry`; blocks carry ``weights = None``).
    """
    _check_mapping(mapping)
    tiles, blocks = [], []
    nb = layer_bias_rows(cfg, layer)

    def with_bias(w, conn, pe_row):
        """The block's rows followed by its bias rows (F2b)."""
        bw, bconn = bias_block_rows(cfg, layer, pe_row, weights)
        base = conn.shape[0]
        if nb:
            conn = np.concatenate([conn, bconn])
            if w is not None:
                w = np.concatenate([w, bw])
        if w is not None:
            w.setflags(write=False)
        return w, conn, np.arange(base, base + nb, dtype=np.int64)

    if mapping == WEIGHT_STATIONARY:
        if getattr(layer, "skip", None) is not None:
            raise MappingError(f"layer {layer.name!r}: a residual (skip) input needs the position mapping")
        pe = ws_pe_neurons(cfg, layer)
        for chunk, npos, j0, j1 in ws_variants(cfg, layer):
            w, conn = ws_variant_weights(cfg, layer, chunk, npos, weights)
            w, conn, brows = with_bias(w, conn, pe[j0])
            blocks.append(WeightBlock(w, conn.sum(axis=1).astype(np.int64), j0, j1, chunk))
            for j in range(j0, j1):
                fan, rows = ws_tile_events(cfg, layer, j)
                tiles.append(TilePlan(pe[j], fan, rows, len(blocks) - 1, brows))
        return LayerPlan(mapping, tiles, blocks)
    pe = tile_pe_neurons(cfg, layer)
    view = _SkipView(layer) if getattr(layer, "skip", None) is not None else None
    for j in range(pe.shape[0]):
        fan = tile_fanin(cfg, layer, pe[j])
        w, conn = _tile_weights(cfg, layer, pe[j], fan, weights)
        sfan = srows = np.zeros(0, np.int64)
        if view is not None:
            # F2c: the shortcut's rows follow the layer's own in the tile's block
            sfan = tile_fanin(cfg, view, pe[j])
            sw, sconn = _tile_weights(cfg, view, pe[j], sfan, weights)
            srows = np.arange(fan.size, fan.size + sfan.size, dtype=np.int64)
            conn = np.concatenate([conn, sconn])
            if w is not None:
                w = np.concatenate([w, sw])
        w, conn, brows = with_bias(w, conn, pe[j])
        blocks.append(WeightBlock(w, conn.sum(axis=1).astype(np.int64), j, j + 1, j))
        tiles.append(TilePlan(pe[j], fan, np.arange(fan.size, dtype=np.int64), j, brows, sfan, srows))
    return LayerPlan(mapping, tiles, blocks)


def _fanin_sizes(cfg: HwConfig, layer: LayerGeometry, mapping: str) -> np.ndarray:
    if mapping == POSITION:
        return tile_fanin_sizes(cfg, layer)
    return np.array([ws_tile_events(cfg, layer, j)[0].size for j in range(ws_shape(cfg, layer).tiles)],
                    dtype=np.int64)


def mapping_cost(cfg: HwConfig, layer: LayerGeometry, mapping: str, rate: float = NOMINAL_RATE) -> float:
    """Estimated cycles of one pass over ``layer`` with input spike ``rate``:
    ``sum over tiles of max(rate·F + R + 1, N + 1)`` (the steady-state tile period of
    docs/interface.md with ``rate·F`` EVENTs for a fan-in of ``F``)."""
    f = _fanin_sizes(cfg, layer, _check_mapping(mapping)).astype(np.float64)
    nb = layer_bias_rows(cfg, layer)
    return float(np.maximum(rate * f + nb + 1.0, cfg.groups + 1.0).sum())


def choose_mappings(cfg: HwConfig, layers, force=None) -> list:
    """The mapping of every layer (a list of :data:`MAPPINGS` names).

    ``force`` (a mapping name) applies one mapping to every layer. Otherwise
    each sharing unit (a block of L-shared layers, which must agree on which
    neuron sits in which membrane word, or a single layer) takes, among the
    mappings whose weight blocks fit ``cfg.weight_rows`` (all of them if none
    does), the one with the lower :func:`mapping_cost` summed over its layers,
    weight-stationary on a tie.
    """
    layers = list(layers)
    if force is not None:
        if _check_mapping(force) == WEIGHT_STATIONARY:
            bad = next((i for i, lay in enumerate(layers) if getattr(lay, "skip", None) is not None), None)
            if bad is not None:
                raise MappingError(f"layer {bad} ({layers[bad].name!r}) has a residual (skip) input, which "
                                   f"only the position mapping runs; do not force weight_stationary")
        return [force] * len(layers)
    out = [WEIGHT_STATIONARY] * len(layers)
    units = sharing_units(layers) + [[i] for i, lay in enumerate(layers) if lay.mode == "readout"]
    for unit in units:
        if any(getattr(layers[i], "skip", None) is not None for i in unit):
            for i in unit:           # residual layers: position mapping only (docs/schedule.md)
                out[i] = POSITION
            continue
        if all(layers[i].kind == "linear" for i in unit):
            continue                 # the two mappings coincide for linear layers
        fits = [m for m in MAPPINGS
                if all(_largest_block_rows(cfg, layers[i], m) <= cfg.weight_rows for i in unit)]
        cost = {m: sum(mapping_cost(cfg, layers[i], m) for i in unit) for m in (fits or MAPPINGS)}
        pick = min(cost, key=lambda m: (cost[m], m != WEIGHT_STATIONARY))
        for i in unit:
            out[i] = pick
    return out


def membrane_rows_of_block(cfg: HwConfig, layer: LayerGeometry, mapping: str) -> int:
    """Membrane-buffer rows of the sharing unit whose first layer is ``layer``.

    chained: one row per tile; independent: ``N`` rows per tile; readout: 0.
    """
    if layer.mode == "readout":
        return 0
    tiles = layer_tiles(cfg, layer, mapping)
    return tiles if layer.mode == "chained" else tiles * cfg.groups


def pass_rows(cfg: HwConfig, layer: LayerGeometry, mapping: str) -> int:
    """Membrane rows of the largest weight block's tiles of ``layer`` (what one
    pass holds on chip when membranes are spilled); 0 for readout."""
    if layer.mode == "readout":
        return 0
    per = 1 if layer.mode == "chained" else cfg.groups
    blocks = plan_layer(cfg, layer, mapping, False).blocks
    return max(((b.j1 - b.j0) * per for b in blocks), default=0)


def _skip_fanin_sizes(cfg: HwConfig, layer) -> np.ndarray:
    """Per tile: the shortcut's fan-in (0 without a skip input); position mapping only."""
    tiles = layer_tiles(cfg, layer, POSITION)
    if getattr(layer, "skip", None) is None:
        return np.zeros(tiles, dtype=np.int64)
    view = _SkipView(layer)
    return np.array([tile_fanin(cfg, view, tile_pe_neurons(cfg, layer, [j])[0]).size
                     for j in range(tiles)], dtype=np.int64)


def _largest_block_rows(cfg: HwConfig, layer: LayerGeometry, mapping: str) -> int:
    nb = layer_bias_rows(cfg, layer)
    if mapping == POSITION:
        return int((tile_fanin_sizes(cfg, layer) + _skip_fanin_sizes(cfg, layer)).max(initial=0)) + nb
    return ws_shape(cfg, layer).rows + nb


def weight_rows_total(cfg: HwConfig, layers, mappings=None) -> int:
    """Weight rows of every block of every layer: what fits ``weight_rows`` for
    the weights to be loaded once (``"static"``)."""
    layers = list(layers)
    mappings = choose_mappings(cfg, layers) if mappings is None else mappings
    total = 0
    for layer, m in zip(layers, mappings):
        nb = layer_bias_rows(cfg, layer)
        if m == POSITION:
            sizes = tile_fanin_sizes(cfg, layer) + _skip_fanin_sizes(cfg, layer)
            total += int(sizes.sum()) + nb * sizes.size
        else:
            sh = ws_shape(cfg, layer)
            total += (sh.rows + nb) * sum(1 for _ in ws_variants(cfg, layer))
    return total


def rows_needed(cfg: HwConfig, layers, mappings=None) -> tuple[int, int]:
    """``(weight_rows, mem_rows)`` the chain ``layers`` needs on ``cfg``'s array
    shape (``cfg.weight_rows`` / ``cfg.mem_rows`` themselves are not read).

    Weight rows: the largest weight block of any layer (what streaming the
    weights through the buffer needs at the least; twice that lets the next
    block load while the current one runs, and :func:`weight_rows_total` loads
    everything once). Membrane rows: the rows of all sharing units
    (:func:`membrane_rows_of_block`) stacked. Both at least 1. ``mappings``
    defaults to :func:`choose_mappings`. Time grows with the number of tiles:
    bound them first (e.g. :meth:`golden.network.Network.validate` against the
    largest buffers).
    """
    layers = list(layers)
    mappings = choose_mappings(cfg, layers) if mappings is None else list(mappings)
    mem = max(1, sum(membrane_rows_of_block(cfg, layers[b[0]], mappings[b[0]])
                     for b in sharing_units(layers)))
    weights = max([1] + [_largest_block_rows(cfg, layer, m) for layer, m in zip(layers, mappings)])
    return weights, mem
