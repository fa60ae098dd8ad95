"""The exact order in which the core sees the work (docs/schedule.md).

:func:`build_schedule` turns a network and input spikes into weight loads,
commands (docs/interface.md) and the expected output beats and
membrane-buffer contents, all taken from the bit-accurate model
:func:`golden.fixed_model.run_fixed` and remapped to the hardware layout by
the tile mapping of :mod:`golden.mapping` (which neuron sits on which PE of
which tile, which inputs form a tile's fan-in, what a weight-buffer row holds).
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from .beat import Beat
from .config import HwConfig
from .encoding import MODE_BY_NAME, Mode, Op
from .fixed_model import check_spikes, run_fixed
from .geometry import pool_spikes
from .mapping import TilePlan, choose_mappings, membrane_rows_of_block, plan_layer

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
    "MODE_CODES", "Command", "WeightLoad", "MemRow", "Beat", "LayerPass", "TimestepEnd", "Region",
    "TilePlan", "Allocation", "Schedule", "PassPlan", "plan_allocation", "plan_passes", "build_schedule",
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
    spill: int = 0


class WeightLoad(NamedTuple):
    """One ``wload`` beat: ``data[p]`` is the signed weight of PE ``p`` (int64 [A])."""

    addr: int
    data: np.ndarray


class MemRow(NamedTuple):
    """One membrane row moved off chip: an ``mfill`` beat into on-chip row
    ``addr`` or an ``mspill`` beat out of it; ``vrow`` is its off-chip address
    (the row the layer would use with an unbounded buffer: region base + batch
    slot * ``sample_rows`` + row in the region); ``data`` int64 [S] (a fill:
    what the last spill of ``vrow`` carried; a spill: the expected row)."""

    addr: int
    vrow: int
    data: np.ndarray


class LayerPass(NamedTuple):
    """A piece of one layer at one timestep of one sample: the tiles of one
    weight block (or, with static weights, the whole layer).

    Drive it (docs/schedule.md, "Driving a schedule"): its ``weight_loads`` go
    on the ``wload`` stream in item order, the first of them only once every
    command of ``sched.items[loads_after]`` has been accepted (-1: no such
    constraint); its first command waits until all of its weight loads (and
    all earlier ones) have been accepted and, when ``wait_idle``, until the
    core is idle (``busy`` = 0, every earlier beat received). The core then
    produces exactly ``beats``. ``tile`` .. ``tile + tiles - 1`` are the
    layer's tiles it covers.

    Spilled membranes (``allocation.membranes == "spilled"``): ``fills``
    (:class:`MemRow`) go on ``mfill`` before the pass's first command, the
    first of them only once every beat of ``sched.items[fills_after]`` was
    received (-1: no such constraint); the core then offers exactly
    ``spills`` on ``mspill`` (its LAYER has ``spill = 1``). ``chunk`` is the
    layer's weight block (traffic transfers are per layer, chunk and sample).
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
    fills: list = []
    spills: list = []
    fills_after: int = -1
    chunk: int = 0


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


class Allocation(NamedTuple):
    """Buffer allocation of a network on a build (docs/schedule.md, "Buffer allocation").

    ``weights``       "static" (every weight block loaded once, before the
                      first sample) or "streamed" (blocks pass through the
                      weight buffer as a ring while EVENTs run).
    ``weight_rows_used``  rows written (static: all blocks; streamed: the
                      highest row the ring reaches).
    ``regions``       membrane regions of one sample in layer order.
    ``mem_rows_used`` rows of the membrane buffer in use (all samples of a batch).
    ``layer_base``    layer index -> membrane base row of batch slot 0 (readout: 0).
    ``tiles``         layer index -> list of :class:`golden.mapping.TilePlan`.
    ``plans``         layer index -> :class:`golden.mapping.LayerPlan` (mapping, tiles, weight blocks).
    ``block_base``    (layer, block) -> first weight row (static weights; streamed: {}).
    ``batch``         samples that run interleaved per weight block (1 = sample after
                      sample); each batch slot has its own membrane regions.
    ``sample_rows``   membrane rows of one sample (the offset between batch slots).
    ``membranes``     "resident" (every region of a batch stays on chip) or
                      "spilled" (the regions of one sample exceed ``mem_rows``:
                      they live off chip, each pass fills its rows into a ring of
                      on-chip rows, runs and spills them; ``batch`` = all samples,
                      ``layer_base`` / ``regions`` are off-chip rows).
    """

    weights: str
    weight_rows_used: int
    regions: list
    mem_rows_used: int
    layer_base: dict
    tiles: dict
    plans: dict
    block_base: dict
    batch: int
    sample_rows: int
    membranes: str = "resident"

    def describe(self) -> dict:
        """JSON-able summary (no weight data)."""
        return {"weights": self.weights, "membranes": self.membranes,
                "weight_rows_used": self.weight_rows_used,
                "mem_rows_used": self.mem_rows_used, "batch": self.batch,
                "sample_rows": self.sample_rows,
                "regions": [{"layers": list(r.layers), "base": r.base, "rows": r.rows, "mode": r.mode}
                            for r in self.regions],
                "layers": {i: {"mapping": p.mapping, "base": self.layer_base[i],
                               "tiles": len(p.tiles), "weight_blocks": len(p.blocks),
                               "block_rows": [b.rows for b in p.blocks],
                               "fanin_max": max((t.fanin.size for t in p.tiles), default=0),
                               "bias_rows": int(p.tiles[0].bias_rows.size) if p.tiles else 0}
                           for i, p in self.plans.items()}}


def plan_allocation(cfg: HwConfig, net, mapping: Optional[str] = None, samples: int = 1,
                    weights: bool = True) -> Allocation:
    """Lay every layer onto the array and allocate the buffers (docs/schedule.md).

    ``mapping`` forces one of :data:`golden.mapping.MAPPINGS` on every layer
    (default: :func:`golden.mapping.choose_mappings`). ``samples``: how many
    samples will run; with streamed weights up to that many run interleaved
    (``batch``) as far as their membrane regions fit ``mem_rows``. ``net``
    must already be validated against ``cfg`` (with the same ``mapping``).
    ``weights=False``: geometry only (``net`` needs ``layers`` of
    :class:`golden.geometry.LayerGeometry` and ``blocks()``; the weight blocks
    carry no weights), for cycle models such as ``benchmarks/dataflow.py``.
    """
    mappings = choose_mappings(cfg, net.layers, mapping)
    plans = {i: plan_layer(cfg, layer, mappings[i], weights) for i, layer in enumerate(net.layers)}
    total = sum(p.weight_rows for p in plans.values())
    static = total <= cfg.weight_rows
    block_base, row = {}, 0
    if static:
        for i, p in plans.items():
            for k, blk in enumerate(p.blocks):
                block_base[(i, k)] = row
                row += blk.rows
    regions, base_of, mrow = [], {}, 0
    for blk in net.blocks():
        first = net.layers[blk[0]]
        rows = membrane_rows_of_block(cfg, first, mappings[blk[0]])
        regions.append(Region(tuple(blk), mrow, rows, first.mode))
        for i in blk:
            base_of[i] = mrow
        mrow += rows
    for i in range(len(net.layers)):
        base_of.setdefault(i, 0)
    # samples interleaved per layer (and weight block) as far as their membranes fit
    spilled = mrow > cfg.mem_rows
    batch = max(1, int(samples) if spilled else
                min(int(samples), cfg.mem_rows // mrow if mrow else int(samples)))
    used = total if static else _ring_extent(cfg, plans)
    mem_used = cfg.mem_rows if spilled else mrow * batch
    return Allocation("static" if static else "streamed", int(used), regions, mem_used, base_of,
                      {i: p.tiles for i, p in plans.items()}, plans, block_base, batch, mrow,
                      "spilled" if spilled else "resident")


def _ring_extent(cfg: HwConfig, plans: dict) -> int:
    """Highest weight row + 1 the streaming ring writes over one pass of the network."""
    ring = _Ring(cfg.weight_rows)
    for i, p in plans.items():
        for k, blk in enumerate(p.blocks):
            ring.place((i, k), blk.rows, 0)
    return ring.extent


class _Ring:
    """Weight-buffer rows as a ring of blocks (docs/schedule.md, "Streamed weights").

    :meth:`place` puts a block at the next free row (back to row 0 when it
    would pass the end), evicting the blocks it overlaps, and returns its base
    row and the index of the last pass that used an evicted block (-1: none);
    :meth:`find` says where a block already is.
    """

    def __init__(self, rows: int):
        self.rows, self.ptr, self.extent = rows, 0, 0
        self.resident: dict = {}          # key -> [lo, hi, last pass index]

    def find(self, key):
        return self.resident.get(key)

    def place(self, key, size: int, use: int) -> tuple:
        if self.ptr + size > self.rows:
            self.ptr = 0
        lo, hi = self.ptr, self.ptr + size
        after = -1
        for k in [k for k, (a, b, _) in self.resident.items() if a < hi and lo < b]:
            after = max(after, self.resident.pop(k)[2])
        self.resident[key] = [lo, hi, use]
        self.ptr = hi
        self.extent = max(self.extent, hi)
        return lo, after

    def use(self, key, index: int) -> None:
        self.resident[key][2] = index


def _region_words(cfg: HwConfig, plan, region: Region) -> np.ndarray:
    """int64 [rows, S]: index into the flattened stored state of each membrane word, -1 = padding.

    CHAINED row ``base + j`` holds slot ``k`` of tile ``j``: the stored state
    ``[C/N, H, W]`` index of group 0's neuron (every group's slot ``k`` is the
    same ``(c', h, w)``); INDEPENDENT row ``base + j·N + g`` holds the neurons of
    PEs ``g·S ..`` of tile ``j``.
    """
    pe = np.stack([t.pe_neurons for t in plan.tiles]) if plan.tiles else np.zeros((0, cfg.array), np.int64)
    s_, n = cfg.slots, cfg.groups
    if region.mode == "chained":
        return pe[:, :s_].astype(np.int64)
    return pe.reshape(-1, n, s_).reshape(-1, s_).astype(np.int64)


class Schedule(NamedTuple):
    """Output of :func:`build_schedule`.

    ``synapses``: real synaptic additions of all EVENTs (PEs whose neuron is
    connected to the EVENT's input; the rest add a structural 0), for PE
    utilization = synapses / (A · cycles); bias EVENTs (F2b) are not synapses.
    ``bias_events``: the always-on bias EVENTs among ``counts["events"]``."""

    cfg: HwConfig
    net: object
    static_weight_loads: list
    items: list
    allocation: Allocation
    result: object          # golden.fixed_model.FixedResult, [T, B] = [T, samples]
    synapses: int = 0
    bias_events: int = 0

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
        c["synapses"] = self.synapses
        c["bias_events"] = self.bias_events
        return {k: int(v) for k, v in c.items()}


def _gather(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """values[index] with 0 where index is -1 (int64)."""
    return np.where(index >= 0, values[np.maximum(index, 0)], 0).astype(np.int64)


class PassPlan(NamedTuple):
    """The static part of one :class:`LayerPass` (no spikes): what
    :func:`plan_passes` decides and both :func:`build_schedule` and the
    dataflow benchmark use.

    ``blocks``: ``[(k, weight base row, load)]`` for the layer's weight blocks
    ``k`` the pass runs (``load``: the pass loads the block into its rows);
    ``layer_cmd``: the pass starts with ``LAYER(base, mode, first)``; ``tile0``:
    the tile the core's tile counter counts from."""

    sample: int
    t: int
    layer: int
    blocks: list
    layer_cmd: bool
    base: int
    first: int
    tile0: int
    wait_idle: bool
    loads_after: int
    fill: bool = False
    spill: bool = False
    vbase: int = 0
    rows: int = 0
    fills_after: int = -1


def plan_passes(cfg: HwConfig, net, alloc: Allocation, n_samples: int, n_t: int):
    """Passes and timestep ends in execution order (docs/schedule.md, "Command order").

    Yields :class:`PassPlan` items and ``(sample, t)`` tuples (a
    :class:`TimestepEnd` goes there); ``loads_after`` indexes the yielded
    sequence (passes and ends alike, as ``sched.items`` does).
    """
    n = cfg.groups
    static = alloc.weights == "static"
    spilled = alloc.membranes == "spilled"
    blocks_of = {i: blk for blk in net.blocks() for i in blk}
    firsts = {blk[0] for blk in net.blocks()}
    ring = _Ring(cfg.weight_rows)
    mring = _Ring(cfg.mem_rows)       # spilled membranes: on-chip rows of the passes
    last_spill: dict = {}             # off-chip base row -> index of the pass that spilled it
    mfence = -1                       # fills_after never decreases along the passes
    index = 0
    for b0 in range(0, n_samples, alloc.batch):
        batch = range(b0, min(n_samples, b0 + alloc.batch))
        for t in range(n_t):
            prev, prev_tile0 = None, 0    # (layer, sample), tile0 of the previous pass
            for i, layer in enumerate(net.layers):
                plan = alloc.plans[i]
                readout = layer.mode == "readout"
                first = int(t == 0 and (readout or i in firsts))
                rows_per_tile = 1 if layer.mode == "chained" else n
                groups = [list(range(len(plan.blocks)))] if static and not spilled else \
                    [[k] for k in range(len(plan.blocks))]
                layer_start = True
                for ks in groups:
                    for b in batch:
                        j0 = plan.blocks[ks[0]].j0
                        start = prev != (i, b) or spilled
                        tile0 = j0 if start else prev_tile0
                        base = 0 if readout or not start else \
                            alloc.layer_base[i] + (b - b0) * alloc.sample_rows + j0 * rows_per_tile
                        mem = {}
                        if spilled and not readout:
                            blk_ = blocks_of[i]
                            nrows = (plan.blocks[ks[-1]].j1 - j0) * rows_per_tile
                            lo, fafter = mring.place(("m", index), nrows, index)
                            spill = i != blk_[-1] or t < n_t - 1
                            # the fill also waits for the pass that spilled these rows
                            # (its beats received => its spills received)
                            # and never before an earlier pass's fills (the ring forgets
                            # a partly overwritten pass, an earlier fence does not)
                            fafter = mfence = max(fafter, last_spill.get(base, -1), mfence)
                            if spill:
                                last_spill[base] = index
                            mem = dict(vbase=base, rows=nrows, fills_after=fafter,
                                       fill=not first, spill=spill)
                            base = lo
                        blocks, after = [], -1
                        for k in ks:
                            if static:
                                blocks.append((k, alloc.block_base[(i, k)], False))
                                continue
                            hit = ring.find((i, k))
                            if hit is None:
                                wbase, after = ring.place((i, k), plan.blocks[k].rows, index)
                                blocks.append((k, wbase, True))
                            else:
                                ring.use((i, k), index)
                                blocks.append((k, hit[0], False))
                        yield PassPlan(b, t, i, blocks, start, base, first, tile0, layer_start, after,
                                       **mem)
                        index += 1
                        layer_start = False
                        prev, prev_tile0 = (i, b), tile0
            for b in batch:
                yield (b, t)
                index += 1


def build_schedule(cfg: HwConfig, net, spikes_in, mapping: Optional[str] = None) -> Schedule:
    """Weight loads, commands and expected outputs for ``spikes_in`` [samples, T, *net.in_shape].

    Order (docs/schedule.md, "Command order"): samples run in batches of
    ``allocation.batch``; for each batch, each timestep ``t``, each layer,
    each weight block of the layer (in tile order), each sample of the batch:
    the block's tiles, each as one EVENT per non-zero input spike of its
    fan-in in ascending input index, then TILE. A pass starts with
    ``LAYER(base, mode, first)`` when it is the first of its layer and sample
    or follows a pass of another sample; ``first = (t == 0 and the layer is
    unshared or first in its block)``. After the last layer of ``t``: a
    :class:`TimestepEnd` per sample of the batch with every membrane row of
    that sample. ``mapping`` forces one mapping on every layer. Raises
    NetworkError / ValueError for a network that does not fit ``cfg`` or
    malformed spikes.
    """
    net.validate(cfg, mapping=mapping)
    spikes = check_spikes(spikes_in, net.in_shape, "spikes_in", "samples, T")
    n_samples, n_t = spikes.shape[:2]
    alloc = plan_allocation(cfg, net, mapping, n_samples)
    result = run_fixed(cfg, net, spikes.transpose(1, 0, *range(2, spikes.ndim)))
    n, s_ = cfg.groups, cfg.slots
    static = alloc.weights == "static"
    plans = alloc.plans

    static_loads = []
    if static:
        for (i, k), base in alloc.block_base.items():
            w = plans[i].blocks[k].weights
            static_loads.extend(WeightLoad(base + r, w[r]) for r in range(w.shape[0]))

    region_words = [(_region_words(cfg, plans[r.layers[0]], r), r) for r in alloc.regions]
    spilled = alloc.membranes == "spilled"
    unit_of = {i: (w, r) for w, r in region_words for i in r.layers}
    items = []
    synapses = bias_events = 0
    tile_cmd = Command(OP_TILE)
    for pp in plan_passes(cfg, net, alloc, n_samples, n_t):
        if not isinstance(pp, PassPlan):
            b, t = pp
            slot_base = (b % alloc.batch) * alloc.sample_rows
            mem = {}
            for words, region in region_words:
                state = result.stored_state(region.layers[0])[t, b].ravel()
                vals = _gather(state, words)
                for r in range(region.rows):
                    mem[slot_base + region.base + r] = vals[r]
            # spilled: the rows are checked on mspill instead (nothing stays on chip)
            items.append(TimestepEnd(b, t, {} if spilled else mem))
            continue
        b, t, i = pp.sample, pp.t, pp.layer
        layer, plan, tr = net.layers[i], plans[i], result.layers[i]
        readout = layer.mode == "readout"
        x_in = (spikes[b, t] if i == 0 else
                pool_spikes(result.layers[i - 1].spikes[t, b][None], layer.pool)[0]).ravel()
        x_skip = None if layer.skip is None else result.layers[layer.skip].spikes[t, b].ravel()
        vals = (tr.current if readout else tr.membrane)[t, b].ravel()
        spk = tr.spikes[t, b].ravel()
        cmds = [Command(OP_LAYER, 0, pp.base, MODE_CODES[layer.mode], pp.first, int(pp.spill))] \
            if pp.layer_cmd else []
        fills, spills = [], []
        if pp.rows:
            words, region = unit_of[i]
            r0 = pp.vbase - region.base - (b % alloc.batch) * alloc.sample_rows
            seg = words[r0:r0 + pp.rows]
            blk_ = region.layers
            if pp.fill:
                prev = (result.layers[blk_[-1]].v_after[t - 1] if i == blk_[0] else
                        result.layers[blk_[blk_.index(i) - 1]].v_after[t])[b].ravel()
                fills = [MemRow(pp.base + r, pp.vbase + r, _gather(prev, seg[r]))
                         for r in range(pp.rows)]
            if pp.spill:
                now = tr.v_after[t, b].ravel()
                spills = [MemRow(pp.base + r, pp.vbase + r, _gather(now, seg[r]))
                          for r in range(pp.rows)]
        loads, beats = [], []
        for k, wbase, load in pp.blocks:
            blk = plan.blocks[k]
            if load:
                loads.extend(WeightLoad(wbase + r, blk.weights[r]) for r in range(blk.rows))
            for j in range(blk.j0, blk.j1):
                tp = plan.tiles[j]
                rel = tp.rows[np.flatnonzero(x_in[tp.fanin])]
                synapses += int(blk.synapses[rel].sum())
                bias_events += tp.bias_rows.size
                # F2b: the bias rows first, every tile and timestep, then the input spikes
                cmds.extend(Command(OP_EVENT, r) for r in (tp.bias_rows + wbase).tolist())
                cmds.extend(Command(OP_EVENT, r) for r in (rel + wbase).tolist())
                if x_skip is not None:
                    # F2c: the shortcut's events (source layer's spikes) after the layer's own
                    srel = tp.skip_rows[np.flatnonzero(x_skip[tp.skip_fanin])]
                    synapses += int(blk.synapses[srel].sum())
                    cmds.extend(Command(OP_EVENT, r) for r in (srel + wbase).tolist())
                cmds.append(tile_cmd)
                bv = _gather(vals, tp.pe_neurons).reshape(n, s_)
                bs = _gather(spk, tp.pe_neurons).reshape(n, s_)
                beats.extend(Beat(bs[g], bv[g], j, g, int(g == n - 1), int(readout), i, t, b, pp.tile0)
                             for g in range(n))
        j0 = plan.blocks[pp.blocks[0][0]].j0
        items.append(LayerPass(b, t, i, loads, cmds, beats, j0, plan.blocks[pp.blocks[-1][0]].j1 - j0,
                               pp.wait_idle, pp.loads_after, fills, spills,
                               pp.fills_after if fills else -1, pp.blocks[0][0]))
    return Schedule(cfg, net, static_loads, items, alloc, result, synapses, bias_events)
