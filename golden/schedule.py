"""The exact order in which the core sees the work (docs/schedule.md).

:func:`build_schedule` turns a network and input spikes into weight loads,
commands (docs/interface.md) and the expected output beats and
membrane-buffer contents, all taken from the bit-accurate model
:func:`golden.fixed_model.run_fixed` and remapped to the hardware layout by
the tile mapping of :mod:`golden.mapping` (which neuron sits on which PE of
which tile, which inputs form a tile's fan-in, what a weight-buffer row holds).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .beat import Beat
from .config import HwConfig
from .encoding import MODE_BY_NAME, Mode, Op
from .fixed_model import check_spikes, run_fixed
from .mapping import membrane_rows_of_block, tile_fanin, tile_pe_neurons, tile_weights

#: Tile geometry (which neuron on which PE, fan-in, weight rows) is in golden.mapping.
__all__: list = []


# =========================================================================
# Schedule objects (the testbench codes against these names)
# =========================================================================

#: Short names of the command encodings of :mod:`golden.encoding` (kept for
#: existing callers; the values are the :class:`Op` / :class:`Mode` members).
OP_EVENT, OP_TILE, OP_LAYER = Op.EVENT, Op.TILE, Op.LAYER
MODE_CHAINED, MODE_READOUT, MODE_INDEPENDENT = Mode.CHAINED, Mode.READOUT, Mode.INDEPENDENT
MODE_CODES = MODE_BY_NAME

__all__ += [
    "OP_EVENT", "OP_TILE", "OP_LAYER", "MODE_CHAINED", "MODE_READOUT", "MODE_INDEPENDENT",
    "MODE_CODES", "Command", "WeightLoad", "Beat", "LayerPass", "TimestepEnd", "Region",
    "TilePlan", "Allocation", "Schedule", "plan_allocation", "build_schedule",
]


class Command(NamedTuple):
    """One ``cmd`` stream beat; field names as in docs/interface.md.

    ``op`` and ``mode`` are :class:`golden.encoding.Op` / :class:`Mode` members
    (plain ints also work); fields the command does not use are ignored."""

    op: int
    row: int = 0
    base: int = 0
    mode: int = 0
    first: int = 0


class WeightLoad(NamedTuple):
    """One ``wload`` beat: ``data[p]`` is the signed weight of PE ``p`` (int64 [A])."""

    addr: int
    data: np.ndarray


class LayerPass(NamedTuple):
    """A piece of one layer at one timestep of one sample.

    Drive it as: wait until the core is idle (``busy`` = 0, all earlier beats
    received), write ``weight_loads``, then send ``commands``; the core then
    produces exactly ``beats``. With static weights a layer is one LayerPass
    (``tile = 0``, ``tiles`` = all tiles); with per-tile reloading it is one
    LayerPass per tile (``tile = j``, ``tiles = 1``) and only the first holds
    the LAYER command.
    """

    sample: int
    t: int
    layer: int
    weight_loads: list
    commands: list
    beats: list
    tile: int = 0
    tiles: int = 1
    wait_idle: bool = True
    loads_after: int = -1


class TimestepEnd(NamedTuple):
    """After all layers of timestep ``t``: expected membrane rows (row -> int64 [S])."""

    sample: int
    t: int
    membrane: dict


class Region(NamedTuple):
    """Membrane rows ``base .. base+rows-1`` of one sharing unit (its layer indices)."""

    layers: tuple
    base: int
    rows: int
    mode: str


class TilePlan(NamedTuple):
    """Static facts of one tile: PE neurons [A] (-1 pad), fan-in [F], weights [F, A], first weight row."""

    pe_neurons: np.ndarray
    fanin: np.ndarray
    weights: np.ndarray
    weight_base: int


class Allocation(NamedTuple):
    """Buffer allocation of a network on a build.

    ``weights``       "static" (everything loaded once) or "per_tile"
                      (a tile's rows 0..F-1 are reloaded before its events).
    ``weight_rows_used``  rows written (static: total fan-in; per_tile: the largest fan-in).
    ``regions``       membrane regions in layer order.
    ``mem_rows_used`` rows of the membrane buffer in use.
    ``layer_base``    layer index -> membrane base row (readout layers: 0).
    ``tiles``         layer index -> list of :class:`TilePlan`.
    """

    weights: str
    weight_rows_used: int
    regions: list
    mem_rows_used: int
    layer_base: dict
    tiles: dict

    def describe(self) -> dict:
        """JSON-able summary (no weight data)."""
        return {"weights": self.weights, "weight_rows_used": self.weight_rows_used,
                "mem_rows_used": self.mem_rows_used,
                "regions": [{"layers": list(r.layers), "base": r.base, "rows": r.rows, "mode": r.mode}
                            for r in self.regions],
                "layers": {i: {"base": self.layer_base[i], "tiles": len(tp),
                               "fanin": [int(p.fanin.size) for p in tp],
                               "weight_base": [p.weight_base for p in tp]}
                           for i, tp in self.tiles.items()}}


def plan_allocation(cfg: HwConfig, net) -> Allocation:
    """Map every layer onto tiles and allocate the weight and membrane buffers (docs/schedule.md).

    ``net`` must already be validated against ``cfg``.
    """
    plans = {}
    total = 0
    for i, layer in enumerate(net.layers):
        pe = tile_pe_neurons(cfg, layer)
        tp = []
        for j in range(pe.shape[0]):
            fan = tile_fanin(cfg, layer, pe[j])
            w = tile_weights(cfg, layer, pe[j], fan)
            w.setflags(write=False)
            tp.append(TilePlan(pe[j], fan, w, total))
            total += fan.size
        plans[i] = tp
    static = total <= cfg.weight_rows
    if not static:
        plans = {i: [p._replace(weight_base=0) for p in tp] for i, tp in plans.items()}
        used = max((p.fanin.size for tp in plans.values() for p in tp), default=0)
    else:
        used = total
    regions, base_of, row = [], {}, 0
    for blk in net.blocks():
        first = net.layers[blk[0]]
        rows = membrane_rows_of_block(cfg, first)
        regions.append(Region(tuple(blk), row, rows, first.mode))
        for i in blk:
            base_of[i] = row
        row += rows
    for i in range(len(net.layers)):
        base_of.setdefault(i, 0)
    return Allocation("static" if static else "per_tile", int(used), regions, row, base_of, plans)


def _region_slots(cfg: HwConfig, net, region: Region) -> np.ndarray:
    """int64 [rows, S]: index into the flattened stored state of each membrane word, -1 = padding."""
    layer = net.layers[region.layers[0]]
    c, h, w = layer.out_chw
    s_, n = cfg.slots, cfg.groups
    r = np.arange(region.rows, dtype=np.int64)[:, None]
    k = np.arange(s_, dtype=np.int64)[None, :]
    if region.mode == "chained":
        idx = r * s_ + k                               # row base+j holds slots j*S .. j*S+S-1
        size = (c // n) * h * w
    else:
        idx = (r // n) * cfg.array + (r % n) * s_ + k  # row base+j*N+g: neuron j*A + g*S + k
        size = c * h * w
    return np.where(idx < size, idx, -1)


class Schedule(NamedTuple):
    """Output of :func:`build_schedule`."""

    cfg: HwConfig
    net: object
    static_weight_loads: list
    items: list
    allocation: Allocation
    result: object          # golden.fixed_model.FixedResult, [T, B] = [T, samples]

    @property
    def counts(self) -> dict:
        c = {"events": 0, "tiles": 0, "beats": 0, "commands": 0, "layers": 0,
             "weight_loads": len(self.static_weight_loads), "timesteps": 0}
        for it in self.items:
            if isinstance(it, LayerPass):
                for cmd in it.commands:
                    c["events"] += cmd.op == OP_EVENT
                    c["tiles"] += cmd.op == OP_TILE
                    c["layers"] += cmd.op == OP_LAYER
                c["commands"] += len(it.commands)
                c["beats"] += len(it.beats)
                c["weight_loads"] += len(it.weight_loads)
            else:
                c["timesteps"] += 1
        return {k: int(v) for k, v in c.items()}


def _gather(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """values[index] with 0 where index is -1 (int64)."""
    return np.where(index >= 0, values[np.maximum(index, 0)], 0).astype(np.int64)


def build_schedule(cfg: HwConfig, net, spikes_in) -> Schedule:
    """Weight loads, commands and expected outputs for ``spikes_in`` [samples, T, *net.in_shape].

    Order: for each sample, for each timestep t, for each layer: LAYER(base,
    mode, first) with ``first = (t == 0 and the layer is unshared or first in
    its block)``; then per tile one EVENT per non-zero input spike of the
    tile's fan-in in ascending input index, then TILE (N beats). After the
    last layer of t: a :class:`TimestepEnd` with every allocated membrane row.
    Raises NetworkError / ValueError for a network that does not fit ``cfg``
    or malformed spikes.
    """
    net.validate(cfg)
    spikes = check_spikes(spikes_in, net.in_shape, "spikes_in", "samples, T")
    n_samples, n_t = spikes.shape[:2]
    alloc = plan_allocation(cfg, net)
    result = run_fixed(cfg, net, spikes.transpose(1, 0, *range(2, spikes.ndim)))
    n, s_ = cfg.groups, cfg.slots
    static = alloc.weights == "static"

    static_loads = []
    if static:
        for i in range(len(net.layers)):
            for tp in alloc.tiles[i]:
                static_loads.extend(WeightLoad(tp.weight_base + r, tp.weights[r])
                                    for r in range(tp.fanin.size))

    # per_tile: a tile's load list is built once and shared by every pass of that tile (read-only)
    tile_loads = {} if static else {
        i: [[WeightLoad(r, tp.weights[r]) for r in range(tp.fanin.size)] for tp in tps]
        for i, tps in alloc.tiles.items()}
    region_slots = [(_region_slots(cfg, net, r), r) for r in alloc.regions]
    firsts = {blk[0] for blk in net.blocks()}
    items = []
    tile_cmd = Command(OP_TILE)
    for b in range(n_samples):
        for t in range(n_t):
            for i, layer in enumerate(net.layers):
                x_in = (spikes[b, t] if i == 0 else result.layers[i - 1].spikes[t, b]).ravel()
                tr = result.layers[i]
                readout = layer.mode == "readout"
                vals = (tr.current if readout else tr.membrane)[t, b].ravel()
                spk = tr.spikes[t, b].ravel()
                first = int(t == 0 and (readout or i in firsts))
                layer_cmd = Command(OP_LAYER, 0, alloc.layer_base[i], MODE_CODES[layer.mode], first)
                cmds = [layer_cmd]
                beats, loads = [], []
                for j, tp in enumerate(alloc.tiles[i]):
                    if not static:
                        loads = tile_loads[i][j]
                        cmds = [layer_cmd] if j == 0 else []
                        beats = []
                    rows = np.flatnonzero(x_in[tp.fanin]) + tp.weight_base
                    cmds.extend(Command(OP_EVENT, r) for r in rows.tolist())
                    cmds.append(tile_cmd)
                    bv = _gather(vals, tp.pe_neurons).reshape(n, s_)
                    bs = _gather(spk, tp.pe_neurons).reshape(n, s_)
                    beats.extend(Beat(bs[g], bv[g], j, g, int(g == n - 1), int(readout), i, t, b)
                                 for g in range(n))
                    if not static:
                        prev = next((k for k in range(len(items) - 1, -1, -1)
                                     if isinstance(items[k], LayerPass)), -1)
                        items.append(LayerPass(b, t, i, loads, cmds, beats, j, 1, j == 0, prev))
                if static:
                    items.append(LayerPass(b, t, i, [], cmds, beats, 0, len(alloc.tiles[i]), False))
            mem = {}
            for slots, region in region_slots:
                state = result.stored_state(region.layers[0])[t, b].ravel()
                words = _gather(state, slots)
                for r in range(region.rows):
                    mem[region.base + r] = words[r]
            items.append(TimestepEnd(b, t, mem))
    return Schedule(cfg, net, static_loads, items, alloc, result)
