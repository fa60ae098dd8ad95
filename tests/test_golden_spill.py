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
                int(np.prod(sched.net.layers[arg.layer].in_shape))
    return sorted((k[0], b) + k[1:] for k, b in c.items())


def model_traffic(cfg, net, samples, T) -> list:
    return sorted((x.kind, x.bits, x.t, x.layer, x.chunk, x.sample)
                  for x in transfers(hw_traffic(cfg, net, samples, T)))


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


def test_hw_traffic_refuses_padded_layouts():
    cfg = HwConfig(array=8, groups=2, weight_rows=18, mem_rows=16)
    with pytest.raises(TrafficError, match="padding"):
        hw_traffic(cfg, conv_net(6), 1, 2)


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


@pytest.mark.parametrize("mem_rows", [32, 40])
def test_spilled_mixed_network_replays(mem_rows):
    """Every mode, a shortcut, both mappings; partly overwritten ring rows
    (a 1-row pass over a 16-row one) need the monotone fills_after."""
    cfg = HwConfig(array=8, groups=2, weight_rows=128, mem_rows=mem_rows)
    net = mixed_net()
    x = (np.random.default_rng(5).random((2, 3, 2, 4, 4)) < 0.5).astype(np.uint8)
    sched = build_schedule(cfg, net, x)
    assert sched.allocation.membranes == "spilled"
    assert {p.mapping for p in sched.allocation.plans.values()} == {"weight_stationary", "position"}
    assert replay(cfg, sched) == 256
    fences = [it.fills_after for it in sched.items if isinstance(it, LayerPass) and it.fills]
    assert fences == sorted(fences)
    with pytest.raises(TrafficError):
        hw_traffic(cfg, net, 2, 3)
