"""Tests of flow/attribution.py: cells to blocks, gate equivalents, LIF share
and consistency checks on canned Yosys output, and once on a real tiny
netlist (ARRAY=4, Yosys, a few seconds)."""

from __future__ import annotations

import copy

import pytest

from flow import attribution as at
from flow.synth import Memory, ModuleStats, synthesize
from tests.yosys_canned import (TOP, canned_cfg, canned_manifest, canned_result, emit_tiny,
                                needs_yosys)


def test_gate_equivalents_known_and_unknown():
    assert at.gate_equivalents("$_NAND_") == 1.0
    assert at.gate_equivalents("$_DFF_P_") == pytest.approx(4.67)
    assert at.gate_equivalents("$_SDFFE_PP0P_") == pytest.approx(4.67 + 1 + 2)
    with pytest.raises(at.ConsistencyError):
        at.gate_equivalents("$_FOO_")


def test_block_of_names():
    assert at.block_of(TOP, TOP) == "ctrl"
    assert at.block_of(f"{TOP}.sequencer", TOP) == "ctrl"
    assert at.block_of(f"{TOP}.pe_array", TOP) == "pe"
    assert at.block_of(f"{TOP}.lif_stage", TOP) == "memctl"
    assert at.block_of(f"{TOP}.lif_stage.lif_unit_12", TOP) == "lif"
    assert at.block_of(f"{TOP}.membrane_buffer", TOP) == "membuf"
    assert at.block_of(f"{TOP}.weight_buffer", TOP) == "wbuf"
    assert at.block_of(f"{TOP}.surprise", TOP) == "other"


# -------------------------------------------------------------- attribution
def test_attribution_sums_and_instances():
    res = canned_result()
    blocks = at.attribute_blocks(res)
    assert blocks["lif"].instances == 2 and blocks["lif"].cells == 20
    assert blocks["pe"].cells == 30 and blocks["pe"].flip_flops == 10
    assert blocks["memctl"].cells == 12 and blocks["ctrl"].cells == 1
    assert blocks["membuf"].memory_bits == 64 and blocks["membuf"].cells == 0
    assert sum(b.cells for b in blocks.values()) == res.total_gates() == 63
    assert at.lif_share(blocks) == pytest.approx(20 / 50)
    # 20 XOR at 2.33 GE; 20 MUX at 2.33 + 10 SDFFE at 7.67
    assert blocks["lif"].ge == pytest.approx(46.6)
    assert blocks["pe"].ge == pytest.approx(46.6 + 76.7)
    assert blocks["pe"].depth == 7


def test_attribution_sum_catches_a_yosys_total_mismatch():
    res = canned_result()
    res.yosys_total_cells += 1
    with pytest.raises(at.ConsistencyError, match="Yosys counts"):
        at.attribute_blocks(res)


def test_per_unit_and_share_with_controller():
    cfg = canned_cfg()
    blocks = at.attribute_blocks(canned_result())
    pu = at.per_unit(blocks, cfg)
    assert pu["lif_unit_ge"] == pytest.approx(46.6 / 2)
    assert pu["pe_ge"] == pytest.approx(123.3 / 4)
    lif = 46.6 + blocks["memctl"].ge
    assert at.lif_share_with_controller(blocks) == pytest.approx(lif / (lif + 123.3))


# ------------------------------------------------------------- consistency
def _canned_with_weight_mem(cfg):
    res = canned_result()
    # the memory and its registered read data (rd_q: one row of flip-flops)
    row = cfg.array * cfg.weight_width
    res.modules[f"{TOP}.weight_buffer"] = ModuleStats(f"{TOP}.weight_buffer",
                                                      {"$mem_v2": 1, "$_DFF_P_": row})
    res.modules[TOP].cells[f"{TOP}.weight_buffer"] = 1
    res.memories.append(Memory(f"{TOP}.weight_buffer", "weight_mem", row, cfg.weight_rows, 1, 1))
    res.yosys_total_cells += 1 + row
    return res


def test_consistency_passes_on_matching_netlist():
    cfg = canned_cfg()
    res = _canned_with_weight_mem(cfg)
    checks = at.check_consistency(cfg, canned_manifest(cfg), res, at.attribute_blocks(res))
    assert any("LIF units: netlist 2" in c for c in checks)


def test_consistency_catches_weight_buffer_flip_flops_beyond_its_read_register():
    cfg = canned_cfg()
    res = _canned_with_weight_mem(cfg)
    res.modules[f"{TOP}.weight_buffer"].cells["$_DFF_P_"] += 8
    res.yosys_total_cells += 8
    with pytest.raises(at.ConsistencyError, match="weight_buffer: 40 flip-flops, expected 32"):
        at.check_consistency(cfg, canned_manifest(cfg), res, at.attribute_blocks(res))


def test_consistency_catches_wrong_lif_count():
    cfg = canned_cfg()
    res = _canned_with_weight_mem(cfg)
    del res.modules[f"{TOP}.lif_stage"].cells[f"{TOP}.lif_stage.lif_unit_1"]
    del res.modules[f"{TOP}.lif_stage.lif_unit_1"]
    res.yosys_total_cells -= 10
    with pytest.raises(at.ConsistencyError, match="LIF units: netlist 1"):
        at.check_consistency(cfg, canned_manifest(cfg), res, at.attribute_blocks(res))


def test_consistency_catches_wrong_manifest_lif_units():
    cfg = canned_cfg()
    res = _canned_with_weight_mem(cfg)
    man = canned_manifest(cfg)
    man["lif_units"] = 4
    with pytest.raises(at.ConsistencyError, match="manifest 4"):
        at.check_consistency(cfg, man, res, at.attribute_blocks(res))


def test_consistency_catches_wrong_memory_bits_and_flattened_memory():
    cfg = canned_cfg()
    res = _canned_with_weight_mem(cfg)
    res.memories[0] = Memory(f"{TOP}.membrane_buffer", "membrane_mem", 16, 2, 2, 1)
    with pytest.raises(at.ConsistencyError, match="membrane_buffer: netlist memory"):
        at.check_consistency(cfg, canned_manifest(cfg), res, at.attribute_blocks(res))
    res = _canned_with_weight_mem(cfg)
    mb = res.memories[0]
    res.memories[0] = Memory(mb.module, mb.name, mb.width, mb.size, 2, 1)   # a 2nd read port
    with pytest.raises(at.ConsistencyError, match="2 read / 1 write ports, manifest 1 / 1"):
        at.check_consistency(cfg, canned_manifest(cfg), res, at.attribute_blocks(res))
    res = _canned_with_weight_mem(cfg)
    res.memories = [m for m in res.memories if m.module != f"{TOP}.membrane_buffer"]
    res.modules[f"{TOP}.membrane_buffer"].cells = {"$_DFF_P_": 64}
    res.yosys_total_cells += 63
    with pytest.raises(at.ConsistencyError, match="0 memories in the netlist"):
        at.check_consistency(cfg, canned_manifest(cfg), res, at.attribute_blocks(res))


# ---------------------------------------------------------- real netlist
@needs_yosys
def test_yosys_tiny_build_attribution_and_checks(tmp_path):
    cfg, v, manifest = emit_tiny(tmp_path)
    res = synthesize(v, TOP, tmp_path / "cache")
    blocks = at.attribute_blocks(res)
    assert sum(b.cells for b in blocks.values()) == res.total_gates()
    assert blocks["lif"].instances == cfg.lif_units == 2
    assert blocks["pe"].flip_flops == manifest["accumulator_bits"]
    assert blocks["membuf"].memory_bits == manifest["membrane_buffer"]["bits"]
    assert blocks["wbuf"].memory_bits == manifest["weight_buffer"]["bits"]
    assert blocks["lif"].depth > 0
    at.check_consistency(cfg, manifest, res, blocks)
    # a wrong manifest is caught on the real netlist too
    bad = copy.deepcopy(manifest)
    bad["membrane_buffer"]["row_bits"] += 1
    with pytest.raises(at.ConsistencyError):
        at.check_consistency(cfg, bad, res, blocks)
