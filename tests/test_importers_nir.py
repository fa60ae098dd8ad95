"""NIR importer and ``python -m golden.convert``: round trips spike-for-spike, refusals, end to end.

Two round trips, both through a ``.nir`` file and both compared spike for
spike (float64) with the snnTorch model's own forward:

* a conv network (C#2 and L sharing, which snnTorch's exporter cannot trace:
  it slices channels and passes membranes by hand) written with ``nir``
  directly, with the formulas of ``snntorch.export_nir`` for a ``Leaky``
  (dt = 1e-4, τ = dt/(1 − β), r = τ/dt, v_leak = 0, v_reset = 0);
* an ``nn.Sequential`` exported by snnTorch's own ``export_to_nir`` (needs
  ``nirtorch``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

nir = pytest.importorskip("nir", reason="nir is not installed (optional extra 'import')")
snn = pytest.importorskip("snntorch", reason="snnTorch is not installed (optional extra 'import')")

from golden import convert as conv_cli  # noqa: E402
from golden.fixed_model import run_fixed  # noqa: E402
from golden.importers import ImporterError, from_nir  # noqa: E402
from golden.network import load_network  # noqa: E402

DT = 1e-4


def lif_node(beta, shape, theta=1.0):
    tau = np.full(shape, DT / (1 - beta))
    return nir.LIF(tau=tau, r=tau / DT, v_leak=np.zeros(shape), v_threshold=np.full(shape, theta),
                   v_reset=np.zeros(shape))


def chain(*named, metadata=None, type_check=False):
    nodes = dict(named)
    names = [n for n, _ in named]
    return nir.NIRGraph(nodes=nodes, edges=list(zip(names, names[1:])), metadata=metadata or {},
                        type_check=type_check)


class SnnNet(nn.Module):
    """The snnTorch twin of the graph: conv1 (C#2) -> fc2, fc3 sharing one membrane (L) -> fc4 readout."""

    def __init__(self, beta):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 4, 3, padding=1, bias=False)
        self.fc2 = nn.Linear(4 * 5 * 5, 8, bias=False)
        self.fc3 = nn.Linear(8, 8, bias=False)
        self.fc4 = nn.Linear(8, 3, bias=False)
        self.lif1 = snn.Leaky(beta=beta, reset_mechanism="zero")
        self.lif2 = snn.Leaky(beta=beta, reset_mechanism="zero")

    def forward(self, x):
        m1, m2, outs, rec = self.lif1.init_leaky(), self.lif2.init_leaky(), [], []
        for t in range(x.shape[0]):
            c = self.conv1(x[t])
            a, m1 = self.lif1(c[:, :2], m1)
            b, m1 = self.lif1(c[:, 2:], m1)
            s1 = torch.cat([a, b], 1).double()
            s2, m2 = self.lif2(self.fc2(s1.flatten(1)), m2)
            s3, m2 = self.lif2(self.fc3(s2.double()), m2)
            outs.append(self.fc4(s3.double()))
            rec.append((s1, s2.double(), s3.double()))
        return torch.stack(outs), [torch.stack([r[i] for r in rec]) for i in range(3)]


def make_pair(beta=0.8125, seed=0):
    torch.manual_seed(seed)
    m = SnnNet(beta).double()
    with torch.no_grad():
        for mod in (m.conv1, m.fc2, m.fc3, m.fc4):
            f = mod.weight[0].numel()
            mod.weight.copy_(torch.randn_like(mod.weight) * (2 / f ** 0.5) + 1.5 / f)
    w = {k: getattr(m, k).weight.detach().numpy().copy() for k in ("conv1", "fc2", "fc3", "fc4")}
    g = chain(("input", nir.Input(np.array([2, 5, 5]))),
              ("conv1", nir.Conv2d(input_shape=(5, 5), weight=w["conv1"], stride=1, padding=1, dilation=1,
                                   groups=1, bias=np.zeros(4))),
              ("lif1", lif_node(beta, (4, 5, 5))),
              ("flat", nir.Flatten(input_type={"input": np.array([4, 5, 5])}, start_dim=0)),
              ("fc2", nir.Linear(weight=w["fc2"])), ("lif2a", lif_node(beta, (8,))),
              ("fc3", nir.Affine(weight=w["fc3"], bias=np.zeros(8))), ("lif2b", lif_node(beta, (8,))),
              ("fc4", nir.Linear(weight=w["fc4"])), ("output", nir.Output(np.array([3]))), type_check=True)
    return m, g


def spikes(shape, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=gen) < 0.5).double()


SHARE = ["lif1:2", "lif2a,lif2b"]


def test_nir_file_round_trip_spike_for_spike(tmp_path):
    m, g = make_pair()
    path = tmp_path / "net.nir"
    nir.write(str(path), g)
    model = from_nir(path, reset="hard", dt=DT, share=SHARE)
    assert [s.mode for s in model.layers] == ["chained", "independent", "independent", "readout"]
    assert [s.block for s in model.layers] == [None, 1, 1, None]
    assert model.groups == 2 and model.params.fire == "gt"
    assert model.params.leak == pytest.approx(0.8125, abs=1e-12)
    x = spikes((6, 3, 2, 5, 5))
    with torch.no_grad():
        out, rec = m(x)
        tr = model.run(x)
    for i in range(3):
        assert torch.equal(tr.spikes[i], rec[i]), f"layer {i}: spikes differ"
        assert 0 < int(rec[i].sum()) < rec[i].numel()
    torch.testing.assert_close(tr.per_step, out, rtol=0, atol=1e-9)


def test_convert_cli_end_to_end_quantize_and_run_fixed(tmp_path, capsys):
    m, g = make_pair(seed=3)
    src, out, cfg = tmp_path / "g.nir", tmp_path / "net.npz", tmp_path / "cfg.json"
    nir.write(str(src), g)
    argv = [str(src), "-o", str(out), "--reset", "hard", "--dt", str(DT), "--config", str(cfg),
            "--array", "16"] + [a for s in SHARE for a in ("--share", s)]
    assert conv_cli.main(argv) == 0
    assert "groups=2" in capsys.readouterr().out
    net = load_network(out)
    q = conv_cli.convert(src, reset="hard", dt=DT, share=SHARE, array=16)
    assert [l.name for l in net.layers] == ["conv1", "fc2", "fc3", "fc4"]
    for a, b in zip(net.layers, q.network.layers):
        assert np.array_equal(a.weight, b.weight) and (a.mode, a.block) == (b.mode, b.block)
    x = spikes((6, 3, 2, 5, 5), seed=4)
    fixed = run_fixed(q.cfg, net, x.numpy().astype(np.uint8))
    with torch.no_grad():
        _, rec = m(x)
    agree = np.mean([np.mean(fixed.layers[i].spikes == rec[i].numpy()) for i in range(3)])
    assert agree > 0.9, agree          # fixed point rounds λ·V and the weights: close, not exact


def test_convert_cli_errors_are_one_line_and_write_nothing(tmp_path, capsys):
    _, g = make_pair()
    src, out = tmp_path / "g.nir", tmp_path / "net.npz"
    nir.write(str(src), g)
    from golden.cli import run_main
    for argv, msg in (([str(src), "-o", str(out), "--dt", "1e-4"], "--reset"),
                      ([str(src), "-o", str(out), "--reset", "hard"], "no 'dt'"),
                      ([str(src), "-o", str(out), "--reset", "hard", "--dt", "1e-4", "--share", "lifX"],
                       "'lifX' is not a LIF/IF node"),
                      ([str(tmp_path / "missing.nir"), "-o", str(out), "--reset", "hard"], "no such file")):
        try:
            code = run_main(conv_cli.main, conv_cli.PROG, argv)
        except SystemExit as e:
            code = e.code
        err = capsys.readouterr().err
        assert code == 2 and msg in err and len(err.strip().splitlines()) == 1, err
        assert not out.exists()


# ------------------------------------------------------------------ refusals
def lin(n_in, n_out, seed=0):
    return nir.Linear(weight=np.random.default_rng(seed).normal(size=(n_out, n_in)))


def refuse(graph, match, **kw):
    kw.setdefault("reset", "soft")
    kw.setdefault("dt", DT)
    with pytest.raises(ImporterError, match=match):
        from_nir(graph, **kw)


def test_refusals_name_the_node():
    inp, outp = ("input", nir.Input(np.array([4]))), ("output", nir.Output(np.array([2])))
    good = lif_node(0.5, (3,))
    leaky = lif_node(0.5, (3,))
    leaky.v_leak = np.full(3, 0.1)
    refuse(chain(inp, ("fc", lin(4, 3)), ("lif", leaky), ("fc2", lin(3, 2)), outp), r"node 'lif' \(LIF\): v_leak")
    reset = lif_node(0.5, (3,))
    reset.v_reset = np.full(3, -0.5)
    refuse(chain(inp, ("fc", lin(4, 3)), ("lif", reset), ("fc2", lin(3, 2)), outp), r"node 'lif' \(LIF\): v_reset")
    cuba = nir.CubaLIF(tau_syn=np.ones(3), tau_mem=np.ones(3), r=np.ones(3), v_leak=np.zeros(3),
                       v_threshold=np.ones(3))
    refuse(chain(inp, ("fc", lin(4, 3)), ("cuba", cuba), ("fc2", lin(3, 2)), outp), r"node 'cuba' \(CubaLIF\)")
    pertau = lif_node(0.5, (3,))
    pertau.tau = np.array([2e-4, 3e-4, 2e-4])
    pertau.r = pertau.tau / DT
    refuse(chain(inp, ("fc", lin(4, 3)), ("lif", pertau), ("fc2", lin(3, 2)), outp),
           r"node 'lif': tau differs between neurons")
    other = lif_node(0.25, (3,))
    refuse(chain(inp, ("fc", lin(4, 3)), ("lif", good), ("fc2", lin(3, 3)), ("lif2", other), ("fc3", lin(3, 2)),
                 outp), r"node 'lif2' \(LIF\): λ=.* differ .* of 'lif'")
    refuse(chain(inp, ("fc", lin(4, 3)), ("lif", good), ("fc2", lin(3, 2)), outp), r"reset mode is required",
           reset=None)
    refuse(chain(inp, ("fc", lin(4, 3)), ("lif", good), ("fc2", lin(3, 2)), outp), r"no 'dt'", dt=None)
    # branches (residual) and sums
    g = nir.NIRGraph(nodes={"input": nir.Input(np.array([4])), "a": lin(4, 4), "b": lin(4, 4),
                            "lif": lif_node(0.5, (4,)), "output": nir.Output(np.array([4]))},
                     edges=[("input", "a"), ("input", "b"), ("a", "lif"), ("b", "lif"), ("lif", "output")],
                     type_check=False)
    refuse(g, r"node 'input' feeds 2 nodes|node 'lif' sums 2 inputs")


def test_conv_and_pool_refusals_name_the_node():
    inp = ("input", nir.Input(np.array([2, 6, 6])))

    def conv(**kw):
        args = dict(input_shape=(6, 6), weight=np.ones((2, 2, 3, 3)), stride=1, padding=0, dilation=1, groups=1,
                    bias=np.zeros(2))
        args.update(kw)
        return nir.Conv2d(**args)

    tail = [("lif", lif_node(0.5, (2, 4, 4))), ("flat", nir.Flatten(input_type={"input": np.array([2, 4, 4])},
                                                                     start_dim=0)),
            ("fc", lin(32, 2)), ("output", nir.Output(np.array([2])))]
    refuse(chain(inp, ("c", conv(dilation=2)), *tail), r"node 'c' \(Conv2d\): dilation")
    refuse(chain(inp, ("c", conv(groups=2, weight=np.ones((2, 1, 3, 3)))), *tail), r"node 'c' \(Conv2d\): grouped")
    refuse(chain(inp, ("c", conv(bias=np.arange(2 * 4 * 4.0).reshape(2, 4, 4))), *tail),
           r"node 'c': bias differs across the positions of one channel")
    for pool in (nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([1, 1]), padding=np.array([0, 0])),
                 nir.AvgPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([1, 1]))):
        refuse(chain(inp, ("c", conv()), ("lif", lif_node(0.5, (2, 4, 4))), ("pool", pool),
                     ("flat", nir.Flatten(input_type={"input": np.array([2, 2, 2])}, start_dim=0)),
                     ("fc", lin(8, 2)), ("output", nir.Output(np.array([2])))),
               rf"node 'pool' \({type(pool).__name__}\): .*only non-overlapping windows")
    pool = nir.AvgPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0]))
    refuse(chain(inp, ("pool", pool), ("c", conv()), *tail),
           r"node 'pool' \(AvgPool2d\): pooling is supported once, on a layer's \[C, H, W\] spikes")


@pytest.mark.parametrize("kind", ["SumPool2d", "AvgPool2d"])
def test_sum_and_average_pooling_fold_into_the_next_layer(kind):
    """conv -> LIF -> pool 2x2 -> flatten -> linear readout: the folded readout equals the
    framework-free computation pool(spikes) · W on the model's own spikes."""
    import torch.nn.functional as F

    rng = np.random.default_rng(3)
    inp = ("input", nir.Input(np.array([2, 6, 6])))
    c = nir.Conv2d(input_shape=(6, 6), weight=rng.normal(size=(2, 2, 3, 3)) * 0.8, stride=1, padding=1,
                   dilation=1, groups=1, bias=np.zeros(2))
    pool = getattr(nir, kind)(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0]))
    fc = lin(18, 3)
    g = chain(inp, ("c", c), ("lif", lif_node(0.5, (2, 6, 6))), ("pool", pool),
              ("flat", nir.Flatten(input_type={"input": np.array([2, 3, 3])}, start_dim=0)),
              ("fc", fc), ("output", nir.Output(np.array([3]))))
    m = from_nir(g, reset="soft", dt=DT)
    assert m.layers[1].in_shape == (2 * 6 * 6,)
    x = torch.from_numpy((rng.random((4, 2, 2, 6, 6)) < 0.5).astype(np.float64))
    with torch.no_grad():
        tr = m.run(x)
    s = tr.spikes[0]
    assert 0 < float(s.mean()) < 1
    pooled = F.avg_pool2d(s.flatten(0, 1), 2) * (4 if kind == "SumPool2d" else 1)
    want = (pooled.flatten(1) @ torch.from_numpy(fc.weight).T).reshape(4, 2, 3)
    torch.testing.assert_close(tr.currents[1], want, rtol=0, atol=1e-12)


def test_scale_and_if_fold_into_weights():
    w = np.arange(12, dtype=np.float64).reshape(3, 4) / 10
    g = chain(("input", nir.Input(np.array([4]))), ("fc", nir.Linear(weight=w)),
              ("sc", nir.Scale(scale=np.array([1.0, 2.0, 0.5]))),
              ("if", nir.IF(r=np.full(3, 2.0), v_threshold=np.full(3, 0.75))),
              ("fc2", nir.Linear(weight=np.ones((2, 3)))), ("output", nir.Output(np.array([2]))))
    model = from_nir(g, reset="soft", fire="ge", dt=0.5)
    # gain = scale · r · dt (IF: λ = 1)
    np.testing.assert_array_equal(model.weights[0].detach().numpy(), w * np.array([[1.0], [2.0], [0.5]]) * 1.0)
    assert (model.params.leak, model.params.theta, model.params.fire) == (1.0, 0.75, "ge")
    np.testing.assert_array_equal(model.weights[1].detach().numpy(), np.ones((2, 3)))


# ------------------------------------------------- the remaining refusal paths
INP = ("input", nir.Input(np.array([4])))
OUT = ("output", nir.Output(np.array([2])))
LIF3 = ("lif", lif_node(0.5, (3,)))


def _lif(**changes):
    n = lif_node(0.5, (3,))
    for k, v in changes.items():
        setattr(n, k, v)
    return n


def _conv(**kw):
    args = dict(input_shape=(6, 6), weight=np.ones((2, 2, 3, 3)), stride=1, padding=0, dilation=1, groups=1,
                bias=np.zeros(2))
    args.update(kw)
    return nir.Conv2d(**args)


CIN = ("input", nir.Input(np.array([2, 6, 6])))
CTAIL = [("clif", lif_node(0.5, (2, 4, 4))), ("flat", nir.Flatten(input_type={"input": np.array([2, 4, 4])},
                                                                  start_dim=0)),
         ("fc", lin(32, 2)), OUT]

NIR_CASES = [
    ("no input", [("fc", lin(4, 3)), LIF3, OUT], r"exactly one Input node"),
    ("not ending at Output", [INP, ("fc", lin(4, 3)), LIF3], r"node 'lif': the chain from the Input ends here"),
    ("node off the chain", None, r"node 'stray' is not on the chain"),
    ("cycle", None, r"node 'input'.*cycle|node 'fc' sums 2 inputs"),
    ("nested graph", None, r"node 'sub': nested graphs"),
    ("neuron first", [INP, LIF3, ("fc", lin(3, 2)), OUT], r"node 'lif' \(LIF\): a neuron node must follow"),
    ("scale on spikes", [INP, ("fc", lin(4, 3)), LIF3, ("sc", nir.Scale(scale=np.ones(3))), ("fc2", lin(3, 2)), OUT],
     r"node 'sc' \(Scale\): a Scale node must sit between a layer and its neurons"),
    ("unsupported node", [INP, ("d", nir.Delay(delay=np.ones(4))), ("fc", lin(4, 3)), LIF3, OUT],
     r"node 'd' \(Delay\) is not supported"),
    ("linear size", [INP, ("fc", lin(5, 3)), LIF3, ("fc2", lin(3, 2)), OUT], r"node 'fc' \(Linear\): takes 5 inputs"),
    ("two readouts", [INP, ("fc", lin(4, 3)), ("fc2", lin(3, 2)), OUT],
     r"node 'fc2' \(Linear\) follows layer 'fc'; expected a LIF or IF node"),
    ("chain ends after layer", [INP, ("fc", lin(4, 3))], r"ends here, not at an Output|the chain ends after it"),
    ("threshold <= 0", [INP, ("fc", lin(4, 3)), ("lif", _lif(v_threshold=np.zeros(3))), ("fc2", lin(3, 2)), OUT],
     r"node 'lif' \(LIF\): v_threshold=0.0 must be > 0"),
    ("threshold varies", [INP, ("fc", lin(4, 3)), ("lif", _lif(v_threshold=np.array([1.0, 2.0, 1.0]))),
                          ("fc2", lin(3, 2)), OUT], r"node 'lif': v_threshold differs between neurons"),
    ("tau infinite", [INP, ("fc", lin(4, 3)), ("lif", _lif(tau=np.full(3, np.inf))), ("fc2", lin(3, 2)), OUT],
     r"node 'lif' \(LIF\): tau=inf must be finite"),
    ("lambda out of range", [INP, ("fc", lin(4, 3)), ("lif", _lif(tau=np.full(3, 0.5e-4))), ("fc2", lin(3, 2)), OUT],
     r"node 'lif' \(LIF\): λ = 1 - dt/τ = -1.0 is not in \(0, 1\]"),
    ("gain varies in a channel", [CIN, ("c", _conv()), ("clif", _lif(tau=np.full((2, 4, 4), 2e-4),
                                                                      r=np.arange(32.0).reshape(2, 4, 4),
                                                                      v_leak=np.zeros((2, 4, 4)),
                                                                      v_threshold=np.ones((2, 4, 4)),
                                                                      v_reset=np.zeros((2, 4, 4)))), *CTAIL[1:]],
     r"node 'clif': r·dt/tau differs across the positions of one channel"),
    ("conv weight not 4-d", [CIN, ("c", _conv(weight=np.ones((2, 2, 3)))), *CTAIL],
     r"node 'c' \(Conv2d\): weight must be \[out, in, k, k\]"),
    ("conv non-square", [CIN, ("c", _conv(weight=np.ones((2, 2, 3, 1)))), *CTAIL], r"node 'c' \(Conv2d\): kernel \(3, 1\)"),
    ("conv channels", [CIN, ("c", _conv(weight=np.ones((2, 3, 3, 3)))), *CTAIL],
     r"node 'c' \(Conv2d\): weight takes 3 channels, the input has 2"),
    ("conv after flatten", [CIN, ("f0", nir.Flatten(input_type={"input": np.array([2, 6, 6])}, start_dim=0)),
                            ("c", _conv()), *CTAIL], r"node 'c' \(Conv2d\): follows a Flatten node"),
    ("linear on conv output without flatten", [CIN, ("c", _conv()), CTAIL[0], ("fc", lin(32, 2)), OUT],
     r"node 'fc' \(Linear\): .*a Flatten node is needed"),
]


def _special(case):
    if case == "node off the chain":
        return nir.NIRGraph(nodes={"input": nir.Input(np.array([4])), "fc": lin(4, 3), "lif": lif_node(0.5, (3,)),
                                   "fc2": lin(3, 2), "output": nir.Output(np.array([2])), "stray": lin(2, 2)},
                            edges=[("input", "fc"), ("fc", "lif"), ("lif", "fc2"), ("fc2", "output")],
                            type_check=False)
    if case == "cycle":
        return nir.NIRGraph(nodes={"input": nir.Input(np.array([4])), "fc": lin(4, 4), "lif": lif_node(0.5, (4,))},
                            edges=[("input", "fc"), ("fc", "lif"), ("lif", "fc")], type_check=False)
    sub = chain(("i", nir.Input(np.array([4]))), ("o", nir.Output(np.array([4]))))
    return chain(INP, ("sub", sub), ("fc", lin(4, 3)), LIF3, OUT)


@pytest.mark.parametrize("case,nodes,match", NIR_CASES, ids=[c[0] for c in NIR_CASES])
def test_nir_refusal_paths_name_the_node(case, nodes, match):
    refuse(chain(*nodes) if nodes is not None else _special(case), match)


def test_nir_option_errors():
    g = chain(INP, ("fc", lin(4, 3)), LIF3, ("fc2", lin(3, 2)), OUT)
    refuse(g, r"reset='sub': must be one of soft, hard", reset="sub")
    refuse(g, r"fire='gte': must be one of gt, ge", fire="gte")
    refuse(g, r"dt=-1.0: must be a positive number", dt=-1.0)
    refuse(g, r"--share: node 'lif' is named twice", share=["lif", "lif"])
    refuse(g, r"--share 'x:y': the group count 'y' is not an integer", share=["x:y"])
    refuse(g, r"--share ':2': expected NODE", share=[":2"])
    refuse(g, r"--share 'lif:0': the group count must be >= 1", share=["lif:0"])
    g3 = chain(INP, ("fc", lin(4, 4)), ("l1", lif_node(0.5, (4,))), ("fc2", lin(4, 4)), ("l2", lif_node(0.5, (4,))),
               ("fc3", lin(4, 4)), ("l3", lif_node(0.5, (4,))), ("fc4", lin(4, 2)), OUT)
    refuse(g3, r"--share l1,l3: the nodes must be consecutive", share=["l1,l3"])
    refuse(g3, r"--share l2:4: the project has one group count per network", share=["l1:2", "l2:4"])
    refuse("/nonexistent/graph.nir", r"NIR graph '/nonexistent/graph.nir': no such file")
    refuse(42, r"expected a nir.NIRGraph, got int")


def test_nir_unreadable_file(tmp_path):
    p = tmp_path / "bad.nir"
    p.write_bytes(b"not hdf5")
    refuse(str(p), r"not a readable NIR file")


@pytest.mark.parametrize("bias", [False, True])
def test_snntorch_exporter_round_trip(tmp_path, bias):
    """snnTorch's own NIR exporter (needs nirtorch) -> file -> golden.convert / from_nir, spike for spike.

    snnTorch 1.0.0 exports a scalar β as a 0-d τ, which nir 1.0.8's type inference rejects, so β and θ
    are given per neuron (all equal). The model runs in float64 (a step spike_grad keeps the dtype).
    """
    pytest.importorskip("nirtorch", reason="nirtorch (snnTorch's NIR exporter) is not installed")
    import warnings

    from snntorch.export_nir import export_to_nir

    from golden.importers import from_snntorch

    def leaky(n):
        return snn.Leaky(beta=torch.full((n,), 0.8125), threshold=torch.ones(n), init_hidden=True,
                         reset_mechanism="zero", spike_grad=lambda u: (u > 0).to(u.dtype))

    torch.manual_seed(5)
    net = nn.Sequential(nn.Linear(12, 8, bias=bias), leaky(8), nn.Linear(8, 8, bias=bias), leaky(8),
                        nn.Linear(8, 3, bias=bias)).double()
    with torch.no_grad():
        for mod in net:
            if isinstance(mod, nn.Linear):
                f = mod.weight.shape[1]
                mod.weight.copy_(torch.randn_like(mod.weight) * (2 / f ** 0.5) + 1.5 / f)
                if bias:                  # exported as nir.Affine; imported as the layer's bias
                    mod.bias.copy_(torch.randn_like(mod.bias) * 0.3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = export_to_nir(net, torch.rand(2, 12, dtype=torch.float64), ignore_dims=[0])
    path = tmp_path / "exported.nir"
    nir.write(str(path), graph)
    model = from_nir(path, reset="hard", dt=DT)          # the exporter's dt; zero reset -> hard
    x = spikes((6, 4, 12), seed=6)
    ref = from_snntorch(net, x, timesteps=6)             # snnTorch's own forward, step by step
    with torch.no_grad():
        tr = model.run(x)
    assert [s.mode for s in model.layers] == ["independent", "independent", "readout"]
    assert [s.bias for s in model.layers] == [bias] * 3 == [s.bias for s in ref.model.layers]
    assert model.params.leak == pytest.approx(0.8125, abs=1e-12)
    for i in range(2):
        assert torch.equal(tr.spikes[i], ref.trace.spikes[i]), f"layer {i}: spikes differ"
        assert 0 < int(tr.spikes[i].sum()) < tr.spikes[i].numel()
    torch.testing.assert_close(tr.per_step, ref.trace.currents[2], rtol=0, atol=1e-9)
    out = tmp_path / "net.npz"
    assert conv_cli.main([str(path), "-o", str(out), "--reset", "hard", "--dt", str(DT), "--array", "8"]) == 0
    assert [l.name for l in load_network(out).layers] == ["0", "2", "4"]


def test_affine_and_conv_bias_become_the_layer_bias():
    """Affine / Conv2d bias -> bias current, scaled by the Scale and the input gain like the weights."""
    w = np.arange(12, dtype=np.float64).reshape(3, 4) / 10
    b = np.array([0.5, -0.25, 1.0])
    g = chain(("input", nir.Input(np.array([4]))), ("fc", nir.Affine(weight=w, bias=b)),
              ("sc", nir.Scale(scale=np.array([1.0, 2.0, 0.5]))),
              ("if", nir.IF(r=np.full(3, 2.0), v_threshold=np.full(3, 0.75))),
              ("fc2", nir.Affine(weight=np.ones((2, 3)), bias=np.array([0.0, 0.125]))),
              ("output", nir.Output(np.array([2]))))
    model = from_nir(g, reset="soft", fire="ge", dt=0.5)
    assert [s.bias for s in model.layers] == [True, True]
    np.testing.assert_array_equal(model.biases["0"].detach().numpy(), b * np.array([1.0, 2.0, 0.5]) * 2.0 * 0.5)
    np.testing.assert_array_equal(model.biases["1"].detach().numpy(), [0.0, 0.125])
    # the float reference adds it every timestep: X = W·O + b
    x = torch.zeros(3, 1, 4, dtype=torch.float64)
    with torch.no_grad():
        tr = model.run(x)
    torch.testing.assert_close(tr.currents[0], model.biases["0"].detach().expand(3, 1, 3), rtol=0, atol=0)

    cb = np.array([0.3, -0.2])
    conv = nir.Conv2d(input_shape=(6, 6), weight=np.ones((2, 2, 3, 3)) / 9, stride=1, padding=0, dilation=1,
                      groups=1, bias=cb)
    g2 = chain(("input", nir.Input(np.array([2, 6, 6]))), ("c", conv), ("clif", lif_node(0.5, (2, 4, 4))),
               ("flat", nir.Flatten(input_type={"input": np.array([2, 4, 4])}, start_dim=0)),
               ("fc", lin(32, 2)), ("output", nir.Output(np.array([2]))))
    m2 = from_nir(g2, reset="soft", dt=DT)
    gain = m2.weights[0].detach().numpy()[0, 0, 0, 0] * 9          # the LIF input gain r·dt/τ
    np.testing.assert_allclose(m2.biases["0"].detach().numpy(), cb * gain, rtol=1e-15)
    assert not m2.layers[1].bias
