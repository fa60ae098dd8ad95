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
from golden.mapping import MappingError, weight_rows_total
from golden.network import Layer, Network
from golden.schedule import build_schedule

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


@pytest.mark.parametrize("weight_rows", [None, 1024])
def test_residual_schedule_replays_on_core_model(weight_rows):
    net = residual_network()
    base = HwConfig(**CFG)
    cfg = HwConfig(**CFG, weight_rows=weight_rows or weight_rows_total(base, net.layers), mem_rows=256)
    sched = build_schedule(cfg, net, net.input_spikes(images()))
    assert sched.allocation.weights == ("static" if weight_rows is None else "streamed")
    replay(cfg, sched)
    replay(cfg, sched, loads="late")


def test_residual_layers_refuse_weight_stationary():
    net = residual_network()
    with pytest.raises(MappingError, match=r"layer 2 \('c2'\) has a residual \(skip\) input"):
        build_schedule(HwConfig(**CFG, weight_rows=4096), net, net.input_spikes(images()),
                       mapping="weight_stationary")


def test_residual_direct_input_bit_exact_on_verilator(tmp_path):
    net = residual_network()
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
