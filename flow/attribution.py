"""Netlist attribution: Yosys cells to report blocks, area weights, checks.

Input is a :class:`flow.synth.SynthResult` of the ``lif_pe_array`` hierarchy.
:func:`attribute_blocks` assigns every generic cell of every module instance
to exactly one block of :data:`BLOCKS` by module name (:func:`block_of`);
:func:`check_consistency` compares the netlist with the configuration and
the emitted manifest. Both raise :class:`ConsistencyError` on a mismatch.
Method: ``docs/report.md``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from golden.config import HwConfig
from golden.errors import ProjectError

from .synth import is_flip_flop, is_gate

__all__ = ["BLOCKS", "GATE_EQUIVALENTS", "ConsistencyError", "BlockCost", "block_of",
           "attribute_blocks", "check_consistency", "gate_equivalents", "lif_share",
           "lif_share_with_controller", "per_unit"]

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


def gate_equivalents(cell_type: str) -> float:
    """Area of one generic cell in GE (see :data:`GATE_EQUIVALENTS`)."""
    if cell_type in GATE_EQUIVALENTS:
        return GATE_EQUIVALENTS[cell_type]
    if is_flip_flop(cell_type):
        m = re.match(r"^\$_([A-Z]+)_", cell_type)
        kind = m.group(1) if m else "DFF"
        return _DFF_GE + (1.0 if kind.startswith("S") or "SR" in kind else 0.0) \
            + (2.0 if kind.endswith("E") else 0.0)
    raise ConsistencyError(f"no gate-equivalent figure for cell type {cell_type}")


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
    depth: int = 0            # deepest leaf-module logic depth in the block


def attribute_blocks(res) -> dict:
    """{block key: BlockCost} of a :class:`flow.synth.SynthResult`.

    Every generic cell of every module instance lands in exactly one block,
    so the block cells sum to ``res.total_gates()`` (checked here)."""
    blocks = {k: BlockCost() for k in BLOCKS}
    inst = res.instances()
    for name, n in inst.items():
        st = res.modules[name]
        b = blocks[block_of(name, res.top)]
        b.instances += n
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
        if len(mems) != want.get("instances", 1):
            fails.append(f"{mod}: {len(mems)} memories in the netlist, expected "
                         f"{want.get('instances', 1)}")
            continue
        m = mems[0]
        # 1-row buffers are emitted 2 deep (docs/generator.md): the spare row is unused.
        depth = max(2, want["rows"])
        check(m.width == want["row_bits"] and m.size == depth,
              f"{mod}: netlist memory {m.size} x {m.width} = {m.bits} bits, manifest "
              f"{want['rows']} x {want['row_bits']} = {want['bits']} bits")
        if "read_ports" in want:
            check((m.rd_ports, m.wr_ports) == (want["read_ports"], want["write_ports"]),
                  f"{mod}: netlist memory has {m.rd_ports} read / {m.wr_ports} write ports, "
                  f"manifest {want['read_ports']} / {want['write_ports']}")
        regs = want.get("register_bits", 0)
        check(blocks[key].flip_flops == regs,
              f"{mod}: {blocks[key].flip_flops} flip-flops, expected {regs} (the memory kept as "
              f"memory, plus the manifest's register_bits)")
    stray = [m for m in res.memories
             if m.module not in (f"{top}.membrane_buffer", f"{top}.weight_buffer")]
    check(not stray, f"memories outside the buffers: {len(stray)}")
    if fails:
        raise ConsistencyError(f"{cfg.name}: " + "; ".join(fails))
    return done
