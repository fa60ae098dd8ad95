"""Arithmetic corners of the golden model (docs/fixed-point.md F2-F8).

Three independent views must agree at every corner:

* hand-computed numbers (the tables below, worked out on paper from the
  rules, not from the code);
* the per-operation primitives of :mod:`golden.fixedpoint`;
* the network model :func:`golden.fixed_model.run_fixed`, compared with
  :func:`ref_run`, a deliberately naive per-neuron re-implementation of the
  rules in plain Python integers written for this file.

Corners: weights at ``weight_min``/``weight_max``, currents and membranes at
both saturation limits, ``U == θ`` ties under gt and ge, λ = 1 (IF neuron) and
the smallest λ (``leak_int = 1``), θ = 1 and the largest legal θ, hard and
soft reset, GROUPS = ARRAY (one LIF unit). The corner stimuli of
``tb/test_corners.py`` (which the RTL co-simulation runs) are re-checked here,
and random extreme configurations go through the same comparison.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from golden import fixedpoint as fp
from golden.config import ConfigError, HwConfig
from golden.fixed_model import run_fixed
from golden.network import Layer, Network
from tb.test_corners import CASES, case_config, corner_coverage, corner_stimulus, find_stimulus

BASE = dict(array=8, groups=2, weight_width=8, acc_width=16, mem_width=16, frac_bits=8,
            leak_bits=8, leak_int=256, theta_int=256)


def cfg_(**kw) -> HwConfig:
    return HwConfig(**dict(BASE, **kw))


# ------------------------------------------------------------ legal limits
@pytest.mark.parametrize("kw, ok", [
    (dict(theta_int=32766, fire="gt"), True),     # largest θ for '>': mem_max - 1
    (dict(theta_int=32767, fire="gt"), False),    # U can never exceed mem_max
    (dict(theta_int=32767, fire="ge"), True),     # largest θ for '>=': mem_max
    (dict(theta_int=32768, fire="ge"), False),
    (dict(theta_int=1), True), (dict(theta_int=0), False),
    (dict(leak_int=1), True), (dict(leak_int=0), False),          # smallest λ = 2^-8
    (dict(leak_int=256), True), (dict(leak_int=257), False),      # λ = 1 is the largest
    (dict(leak_bits=16, leak_int=1), True), (dict(leak_bits=16, leak_int=65536), True),
    (dict(array=4, groups=4), True), (dict(array=4, groups=8), False),   # GROUPS = ARRAY
    (dict(weight_width=8, acc_width=8), True), (dict(weight_width=8, acc_width=7), False),
    (dict(mem_width=2, theta_int=1, fire="ge", frac_bits=0), True),  # 2-bit membrane: θ = 1 = mem_max
    (dict(mem_width=2, theta_int=1, fire="gt", frac_bits=0), False),
])
def test_config_limits(kw, ok):
    if ok:
        cfg_(**kw)
    else:
        with pytest.raises(ConfigError):
            cfg_(**kw)


# ------------------------------------------------- primitives vs by hand
# F3: L = (V*leak_int + 2^(lb-1)) >> lb, ties toward +inf. Worked by hand.
LEAK_TABLE = [
    # (leak_int, leak_bits, V, L)
    (256, 8, 32767, 32767), (256, 8, -32768, -32768), (256, 8, -1, -1),   # λ = 1: identity
    (1, 8, 32767, 128),      # 32767/256 = 127.996 -> 128
    (1, 8, -32768, -128),    # -128 exactly
    (1, 8, 127, 0),          # 0.496 -> 0
    (1, 8, 128, 1),          # 0.5 -> 1 (tie up)
    (1, 8, -128, 0),         # -0.5 -> 0 (tie toward +inf)
    (1, 8, -129, -1),        # -0.504 -> -1
    (1, 8, 384, 2),          # 1.5 -> 2
    (1, 8, -384, -1),        # -1.5 -> -1
    (255, 8, 32767, 32639),  # 32639.504 -> 32639
    (255, 8, -32768, -32640),  # (-8355840 + 128)/256 = -32639.5 exactly; >> floors -> -32640
    (1, 16, 32767, 0),       # 32767/65536 = 0.49998 -> 0
    (1, 16, -32768, 0),      # -0.5 -> 0 (tie toward +inf)
    (32768, 16, 3, 2),       # λ = 0.5: 1.5 -> 2
    (32768, 16, -3, -1),     # -1.5 -> -1
]


@pytest.mark.parametrize("li, lb, v, want", LEAK_TABLE)
def test_leak_by_hand(li, lb, v, want):
    cfg = cfg_(leak_int=li, leak_bits=lb)
    assert fp.leak(cfg, v) == want
    assert fp.leak(cfg, np.array([v]))[0] == want
    # λ <= 1: |L| never grows, L stays in the membrane range
    assert abs(fp.leak(cfg, v)) <= abs(v) and cfg.mem_min <= fp.leak(cfg, v) <= cfg.mem_max


@pytest.mark.parametrize("acc, mem, l, x, want", [
    (16, 16, 32767, 32767, 32767), (16, 16, -32768, -32768, -32768),
    (16, 16, 32767, -32768, -1), (16, 16, 32767, 1, 32767), (16, 16, -32768, -1, -32768),
    (20, 16, -32768, 524287, 32767),   # acc wider than mem: X alone saturates U
    (20, 16, 32767, -524288, -32768),
    (8, 16, 32767, 127, 32767), (8, 16, 0, -128, -128),
])
def test_integrate_by_hand(acc, mem, l, x, want):
    cfg = cfg_(acc_width=acc, mem_width=mem, theta_int=10)
    assert fp.integrate(cfg, l, x) == want
    assert fp.integrate(cfg, np.array([l]), np.array([x]))[0] == want


@pytest.mark.parametrize("theta, fire, u, o", [
    (256, "gt", 256, 0), (256, "ge", 256, 1),          # the tie
    (256, "gt", 257, 1), (256, "ge", 257, 1), (256, "gt", 255, 0), (256, "ge", 255, 0),
    (1, "gt", 1, 0), (1, "ge", 1, 1), (1, "gt", 2, 1),  # smallest θ
    (1, "ge", 0, 0), (1, "gt", -32768, 0), (1, "ge", -32768, 0),
    (32766, "gt", 32767, 1), (32766, "gt", 32766, 0),   # largest θ for '>'
    (32767, "ge", 32767, 1), (32767, "ge", 32766, 0),   # largest θ for '>='
])
def test_fire_by_hand(theta, fire, u, o):
    cfg = cfg_(theta_int=theta, fire=fire)
    assert fp.fire(cfg, u) == o
    assert fp.fire(cfg, np.array([u]))[0] == o


@pytest.mark.parametrize("theta, fire, reset, u, v", [
    (32766, "gt", "soft", 32767, 1), (32766, "gt", "hard", 32767, 0),
    (32767, "ge", "soft", 32767, 0), (32767, "ge", "hard", 32767, 0),
    (1, "ge", "soft", 1, 0), (1, "gt", "soft", 1, 1),       # tie: ge resets, gt keeps U
    (1, "gt", "hard", 1, 1), (1, "ge", "hard", -32768, -32768),
    (256, "gt", "soft", 32767, 32511),
])
def test_reset_by_hand(theta, fire, reset, u, v):
    cfg = cfg_(theta_int=theta, fire=fire, reset=reset)
    o = fp.fire(cfg, u)
    assert fp.reset(cfg, u, o) == v
    assert fp.lif_step(cfg, 0, u) == (u, o, v)   # V = 0, X = U: the whole step


@pytest.mark.parametrize("rows, want", [
    ([127, 127, -128], -1),       # 127 -> 254 sat 127 -> -1
    ([-128, -128, 127], -1),      # -128 -> -256 sat -128 -> -1
    ([127, -128, 127], 126),      # no saturation: the exact sum
    ([-128] * 5, -128), ([127] * 5, 127),
])
def test_accumulate_extreme_weights_by_hand(rows, want):
    """F2 with an accumulator as narrow as the weights (8 bits): order matters."""
    cfg = cfg_(acc_width=8, theta_int=10)
    assert fp.accumulate(cfg, np.array(rows)[:, None])[0] == want


# --------------------------------------- whole model vs a worked example
def test_one_lif_unit_chain_by_hand():
    """GROUPS = ARRAY = 4 (one LIF unit, chained over 4 groups), λ = 0.5,
    θ = 100 (ge), soft reset, 6-bit weights, 8-bit accumulator and membrane.
    Channel c is group c. Worked by hand (see comments)."""
    cfg = HwConfig(array=4, groups=4, weight_width=6, acc_width=8, mem_width=8, frac_bits=2,
                   leak_bits=4, leak_int=8, theta_int=100, fire="ge", reset="soft")
    w = np.array([[31, 31, 31, 31, 31],       # 31,62,93,124,155->127: X = 127 (sat)
                  [-32, -32, -32, -32, -32],  # -32..-128,-160->-128: X = -128 (sat)
                  [31, 31, 31, 31, 3],        # X = 127 exactly
                  [1, 0, 0, 0, 0]])           # X = 1
    net = Network((5,), (Layer.linear(w, mode="chained"),)).validate(cfg)
    spikes = np.array([[[1, 1, 1, 1, 1]], [[0, 0, 0, 0, 1]]])   # [T=2, B=1, 5]
    r = run_fixed(cfg, net, spikes).layers[0]
    # t=0: g0 V=0 U=127 fire V'=27 | g1 L=(27*8+8)>>4=14 U=-114 V'=-114
    #      g2 L=(-912+8)>>4=-57 U=70 V'=70 | g3 L=(560+8)>>4=35 U=36 V'=36
    # t=1 (only input 4: X = 31, -32, 3, 0):
    #      g0 L=(288+8)>>4=18 U=49 V'=49 | g1 L=(392+8)>>4=25 U=-7 V'=-7
    #      g2 L=(-56+8)>>4=-3 U=0 V'=0 | g3 L=(0+8)>>4=0 U=0 V'=0
    assert r.current[:, 0].tolist() == [[127, -128, 127, 1], [31, -32, 3, 0]]
    assert r.membrane[:, 0].tolist() == [[127, -114, 70, 36], [49, -7, 0, 0]]
    assert r.spikes[:, 0].tolist() == [[1, 0, 0, 0], [0, 0, 0, 0]]
    assert r.v_after[:, 0].tolist() == [[36], [0]]


@pytest.mark.parametrize("fire, spike", [("gt", 0), ("ge", 1)])
@pytest.mark.parametrize("reset", ["soft", "hard"])
def test_tie_at_smallest_and_largest_theta_by_hand(fire, spike, reset):
    """Independent neurons, first timestep (V = 0): X = θ exactly gives the
    tie U == θ at θ = 1 and at the largest legal θ."""
    for theta in (1, 126 if fire == "gt" else 127):
        cfg = HwConfig(array=4, groups=2, weight_width=8, acc_width=8, mem_width=8, frac_bits=0,
                       leak_bits=8, leak_int=1, theta_int=theta, fire=fire, reset=reset)
        w = np.array([[theta, 0, 0], [theta - 1, 0, 0], [127, 127, 0], [0, 0, -128]])
        net = Network((3,), (Layer.linear(w, mode="independent"),)).validate(cfg)
        r = run_fixed(cfg, net, np.ones((1, 1, 3), dtype=np.int64)).layers[0]
        u, o, v = r.membrane[0, 0], r.spikes[0, 0], r.v_after[0, 0]
        assert u[0] == theta and o[0] == spike                    # the tie
        assert v[0] == (theta if not spike else 0)                # soft: θ-θ = 0; hard: 0
        assert u[1] == theta - 1 and o[1] == 0
        assert u[2] == 127 and o[2] == 1                          # saturated (acc and mem)
        assert v[2] == (127 - theta if reset == "soft" else 0)
        assert u[3] == -128 and o[3] == 0 and v[3] == -128        # negative saturation


# ----------------------------------------- model vs naive reference
def _clamp(x: int, width: int) -> int:
    return max(-(1 << (width - 1)), min((1 << (width - 1)) - 1, x))


def ref_run(cfg: HwConfig, net: Network, spikes) -> list:
    """Naive per-neuron F2-F8 for linear networks (no numpy arithmetic).

    Returns per layer (current, membrane, spikes) as nested lists [T][B][out]."""
    spikes = np.asarray(spikes)
    T, B = spikes.shape[:2]
    half = 1 << (cfg.leak_bits - 1)
    out = [([[None] * B for _ in range(T)], [[None] * B for _ in range(T)],
            [[None] * B for _ in range(T)]) for _ in net.layers]
    state = {}
    for b in range(B):
        for t in range(T):
            x_in = [int(s) for s in spikes[t, b]]
            for i, layer in enumerate(net.layers):
                w = layer.weight.tolist()
                cur = []
                for o in range(layer.out_channels):
                    acc = 0
                    for j, s in enumerate(x_in):          # ascending input index
                        if s:
                            acc = _clamp(acc + w[o][j], cfg.acc_width)
                    cur.append(acc)
                out[i][0][t][b] = cur
                if layer.mode == "readout":
                    x_in = [0] * layer.out_channels
                    continue
                key = (b, layer.block) if layer.block is not None else (b, "layer", i)
                c = layer.out_channels
                if layer.mode == "chained":
                    n, cg = cfg.groups, c // cfg.groups
                    v_slots = [0] * cg if t == 0 and key not in state else state[key]
                    u_all, o_all = [0] * c, [0] * c
                    for s in range(cg):
                        v = v_slots[s]
                        for g in range(n):
                            nrn = g * cg + s
                            lk = (v * cfg.leak_int + half) // (1 << cfg.leak_bits)
                            u = _clamp(lk + cur[nrn], cfg.mem_width)
                            fired = u > cfg.theta_int if cfg.fire == "gt" else u >= cfg.theta_int
                            v = (u - cfg.theta_int if fired else u) if cfg.reset == "soft" \
                                else (0 if fired else u)
                            u_all[nrn], o_all[nrn] = u, int(fired)
                        v_slots[s] = v
                    state[key] = v_slots
                else:
                    vs = [0] * c if t == 0 and key not in state else state[key]
                    u_all, o_all = [0] * c, [0] * c
                    for k in range(c):
                        lk = (vs[k] * cfg.leak_int + half) // (1 << cfg.leak_bits)
                        u = _clamp(lk + cur[k], cfg.mem_width)
                        fired = u > cfg.theta_int if cfg.fire == "gt" else u >= cfg.theta_int
                        vs[k] = (u - cfg.theta_int if fired else u) if cfg.reset == "soft" \
                            else (0 if fired else u)
                        u_all[k], o_all[k] = u, int(fired)
                    state[key] = vs
                out[i][1][t][b] = u_all
                out[i][2][t][b] = o_all
                x_in = o_all
        # every sample starts from 0 (first flag at t = 0)
        state = {}
    return out


def assert_model_matches_reference(cfg, net, spikes_tb):
    """spikes_tb [T, B, F]."""
    res = run_fixed(cfg, net, spikes_tb)
    ref = ref_run(cfg, net, spikes_tb)
    for i, (layer, tr) in enumerate(zip(net.layers, res.layers)):
        cur, mem, spk = ref[i]
        assert tr.current.tolist() == cur, f"layer {i}: currents differ"
        if layer.mode != "readout":
            assert tr.membrane.tolist() == mem, f"layer {i}: membranes differ"
            assert tr.spikes.tolist() == spk, f"layer {i}: spikes differ"
    return res


@pytest.mark.parametrize("name", list(CASES))
def test_rtl_corner_stimuli_hit_their_corners_and_match_reference(name):
    """The stimuli tb/test_corners.py sends to the RTL: the golden model
    shows every required corner, and equals the naive reference."""
    seed, net, spikes, sched, cov = find_stimulus(name)
    cfg = case_config(name)
    for k in CASES[name][1]:
        assert cov[k] > 0, (name, k, cov)
    res = assert_model_matches_reference(cfg, net, spikes.transpose(1, 0, 2))
    assert corner_coverage(cfg, net, res) == cov
    print(f"{name}: seed {seed}, {cov}")


@st.composite
def extreme_configs(draw):
    a, g = draw(st.sampled_from([(4, 4), (4, 2), (8, 2), (8, 1), (6, 3)]))
    ww = draw(st.integers(2, 8))
    acc = ww + draw(st.sampled_from([0, 0, 1, 3]))
    mem = draw(st.integers(max(3, acc - 2), acc + 3))
    lb = draw(st.sampled_from([1, 4, 8, 16]))
    li = draw(st.sampled_from([1, 1 << lb, (1 << lb) - 1 if lb > 1 else 1, 1 << (lb - 1)]))
    fire = draw(st.sampled_from(["gt", "ge"]))
    top = (1 << (mem - 1)) - (2 if fire == "gt" else 1)
    theta = draw(st.sampled_from([1, top, max(1, top - 1), max(1, top // 2)]))
    return HwConfig(array=a, groups=g, weight_width=ww, acc_width=acc, mem_width=mem,
                    frac_bits=0, leak_bits=lb, leak_int=li, theta_int=theta, fire=fire,
                    reset=draw(st.sampled_from(["soft", "hard"])))


@settings(max_examples=60, deadline=None)
@given(extreme_configs(), st.integers(0, 10_000))
def test_extreme_configs_model_matches_reference(cfg, seed):
    net, spikes = corner_stimulus(cfg, seed, samples=2, timesteps=3)
    assert_model_matches_reference(cfg, net, spikes.transpose(1, 0, 2))


def test_reference_detects_a_wrong_rule():
    """The comparison can fail: the naive reference with the tie rule
    flipped disagrees with run_fixed on a stimulus that has ties."""
    name = "if_theta1_gt_hard_narrow_acc"
    seed, net, spikes, sched, cov = find_stimulus(name)
    cfg = case_config(name)
    flipped = cfg.replace(fire="ge")
    with pytest.raises(AssertionError):
        res = run_fixed(cfg, net, spikes.transpose(1, 0, 2))
        ref = ref_run(flipped, net, spikes.transpose(1, 0, 2))
        assert res.layers[0].spikes.tolist() == ref[0][2]
