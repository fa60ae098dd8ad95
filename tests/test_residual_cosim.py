"""A small network with direct (bit-plane) input and residual blocks through the schedule:
replayed on the transaction-level core model for static and streamed weights, and bit-exact
on Verilator through ``python -m tb.run`` (docs/fixed-point.md F2c, F2d; docs/schedule.md).

The RTL needs no change for either operator: a residual layer's shortcut is more weight rows
of the same tile whose EVENTs follow the layer's own (the core accumulates whatever rows it is
sent), and direct input is an ordinary spike input whose channels are the bit planes.
"""

from __future__ import annotations

import numpy as np
import pytest
from tbrun_util import run_network
from test_golden_schedule import replay

from golden.config import HwConfig
from golden.fixed_model import run_fixed
from golden.mapping import MAPPINGS, choose_mappings, weight_rows_total
from golden.network import Layer, Network
from golden.schedule import LayerPass, build_schedule

CFG = dict(array=8, groups=2, theta_int=64, leak_int=200)


def residual_network() -> Network:
    """3-bit signed direct input of a 1-channel 8x8 image (3 bit-plane channels) -> conv 8 ->
    L block {conv 8, conv 8 + identity shortcut of layer 0} -> conv 8 stride 2 + 1x1 stride-2
    shortcut of layer 2 (+bias) -> linear readout."""
    rng = np.random.default_rng(31)
    w = lambda *s: rng.integers(-30, 29, s)          # noqa: E731
    eye = np.eye(8, dtype=np.int64).reshape(8, 8, 1, 1) * 40
    return Network((3, 8, 8), (
        Layer.conv((3, 8, 8), w(8, 3, 3, 3), padding=1, name="c0", bias=rng.integers(-20, 60, 8)),
        Layer.conv((8, 8, 8), w(8, 8, 3, 3), padding=1, name="c1", block=1),
        Layer("conv", (8, 8, 8), 8, w(8, 8, 3, 3), 3, 1, 1, block=1, name="c2", skip=0,
              skip_in_shape=(8, 8, 8), skip_weight=eye),
        Layer("conv", (8, 8, 8), 8, w(8, 8, 3, 3), 3, 2, 1, mode="independent", name="c3", skip=2,
              skip_in_shape=(8, 8, 8), skip_stride=2, skip_weight=w(8, 8, 1, 1),
              bias=rng.integers(-100, 100, 8)),
        Layer.linear(w(4, 128), mode="readout", name="fc"),
    ), input_bits=3)


def images(samples=2, t=3):
    img = np.random.default_rng(32).integers(-4, 4, (samples, 1, 1, 8, 8))
    return np.repeat(img, t, axis=1)                      # the same image every timestep


def test_residual_network_does_something():
    net = residual_network()
    res = run_fixed(HwConfig(**CFG), net, net.input_spikes(images()).swapaxes(0, 1))
    for i in range(4):
        assert 0 < res.layers[i].spikes.mean() < 1, f"layer {i} must fire, but not everywhere"
    # the shortcuts matter: without them layer 3 spikes differently
    c0, c1, c2, c3, fc = net.layers
    plain = Network(net.in_shape, (
        c0, c1, Layer.conv((8, 8, 8), c2.weight, padding=1, block=1, name="c2"),
        Layer.conv((8, 8, 8), c3.weight, stride=2, padding=1, mode="independent", bias=c3.bias), fc),
        input_bits=3)
    alt = run_fixed(HwConfig(**CFG), plain, net.input_spikes(images()).swapaxes(0, 1))
    assert not np.array_equal(alt.layers[3].spikes, res.layers[3].spikes)


@pytest.mark.parametrize("mapping,weight_rows", [("position", None), ("position", 1024),
                                                  ("weight_stationary", None), ("weight_stationary", 256)])
def test_residual_schedule_replays_on_core_model(mapping, weight_rows):
    """Both mappings, static and streamed weights, loads early and late. Weight-stationary: the
    shortcut rows (identity 1x1 stride 1; 1x1 stride 2) follow the layer's own rows in every
    chunk's block (docs/schedule.md)."""
    net = residual_network()
    base = HwConfig(**CFG)
    total = weight_rows_total(base, net.layers, [mapping] * len(net.layers))
    cfg = HwConfig(**CFG, weight_rows=weight_rows or total, mem_rows=256)
    sched = build_schedule(cfg, net, net.input_spikes(images()), mapping=mapping)
    assert sched.allocation.weights == ("static" if weight_rows is None else "streamed")
    for i in (2, 3):
        plan = sched.allocation.plans[i]
        assert plan.mapping == mapping
        assert all(tp.skip_fanin.size and tp.skip_rows.min() > tp.rows.max() or
                   mapping == "position" for tp in plan.tiles)
        if mapping == "weight_stationary":   # blocks shared by many tiles
            assert len(plan.blocks) < len(plan.tiles)
    replay(cfg, sched)
    replay(cfg, sched, loads="late")


def test_residual_weight_stationary_replay_fails_without_the_shortcut_rows():
    """The replay can fail: zeroing the shortcut's rows of layer 3's ws block breaks it."""
    net = residual_network()
    cfg = HwConfig(**CFG, weight_rows=256, mem_rows=256)
    sched = build_schedule(cfg, net, net.input_spikes(images()), mapping="weight_stationary")
    plan = sched.allocation.plans[3]
    rows = plan.blocks[0].rows
    assert all(b.rows == rows for b in plan.blocks)
    skip = set(plan.tiles[0].skip_rows.tolist())
    items, zeroed = [], 0
    for it in sched.items:
        if isinstance(it, LayerPass) and it.layer == 3 and it.weight_loads:
            it = it._replace(weight_loads=[wl._replace(data=wl.data * 0) if k % rows in skip else wl
                                           for k, wl in enumerate(it.weight_loads)])
            zeroed += 1
        items.append(it)
    assert zeroed
    with pytest.raises(AssertionError):
        replay(cfg, sched._replace(items=items))


def test_choose_mappings_may_pick_weight_stationary_for_residual_units():
    net = residual_network()
    cfg = HwConfig(**CFG, weight_rows=4096, mem_rows=256)
    m = choose_mappings(cfg, net.layers)
    assert m[3] == "weight_stationary"        # a residual layer is no longer forced to position
    assert m[1] == m[2]                        # one mapping per sharing unit
    for forced in MAPPINGS:
        assert weight_rows_total(cfg, net.layers, [forced] * 5) > 0


def test_residual_direct_input_bit_exact_on_verilator(tmp_path):
    net = residual_network()
    # the default choice lays the residual layers out weight-stationary (shortcut rows in the block)
    assert choose_mappings(HwConfig(**CFG), net.layers)[2:4] == ["weight_stationary"] * 2
    x = images()
    doc = run_network(tmp_path, net, x, "--array", "8", "--groups", "2", "--stress", "1",
                      "--cfg", "theta_int=64", "leak_int=200")
    c = doc["checked"]
    assert doc["ok"] and doc["golden_equal"]
    assert c["mismatches"] == 0 and c["beats"] == c["beats_expected"] > 0 and c["membrane_words"] > 0
    got = np.load(tmp_path / "out" / "outputs.npy")
    want = run_fixed(HwConfig(**CFG), net, net.input_spikes(x).swapaxes(0, 1)).output.swapaxes(0, 1)
    np.testing.assert_array_equal(got.reshape(want.shape), want)


def test_tb_run_inputs_take_integer_images_for_direct_input(tmp_path):
    from tb.run import InputError, load_inputs

    net = residual_network()
    p = tmp_path / "x.npy"
    np.save(p, images())
    spikes = load_inputs(p, net.in_shape, net)
    np.testing.assert_array_equal(spikes, net.input_spikes(images()))
    np.save(p, images() * 3)                              # outside the signed 3-bit range
    with pytest.raises(InputError, match=r"inputs .*: direct input: value -12 is outside the signed "
                                         r"3-bit range \[-4, 3\]"):
        load_inputs(p, net.in_shape, net)
    np.save(p, net.input_spikes(images()))                # bit planes given directly also work
    np.testing.assert_array_equal(load_inputs(p, net.in_shape, net), spikes)


def strided_shortcut_network(skip_kernel: int, size: int = 12) -> Network:
    """Chained layers with 2 channels on 2 groups of 4 slots, so the ws mapping puts p = 4
    positions in a tile (full and, at size 12, 2-position edge blocks on the 6-wide map) and the
    shortcut (1x1, or 3x3 padding 1, stride 2, from the size x size map) has a window of
    kx = 3·2 + k columns."""
    rng = np.random.default_rng(41 + skip_kernel)
    w = lambda *s: rng.integers(-18, 28, s)          # noqa: E731
    n, h = size, size // 2
    return Network((2, n, n), (
        Layer.conv((2, n, n), w(2, 2, 3, 3), padding=1, name="a"),
        Layer.conv((2, n, n), w(2, 2, 3, 3), stride=2, padding=1, name="b"),
        Layer("conv", (2, h, h), 2, w(2, 2, 3, 3), 3, 1, 1, name="c", skip=0, skip_in_shape=(2, n, n),
              skip_kernel=skip_kernel, skip_stride=2, skip_padding=skip_kernel // 2,
              skip_weight=w(2, 2, skip_kernel, skip_kernel), bias=rng.integers(-40, 40, 2)),
        Layer.linear(w(3, 2 * h * h), mode="readout", name="fc"),
    ))


@pytest.mark.parametrize("skip_kernel", [1, 3])
@pytest.mark.parametrize("weight_rows", [None, 200])
def test_strided_shortcut_weight_stationary_replays(skip_kernel, weight_rows):
    net = strided_shortcut_network(skip_kernel)
    spikes = (np.random.default_rng(5).random((2, 3) + net.in_shape) < 0.4).astype(np.uint8)
    base = HwConfig(**CFG)
    total = weight_rows_total(base, net.layers, ["weight_stationary"] * 4)
    cfg = HwConfig(**CFG, weight_rows=weight_rows or total, mem_rows=256)
    sched = build_schedule(cfg, net, spikes, mapping="weight_stationary")
    assert sched.allocation.weights == ("static" if weight_rows is None else "streamed")
    plan = sched.allocation.plans[2]
    # F2c rows: own, then the shortcut's window (kx = 3·stride + k columns), then the bias rows
    own = 2 * 3 * (3 + 3)
    assert all(tp.skip_rows.max() < own + 2 * skip_kernel * (6 + skip_kernel) <= tp.bias_rows.min()
               and tp.skip_rows.min() >= own for tp in plan.tiles)
    assert {b.j1 - b.j0 for b in plan.blocks} == {6}            # full and edge variants, 6 tiles each
    assert len(plan.blocks) == 2
    assert 0 < sched.result.layers[2].spikes.mean() < 1
    replay(cfg, sched)
    replay(cfg, sched, loads="late")


def test_strided_3x3_shortcut_weight_stationary_bit_exact_on_verilator(tmp_path):
    """The RTL runs the ws residual rows of a 3x3 stride-2 shortcut with 4-position tiles (and
    3-position edge tiles on the 7-wide map), as the default mapping choice lays them out."""
    net = strided_shortcut_network(3, 14)
    assert choose_mappings(HwConfig(**CFG), net.layers)[2] == "weight_stationary"
    x = (np.random.default_rng(5).random((2, 3) + net.in_shape) < 0.4).astype(np.uint8)
    doc = run_network(tmp_path, net, x, "--array", "8", "--groups", "2", "--stress", "1",
                      "--cfg", "theta_int=64", "leak_int=200")
    c = doc["checked"]
    assert doc["ok"] and doc["golden_equal"]
    assert c["mismatches"] == 0 and c["beats"] == c["beats_expected"] > 0 and c["membrane_words"] > 0


@pytest.mark.parametrize("mapping", MAPPINGS)
def test_linear_shortcut_replays_with_both_mappings(mapping):
    """A linear layer with a linear shortcut: ws rows = the layer's inputs, then the shortcut's."""
    rng = np.random.default_rng(3)
    w = lambda *s: rng.integers(-18, 28, s)          # noqa: E731
    net = Network((20,), (
        Layer.linear(w(16, 20), name="a"),
        Layer.linear(w(16, 16), name="b"),
        Layer("linear", (16,), 12, w(12, 16), name="c", skip=0, skip_in_shape=(16,), skip_weight=w(12, 16)),
        Layer.linear(w(3, 12), mode="readout", name="fc"),
    ))
    cfg = HwConfig(**CFG, weight_rows=512, mem_rows=256)
    x = (rng.random((2, 3, 20)) < 0.4).astype(np.uint8)
    sched = build_schedule(cfg, net, x, mapping=mapping)
    assert 0 < sched.result.layers[2].spikes.mean() < 1
    tp = sched.allocation.plans[2].tiles[0]
    np.testing.assert_array_equal(tp.skip_fanin, np.arange(16))
    np.testing.assert_array_equal(tp.skip_rows, np.arange(16, 32))
    replay(cfg, sched)
    replay(cfg, sched, loads="late")
