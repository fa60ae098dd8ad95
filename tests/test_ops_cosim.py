"""A small conv network with bias (folded BatchNorm, docs/fixed-point.md F2b) and
max pooling of spikes, bit-exact on the RTL: ``python -m tb.run`` on Verilator
checks every beat and membrane row against the golden model, which adds the
bias through always-on bias rows (split over several rows where a bias exceeds
the weight range) and pools on the host side of the schedule.
"""

from __future__ import annotations


import numpy as np
from tbrun_util import run_network

from golden.config import HwConfig
from golden.fixed_model import run_fixed
from golden.mapping import layer_bias_rows
from golden.network import Layer, Network


def ops_network() -> Network:
    """conv 2->8 (+bias, split over 3 rows) -> pool 2 -> conv 8->8 (+bias, L block with the next)
    -> conv 8->8 -> pool 2, flatten -> linear readout 32->4 (+bias)."""
    rng = np.random.default_rng(21)
    w = lambda *s: rng.integers(-30, 29, s)          # noqa: E731
    b = lambda n: rng.integers(-300, 301, n)         # noqa: E731
    return Network((2, 8, 8), (
        Layer.conv((2, 8, 8), w(8, 2, 3, 3), padding=1, name="conv1", bias=b(8)),
        Layer.conv((8, 4, 4), w(8, 8, 3, 3), padding=1, name="conv2", pool=2, bias=b(8), block=1),
        Layer.conv((8, 4, 4), w(8, 8, 3, 3), padding=1, name="conv3", block=1),
        Layer.linear(w(4, 32), mode="readout", name="fc", pool=2, bias=b(4)),
    ))


def test_ops_network_does_something():
    net = ops_network()
    cfg = HwConfig(array=8, groups=2, theta_int=64, leak_int=200)
    assert layer_bias_rows(cfg, net.layers[0]) >= 2
    x = (np.random.default_rng(22).random((3, 2, 2, 8, 8)) < 0.3).astype(np.uint8)
    res = run_fixed(cfg, net, x)
    for i in range(3):
        assert 0 < res.layers[i].spikes.mean() < 1, f"layer {i} must fire, but not everywhere"


def test_ops_network_bit_exact_on_verilator(tmp_path):
    net = ops_network()
    x = (np.random.default_rng(22).random((2, 3, 2, 8, 8)) < 0.3).astype(np.uint8)
    doc = run_network(tmp_path, net, x, "--array", "8", "--groups", "2", "--stress", "1",
                      "--cfg", "theta_int=64", "leak_int=200")
    c = doc["checked"]
    assert doc["ok"] and doc["golden_equal"]
    assert c["mismatches"] == 0 and c["beats"] == c["beats_expected"] > 0
    assert c["membrane_words"] > 0
    # the RTL's read-out equals the golden model's, which differs from the same
    # network without its biases / without pooling: the RTL did add the bias rows
    cfg = HwConfig.from_dict(doc["config"]) if "config" in doc else None
    got = np.load(tmp_path / "out" / "outputs.npy")
    xt = x.transpose(1, 0, 2, 3, 4)
    cfg = cfg or HwConfig(array=8, groups=2, theta_int=64, leak_int=200)
    want = run_fixed(cfg, net, xt).output.swapaxes(0, 1)            # [samples, T, 4]
    np.testing.assert_array_equal(got.reshape(want.shape), want)
    assert not np.array_equal(want[0], want[1]), "the samples must differ"
    plain = Network(net.in_shape, tuple(Layer(ly.kind, ly.in_shape, ly.out_channels, ly.weight,
                                              ly.kernel, ly.stride, ly.padding, ly.mode, ly.block,
                                              ly.name, ly.pool) for ly in net.layers))
    assert not np.array_equal(run_fixed(cfg, plain, xt).output.swapaxes(0, 1), want)


def test_spikingjelly_batchnorm_maxpool_model_on_verilator(tmp_path):
    """A SpikingJelly model with BatchNorm2d/1d, conv bias and MaxPool2d: imported (BatchNorm folded,
    pooling mapped), quantized, and run bit-exact on the RTL with the quantizer's configuration."""
    import pytest
    pytest.importorskip("spikingjelly.clock_driven.neuron", reason="SpikingJelly is not installed")
    import torch
    from torch import nn
    from spikingjelly.clock_driven import neuron, surrogate

    from golden.importers import from_spikingjelly
    from golden.quantize import quantize

    def lif():
        return neuron.LIFNode(tau=4 / 3, v_reset=None, surrogate_function=surrogate.ATan(), detach_reset=True)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.bn1, self.lif1 = nn.Conv2d(2, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), lif()
            self.pool = nn.MaxPool2d(2)
            self.conv2, self.bn2, self.lif2 = nn.Conv2d(4, 4, 3, padding=1, bias=True), nn.BatchNorm2d(4), lif()
            self.fc, self.bn3 = nn.Linear(16, 3), nn.BatchNorm1d(3)

        def forward(self, x):
            outs = []
            for t in range(x.shape[0]):
                c = self.bn1(self.conv1(x[t]))
                o = self.pool(torch.cat([self.lif1(c[:, :2]), self.lif1(c[:, 2:])], 1))
                c = self.bn2(self.conv2(o))
                o = self.pool(torch.cat([self.lif2(c[:, :2]), self.lif2(c[:, 2:])], 1))
                outs.append(self.bn3(self.fc(o.flatten(1))))
            return outs

    torch.manual_seed(3)
    m = Net().double().eval()
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, (nn.Conv2d, nn.Linear)):
                f = mod.weight[0].numel()
                mod.weight.copy_(torch.randn(mod.weight.shape, generator=g, dtype=torch.float64) * 2 / f ** 0.5
                                 + 2 / f)
            if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
                n = mod.num_features
                mod.running_mean.copy_(torch.randn(n, generator=g, dtype=torch.float64) * 0.2)
                mod.running_var.copy_(torch.rand(n, generator=g, dtype=torch.float64) + 0.5)
                mod.weight.copy_(torch.rand(n, generator=g, dtype=torch.float64) + 0.5)
                mod.bias.copy_(torch.randn(n, generator=g, dtype=torch.float64) * 0.3)
    x = (torch.rand((3, 4, 2, 8, 8), generator=g) < 0.4).double()
    imp = from_spikingjelly(m, x)
    q = quantize(imp.model, array=8)
    assert [ly.pool for ly in q.network.layers] == [1, 2, 2]
    assert all(ly.bias is not None for ly in q.network.layers)
    (tmp_path / "cfg.json").write_text(q.cfg.to_json())
    xs = imp.spikes.numpy().astype(np.uint8).transpose(1, 0, 2, 3, 4)      # [samples, T, ...]
    doc = run_network(tmp_path, q.network, xs, "--config", str(tmp_path / "cfg.json"))
    assert doc["ok"] and doc["golden_equal"] and doc["checked"]["mismatches"] == 0
    res = run_fixed(q.cfg, q.network, xs.transpose(1, 0, 2, 3, 4))
    assert all(0 < res.layers[i].spikes.mean() < 1 for i in range(2))
    got = np.load(tmp_path / "out" / "outputs.npy")
    np.testing.assert_array_equal(got, res.output.swapaxes(0, 1))
