"""Float EfficientLIF-Net -> hardware integers, and a float-vs-fixed agreement report.

:func:`quantize` turns a trained :class:`golden.reference.EfficientLIFNet`
(weights, λ, θ, firing and reset rules, groups) into

* an :class:`HwConfig` whose ``frac_bits`` is the largest number of fraction
  bits for which every weight rounds into ``weight_width`` bits without
  clipping, θ fits the membrane with ``theta_headroom_bits`` of headroom and
  ``frac_bits < mem_width`` (or the ``frac_bits`` you pass);
  ``theta_int = round(θ·2^frac_bits)``, ``leak_int = round(λ·2^leak_bits)``
  (exact when representable, otherwise the nearest value; both recorded);
  ``weight_rows`` / ``mem_rows`` are the smallest that hold the network
  unless given;
* a :class:`golden.network.Network` with integer weights
  ``clip(round_half_even(w·2^frac_bits))`` and biases
  ``clip(round_half_even(b·2^frac_bits))`` to the accumulator range (split
  into weight-range rows by the schedule, docs/fixed-point.md F2b), same
  layer order, modes, block ids and input pooling;
* ``choices``: every decision with the exact value it replaced, and per layer
  the largest possible |X| (Σ|w_int| over a neuron's fan-in) and whether it
  can exceed the accumulator (F2 saturation).

:func:`agreement_report` runs the float model and
:func:`golden.fixed_model.run_fixed` on the same input spikes and compares
spikes, currents and membranes layer by layer, both for the original float
model and for the float model with the quantized weights, λ and θ (which
isolates the fixed-point rounding of F3 and the saturation of F2/F4 from the
weight quantization). :func:`report_markdown` renders it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

import numpy as np
import torch

from .config import MAX_ROWS, ConfigError, HwConfig
from .errors import ProjectError
from .fixed_model import run_fixed
from .fixedpoint import bias_rows
from .mapping import rows_needed
from .network import Layer, Network
from .reference import EfficientLIFNet

__all__ = ["QuantizeError", "Quantized", "quantize", "agreement_report", "report_markdown",
           "float_model_of", "quantize_input", "bit_plane_weights"]


class QuantizeError(ProjectError, ValueError):
    """The float model cannot be mapped onto the requested hardware. The message says why."""


@dataclass(frozen=True)
class Quantized:
    """Result of :func:`quantize`: ``cfg``, ``network`` and the ``choices`` dict."""

    cfg: HwConfig
    network: Network
    choices: dict


def _weights(model: EfficientLIFNet) -> list:
    return [w.detach().to(torch.float64).cpu().numpy() for w in model.weights]


def bit_plane_weights(w: np.ndarray, bits: int, frac_bits: int, signed: bool) -> np.ndarray:
    """Layer-0 float weights ``w [out, C, ...]`` of a direct-input layer -> the weights of its
    bit planes ``[out, C·bits, ...]`` (docs/fixed-point.md F2d): plane b of channel c holds
    ``w·2^(b − frac_bits)``, negated for the sign bit b = bits − 1 when ``signed``, so that
    ``Σ_b w_b·bit_b(x_int) = w·x_int·2^(−frac_bits)`` exactly (powers of two)."""
    scale = 2.0 ** (np.arange(bits) - frac_bits)
    if signed:
        scale[-1] = -scale[-1]
    out, c = w.shape[:2]
    rest = w.shape[2:]
    planes = w[:, :, None] * scale.reshape((1, 1, bits) + (1,) * len(rest))
    return planes.reshape((out, c * bits) + rest)


def quantize_input(q: "Quantized", x) -> np.ndarray:
    """Analog direct input ``x`` -> the integers the network takes: ``clip(round_half_even(
    x·2^input_frac_bits))`` to the ``input_bits`` range (the only rounding of the input, F2d)."""
    net = q.network
    if not net.input_bits:
        raise QuantizeError("quantize_input(): the network takes spikes, not direct input")
    p = q.choices["input"]["frac_bits"]
    v = np.asarray(x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x, dtype=np.float64)
    lo, hi = net.input_range
    return np.clip(np.round(v * 2.0 ** p), lo, hi).astype(np.int64)


def _fits(ws: list, f: int, lo: int, hi: int) -> bool:
    return all(w.size == 0 or (np.round(w * 2.0 ** f).max() <= hi and np.round(w * 2.0 ** f).min() >= lo)
               for w in ws)


def _choose_frac_bits(ws, theta: float, fire: str, weight_width: int, mem_width: int,
                      headroom: int) -> tuple:
    """Largest frac_bits satisfying the weight, θ and width limits; returns (f, limiting reason)."""
    wlo, whi = -(1 << (weight_width - 1)), (1 << (weight_width - 1)) - 1
    mem_max = (1 << (mem_width - 1)) - 1
    theta_top = (mem_max if fire == "ge" else mem_max - 1) >> headroom
    best = None
    for f in range(mem_width - 1, -1, -1):
        t = round(theta * 2 ** f)
        if not _fits(ws, f, wlo, whi):
            reason = f"weights need frac_bits <= {f} to fit {weight_width} bits without clipping"
            continue
        if not 1 <= t <= theta_top:
            reason = (f"θ·2^frac_bits must be in [1, {theta_top}] ({headroom} headroom bits in a "
                      f"{mem_width}-bit membrane)")
            continue
        best = f
        break
    if best is None:
        raise QuantizeError(f"no frac_bits in [0, {mem_width - 1}] fits: {reason}; widen "
                            f"weight_width/mem_width or rescale the model")
    if best == mem_width - 1:
        why = f"frac_bits < mem_width={mem_width}"
    elif not _fits(ws, best + 1, wlo, whi):
        why = f"largest weight |w|={max(float(np.abs(w).max(initial=0)) for w in ws):.6g} fills {weight_width} bits"
    else:
        why = f"θ={theta} must stay {headroom} bit(s) below the {mem_width}-bit membrane maximum"
    return best, why


def quantize(model: EfficientLIFNet, *, weight_width: int = 8, acc_width: int = 16,
             mem_width: int = 16, leak_bits: int = 8, array: int = 128,
             frac_bits: Optional[int] = None, theta_headroom_bits: int = 2,
             weight_rows: Optional[int] = None, mem_rows: Optional[int] = None,
             input_bits: int = 8, input_frac_bits: Optional[int] = None,
             input_signed: bool = True) -> Quantized:
    """Map ``model`` onto an :class:`HwConfig` + integer :class:`Network` (see module docstring).

    A direct-input model (``model.direct_input``) needs ``input_frac_bits`` p: the input is
    quantized to ``input_bits``-bit integers ``round(x·2^p)`` (two's complement when
    ``input_signed``) and layer 0 takes their bit planes (F2d, :func:`bit_plane_weights`).
    """
    if not isinstance(model, EfficientLIFNet):
        raise QuantizeError(f"quantize() needs an EfficientLIFNet, got {type(model).__name__}")
    p = model.params
    if isinstance(theta_headroom_bits, bool) or not isinstance(theta_headroom_bits, int) \
            or theta_headroom_bits < 0:
        raise QuantizeError(f"theta_headroom_bits={theta_headroom_bits!r}: expected an integer >= 0")
    # Let HwConfig report bad widths in its own words before we use them.
    try:
        HwConfig(array=array, groups=model.groups, weight_width=weight_width, acc_width=acc_width,
                 mem_width=mem_width, leak_bits=leak_bits, frac_bits=0, leak_int=1, theta_int=1)
    except ConfigError as e:
        raise QuantizeError(f"hardware parameters: {e}") from None
    ws = _weights(model)
    direct = bool(getattr(model, "direct_input", False))
    specs = list(model.layers)
    if direct:
        if isinstance(input_bits, bool) or not isinstance(input_bits, int) or not 1 <= input_bits <= 16:
            raise QuantizeError(f"input_bits={input_bits!r}: expected an integer in 1..16")
        if isinstance(input_frac_bits, bool) or not isinstance(input_frac_bits, int):
            raise QuantizeError(f"direct input needs input_frac_bits (the input is quantized to "
                                f"round(x·2^input_frac_bits) in {input_bits} bits), got {input_frac_bits!r}")
        ws[0] = bit_plane_weights(ws[0], input_bits, input_frac_bits, bool(input_signed))
        s0 = specs[0]
        specs[0] = replace(s0, in_shape=(s0.in_shape[0] * input_bits,) + s0.in_shape[1:])
    skips = {int(i): w.detach().to(torch.float64).cpu().numpy() for i, w in model.skip_weights.items()}
    if frac_bits is None:
        frac_bits, why = _choose_frac_bits(ws + list(skips.values()), p.theta, p.fire, weight_width,
                                           mem_width, theta_headroom_bits)
    else:
        why = "given"
    scale = 2.0 ** frac_bits
    theta_int = round(p.theta * scale)
    leak_int = max(1, min(round(p.leak * 2 ** leak_bits), 1 << leak_bits))
    wlo, whi = -(1 << (weight_width - 1)), (1 << (weight_width - 1)) - 1

    layers, wstats = [], []
    for i, (spec, w) in enumerate(zip(specs, ws)):
        wq_raw = np.round(w * scale)
        wq = np.clip(wq_raw, wlo, whi).astype(np.int64)
        clipped = int(np.count_nonzero(wq != wq_raw))
        row_abs = np.abs(wq).reshape(wq.shape[0], -1).sum(axis=1)
        sq = None
        if i in skips:
            sq_raw = np.round(skips[i] * scale)
            sq = np.clip(sq_raw, wlo, whi).astype(np.int64)
            clipped += int(np.count_nonzero(sq != sq_raw))
            row_abs = row_abs + np.abs(sq).reshape(sq.shape[0], -1).sum(axis=1)
        bound = int(row_abs.max(initial=0))
        wstats.append({"layer": spec.name or f"layer{i}", "max_abs": float(np.abs(w).max(initial=0)),
                       "clipped": clipped,
                       "max_abs_error": float(np.abs(wq / scale - w).max(initial=0)),
                       "current_bound": bound,
                       "acc_may_saturate": bound > (1 << (acc_width - 1)) - 1})
        bq = None
        if spec.bias:
            # the bias is in the weights' scale; it is split into weight-range rows (F2b),
            # so only the accumulator bounds it
            b = model.biases[str(i)].detach().to(torch.float64).cpu().numpy()
            alo, ahi = -(1 << (acc_width - 1)), (1 << (acc_width - 1)) - 1
            bq_raw = np.round(b * scale)
            bq = np.clip(bq_raw, alo, ahi).astype(np.int64)
            wstats[-1].update(bias_clipped=int(np.count_nonzero(bq != bq_raw)),
                              bias_max_abs=float(np.abs(b).max(initial=0)),
                              bias_max_abs_error=float(np.abs(bq / scale - b).max(initial=0)))
            wstats[-1]["current_bound"] = bound = bound + int(np.abs(bq).max(initial=0))
            wstats[-1]["acc_may_saturate"] = bound > (1 << (acc_width - 1)) - 1
        layers.append(Layer(kind=spec.kind, in_shape=spec.in_shape, out_channels=spec.out_channels,
                            weight=wq, kernel=spec.kernel, stride=spec.stride, padding=spec.padding,
                            mode=spec.mode, block=spec.block, name=spec.name or f"layer{i}",
                            pool=spec.pool, bias=bq, skip=spec.skip, skip_in_shape=spec.skip_in_shape,
                            skip_kernel=spec.skip_kernel, skip_stride=spec.skip_stride,
                            skip_padding=spec.skip_padding, skip_weight=sq))
    net = Network(specs[0].in_shape, tuple(layers), input_bits=input_bits if direct else 0,
                  input_signed=bool(input_signed))

    base = dict(array=array, groups=model.groups, weight_width=weight_width, acc_width=acc_width,
                mem_width=mem_width, frac_bits=frac_bits, leak_bits=leak_bits, leak_int=leak_int,
                theta_int=theta_int, reset=p.reset, fire=p.fire)
    try:
        probe = HwConfig(**base)
    except ConfigError as e:
        raise QuantizeError(f"hardware parameters: {e}") from None
    for w, layer in zip(wstats, layers):
        if layer.bias is not None:
            w["bias_rows"] = bias_rows(probe, layer.bias)
    need_w, need_m = rows_needed(probe, layers)
    for name, need, given in (("weight_rows", need_w, weight_rows), ("mem_rows", need_m, mem_rows)):
        if given is None and need > MAX_ROWS:
            raise QuantizeError(f"{name}: the network needs {need} rows > {MAX_ROWS}; use a larger "
                                f"array or more groups")
    try:
        cfg = HwConfig(**base, weight_rows=weight_rows or need_w, mem_rows=mem_rows or need_m)
        net.validate(cfg)
    except (ConfigError, ValueError) as e:
        raise QuantizeError(f"quantized network does not fit: {e}") from None

    choices = {
        "frac_bits": {"value": frac_bits, "reason": why},
        "theta": {"float": p.theta, "int": theta_int, "value": theta_int / scale,
                  "exact": theta_int == p.theta * scale},
        "leak": {"float": p.leak, "int": leak_int, "bits": leak_bits,
                 "value": leak_int / 2 ** leak_bits, "exact": leak_int == p.leak * 2 ** leak_bits},
        "weights": wstats,
        "weight_rows": {"value": cfg.weight_rows, "needed": need_w},
        "mem_rows": {"value": cfg.mem_rows, "needed": need_m},
    }
    if direct:
        choices["input"] = {"bits": input_bits, "frac_bits": input_frac_bits, "signed": bool(input_signed)}
    return Quantized(cfg=cfg, network=net, choices=choices)


def float_model_of(q: Quantized, model: EfficientLIFNet) -> EfficientLIFNet:
    """The float64 model with ``q``'s integer weights, λ and θ (real-valued)."""
    cfg = q.cfg
    params = replace(model.params, leak=cfg.leak, theta=cfg.theta)
    specs = list(model.layers)
    if q.network.input_bits:         # direct input: the quantized model takes the bit planes
        specs[0] = replace(specs[0], in_shape=q.network.in_shape)
    fm = EfficientLIFNet(specs, model.groups, params, dtype=torch.float64)
    with torch.no_grad():
        for w, layer in zip(fm.weights, q.network.layers):
            w.copy_(torch.from_numpy(layer.weight.astype(np.float64) * cfg.scale))
        for i, w in fm.skip_weights.items():
            w.copy_(torch.from_numpy(q.network.layers[int(i)].skip_weight.astype(np.float64) * cfg.scale))
        for i, b in fm.biases.items():
            b.copy_(torch.from_numpy(q.network.layers[int(i)].bias.astype(np.float64) * cfg.scale))
    return fm


def _compare(cfg: HwConfig, model: EfficientLIFNet, spikes: torch.Tensor, fixed) -> dict:
    with torch.no_grad():
        tr = model.run(spikes.to(model.weights[0].dtype))
    layers = []
    for i, spec in enumerate(model.layers):
        fx = fixed.layers[i]
        row = {"layer": spec.name or f"layer{i}", "kind": spec.kind, "mode": spec.mode}
        x_f = tr.currents[i].double().numpy()
        row["current_max_abs_err"] = float(np.abs(x_f - fx.current * cfg.scale).max(initial=0))
        if spec.mode == "readout":
            row.update(spikes=0, mismatches=0, agreement=1.0, first_mismatch=None,
                       membrane_max_abs_err=None, fixed_spikes=0, float_spikes=0)
        else:
            s_f = tr.spikes[i].numpy().astype(np.int64)
            diff = s_f != fx.spikes
            n = int(diff.sum())
            first = None
            if n:
                idx = np.argwhere(diff)[0]
                first = {"t": int(idx[0]), "b": int(idx[1]), "neuron": [int(v) for v in idx[2:]],
                         "float": int(s_f[tuple(idx)]), "fixed": int(fx.spikes[tuple(idx)])}
            row.update(spikes=int(diff.size), mismatches=n, agreement=1 - n / diff.size,
                       first_mismatch=first, float_spikes=int(s_f.sum()),
                       fixed_spikes=int(fx.spikes.sum()),
                       membrane_max_abs_err=float(np.abs(tr.membranes[i].double().numpy()
                                                         - fx.membrane * cfg.scale).max(initial=0)))
        layers.append(row)
    out_f = tr.output.double().numpy()
    out_x = fixed.output.sum(axis=0) * (cfg.scale if model.layers[-1].mode == "readout" else 1)
    return {"layers": layers, "output_max_abs_err": float(np.abs(out_f - out_x).max(initial=0)),
            "prediction_agreement": float(np.mean(out_f.reshape(out_f.shape[0], -1).argmax(1)
                                                  == out_x.reshape(out_x.shape[0], -1).argmax(1)))}


def agreement_report(model: EfficientLIFNet, q: Quantized, spikes) -> dict:
    """Compare float and fixed-point runs on ``spikes`` [T, B, *in_shape] (0/1).

    Returns ``{"config": cfg dict, "choices": ..., "float": cmp, "float_quantized": cmp}``
    where each ``cmp`` has per-layer rows (spike mismatches, agreement,
    first mismatch, max current / membrane error in real units) and the
    read-out error and argmax agreement.
    """
    x = torch.as_tensor(np.asarray(spikes)) if not isinstance(spikes, torch.Tensor) else spikes
    model.check_input(x)
    if q.network.input_bits:         # direct input: x is analog; the fixed model takes bit planes
        planes = q.network.input_spikes(quantize_input(q, x))
        xq = torch.from_numpy(planes.astype(np.float64))
    else:
        planes, xq = x.detach().cpu().numpy().astype(np.uint8), x
    fixed = run_fixed(q.cfg, q.network, planes)
    return {"config": q.cfg.to_dict(), "choices": q.choices,
            "float": _compare(q.cfg, model, x, fixed),
            "float_quantized": _compare(q.cfg, float_model_of(q, model), xq, fixed)}


def report_markdown(rep: dict) -> str:
    """Markdown rendering of :func:`agreement_report`'s dict."""
    c = rep["choices"]
    lines = ["## Quantization", "",
             f"* frac_bits = {c['frac_bits']['value']} ({c['frac_bits']['reason']})",
             f"* θ = {c['theta']['float']} -> theta_int = {c['theta']['int']} "
             f"({'exact' if c['theta']['exact'] else 'nearest: ' + repr(c['theta']['value'])})",
             f"* λ = {c['leak']['float']} -> leak_int = {c['leak']['int']}/2^{c['leak']['bits']} "
             f"({'exact' if c['leak']['exact'] else 'nearest: ' + repr(c['leak']['value'])})",
             f"* weight_rows = {c['weight_rows']['value']}, mem_rows = {c['mem_rows']['value']}", "",
             "| layer | max abs w | clipped | max abs rounding | max Σ abs(w_int) (F2 may saturate) |",
             "|---|---|---|---|---|"]
    for w in c["weights"]:
        lines.append(f"| {w['layer']} | {w['max_abs']:.4g} | {w['clipped']} | {w['max_abs_error']:.3g} "
                     f"| {w['current_bound']}{' (yes)' if w['acc_may_saturate'] else ''} |")
    biased = [w for w in c["weights"] if "bias_rows" in w]
    if biased:
        lines += ["", "| layer | max abs bias | bias clipped | max abs bias rounding | bias rows (F2b) |",
                  "|---|---|---|---|---|"]
        for w in biased:
            lines.append(f"| {w['layer']} | {w['bias_max_abs']:.4g} | {w['bias_clipped']} | "
                         f"{w['bias_max_abs_error']:.3g} | {w['bias_rows']} |")
    for key, title in (("float", "float model vs fixed point"),
                       ("float_quantized", "float model with quantized weights/λ/θ vs fixed point")):
        r = rep[key]
        lines += ["", f"### {title}", "",
                  "| layer | mode | spike agreement | mismatches | float / fixed spikes | "
                  "max current err | max membrane err |", "|---|---|---|---|---|---|---|"]
        for row in r["layers"]:
            mem = "-" if row["membrane_max_abs_err"] is None else f"{row['membrane_max_abs_err']:.3g}"
            lines.append(f"| {row['layer']} | {row['mode']} | {row['agreement']:.4f} | "
                         f"{row['mismatches']}/{row['spikes']} | {row['float_spikes']} / "
                         f"{row['fixed_spikes']} | {row['current_max_abs_err']:.3g} | {mem} |")
        lines.append(f"\nread-out max abs error {r['output_max_abs_err']:.4g}, "
                     f"argmax agreement {r['prediction_agreement']:.3f}")
    return "\n".join(lines)
