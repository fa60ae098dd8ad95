"""SpikingJelly (clock_driven) importer: conformance in float64 and every refusal.

Conformance: the project's float reference built by ``from_spikingjelly``
reproduces SpikingJelly's own forward exactly, every spike of every LIF layer
at every timestep, and the read-out current at every timestep (to float64
rounding: the input gain 1/τ is folded into the weights, so the sums are
formed in another order). The networks use the EfficientLIF-Net authors'
calling pattern (github Intelligent-Computing-Lab-Yale/EfficientLIF-Net,
archs/vgg/vgg_layerchannelshare.py): ``channel_divlif`` calls one LIFNode on
N consecutive channel slices (C#N), and one LIFNode reused after consecutive
same-shape layers (L).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

sj = pytest.importorskip("spikingjelly.clock_driven.neuron",
                         reason="SpikingJelly is not installed (optional extra 'import')")
from spikingjelly.clock_driven import functional, neuron, surrogate  # noqa: E402

from golden.importers import ImporterError, from_spikingjelly  # noqa: E402

TAU = 1.0 / (1.0 - 0.25)      # the authors' tau_global


def lif(**kw):
    kw.setdefault("tau", TAU)
    kw.setdefault("v_reset", None)
    return neuron.LIFNode(surrogate_function=surrogate.ATan(), detach_reset=True, **kw)


def divlif(x, node, n):
    """The authors' channel_divlif: one neuron module on n consecutive channel slices."""
    c = x.size(1) // n
    return torch.cat([node(x[:, c * i:c * (i + 1), ...]) for i in range(n)], dim=1)


class LinearNet(nn.Module):
    """fc1 (C#N) -> fc2, fc3 sharing lif2 (L+C#N) -> fc4 readout."""

    def __init__(self, n=2, t=5, node=lif):
        super().__init__()
        self.n, self.t = n, t
        self.fc1 = nn.Linear(20, 8, bias=False)
        self.lif1 = node()
        self.fc2 = nn.Linear(8, 8, bias=False)
        self.fc3 = nn.Linear(8, 8, bias=False)
        self.lif2 = node()
        self.fc4 = nn.Linear(8, 3, bias=False)

    def forward(self, x):
        outs = []
        for t in range(self.t):
            o = divlif(self.fc1(x[t]), self.lif1, self.n)
            o = divlif(self.fc2(o), self.lif2, self.n)
            o = divlif(self.fc3(o), self.lif2, self.n)
            outs.append(self.fc4(o))
        return outs


class ConvNet(nn.Module):
    """conv1 (C#2) -> conv2, conv3 sharing one LIFNode (L+C#2) -> flatten -> fc readout."""

    def __init__(self, t=4):
        super().__init__()
        self.t = t
        self.conv1 = nn.Conv2d(2, 4, 3, padding=1, bias=False)
        self.lif1 = lif()
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.conv3 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.lif2 = lif()
        self.conv4 = nn.Conv2d(4, 6, 3, stride=2, bias=False)
        self.lif4 = lif()
        self.fc = nn.Linear(6 * 2 * 2, 3, bias=False)

    def forward(self, x):
        outs = []
        for t in range(self.t):
            o = divlif(self.conv1(x[t]), self.lif1, 2)
            o = divlif(self.conv2(o), self.lif2, 2)
            o = divlif(self.conv3(o), self.lif2, 2)
            o = self.lif4(self.conv4(o))            # independent (no slices)
            outs.append(self.fc(torch.flatten(o, 1)))
        return outs


def make(cls, gain=2.0, seed=0, shift=1.5, **kw):
    """``cls(**kw)`` in float64 with weights N(shift/F, (gain/sqrt F)^2), F = fan-in: busy but not saturated."""
    torch.manual_seed(seed)
    m = cls(**kw).double()
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, (nn.Linear, nn.Conv2d)):
                w = mod.weight
                f = w[0].numel()
                w.copy_(torch.randn_like(w) * (gain / f ** 0.5) + shift / f)
    return m


def spikes(shape, p=0.5, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g) < p).double()


def framework_forward(model, x):
    functional.reset_net(model)
    with torch.no_grad():
        out = torch.stack(model(x))
    functional.reset_net(model)
    return out


def assert_conforms(imp, out):
    with torch.no_grad():
        tr = imp.model.run(imp.spikes)
    n_lif = 0
    for i, spec in enumerate(imp.model.layers):
        if spec.mode == "readout":
            continue
        n_lif += 1
        assert torch.equal(tr.spikes[i], imp.trace.spikes[i]), f"layer {spec.name}: spikes differ"
        # the test must be able to fail: every LIF layer spikes and stays silent somewhere
        assert 0 < int(tr.spikes[i].sum()) < tr.spikes[i].numel(), f"layer {spec.name}: degenerate"
    assert n_lif >= 2
    last = len(imp.model.layers) - 1
    torch.testing.assert_close(tr.currents[last], out, rtol=0, atol=1e-12)
    torch.testing.assert_close(tr.per_step, out, rtol=0, atol=1e-12)


def test_linear_cn_and_l_sharing_conform():
    m = make(LinearNet)
    x = spikes((5, 4, 20))
    imp = from_spikingjelly(m, x)
    specs = imp.model.layers
    assert [s.mode for s in specs] == ["chained", "chained", "chained", "readout"]
    assert [s.block for s in specs] == [None, 1, 1, None]
    assert imp.groups == 2
    p = imp.params
    assert (p.fire, p.reset, p.theta) == ("ge", "soft", 1.0)
    assert p.leak == pytest.approx(0.25, abs=1e-15)
    # the 1/τ input gain is folded into the LIF layers' weights, not into the readout
    torch.testing.assert_close(imp.model.weights[0], m.fc1.weight * (1 / TAU))
    torch.testing.assert_close(imp.model.weights[3], m.fc4.weight)
    assert_conforms(imp, framework_forward(m, x))


def test_conv_cn_l_independent_flatten_conform():
    m = make(ConvNet, gain=2.0)
    x = spikes((4, 2, 2, 6, 6), seed=3)
    imp = from_spikingjelly(m, x)
    specs = imp.model.layers
    assert [s.kind for s in specs] == ["conv", "conv", "conv", "conv", "linear"]
    assert [s.mode for s in specs] == ["chained", "chained", "chained", "independent", "readout"]
    assert [s.block for s in specs] == [None, 1, 1, None, None]
    assert (specs[3].stride, specs[3].padding, specs[3].kernel) == (2, 0, 3)
    assert_conforms(imp, framework_forward(m, x))


def test_single_step_model_called_per_timestep_ifnode_hard_reset():
    class Step(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(10, 6, bias=False)
            self.sn1 = neuron.IFNode(v_reset=0.0)
            self.fc2 = nn.Linear(6, 6, bias=False)
            self.sn2 = neuron.IFNode(v_reset=0.0)
            self.fc3 = nn.Linear(6, 2, bias=False)

        def forward(self, x):
            return self.fc3(self.sn2(self.fc2(self.sn1(self.fc1(x)))))

    m = make(Step, gain=2.0, seed=4)
    x = spikes((6, 3, 10), seed=5)
    imp = from_spikingjelly(m, x, timesteps=6)
    assert (imp.params.leak, imp.params.reset) == (1.0, "hard")
    assert [s.mode for s in imp.model.layers] == ["independent", "independent", "readout"]
    functional.reset_net(m)
    with torch.no_grad():
        out = torch.stack([m(x[t]) for t in range(6)])
    assert_conforms(imp, out)


def test_parametric_lif_frozen_and_decay_input_false():
    def plif():
        return neuron.ParametricLIFNode(init_tau=1.7, v_reset=None)

    m = make(LinearNet, node=plif, n=1, seed=6)
    x = spikes((5, 2, 20), seed=7)
    imp = from_spikingjelly(m, x)
    k = float(torch.sigmoid(m.lif1.w.detach().double()))
    assert imp.params.leak == pytest.approx(1 - k, abs=1e-15)
    assert_conforms(imp, framework_forward(m, x))

    m2 = make(LinearNet, node=lambda: lif(decay_input=False, tau=2.0), n=2, gain=1.0, seed=8)
    imp2 = from_spikingjelly(m2, x)
    torch.testing.assert_close(imp2.model.weights[0], m2.fc1.weight)     # gain 1
    assert_conforms(imp2, framework_forward(m2, x))


# ------------------------------------------------------------------ refusals
class Custom(nn.Module):
    def __init__(self, body):
        super().__init__()
        self.fc1 = nn.Linear(8, 4, bias=False)
        self.lif1 = lif()
        self.fc2 = nn.Linear(4, 4, bias=False)
        self.lif2 = lif()
        self.fc3 = nn.Linear(4, 2, bias=False)
        self.body = body

    def forward(self, x):
        return [self.body(self, x[t]) for t in range(x.shape[0])]


def refuse(body, match, x=None, **mods):
    m = Custom(body)
    for k, v in mods.items():
        setattr(m, k, v)
    with pytest.raises(ImporterError, match=match):
        from_spikingjelly(m.double(), spikes((2, 2, 8)) if x is None else x)


def test_refuses_batchnorm_that_cannot_be_folded():
    def run(body, match, **bn):
        refuse(body, match, **bn)
    on_spikes = lambda s, x: s.fc3(s.lif2(s.fc2(s.bn(s.lif1(s.fc1(x))))))          # noqa: E731
    run(on_spikes, r"module 'bn' \(BatchNorm1d\) on the spikes of the neurons on 'fc1': BatchNorm can be "
        r"folded only directly after a Linear/Conv2d", bn=nn.BatchNorm1d(4))
    plain = lambda s, x: s.fc3(s.lif2(s.fc2(s.lif1(s.bn(s.fc1(x))))))              # noqa: E731
    run(plain, r"module 'bn' \(BatchNorm1d\) on the output of 'fc1': track_running_stats=False",
        bn=nn.BatchNorm1d(4, track_running_stats=False))
    run(plain, r"module 'bn' \(BatchNorm2d\) on the output of 'fc1': a Linear layer's output takes "
        r"BatchNorm1d", bn=nn.BatchNorm2d(4))
    run(lambda s, x: s.fc3(s.lif2(s.fc2(s.lif1(s.bn(s.bn2(s.fc1(x))))))),
        r"module 'bn' \(BatchNorm1d\) on the output of 'fc1': BatchNorm can be folded only once",
        bn=nn.BatchNorm1d(4), bn2=nn.BatchNorm1d(4))
    run(lambda s, x: s.fc3(s.lif2(s.fc2(s.lif1(torch.cat([s.bn(s.fc1(x)[:, :2]), s.fc1(x)[:, 2:]], 1))))),
        r"module 'bn' \(BatchNorm1d\) on the output of 'fc1'.*channels 0:2", bn=nn.BatchNorm1d(2))

    class Sometimes(Custom):
        def forward(self, x):
            return [self.fc3(self.lif2(self.fc2(self.lif1(self.bn(self.fc1(x[t])) if t == 0
                                                          else self.fc1(x[t])))))
                    for t in range(x.shape[0])]

    m = Sometimes(None)
    m.bn = nn.BatchNorm1d(4)
    with pytest.raises(ImporterError, match=r"neuron module 'lif1' takes the output of 'fc1' without its "
                                            r"BatchNorm 'bn'"):
        from_spikingjelly(m.double(), spikes((2, 2, 8)))


def test_refuses_pooling_module_and_functional():
    refuse(lambda s, x: s.fc3(s.lif2(s.fc2(s.pool(s.lif1(s.fc1(x)).unsqueeze(1)).flatten(1)))),
           r"module 'pool' \(MaxPool1d\).*pooling", pool=nn.MaxPool1d(1))
    refuse(lambda s, x: s.fc3(s.lif2(s.fc2(torch.nn.functional.max_pool1d(s.lif1(s.fc1(x)).unsqueeze(1), 1)
                                            .flatten(1)))),
           r"module 'fc2' is fed by .*max_pool1d.*only MaxPool2d of a layer's spikes and average pooling")


def test_refuses_residual_sum_naming_neuron():
    refuse(lambda s, x: s.fc3(s.lif2(s.fc2(s.lif1(s.fc1(x))) + s.fc1(x))),
           r"neuron module 'lif2' is fed by add of the output of 'fc2' and the output of 'fc1': the only sum "
           r"supported is a residual one")


def test_refuses_bad_conv():

    class C(nn.Module):
        def __init__(self, **kw):
            super().__init__()
            self.conv = nn.Conv2d(2, 2, 3, bias=False, **kw)
            self.sn = lif()

        def forward(self, x):
            return [self.sn(self.conv(x[t])) for t in range(2)]

    for kw, msg in (({"dilation": 2}, "dilation"), ({"groups": 2}, "grouped")):
        with pytest.raises(ImporterError, match=rf"module 'conv' \(Conv2d\): .*{msg}"):
            from_spikingjelly(C(**kw).double(), spikes((2, 1, 2, 6, 6)))


def test_refuses_unsupported_neurons_and_parameters():
    body = lambda s, x: s.fc3(s.lif2(s.fc2(s.lif1(s.fc1(x)))))  # noqa: E731
    refuse(body, r"neuron module 'lif1' \(LIFNode\): v_reset=0.5", lif1=neuron.LIFNode(v_reset=0.5))
    refuse(body, r"neuron module 'lif1' \(MultiStepLIFNode\) is not supported",
           lif1=neuron.MultiStepLIFNode())
    refuse(body, r"neuron module 'lif2': leak=.* differs .* of 'lif1'", lif2=lif(tau=3.0))
    refuse(body, r"neuron module 'lif2' \(QIFNode\) is not supported", lif2=neuron.QIFNode())


def test_analog_input_is_direct_input_only_at_the_first_layer():
    imp = from_spikingjelly(Custom(lambda s, x: s.fc3(s.lif2(s.fc2(s.lif1(s.fc1(x)))))).double(),
                            torch.rand(2, 2, 8, dtype=torch.float64))
    assert imp.model.direct_input and any("direct (analog) input" in n for n in imp.notes)
    with pytest.raises(ImporterError, match=r"module 'fc2' is fed by add of .*"):
        from_spikingjelly(Custom(lambda s, x: s.fc3(s.lif2(s.fc2(s.lif1(s.fc1(x)) + x[:, :4])))).double(),
                          torch.rand(2, 2, 8, dtype=torch.float64))


def test_refuses_slices_out_of_order():
    def body(s, x):
        c = s.fc1(x)
        return s.fc3(s.lif2(s.fc2(torch.cat([s.lif1(c[:, 2:]), s.lif1(c[:, :2])], 1))))

    refuse(body, r"module 'fc2' is fed by cat of the spikes of the neurons on 'fc1'")

    def body2(s, x):
        c = s.fc1(x)
        return s.fc3(s.lif2(s.fc2(torch.cat([s.lif1(c[:, :1]), s.lif1(c[:, 1:])], 1))))

    refuse(body2, r"neuron module 'lif1' on 'fc1' at timestep 0 is called on channels 0:1, 1:4",
           x=spikes((1, 2, 8)))


def test_refuses_membrane_order_the_project_does_not_have():
    # lif1 is shared by fc1 and fc2 but fc1 runs all timesteps before fc2 (layer-major),
    # so fc2 at t=0 starts from fc1's t=1 membrane: not the L order.
    class LayerMajor(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(8, 4, bias=False)
            self.fc2 = nn.Linear(4, 4, bias=False)
            self.sn = lif()
            self.fc3 = nn.Linear(4, 2, bias=False)

        def forward(self, x):
            s1 = [self.sn(self.fc1(x[t])) for t in range(2)]
            s2 = [self.sn(self.fc2(s)) for s in s1]
            return [self.fc3(s) for s in s2]

    with pytest.raises(ImporterError, match=r"module 'fc2'|neuron module 'sn' on 'fc2' at timestep 0.*starts from"):
        from_spikingjelly(LayerMajor().double(), spikes((2, 2, 8)))


def test_sequential_with_flatten_modules_called_per_timestep():
    torch.manual_seed(9)
    seq = nn.Sequential(nn.Conv2d(1, 3, 3, bias=False), lif(), nn.Flatten(), nn.Linear(3 * 4 * 4, 6, bias=False),
                        lif(), nn.Flatten(), nn.Dropout(0.5), nn.Linear(6, 2, bias=False))

    def builder():
        return seq

    m = make(lambda: builder(), seed=9)
    x = spikes((5, 3, 1, 6, 6), seed=10)
    imp = from_spikingjelly(m, x, timesteps=5)
    assert [s.name for s in imp.model.layers] == ["0", "3", "7"]
    assert [s.mode for s in imp.model.layers] == ["independent", "independent", "readout"]
    m.eval()                          # the importer runs the model in eval mode (Dropout off)
    functional.reset_net(m)
    with torch.no_grad():
        out = torch.stack([m(x[t]) for t in range(5)])
    assert_conforms(imp, out)
    with pytest.raises(ImporterError, match=r"timesteps=4: example_input must be a tensor \[T=4"):
        from_spikingjelly(m, x, timesteps=4)


# ------------------------------------------------- the remaining refusal paths
def OK(s, x):
    return s.fc3(s.lif2(s.fc2(s.lif1(s.fc1(x)))))


X8 = (2, 2, 8)


class Free(nn.Module):
    """A two-layer net whose forward is given per test (``body(self, x_t)``), T = 2."""

    def __init__(self, body, conv=None, **mods):
        super().__init__()
        self.fc1 = conv or nn.Linear(8, 4, bias=False)
        self.lif1 = lif()
        self.fc2 = nn.Linear(4, 4, bias=False)
        self.lif2 = lif()
        self.fc3 = nn.Linear(4, 2, bias=False)
        for k, v in mods.items():
            setattr(self, k, v)
        self.body = body

    def forward(self, x):
        return [self.body(self, x[t]) for t in range(x.shape[0])]


def _tau_one():
    n = lif()
    n.tau = 1.0
    return n


def _nonzero_v(s, x):
    if isinstance(s.lif1.v, float):       # SpikingJelly's reset_net restores v, so set it inside forward
        s.lif1.v = 0.5
    return OK(s, x)


def _bad_surrogate():
    n = lif()
    n.surrogate_function.spiking = False
    return n


def _neg_threshold():
    return neuron.LIFNode(tau=TAU, v_threshold=-1.0, v_reset=None)   # reset_net restores the constructor's value



CASES = [
    ("conv padding_mode", dict(body=lambda s, x: s.lif1(s.fc1(x)),
                               conv=nn.Conv2d(1, 2, 3, padding=1, padding_mode="circular", bias=False)),
     (2, 1, 1, 5, 5), r"module 'fc1' \(Conv2d\): padding_mode='circular'"),
    ("conv non-square", dict(body=lambda s, x: s.lif1(s.fc1(x)), conv=nn.Conv2d(1, 2, (3, 1), bias=False)),
     (2, 1, 1, 5, 5), r"module 'fc1' \(Conv2d\): kernel \(3, 1\).*square"),
    ("conv same with even kernel", dict(body=lambda s, x: s.lif1(s.fc1(x)),
                                        conv=nn.Conv2d(1, 2, 2, padding="same", bias=False)),
     (2, 1, 1, 5, 5), r"module 'fc1' \(Conv2d\): padding='same'"),
    ("conv1d", dict(body=lambda s, x: s.lif2(s.c1(s.lif1(s.fc1(x)).unsqueeze(1)).flatten(1)),
                    c1=nn.Conv1d(1, 1, 1, bias=False)), X8, r"module 'c1' \(Conv1d\): only nn.Linear and nn.Conv2d"),
    ("layer fed by the input again", dict(body=lambda s, x: (s.lif1(s.fc1(x)), s.fc3(s.lif2(s.fc2(x[:, :4]))))[1]),
     X8, r"module 'fc2' is fed by a value not computed from the spikes of 'fc1'"),
    ("layer fed by a current", dict(body=lambda s, x: s.fc3(s.lif2(s.fc2(s.fc1(x))))), X8,
     r"module 'fc2' is fed by the output of 'fc1'; a layer must take the spikes"),
    ("layer module used twice", dict(body=lambda s, x: s.fc3(s.lif2(s.fc2(s.lif1(s.fc2(s.lif1(s.fc1(x)))))))), X8,
     r"module 'fc2' \(call 1\) is fed by the spikes of 'fc2'"),
    ("neuron on spikes", dict(body=lambda s, x: s.fc3(s.lif2(s.lif1(s.fc1(x))))), X8,
     r"neuron module 'lif2' is fed by the spikes of the neurons on 'fc1'"),
    ("nonzero start", dict(body=_nonzero_v), X8, r"neuron module 'lif1' starts from v=0.5"),
    ("tau <= 1", dict(body=OK, lif1=_tau_one()), X8, r"neuron module 'lif1' \(LIFNode\): tau=1.0 must be > 1"),
    ("surrogate not spiking", dict(body=OK, lif1=_bad_surrogate()), X8,
     r"neuron module 'lif1' \(LIFNode\): surrogate_function has spiking=False"),
    ("threshold <= 0", dict(body=OK, lif1=_neg_threshold()), X8, r"neuron module 'lif1' \(LIFNode\): v_threshold=-1.0"),
    ("detach_reset differs", dict(body=OK, lif2=neuron.LIFNode(tau=TAU, v_reset=None, detach_reset=False)), X8,
     r"neuron module 'lif2': detach_reset=False differs"),
    ("readout not last", dict(body=lambda s, x: s.fc3(s.fc2(s.lif1(s.fc1(x))).relu())), X8,
     r"module 'fc3' is fed by relu of the output of 'fc2'"),
    ("no layer", dict(body=lambda s, x: s.lif1(x)), X8, r"called no nn.Linear or nn.Conv2d"),
    ("no neuron", dict(body=lambda s, x: s.fc1(x)), X8, r"has no neuron"),
    ("groups differ", dict(body=lambda s, x: s.fc3(divlif(s.fc2(divlif(s.fc1(x), s.lif1, 2)), s.lif2, 4))), X8,
     r"layers are split into \[2, 4\] channel groups"),
    ("activation_based node", dict(body=OK, lif1=__import__("spikingjelly.activation_based.neuron",
                                                            fromlist=["LIFNode"]).LIFNode()), X8,
     r"neuron module 'lif1' \(LIFNode\) is from spikingjelly.activation_based"),
]


@pytest.mark.parametrize("kw,shape,match", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_refusal_paths_name_the_module(kw, shape, match):
    with pytest.raises(ImporterError, match=match):
        from_spikingjelly(Free(**kw).double(), spikes(shape))


def test_refuses_layers_called_unequally_and_non_modules():
    class Uneven(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.lif1 = nn.Linear(8, 4, bias=False), lif()
            self.fc2, self.lif2 = nn.Linear(4, 2, bias=False), lif()

        def forward(self, x):
            s = [self.lif1(self.fc1(x[t])) for t in range(2)]
            return self.lif2(self.fc2(s[0]))

    with pytest.raises(ImporterError, match=r"module 'fc2' was called 1 times, the first layer 'fc1' 2 times"):
        from_spikingjelly(Uneven().double(), spikes(X8))
    with pytest.raises(ImporterError, match=r"expected a torch.nn.Module, got function"):
        from_spikingjelly(lambda x: x, spikes(X8))


# ------------------------------------- the authors' networks (issue 11 conformance)
@pytest.mark.parametrize("arch", ["VGG16LayerChannelShare", "ResNet19LayerChannelShare"])
def test_authors_networks_conform(arch):
    """The authors' VGG16_layerchannelshare (C#2) and ResNet19_layerchannelshare
    (tests/efficientlif_archs.py says where each comes from), random weights and
    randomized BatchNorm statistics in eval mode, 32x32 input, T = 5, batch 2:
    imported, the float64 reference reproduces SpikingJelly's forward exactly, every
    spike of every LIF layer at every timestep and the classifier output.

    Exercised: BatchNorm folding, max pooling, the adaptive average pooling folded into
    the classifier, direct analog input computed once (static_x), C#2 halves, L sharing
    (one LIFNode per group of layers / per stage) and, for ResNet19, identity and 1x1
    conv + BN residual shortcuts.
    """
    import efficientlif_archs as archs

    torch.manual_seed(0)
    model = archs.excite(archs.randomize_batchnorm(getattr(archs, arch)(total_timestep=5)).double())
    x = torch.rand(2, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    imp = from_spikingjelly(model, x)
    out = framework_forward(model, x)
    assert imp.model.direct_input and imp.groups == 2
    assert imp.spikes.shape == (5, 2, 3, 32, 32) and torch.equal(imp.spikes[4], x)
    layers = imp.model.layers
    assert all(s.mode == "chained" for s in layers[:-1]) and layers[-1].mode == "readout"
    assert layers[-1].name in ("classifier", "fc1")
    if arch.startswith("VGG"):
        assert len(layers) == 14
        # lif3 for conv3-4, lif5 for conv5-7, lif8 for conv8-10, lif11 for conv11-13
        assert [s.block for s in layers[:-1]] == [None, None, 2, 2, 4, 4, 4, 7, 7, 7, 10, 10, 10]
        assert [s.pool for s in layers] == [1, 1, 2, 1, 2, 1, 1, 2, 1, 1, 2, 1, 1, 1]
        assert layers[-1].in_shape == (512 * 2 * 2,)          # lastpool folded: 2x2 spikes, W/4
        assert all(s.skip is None for s in layers)
    else:
        assert len(layers) == 18
        # one LIFNode per stage: layer1 = layers 1-6, layer2 = 7-12, layer3 = 13-16
        assert [s.block for s in layers[:-1]] == [None] + [1] * 6 + [7] * 6 + [13] * 4
        # conv2 of every BasicBlock adds the block input: 1x1 conv + BN where the shape changes
        assert [s.skip for s in layers] == [None, None, 0, None, 2, None, 4, None, 6, None, 8, None,
                                            10, None, 12, None, 14, None]
        assert [(s.skip_kernel, s.skip_stride) for s in layers if s.skip is not None] == \
            [(1, 2), (1, 1), (1, 1), (1, 2), (1, 1), (1, 1), (1, 2), (1, 1)]
        assert layers[-1].in_shape == (512 * 4 * 4,)          # avgpool 4x4 folded: W/16
    assert_conforms(imp, out)


class Mods(nn.Module):
    """Submodules given by keyword, a forward given as ``body(self, x)``."""

    def __init__(self, body, **mods):
        super().__init__()
        for k, v in mods.items():
            setattr(self, k, v)
        self.body = body

    def forward(self, x):
        return self.body(self, x)


def excited(m, gain=3.0, seed=1):
    import efficientlif_archs as archs
    return archs.excite(m.double(), gain, seed)


def test_average_pooling_folds_into_conv_and_linear():
    """AvgPool2d(2) before a conv (kernel 2·3, stride 2, padding 2) and AdaptiveAvgPool2d(1)
    (divisor 9, not a power of two) before a linear, functional avg_pool2d too."""
    import torch.nn.functional as F

    def body(s, x):
        outs = []
        for t in range(x.shape[0]):
            o = s.pool(s.lif1(s.conv1(x[t])))
            o = F.avg_pool2d(s.lif2(s.conv2(o)), 1)
            o = s.lastpool(s.lif3(s.conv3(o)))
            outs.append(s.fc(torch.flatten(o, 1)))
        return outs

    m = excited(Mods(body, conv1=nn.Conv2d(2, 4, 3, padding=1, bias=False), lif1=lif(),
                     pool=nn.AvgPool2d(2), conv2=nn.Conv2d(4, 4, 3, padding=1, bias=False), lif2=lif(),
                     conv3=nn.Conv2d(4, 4, 3, padding=1, bias=False), lif3=lif(),
                     lastpool=nn.AdaptiveAvgPool2d(1), fc=nn.Linear(4, 3, bias=False)))
    x = spikes((4, 2, 2, 6, 6))
    imp = from_spikingjelly(m, x)
    s = imp.model.layers
    assert (s[1].in_shape, s[1].kernel, s[1].stride, s[1].padding) == ((4, 6, 6), 6, 2, 2)
    assert s[3].in_shape == (4 * 3 * 3,)
    assert any("divisor 9" in n for n in imp.notes)
    assert_conforms(imp, framework_forward(m, x))


def test_residual_identity_and_conv_shortcut_conform():
    """X = bn2(conv2(o1)) + shortcut(x): identity, and 1x1 conv + BN, with one LIFNode (L)."""
    def block(s, x, conv1, conv2, short):
        o1 = divlif(conv1(x), s.lif, 2)
        return divlif(conv2(o1) + short(x), s.lif, 2)

    def body(s, x):
        outs = []
        for t in range(x.shape[0]):
            o = divlif(s.bn0(s.conv0(x[t])), s.lif0, 2)
            o = block(s, o, s.a1, lambda v: s.abn(s.a2(v)), s.short)
            o = block(s, o, s.b1, s.b2, nn.Sequential())
            outs.append(s.fc(o.flatten(1)))
        return outs

    m = excited(Mods(body, conv0=nn.Conv2d(2, 4, 3, padding=1, bias=False), bn0=nn.BatchNorm2d(4),
                     lif0=lif(), a1=nn.Conv2d(4, 6, 3, stride=2, padding=1, bias=False),
                     a2=nn.Conv2d(6, 6, 3, padding=1, bias=False), abn=nn.BatchNorm2d(6),
                     short=nn.Sequential(nn.Conv2d(4, 6, 1, stride=2, bias=False), nn.BatchNorm2d(6)),
                     b1=nn.Conv2d(6, 6, 3, padding=1), b2=nn.Conv2d(6, 6, 3, padding=1), lif=lif(),
                     fc=nn.Linear(6 * 3 * 3, 3, bias=False)))
    import efficientlif_archs as archs
    archs.randomize_batchnorm(m)
    x = spikes((4, 2, 2, 6, 6))
    imp = from_spikingjelly(m, x)
    s = imp.model.layers
    assert [l.skip for l in s] == [None, None, 0, None, 2, None]
    assert [l.block for l in s] == [None, 1, 1, 1, 1, None]
    assert (s[2].skip_in_shape, s[2].skip_stride) == ((4, 6, 6), 2)
    assert assert_conforms(imp, framework_forward(m, x)) is None


def test_direct_input_computed_once_conforms():
    """The authors' static_x = bn1(conv1(image)) computed once, fed to the LIF every timestep."""
    def body(s, img):
        static_x = s.bn1(s.conv1(img))
        outs = []
        for _ in range(3):
            o = divlif(static_x, s.lif1, 2)
            outs.append(s.fc(s.lif2(s.conv2(o)).flatten(1)))
        return outs

    m = excited(Mods(body, conv1=nn.Conv2d(3, 4, 3, padding=1, bias=False), bn1=nn.BatchNorm2d(4),
                     lif1=lif(), conv2=nn.Conv2d(4, 4, 3, stride=2, bias=False), lif2=lif(),
                     fc=nn.Linear(16, 3, bias=False)))
    import efficientlif_archs as archs
    archs.randomize_batchnorm(m)
    img = torch.randn(2, 3, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    imp = from_spikingjelly(m, img)
    assert imp.model.direct_input and imp.spikes.shape == (3, 2, 3, 6, 6)
    assert_conforms(imp, framework_forward(m, img))


def test_refuses_residual_forms_the_project_does_not_have():
    x = spikes((2, 2, 8))

    def run(body, **mods):
        return from_spikingjelly(Mods(body, **mods).double(), x)

    fc = dict(fc1=nn.Linear(8, 8, bias=False), lif1=lif(), fc2=nn.Linear(8, 8, bias=False), lif2=lif(),
              fc3=nn.Linear(8, 2, bias=False))
    # a shortcut added only at some timesteps
    with pytest.raises(ImporterError, match=r"neuron module 'lif2' takes the output of 'fc2' without its "
                                            r"residual shortcut"):
        run(lambda s, x: [s.fc3(s.lif2(s.fc2(o) + o if t == 0 else s.fc2(o)))
                          for t in range(2) for o in [s.lif1(s.fc1(x[t]))]], **fc)
    # a shortcut of a reassembled slice
    with pytest.raises(ImporterError, match=r"neuron module 'lif2' is fed by add of the output of 'fc2' and "
                                            r"cat of .*the only sum supported is a residual one"):
        run(lambda s, x: [s.fc3(s.lif2(s.fc2(o) + torch.cat([o[:, :4], o[:, :4]], 1)))
                          for t in range(2) for o in [s.lif1(s.fc1(x[t]))]], **fc)
    # a shortcut layer whose output is never added
    with pytest.raises(ImporterError, match=r"module 'sc' takes the spikes of 'fc1'.*not added"):
        run(lambda s, x: [(s.fc3(s.lif2(s.fc2(s.lif3(s.fcb(o))))), s.sc(o))[0]
                          for t in range(2) for o in [s.lif1(s.fc1(x[t]))]],
            fcb=nn.Linear(8, 8, bias=False), lif3=lif(), sc=nn.Linear(8, 2, bias=False), **fc)
    # the same current fed to the neurons twice, not by the first layer
    with pytest.raises(ImporterError, match=r"neuron module 'lif2' takes the same output of 'fc2'"):
        run(lambda s, x: [s.fc3(s.lif2(c)) for t in range(2) for c in [s.fc2(s.lif1(s.fc1(x[t])))]
                          for _ in range(2)], **fc)


def test_refuses_average_pooling_that_does_not_fold():
    """An average pooling folds into the next layer only when its windows are disjoint and,
    before a conv, square and dividing the map; otherwise one line names the module."""
    def net(pool, head):
        return Mods(lambda s, x: [s.fc(s.flat(s.pool(s.lif1(s.conv1(x[t]))))) for t in range(2)],
                    conv1=nn.Conv2d(2, 4, 3, padding=1, bias=False), lif1=lif(), pool=pool,
                    flat=nn.Flatten(), fc=head).double()

    x = spikes((2, 2, 2, 6, 6))
    with pytest.raises(ImporterError, match=r"module 'pool' \(AvgPool2d\) .*only non-overlapping windows"):
        from_spikingjelly(net(nn.AvgPool2d(3, stride=1), nn.Linear(64, 3, bias=False)), x)
    with pytest.raises(ImporterError, match=r"module 'pool' \(AdaptiveAvgPool2d\) .*output size 4 does "
                                            r"not divide the 6x6 input"):
        from_spikingjelly(net(nn.AdaptiveAvgPool2d(4), nn.Linear(64, 3, bias=False)), x)
    conv_after = Mods(lambda s, x: [s.fc(s.flat(s.lif2(s.conv2(s.pool(s.lif1(s.conv1(x[t])))))))
                                    for t in range(2)],
                        conv1=nn.Conv2d(2, 4, 3, padding=1, bias=False), lif1=lif(), pool=nn.AvgPool2d(4),
                        conv2=nn.Conv2d(4, 4, 1, bias=False), lif2=lif(), flat=nn.Flatten(),
                        fc=nn.Linear(4, 3, bias=False)).double()
    with pytest.raises(ImporterError, match=r"module 'conv2' \(Conv2d\) after a 4x4 average pooling of a "
                                            r"6x6 map"):
        from_spikingjelly(conv_after, x)


def test_imported_model_quantizes_and_runs_in_fixed_point():
    from golden.quantize import agreement_report, quantize

    m = make(ConvNet, gain=2.0)
    x = spikes((4, 2, 2, 6, 6), seed=3)
    imp = from_spikingjelly(m, x)
    q = quantize(imp.model, array=16)
    assert (q.cfg.groups, q.cfg.fire, q.cfg.reset) == (2, "ge", "soft")
    assert q.choices["leak"]["exact"]                     # λ = 0.25 = 64/256
    assert [l.block for l in q.network.layers] == [s.block for s in imp.model.layers]
    rep = agreement_report(imp.model, q, imp.spikes)
    for row in rep["float_quantized"]["layers"]:
        assert row["agreement"] > 0.9, row


# ------------------------------------------------ BatchNorm, bias, max pooling
def randomize_bn(model, seed=0):
    """Eval-mode BatchNorm with random statistics and affine parameters (not the identity)."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            n = m.num_features
            with torch.no_grad():
                m.running_mean.copy_(torch.randn(n, generator=g, dtype=torch.float64) * 0.2)
                m.running_var.copy_(torch.rand(n, generator=g, dtype=torch.float64) + 0.5)
                if m.affine:
                    m.weight.copy_(torch.rand(n, generator=g, dtype=torch.float64) + 0.5)
                    m.bias.copy_(torch.randn(n, generator=g, dtype=torch.float64) * 0.3)
    return model


class BNPoolNet(nn.Module):
    """conv1 + bn1 (C#2) -> maxpool 2 -> conv2(bias) + bn2, conv3(bias, no BN) sharing lif2 (L+C#2)
    -> maxpool 2 -> flatten -> fc(bias) + bn_fc readout: the authors' VGG pattern in small."""

    def __init__(self, t=4, affine=True):
        super().__init__()
        self.t = t
        self.conv1, self.bn1 = nn.Conv2d(2, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4, affine=affine)
        self.lif1 = lif()
        self.pool1 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.conv2, self.bn2 = nn.Conv2d(4, 4, 3, padding=1, bias=True), nn.BatchNorm2d(4)
        self.conv3 = nn.Conv2d(4, 4, 3, padding=1, bias=True)
        self.lif2 = lif()
        self.pool2 = nn.MaxPool2d(2)
        self.fc, self.bn_fc = nn.Linear(16, 3, bias=True), nn.BatchNorm1d(3)

    def forward(self, x):
        outs = []
        for t in range(self.t):
            o = self.pool1(divlif(self.bn1(self.conv1(x[t])), self.lif1, 2))
            o = divlif(self.bn2(self.conv2(o)), self.lif2, 2)
            o = self.pool2(divlif(self.conv3(o), self.lif2, 2))
            outs.append(self.bn_fc(self.fc(torch.flatten(o, 1))))
        return outs


@pytest.mark.parametrize("affine", [True, False])
def test_batchnorm_bias_and_maxpool_conform(affine):
    m = randomize_bn(make(BNPoolNet, gain=2.0, shift=2.0, affine=affine), seed=1).eval()
    with torch.no_grad():
        for mod in (m.conv2, m.conv3, m.fc):
            mod.bias.copy_(torch.randn(mod.bias.shape, generator=torch.Generator().manual_seed(5)) * 0.3)
    x = spikes((4, 3, 2, 9, 9), seed=4)          # 9x9: the pools drop a row and a column
    imp = from_spikingjelly(m, x)
    specs = imp.model.layers
    assert [s.pool for s in specs] == [1, 2, 1, 2]
    assert [s.bias for s in specs] == [True, True, True, True]
    assert [s.block for s in specs] == [None, 1, 1, None]
    assert specs[1].in_shape == (4, 4, 4) and specs[3].in_shape == (16,)
    assert any("bn1" in n and "folded" in n for n in imp.notes)
    # the fold itself, in float64: s = γ/sqrt(var+eps), W·s/τ, (s·(b − mean) + β)/τ
    bn = m.bn2
    sc = bn.weight / torch.sqrt(bn.running_var + bn.eps)          # bn2 is affine either way
    torch.testing.assert_close(imp.model.weights[1], m.conv2.weight * sc.view(-1, 1, 1, 1) / TAU,
                               rtol=1e-15, atol=0)
    torch.testing.assert_close(imp.model.biases["1"], (sc * (m.conv2.bias - bn.running_mean) + bn.bias) / TAU,
                               rtol=1e-15, atol=1e-17)
    torch.testing.assert_close(imp.model.biases["2"], m.conv3.bias / TAU, rtol=0, atol=0)
    assert_conforms(imp, framework_forward(m, x))


def test_linear_batchnorm1d_conforms():
    class Net(LinearNet):
        def __init__(self):
            super().__init__()
            self.bn1, self.bn2 = nn.BatchNorm1d(8), nn.BatchNorm1d(8)

        def forward(self, x):
            outs = []
            for t in range(self.t):
                o = divlif(self.bn1(self.fc1(x[t])), self.lif1, self.n)
                o = divlif(self.bn2(self.fc2(o)), self.lif2, self.n)
                o = divlif(self.fc3(o), self.lif2, self.n)
                outs.append(self.fc4(o))
            return outs

    m = randomize_bn(make(Net), seed=2).eval()
    x = spikes((5, 4, 20))
    imp = from_spikingjelly(m, x)
    assert [s.bias for s in imp.model.layers] == [True, True, False, False]
    assert_conforms(imp, framework_forward(m, x))


def test_refuses_maxpool_that_is_not_an_or_of_spike_windows():
    class P(nn.Module):
        def __init__(self, pool, where="spikes", twice=False):
            super().__init__()
            self.conv, self.sn, self.pool = nn.Conv2d(1, 2, 3, padding=1, bias=False), lif(), pool
            self.fc, self.where, self.twice = nn.Linear(2 * 3 * 3, 2, bias=False), where, twice

        def forward(self, x):
            out = []
            for t in range(x.shape[0]):
                if self.where == "current":
                    o = self.sn(self.pool(self.conv(x[t])))
                else:
                    o = self.pool(self.sn(self.conv(x[t])))
                    if self.twice:
                        o = self.pool(o)
                out.append(self.fc(o.flatten(1)))
            return out

    x = spikes((2, 1, 1, 6, 6))
    for pool, msg in ((nn.MaxPool2d(2, stride=1), r"only MaxPool2d\(k\)"),
                      (nn.MaxPool2d(2, padding=1), r"only MaxPool2d\(k\)"),
                      (nn.MaxPool2d(2, ceil_mode=True), "ceil_mode=True"),
                      (nn.MaxPool2d((2, 3)), r"only MaxPool2d\(k\)"),
                      (nn.AvgPool2d(2, stride=1), "only non-overlapping windows")):
        with pytest.raises(ImporterError, match=rf"module 'pool' \({type(pool).__name__}\) on the spikes "
                                                rf"of the neurons on 'conv': .*{msg}"):
            from_spikingjelly(P(pool).double(), x)
    with pytest.raises(ImporterError, match=r"module 'pool' \(MaxPool2d\) on the output of 'conv': "
                                            r"pooling is not supported yet here"):
        from_spikingjelly(P(nn.MaxPool2d(2), where="current").double(), x)
    with pytest.raises(ImporterError, match=r"module 'pool' \(MaxPool2d\) on the spikes of the neurons on "
                                            r"'conv': max pooling is supported once"):
        from_spikingjelly(P(nn.MaxPool2d(2), twice=True).double(), spikes((2, 1, 1, 12, 12)))
    with pytest.raises(ImporterError, match=r"max_pool2d of the spikes of the neurons on 'conv': kernel 2, "
                                            r"stride 1.*only MaxPool2d\(k\)"):
        from_spikingjelly(P(lambda o: torch.nn.functional.max_pool2d(o, 2, 1)).double(), x)


def test_functional_max_pool2d_conforms():
    class F(BNPoolNet):
        def forward(self, x):
            outs = []
            for t in range(self.t):
                o = torch.nn.functional.max_pool2d(divlif(self.bn1(self.conv1(x[t])), self.lif1, 2), 2)
                o = divlif(self.bn2(self.conv2(o)), self.lif2, 2)
                o = torch.nn.functional.max_pool2d(divlif(self.conv3(o), self.lif2, 2), kernel_size=2, stride=2)
                outs.append(self.bn_fc(self.fc(torch.flatten(o, 1))))
            return outs

    m = randomize_bn(make(F, gain=2.0, shift=2.0), seed=1).eval()
    x = spikes((4, 3, 2, 8, 8), seed=4)
    imp = from_spikingjelly(m, x)
    assert [s.pool for s in imp.model.layers] == [1, 2, 1, 2]
    assert_conforms(imp, framework_forward(m, x))


def test_batchnorm_maxpool_model_quantizes_and_agrees():
    from golden.quantize import agreement_report, quantize

    m = randomize_bn(make(BNPoolNet, gain=2.0, shift=2.0), seed=1).eval()
    x = spikes((4, 3, 2, 9, 9), seed=4)
    imp = from_spikingjelly(m, x)
    q = quantize(imp.model, array=16, acc_width=20, mem_width=20)
    assert [ly.pool for ly in q.network.layers] == [1, 2, 1, 2]
    assert all(ly.bias is not None for ly in q.network.layers)
    rep = agreement_report(imp.model, q, imp.spikes)
    for row in rep["float_quantized"]["layers"]:
        assert row["agreement"] > 0.9, row


def test_residual_direct_input_model_quantizes_and_agrees():
    """Imported (direct input computed once, BN, identity and conv shortcuts, C#2, L) ->
    quantize with 8-bit input bit planes -> fixed point: the layers agree with the float
    model with the quantized weights nearly everywhere (F3 rounding of λ·V is all that is left)."""
    from golden.quantize import agreement_report, quantize

    def body(s, img):
        static_x = s.bn0(s.conv0(img))
        outs = []
        for _ in range(4):
            o = divlif(static_x, s.lif0, 2)
            o1 = divlif(s.a1(o), s.lif, 2)
            o2 = divlif(s.abn(s.a2(o1)) + s.short(o), s.lif, 2)
            o3 = divlif(s.b1(o2), s.lif, 2)
            o4 = divlif(s.b2(o3) + o2, s.lif, 2)
            outs.append(s.fc(o4.flatten(1)))
        return outs

    import efficientlif_archs as archs
    m = excited(Mods(body, conv0=nn.Conv2d(3, 4, 3, padding=1, bias=False), bn0=nn.BatchNorm2d(4),
                     lif0=lif(), a1=nn.Conv2d(4, 6, 3, stride=2, padding=1, bias=False),
                     a2=nn.Conv2d(6, 6, 3, padding=1, bias=False), abn=nn.BatchNorm2d(6),
                     short=nn.Sequential(nn.Conv2d(4, 6, 1, stride=2, bias=False), nn.BatchNorm2d(6)),
                     b1=nn.Conv2d(6, 6, 3, padding=1, bias=False), b2=nn.Conv2d(6, 6, 3, padding=1, bias=False),
                     lif=lif(), fc=nn.Linear(6 * 3 * 3, 3, bias=False)))
    archs.randomize_batchnorm(m)
    img = torch.rand(3, 3, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    imp = from_spikingjelly(m, img)
    assert_conforms(imp, framework_forward(m, img))
    q = quantize(imp.model, array=8, weight_width=12, acc_width=24, mem_width=24, input_bits=8,
                 input_frac_bits=7, input_signed=False)
    assert q.network.input_bits == 8 and q.network.in_shape == (24, 6, 6)
    assert [lay.skip for lay in q.network.layers] == [None, None, 0, None, 2, None]
    rep = agreement_report(imp.model, q, imp.spikes)
    for row in rep["float_quantized"]["layers"]:
        assert row["agreement"] >= 0.97, row
    assert sum(r["fixed_spikes"] for r in rep["float_quantized"]["layers"]) > 0
