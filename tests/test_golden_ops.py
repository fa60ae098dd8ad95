"""Bias (folded BatchNorm, docs/fixed-point.md F2b) and input max pooling of spikes
through the golden models, the network file and the schedule.

The fixed-point model is checked against the per-neuron oracle of
test_golden_fixed (which splits biases and ORs windows with its own loops),
every schedule is replayed through golden.core_model.CoreModel, and the float
reference is checked against a hand computation and against the fixed-point
model where the two must agree exactly (λ = 1, weights and biases on the grid).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from golden import fixedpoint as fp
from golden.config import HwConfig
from golden.fixed_model import run_fixed
from golden.lif import LIFParams, ReferenceModelError
from golden.mapping import layer_bias_rows
from golden.network import Layer, Network, NetworkError, load_network, save_network
from golden.quantize import agreement_report, quantize, report_markdown
from golden.reference import EfficientLIFNet, LayerSpec
from golden.schedule import LayerPass, OP_EVENT, build_schedule, plan_allocation
from test_golden_fixed import rand_spikes, rand_weights, slow_run
from test_golden_schedule import replay

CFG = HwConfig(array=8, groups=2, theta_int=64, leak_int=200, weight_rows=4096, mem_rows=4096)


def ops_net(rng, groups: int, bias_lo: int = -300, bias_hi: int = 300, w=(-30, 28)) -> Network:
    """conv(+bias) -> pool 2 -> conv(+bias, L block of two) -> pool 2 + flatten -> linear readout(+bias)."""
    c = 2 * groups
    lo, hi = w
    b = lambda n: rng.integers(bias_lo, bias_hi + 1, size=n)   # noqa: E731
    l1 = Layer.conv((2, 8, 9), rand_weights(rng, (c, 2, 3, 3), lo, hi), padding=1, name="c1", bias=b(c))
    l2 = Layer.conv((c, 4, 4), rand_weights(rng, (c, c, 3, 3), lo, hi), padding=1, block=3, name="c2",
                    pool=2, bias=b(c))
    l3 = Layer.conv((c, 4, 4), rand_weights(rng, (c, c, 3, 3), lo, hi), padding=1, block=3, name="c3")
    l4 = Layer.linear(rand_weights(rng, (5, c * 4), lo, hi), mode="readout", name="fc", pool=2, bias=b(5))
    return Network((2, 8, 9), (l1, l2, l3, l4))


# ------------------------------------------------------------------ F2b split
@pytest.mark.parametrize("width", [2, 3, 8])
def test_bias_split_rule(width):
    cfg = CFG.replace(weight_width=width, acc_width=16)
    bias = np.array([0, 1, -1, cfg.weight_max, cfg.weight_min, 5 * cfg.weight_max + 1,
                     3 * cfg.weight_min - 1, 37, -40])
    pieces = fp.bias_split(cfg, bias)
    want_rows = max(-(-int(b) // cfg.weight_max) if b > 0 else -(-int(-b) // -cfg.weight_min)
                    for b in bias)
    assert pieces.shape == (want_rows, bias.size) == (fp.bias_rows(cfg, bias), bias.size)
    np.testing.assert_array_equal(pieces.sum(axis=0), bias)
    assert pieces.min() >= cfg.weight_min and pieces.max() <= cfg.weight_max
    # each channel: full-range pieces of its sign, the remainder, then zeros
    for col, b in zip(pieces.T, bias):
        assert all(p * b >= 0 for p in col)
        nz = col[col != 0]
        assert (nz[:-1] == (cfg.weight_max if b > 0 else cfg.weight_min)).all()
    assert fp.bias_rows(cfg, None) == fp.bias_rows(cfg, np.zeros(3, np.int64)) == 0


# ------------------------------------------------------- fixed model == oracle
@pytest.mark.parametrize("groups", [1, 2])
def test_fixed_model_bias_pool_matches_slow_reference(groups):
    rng = np.random.default_rng({1: 9, 2: 6}[groups])
    cfg = CFG.replace(groups=groups)
    net = ops_net(rng, groups)
    assert [layer_bias_rows(cfg, layer) for layer in net.layers][0] >= 2, "a split bias"
    spikes = rand_spikes(rng, (3, 2) + net.in_shape)
    fast = run_fixed(cfg, net, spikes)
    slow = slow_run(cfg, net, spikes)
    for i, (f, s) in enumerate(zip(fast.layers, slow)):
        np.testing.assert_array_equal(f.current, s["current"], err_msg=f"layer {i} currents")
        np.testing.assert_array_equal(f.spikes, s["spikes"], err_msg=f"layer {i} spikes")
    assert 0 < fast.layers[1].spikes.mean() < 1


def test_bias_changes_the_currents_by_exactly_the_bias():
    rng = np.random.default_rng(2)
    net = ops_net(rng, 2, bias_lo=-50, bias_hi=50, w=(-3, 3))      # nothing saturates
    plain = Network(net.in_shape, (Layer.conv(net.layers[0].in_shape, net.layers[0].weight,
                                              padding=1),))
    biased = Network(net.in_shape, (net.layers[0],))
    spikes = rand_spikes(rng, (2, 2) + net.in_shape)
    d = run_fixed(CFG, biased, spikes).layers[0].current - run_fixed(CFG, plain, spikes).layers[0].current
    np.testing.assert_array_equal(d, np.broadcast_to(net.layers[0].bias[:, None, None], d.shape))


def test_bias_first_with_saturation_matches_slow_reference():
    """Order matters once a partial sum saturates: the bias comes first (F2b)."""
    rng = np.random.default_rng(9)
    cfg = CFG.replace(weight_width=6, acc_width=7, mem_width=8, frac_bits=4, theta_int=40, leak_int=256)
    net = ops_net(rng, 2, bias_lo=cfg.acc_min, bias_hi=cfg.acc_max, w=(-16, 31))
    spikes = rand_spikes(rng, (2, 2) + net.in_shape, p=0.7)
    fast = run_fixed(cfg, net, spikes)
    slow = slow_run(cfg, net, spikes)
    for f, s in zip(fast.layers, slow):
        np.testing.assert_array_equal(f.current, s["current"])
    cur = fast.layers[0].current
    assert (cur == cfg.acc_max).any()


# ------------------------------------------------------------------- schedule
@pytest.mark.parametrize("mapping", ["weight_stationary", "position"])
@pytest.mark.parametrize("weights", ["static", "streamed"])
def test_schedule_with_bias_and_pool_replays(mapping, weights):
    rng = np.random.default_rng(3 if mapping == "position" else 6)
    cfg = CFG
    net = ops_net(rng, 2)
    alloc = plan_allocation(cfg, net, mapping)
    blocks = [b.rows for p in alloc.plans.values() for b in p.blocks]
    rows = sum(blocks) if weights == "static" else max(blocks)
    cfg = cfg.replace(weight_rows=rows, mem_rows=2 * alloc.sample_rows)
    spikes = rand_spikes(rng, (2, 3) + net.in_shape)
    sched = build_schedule(cfg, net, spikes, mapping=mapping)
    assert sched.allocation.weights == weights
    replay(cfg, sched, "early")
    replay(cfg, sched, "late")
    # every tile of every biased layer sends its R bias EVENTs at every timestep and sample
    n_samples, n_t = spikes.shape[:2]
    want = n_samples * n_t * sum(len(alloc.plans[i].tiles) * layer_bias_rows(cfg, layer)
                                 for i, layer in enumerate(net.layers))
    counts = sched.counts
    assert counts["bias_events"] == want > 0
    events = sum(cmd.op == OP_EVENT for it in sched.items if isinstance(it, LayerPass)
                 for cmd in it.commands)
    assert counts["events"] == events
    # the pooled layer's input spikes are the pooled spikes: spikes outside the
    # pooled window (row 8 of the 9-wide c1 output is dropped) send no EVENT
    assert sched.result.layers[1].spikes.any()


def test_schedule_without_bias_rows_fails_replay():
    """The replay must notice when the bias EVENTs are missing."""
    rng = np.random.default_rng(4)
    net = ops_net(rng, 2)
    sched = build_schedule(CFG, net, rand_spikes(rng, (1, 2) + net.in_shape))
    nb = layer_bias_rows(CFG, net.layers[0])
    items = []
    for it in sched.items:
        if isinstance(it, LayerPass) and it.layer == 0:
            cmds, skip = [], 0
            for cmd in it.commands:
                if cmd.op == OP_EVENT and skip < nb:      # drop the first tile's bias events
                    skip += 1
                    continue
                cmds.append(cmd)
            it = it._replace(commands=cmds)
        items.append(it)
    with pytest.raises(AssertionError):
        replay(CFG, sched._replace(items=items))


# ------------------------------------------------------------ float reference
def _float_model(groups=2):
    layers = [LayerSpec("conv", (2, 8, 9), 4, kernel=3, padding=1, bias=True, name="c1"),
              LayerSpec("conv", (4, 4, 4), 4, kernel=3, padding=1, pool=2, bias=True, block=1, name="c2"),
              LayerSpec("conv", (4, 4, 4), 4, kernel=3, padding=1, block=1, name="c3"),
              LayerSpec("linear", (16,), 3, mode="readout", pool=2, bias=True, name="fc")]
    return EfficientLIFNet(layers, groups, LIFParams(leak=1.0, theta=1.0), dtype=torch.float64)


def test_reference_adds_bias_and_pools():
    torch.manual_seed(0)
    m = _float_model()
    with torch.no_grad():
        for b in m.biases.values():
            b.copy_(torch.randn(b.shape))
    x = torch.from_numpy(rand_spikes(np.random.default_rng(0), (2, 3, 2, 8, 9))).double()
    tr = m.run(x)
    # layer 1's current by hand: pool layer 0's spikes, conv, add the bias
    o = tr.spikes[0][1]
    pooled = o[:, :, :8, :8].reshape(3, 4, 4, 2, 4, 2).amax(dim=(3, 5))   # 9th column dropped
    want = torch.nn.functional.conv2d(pooled, m.weights[1], padding=1) + m.biases["1"].view(1, -1, 1, 1)
    torch.testing.assert_close(tr.currents[1][1], want, rtol=0, atol=1e-12)
    lin = tr.spikes[2][0][:, :, :4, :4].reshape(3, 4, 2, 2, 2, 2).amax(dim=(3, 5)).flatten(1)
    torch.testing.assert_close(tr.currents[3][0], lin @ m.weights[3].t() + m.biases["3"],
                               rtol=0, atol=1e-12)
    assert set(m.state_dict()) >= {"biases.0", "biases.1", "biases.3"}
    with pytest.raises(ReferenceModelError, match="reversible.*bias"):
        EfficientLIFNet(m.layers, 2, backward="reversible")
    with pytest.raises(ReferenceModelError, match="pool=2 on the first layer"):
        EfficientLIFNet([LayerSpec("conv", (2, 4, 4), 2, kernel=1, pool=2)], 1)


def test_quantized_bias_pool_agrees_exactly():
    """Weights and biases on the 2^-6 grid, λ = 1: float and fixed point must agree exactly."""
    m = _float_model()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for w in m.weights:
            w.copy_(torch.randint(-20, 40, w.shape, generator=g).double() / 64)
        for b in m.biases.values():
            b.copy_(torch.randint(-300, 300, b.shape, generator=g).double() / 64)
    q = quantize(m, frac_bits=6, acc_width=16, mem_width=16, array=8)
    assert q.network.layers[1].pool == 2 and q.network.layers[1].bias is not None
    np.testing.assert_array_equal(q.network.layers[0].bias,
                                  np.round(m.biases["0"].detach().numpy() * 64).astype(np.int64))
    assert q.choices["weights"][0]["bias_rows"] == fp.bias_rows(q.cfg, q.network.layers[0].bias) >= 1
    assert "bias rows (F2b)" in report_markdown(agreement_report(m, q, torch.zeros(1, 1, 2, 8, 9,
                                                                                  dtype=torch.float64)))
    x = rand_spikes(np.random.default_rng(1), (4, 3, 2, 8, 9)).astype(np.float64)
    rep = agreement_report(m, q, torch.from_numpy(x))
    for row in rep["float"]["layers"]:
        assert row["mismatches"] == 0 and row["current_max_abs_err"] == 0, row
    assert sum(r["fixed_spikes"] for r in rep["float"]["layers"]) > 0


# --------------------------------------------------------------- network file
def test_file_round_trip_and_version_1(tmp_path):
    rng = np.random.default_rng(0)
    net = ops_net(rng, 2)
    p = tmp_path / "net.npz"
    save_network(net, p)
    back = load_network(p)
    for a, b in zip(net.layers, back.layers):
        assert a.pool == b.pool
        assert (a.bias is None) == (b.bias is None)
        if a.bias is not None:
            np.testing.assert_array_equal(a.bias, b.bias)
    desc = json.loads(str(np.load(p)["network.json"][()]))
    assert desc["version"] == 3 and desc["layers"][1]["bias"] == "b1" and desc["layers"][2]["bias"] is None
    # a version-2 file (no skip fields, no input_bits/input_signed) still loads
    d2 = net.describe()
    d2["version"] = 2
    del d2["input_bits"], d2["input_signed"]
    for ld in d2["layers"]:
        for k in ("skip", "skip_in_shape", "skip_kernel", "skip_stride", "skip_padding", "skip_weight"):
            del ld[k]
    v2 = tmp_path / "v2.npz"
    with open(v2, "wb") as fh:
        np.savez(fh, **{"network.json": np.array(json.dumps(d2))},
                 **{f"w{i}": lay.weight for i, lay in enumerate(net.layers)},
                 **{f"b{i}": lay.bias for i, lay in enumerate(net.layers) if lay.bias is not None})
    got2 = load_network(v2)
    assert all(lay.skip is None for lay in got2.layers) and got2.input_bits == 0
    # a version-1 file (no bias, no pool fields) still loads
    plain = Network((2, 5, 5), (Layer.conv((2, 5, 5), rand_weights(rng, (2, 2, 3, 3), -5, 5), padding=1),))
    d1 = plain.describe()
    d1["version"] = 1
    for ld in d1["layers"]:
        del ld["pool"], ld["bias"]
        for k in ("skip", "skip_in_shape", "skip_kernel", "skip_stride", "skip_padding", "skip_weight"):
            del ld[k]
    old = tmp_path / "v1.npz"
    with open(old, "wb") as fh:
        np.savez(fh, **{"network.json": np.array(json.dumps(d1))}, w0=plain.layers[0].weight)
    got = load_network(old)
    assert got.layers[0].bias is None and got.layers[0].pool == 1
    # version 1 does not know the new fields; version 2 requires them
    d1["layers"][0]["pool"] = 1
    with open(old, "wb") as fh:
        np.savez(fh, **{"network.json": np.array(json.dumps(d1))}, w0=plain.layers[0].weight)
    with pytest.raises(NetworkError, match="layer 0: unknown field\\(s\\) pool"):
        load_network(old)
    d2 = net.describe()
    del d2["layers"][0]["bias"]
    with open(old, "wb") as fh:
        np.savez(fh, **{"network.json": np.array(json.dumps(d2))},
                 **{f"w{i}": lay.weight for i, lay in enumerate(net.layers)})
    with pytest.raises(NetworkError, match="layer 0: missing field\\(s\\) bias"):
        load_network(old)
    d2 = net.describe()
    with open(old, "wb") as fh:
        np.savez(fh, **{"network.json": np.array(json.dumps(d2))},
                 **{f"w{i}": lay.weight for i, lay in enumerate(net.layers)})
    with pytest.raises(NetworkError, match="layer 0: bias array 'b0' is not in the archive"):
        load_network(old)


def test_bad_bias_and_pool_are_refused():
    w = np.zeros((2, 2, 1, 1), np.int64)
    with pytest.raises(NetworkError, match="layer 'a': bias shape \\(3,\\) does not match \\(2,\\)"):
        Layer.conv((2, 4, 4), w, name="a", bias=[1, 2, 3])
    with pytest.raises(NetworkError, match="layer 'a': bias must hold integers, got 0.5"):
        Layer.conv((2, 4, 4), w, name="a", bias=[0.5, 1])
    with pytest.raises(NetworkError, match="pool=2 on the first layer"):
        Network((2, 4, 4), (Layer.conv((2, 2, 2), w, pool=2),))
    first = Layer.conv((2, 4, 4), w)
    with pytest.raises(NetworkError, match="layer 1: pool=5 needs a \\(C, H, W\\) input of at least 5x5"):
        Network((2, 4, 4), (first, Layer.conv((2, 1, 1), w, pool=5)))
    with pytest.raises(NetworkError, match="in_shape \\(2, 4, 4\\) does not match the output of "
                                           "layer 0 \\(2, 2, 2\\) \\(after pool=2\\)"):
        Network((2, 4, 4), (first, Layer.conv((2, 4, 4), w, pool=2)))
    with pytest.raises(NetworkError, match="pool=0: must be a positive integer"):
        Layer.conv((2, 4, 4), w, pool=0)
    big = Network((2, 4, 4), (Layer.conv((2, 4, 4), w, bias=[CFG.acc_max + 1, 0], name="c"),))
    with pytest.raises(NetworkError, match="layer 0 \\('c'\\): bias 32768 is outside the 16-bit "
                                           "accumulator range"):
        big.check_arithmetic(CFG)


def test_bias_rows_count_toward_the_weight_buffer():
    rng = np.random.default_rng(1)
    net = ops_net(rng, 2)
    alloc = plan_allocation(CFG, net, "weight_stationary")
    nb = layer_bias_rows(CFG, net.layers[0])
    assert alloc.describe()["layers"][0]["bias_rows"] == nb >= 2
    rows = alloc.plans[0].blocks[0].rows
    plain = Layer.conv(net.layers[0].in_shape, net.layers[0].weight, padding=1)
    assert rows == plan_allocation(CFG, Network(net.in_shape, (plain,)), "weight_stationary") \
        .plans[0].blocks[0].rows + nb
    small = CFG.replace(weight_rows=rows - 1)
    with pytest.raises(NetworkError, match=f"layer 0 \\('c1'\\): weight rows per chunk .* \\+ {nb} bias rows "
                                           f"{rows} > weight_rows={rows - 1}"):
        Network(net.in_shape, (net.layers[0],)).validate(small, mapping="weight_stationary")


@pytest.mark.parametrize("mapping", ["weight_stationary", "position"])
def test_independent_layers_with_bias_and_pool_replay(mapping):
    rng = np.random.default_rng(8)
    b = lambda n: rng.integers(-200, 201, size=n)       # noqa: E731
    net = Network((1, 6, 7), (
        Layer.conv((1, 6, 7), rand_weights(rng, (3, 1, 3, 3), -30, 40), padding=1, mode="independent",
                   name="i1", bias=b(3)),
        Layer.conv((3, 3, 3), rand_weights(rng, (5, 3, 2, 2), -30, 40), mode="independent", name="i2",
                   pool=2, bias=b(5)),
        Layer.linear(rand_weights(rng, (3, 5), -30, 30), mode="readout", name="ro", pool=2, bias=b(3))))
    spikes = rand_spikes(rng, (2, 3) + net.in_shape)
    slow = slow_run(CFG, net, spikes.swapaxes(0, 1))
    sched = build_schedule(CFG, net, spikes, mapping=mapping)
    for i, s in enumerate(slow):
        np.testing.assert_array_equal(sched.result.layers[i].current, s["current"])
    replay(CFG, sched)
    assert sched.result.layers[0].spikes.any() and sched.result.layers[1].spikes.any()
