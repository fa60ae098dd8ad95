"""Quantization (golden/quantize.py): on-grid float models equal the fixed-point model exactly."""

import numpy as np
import pytest
import torch

from golden.network import Network
from golden.quantize import QuantizeError, agreement_report, quantize, report_markdown
from golden.lif import LIFParams
from golden.reference import EfficientLIFNet, LayerSpec, with_scheme

torch.set_num_threads(1)

LAYERS = [LayerSpec("conv", (2, 5, 5), 4, kernel=3, padding=1, name="c0"),
          LayerSpec("conv", (4, 5, 5), 4, kernel=3, padding=1, name="c1"),
          LayerSpec("linear", (100,), 3, mode="readout", name="fc")]

WIDE = dict(weight_width=16, acc_width=24, mem_width=24, leak_bits=8)


def on_grid_model(scheme, params, seed=0, step=1 / 8, span=16):
    """Float64 model whose weights are integers·``step`` in [-span·step, span·step]."""
    layers, groups = with_scheme(LAYERS, scheme)
    model = EfficientLIFNet(layers, groups, params, dtype=torch.float64)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for w in model.weights:
            w.copy_(torch.randint(-span, span + 1, w.shape, generator=g).double() * step)
    return model


def spikes(T, B=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand((T, B, 2, 5, 5), generator=g) < 0.5).double()


@pytest.mark.parametrize("scheme,leak,T", [
    ("baseline", 0.5, 6), ("C#2", 0.5, 4), ("L", 0.5, 4), ("L+C#2", 0.5, 2),
    ("C#4", 1.0, 6), ("L+C#4", 1.0, 5), ("L+C#2", 0.25, 1), ("C#2", 0.25, 2)])
@pytest.mark.parametrize("reset,fire", [("soft", "gt"), ("soft", "ge"), ("hard", "gt")])
def test_on_grid_float_equals_fixed_exactly(scheme, leak, T, reset, fire):
    """λ a power of two, weights on the grid, wide widths: no rounding, no saturation.

    Each chain loses at most 8 bits to the leak (λ=1/2: 8 steps, λ=1/4: 4 steps) and the
    weights are multiples of 2^10 LSBs (frac_bits = 13), so every λ·V stays an integer
    number of LSBs (docs/fixed-point.md, "Float model correspondence").
    """
    model = on_grid_model(scheme, LIFParams(leak=leak, fire=fire, reset=reset))
    q = quantize(model, **WIDE)
    assert q.cfg.frac_bits == 13 and q.choices["leak"]["exact"] and q.choices["theta"]["exact"]
    rep = agreement_report(model, q, spikes(T))
    r = rep["float"]
    lif_spikes = 0
    for row in r["layers"]:
        assert row["mismatches"] == 0, row
        assert row["current_max_abs_err"] == 0.0, row
        if row["mode"] != "readout":
            assert row["membrane_max_abs_err"] == 0.0, row
            lif_spikes += row["fixed_spikes"]
    assert r["output_max_abs_err"] == 0.0
    assert lif_spikes > 0, "the comparison must involve actual spikes"


def test_off_grid_leak_is_reported_and_causes_rounding():
    model = on_grid_model("C#2", LIFParams(leak=0.3, theta=1.1))
    q = quantize(model, **WIDE)
    assert q.choices["leak"] == {"float": 0.3, "int": 77, "bits": 8, "value": 77 / 256, "exact": False}
    assert q.choices["theta"]["int"] == round(1.1 * 2 ** 13) and not q.choices["theta"]["exact"]
    rep = agreement_report(model, q, spikes(4))
    # the float model uses λ = 0.3 exactly, the hardware 77/256: membranes differ
    assert rep["float"]["layers"][0]["membrane_max_abs_err"] > 0
    md = report_markdown(rep)
    assert "nearest: 0.30078125" in md and "| c0 |" in md


@pytest.mark.parametrize("wmax,want", [(1.5, 6), (-2.0, 6), (2.0, 5), (0.49, 8)])
def test_frac_bits_is_the_largest_without_clipping(wmax, want):
    model = on_grid_model("baseline", LIFParams())
    with torch.no_grad():
        for w in model.weights:
            w.clamp_(-0.25, 0.25)
        model.weights[1].view(-1)[3] = wmax
    q = quantize(model, weight_width=8, mem_width=16)
    assert q.cfg.frac_bits == want
    assert all(s["clipped"] == 0 for s in q.choices["weights"])
    w_int = q.network.layers[1].weight.reshape(-1)[3]
    assert w_int == round(wmax * 2 ** want)


def test_given_frac_bits_clips_and_reports():
    model = on_grid_model("baseline", LIFParams())          # weights up to ±2
    q = quantize(model, weight_width=8, mem_width=16, frac_bits=8)
    assert sum(s["clipped"] for s in q.choices["weights"]) > 0
    assert all(layer.weight.max() <= 127 and layer.weight.min() >= -128 for layer in q.network.layers)


def test_network_mirrors_the_float_layers():
    model = on_grid_model("L+C#2", LIFParams())
    q = quantize(model, **WIDE)
    assert isinstance(q.network, Network)
    assert [(l.kind, l.mode, l.block, l.in_shape, l.out_channels, l.kernel, l.padding)
            for l in q.network.layers] == \
        [(s.kind, s.mode, s.block, s.in_shape, s.out_channels, s.kernel, s.padding) for s in model.layers]
    assert q.cfg.groups == 2
    scale = 2 ** q.cfg.frac_bits
    for layer, w in zip(q.network.layers, model.weights):
        np.testing.assert_array_equal(layer.weight, w.detach().numpy() * scale)
    q.network.validate(q.cfg)


@pytest.mark.parametrize("build,msg", [
    (lambda m: quantize("model"), "EfficientLIFNet"),
    (lambda m: quantize(m, weight_width=1), "weight_width"),
    (lambda m: quantize(m, theta_headroom_bits=-1), "theta_headroom_bits"),
    (lambda m: quantize(m, array=6), "groups"),
])
def test_bad_arguments(build, msg):
    model = on_grid_model("C#4", LIFParams())
    with pytest.raises(QuantizeError, match=msg):
        build(model)


def test_impossible_scale_raises():
    model = on_grid_model("baseline", LIFParams(theta=1e6))
    with pytest.raises(QuantizeError, match="frac_bits"):
        quantize(model, weight_width=8, mem_width=16)


def test_independent_sharing_block_on_a_grouped_build_is_exact():
    """L without C#N on a groups=2 build: layers in 'independent' mode sharing one block."""
    layers = [LayerSpec("conv", (2, 5, 5), 4, kernel=3, padding=1, mode="independent", block=3),
              LayerSpec("conv", (4, 5, 5), 4, kernel=3, padding=1, mode="independent", block=3),
              LayerSpec("linear", (100,), 3, mode="readout")]
    model = EfficientLIFNet(layers, 2, LIFParams(leak=0.5), dtype=torch.float64)
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for w in model.weights:
            w.copy_(torch.randint(-16, 17, w.shape, generator=g).double() / 8)
    q = quantize(model, **WIDE)
    assert q.cfg.groups == 2
    rep = agreement_report(model, q, spikes(4))
    assert all(row["mismatches"] == 0 for row in rep["float"]["layers"])
    assert rep["float"]["output_max_abs_err"] == 0.0
    assert sum(row["fixed_spikes"] for row in rep["float"]["layers"]) > 0


def test_accumulator_saturation_risk_is_flagged():
    model = on_grid_model("baseline", LIFParams())
    q = quantize(model, weight_width=8, acc_width=8, mem_width=16)
    stats = {s["layer"]: s for s in q.choices["weights"]}
    w = q.network.layers[2].weight
    assert stats["fc"]["current_bound"] == int(np.abs(w).sum(axis=1).max())
    assert stats["fc"]["acc_may_saturate"]               # 100 inputs x up to 127 > 127
    assert not quantize(model, **WIDE).choices["weights"][2]["acc_may_saturate"]
