"""Tests of golden/fixed_model.py and golden/network.py.

* run_fixed against a slow per-neuron reference written here with plain ints
  from docs/fixed-point.md (it is also imported by the schedule tests);
* hand-computed corner cases (saturation, ties, λ = 1, hard/soft reset,
  rounding of the leak, C#N and L chaining);
* network validation and network-file errors.
"""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest

from golden.config import HwConfig
from golden.errors import OutputError
from golden.fixed_model import layer_currents, run_fixed
from golden.network import Layer, Network, NetworkError, load_network, save_network
from golden import fixedpoint as fp


def connections(layer: Layer, n: int) -> list:
    """(input index, weight) pairs of output neuron ``n`` (flat C,H,W), ascending input index."""
    if layer.kind == "linear":
        return [(i, int(layer.weight[n, i])) for i in range(layer.in_shape[0])]
    cin, hi, wi = layer.in_shape
    _, ho, wo = layer.out_shape
    o, h, w = n // (ho * wo), (n // wo) % ho, n % wo
    pairs = []
    for c in range(cin):
        for kh in range(layer.kernel):
            for kw in range(layer.kernel):
                ih = h * layer.stride - layer.padding + kh
                iw = w * layer.stride - layer.padding + kw
                if 0 <= ih < hi and 0 <= iw < wi:
                    pairs.append((c * hi * wi + ih * wi + iw, int(layer.weight[o, c, kh, kw])))
    return sorted(pairs)


def slow_bias_pieces(cfg, layer) -> list:
    """Per output channel, its bias EVENT weights (docs/fixed-point.md F2b), written
    independently of golden.fixedpoint.bias_split: full-range pieces of the bias's
    sign, then the remainder, then zeros up to the layer's common row count."""
    if layer.bias is None:
        return [[] for _ in range(layer.out_channels)]
    per = []
    for b in (int(v) for v in layer.bias):
        pieces = []
        while b:
            piece = min(b, cfg.weight_max) if b > 0 else max(b, cfg.weight_min)
            pieces.append(piece)
            b -= piece
        per.append(pieces)
    rows = max(len(p) for p in per)
    return [p + [0] * (rows - len(p)) for p in per]


def slow_pool(spikes: list, shape: tuple, k: int) -> list:
    """OR over k x k windows, stride k, of flat (C, H, W) spikes; remainder dropped."""
    c, h, w = shape
    out = []
    for ch in range(c):
        for oh in range(h // k):
            for ow in range(w // k):
                out.append(int(any(spikes[ch * h * w + (oh * k + dy) * w + ow * k + dx]
                                   for dy in range(k) for dx in range(k))))
    return out


def slow_run(cfg, net: Network, spikes_in) -> list:
    """Per-neuron reference. Returns per layer a dict of int64 arrays
    ``spikes``, ``current``, ``membrane`` (None for readout), shapes [T, B, *out_shape]."""
    spikes_in = np.asarray(spikes_in)
    n_t, batch = spikes_in.shape[:2]
    n = cfg.groups
    out = []
    for layer in net.layers:
        shp = (n_t, batch) + layer.out_shape
        out.append({"spikes": np.zeros(shp, np.int64), "current": np.zeros(shp, np.int64),
                    "membrane": np.zeros(shp, np.int64)})
    conns = [[connections(layer, k) for k in range(layer.out_size)] for layer in net.layers]
    biases = [slow_bias_pieces(cfg, layer) for layer in net.layers]
    for b in range(batch):
        state = {}
        for t in range(n_t):
            inp = [int(v) for v in spikes_in[t, b].ravel()]
            for li, layer in enumerate(net.layers):
                if layer.pool > 1:
                    inp = slow_pool(inp, net.layers[li - 1].out_shape, layer.pool)
                x = []
                hw = layer.out_size // layer.out_channels
                for k in range(layer.out_size):
                    acc = 0
                    for w in biases[li][k // hw]:                          # F2b: bias rows first
                        acc = fp.saturate(acc + w, cfg.acc_width)
                    for idx, w in conns[li][k]:
                        if inp[idx]:
                            acc = fp.saturate(acc + w, cfg.acc_width)      # F2, one event at a time
                    x.append(acc)
                u = [0] * layer.out_size
                o = [0] * layer.out_size
                if layer.mode != "readout":
                    key = layer.block if layer.block is not None else ("own", li)
                    if layer.mode == "chained":
                        per_group = layer.out_size // n
                        if t == 0 and (layer.block is None or li == 0
                                       or net.layers[li - 1].block != layer.block):
                            state[key] = [0] * per_group
                        vs = state[key]
                        for s in range(per_group):
                            v = vs[s]
                            for g in range(n):
                                k = g * per_group + s
                                u[k], o[k], v = fp.lif_step(cfg, v, x[k])
                            vs[s] = v
                    else:
                        if t == 0 and (layer.block is None or li == 0
                                       or net.layers[li - 1].block != layer.block):
                            state[key] = [0] * layer.out_size
                        vs = state[key]
                        for k in range(layer.out_size):
                            u[k], o[k], vs[k] = fp.lif_step(cfg, vs[k], x[k])
                rec = out[li]
                rec["current"][t, b] = np.array(x).reshape(layer.out_shape)
                rec["spikes"][t, b] = np.array(o).reshape(layer.out_shape)
                rec["membrane"][t, b] = np.array(u).reshape(layer.out_shape)
                inp = o
    for li, layer in enumerate(net.layers):
        if layer.mode == "readout":
            out[li]["membrane"] = None
    return out


def rand_weights(rng, shape, lo, hi):
    return rng.integers(lo, hi + 1, size=shape, dtype=np.int64)


def small_net(rng, kind: str, groups: int, lo: int = -20, hi: int = 40) -> Network:
    """A few small networks covering conv/linear, stride/padding, blocks and all modes."""
    c = 2 * groups
    if kind == "conv_block":
        l1 = Layer.conv((2, 5, 5), rand_weights(rng, (c, 2, 3, 3), lo, hi), padding=1, block=7, name="c1")
        l2 = Layer.conv((c, 5, 5), rand_weights(rng, (c, c, 3, 3), lo, hi), padding=1, block=7, name="c2")
        l3 = Layer.conv((c, 5, 5), rand_weights(rng, (3, c, 3, 3), lo, hi), stride=2, mode="independent", name="c3")
        l4 = Layer.linear(rand_weights(rng, (5, 12), lo, hi), mode="readout", name="fc")
        return Network((2, 5, 5), (l1, l2, l3, l4))
    if kind == "linear_block":
        l1 = Layer.linear(rand_weights(rng, (c, 7), lo, hi), name="fc1")
        l2 = Layer.linear(rand_weights(rng, (3 * c, c), lo, hi), block=1, name="fc2")
        l3 = Layer.linear(rand_weights(rng, (3 * c, 3 * c), lo, hi), block=1, name="fc3")
        l4 = Layer.linear(rand_weights(rng, (3, 3 * c), lo, hi), mode="readout", name="out")
        return Network((7,), (l1, l2, l3, l4))
    if kind == "independent_block":
        l1 = Layer.conv((1, 4, 4), rand_weights(rng, (3, 1, 2, 2), lo, hi), name="c1", mode="independent")
        l2 = Layer.conv((3, 3, 3), rand_weights(rng, (3, 3, 3, 3), lo, hi), padding=1, block=0,
                        mode="independent", name="c2")
        l3 = Layer.conv((3, 3, 3), rand_weights(rng, (3, 3, 3, 3), lo, hi), padding=1, block=0,
                        mode="independent", name="c3")
        l4 = Layer.linear(rand_weights(rng, (2 * groups, 27), lo, hi), name="fc")
        return Network((1, 4, 4), (l1, l2, l3, l4))
    raise ValueError(kind)


def rand_spikes(rng, shape, p: float = 0.4) -> np.ndarray:
    return (rng.random(shape) < p).astype(np.int64)


# =========================================================================
# run_fixed == slow reference
# =========================================================================

CFG = HwConfig(array=8, groups=2, theta_int=64, leak_int=200, weight_rows=4096, mem_rows=4096)


def _compare(cfg, net, spikes):
    fast = run_fixed(cfg, net, spikes)
    slow = slow_run(cfg, net, spikes)
    for i, (f, s) in enumerate(zip(fast.layers, slow)):
        np.testing.assert_array_equal(f.current, s["current"], err_msg=f"layer {i} currents")
        np.testing.assert_array_equal(f.spikes, s["spikes"], err_msg=f"layer {i} spikes")
        if s["membrane"] is None:
            assert f.membrane is None
        else:
            np.testing.assert_array_equal(f.membrane, s["membrane"], err_msg=f"layer {i} membrane")
    return fast


@pytest.mark.parametrize("kind", ["conv_block", "linear_block", "independent_block"])
@pytest.mark.parametrize("groups", [1, 2, 4])
def test_matches_slow_reference(kind, groups):
    rng = np.random.default_rng(100 * groups + len(kind))
    cfg = CFG.replace(groups=groups)
    net = small_net(rng, kind, groups)
    spikes = rand_spikes(rng, (3, 2) + net.in_shape)
    fast = _compare(cfg, net, spikes)
    assert 0 < fast.layers[0].spikes.mean() < 1, "the test network must actually fire"


@pytest.mark.parametrize("reset,fire", [("hard", "gt"), ("soft", "ge"), ("hard", "ge")])
def test_matches_slow_reference_reset_fire(reset, fire):
    rng = np.random.default_rng(7)
    cfg = CFG.replace(groups=2, reset=reset, fire=fire)
    net = small_net(rng, "conv_block", 2)
    _compare(cfg, net, rand_spikes(rng, (4, 2) + net.in_shape))


def test_saturating_everything_matches_slow_reference():
    """Narrow accumulator and membrane: many partial sums and membranes saturate."""
    rng = np.random.default_rng(3)
    cfg = HwConfig(array=8, groups=2, weight_width=6, acc_width=7, mem_width=8, frac_bits=4,
                   theta_int=40, leak_int=256, weight_rows=4096, mem_rows=4096)
    net = small_net(rng, "conv_block", 2, lo=-16, hi=31)
    fast = _compare(cfg, net, rand_spikes(rng, (3, 2) + net.in_shape, p=0.7))
    cur = fast.layers[0].current
    assert (cur == cfg.acc_max).any() and (fast.layers[0].membrane == cfg.mem_max).any()


def test_order_dependent_accumulation_uses_sequential_fallback():
    """Neurons whose exact sum differs from the saturating ordered sum (F2)."""
    rng = np.random.default_rng(5)
    cfg = HwConfig(array=8, groups=1, weight_width=8, acc_width=9, weight_rows=4096, mem_rows=4096)
    layer = Layer.conv((3, 6, 6), rand_weights(rng, (4, 3, 3, 3), -128, 127), padding=1, mode="readout")
    net = Network((3, 6, 6), (layer,))
    spikes = rand_spikes(rng, (2, 3) + net.in_shape, p=0.8)
    fast = _compare(cfg, net, spikes)
    # Exact (unsaturated) sums, to prove some neurons took the slow path.
    x = spikes.reshape(6, 3, 6, 6)
    exact = np.zeros((6, 4, 6, 6), np.int64)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    for kh in range(3):
        for kw in range(3):
            exact += np.einsum("bchw,oc->bohw", xp[:, :, kh:kh + 6, kw:kw + 6], layer.weight[:, :, kh, kw])
    got = fast.layers[0].current.reshape(6, 4, 6, 6)
    differs = (exact != got)
    assert differs.any(), "no neuron depends on the event order; the test lost its point"
    inside = (exact >= cfg.acc_min) & (exact <= cfg.acc_max)
    assert (differs & inside).any(), "want a case whose exact sum fits but a partial sum saturated"


def test_saturating_sum_all_branches_match_sequential_loop():
    """Rows that can hit only the top, only the bottom, or both bounds (F2)."""
    from golden.fixed_model import _saturating_sum
    cfg = HwConfig(weight_width=8, acc_width=9)           # acc [-256, 255]
    rng = np.random.default_rng(1)
    rows = np.concatenate([rng.integers(-20, 128, (50, 40)),     # top only
                           rng.integers(-128, 20, (50, 40)),     # bottom only
                           rng.integers(-128, 128, (200, 40))])  # both
    pos = np.where(rows > 0, rows, 0).sum(axis=1)
    neg = np.where(rows < 0, rows, 0).sum(axis=1)
    kinds = (neg >= cfg.acc_min, pos <= cfg.acc_max, (neg < cfg.acc_min) & (pos > cfg.acc_max))
    assert all(k.any() for k in kinds)
    want = [int(fp.accumulate(cfg, r[:, None])[0]) for r in rows]
    assert _saturating_sum(cfg, rows.astype(np.int32), pos, neg).tolist() == want


# =========================================================================
# hand-computed corners (expected values derived by hand from the rules)
# =========================================================================

def _single_input(weights, mode="independent", groups=1):
    w = np.array(weights, dtype=np.int64).reshape(-1, 1)
    return Network((1,), (Layer.linear(w, mode=mode),))


def test_f2_saturating_order_by_hand():
    cfg = HwConfig(array=4, groups=1, weight_width=4, acc_width=5)   # acc range [-16, 15]
    # second sample (input 0 silent): 7, 14, 6 / -8, -1, 6 / -8, -16, -9
    w = np.array([[7, 7, 7, -8],      # 7, 14, 15 (21 saturates), 7
                  [-8, -8, 7, 7],     # -8, -16, -9, -2 (exact)
                  [-8, -8, -8, 7]])   # -8, -16, -16 (-24 saturates), -9
    net = Network((4,), (Layer.linear(w, mode="readout"),))
    spikes = np.array([[[1, 1, 1, 1]], [[0, 1, 1, 1]]])
    r = run_fixed(cfg, net, spikes)
    assert r.layers[0].current[:, 0].tolist() == [[7, -2, -9], [6, 6, -9]]
    assert r.layers[0].spikes.sum() == 0 and r.layers[0].membrane is None


def test_membrane_saturation_with_unit_leak_by_hand():
    cfg = HwConfig(array=2, groups=1, weight_width=9, acc_width=10, mem_width=8, frac_bits=4,
                   leak_bits=8, leak_int=256, theta_int=100)           # λ = 1, mem [-128, 127]
    r = run_fixed(cfg, _single_input([90, -200]), np.ones((3, 1, 1), int))
    assert r.layers[0].membrane[:, 0].tolist() == [[90, -128], [127, -128], [117, -128]]
    assert r.layers[0].spikes[:, 0].tolist() == [[0, 0], [1, 0], [1, 0]]


@pytest.mark.parametrize("fire,reset,u0,s0,u1,s1", [
    ("gt", "soft", [64, 96, 80], [0, 1, 1], [100, 118, 127], [1, 1, 1]),
    ("ge", "soft", [64, 64, 64], [1, 1, 1], [100, 118, 127], [1, 1, 1]),
    ("gt", "hard", [64, 96, 64], [0, 1, 0], [100, 100, 100], [1, 1, 1]),
    ("ge", "hard", [64, 64, 64], [1, 1, 1], [100, 100, 100], [1, 1, 1]),
])
def test_threshold_ties_and_reset_by_hand(fire, reset, u0, s0, u1, s1):
    cfg = HwConfig(array=2, groups=1, theta_int=64, leak_int=128, fire=fire, reset=reset)   # λ = 0.5
    r = run_fixed(cfg, _single_input([64, 100]), np.ones((3, 1, 1), int))
    assert r.layers[0].membrane[:, 0, 0].tolist() == u0
    assert r.layers[0].spikes[:, 0, 0].tolist() == s0
    assert r.layers[0].membrane[:, 0, 1].tolist() == u1
    assert r.layers[0].spikes[:, 0, 1].tolist() == s1


def test_leak_rounding_by_hand():
    """F3: λ·V rounded to nearest, ties toward +inf: 0.5·3 -> 2, 0.5·(-3) -> -1; 0.25·5 -> 1."""
    cfg = HwConfig(array=2, groups=1, theta_int=64, leak_int=128)
    r = run_fixed(cfg, _single_input([3, -3]), np.array([[[1]], [[0]]]))
    assert r.layers[0].membrane[1, 0].tolist() == [2, -1]
    cfg = cfg.replace(leak_int=64)
    r = run_fixed(cfg, _single_input([5, -5]), np.array([[[1]], [[0]]]))
    assert r.layers[0].membrane[1, 0].tolist() == [1, -1]


def test_cross_channel_chaining_by_hand():
    """C#2 with one slot: group 1 starts from group 0's V', group 0 from group 1's V' at t-1."""
    cfg = HwConfig(array=2, groups=2, theta_int=4, leak_int=128)
    r = run_fixed(cfg, _single_input([6, 1], mode="chained"), np.ones((2, 1, 1), int))
    assert r.layers[0].membrane[:, 0].tolist() == [[6, 2], [7, 3]]
    assert r.layers[0].spikes[:, 0].tolist() == [[1, 0], [1, 0]]
    assert r.layers[0].v_after[:, 0].tolist() == [[2], [3]]
    assert r.stored_state(0)[:, 0].tolist() == [[2], [3]]


def test_cross_layer_chaining_by_hand():
    """L block of two layers: layer 2 starts from layer 1's V', layer 1 from layer 2's V' at t-1."""
    cfg = HwConfig(array=1, groups=1, theta_int=4, leak_int=128)
    l1 = Layer.linear(np.array([[5]]), block=3, name="a")
    l2 = Layer.linear(np.array([[3]]), block=3, name="b")
    r = run_fixed(cfg, Network((1,), (l1, l2)), np.ones((2, 1, 1), int))
    assert r.layers[0].membrane[:, 0, 0].tolist() == [5, 7]
    assert r.layers[1].membrane[:, 0, 0].tolist() == [4, 5]
    assert r.layers[1].spikes[:, 0, 0].tolist() == [0, 1]
    assert r.stored_state(0)[:, 0, 0].tolist() == [4, 1]
    # Without the block layer 2 has its own membrane: 3, then 0.5*3 (→2) + 3.
    l2u = Layer.linear(np.array([[3]]), name="b")
    r = run_fixed(cfg, Network((1,), (Layer.linear(np.array([[5]])), l2u)), np.ones((2, 1, 1), int))
    assert r.layers[1].membrane[:, 0, 0].tolist() == [3, 5]


def test_layer_currents_conv_geometry_by_hand():
    """Stride 2, padding 1: output (0,0) sees input rows/cols 0..1, (1,1) sees 1..3."""
    cfg = HwConfig(array=4, groups=1)
    w = np.arange(1, 10).reshape(1, 1, 3, 3)
    layer = Layer.conv((1, 4, 4), w, stride=2, padding=1, mode="readout")
    x = np.zeros((1, 1, 4, 4), np.uint8)
    x[0, 0, 1, 1] = 1
    cur = layer_currents(cfg, layer, x)
    assert layer.out_shape == (1, 2, 2)
    # input (1,1) for output (oh, ow) is kernel tap (2 - 2·oh, 2 - 2·ow)
    assert cur[0, 0].tolist() == [[9, 7], [3, 1]]


def test_spike_input_errors():
    net = _single_input([1])
    cfg = HwConfig(array=1, groups=1)
    with pytest.raises(ValueError, match=r"spikes_in: expected shape \[T, B, 1\]"):
        run_fixed(cfg, net, np.ones((2, 1, 2)))
    with pytest.raises(ValueError, match="spikes must be 0 or 1, found 2"):
        run_fixed(cfg, net, np.full((2, 1, 1), 2))


# =========================================================================
# network validation
# =========================================================================

def _conv_net(block2=None, mode2="chained", w2=None):
    rng = np.random.default_rng(0)
    l1 = Layer.conv((2, 4, 4), rand_weights(rng, (4, 2, 3, 3), -3, 3), padding=1, name="c1", block=block2)
    l2 = Layer.conv((4, 4, 4), rand_weights(rng, (4, 4, 3, 3), -3, 3) if w2 is None else w2,
                    padding=1, name="c2", block=block2, mode=mode2)
    return Network((2, 4, 4), (l1, l2))


@pytest.mark.parametrize("change,pattern", [
    (dict(weight_width=2), r"layer 0 \('c1'\): weight -?3 is outside the 2-bit range \[-2, 1\]"),
    (dict(groups=8, array=8), r"layer 0 \('c1'\): chained mode needs out_channels \(4\) divisible by groups=8"),
    (dict(weight_rows=20), r"layer 0 \('c1'\): weight rows per chunk .* 24 > weight_rows=20 "
                               r"\(weight_stationary mapping\)"),
    # 2 x 8 rows do not fit 10 but spill (one pass = one block's 8 tiles); 4 rows hold no pass
    (dict(mem_rows=4), r"layer 0 \('c1'\): one weight block's tiles need 8 membrane rows .* "
                       r"> mem_rows=4, so even spilled membranes do not fit"),
])
def test_validate_errors_name_the_layer(change, pattern):
    # array 8, groups 2: S = 4, Cg = 2, weight-stationary p = 2 positions per tile: 2 input ch x 3 x 4 = 24 rows
    cfg = HwConfig(array=8, groups=2, weight_rows=4096, mem_rows=4096)
    net = _conv_net()
    net.validate(cfg)
    with pytest.raises(NetworkError, match=pattern):
        net.validate(cfg.replace(**change))


def test_validate_weight_range_names_second_layer():
    w2 = np.zeros((4, 4, 3, 3), np.int64)
    w2[1, 2, 0, 0] = 128
    with pytest.raises(NetworkError, match=r"layer 1 \('c2'\): weight 128 is outside the 8-bit range"):
        _conv_net(w2=w2).validate(HwConfig(array=8, groups=2, weight_rows=4096))


def test_block_shares_rows():
    """Two layers need 2 x 8 membrane rows, an L block one shared region of 8:
    with mem_rows=8 the first spills (docs/schedule.md "Spilled membranes"),
    the second stays resident."""
    from golden.schedule import plan_allocation
    cfg = HwConfig(array=8, groups=2, weight_rows=4096, mem_rows=8)
    for block2, where in ((None, "spilled"), (1, "resident")):
        net = _conv_net(block2=block2)
        net.validate(cfg)
        assert plan_allocation(cfg, net).membranes == where
    _conv_net().validate(cfg.replace(mem_rows=16))
    assert plan_allocation(cfg.replace(mem_rows=16), _conv_net()).membranes == "resident"


def test_structural_errors_name_the_layer():
    rng = np.random.default_rng(0)
    l1 = Layer.linear(rand_weights(rng, (4, 6), -1, 1), name="fc1")
    with pytest.raises(NetworkError, match=r"layer 1 \('fc2'\): in_shape \(5,\) does not match the output of layer 0 \('fc1'\) \(4,\)"):
        Network((6,), (l1, Layer.linear(np.zeros((3, 5)), name="fc2")))
    with pytest.raises(NetworkError, match=r"layer 0 \('fc1'\): in_shape \(6,\) does not match the network input \(7,\)"):
        Network((7,), (l1,))
    with pytest.raises(NetworkError, match=r"layer 1 \('c2'\): mode 'independent' differs"):
        _conv_net(block2=0, mode2="independent")
    a = Layer.linear(np.zeros((4, 6)), block=2, name="a")
    b = Layer.linear(np.zeros((5, 4)), block=2, name="b")
    with pytest.raises(NetworkError, match=r"layer 1 \('b'\): out_shape \(5,\) differs from \(4,\) of layer 0 \('a'\)"):
        Network((6,), (a, b))
    with pytest.raises(NetworkError, match=r"^layer 'r': a readout layer has no membrane and cannot be "
                                           r"in sharing block 2$"):
        Layer.linear(np.zeros((4, 4)), block=2, name="r", mode="readout")
    m = Layer.linear(np.zeros((4, 4)), name="m")
    a2 = Layer.linear(np.zeros((4, 4)), block=2, name="a2")
    with pytest.raises(NetworkError, match=r"layer 2 \('a2'\): sharing block 2 is not contiguous"):
        Network((6,), (a, m, a2))
    with pytest.raises(NetworkError, match=r"layer 'x': weight shape \(3, 5\) does not match \(3, 6\)"):
        Layer("linear", (6,), 3, np.zeros((3, 5)), name="x")
    with pytest.raises(NetworkError, match=r"layer 'x': weight must hold integers"):
        Layer.linear(np.full((3, 5), 0.5), name="x")
    with pytest.raises(NetworkError, match=r"layer 'x': mode='lif'"):
        Layer.linear(np.zeros((3, 5)), mode="lif", name="x")
    with pytest.raises(NetworkError, match=r"layer 'x': kind='dense'"):
        Layer("dense", (6,), 3, np.zeros((3, 6)), name="x")


# =========================================================================
# network files
# =========================================================================

def test_file_round_trip(tmp_path):
    net = _conv_net(block2=4)
    p = tmp_path / "n.npz"
    save_network(net, p)
    back = load_network(p)
    assert back.describe() == net.describe()
    for a, b in zip(back.layers, net.layers):
        np.testing.assert_array_equal(a.weight, b.weight)
    assert sorted(os.listdir(tmp_path)) == ["n.npz"]


def test_saved_network_file_is_world_readable(tmp_path):
    p = tmp_path / "n.npz"
    save_network(_conv_net(), p)
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o644


def test_save_failure_leaves_nothing(tmp_path, monkeypatch):
    # the target is a folder: refused, nothing written
    (tmp_path / "dir.npz").mkdir()
    with pytest.raises(OutputError, match="dir.npz: is a directory"):
        save_network(_conv_net(), tmp_path / "dir.npz")
    assert sorted(os.listdir(tmp_path)) == ["dir.npz"]
    assert os.listdir(tmp_path / "dir.npz") == []
    # the final rename fails: the old file is untouched and no temporary file is left
    old = tmp_path / "n.npz"
    old.write_bytes(b"old")

    def fail(src, dst):
        raise OSError(28, "No space left on device", str(dst))
    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OutputError, match="No space left on device"):
        save_network(_conv_net(), old)
    assert sorted(os.listdir(tmp_path)) == ["dir.npz", "n.npz"]
    assert old.read_bytes() == b"old"


def _write_npz(path, desc, **arrays):
    payload = {} if desc is None else {"network.json": np.array(desc if isinstance(desc, str) else json.dumps(desc))}
    with open(path, "wb") as fh:
        np.savez(fh, **payload, **arrays)


@pytest.mark.parametrize("case,pattern", [
    ("missing", "no such file"),
    ("directory", "is a directory, not a file"),
    ("npy", "not a readable .npz archive \\(not a zip file\\)"),
    ("text", "not a readable .npz archive"),
    ("no_json", "missing the 'network.json' description"),
    ("bad_json", "'network.json' is not valid JSON"),
    ("format", "format is 'other'"),
    ("no_field", "layer 0: missing field\\(s\\) stride"),
    ("no_weight", "layer 1: weight array 'w9' is not in the archive"),
    ("bad_shape", "layer 1: layer 'c2': weight shape"),
    ("chain", "layer 1 \\('c2'\\): in_shape"),
    ("version", "version 99 is not supported"),
    ("float_shape", "network in_shape=\\(2.5, 4, 4\\): must be a tuple of positive integers"),
    ("bad_kernel", "layer 0: layer 'c1': kernel='3': must be a positive integer"),
])
def test_malformed_files(tmp_path, case, pattern):
    p = tmp_path / "bad.npz"
    good = _conv_net()
    desc = good.describe()
    arrays = {f"w{i}": layer.weight for i, layer in enumerate(good.layers)}
    if case == "text":
        p.write_text("hello")
    elif case == "directory":
        p.mkdir()
    elif case == "npy":
        with open(p, "wb") as fh:   # a plain .npy (numpy would advise allow_pickle)
            np.save(fh, np.zeros(3))
    elif case == "no_json":
        _write_npz(p, None, **arrays)
    elif case == "bad_json":
        _write_npz(p, "{not json", **arrays)
    elif case == "format":
        _write_npz(p, dict(desc, format="other"), **arrays)
    elif case == "no_field":
        del desc["layers"][0]["stride"]
        _write_npz(p, desc, **arrays)
    elif case == "no_weight":
        desc["layers"][1]["weight"] = "w9"
        _write_npz(p, desc, **arrays)
    elif case == "bad_shape":
        arrays["w1"] = np.zeros((4, 4, 2, 2), np.int64)
        _write_npz(p, desc, **arrays)
    elif case == "chain":
        desc["layers"][1]["in_shape"] = [4, 5, 5]
        _write_npz(p, desc, **arrays)
    elif case == "version":
        _write_npz(p, dict(desc, version=99), **arrays)
    elif case == "float_shape":
        desc["in_shape"] = [2.5, 4, 4]
        _write_npz(p, desc, **arrays)
    elif case == "bad_kernel":
        desc["layers"][0]["kernel"] = "3"
        _write_npz(p, desc, **arrays)
    with pytest.raises(NetworkError, match=f"network file '{p}'.*{pattern}" if case != "missing" else pattern):
        load_network(p)
