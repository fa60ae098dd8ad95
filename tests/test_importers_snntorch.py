"""snnTorch (1.0.0) Leaky importer: conformance in float64, the reset-ordering proof, refusals.

snnTorch keeps U (before reset) and applies the reset of step t at step t+1
(``reset_delay``). ``reset_mechanism="zero"`` is then exactly the project's
hard reset; ``"subtract"`` subtracts θ after the decay, which equals the
project's soft reset only for β = 1. The tests show both: exact conformance
where the importer accepts, and a concrete mismatch where it refuses.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

snn = pytest.importorskip("snntorch", reason="snnTorch is not installed (optional extra 'import')")

from golden.importers import ImporterError, from_snntorch  # noqa: E402
from golden.lif import LIFParams  # noqa: E402
from golden.reference import EfficientLIFNet, LayerSpec  # noqa: E402


class Net(nn.Module):
    """fc1 -> lif1 (C#2 by explicit membrane passing) -> fc2, fc3 sharing one membrane (L) -> fc4 readout."""

    def __init__(self, t=6, **kw):
        super().__init__()
        self.t = t
        self.fc1 = nn.Linear(12, 8, bias=False)
        self.lif1 = snn.Leaky(**kw)
        self.fc2 = nn.Linear(8, 8, bias=False)
        self.fc3 = nn.Linear(8, 8, bias=False)
        self.lif2 = snn.Leaky(**kw)
        self.fc4 = nn.Linear(8, 3, bias=False)

    def forward(self, x):
        m1 = self.lif1.init_leaky()
        m2 = self.lif2.init_leaky()
        outs = []
        for t in range(self.t):
            c = self.fc1(x[t])
            s_a, m1 = self.lif1(c[:, :4], m1)          # C#2: group 0, then group 1 from group 0's membrane
            s_b, m1 = self.lif1(c[:, 4:], m1)
            o = torch.cat([s_a, s_b], dim=1).double()   # snnTorch's spikes are float32
            s, m2 = self.lif2(self.fc2(o), m2)          # L: fc2 and fc3 share m2
            s, m2 = self.lif2(self.fc3(s.double()), m2)
            outs.append(self.fc4(s.double()))
        return torch.stack(outs)


def make(seed=0, **kw):
    torch.manual_seed(seed)
    m = Net(**kw).double()
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.Linear):
                f = mod.weight.shape[1]
                mod.weight.copy_(torch.randn_like(mod.weight) * (2 / f ** 0.5) + 1.5 / f)
    return m


def spikes(shape, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g) < 0.5).double()


def check(imp, out):
    with torch.no_grad():
        tr = imp.model.run(imp.spikes)
    for i, spec in enumerate(imp.model.layers[:-1]):
        assert torch.equal(tr.spikes[i], imp.trace.spikes[i]), f"layer {spec.name}: spikes differ"
        assert 0 < int(tr.spikes[i].sum()) < tr.spikes[i].numel(), f"layer {spec.name}: degenerate"
        # with reset_delay=True snnTorch's state is U (before reset): the membranes agree too
        if imp.trace.membranes[i] is not None:
            torch.testing.assert_close(tr.membranes[i], imp.trace.membranes[i], rtol=0, atol=1e-12)
    torch.testing.assert_close(tr.per_step, out, rtol=0, atol=1e-12)


@pytest.mark.parametrize("delay", [True, False])
def test_zero_reset_conforms(delay):
    m = make(beta=0.8125, reset_mechanism="zero", reset_delay=delay)
    x = spikes((6, 4, 12))
    imp = from_snntorch(m, x)
    assert [s.mode for s in imp.model.layers] == ["chained", "independent", "independent", "readout"]
    assert [s.block for s in imp.model.layers] == [None, 1, 1, None]
    assert (imp.params.reset, imp.params.fire, imp.params.leak, imp.groups) == ("hard", "gt", 0.8125, 2)
    assert (imp.trace.membranes[0] is None) == (not delay)
    with torch.no_grad():
        check(imp, m(x))


def test_subtract_reset_with_beta_one_conforms():
    m = make(beta=1.0, reset_mechanism="subtract", seed=2)
    x = spikes((6, 3, 12), seed=3)
    imp = from_snntorch(m, x)
    assert (imp.params.reset, imp.params.leak) == ("soft", 1.0)
    with torch.no_grad():
        check(imp, m(x))


def test_subtract_reset_with_beta_below_one_differs_and_is_refused():
    """Proof of the refusal: snnTorch's U_t = β·U + X − θ·r is not the project's soft reset β·(U − θ·O) + X."""
    beta = 0.5
    lif = snn.Leaky(beta=beta, reset_mechanism="subtract")
    x = torch.tensor([[1.5], [0.0]], dtype=torch.float64)        # fires at t=0, then no input
    mem = lif.init_leaky()
    us = []
    for t in range(2):
        _, mem = lif(x[t:t + 1].reshape(1, 1), mem)
        us.append(float(mem))
    ref = EfficientLIFNet([LayerSpec("linear", (1,), 1, mode="independent")], 1,
                          LIFParams(leak=beta, theta=1.0, reset="soft", fire="gt"), dtype=torch.float64)
    with torch.no_grad():
        ref.weights[0].fill_(1.5)
        u_ref = ref.run(torch.tensor([[[1.0]], [[0.0]]], dtype=torch.float64)).membranes[0].flatten().tolist()
    assert u_ref == [1.5, beta * (1.5 - 1.0)]                   # project: 1.5, then 0.25
    assert us == [1.5, beta * 1.5 - 1.0]                         # snnTorch: 1.5, then -0.25
    m = make(beta=beta, reset_mechanism="subtract")
    with pytest.raises(ImporterError, match=r"neuron module 'lif1' \(Leaky\): reset_mechanism='subtract'.*θ/β"):
        from_snntorch(m, spikes((6, 2, 12)))


def test_subtract_without_reset_delay_is_refused():
    m = make(beta=1.0, reset_mechanism="subtract", reset_delay=False)
    with pytest.raises(ImporterError, match=r"neuron module 'lif1' \(Leaky\): .*reset_delay=False"):
        from_snntorch(m, spikes((6, 2, 12)))


@pytest.mark.parametrize("kw,msg", [
    ({"reset_mechanism": "none"}, r"reset_mechanism='none' is not supported"),
    ({"inhibition": True, "reset_mechanism": "zero"}, r"inhibition=True"),
    ({"graded_spikes_factor": 2.0, "reset_mechanism": "zero"}, r"graded_spikes_factor must be 1"),
    ({"beta": torch.tensor([0.5, 0.75, 0.5, 0.5]), "reset_mechanism": "zero"}, r"per-neuron beta"),
])
def test_leaky_options_refused(kw, msg):
    kw = dict({"beta": 0.5}, **kw)
    m = make(**kw)
    with pytest.raises(ImporterError, match=r"neuron module 'lif1' \(Leaky\): " + msg):
        from_snntorch(m, spikes((6, 2, 12)))


def test_other_neurons_and_wrong_membrane_refused():
    class Syn(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(4, 4, bias=False)
            self.syn = snn.Synaptic(alpha=0.5, beta=0.5, init_hidden=True)

        def forward(self, x):
            return [self.syn(self.fc1(x[t])) for t in range(x.shape[0])]

    with pytest.raises(ImporterError, match=r"neuron module 'syn' \(Synaptic\) is not supported"):
        from_snntorch(Syn().double(), spikes((2, 2, 4)))

    class Restart(nn.Module):        # a fresh membrane every timestep: not a carried membrane
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(4, 4, bias=False)
            self.lif = snn.Leaky(beta=0.5, reset_mechanism="zero")
            self.fc2 = nn.Linear(4, 2, bias=False)

        def forward(self, x):
            return [self.fc2(self.lif(self.fc1(x[t]), torch.zeros(x.shape[1], 4, dtype=x.dtype))[0].double())
                    for t in range(x.shape[0])]

    with pytest.raises(ImporterError, match=r"neuron module 'lif' on 'fc1' at timestep 1.*starts from zero"):
        from_snntorch(Restart().double(), spikes((2, 2, 4)))


@pytest.mark.parametrize("kw,msg", [
    ({"beta": 0.0}, r"beta=0.0 gives no leak"),
    ({"threshold": -0.5}, r"threshold=-0.5 must be > 0"),
    ({"state_quant": lambda u: u}, r"state_quant is not supported"),
    ({"spike_grad": lambda u: torch.sigmoid(u)}, r"spike_grad gives .* it must be a 0/1 step"),
    ({"threshold": torch.tensor([1.0, 2.0, 1.0, 1.0])}, r"per-neuron threshold"),
])
def test_more_leaky_options_refused(kw, msg):
    kw = dict({"beta": 0.5, "reset_mechanism": "zero"}, **kw)
    with pytest.raises(ImporterError, match=r"neuron module 'lif1' \(Leaky\): " + msg):
        from_snntorch(make(**kw), spikes((6, 2, 12)))


def test_ge_spike_grad_is_read_by_probing():
    m = make(beta=0.5, reset_mechanism="zero", spike_grad=lambda u: (u >= 0).to(u.dtype))
    imp = from_snntorch(m, spikes((6, 2, 12)))
    assert imp.params.fire == "ge"
    with torch.no_grad():
        check(imp, m(spikes((6, 2, 12))))


def test_bias_and_batchnorm1d_conform():
    """Linear bias and an eval-mode BatchNorm1d, folded into fc1 (weights and bias)."""
    class BNNet(Net):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.fc1 = nn.Linear(12, 8, bias=True)
            self.fc3 = nn.Linear(8, 8, bias=True)
            self.bn = nn.BatchNorm1d(8)

        def forward(self, x):
            m1 = self.lif1.init_leaky()
            m2 = self.lif2.init_leaky()
            outs = []
            for t in range(self.t):
                c = self.bn(self.fc1(x[t]))
                s_a, m1 = self.lif1(c[:, :4], m1)
                s_b, m1 = self.lif1(c[:, 4:], m1)
                o = torch.cat([s_a, s_b], dim=1).double()
                s, m2 = self.lif2(self.fc2(o), m2)
                s, m2 = self.lif2(self.fc3(s.double()), m2)
                outs.append(self.fc4(s.double()))
            return torch.stack(outs)

    torch.manual_seed(4)
    m = BNNet(beta=0.8125, reset_mechanism="zero").double()
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.Linear):
                f = mod.weight.shape[1]
                mod.weight.copy_(torch.randn(mod.weight.shape, generator=g, dtype=torch.float64) * (2 / f ** 0.5)
                                 + 1.5 / f)
        m.bn.running_mean.copy_(torch.randn(8, generator=g, dtype=torch.float64) * 0.2)
        m.bn.running_var.copy_(torch.rand(8, generator=g, dtype=torch.float64) + 0.5)
        m.bn.weight.copy_(torch.rand(8, generator=g, dtype=torch.float64) + 0.5)
        m.bn.bias.copy_(torch.randn(8, generator=g, dtype=torch.float64) * 0.3)
    m.eval()
    x = spikes((6, 4, 12))
    imp = from_snntorch(m, x)
    assert [s.bias for s in imp.model.layers] == [True, False, True, False]
    with torch.no_grad():
        check(imp, m(x))
