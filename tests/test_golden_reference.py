"""Float reference (golden/reference.py): sharing schemes equal plain LIF over the unrolled chain."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from golden.lif import LIFParams, ReferenceModelError, spike_fn
from golden.reference import EfficientLIFNet, LayerSpec, parse_scheme, with_scheme

torch.set_num_threads(1)


class PlainLIF:
    """Textbook LIF on one membrane tensor, written independently of the code under test."""

    def __init__(self, leak, theta, fire, reset):
        self.leak, self.theta, self.fire, self.reset = leak, theta, fire, reset
        self.v = None

    def step(self, x):
        v = np.zeros_like(x) if self.v is None else self.v
        u = self.leak * v + x
        o = (u >= self.theta) if self.fire == "ge" else (u > self.theta)
        o = o.astype(np.float64)
        self.v = u - self.theta * o if self.reset == "soft" else np.where(o > 0, 0.0, u)
        return u, o


def rand_spikes(shape, p=0.4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g) < p).double()


def make_net(layers, groups, params, seed=1, gain=2.5):
    net = EfficientLIFNet(layers, groups, params, dtype=torch.float64, init_gain=gain)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for w in net.weights:
            w.copy_(torch.randn(w.shape, generator=g, dtype=torch.float64) * gain / math.sqrt(w[0].numel()))
    return net


def run(net, s):
    with torch.no_grad():
        return net.run(s)


def linear_x(spikes, w):
    return spikes @ w.T


def conv_x(spikes, w, padding):
    return F.conv2d(torch.from_numpy(spikes), torch.from_numpy(w), padding=padding).numpy()


MODES = [("soft", "gt"), ("soft", "ge"), ("hard", "gt"), ("hard", "ge")]


@pytest.mark.parametrize("reset,fire", MODES)
@pytest.mark.parametrize("groups", [1, 2, 4])
def test_cn_equals_plain_lif_over_time_group_sequence(reset, fire, groups):
    T, B, C = 5, 3, 8
    p = LIFParams(leak=0.25, theta=1.0, fire=fire, reset=reset)
    net = make_net([LayerSpec("linear", (6,), C, mode="chained", name="l0")], groups, p)
    s = rand_spikes((T, B, 6))
    tr = run(net, s)
    w = net.weights[0].detach().numpy()
    cg = C // groups
    lif = PlainLIF(0.25, 1.0, fire, reset)
    fired = 0
    for t in range(T):                      # unrolled (timestep, group) sequence
        x = linear_x(s[t].numpy(), w)
        for g in range(groups):
            u, o = lif.step(x[:, g * cg:(g + 1) * cg])
            np.testing.assert_allclose(tr.membranes[0][t, :, g * cg:(g + 1) * cg].numpy(), u,
                                       rtol=0, atol=1e-12)
            np.testing.assert_array_equal(tr.spikes[0][t, :, g * cg:(g + 1) * cg].numpy(), o)
            fired += o.sum()
    assert 0 < fired < T * B * C            # the test exercises both outcomes
    np.testing.assert_allclose(tr.final[0].numpy(), lif.v, atol=1e-12)


@pytest.mark.parametrize("reset,fire", MODES)
def test_l_block_equals_plain_lif_over_time_layer_sequence(reset, fire):
    T, B = 4, 2
    p = LIFParams(leak=0.5, theta=1.0, fire=fire, reset=reset)
    layers = [LayerSpec("linear", (5,), 6, block=0, name="a"),
              LayerSpec("linear", (6,), 6, block=0, name="b"),
              LayerSpec("linear", (6,), 6, block=0, name="c"),
              LayerSpec("linear", (6,), 3, mode="readout", name="out")]
    net = make_net(layers, 1, p)
    s = rand_spikes((T, B, 5), seed=3)
    tr = run(net, s)
    ws = [w.detach().numpy() for w in net.weights]
    lif = PlainLIF(0.5, 1.0, fire, reset)
    out = np.zeros((B, 3))
    for t in range(T):                      # unrolled (timestep, layer) sequence, one membrane
        o = s[t].numpy()
        for layer in range(3):
            u, o = lif.step(linear_x(o, ws[layer]))
            np.testing.assert_allclose(tr.membranes[layer][t].numpy(), u, atol=1e-12)
            np.testing.assert_array_equal(tr.spikes[layer][t].numpy(), o)
        out += linear_x(o, ws[3])
    np.testing.assert_allclose(tr.output.numpy(), out, atol=1e-12)


@pytest.mark.parametrize("reset,fire", [("soft", "gt"), ("hard", "ge")])
@pytest.mark.parametrize("groups", [2, 4])
def test_l_plus_cn_conv_block_equals_plain_lif_over_time_layer_group_sequence(reset, fire, groups):
    T, B, C = 3, 2, 4
    p = LIFParams(leak=0.25, theta=1.0, fire=fire, reset=reset)
    layers = [LayerSpec("conv", (2, 5, 5), C, kernel=3, padding=1, block=7, name="c0"),
              LayerSpec("conv", (C, 5, 5), C, kernel=3, padding=1, block=7, name="c1")]
    net = make_net(layers, groups, p, gain=3.0)
    s = rand_spikes((T, B, 2, 5, 5), seed=5)
    tr = run(net, s)
    ws = [w.detach().numpy() for w in net.weights]
    cg = C // groups
    lif = PlainLIF(0.25, 1.0, fire, reset)
    for t in range(T):                      # (timestep, layer, group)
        o_in = s[t].numpy()
        for layer in range(2):
            x = conv_x(o_in, ws[layer], 1)
            o_layer = np.zeros_like(x)
            for g in range(groups):
                u, o = lif.step(x[:, g * cg:(g + 1) * cg])
                np.testing.assert_allclose(tr.membranes[layer][t, :, g * cg:(g + 1) * cg].numpy(), u,
                                           atol=1e-12)
                o_layer[:, g * cg:(g + 1) * cg] = o
            np.testing.assert_array_equal(tr.spikes[layer][t].numpy(), o_layer)
            o_in = o_layer


def test_conv_then_linear_flatten_order_is_chw():
    p = LIFParams()
    layers = [LayerSpec("conv", (1, 4, 4), 2, kernel=3, padding=1, mode="independent"),
              LayerSpec("linear", (32,), 3, mode="readout")]
    net = make_net(layers, 1, p, gain=3.0)
    s = rand_spikes((2, 2, 1, 4, 4), seed=2)
    tr = run(net, s)
    w = net.weights[1].detach().numpy()
    want = sum(tr.spikes[0][t].numpy().reshape(2, 32) @ w.T for t in range(2))
    np.testing.assert_allclose(tr.output.numpy(), want, atol=1e-12)


def test_groups1_chained_and_independent_are_the_baseline():
    base = [LayerSpec("conv", (2, 4, 4), 4, kernel=3, padding=1, mode="independent"),
            LayerSpec("conv", (4, 4, 4), 4, kernel=3, padding=1, mode="independent"),
            LayerSpec("linear", (64,), 5, mode="readout")]
    chained = [LayerSpec(s.kind, s.in_shape, s.out_channels, s.kernel, s.stride, s.padding,
                         "chained" if s.mode != "readout" else "readout") for s in base]
    s = rand_spikes((4, 3, 2, 4, 4), seed=9)
    a = run(make_net(base, 4, LIFParams()), s)        # independent ignores groups
    b = run(make_net(chained, 1, LIFParams()), s)
    c = run(make_net(chained, 2, LIFParams()), s)
    for la, lb in zip(a.spikes[:2], b.spikes[:2]):
        assert torch.equal(la, lb)
    assert torch.equal(a.output, b.output)
    assert not all(torch.equal(x, y) for x, y in zip(a.spikes[:2], c.spikes[:2])), \
        "C#2 should differ from the baseline on this input"


def test_firing_comparison_at_exactly_theta():
    layer = [LayerSpec("linear", (1,), 1, mode="independent")]
    s = torch.ones(1, 1, 1, dtype=torch.float64)
    for fire, want in (("gt", 0.0), ("ge", 1.0)):
        net = EfficientLIFNet(layer, 1, LIFParams(theta=0.75, fire=fire), dtype=torch.float64)
        with torch.no_grad():
            net.weights[0].fill_(0.75)
        assert run(net, s).spikes[0].item() == want


@pytest.mark.parametrize("alpha", [2.0, 4.0])
def test_atan_surrogate_gradient_formula(alpha):
    u = torch.linspace(-1, 3, 41, dtype=torch.float64, requires_grad=True)
    p = LIFParams(theta=1.0, alpha=alpha)
    spike_fn(u, p).sum().backward()
    x = u.detach() - 1.0
    want = (alpha / 2) / (1 + (math.pi / 2 * alpha * x) ** 2)
    torch.testing.assert_close(u.grad, want, rtol=1e-12, atol=0)
    if alpha == 2.0:   # derivative of arctan(pi x)/pi + 1/2 (paper §3.2)
        torch.testing.assert_close(u.grad, 1 / (1 + (math.pi * x) ** 2), rtol=1e-12, atol=0)


def test_with_scheme_labels():
    layers = [LayerSpec("conv", (2, 4, 4), 4, kernel=3, padding=1),
              LayerSpec("conv", (4, 4, 4), 4, kernel=3, padding=1),
              LayerSpec("conv", (4, 4, 4), 8, kernel=3, padding=1, stride=2),
              LayerSpec("linear", (32,), 5, mode="readout")]
    ls, g = with_scheme(layers, "L+C#2")
    assert g == 2 and [s.block for s in ls] == [0, 0, None, None]
    assert [s.mode for s in ls] == ["chained"] * 3 + ["readout"]
    ls, g = with_scheme(layers, "baseline")
    assert g == 1 and [s.mode for s in ls] == ["independent"] * 3 + ["readout"]
    assert parse_scheme("C#8") == (False, 8) and parse_scheme("L") == (True, 1)


def test_training_reduces_loss():
    """A small conv/linear net learns a 2-class spike-pattern task (smoke test of gradients)."""
    torch.manual_seed(0)
    layers, groups = with_scheme([LayerSpec("conv", (1, 6, 6), 4, kernel=3, padding=1),
                                  LayerSpec("conv", (4, 6, 6), 4, kernel=3, padding=1),
                                  LayerSpec("linear", (144,), 2, mode="readout")], "L+C#2")
    net = EfficientLIFNet(layers, groups, LIFParams())
    proto = (torch.rand(2, 1, 6, 6) < 0.5).float()
    labels = torch.arange(32) % 2
    x = (torch.rand(4, 32, 1, 6, 6) < 0.8 * proto[labels] + 0.05).float()
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    losses = []
    for _ in range(25):
        opt.zero_grad()
        loss = F.cross_entropy(net(x), labels)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("build,msg", [
    (lambda: with_scheme([], "C#x"), "scheme"),
    (lambda: EfficientLIFNet([LayerSpec("linear", (4,), 6)], groups=4), "divide"),
    (lambda: EfficientLIFNet([LayerSpec("linear", (4,), 4, block=1), LayerSpec("linear", (4,), 4),
                              LayerSpec("linear", (4,), 4, block=1)]), "sharing block 1 is not contiguous"),
    (lambda: EfficientLIFNet([LayerSpec("linear", (4,), 4, block=1),
                              LayerSpec("linear", (4,), 8, block=1)]), "shape"),
    (lambda: EfficientLIFNet([LayerSpec("linear", (4,), 4), LayerSpec("linear", (5,), 4)]), "in_shape"),
    (lambda: EfficientLIFNet([LayerSpec("linear", (4,), 4, mode="readout"),
                              LayerSpec("linear", (4,), 4)]), "last"),
    (lambda: EfficientLIFNet([LayerSpec("linear", (4,), 4)], params=LIFParams(reset="hard"),
                             backward="reversible"), "soft"),
    (lambda: LIFParams(leak=0.0), "leak"),
    (lambda: LIFParams(fire="gte"), "fire"),
    (lambda: LayerSpec("pool", (4,), 4), "kind"),
    (lambda: LayerSpec("linear", (4,), 4, kernel=3), "kernel"),
])
def test_bad_parameters_raise_clear_errors(build, msg):
    with pytest.raises(ReferenceModelError, match=msg):
        build()


def test_bad_input_raises():
    net = EfficientLIFNet([LayerSpec("linear", (4,), 4)])
    with pytest.raises(ReferenceModelError, match="shape"):
        net(torch.zeros(2, 3, 5))
    with pytest.raises(ReferenceModelError, match="0 or 1"):
        net(torch.full((2, 3, 4), 0.5))


# one geometry for the float LayerSpec and the integer Layer: same fields, same rules
_BAD_GEOMETRY = [
    (dict(kind="pool"), r"^layer 'x': kind='pool': must be one of linear, conv$"),
    (dict(mode="lif"), r"^layer 'x': mode='lif': must be one of chained, independent, readout$"),
    (dict(in_shape=(0,)), r"^layer 'x': in_shape=\(0,\): must be a tuple of positive integers$"),
    (dict(in_shape=(4, 4)), r"^layer 'x': a linear layer takes in_shape \(features,\), got \(4, 4\)$"),
    (dict(out_channels=0), r"^layer 'x': out_channels=0: must be a positive integer$"),
    (dict(kernel=3), r"^layer 'x': kernel/stride/padding must keep their defaults \(1/1/0\)"),
    (dict(stride=True), r"^layer 'x': stride=True: must be a positive integer$"),
    (dict(padding=-1), r"^layer 'x': padding=-1: must be a non-negative integer$"),
    (dict(block="a"), r"^layer 'x': block='a': must be an integer id or None$"),
    (dict(mode="readout", block=0), r"^layer 'x': a readout layer has no membrane and cannot be in "
                                    r"sharing block 0$"),
    (dict(kind="conv", in_shape=(1, 2, 2), kernel=5), r"^layer 'x': kernel 5 is larger than the "
                                                      r"padded input 2x2$"),
    (dict(kind="conv", in_shape=(4,)), r"^layer 'x': a conv layer takes in_shape \(C, H, W\), got \(4,\)$"),
    (dict(name=3), r"^layer: name must be a string, got 3$"),
]


@pytest.mark.parametrize("change,msg", _BAD_GEOMETRY)
def test_layerspec_and_layer_share_the_geometry_rules(change, msg):
    from golden.network import Layer, NetworkError
    fields = dict(dict(kind="linear", in_shape=(4,), out_channels=2, name="x"), **change)
    with pytest.raises(ReferenceModelError, match=msg):
        LayerSpec(**fields)
    with pytest.raises(NetworkError, match=msg):
        Layer(weight=np.zeros((2, 4), np.int64), **fields)


def test_layerspec_geometry_is_derived_once():
    spec = LayerSpec("conv", (2, 5, 5), 4, 3, 2, 1, "independent", None, "c")
    # (5 + 2·1 − 3) // 2 + 1 = 3
    assert (spec.out_shape, spec.out_chw, spec.weight_shape, spec.fan_in) == (
        (4, 3, 3), (4, 3, 3), (4, 2, 3, 3), 18)
    lin = LayerSpec("linear", (36,), 5, mode="readout")
    assert (lin.out_shape, lin.out_chw, lin.fan_in) == ((5,), (5, 1, 1), 36)
    assert LayerSpec("linear", [np.int64(3)], np.int64(2)) == LayerSpec("linear", (3,), 2)
