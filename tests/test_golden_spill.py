"""Spilled membranes in the golden schedule (docs/schedule.md "Spilled membranes"):
replay through CoreModel with every fill applied at the earliest point its
fence allows, from what CoreModel itself spilled; and the schedule's traffic
(what tb/offchip.py counts) equals golden.traffic's model."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from golden.config import HwConfig
from golden.core_model import CoreModel
from golden.network import Layer, Network, NetworkError
from golden.schedule import LayerPass, build_schedule
from golden.traffic import TrafficError, hw_traffic, transfers
from tb.offchip import in_map_bits


def conv_net(cout: int, cin: int = 2, hw: int = 4, seed: int = 3) -> Network:
    rng = np.random.default_rng(seed)
    w = rng.integers(-8, 12, (cout, cin, 3, 3))
    return Network((cin, hw, hw), (Layer.conv((cin, hw, hw), w, padding=1, name="c0"),))


CASES = [  # (cfg, cout, samples, T): region / mem_rows, weight rows / weight_rows
    (HwConfig(array=8, groups=2, weight_rows=18, mem_rows=16), 16, 2, 3),     # 2x, 2x
    (HwConfig(array=8, groups=2, weight_rows=36, mem_rows=32), 64, 2, 3),     # 4x, 4x
    (HwConfig(array=8, groups=1, weight_rows=18, mem_rows=16), 32, 3, 2),     # 4x, 4x, N = 1
    (HwConfig(array=8, groups=2, weight_rows=200, mem_rows=16), 32, 1, 3),    # static weights
]


def replay(cfg, sched):
    """CoreModel run; fills applied right after their fence item (earliest)."""
    core = CoreModel(cfg, strict=True)
    for wl in sched.static_weight_loads:
        core.load_weight(wl.addr, wl.data)
    offchip, pending = {}, {}
    for idx, it in enumerate(sched.items):
        if isinstance(it, LayerPass) and it.fills:
            pending.setdefault(it.fills_after, []).append(idx)
    spilled = 0

    def apply(after):
        for p in pending.pop(after, []):
            for f in sched.items[p].fills:
                core.fill(f.addr, offchip[f.vrow])     # KeyError: filled before it was spilled

    apply(-1)
    for idx, it in enumerate(sched.items):
        if not isinstance(it, LayerPass):
            apply(idx)
            continue
        for wl in it.weight_loads:
            core.load_weight(wl.addr, wl.data)
        beats = []
        for c in it.commands:
            beats += core.command(c)
        assert [(b.values.tolist(), b.spikes.tolist()) for b in beats] == \
            [(b.values.tolist(), b.spikes.tolist()) for b in it.beats]
        assert len(core.spilled) == len(it.spills)
        for (row, v), e in zip(core.spilled, it.spills):
            assert row == e.addr and np.array_equal(v, e.data)
            offchip[e.vrow] = v
        spilled += len(core.spilled)
        core.spilled = []
        apply(idx)
    assert not pending
    return spilled


def schedule_traffic(cfg, sched) -> list:
    """The transfers tb/offchip.py counts, from the flattened streams."""
    from tb.bfm import MARK, flatten
    from tb.payload import expected_layouts
    ops, _ = flatten(sched, expected_layouts(cfg))
    c = Counter()
    for k in ops.wl_key:
        c[("weight_rd",) + k] += cfg.array * cfg.weight_width
    for _, _, k in ops.mf:
        c[("mem_rd",) + k] += cfg.slots * cfg.mem_width
    for _, k in ops.spills:
        c[("mem_wr",) + k] += cfg.slots * cfg.mem_width
    for k in ops.beat_key:
        c[("spike_wr",) + k] += cfg.slots
    for op, arg in ops:
        if op == MARK:
            c[("spike_rd", arg.t, arg.layer, arg.chunk, arg.sample)] += \
                in_map_bits(sched.net.layers[arg.layer])
    return sorted((k[0], b) + k[1:] for k, b in c.items())


def items_traffic(cfg, sched) -> list:
    """The transfers of the schedule's items themselves (resident runs too,
    where the testbench counts nothing): static and per-pass weight loads,
    fills, spills, output beats, one input map per pass."""
    c = Counter()
    for (i, k), _ in sched.allocation.block_base.items():
        c[("weight_rd", 0, i, k, -1)] += sched.allocation.plans[i].blocks[k].rows * \
            cfg.array * cfg.weight_width
    for it in sched.items:
        if not isinstance(it, LayerPass):
            continue
        key = (it.t, it.layer, it.chunk, it.sample)
        if it.weight_loads:
            c[("weight_rd",) + key[:3] + (-1,)] += len(it.weight_loads) * cfg.array * cfg.weight_width
        if it.fills:
            c[("mem_rd",) + key] += len(it.fills) * cfg.slots * cfg.mem_width
        if it.spills:
            c[("mem_wr",) + key] += len(it.spills) * cfg.slots * cfg.mem_width
        c[("spike_wr",) + key] += len(it.beats) * cfg.slots
        c[("spike_rd",) + key] += in_map_bits(sched.net.layers[it.layer])
    return sorted((k[0], b) + k[1:] for k, b in c.items())


def model_traffic(cfg, net, samples, T, mapping=None) -> list:
    return sorted((x.kind, x.bits, x.t, x.layer, x.chunk, x.sample)
                  for x in transfers(hw_traffic(cfg, net, samples, T, mapping=mapping)))


@pytest.mark.parametrize("case", range(len(CASES)))
def test_spilled_schedule_replays_and_matches_the_traffic_model(case):
    cfg, cout, samples, T = CASES[case]
    net = conv_net(cout)
    x = (np.random.default_rng(case).random((samples, T, 2, 4, 4)) < 0.5).astype(np.uint8)
    sched = build_schedule(cfg, net, x)
    a = sched.allocation
    assert a.membranes == "spilled" and a.sample_rows > cfg.mem_rows
    n_spills = replay(cfg, sched)
    assert n_spills == sum(len(it.spills) for it in sched.items if isinstance(it, LayerPass)) > 0
    assert schedule_traffic(cfg, sched) == model_traffic(cfg, net, samples, T)
    t = hw_traffic(cfg, net, samples, T)
    # closed forms: (T-1)·S·B fills and spills of a one-layer unit
    assert t.bits("mem_rd") == t.bits("mem_wr") == (T - 1) * a.sample_rows * cfg.slots * \
        cfg.mem_width * samples


def test_resident_schedule_matches_the_model_too():
    cfg = HwConfig(array=8, groups=2, weight_rows=18, mem_rows=64)
    net = conv_net(16)
    x = (np.random.default_rng(9).random((2, 2, 2, 4, 4)) < 0.5).astype(np.uint8)
    sched = build_schedule(cfg, net, x)
    assert sched.allocation.membranes == "resident" and sched.allocation.batch == 2
    t = hw_traffic(cfg, net, 2, 2)
    assert t.bits("mem_rd") == t.bits("mem_wr") == 0


def test_no_fence_makes_the_replay_fail():
    """Dropping the fills_after fences (fills at the start) breaks the replay."""
    cfg, cout, samples, T = CASES[1]
    net = conv_net(cout)
    x = (np.random.default_rng(1).random((samples, T, 2, 4, 4)) < 0.5).astype(np.uint8)
    sched = build_schedule(cfg, net, x)
    items = [it._replace(fills_after=-1) if isinstance(it, LayerPass) else it for it in sched.items]
    with pytest.raises((KeyError, AssertionError)):
        replay(cfg, sched._replace(items=items))


def test_a_pass_larger_than_the_buffer_is_an_error():
    cfg = HwConfig(array=8, groups=2, weight_rows=18, mem_rows=8)     # a chunk needs 16 rows
    with pytest.raises(NetworkError, match="even spilled membranes do not fit"):
        conv_net(16).validate(cfg)


@pytest.mark.parametrize("mem_rows", [16, 64])
def test_padded_slots_are_modelled(mem_rows):
    """6 channels on 8 PEs: the last tile's padded slots travel as whole rows
    and beats (spilled: 16 rows; resident: 64 rows)."""
    cfg = HwConfig(array=8, groups=2, weight_rows=18, mem_rows=mem_rows)
    net = conv_net(6)
    x = (np.random.default_rng(3).random((2, 2, 2, 4, 4)) < 0.5).astype(np.uint8)
    sched = build_schedule(cfg, net, x)
    assert items_traffic(cfg, sched) == model_traffic(cfg, net, 2, 2)
    if sched.allocation.membranes == "spilled":
        assert schedule_traffic(cfg, sched) == model_traffic(cfg, net, 2, 2)
    t = hw_traffic(cfg, net, 2, 2)
    tiles = len(sched.allocation.plans[0].tiles)
    assert tiles * cfg.array > 6 * 16                    # padding exists
    # closed form: N beats of S spike bits per tile, per sample and timestep
    assert t.bits("spike_wr") == 2 * 2 * tiles * cfg.groups * cfg.slots


def test_hw_traffic_bad_parameters_are_one_line_errors():
    cfg = HwConfig(array=8, groups=2, weight_rows=18, mem_rows=16)
    with pytest.raises(TrafficError, match="samples=0"):
        hw_traffic(cfg, conv_net(16), 0, 2)


def test_ring_reuse_rule():
    """A block the ring did not overwrite is not reloaded: A(6) X(2) B(6) in
    10 rows: B overwrites A only, so X survives into the next cycle."""
    from golden.traffic import _ring_hits
    uses = [("A", 6), ("X", 2), ("B", 6)] * 2
    assert _ring_hits(uses, 10) == [False, False, False, False, True, False]
    assert _ring_hits(uses, 14) == [False, False, False, True, True, True]


def test_spilled_l_block_replays_and_matches_the_model():
    """Two layers sharing one membrane (L): layer-major passes, the second layer
    fills what the first spilled in the same timestep (also at t = 0)."""
    rng = np.random.default_rng(7)
    net = Network((2, 4, 4), (
        Layer.conv((2, 4, 4), rng.integers(-8, 12, (16, 2, 3, 3)), padding=1, block=0, name="a"),
        Layer.conv((16, 4, 4), rng.integers(-3, 5, (16, 16, 3, 3)), padding=1, block=0, name="b")))
    cfg = HwConfig(array=8, groups=2, weight_rows=144, mem_rows=16)
    x = (rng.random((2, 3, 2, 4, 4)) < 0.5).astype(np.uint8)
    sched = build_schedule(cfg, net, x)
    assert sched.allocation.membranes == "spilled" and len(net.blocks()) == 1
    passes = [it for it in sched.items if isinstance(it, LayerPass)]
    assert any(p.layer == 1 and p.t == 0 and p.fills for p in passes)
    assert all(not p.spills for p in passes if p.layer == 1 and p.t == 2)
    assert replay(cfg, sched) > 0
    assert schedule_traffic(cfg, sched) == model_traffic(cfg, net, 2, 3)
    assert hw_traffic(cfg, net, 2, 3).layers[0].mode == "layer-major"


def mixed_net(seed: int = 4) -> Network:
    """Spilled: a CHAINED conv, a residual conv (position mapping, one tile per
    weight block), an INDEPENDENT conv and a readout."""
    rng = np.random.default_rng(seed)
    return Network((2, 4, 4), (
        Layer.conv((2, 4, 4), rng.integers(-8, 12, (8, 2, 3, 3)), padding=1, name="a"),
        Layer("conv", (8, 4, 4), 8, rng.integers(-4, 6, (8, 8, 3, 3)), 3, 1, 1, skip=0,
              skip_in_shape=(8, 4, 4), skip_weight=rng.integers(-4, 6, (8, 8, 1, 1)), name="b"),
        Layer.conv((8, 4, 4), rng.integers(-4, 6, (8, 8, 3, 3)), padding=1, mode="independent",
                   name="c"),
        Layer.linear(rng.integers(-4, 6, (3, 128)), mode="readout", name="r")))


def featured_net(seed: int = 8) -> Network:
    """Bias rows, an L block of 6-channel convs (padded slots), an INDEPENDENT
    conv after a 2x2 pool, a readout."""
    rng = np.random.default_rng(seed)
    return Network((2, 4, 4), (
        Layer.conv((2, 4, 4), rng.integers(-6, 8, (6, 2, 3, 3)), padding=1, block=0, name="a",
                   bias=rng.integers(-40, 40, 6)),
        Layer.conv((6, 4, 4), rng.integers(-3, 5, (6, 6, 3, 3)), padding=1, block=0, name="a2"),
        Layer.conv((6, 2, 2), rng.integers(-3, 5, (4, 6, 3, 3)), padding=1, pool=2,
                   mode="independent", name="p", bias=rng.integers(-20, 20, 4)),
        Layer.linear(rng.integers(-3, 5, (3, 16)), mode="readout", name="r")))


@pytest.mark.parametrize("weight_rows,mem_rows", [(64, 16), (4096, 16), (64, 24), (4096, 24)])
def test_featured_network_traffic_matches_the_schedule(weight_rows, mem_rows):
    cfg = HwConfig(array=8, groups=2, weight_rows=weight_rows, mem_rows=mem_rows)
    net = featured_net()
    x = (np.random.default_rng(21).random((2, 3, 2, 4, 4)) < 0.5).astype(np.uint8)
    sched = build_schedule(cfg, net, x)
    a = sched.allocation
    assert a.plans[0].tiles[0].bias_rows.size and len(a.plans[0].tiles) * cfg.array > 96
    model = model_traffic(cfg, net, 2, 3)
    assert items_traffic(cfg, sched) == model
    if a.membranes == "spilled":
        assert replay(cfg, sched) > 0 and schedule_traffic(cfg, sched) == model
    # the pooled layer's input map: 6 x 2 x 2 bits per pass
    assert {x.bits for x in transfers(hw_traffic(cfg, net, 2, 3))
            if x.kind == "spike_rd" and x.layer == 2} == {24}


@pytest.mark.parametrize("mem_rows", [32, 40])
@pytest.mark.parametrize("mapping", [None, "position"])
def test_spilled_mixed_network_replays(mem_rows, mapping):
    """Every mode, a shortcut, both mappings (the schedule's choice is
    weight-stationary throughout; forced position); partly overwritten ring
    rows (a 1-row pass over a 16-row one) need the monotone fills_after."""
    cfg = HwConfig(array=8, groups=2, weight_rows=128, mem_rows=mem_rows)
    net = mixed_net()
    x = (np.random.default_rng(5).random((2, 3, 2, 4, 4)) < 0.5).astype(np.uint8)
    sched = build_schedule(cfg, net, x, mapping=mapping)
    assert sched.allocation.membranes == "spilled"
    assert {p.mapping for p in sched.allocation.plans.values()} == (
        {"position"} if mapping else {"weight_stationary"})
    assert replay(cfg, sched) == 256
    fences = [it.fills_after for it in sched.items if isinstance(it, LayerPass) and it.fills]
    assert fences == sorted(fences)
    model = model_traffic(cfg, net, 2, 3, mapping)
    assert schedule_traffic(cfg, sched) == model == items_traffic(cfg, sched)


@pytest.mark.parametrize("mapping", [None, "position"])
@pytest.mark.parametrize("weight_rows,mem_rows", [(128, 4096), (4096, 4096), (4096, 32),
                                                  (128, 64), (4096, 129)])
def test_mixed_network_traffic_matches_the_schedule(mapping, weight_rows, mem_rows):
    """Streamed / static weights, resident / spilled membranes, mini-batches
    (64 rows per sample: mem_rows 64 -> 1 sample at a time, 129 -> 2)."""
    cfg = HwConfig(array=8, groups=2, weight_rows=weight_rows, mem_rows=mem_rows)
    net = mixed_net()
    x = (np.random.default_rng(6).random((3, 2, 2, 4, 4)) < 0.5).astype(np.uint8)
    sched = build_schedule(cfg, net, x, mapping=mapping)
    model = model_traffic(cfg, net, 3, 2, mapping)
    assert items_traffic(cfg, sched) == model
    if sched.allocation.membranes == "spilled":
        assert schedule_traffic(cfg, sched) == model
    t = hw_traffic(cfg, net, 3, 2, mapping=mapping)
    a = sched.allocation
    if a.weights == "static":     # closed form: every row of every block once
        assert t.bits("weight_rd") == sum(p.weight_rows for p in a.plans.values()) * \
            cfg.array * cfg.weight_width
    # the shortcut's source map is read with the residual layer's input map
    per_pass = {x.bits for x in transfers(t) if x.kind == "spike_rd" and x.layer == 1}
    assert per_pass == {2 * 8 * 4 * 4}


def random_net(rng, groups: int) -> Network:
    """A conv (bias sometimes, sometimes sharing its membrane with a second
    conv: L), sometimes a residual conv, a conv after an optional 2x2 pool
    (CHAINED or INDEPENDENT), sometimes a readout."""
    c0 = groups * int(rng.integers(1, 4))
    layers = [Layer.conv((2, 4, 4), rng.integers(-6, 8, (c0, 2, 3, 3)), padding=1, name="a",
                         bias=rng.integers(-40, 40, c0) if rng.random() < 0.5 else None,
                         block=0 if rng.random() < 0.3 else None)]
    shape = (c0, 4, 4)
    if layers[0].block == 0:
        layers.append(Layer.conv(shape, rng.integers(-3, 5, (c0, c0, 3, 3)), padding=1, block=0,
                                 name="a2"))
    if rng.random() < 0.5:
        layers.append(Layer("conv", shape, c0, rng.integers(-3, 5, (c0, c0, 3, 3)), 3, 1, 1,
                            skip=len(layers) - 1, skip_in_shape=shape,
                            skip_weight=rng.integers(-3, 5, (c0, c0, 1, 1)), name="res",
                            bias=rng.integers(-20, 20, c0) if rng.random() < 0.5 else None))
    pool = 2 if rng.random() < 0.5 else 1
    c2 = groups * int(rng.integers(1, 3))
    mode = "independent" if rng.random() < 0.5 else "chained"
    pshape = (c0, 4 // pool, 4 // pool)
    layers.append(Layer.conv(pshape, rng.integers(-3, 5, (c2, c0, 3, 3)), padding=1, pool=pool,
                             mode=mode, name="p"))
    if rng.random() < 0.6:
        layers.append(Layer.linear(rng.integers(-3, 5, (3, c2 * pshape[1] * pshape[2])),
                                   mode="readout", name="r"))
    return Network((2, 4, 4), tuple(layers))


def test_random_networks_traffic_matches_the_schedule():
    """200 random small networks and builds; every one that fits its build:
    model == the schedule's items (== the testbench's stream keys when
    spilled); every allocation kind and every layer feature is hit."""
    seen, features, checked = set(), set(), 0
    for seed in range(200):
        rng = np.random.default_rng(seed)
        groups = int(rng.choice([1, 2]))
        net = random_net(rng, groups)
        cfg = HwConfig(array=8, groups=groups, weight_rows=int(rng.choice([20, 28, 40, 4096])),
                       mem_rows=int(rng.choice([8, 16, 24, 40, 4096])))
        mapping = [None, "position"][int(rng.integers(2))]
        S, T = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        x = (rng.random((S, T, 2, 4, 4)) < 0.5).astype(np.uint8)
        try:
            sched = build_schedule(cfg, net, x, mapping=mapping)
        except NetworkError:
            continue
        a = sched.allocation
        model = model_traffic(cfg, net, S, T, mapping)
        assert items_traffic(cfg, sched) == model, seed
        if a.membranes == "spilled":
            assert schedule_traffic(cfg, sched) == model, seed
        checked += 1
        seen.add((a.weights, a.membranes, a.batch < S))
        for ly in net.layers:
            features |= {ly.mode, "bias" if ly.bias is not None else "", "pool" if ly.pool > 1 else "",
                         "skip" if ly.skip is not None else "", "L" if ly.block is not None else ""}
        features.add(mapping or "chosen")
    assert checked >= 60
    assert seen >= {("static", "resident", False), ("streamed", "resident", False),
                    ("static", "spilled", False), ("streamed", "spilled", False),
                    ("static", "resident", True), ("streamed", "resident", True)}
    assert features >= {"chained", "independent", "readout", "bias", "pool", "skip", "L",
                        "position", "chosen"}
