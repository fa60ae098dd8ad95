"""Markdown tables and the figure of the end-to-end demo (``reports/demo.md``, ``reports/demo.png``).

Pure formatting: every function takes the plain dicts that :mod:`tb.demo`
collects and returns text or writes one PNG. Nothing is measured here.

Dict shapes (one entry per scheme, in table order):

* ``float_rows``: ``{"scheme", "acc", "train_acc", "fwd_words", "bwd_words",
  "bwd_bptt_words", "fwd_kib_32", "bwd_kib_32"}``
* ``quant_rows``: ``{"scheme", "float_acc", "fixed_acc", "pred_agree",
  "frac_bits", "layers": [{"layer", "mode", "agreement", "mismatches", "spikes"}]}``
* ``rtl_rows``: ``{"scheme", "samples", "rtl_acc", "fixed_acc", "mismatches",
  "beats", "spikes", "values", "membrane_words", "cycles", "wload_cycles",
  "readback_cycles", "inference_cycles", "cycles_per_sample",
  "cycles_per_sample_min", "cycles_per_sample_max", "tiles", "events",
  "lif_cycles", "lif_share", "sim_seconds"}``
"""

from __future__ import annotations


__all__ = ["summary_table", "table1", "quant_table", "layer_table", "rtl_table", "config_table", "plot"]


def _cell(v) -> str:
    """A table cell: pipes escaped so free text cannot split the row."""
    return str(v).replace("|", "\\|")


def _pct(x) -> str:
    return "–" if x is None else f"{100 * x:.2f} %"


def summary_table(float_rows: list, quant_rows: list, rtl_rows: list) -> str:
    """One line per scheme: accuracies, LIF memory, RTL mismatches and cycles per sample."""
    q = {r["scheme"]: r for r in quant_rows}
    t = {r["scheme"]: r for r in rtl_rows}
    lines = ["| Method | float acc | fixed-point acc | RTL acc | RTL mismatches | LIF fwd memory "
             "(words) | LIF bwd memory (words) | cycles / sample | LIF share |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in float_rows:
        s = r["scheme"]
        rt = t.get(s)
        fixed = _pct(q[s]["fixed_acc"]) if s in q else "–"
        if rt:
            rtl = [_pct(rt["rtl_acc"]), str(rt["mismatches"]), f"{rt['cycles_per_sample']:.0f}",
                   _pct(rt["lif_share"])]
        else:
            rtl = ["not run", "–", "–", "–"]
        lines.append(f"| {s} | {_pct(r['acc'])} | {fixed} | {rtl[0]} | {rtl[1]} | {r['fwd_words']} | "
                     f"{r['bwd_words']} | {rtl[2]} | {rtl[3]} |")
    return "\n".join(lines)


def table1(rows: list, timesteps: int, mem_width: int) -> str:
    """The paper's Table 1 layout: Method | Acc | LIF forward memory | LIF backward memory."""
    lines = ["| Method | Acc (float, test) | LIF forward memory | LIF backward memory |",
             "|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['scheme']} | {_pct(r['acc'])} | {r['fwd_words']} words = {r['fwd_kib_32']:.2f} KiB "
            f"| {r['bwd_words']} words = {r['bwd_kib_32']:.2f} KiB |")
    lines.append("")
    lines.append(f"Memory is LIF membrane state per sample (golden/memory.py) at 32 bits per word "
                 f"as in the paper (×{mem_width}/32 for the hardware's {mem_width}-bit words); "
                 f"backward: plain BPTT (T = {timesteps} membranes per neuron) for the baseline, "
                 f"the reversible backward (one membrane per chain) for the shared schemes, as in the "
                 f"paper's Table 1.")
    return "\n".join(lines)


def quant_table(rows: list) -> str:
    """Float vs fixed-point accuracy and prediction agreement per scheme."""
    lines = ["| Method | float acc | fixed-point acc | float/fixed same prediction | "
             "spike agreement (all LIF layers) |", "|---|---|---|---|---|"]
    for r in rows:
        tot = sum(l["spikes"] for l in r["layers"])
        mis = sum(l["mismatches"] for l in r["layers"])
        lines.append(f"| {r['scheme']} | {_pct(r['float_acc'])} | {_pct(r['fixed_acc'])} | "
                     f"{_pct(r['pred_agree'])} | {1 - mis / max(1, tot):.5f} ({mis} of {tot} differ) |")
    return "\n".join(lines)


def layer_table(rows: list) -> str:
    """Per-layer float-vs-fixed spike agreement (one column per LIF layer)."""
    names = [l["layer"] for l in rows[0]["layers"] if l["mode"] != "readout"]
    lines = ["| Method | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for r in rows:
        cells = []
        for l in r["layers"]:
            if l["mode"] == "readout":
                continue
            cells.append(f"{l['agreement']:.5f} ({l['mismatches']}/{l['spikes']})")
        lines.append(f"| {r['scheme']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def rtl_table(rows: list, groups: int) -> str:
    """RTL results: accuracy, checks, mismatches, cycles, LIF share."""
    lines = ["| Method | test samples | RTL acc | fixed-point acc | mismatches | checked: beats / "
             "spikes / values / membrane words | total cycles | inference cycles | cycles / sample "
             "(min–max) | tiles | LIF-phase cycles | LIF share | sim time |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['scheme']} | {r['samples']} | {_pct(r['rtl_acc'])} | {_pct(r['fixed_acc'])} | "
            f"{r['mismatches']} | {r['beats']} / {r['spikes']} / {r['values']} / {r['membrane_words']} | "
            f"{r['cycles']} | {r['inference_cycles']} | {r['cycles_per_sample']:.1f} "
            f"({r['cycles_per_sample_min']}–{r['cycles_per_sample_max']}) | {r['tiles']} | "
            f"{r['lif_cycles']} | {_pct(r['lif_share'])} | {r['sim_seconds']:.1f} s |")
    lines += ["",
              "*Total cycles* count every clock of the run after reset: the one-time static weight "
              "load, the membrane read-back through `dbg_addr` after every timestep (testbench "
              "checking, not part of inference) and inference. *Inference cycles* = total − weight "
              "load − read-back. *LIF-phase cycles* = tiles × (N+1) with N = "
              f"{groups} (manifest `lif_cycles_per_tile`): the cycles the shared LIF stage is busy. "
              "It overlaps the next tile's accumulation (two accumulator banks), so the LIF share "
              "is a share of busy time, not cycles added on top."]
    return "\n".join(lines)


def config_table(cfg: dict, manifest: dict, choices: dict) -> str:
    """The build's parameters and the quantizer's choices."""
    c = cfg
    rows = [("ARRAY (PEs)", c["array"]), ("GROUPS (C#N)", c["groups"]),
            ("shared LIF units", manifest.get("lif_units", c["array"] // c["groups"])),
            ("weight / accumulator / membrane width", f"{c['weight_width']} / {c['acc_width']} / "
                                                      f"{c['mem_width']} bits"),
            ("frac_bits", f"{c['frac_bits']} ({choices['frac_bits']['reason']})"),
            ("θ", f"theta_int = {c['theta_int']} = {c['theta_int'] / 2 ** c['frac_bits']}"),
            ("λ", f"leak_int / 2^leak_bits = {c['leak_int']} / 2^{c['leak_bits']} = "
                  f"{c['leak_int'] / 2 ** c['leak_bits']}"),
            ("reset, fire", f"{c['reset']}, {c['fire']}"),
            ("weight buffer", f"{c['weight_rows']} rows × {c['array']} × {c['weight_width']} bits "
                              f"(all weights loaded once: static)"),
            ("membrane buffer", f"{c['mem_rows']} rows × {c['array'] // c['groups']} × "
                                f"{c['mem_width']} bits")]
    lines = ["| parameter | value |", "|---|---|"]
    lines += [f"| {k} | {_cell(v)} |" for k, v in rows]
    return "\n".join(lines)


def plot(float_rows: list, quant_rows: list, rtl_rows: list) -> bytes:
    """PNG of two panels: accuracy (float / fixed / RTL) and LIF memory (fwd / bwd) per scheme."""
    import io

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    schemes = [r["scheme"] for r in float_rows]
    x = np.arange(len(schemes))
    fixed = {r["scheme"]: r["fixed_acc"] for r in quant_rows}
    rtl = {r["scheme"]: r["rtl_acc"] for r in rtl_rows}
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.2))
    w = 0.26
    series = [("float", [r["acc"] for r in float_rows], "#4c72b0"),
              ("fixed point", [fixed.get(s) for s in schemes], "#dd8452"),
              ("RTL (Verilator)", [rtl.get(s) for s in schemes], "#55a868")]
    lo = min(v for _, vals, _ in series for v in vals if v is not None)
    for k, (label, vals, color) in enumerate(series):
        xs = [xi + (k - 1) * w for xi, v in zip(x, vals) if v is not None]
        ys = [100 * v for v in vals if v is not None]
        bars = a1.bar(xs, ys, w, label=label, color=color)
        a1.bar_label(bars, fmt="%.1f", fontsize=7, padding=1)
    a1.set_xticks(x, schemes)
    a1.set_ylim(max(0, 100 * lo - 8), 100.5)
    a1.set_ylabel("test accuracy (%)")
    a1.set_title("8×8 digits: test accuracy")
    a1.legend(loc="lower left", fontsize=8)
    a1.grid(axis="y", alpha=0.3)
    fwd = [r["fwd_kib_32"] for r in float_rows]
    bwd = [r["bwd_kib_32"] for r in float_rows]
    b1 = a2.bar(x - 0.2, fwd, 0.4, label="forward", color="#8172b3")
    b2 = a2.bar(x + 0.2, bwd, 0.4, label="backward (training)", color="#937860")
    a2.bar_label(b1, fmt="%.2f", fontsize=7, padding=1)
    a2.bar_label(b2, fmt="%.2f", fontsize=7, padding=1)
    a2.set_xticks(x, schemes)
    a2.set_ylabel("LIF membrane memory per sample (KiB, 32-bit words)")
    a2.set_title("LIF memory (golden/memory.py)")
    a2.legend(fontsize=8)
    a2.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    return buf.getvalue()
