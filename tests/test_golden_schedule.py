"""Tests of golden/schedule.py.

The main check replays every schedule through golden.core_model.CoreModel (an
independent tile-by-tile implementation of docs/interface.md) and requires
its beats and membrane rows to equal the schedule's expectations, which come
from golden.fixed_model remapped to the hardware layout. Mapping and
allocation are also checked against small hand-worked examples.
"""

from __future__ import annotations

import numpy as np
import pytest

from golden.config import HwConfig
from golden.core_model import CoreModel
from golden.network import Layer, Network, NetworkError
from golden.geometry import LayerGeometry
from golden.mapping import (choose_mappings, mapping_cost, rows_needed, tile_fanin, tile_pe_neurons,
                            tile_weights)
from golden.ws_mapping import ws_pe_neurons, ws_shape, ws_tile_events, ws_variant_weights, ws_variants
from golden.schedule import (
    MODE_CHAINED, MODE_INDEPENDENT, MODE_READOUT, OP_EVENT, OP_LAYER, OP_TILE, LayerPass,
    TimestepEnd, build_schedule, plan_allocation,
)
from test_golden_fixed import rand_spikes, small_net


def replay(cfg: HwConfig, sched, loads: str = "early") -> CoreModel:
    """Drive the schedule through CoreModel; assert every beat and membrane row.

    Weight loads follow the fences of docs/schedule.md: ``loads="early"``
    applies each one as soon as its pass's ``loads_after`` fence allows (right
    after the fencing command, interleaved with later passes' commands: what a
    concurrent driver may do at the earliest); ``"late"`` right before its
    pass's first command. A schedule whose fences are too weak fails "early".
    """
    core = CoreModel(cfg, strict=True)
    for wl in sched.static_weight_loads:
        core.load_weight(wl.addr, wl.data)
    end, count = {}, 0
    for idx, item in enumerate(sched.items):
        if isinstance(item, LayerPass):
            count += len(item.commands)
            end[idx] = count
    stream = [(end[it.loads_after] if it.loads_after >= 0 else 0, idx, wl)
              for idx, it in enumerate(sched.items) if isinstance(it, LayerPass) for wl in it.weight_loads]
    state = {"ptr": 0, "done": 0}

    def flush(upto=None):
        while state["ptr"] < len(stream):
            fence, idx, wl = stream[state["ptr"]]
            if (upto is None and fence > state["done"]) or (upto is not None and idx > upto):
                break
            assert fence <= state["done"], f"pass {idx}: loads fenced behind commands not yet sent"
            core.load_weight(wl.addr, wl.data)
            state["ptr"] += 1

    for idx, item in enumerate(sched.items):
        if isinstance(item, LayerPass):
            flush(None if loads == "early" else idx)
            flush(idx)                       # all of this pass's loads precede its first command
            got = []
            for cmd in item.commands:
                got.extend(core.command(cmd))
                state["done"] += 1
                if loads == "early":
                    flush()
            assert len(got) == len(item.beats), f"sample {item.sample} t {item.t} layer {item.layer}: beat count"
            for g, e in zip(got, item.beats):
                where = f"sample {e.sample} t {e.t} layer {e.layer} tile {e.tile} group {e.group}"
                assert (g.tile, g.group, g.last, g.readout) == (e.wire_tile, e.group, e.last, e.readout), where
                np.testing.assert_array_equal(g.spikes, e.spikes, err_msg=f"{where}: spikes")
                np.testing.assert_array_equal(g.values, e.values, err_msg=f"{where}: values")
        else:
            assert isinstance(item, TimestepEnd)
            for row, words in item.membrane.items():
                np.testing.assert_array_equal(core.read_membrane(row), words,
                                              err_msg=f"sample {item.sample} t {item.t}: membrane row {row}")
    assert core.error == 0
    assert int(core.mem_written.sum()) == sched.allocation.mem_rows_used
    return core


def _rows(cfg, net):
    """(largest weight block, all blocks, allocation) of ``net`` on ``cfg``."""
    alloc = plan_allocation(cfg, net)
    blocks = [b.rows for p in alloc.plans.values() for b in p.blocks]
    return max(blocks), sum(blocks), alloc


@pytest.mark.parametrize("mapping", ["weight_stationary", "position"])
@pytest.mark.parametrize("weights", ["static", "streamed", "double"])
@pytest.mark.parametrize("kind", ["conv_block", "linear_block", "independent_block"])
@pytest.mark.parametrize("array,groups", [(8, 1), (8, 2), (12, 4)])
def test_schedule_replays_on_core_model(kind, array, groups, weights, mapping):
    rng = np.random.default_rng(array * 10 + groups + len(kind))
    cfg = HwConfig(array=array, groups=groups, theta_int=64, leak_int=200, weight_rows=4096, mem_rows=4096)
    net = small_net(rng, kind, groups)
    alloc = plan_allocation(cfg, net, mapping)
    blocks = [b.rows for p in alloc.plans.values() for b in p.blocks]
    # exactly at the limits: everything once / one block at a time / two blocks in flight
    rows = {"static": sum(blocks), "streamed": max(blocks),
            "double": min(sum(blocks) - 1, 2 * max(blocks))}[weights]
    cfg = cfg.replace(weight_rows=rows, mem_rows=2 * alloc.sample_rows)
    spikes = rand_spikes(rng, (2, 3) + net.in_shape)
    sched = build_schedule(cfg, net, spikes, mapping=mapping)
    assert sched.allocation.weights == ("static" if weights == "static" else "streamed")
    assert (len(sched.static_weight_loads) > 0) == (weights == "static")
    assert sched.allocation.batch == 2
    assert {p.mapping for p in sched.allocation.plans.values()} == {mapping}
    replay(cfg, sched, "early")
    replay(cfg, sched, "late")
    # the network must do something, otherwise the replay proves little
    assert sched.result.layers[0].spikes.any() and sched.counts["events"] > 0
    padded = any((p.pe_neurons < 0).any() for tp in sched.allocation.tiles.values() for p in tp)
    if (array, groups) != (8, 2) or kind == "conv_block":
        assert padded, "configuration chosen to exercise padding PEs"


def test_saturating_schedule_replays():
    rng = np.random.default_rng(11)
    cfg = HwConfig(array=8, groups=2, weight_width=6, acc_width=7, mem_width=8, frac_bits=4,
                   theta_int=40, leak_int=256, weight_rows=4096, mem_rows=4096)
    net = small_net(rng, "conv_block", 2, lo=-16, hi=31)
    sched = build_schedule(cfg, net, rand_spikes(rng, (2, 3) + net.in_shape, p=0.7))
    replay(cfg, sched)
    assert (sched.result.layers[0].current == cfg.acc_max).any()


@pytest.mark.parametrize("reset,fire", [("hard", "ge"), ("soft", "ge")])
def test_reset_and_fire_modes_replay(reset, fire):
    rng = np.random.default_rng(2)
    cfg = HwConfig(array=8, groups=2, theta_int=64, leak_int=128, reset=reset, fire=fire,
                   weight_rows=4096, mem_rows=4096)
    net = small_net(rng, "linear_block", 2)
    replay(cfg, build_schedule(cfg, net, rand_spikes(rng, (2, 4) + net.in_shape)))


def test_replay_detects_a_wrong_expectation():
    """The replay harness itself must be able to fail."""
    rng = np.random.default_rng(0)
    cfg = HwConfig(array=8, groups=2, theta_int=64, weight_rows=4096, mem_rows=4096)
    net = small_net(rng, "linear_block", 2)
    sched = build_schedule(cfg, net, rand_spikes(rng, (1, 3) + net.in_shape))
    end = next(it for it in sched.items if isinstance(it, TimestepEnd) and it.t == 1)
    row = next(iter(end.membrane))
    end.membrane[row] = end.membrane[row] + 1
    with pytest.raises(AssertionError, match=f"membrane row {row}"):
        replay(cfg, sched)


# =========================================================================
# mapping, by hand
# =========================================================================

def test_pe_mapping_by_hand():
    cfg = HwConfig(array=4, groups=2)                        # S = 2
    chained = Layer.conv((1, 1, 3), np.zeros((4, 1, 1, 1)), mode="chained")     # out (4, 1, 3), Cg = 2
    # group 0 holds channels 0-1 (neurons 0..5), group 1 channels 2-3 (neurons 6..11)
    assert tile_pe_neurons(cfg, chained).tolist() == [[0, 1, 6, 7], [2, 3, 8, 9], [4, 5, 10, 11]]
    indep = Layer.conv((1, 1, 3), np.zeros((5, 1, 1, 1)), mode="independent")  # 15 neurons
    assert tile_pe_neurons(cfg, indep).tolist() == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11],
                                                    [12, 13, 14, -1]]
    pad = Layer.linear(np.zeros((6, 2)), mode="chained")     # Cg = 3 slots, S = 2 -> 2 tiles
    assert tile_pe_neurons(cfg, pad).tolist() == [[0, 1, 3, 4], [2, -1, 5, -1]]


def test_fanin_and_weight_rows_by_hand():
    cfg = HwConfig(array=4, groups=2)
    w = np.arange(18).reshape(2, 1, 3, 3) - 9
    layer = Layer.conv((1, 4, 4), w, padding=1)              # out (2, 4, 4), Cg = 1, S = 2
    pe = tile_pe_neurons(cfg, layer)[0]                     # (c0,0,0) (c0,0,1) (c1,0,0) (c1,0,1)
    assert pe.tolist() == [0, 1, 16, 17]
    fan = tile_fanin(cfg, layer, pe)
    assert fan.tolist() == [0, 1, 2, 4, 5, 6]                # input rows 0..1, cols 0..2
    rows = tile_weights(cfg, layer, pe, fan)
    # input 5 = (1,1): tap (2,2) for output (0,0), tap (2,1) for output (0,1)
    assert rows[4].tolist() == [w[0, 0, 2, 2], w[0, 0, 2, 1], w[1, 0, 2, 2], w[1, 0, 2, 1]]
    # input 4 = (1,0): tap (2,1) for output (0,0), tap (2,0) for output (0,1)
    assert rows[3].tolist() == [w[0, 0, 2, 1], w[0, 0, 2, 0], w[1, 0, 2, 1], w[1, 0, 2, 0]]
    # input 2 = (0,2): outside the window of output (0,0); tap (1,2) for output (0,1)
    assert rows[2].tolist() == [0, w[0, 0, 1, 2], 0, w[1, 0, 1, 2]]


def test_ws_mapping_by_hand():
    """docs/schedule.md, weight-stationary example: A = 4, N = 2 (S = 2), out (2, 4, 4):
    Cg = 1 channel per group, so p = 2 positions per tile, 2 blocks per output row."""
    cfg = HwConfig(array=4, groups=2)
    w = np.arange(18).reshape(2, 1, 3, 3) - 9
    layer = Layer.conv((1, 4, 4), w, padding=1)
    sh = ws_shape(cfg, layer)
    assert (sh.cs, sh.p, sh.chunks, sh.bf, sh.edge, sh.kx, sh.rows, sh.tiles) == (1, 2, 1, 2, 0, 4, 12, 8)
    pe = ws_pe_neurons(cfg, layer)
    # tile 1 = output row 0, positions 2-3; tile 2 = row 1, positions 0-1
    assert pe[:3].tolist() == [[0, 1, 16, 17], [2, 3, 18, 19], [4, 5, 20, 21]]
    fan, rows = ws_tile_events(cfg, layer, 0)       # window rows -1..1, cols -1..2
    assert fan.tolist() == [0, 1, 2, 4, 5, 6]
    assert rows.tolist() == [5, 6, 7, 9, 10, 11]     # (dy·4 + dx'), dy = 1, 2; dx' = 1, 2, 3
    fan1, rows1 = ws_tile_events(cfg, layer, 1)     # window cols 1..4 (col 4 is outside the input)
    assert fan1.tolist() == [1, 2, 3, 5, 6, 7] and rows1.tolist() == [4, 5, 6, 8, 9, 10]
    blk, conn = ws_variant_weights(cfg, layer, 0, 2)
    # row 9 = (dy 2, dx' 1): slot q = 0 takes tap (2, 1), q = 1 tap (2, 0); the same row for every tile
    assert blk[9].tolist() == [w[0, 0, 2, 1], w[0, 0, 2, 0], w[1, 0, 2, 1], w[1, 0, 2, 0]]
    # row 0 = (dy 0, dx' 0): only q = 0 is connected
    assert blk[0].tolist() == [w[0, 0, 0, 0], 0, w[1, 0, 0, 0], 0] and conn[0].tolist() == [1, 0, 1, 0]
    # the rows agree with the position mapping's rows of the same tile
    pos = tile_weights(cfg, layer, pe[0], fan)
    np.testing.assert_array_equal(blk[rows], pos)


def test_ws_edge_block_and_chunks():
    """W = 5 with p = 2: two full blocks and an edge block per output row, whose
    weight block has zero columns for the missing position; C/N > S: chunks."""
    cfg = HwConfig(array=4, groups=2)
    rng = np.random.default_rng(3)
    layer = Layer.conv((1, 2, 5), rng.integers(-9, 9, (2, 1, 3, 3)), padding=1)
    sh = ws_shape(cfg, layer)
    assert (sh.p, sh.bf, sh.edge, sh.blocks) == (2, 2, 1, 6)
    assert [v[1:] for v in ws_variants(cfg, layer)] == [(2, 0, 4), (1, 4, 6)]
    pe = ws_pe_neurons(cfg, layer)
    assert pe[4].tolist() == [4, -1, 14, -1] and pe[5].tolist() == [9, -1, 19, -1]
    edge, conn = ws_variant_weights(cfg, layer, 0, 1)
    assert not edge[:, [1, 3]].any() and not conn[:, [1, 3]].any()
    wide = Layer.conv((1, 3, 3), rng.integers(-9, 9, (6, 1, 1, 1)))     # Cg = 3 > S = 2
    sw = ws_shape(cfg, wide)
    assert (sw.cs, sw.p, sw.chunks, sw.tiles) == (2, 1, 2, 18)
    pw = ws_pe_neurons(cfg, wide)
    assert pw[0].tolist() == [0, 9, 27, 36]          # chunk 0: channels 0-1 | 3-4 at (0, 0)
    assert pw[9].tolist() == [18, -1, 45, -1]        # chunk 1: channel 2 | 5, the other slot padding


def test_mapping_choice():
    """The cheaper mapping at the nominal rate, per sharing unit; blocks share one."""
    cfg = HwConfig(array=128, groups=4, weight_rows=8192, mem_rows=4096)
    big = LayerGeometry("conv", (128, 8, 8), 128, kernel=3, padding=1)
    assert choose_mappings(cfg, [big]) == ["weight_stationary"]
    assert mapping_cost(cfg, big, "weight_stationary") < mapping_cost(cfg, big, "position") / 3
    tiny = LayerGeometry("conv", (1, 64, 64), 4, kernel=3, padding=1)   # Cg = 1: p = 32 in a row
    costs = {m: mapping_cost(cfg, tiny, m) for m in ("weight_stationary", "position")}
    assert choose_mappings(cfg, [tiny]) == [min(costs, key=costs.get)]
    assert choose_mappings(cfg, [big], force="position") == ["position"]
    with pytest.raises(ValueError, match="unknown mapping 'rows'"):
        choose_mappings(cfg, [big], force="rows")
    # a block whose first layer alone would pick the other mapping still gets one mapping
    a = LayerGeometry("conv", (4, 8, 8), 4, kernel=3, padding=1, block=0)
    b = LayerGeometry("conv", (4, 8, 8), 4, kernel=3, padding=1, block=0)
    assert len(set(choose_mappings(cfg, [a, b]))) == 1
    # only the mappings whose blocks fit weight_rows are candidates
    small = cfg.replace(weight_rows=1000)
    assert choose_mappings(small, [big]) == ["weight_stationary"]    # 1152 rows per chunk: fits neither
    assert rows_needed(small, [big])[0] == 128 * 9


def test_allocation_by_hand():
    cfg = HwConfig(array=8, groups=2, weight_rows=4096, mem_rows=4096)
    rng = np.random.default_rng(0)
    net = small_net(rng, "conv_block", 2)
    # c1, c2: chained block, out (4,5,5), Cg = 2, S = 4: weight-stationary, p = 2 -> 3 blocks per
    # row (one edge block) x 5 rows = 15 tiles -> rows 0..14; c3: independent, out (3,2,2):
    # Cs = 3, p = 2 -> 2 tiles x N = 4 rows at 15..18
    alloc = plan_allocation(cfg, net, "weight_stationary")
    assert [(r.layers, r.base, r.rows, r.mode) for r in alloc.regions] == [
        ((0, 1), 0, 15, "chained"), ((2,), 15, 4, "independent")]
    assert alloc.mem_rows_used == 19 and alloc.layer_base == {0: 0, 1: 0, 2: 15, 3: 0}
    # three samples, room for two: batches of two, each sample its own 19 rows
    three = plan_allocation(cfg.replace(mem_rows=50), net, "weight_stationary", samples=3)
    assert (three.batch, three.sample_rows, three.mem_rows_used) == (2, 19, 38)
    # fc (linear 12 -> 5) readout: 1 tile, fan-in 12
    assert [p.fanin.size for p in alloc.tiles[3]] == [12]
    assert alloc.weights == "static" and alloc.batch == 1
    blocks = [(i, k, b.rows) for i, p in alloc.plans.items() for k, b in enumerate(p.blocks)]
    bases = [alloc.block_base[(i, k)] for i, k, _ in blocks]
    assert bases == list(np.cumsum([0] + [r for *_, r in blocks[:-1]]))
    # c1 (2 -> 4 channels, kx = 4): a full and an edge block of 2·3·4 rows
    assert net.layers[0].in_shape[0] == 2 and [b.rows for b in alloc.plans[0].blocks] == [24, 24]
    d = alloc.describe()
    assert d["layers"][0]["mapping"] == "weight_stationary" and d["layers"][0]["weight_blocks"] == 2


def test_command_stream_structure():
    rng = np.random.default_rng(4)
    cfg = HwConfig(array=8, groups=2, theta_int=64, weight_rows=4096, mem_rows=4096)
    net = small_net(rng, "conv_block", 2)
    spikes = rand_spikes(rng, (2, 3) + net.in_shape)
    sched = build_schedule(cfg, net, spikes)
    alloc = sched.allocation
    passes = [it for it in sched.items if isinstance(it, LayerPass)]
    # both samples' membranes fit: they run interleaved, layer by layer
    assert alloc.batch == 2
    assert [(p.sample, p.t, p.layer) for p in passes] == [
        (b, t, i) for t in range(3) for i in range(4) for b in range(2)]
    assert all(p.wait_idle == (p.sample == 0) and p.loads_after == -1 and not p.weight_loads
               for p in passes)
    ends = [(it.sample, it.t) for it in sched.items if isinstance(it, TimestepEnd)]
    assert ends == [(b, t) for t in range(3) for b in range(2)]
    synapses = 0
    for p in passes:
        layer = net.layers[p.layer]
        plan = alloc.plans[p.layer]
        head = p.commands[0]
        assert head.op == OP_LAYER
        assert head.mode == {"chained": MODE_CHAINED, "independent": MODE_INDEPENDENT,
                             "readout": MODE_READOUT}[layer.mode]
        assert head.base == (0 if layer.mode == "readout" else
                             alloc.layer_base[p.layer] + p.sample * alloc.sample_rows)
        # c2 is the second layer of its block: never first. Everything else: first at t = 0.
        assert head.first == int(p.t == 0 and p.layer != 1)
        x = (spikes[p.sample, p.t] if p.layer == 0
             else sched.result.layers[p.layer - 1].spikes[p.t, p.sample]).ravel()
        tile = 0
        seen = []
        for cmd in p.commands[1:]:
            if cmd.op == OP_TILE:
                tp = plan.tiles[tile]
                base = alloc.block_base[(p.layer, tp.block)]
                want = [int(base + r) for v, r in zip(tp.fanin, tp.rows) if x[v]]
                assert seen == want, f"layer {p.layer} tile {tile}: events"
                synapses += int(plan.blocks[tp.block].synapses[[r - base for r in seen]].sum())
                tile, seen = tile + 1, []
                continue
            assert cmd.op == OP_EVENT
            seen.append(cmd.row)
        assert tile == len(alloc.tiles[p.layer]) and not seen
        assert len(p.beats) == tile * cfg.groups
        assert [(b.tile, b.group, b.last) for b in p.beats] == [
            (j, g, int(g == cfg.groups - 1)) for j in range(tile) for g in range(cfg.groups)]
    c = sched.counts
    assert c["beats"] == c["tiles"] * cfg.groups
    assert c["commands"] == c["events"] + c["tiles"] + c["layers"]
    assert c["layers"] == 2 * 3 * 4 and c["timesteps"] == 6
    assert c["synapses"] == synapses and 0 < synapses <= c["events"] * cfg.array


def test_synapse_count_by_brute_force():
    """counts["synapses"] = real (neuron, input) pairs behind every EVENT, counted from the layer."""
    rng = np.random.default_rng(5)
    cfg = HwConfig(array=8, groups=2, theta_int=64, weight_rows=4096, mem_rows=4096)
    layer = Layer.conv((2, 5, 5), rng.integers(-5, 9, (4, 2, 3, 3)), padding=1, name="c")
    net = Network((2, 5, 5), (layer,))
    spikes = rand_spikes(rng, (1, 1, 2, 5, 5), p=0.4)
    for mapping in ("weight_stationary", "position"):
        sched = build_schedule(cfg, net, spikes, mapping=mapping)
        # every spike reaches C_out x (output positions whose window holds it)
        x = spikes[0, 0]
        want = 0
        for _ci, ih, iw in zip(*np.nonzero(x)):
            for oh in range(5):
                for ow in range(5):
                    if abs(ih - oh) <= 1 and abs(iw - ow) <= 1:
                        want += 4
        assert sched.counts["synapses"] == want, mapping


def test_streamed_passes():
    """Streamed weights: one pass per weight block (and sample of a batch), loads fenced
    behind the last pass that read the rows they overwrite, mini-batch interleaving."""
    rng = np.random.default_rng(9)
    cfg = HwConfig(array=8, groups=2, theta_int=64, weight_rows=4096, mem_rows=4096)
    net = small_net(rng, "conv_block", 2)
    biggest, total, alloc = _rows(cfg, net)
    cfg = cfg.replace(weight_rows=biggest, mem_rows=2 * alloc.sample_rows)
    sched = build_schedule(cfg, net, rand_spikes(rng, (3, 2) + net.in_shape))
    assert sched.allocation.weights == "streamed" and sched.allocation.batch == 2
    items = sched.items
    passes = [(k, it) for k, it in enumerate(items) if isinstance(it, LayerPass)]
    nblocks = [len(alloc.plans[i].blocks) for i in range(4)]
    # batch 0 = samples 0, 1 interleaved per block; then sample 2 alone
    order = [(p.sample, p.t, p.layer, p.tile) for _, p in passes]
    want = [(b, t, i, alloc.plans[i].blocks[k].j0) for bs in ((0, 1), (2,)) for t in range(2)
            for i in range(4) for k in range(nblocks[i]) for b in bs]
    assert order == want
    for k, p in passes:
        # a LAYER starts every pass that follows another sample's or another layer's pass
        assert p.commands[0].op == OP_LAYER or (p.sample == 2 and p.tile > 0)
        # loads are fenced behind an earlier pass; a block filling the whole buffer waits for
        # the pass right before it
        if p.weight_loads:
            assert p.loads_after < k
            if len(p.weight_loads) == cfg.weight_rows and k != passes[0][0]:
                assert p.loads_after == max(q for q, _ in passes if q < k)
                assert [wl.addr for wl in p.weight_loads] == list(range(cfg.weight_rows))
        assert p.wait_idle == (p.tile == 0 and p.sample in (0, 2))
    # the second sample of a batch reuses the block: no loads
    assert all(not p.weight_loads for _, p in passes if p.sample == 1)
    # sample 1's membrane rows sit one sample region above sample 0's
    ends = [it for it in items if isinstance(it, TimestepEnd)]
    assert min(ends[1].membrane) == alloc.sample_rows and min(ends[0].membrane) == 0
    replay(cfg, sched, "early")


def test_double_buffer_overlaps():
    """Two blocks fit: a block's loads are fenced only behind the pass two back."""
    rng = np.random.default_rng(9)
    cfg = HwConfig(array=8, groups=2, theta_int=64, weight_rows=4096, mem_rows=4096)
    layer = Layer.conv((4, 6, 6), rng.integers(-9, 9, (24, 4, 3, 3)), padding=1, name="c")
    net = Network((4, 6, 6), (layer,))
    biggest, total, alloc = _rows(cfg, net)
    assert len(alloc.plans[0].blocks) == 3          # Cg = 12 = 3 S: three chunks of 4 channels
    cfg = cfg.replace(weight_rows=2 * biggest + 1, mem_rows=alloc.sample_rows)
    sched = build_schedule(cfg, net, rand_spikes(rng, (1, 3) + net.in_shape))
    passes = [(k, it) for k, it in enumerate(sched.items) if isinstance(it, LayerPass)]
    idx = [k for k, _ in passes]
    for n, (_k, p) in enumerate(passes):
        assert len(p.weight_loads) == biggest          # three blocks never stay in two slots
        assert p.loads_after == (idx[n - 2] if n >= 2 else -1)
    replay(cfg, sched, "early")


def test_schedule_input_errors():
    rng = np.random.default_rng(0)
    net = small_net(rng, "linear_block", 2)
    cfg = HwConfig(array=8, groups=2, weight_rows=4096, mem_rows=4096)
    with pytest.raises(ValueError, match=r"spikes_in: expected shape \[samples, T, 7\]"):
        build_schedule(cfg, net, np.zeros((2, 7)))
    with pytest.raises(NetworkError, match=r"layer 0 \('fc1'\): weight rows per chunk .* 7 > weight_rows=3"):
        build_schedule(cfg.replace(weight_rows=3), net, np.zeros((1, 1, 7)))
    with pytest.raises(NetworkError, match=r"layer 0 \('fc1'\): tile fan-in 7 > weight_rows=3"):
        build_schedule(cfg.replace(weight_rows=3), net, np.zeros((1, 1, 7)), mapping="position")
    # regions larger than mem_rows run with spilled membranes (docs/schedule.md),
    # as long as one pass fits
    assert build_schedule(cfg.replace(mem_rows=1), net, np.zeros((1, 1, 7))) \
        .allocation.membranes == "spilled"
    with pytest.raises(ValueError, match="unknown mapping"):
        build_schedule(cfg, net, np.zeros((1, 1, 7)), mapping="diagonal")


def _random_case(seed):
    """A random build and a random network that fits it (conv/linear, strides, blocks, all modes)."""
    rng = np.random.default_rng(seed)
    groups = int(rng.choice([1, 2, 4]))
    array = groups * int(rng.integers(1, 5))
    ww = int(rng.integers(3, 9))
    mw = int(rng.integers(8, 13))
    theta = int(rng.integers(1, min((1 << (mw - 1)) - 2, 3 << (ww - 1))))   # reachable by a few events
    cfg = HwConfig(array=array, groups=groups, weight_width=ww, acc_width=int(rng.integers(ww, ww + 5)),
                   mem_width=mw, frac_bits=4, leak_bits=4,
                   leak_int=int(rng.integers(1, 17)), theta_int=theta,
                   reset=str(rng.choice(["soft", "hard"])), fire=str(rng.choice(["gt", "ge"])),
                   weight_rows=4096, mem_rows=4096)
    shape = (int(rng.integers(1, 4)), int(rng.integers(3, 7)), int(rng.integers(3, 7)))
    layers, block_id = [], 0
    wlo, whi = cfg.weight_min // 2, cfg.weight_max
    for li in range(int(rng.integers(1, 4))):
        k = int(rng.integers(1, 4))
        pad = int(rng.integers(0, k))
        stride = int(rng.integers(1, 3))
        if shape[1] + 2 * pad < k or shape[2] + 2 * pad < k:
            pad = k
        mode = str(rng.choice(["chained", "independent"]))
        cout = groups * int(rng.integers(1, 3))
        w = rng.integers(wlo, whi + 1, (cout, shape[0], k, k))
        layer = Layer.conv(shape, w, stride=stride, padding=pad, mode=mode, name=f"c{li}")
        layers.append(layer)
        shape = layer.out_shape
        if rng.random() < 0.5 and stride == 1 and shape[0] == cout:
            # a second layer sharing the membrane of the first (same out shape, same mode)
            k2 = 2 * int(rng.integers(0, 2)) + 1
            w2 = rng.integers(wlo, whi + 1, (cout, cout, k2, k2))
            layers[-1] = Layer.conv(layer.in_shape, layer.weight, stride=stride, padding=pad, mode=mode,
                                    block=block_id, name=f"c{li}")
            layers.append(Layer.conv(shape, w2, padding=k2 // 2, mode=mode, block=block_id, name=f"c{li}b"))
            block_id += 1
    feats = int(np.prod(shape))
    out_mode = str(rng.choice(["readout", "chained"]))
    layers.append(Layer.linear(rng.integers(wlo, whi + 1, (groups * 2, feats)), mode=out_mode, name="fc"))
    net = Network(layers[0].in_shape, tuple(layers))
    biggest, total, alloc = _rows(cfg, net)
    rows = total if rng.random() < 0.5 else int(rng.integers(biggest, total + 1))
    spikes = rand_spikes(rng, (2, int(rng.integers(3, 5))) + net.in_shape, p=float(rng.uniform(0.2, 0.8)))
    # one or two samples' membrane regions (a batch of two when the weights stream)
    cfg = cfg.replace(weight_rows=min(rows, 4096), mem_rows=max(1, alloc.sample_rows * (1 + seed % 2)))
    return cfg, net, spikes


@pytest.mark.parametrize("seed", range(12))
def test_random_builds_replay(seed):
    cfg, net, spikes = _random_case(seed)
    sched = build_schedule(cfg, net, spikes)
    replay(cfg, sched, "early")
    assert sched.result.layers[0].spikes.any(), "random case must fire"

