"""Residual (skip) inputs and direct input in the integer network, the fixed-point model and
the quantizer (docs/fixed-point.md F2c, F2d; docs/network-format.md version 3)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from golden.config import HwConfig
from golden.fixed_model import layer_currents, run_fixed
from golden.lif import LIFParams
from golden.network import Layer, Network, NetworkError, load_network, save_network
from golden.quantize import agreement_report, bit_plane_weights, quantize, quantize_input
from golden.reference import EfficientLIFNet, LayerSpec


def specs():
    return [LayerSpec("conv", (3, 6, 6), 4, kernel=3, padding=1, mode="independent", name="c0", bias=True),
            LayerSpec("conv", (4, 6, 6), 4, kernel=3, padding=1, block=1, name="c1"),
            LayerSpec("conv", (4, 6, 6), 4, kernel=3, padding=1, block=1, name="c2", skip=0,
                      skip_in_shape=(4, 6, 6)),
            LayerSpec("conv", (4, 6, 6), 6, kernel=3, stride=2, padding=1, mode="independent", name="c3",
                      skip=2, skip_in_shape=(4, 6, 6), skip_kernel=1, skip_stride=2, bias=True),
            LayerSpec("linear", (54,), 3, mode="readout", name="fc")]


def model(direct=True):
    m = EfficientLIFNet(specs(), groups=2, params=LIFParams(leak=1.0, theta=1.0), dtype=torch.float64,
                        direct_input=direct)
    with torch.no_grad():
        for b in m.biases.values():
            b.uniform_(-0.3, 0.6, generator=torch.Generator().manual_seed(5))
    return m


def test_reference_adds_the_shortcut_current():
    m = model(direct=False)
    x = (torch.rand(2, 2, 3, 6, 6, generator=torch.Generator().manual_seed(1)) < 0.5).double()
    with torch.no_grad():
        tr = m.run(x)
        o0, o2 = tr.spikes[0][1], tr.spikes[2][1]
        want = (F.conv2d(tr.spikes[2][1], m.weights[3], stride=2, padding=1)
                + F.conv2d(o2, m.skip_weights["3"], stride=2) + m.biases["3"].view(1, -1, 1, 1))
        torch.testing.assert_close(tr.currents[3][1], want, rtol=0, atol=1e-12)
        want2 = F.conv2d(tr.spikes[1][1], m.weights[2], padding=1) + F.conv2d(o0, m.skip_weights["2"])
        torch.testing.assert_close(tr.currents[2][1], want2, rtol=0, atol=1e-12)


def test_bit_planes_sum_to_w_times_x_exactly():
    rng = np.random.default_rng(0)
    w = rng.integers(-50, 50, size=(5, 3, 3, 3)).astype(np.float64)     # sums exact in float64
    x = rng.integers(-128, 128, size=(3, 3, 3))
    planes = bit_plane_weights(w, 8, 5, signed=True)                       # [5, 24, 3, 3]
    net = Network((24, 3, 3), (Layer.conv((24, 3, 3), np.zeros((5, 24, 3, 3), np.int64),
                                          mode="readout"),), input_bits=8)
    bits = net.input_spikes(x).astype(np.float64)                          # [24, 3, 3]
    np.testing.assert_array_equal(np.einsum("ocij,cij->o", planes, bits),
                                  np.einsum("ocij,cij->o", w, x) * 2.0 ** -5)
    # unsigned: no sign plane
    xu = rng.integers(0, 256, size=(3, 3, 3))
    netu = Network((24, 3, 3), net.layers, input_bits=8, input_signed=False)
    np.testing.assert_array_equal(
        np.einsum("ocij,cij->o", bit_plane_weights(w, 8, 5, False), netu.input_spikes(xu).astype(float)),
        np.einsum("ocij,cij->o", w, xu) * 2.0 ** -5)


def test_direct_input_and_residual_quantize_and_agree_exactly():
    m = model()
    img = torch.randn(2, 3, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    x = img.expand(4, -1, -1, -1, -1)                     # the same image every timestep
    q = quantize(m, array=8, input_bits=6, input_frac_bits=3, weight_width=10, acc_width=20, mem_width=20)
    net = q.network
    assert net.input_bits == 6 and net.in_shape == (18, 6, 6) and net.image_shape == (3, 6, 6)
    assert [lay.skip for lay in net.layers] == [None, None, 0, 2, None]
    assert net.layers[2].skip == 0 and net.layers[3].skip == 2 and net.layers[3].skip_weight.shape == (6, 4, 1, 1)
    rep = agreement_report(m, q, x)
    # the float model with the quantized weights over the quantized input's bit planes: exact (λ = 1)
    for row in rep["float_quantized"]["layers"]:
        assert row["mismatches"] == 0 and row["current_max_abs_err"] == 0, row
    fired = [row["fixed_spikes"] for row in rep["float_quantized"]["layers"][:-1]]
    assert all(f > 0 for f in fired), fired
    # F2c by hand: layer 3's current = own events + shortcut events + bias (no saturation here)
    xi = quantize_input(q, x)
    res = run_fixed(q.cfg, net, net.input_spikes(xi))
    o2 = res.layers[2].spikes[1]
    l3 = net.layers[3]
    own = F.conv2d(torch.from_numpy(o2.astype(np.float64)), torch.from_numpy(l3.weight.astype(np.float64)),
                   stride=2, padding=1)
    sc = F.conv2d(torch.from_numpy(o2.astype(np.float64)),
                  torch.from_numpy(l3.skip_weight.astype(np.float64)), stride=2)
    want = (own + sc).numpy() + l3.bias.reshape(1, -1, 1, 1)
    np.testing.assert_array_equal(res.layers[3].current[1], want.astype(np.int64))


def test_network_file_v3_round_trip(tmp_path):
    m = model()
    q = quantize(m, array=8, input_bits=6, input_frac_bits=3, weight_width=10, acc_width=20, mem_width=20)
    p = tmp_path / "net.npz"
    save_network(q.network, p)
    back = load_network(p)
    assert (back.input_bits, back.input_signed) == (6, True)
    for a, b in zip(q.network.layers, back.layers):
        assert (a.skip, a.skip_in_shape, a.skip_kernel, a.skip_stride) == (b.skip, b.skip_in_shape,
                                                                            b.skip_kernel, b.skip_stride)
        if a.skip_weight is not None:
            np.testing.assert_array_equal(a.skip_weight, b.skip_weight)


def test_bad_skip_and_direct_input_are_refused():
    w = np.zeros((4, 4, 3, 3), np.int64)
    l0 = Layer.conv((4, 5, 5), w, padding=1, name="a")
    with pytest.raises(NetworkError, match=r"layer 'b': skip_weight must be given exactly when skip"):
        Layer.conv((4, 5, 5), w, padding=1, name="b").__class__(
            "conv", (4, 5, 5), 4, w, 3, 1, 1, skip=0, skip_in_shape=(4, 5, 5), name="b")
    with pytest.raises(NetworkError, match=r"layer 'b': skip_weight shape \(4, 4, 3, 3\) does not match "
                                           r"\(4, 4, 1, 1\)"):
        Layer("conv", (4, 5, 5), 4, w, 3, 1, 1, skip=0, skip_in_shape=(4, 5, 5), skip_weight=w, name="b")
    with pytest.raises(NetworkError, match=r"shortcut \(1x1, stride 2, padding 0\) of \(4, 5, 5\) gives "
                                           r"\(4, 3, 3\), not the layer's output \(4, 5, 5\)"):
        Layer("conv", (4, 5, 5), 4, w, 3, 1, 1, skip=0, skip_in_shape=(4, 5, 5), skip_stride=2,
              skip_weight=np.zeros((4, 4, 1, 1), np.int64), name="b")
    good = Layer("conv", (4, 5, 5), 4, w, 3, 1, 1, skip=1, skip_in_shape=(4, 5, 5),
                 skip_weight=np.zeros((4, 4, 1, 1), np.int64), name="b")
    with pytest.raises(NetworkError, match=r"layer 1 \('b'\): skip=1 must name an earlier LIF layer"):
        Network((4, 5, 5), (l0, good))
    cfg = HwConfig(array=8, weight_width=4, frac_bits=2, leak_int=256, theta_int=4)
    big = Layer("conv", (4, 5, 5), 4, w, 3, 1, 1, skip=0, skip_in_shape=(4, 5, 5),
                skip_weight=np.full((4, 4, 1, 1), 9, np.int64), name="b")
    with pytest.raises(NetworkError, match=r"layer 1 \('b'\): skip_weight 9 is outside the 4-bit range"):
        Network((4, 5, 5), (l0, big)).check_arithmetic(cfg)
    net = Network((4, 5, 5), (l0,), input_bits=2)
    with pytest.raises(NetworkError, match=r"direct input: value 2 is outside the signed 2-bit range \[-2, 1\]"):
        net.input_spikes(np.full((2, 5, 5), 2))
    with pytest.raises(NetworkError, match=r"does not end in the image shape \[2, 5, 5\]"):
        net.input_spikes(np.zeros((4, 5, 5), np.int64))
    with pytest.raises(NetworkError, match=r"needs a multiple of 3 channels"):
        Network((4, 5, 5), (l0,), input_bits=3)
    with pytest.raises(ValueError, match=r"skip_spikes must be given exactly"):
        layer_currents(cfg, l0, np.zeros((1, 4, 5, 5), np.uint8), np.zeros((1, 4, 5, 5), np.uint8))


def test_quantize_refuses_direct_input_without_an_input_scale():
    from golden.quantize import QuantizeError
    with pytest.raises(QuantizeError, match=r"direct input needs input_frac_bits"):
        quantize(model(), array=8)
