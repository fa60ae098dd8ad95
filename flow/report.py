"""Hardware cost report: area by block, LIF share, buffers, depth, cycles vs GROUPS.

``python -m gen.report`` (= ``make report``) sweeps ``--array`` x ``--groups``
(default ARRAY=128, GROUPS 1,2,4,8; other fields are :class:`HwConfig`
defaults), and for every build

1. emits the Verilog and manifest (:func:`tb.build.emit_rtl`, cached by
   generator hash under ``sim_build/rtl/``);
2. synthesizes it with Yosys (:mod:`gen.synth`: generic gates, hierarchy and
   memories kept; cached under ``build/report_cache/``), ``--jobs`` at a time;
3. attributes cells to blocks (:data:`BLOCKS`) and checks the netlist against
   the configuration (:func:`check_consistency`; a failure stops the report
   with exit status 1);
4. measures tile throughput in cocotb with and without LIF/accumulate overlap
   (:func:`tb.throughput.measure`, unless ``--no-sim``);

then adds the LIF membrane-memory table of VGG16/ResNet19
(:mod:`golden.memory`) and writes ``<out-dir>/hardware_report.md``,
``<out-dir>/area_by_block.png``, ``<out-dir>/memory_by_scheme.png`` and
``<out-dir>/hardware_report.json`` (all atomically). Progress lines go to
stderr. Bad options print one ``error: ...`` line and exit with status 2
before anything is written. Method: ``docs/report.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from golden.config import ConfigError, HwConfig
from golden.errors import ProjectError

__all__ = ["BLOCKS", "GATE_EQUIVALENTS", "ConsistencyError", "BlockCost", "block_of",
           "attribute_blocks", "check_consistency", "gate_equivalents", "lif_share",
           "lif_share_with_controller", "per_unit",
           "BuildReport", "memory_rows", "render_markdown", "main"]

REPO = Path(__file__).resolve().parent.parent
DEFAULT_ARRAYS = (128,)
DEFAULT_GROUPS = (1, 2, 4, 8)
MEMORY_ARCHS = ("vgg16", "resnet19")
MEMORY_SIZES = (32, 64, 224)
MEMORY_SCHEMES = ("baseline", "L", "C#2", "L+C#2", "C#4", "C#8")
MEMORY_T = 5
HEARTBEAT_S = 30.0                  # progress line while long jobs run

#: Report blocks in display order: key -> label.
BLOCKS = {
    "pe": "PE accumulators",
    "lif": "LIF units",
    "memctl": "membrane buffer controller",
    "membuf": "membrane buffer",
    "wbuf": "weight buffer",
    "ctrl": "control/sequencer",
    "other": "other",
}

#: Approximate area of each Yosys generic cell in NAND2 gate equivalents (GE),
#: typical of a standard-cell library; storage cells: a D flip-flop is 4.67 GE,
#: + 1 GE for a synchronous reset/set (AND/OR in front), + 2 GE for an enable
#: (a MUX in front). Used only to weigh cells against each other.
GATE_EQUIVALENTS = {
    "$_NOT_": 0.67, "$_BUF_": 1.0, "$_NAND_": 1.0, "$_NOR_": 1.0,
    "$_AND_": 1.33, "$_OR_": 1.33, "$_ANDNOT_": 1.33, "$_ORNOT_": 1.33,
    "$_XOR_": 2.33, "$_XNOR_": 2.33, "$_MUX_": 2.33, "$_NMUX_": 2.33,
    "$_AOI3_": 1.33, "$_OAI3_": 1.33, "$_AOI4_": 1.67, "$_OAI4_": 1.67,
}
_DFF_GE = 4.67


class ConsistencyError(ProjectError, RuntimeError):
    """The synthesized netlist disagrees with the configuration or manifest."""


class ReportError(ProjectError, ValueError):
    """A bad report option (exit status 2)."""


def gate_equivalents(cell_type: str) -> float:
    """Area of one generic cell in GE (see :data:`GATE_EQUIVALENTS`)."""
    from .synth import is_flip_flop
    if cell_type in GATE_EQUIVALENTS:
        return GATE_EQUIVALENTS[cell_type]
    if is_flip_flop(cell_type):
        m = re.match(r"^\$_([A-Z]+)_", cell_type)
        kind = m.group(1) if m else "DFF"
        return _DFF_GE + (1.0 if kind.startswith("S") or "SR" in kind else 0.0) \
            + (2.0 if kind.endswith("E") else 0.0)
    raise ConsistencyError(f"no gate-equivalent figure for cell type {cell_type}")


# ------------------------------------------------------------ attribution
def block_of(module: str, top: str) -> str:
    """Report block of a module of the ``lif_pe_array`` hierarchy."""
    if module == top or module == f"{top}.sequencer":
        return "ctrl"
    rest = module[len(top) + 1:] if module.startswith(top + ".") else None
    if rest == "pe_array":
        return "pe"
    if rest == "lif_stage":
        return "memctl"
    if rest is not None and re.fullmatch(r"lif_stage\.lif_unit_\d+", rest):
        return "lif"
    if rest == "membrane_buffer":
        return "membuf"
    if rest == "weight_buffer":
        return "wbuf"
    return "other"


@dataclass
class BlockCost:
    """Cost of one report block, summed over its module instances."""

    cells: int = 0            # generic gates + flip-flops (memories excluded)
    flip_flops: int = 0
    ge: float = 0.0           # gate equivalents of those cells
    memory_bits: int = 0
    memories: int = 0
    instances: int = 0        # module instances attributed to the block
    modules: list = field(default_factory=list)
    depth: int = 0            # deepest leaf-module logic depth in the block


def attribute_blocks(res) -> dict:
    """{block key: BlockCost} of a :class:`gen.synth.SynthResult`.

    Every generic cell of every module instance lands in exactly one block,
    so the block cells sum to ``res.total_gates()`` (checked here)."""
    from .synth import is_flip_flop, is_gate
    blocks = {k: BlockCost() for k in BLOCKS}
    inst = res.instances()
    for name, n in inst.items():
        st = res.modules[name]
        b = blocks[block_of(name, res.top)]
        b.instances += n
        b.modules.append(name)
        for t, c in st.cells.items():
            if is_gate(t):
                b.cells += c * n
                b.ge += gate_equivalents(t) * c * n
                if is_flip_flop(t):
                    b.flip_flops += c * n
        b.depth = max(b.depth, res.module_depth.get(name, 0))
    for mem in res.memories:
        b = blocks[block_of(mem.module, res.top)]
        b.memory_bits += mem.bits * inst.get(mem.module, 0)
        b.memories += inst.get(mem.module, 0)
    total = sum(b.cells for b in blocks.values())
    if total != res.total_gates():
        raise ConsistencyError(f"block cells sum to {total}, netlist has {res.total_gates()}")
    if res.yosys_total_cells >= 0 and total + res.total_memory_cells() != res.yosys_total_cells:
        raise ConsistencyError(f"block cells + memories = {total + res.total_memory_cells()}, "
                               f"Yosys counts {res.yosys_total_cells} cells in the hierarchy")
    for b in blocks.values():
        b.ge = round(b.ge, 2)
    return blocks


def lif_share(blocks: dict, measure: str = "cells") -> float:
    """LIF-unit cost / (PE accumulator cost + LIF-unit cost), the paper's
    "LIF share of PE compute"; ``measure`` is ``cells`` or ``ge``."""
    lif, pe = getattr(blocks["lif"], measure), getattr(blocks["pe"], measure)
    return lif / (lif + pe) if lif + pe else 0.0


def lif_share_with_controller(blocks: dict) -> float:
    """Like :func:`lif_share` in GE, with the membrane buffer controller (carry
    register, V select, output register) counted as LIF cost: closer to
    SATA's per-PE LIF, which includes the membrane and threshold registers."""
    lif = blocks["lif"].ge + blocks["memctl"].ge
    return lif / (lif + blocks["pe"].ge) if lif + blocks["pe"].ge else 0.0


def per_unit(blocks: dict, cfg: HwConfig) -> dict:
    """GE per LIF unit and per PE accumulator (both banks) and their ratio."""
    lif = blocks["lif"].ge / max(1, blocks["lif"].instances)
    pe = blocks["pe"].ge / cfg.array
    return {"lif_unit_ge": lif, "pe_ge": pe, "ratio": lif / pe if pe else 0.0}


def check_consistency(cfg: HwConfig, manifest: dict, res, blocks: dict) -> list:
    """Check the netlist against ``cfg`` and the manifest; return the checks
    made (one line each). Raises :class:`ConsistencyError` listing every
    failed check."""
    fails, done = [], []

    def check(ok, text):
        (done if ok else fails).append(text)

    top = res.top
    n_lif = blocks["lif"].instances
    check(n_lif == cfg.lif_units == manifest["lif_units"],
          f"LIF units: netlist {n_lif}, ARRAY/GROUPS {cfg.lif_units}, "
          f"manifest {manifest['lif_units']}")
    for key, mod, mkey in (("membuf", "membrane_buffer", "membrane_buffer"),
                           ("wbuf", "weight_buffer", "weight_buffer")):
        mems = [m for m in res.memories if m.module == f"{top}.{mod}"]
        want = manifest[mkey]
        if len(mems) != 1:
            fails.append(f"{mod}: {len(mems)} memories in the netlist, expected 1")
            continue
        m = mems[0]
        # 1-row buffers are emitted 2 deep (docs/generator.md): the spare row is unused.
        depth = max(2, want["rows"])
        check(m.width == want["row_bits"] and m.size == depth,
              f"{mod}: netlist memory {m.size} x {m.width} = {m.bits} bits, manifest "
              f"{want['rows']} x {want['row_bits']} = {want['bits']} bits")
        check(blocks[key].flip_flops == 0,
              f"{mod}: {blocks[key].flip_flops} flip-flops (memory kept as memory)")
    stray = [m for m in res.memories
             if m.module not in (f"{top}.membrane_buffer", f"{top}.weight_buffer")]
    check(not stray, f"memories outside the buffers: {len(stray)}")
    if fails:
        raise ConsistencyError(f"{cfg.name}: " + "; ".join(fails))
    return done


# ------------------------------------------------------------ one build
@dataclass
class BuildReport:
    """Everything the report shows for one configuration."""

    cfg: HwConfig
    manifest: dict
    synth: object = None          # gen.synth.SynthResult
    blocks: dict = None
    checks: list = None
    throughput: list = None
    verilog: object = None        # path of the emitted Verilog

    def as_dict(self) -> dict:
        d = {"config": self.cfg.to_dict(), "name": self.cfg.name,
             "lif_units": self.manifest["lif_units"],
             "membrane_buffer_bits": self.manifest["membrane_buffer"]["bits"],
             "weight_buffer_bits": self.manifest["weight_buffer"]["bits"],
             "lif_cycles_per_tile": self.manifest["cycles"]["lif_cycles_per_tile"],
             "checks": self.checks, "throughput": self.throughput}
        if self.synth is not None:
            d["synth"] = {"yosys": self.synth.yosys_version, "key": self.synth.key,
                          "seconds": self.synth.seconds, "depth": self.synth.depth,
                          "depth_from": self.synth.depth_from, "depth_to": self.synth.depth_to,
                          "total_cells": self.synth.total_gates(),
                          "flip_flops": self.synth.total_flip_flops()}
            d["blocks"] = {k: {kk: vv for kk, vv in vars(b).items() if kk != "modules"}
                           for k, b in self.blocks.items()}
            d["lif_share_cells"] = lif_share(self.blocks, "cells")
            d["lif_share_ge"] = lif_share(self.blocks, "ge")
            d["lif_share_with_controller_ge"] = lif_share_with_controller(self.blocks)
            d["per_unit"] = per_unit(self.blocks, self.cfg)
        return d


# ------------------------------------------------------------ memory table
def memory_rows(mem_width: int) -> list:
    """golden.memory rows for :data:`MEMORY_ARCHS` x :data:`MEMORY_SIZES`."""
    from golden.memory import memory_table
    rows = []
    for arch in MEMORY_ARCHS:
        for size in MEMORY_SIZES:
            rows += memory_table(arch, size, MEMORY_T, MEMORY_SCHEMES, mem_width)
    return rows


# ------------------------------------------------------------ rendering
def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _fmt_bits(b: int) -> str:
    return f"{b:,} ({b / 8192:.1f} KiB)"


def render_markdown(reports: list, mem_rows: list, args_line: str) -> str:
    """The whole ``hardware_report.md`` text."""
    from golden.memory import markdown as mem_markdown

    synthed = [r for r in reports if r.synth is not None]
    lines = ["# Hardware cost report: shared LIF units (C#N) vs GROUPS", "",
             f"Generated by `python -m gen.report{args_line}`. Method, caveats and the",
             "meaning of every column: `docs/report.md`. All builds use the `HwConfig`",
             "defaults except ARRAY and GROUPS "
             f"({_cfg_summary(reports[0].cfg)}).", ""]
    lines += ["## Per-build figures from the manifest", "",
              "| ARRAY | GROUPS | LIF units | membrane buffer bits | weight buffer bits "
              "| accumulator bits (2 banks) | LIF cycles / tile | events/tile without stall |",
              "|" + "---|" * 8]
    for r in reports:
        mf = r.manifest
        lines.append(f"| {r.cfg.array} | {r.cfg.groups} | {mf['lif_units']} | "
                     f"{mf['membrane_buffer']['bits']:,} | {mf['weight_buffer']['bits']:,} | "
                     f"{mf['accumulator_bits']:,} | {mf['cycles']['lif_cycles_per_tile']} | "
                     f"≥ {mf['cycles']['min_events_no_stall']} |")
    lines.append("")
    if synthed:
        ver = synthed[0].synth.yosys_version
        lines += [f"Synthesis: {ver}, generic gates (`synth -run begin:fine`, then `techmap`,",
                  "`abc -fast`; no `memory_map`), hierarchy kept; memories counted in bits.",
                  "Cells = generic gates + flip-flops (1 per bit). GE = NAND2 gate",
                  "equivalents (approximate, `gen/report.py` `GATE_EQUIVALENTS`).", "",
                  "## Summary", "",
                  "| ARRAY | GROUPS | LIF units | PE acc cells | LIF-unit cells | LIF share (cells) "
                  "| LIF share (GE) | total cells | flip-flops | total GE | membrane buffer bits "
                  "| weight buffer bits | logic depth | LIF unit depth | LIF cycles / tile |",
                  "|" + "---|" * 15]
        for r in synthed:
            b = r.blocks
            lif_depth = max([d for m, d in r.synth.module_depth.items()
                             if block_of(m, r.synth.top) == "lif"] or [0])
            lines.append(
                f"| {r.cfg.array} | {r.cfg.groups} | {b['lif'].instances} | {b['pe'].cells:,} | "
                f"{b['lif'].cells:,} | **{_pct(lif_share(b, 'cells'))}** | {_pct(lif_share(b, 'ge'))} | "
                f"{r.synth.total_gates():,} | {r.synth.total_flip_flops():,} | "
                f"{sum(x.ge for x in b.values()):,.0f} | {b['membuf'].memory_bits:,} | "
                f"{b['wbuf'].memory_bits:,} | {r.synth.depth} | {lif_depth} | "
                f"{r.manifest['cycles']['lif_cycles_per_tile']} |")
        lines += ["", "LIF share with the membrane buffer controller counted as LIF (GE; "
                  "closer to SATA's LIF, which includes the membrane register) and per-unit "
                  "areas (paper, SATA: LIF ≈ 129 µm² vs spike-accumulate ≈ 97 µm² per PE, "
                  "ratio 1.33):", "",
                  "| ARRAY | GROUPS | LIF share incl. controller (GE) | GE per LIF unit "
                  "| GE per PE accumulator (2 banks) | LIF unit / PE |", "|" + "---|" * 6]
        for r in synthed:
            pu = per_unit(r.blocks, r.cfg)
            lines.append(f"| {r.cfg.array} | {r.cfg.groups} | "
                         f"{_pct(lif_share_with_controller(r.blocks))} | {pu['lif_unit_ge']:.0f} | "
                         f"{pu['pe_ge']:.0f} | {pu['ratio']:.2f} |")
        lines += ["", "Paper (section 5.3.9, SATA model, 128 PEs): LIF share of PE compute "
                  "61.6 % at the baseline, 28.6 % at C#4 (per-PE LIF ≈ 129 µm², "
                  "spike-accumulate ≈ 97 µm²). LIF share = LIF-unit cost / (PE accumulator "
                  "cost + LIF-unit cost).", "",
                  "![area by block](area_by_block.png)", "",
                  "## Cells per block", "",
                  "Cells (flip-flops) [GE] per block; memories in bits. The membrane buffer "
                  "controller is the LIF stage without its LIF units (group sequencer, V "
                  "select, carry register, output register).", "",
                  "| ARRAY | GROUPS | " + " | ".join(BLOCKS[k] for k in BLOCKS if k != "other")
                  + " | other | sum of blocks | Yosys total (incl. memories) |",
                  "|" + "---|" * (len(BLOCKS) + 4)]
        for r in synthed:
            cells = []
            for k in BLOCKS:
                x = r.blocks[k]
                cell = f"{x.cells:,} ({x.flip_flops:,}) [{x.ge:,.0f}]"
                if x.memory_bits:
                    cell += f" + {x.memory_bits:,} mem bits"
                cells.append(cell)
            lines.append(f"| {r.cfg.array} | {r.cfg.groups} | " + " | ".join(cells)
                         + f" | {sum(x.cells for x in r.blocks.values()):,} | "
                         f"{r.synth.yosys_total_cells:,} |")
        lines += ["", "## Timing estimate", "",
                  "Logic depth = longest topological path in generic 2-input gate / MUX "
                  "levels between flip-flops, memories and ports (Yosys `ltp -noff` on the "
                  "flattened netlist, memories excluded); per block the deepest leaf module. "
                  "Not a delay: no cell library, no wires.", "",
                  "| ARRAY | GROUPS | design depth | path from | path to | PE acc | LIF unit | "
                  "control/sequencer |", "|" + "---|" * 8]
        for r in synthed:
            b = r.blocks
            lines.append(f"| {r.cfg.array} | {r.cfg.groups} | {r.synth.depth} | "
                         f"`{r.synth.depth_from}` | `{r.synth.depth_to}` | {b['pe'].depth} | "
                         f"{b['lif'].depth} | {b['ctrl'].depth} |")
    tp = [r for r in reports if r.throughput]
    lines += ["", "## Throughput (simulation)", ""]
    if tp:
        sim = tp[0].throughput[0]["sim"]
        tiles = tp[0].throughput[0]["tiles"]
        lines += [f"Measured in cocotb on {sim} (`tb/throughput.py`): one CHAINED layer of "
                  f"{tiles} tiles of E EVENTs + TILE, `out__ready` = 1. *With overlap*: "
                  "commands stream back to back (LIF phase of tile j overlaps accumulation of "
                  "tile j+1). *Without*: the host waits for `busy == 0` after each TILE. "
                  "Period = steady-state cycles per tile (second half of the layer); "
                  "cycles/tile = first command to last beat, divided by the tiles. "
                  "Formula (docs/interface.md): max(E+1, N+1) with overlap.", "",
                  "| ARRAY | GROUPS | E | period with overlap | formula | period without "
                  "| speed-up | cycles/tile with | cycles/tile without |", "|" + "---|" * 9]
        for r in tp:
            by = {(x["events"], x["overlap"]): x for x in r.throughput}
            for e in sorted({x["events"] for x in r.throughput}):
                w, wo = by[(e, True)], by[(e, False)]
                lines.append(f"| {r.cfg.array} | {r.cfg.groups} | {e} | {w['period']:g} | "
                             f"{w['expected_period']} | {wo['period']:g} | "
                             f"{wo['period'] / w['period']:.2f}× | {w['cycles_per_tile']:.2f} | "
                             f"{wo['cycles_per_tile']:.2f} |")
    else:
        lines.append("Not measured (`--no-sim`).")
    lines += ["", "## Consistency checks (netlist vs configuration vs manifest)", ""]
    for r in synthed:
        lines.append(f"* `{r.cfg.name}`: " + "; ".join(f"{c} ✓" for c in r.checks))
    if not synthed:
        lines.append("Not made (`--no-synth`).")
    lines += ["", "## LIF membrane memory (golden.memory)", "",
              f"One sample, T = {MEMORY_T}, MiB (2^20 B); fwd = membranes alive between LIF "
              "steps; bwd = plain BPTT for the baseline, reversible backward (paper §4.3) for "
              "the shared schemes, as in the paper's Table 1. 32-bit columns count as the "
              f"paper; the {mem_rows[0].mem_width}-bit columns use the hardware membrane width.",
              "",
              "Architectures follow the authors' released code (docs/golden.md §3): VGG16 "
              "(stage 2 with 256 channels) and ResNet19 (one L block per stage). They differ "
              "from the paper's accounting for L: the paper's VGG16 L / L+C#2 figures are "
              "those of the released L-sharing VGG16 (128 channels in stage 2), and its "
              "ResNet19 L keeps two membranes per stage instead of one. So compare ratios to "
              "the baseline, not absolute L values: C#N gives exactly 1/N, L+C#2 = L/2, "
              "and the baseline backward = 5 × forward, as in the paper.", "",
              "### Ratios to the baseline (forward)", "",
              "| arch | input | " + " | ".join(MEMORY_SCHEMES) + " |",
              "|" + "---|" * (len(MEMORY_SCHEMES) + 2)]
    for arch in MEMORY_ARCHS:
        for size in MEMORY_SIZES:
            rs = {r.scheme: r for r in mem_rows if r.arch == arch and r.input_size == size}
            lines.append(f"| {arch} | {size} | " + " | ".join(
                f"{rs[s].fwd_ratio:.3f}" for s in MEMORY_SCHEMES) + " |")
    lines += ["", "### Ratios compared with the paper's Table 1 (forward, to the baseline)", "",
              "| arch | input | scheme | paper | ours | note |", "|---|---|---|---|---|---|"]
    lines += paper_ratio_rows(mem_rows)
    lines += ["", "### Full table", "", mem_markdown(mem_rows), "",
              "![memory by scheme](memory_by_scheme.png)", ""]
    return "\n".join(lines)


def paper_ratio_rows(mem_rows: list) -> list:
    """Markdown rows: forward memory / baseline, paper Table 1 vs ours, for the
    schemes Table 1 has (baseline, L, C#2, L+C#2)."""
    from golden.memory import PAPER_TABLE1, memory_table
    out = []
    for arch in MEMORY_ARCHS:
        for size in MEMORY_SIZES:
            paper = PAPER_TABLE1.get((arch, size))
            if not paper:
                continue
            ours = {r.scheme: r for r in mem_rows if r.arch == arch and r.input_size == size}
            ls = {}
            if arch == "vgg16":
                ls = {r.scheme: r for r in memory_table("vgg16-ls", size, MEMORY_T,
                                                        ("baseline", "L", "L+C#2"))}
            for scheme in ("L", "C#2", "L+C#2"):
                if scheme not in paper or scheme not in ours:
                    continue
                pr = paper[scheme][0] / paper["baseline"][0]
                note = ""
                if scheme.startswith("L") and ls:
                    note = (f"released L-sharing VGG16 (stage 2: 128 ch): "
                            f"{ls[scheme].fwd_ratio:.3f}; the paper divides its L figure by "
                            f"the other VGG16's baseline")
                elif scheme.startswith("L") and arch == "resnet19":
                    note = ("the paper's L figure equals two membranes per stage "
                            "(docs/golden.md); the released code keeps one")
                out.append(f"| {arch} | {size} | {scheme} | {pr:.3f} | "
                           f"{ours[scheme].fwd_ratio:.3f} | {note} |")
    return out


def _cfg_summary(cfg: HwConfig) -> str:
    return (f"weights {cfg.weight_width} b, accumulators {cfg.acc_width} b, membranes "
            f"{cfg.mem_width} b, λ = {cfg.leak:g}, θ = {cfg.theta:g}, {cfg.reset} reset, "
            f"weight rows {cfg.weight_rows}, membrane rows {cfg.mem_rows}")


# ------------------------------------------------------------ plots
def plot_area(reports: list, path: Path) -> None:
    """Stacked GE per block for each build + LIF share; written atomically."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rs = [r for r in reports if r.synth is not None]
    labels = [f"A={r.cfg.array}\nN={r.cfg.groups}" for r in rs]
    keys = [k for k in BLOCKS if any(r.blocks[k].cells for r in rs)]
    colors = {"pe": "#4C72B0", "lif": "#DD8452", "memctl": "#55A868", "membuf": "#8172B3",
              "wbuf": "#937860", "ctrl": "#64B5CD", "other": "#999999"}
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.8), gridspec_kw={"width_ratios": [3, 2]})
    x = range(len(rs))
    bottom = [0.0] * len(rs)
    for k in keys:
        vals = [r.blocks[k].ge / 1000 for r in rs]
        ax.bar(x, vals, bottom=bottom, label=BLOCKS[k], color=colors[k])
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_xticks(list(x), labels)
    ax.set_ylabel("logic area [kGE] (memories excluded)")
    ax.set_title("Logic area by block")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    arrays = sorted({r.cfg.array for r in rs})
    for a in arrays:
        ra = sorted((r for r in rs if r.cfg.array == a), key=lambda r: r.cfg.groups)
        gx = [r.cfg.groups for r in ra]
        tag = f"A={a}, " if len(arrays) > 1 else ""
        ax2.plot(gx, [100 * lif_share(r.blocks, "cells") for r in ra], "o-",
                 label=f"{tag}LIF units, cells")
        ax2.plot(gx, [100 * lif_share(r.blocks, "ge") for r in ra], "s--",
                 label=f"{tag}LIF units, GE")
        ax2.plot(gx, [100 * lif_share_with_controller(r.blocks) for r in ra], "^:",
                 label=f"{tag}LIF units + controller, GE")
    ax2.plot([1, 4], [61.6, 28.6], "k*", ms=13, label="paper (SATA, 128 PEs)")
    ax2.set_xscale("log", base=2)
    groups = sorted({r.cfg.groups for r in rs} | {1, 4})
    ax2.set_xticks(groups, [str(g) for g in groups])
    ax2.set_xlabel("GROUPS (C#N)")
    ax2.set_ylabel("LIF / (PE acc + LIF) [%]")
    ax2.set_title("LIF share of PE compute")
    ax2.set_ylim(0, 100)
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    _save_fig(fig, path)
    plt.close(fig)


def plot_memory(mem_rows: list, path: Path) -> None:
    """Forward (and baseline backward) LIF memory by scheme, log scale."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(MEMORY_ARCHS), figsize=(12, 5.0), sharey=True)
    width = 0.8 / len(MEMORY_SCHEMES)
    for ax, arch in zip(axes, MEMORY_ARCHS):
        for j, s in enumerate(MEMORY_SCHEMES):
            vals = []
            for size in MEMORY_SIZES:
                r = next(r for r in mem_rows if r.arch == arch and r.input_size == size
                         and r.scheme == s)
                vals.append(r.fwd_mib_32)
            ax.bar([i + (j - (len(MEMORY_SCHEMES) - 1) / 2) * width
                    for i in range(len(MEMORY_SIZES))], vals, width, label=s)
        bwd = [next(r for r in mem_rows if r.arch == arch and r.input_size == size
                    and r.scheme == "baseline").bwd_mib_32 for size in MEMORY_SIZES]
        ax.plot(range(len(MEMORY_SIZES)), bwd, "k_", ms=30, mew=2,
                label=f"baseline backward (BPTT, T={MEMORY_T})")
        ax.set_yscale("log")
        ax.set_xticks(range(len(MEMORY_SIZES)), [f"{s}×{s}" for s in MEMORY_SIZES])
        ax.set_title(f"{arch}: LIF forward memory (32-bit, T={MEMORY_T})")
        ax.grid(axis="y", which="both", alpha=0.3)
    axes[0].set_ylabel("MiB per sample")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8,
               frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    _save_fig(fig, path)
    plt.close(fig)


def _save_fig(fig, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _atomic_write_all(files: dict) -> None:
    tmps = []
    try:
        for path, text in files.items():
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            tmps.append((tmp, path))
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
        for tmp, path in tmps:
            os.replace(tmp, path)
        tmps = []
    finally:
        for tmp, _ in tmps:
            if os.path.exists(tmp):
                os.unlink(tmp)


# ------------------------------------------------------------ CLI
class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"error: {message}\n")


def _int_list(name: str):
    def parse(text: str) -> list:
        try:
            vals = [int(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated integers, got {text!r}") from None
        if not vals:
            raise argparse.ArgumentTypeError("empty list")
        return vals
    parse.__name__ = name
    return parse


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m gen.report",
                description="Synthesize each ARRAY x GROUPS build with Yosys and report cells "
                            "per block, LIF share, buffer bits, logic depth, cycles, measured "
                            "throughput and the LIF memory table (docs/report.md).")
    p.add_argument("--array", type=_int_list("array"), default=list(DEFAULT_ARRAYS),
                   metavar="A[,A...]", help="PE counts (default 128); replaces the default")
    p.add_argument("--groups", type=_int_list("groups"), default=list(DEFAULT_GROUPS),
                   metavar="N[,N...]", help="C#N group counts (default 1,2,4,8); replaces "
                                            "the default. Every N must divide every A.")
    p.add_argument("--jobs", type=int, default=2,
                   help="parallel Yosys runs / simulations (default 2)")
    p.add_argument("--out-dir", default="reports", help="report folder (default reports/)")
    p.add_argument("--cache-dir", default="build/report_cache",
                   help="synthesis cache (default build/report_cache/)")
    p.add_argument("--sim", choices=("icarus", "verilator"), default="verilator",
                   help="simulator for the throughput runs (default verilator; Icarus "
                        "manages only a few cycles per second on a 128-PE build)")
    p.add_argument("--tiles", type=int, default=16, help="tiles per throughput run (default 16)")
    p.add_argument("--no-sim", action="store_true", help="skip the throughput simulations")
    p.add_argument("--no-synth", action="store_true", help="skip Yosys (memory table, "
                                                           "manifest figures and throughput only)")
    p.add_argument("--yosys", default="yosys", help="Yosys executable (default yosys)")
    return p


def _configs(args) -> list:
    cfgs = []
    for a in args.array:
        for g in args.groups:
            try:
                cfgs.append(HwConfig(array=a, groups=g))
            except ConfigError as e:
                msg = str(e)
                opt = "--groups" if msg.startswith("groups") else "--array"
                raise ReportError(f"{opt}: ARRAY={a} GROUPS={g}: {msg}") from None
    return cfgs


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        cfgs = _configs(args)
        if args.jobs < 1:
            raise ReportError(f"--jobs={args.jobs}: must be at least 1")
        if not 4 <= args.tiles:
            raise ReportError(f"--tiles={args.tiles}: must be at least 4")
        bad = [c for c in cfgs if args.tiles > c.mem_rows]
        if bad and not args.no_sim:
            raise ReportError(f"--tiles={args.tiles}: more than mem_rows={bad[0].mem_rows}")
        out = Path(args.out_dir)
        if out.exists() and not out.is_dir():
            raise ReportError(f"--out-dir={args.out_dir}: exists and is not a directory")
        cache = Path(args.cache_dir)
        if cache.exists() and not cache.is_dir():
            raise ReportError(f"--cache-dir={args.cache_dir}: exists and is not a directory")
        if not args.no_synth:
            from .synth import SynthError, yosys_version
            try:
                yosys_version(args.yosys)
            except SynthError as e:
                raise ReportError(f"--yosys: {e}") from None
    except ReportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("error: matplotlib is not installed (pip install -e '.[report]')", file=sys.stderr)
        return 2
    try:
        reports = run(cfgs, args)
    except ConsistencyError as e:
        print(f"error: consistency check failed: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # SynthError, BuildError, ...: one line, no traceback
        print(f"error: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
              file=sys.stderr)
        return 1
    mem = memory_rows(cfgs[0].mem_width)
    out.mkdir(parents=True, exist_ok=True)
    argv_line = "" if argv is None and len(sys.argv) <= 1 else \
        " " + " ".join(sys.argv[1:] if argv is None else argv)
    md = render_markdown(reports, mem, argv_line)
    data = {"builds": [r.as_dict() for r in reports],
            "memory": [r.as_dict() for r in mem]}
    if any(r.synth is not None for r in reports):
        plot_area(reports, out / "area_by_block.png")
    plot_memory(mem, out / "memory_by_scheme.png")
    _atomic_write_all({out / "hardware_report.md": md,
                       out / "hardware_report.json": json.dumps(data, indent=1) + "\n"})
    _log(f"wrote {out / 'hardware_report.md'}")
    print(out / "hardware_report.md")
    return 0


def run(cfgs: list, args) -> list:
    """Emit, synthesize, check and simulate every configuration.

    Yosys runs and throughput simulations share one pool of ``args.jobs``
    workers (Yosys jobs interleaved with simulations); simulations run one at
    a time (a lock), because the simulator builds patch ``os.environ``."""
    import threading

    from tb.build import emit_rtl
    reports = []
    t0 = time.monotonic()
    for i, cfg in enumerate(cfgs, 1):
        _log(f"[emit {i}/{len(cfgs)}] {cfg.name}")
        v, m = emit_rtl(cfg)
        reports.append(BuildReport(cfg, json.loads(Path(m).read_text())))
        reports[-1].verilog = v
    sim_lock = threading.Lock()

    def do_synth(r):
        from .synth import synthesize
        r.synth = synthesize(r.verilog, r.manifest["top"], args.cache_dir, yosys=args.yosys)
        how = "cached" if r.synth.cached else f"{r.synth.seconds:.0f} s"
        return f"[yosys] {r.cfg.name}: {how}, {r.synth.total_gates():,} cells"

    def do_sim(r):
        from tb.throughput import measure
        with sim_lock:
            t = time.monotonic()
            r.throughput = measure(r.cfg, args.sim, tiles=args.tiles)
        return f"[sim {args.sim}] {r.cfg.name}: {time.monotonic() - t:.0f} s"

    tasks = []
    for r in reports:
        if not args.no_synth:
            tasks.append((do_synth, r))
        if not args.no_sim:
            tasks.append((do_sim, r))
    if tasks:
        _log(f"[run] {sum(t[0] is do_synth for t in tasks)} Yosys jobs (about a minute each "
             f"for 128 PEs, cached afterwards) and {sum(t[0] is do_sim for t in tasks)} "
             f"throughput simulations, {args.jobs} at a time")
    running: dict = {}              # task label -> start time (heartbeat lines)

    def tracked(fn, r):
        label = f"{'yosys' if fn is do_synth else 'sim'} {r.cfg.name}"
        running[label] = time.monotonic()
        try:
            return fn(r)
        finally:
            running.pop(label, None)

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        pending = {pool.submit(tracked, fn, r) for fn, r in tasks}
        done = 0
        try:
            while pending:
                finished, pending = wait(pending, timeout=HEARTBEAT_S,
                                         return_when=FIRST_COMPLETED)
                for f in finished:
                    done += 1
                    _log(f"[{done}/{len(tasks)}] {f.result()} "
                         f"({time.monotonic() - t0:.0f} s elapsed)")
                if not finished:
                    now = time.monotonic()
                    _log("  ... running: " + ", ".join(
                        f"{k} ({now - v:.0f} s)" for k, v in sorted(running.items())))
        except BaseException:
            for f in pending:
                f.cancel()
            raise
    if not args.no_synth:
        for r in reports:
            r.blocks = attribute_blocks(r.synth)
            r.checks = check_consistency(r.cfg, r.manifest, r.synth, r.blocks)
    return reports


if __name__ == "__main__":
    sys.exit(main())
