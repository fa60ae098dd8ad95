"""Tests of the hardware cost report: gen/synth.py, gen/report.py, tb/throughput.py.

Parsers and attribution run on canned Yosys output (no tools); the rest
synthesizes / simulates tiny builds (ARRAY=4) and takes a few seconds each.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gen import report
from gen.synth import (Memory, ModuleStats, SynthResult, is_flip_flop, parse_ltp,
                       parse_memories, parse_stat, synthesize)
from golden.config import HwConfig

REPO = Path(__file__).resolve().parent.parent
TOP = "lif_pe_array"
needs_yosys = pytest.mark.skipif(shutil.which("yosys") is None, reason="yosys not installed")
needs_iverilog = pytest.mark.skipif(shutil.which("iverilog") is None,
                                    reason="iverilog not installed")

STAT_TEXT = """
=== lif_pe_array ===

   Number of wires:                173
   Number of cells:                  4
     $_OR_                           1
     lif_pe_array.lif_stage          1
     lif_pe_array.pe_array           1
     lif_pe_array.membrane_buffer      1

   Estimated number of transistors:          6+

=== lif_pe_array.lif_stage ===

   Number of cells:                 14
     $_AND_                          5
     $_SDFFE_PP0N_                   7
     lif_pe_array.lif_stage.lif_unit_0      1
     lif_pe_array.lif_stage.lif_unit_1      1

   Estimated number of transistors:        100+

=== lif_pe_array.lif_stage.lif_unit_0 ===

   Number of cells:                 10
     $_XOR_                         10

   Estimated number of transistors:        120

=== lif_pe_array.lif_stage.lif_unit_1 ===

   Number of cells:                 10
     $_XOR_                         10

   Estimated number of transistors:        120

=== lif_pe_array.pe_array ===

   Number of cells:                 30
     $_MUX_                         20
     $_SDFFE_PP0P_                  10

   Estimated number of transistors:        300+

=== lif_pe_array.membrane_buffer ===

   Number of cells:                  1
     $mem_v2                         1

   Estimated number of transistors:          0+

=== design hierarchy ===

   lif_pe_array                      1
     lif_pe_array.lif_stage          1

   Number of cells:                 64
     $_AND_                          5
"""

MEM_TEXT = """
module \\lif_pe_array.membrane_buffer

  attribute \\src "x.v:1.1-2.2"
  cell $mem_v2 \\membrane_mem
    parameter \\ABITS 1
    parameter \\INIT 64'0000
    parameter \\RD_PORTS 2
    parameter \\SIZE 2
    parameter \\WIDTH 32
    parameter \\WR_PORTS 1
    connect \\CLK 1'0
  end
end
"""

LTP_TEXT = """
Longest topological path in lif_pe_array (length=3):
    0: \\a [1]
    1: $n1 (via $c1)
    2: $n2 (via $c2)
   ff: \\out [0] (via $ff1)
Longest topological path in lif_pe_array.pe_array (length=7):
    0: \\x
"""


def canned_result() -> SynthResult:
    modules, total = parse_stat(STAT_TEXT)
    return SynthResult(top=TOP, key="k", yosys_version="Yosys test", seconds=0.0,
                       modules=modules, memories=parse_memories(MEM_TEXT),
                       module_depth={f"{TOP}.pe_array": 7}, depth=3, yosys_total_cells=total)


def canned_cfg() -> HwConfig:
    return HwConfig(array=4, groups=2, weight_rows=2, mem_rows=1)


def canned_manifest(cfg: HwConfig) -> dict:
    from gen.emit import build_manifest
    return build_manifest(cfg, TOP)


# ------------------------------------------------------------------ parsers
def test_parse_stat_counts_and_hierarchy_total():
    modules, total = parse_stat(STAT_TEXT)
    assert total == 64
    assert modules[TOP].cells == {"$_OR_": 1, f"{TOP}.lif_stage": 1, f"{TOP}.pe_array": 1,
                                  f"{TOP}.membrane_buffer": 1}
    assert modules[f"{TOP}.pe_array"].gates == 30
    assert modules[f"{TOP}.pe_array"].flip_flops == 10
    assert modules[f"{TOP}.lif_stage.lif_unit_0"].transistors == 120
    assert not modules[f"{TOP}.lif_stage.lif_unit_0"].transistors_partial
    assert modules[f"{TOP}.lif_stage"].transistors_partial


def test_parse_memories_and_ltp():
    (m,) = parse_memories(MEM_TEXT)
    assert (m.module, m.name, m.width, m.size, m.rd_ports, m.wr_ports, m.bits) == \
        (f"{TOP}.membrane_buffer", "membrane_mem", 32, 2, 2, 1, 64)
    ltp = parse_ltp(LTP_TEXT)
    assert ltp[TOP] == (3, "\\a [1]", "\\out [0]")
    assert ltp[f"{TOP}.pe_array"][0] == 7


@pytest.mark.parametrize("t,ff", [("$_DFF_P_", True), ("$_SDFFE_PP0P_", True),
                                  ("$_SDFFCE_PN1P_", True), ("$_DFFE_PP_", True),
                                  ("$_MUX_", False), ("$_XOR_", False), ("$mem_v2", False)])
def test_flip_flop_types(t, ff):
    assert is_flip_flop(t) is ff


def test_gate_equivalents_known_and_unknown():
    assert report.gate_equivalents("$_NAND_") == 1.0
    assert report.gate_equivalents("$_SDFFE_PP0P_") > report.gate_equivalents("$_DFF_P_")
    with pytest.raises(report.ConsistencyError):
        report.gate_equivalents("$_FOO_")


def test_block_of_names():
    assert report.block_of(TOP, TOP) == "ctrl"
    assert report.block_of(f"{TOP}.sequencer", TOP) == "ctrl"
    assert report.block_of(f"{TOP}.pe_array", TOP) == "pe"
    assert report.block_of(f"{TOP}.lif_stage", TOP) == "memctl"
    assert report.block_of(f"{TOP}.lif_stage.lif_unit_12", TOP) == "lif"
    assert report.block_of(f"{TOP}.membrane_buffer", TOP) == "membuf"
    assert report.block_of(f"{TOP}.weight_buffer", TOP) == "wbuf"
    assert report.block_of(f"{TOP}.surprise", TOP) == "other"


# -------------------------------------------------------------- attribution
def test_attribution_sums_and_instances():
    res = canned_result()
    blocks = report.attribute_blocks(res)
    assert blocks["lif"].instances == 2 and blocks["lif"].cells == 20
    assert blocks["pe"].cells == 30 and blocks["pe"].flip_flops == 10
    assert blocks["memctl"].cells == 12 and blocks["ctrl"].cells == 1
    assert blocks["membuf"].memory_bits == 64 and blocks["membuf"].cells == 0
    assert sum(b.cells for b in blocks.values()) == res.total_gates() == 63
    assert report.lif_share(blocks) == pytest.approx(20 / 50)


def test_attribution_sum_catches_a_yosys_total_mismatch():
    res = canned_result()
    res.yosys_total_cells += 1
    with pytest.raises(report.ConsistencyError, match="Yosys counts"):
        report.attribute_blocks(res)


def test_instances_multiply_through_the_hierarchy():
    mods = {"t": ModuleStats("t", {"a": 2, "$_AND_": 1}), "a": ModuleStats("a", {"b": 3}),
            "b": ModuleStats("b", {"$_OR_": 1})}
    res = SynthResult("t", "k", "v", 0.0, mods, [], {}, 0)
    assert res.instances() == {"t": 1, "a": 2, "b": 6}
    assert res.total_gates() == 7


# ------------------------------------------------------------- consistency
def _canned_with_weight_mem(cfg):
    res = canned_result()
    res.modules[f"{TOP}.weight_buffer"] = ModuleStats(f"{TOP}.weight_buffer", {"$mem_v2": 1})
    res.modules[TOP].cells[f"{TOP}.weight_buffer"] = 1
    res.memories.append(Memory(f"{TOP}.weight_buffer", "weight_mem",
                               cfg.array * cfg.weight_width, cfg.weight_rows, 1, 1))
    res.yosys_total_cells += 1
    return res


def test_consistency_passes_on_matching_netlist():
    cfg = canned_cfg()
    res = _canned_with_weight_mem(cfg)
    checks = report.check_consistency(cfg, canned_manifest(cfg), res,
                                      report.attribute_blocks(res))
    assert any("LIF units: netlist 2" in c for c in checks)


def test_consistency_catches_wrong_lif_count():
    cfg = canned_cfg()
    res = _canned_with_weight_mem(cfg)
    del res.modules[f"{TOP}.lif_stage"].cells[f"{TOP}.lif_stage.lif_unit_1"]
    del res.modules[f"{TOP}.lif_stage.lif_unit_1"]
    res.yosys_total_cells -= 10
    with pytest.raises(report.ConsistencyError, match="LIF units: netlist 1"):
        report.check_consistency(cfg, canned_manifest(cfg), res, report.attribute_blocks(res))


def test_consistency_catches_wrong_manifest_lif_units():
    cfg = canned_cfg()
    res = _canned_with_weight_mem(cfg)
    man = canned_manifest(cfg)
    man["lif_units"] = 4
    with pytest.raises(report.ConsistencyError, match="manifest 4"):
        report.check_consistency(cfg, man, res, report.attribute_blocks(res))


def test_consistency_catches_wrong_memory_bits_and_flattened_memory():
    cfg = canned_cfg()
    res = _canned_with_weight_mem(cfg)
    res.memories[0] = Memory(f"{TOP}.membrane_buffer", "membrane_mem", 16, 2, 2, 1)
    with pytest.raises(report.ConsistencyError, match="membrane_buffer: netlist memory"):
        report.check_consistency(cfg, canned_manifest(cfg), res, report.attribute_blocks(res))
    res = _canned_with_weight_mem(cfg)
    res.memories = [m for m in res.memories if m.module != f"{TOP}.membrane_buffer"]
    res.modules[f"{TOP}.membrane_buffer"].cells = {"$_DFF_P_": 64}
    res.yosys_total_cells += 63
    with pytest.raises(report.ConsistencyError, match="0 memories in the netlist"):
        report.check_consistency(cfg, canned_manifest(cfg), res, report.attribute_blocks(res))


# ---------------------------------------------------------- real yosys runs
@pytest.fixture(scope="module")
def tiny_build(tmp_path_factory):
    from gen.emit import emit
    cfg = HwConfig(array=4, groups=2, weight_rows=4, mem_rows=4)
    d = tmp_path_factory.mktemp("tiny")
    v, m = emit(cfg, d / "rtl", TOP)
    return cfg, Path(v), json.loads(Path(m).read_text()), d


@needs_yosys
def test_yosys_tiny_build_attribution_and_checks(tiny_build):
    cfg, v, manifest, d = tiny_build
    res = synthesize(v, TOP, d / "cache")
    assert not res.cached
    blocks = report.attribute_blocks(res)
    assert sum(b.cells for b in blocks.values()) == res.total_gates()
    assert res.total_gates() + res.total_memory_cells() == res.yosys_total_cells
    assert blocks["lif"].instances == cfg.lif_units == 2
    assert blocks["pe"].flip_flops == manifest["accumulator_bits"]
    assert blocks["membuf"].memory_bits == manifest["membrane_buffer"]["bits"]
    assert blocks["wbuf"].memory_bits == manifest["weight_buffer"]["bits"]
    assert res.depth > 0 and blocks["lif"].depth > 0
    report.check_consistency(cfg, manifest, res, blocks)
    # a wrong manifest is caught on the real netlist too
    bad = copy.deepcopy(manifest)
    bad["membrane_buffer"]["row_bits"] += 1
    with pytest.raises(report.ConsistencyError):
        report.check_consistency(cfg, bad, res, blocks)
    # cache: same Verilog -> cached, equal figures; changed Verilog -> new key
    again = synthesize(v, TOP, d / "cache")
    assert again.cached and again.key == res.key and again.total_gates() == res.total_gates()
    v2 = d / "changed.v"
    v2.write_text(v.read_text() + "\n// changed\n")
    from gen.synth import cache_key, yosys_version
    assert cache_key(v2.read_bytes(), yosys_version(), TOP) != res.key


@needs_yosys
def test_synth_error_is_one_line(tmp_path):
    from gen.synth import SynthError
    bad = tmp_path / "bad.v"
    bad.write_text("module lif_pe_array(input a); syntax error here\nendmodule\n")
    with pytest.raises(SynthError) as e:
        synthesize(bad, TOP, tmp_path / "cache")
    assert "\n" not in str(e.value)
    assert not list((tmp_path / "cache").glob("*.json"))


# ------------------------------------------------------------------- CLI
def _cli(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "gen.report", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("args,needle", [
    (["--array", "128", "--groups", "3"], "--groups"),
    (["--array", "x"], "--array"),
    (["--groups", ""], "--groups"),
    (["--jobs", "0"], "--jobs"),
    (["--tiles", "2"], "--tiles"),
    (["--frobnicate"], "unrecognized"),
    (["--yosys", "no-such-yosys-binary"], "--yosys"),
])
def test_cli_bad_options_exit_2_one_line(tmp_path, args, needle):
    out = tmp_path / "rep"
    r = _cli(*args, "--out-dir", str(out), "--cache-dir", str(tmp_path / "c"))
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], r.stderr
    assert not out.exists()


def test_cli_out_dir_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    r = _cli("--array", "4", "--groups", "2", "--out-dir", str(f), "--no-synth", "--no-sim")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--out-dir" in r.stderr
    assert f.read_text() == "x"


@needs_yosys
def test_cli_end_to_end_tiny(tmp_path):
    out = tmp_path / "rep"
    r = _cli("--array", "4", "--groups", "1,2", "--no-sim", "--out-dir", str(out),
             "--cache-dir", str(tmp_path / "c"))
    assert r.returncode == 0, r.stderr
    assert "[2/2] [yosys]" in r.stderr
    md = (out / "hardware_report.md").read_text()
    assert "| 4 | 1 | 4 |" in md and "| 4 | 2 | 2 |" in md      # ARRAY | GROUPS | LIF units
    assert "vgg16" in md and "resnet19" in md
    data = json.loads((out / "hardware_report.json").read_text())
    assert [b["lif_units"] for b in data["builds"]] == [4, 2]
    for png in ("area_by_block.png", "memory_by_scheme.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    assert not list(out.glob(".*tmp*"))


# -------------------------------------------------------------- memory
def test_memory_rows_cover_archs_sizes_schemes():
    rows = report.memory_rows(16)
    assert len(rows) == len(report.MEMORY_ARCHS) * len(report.MEMORY_SIZES) \
        * len(report.MEMORY_SCHEMES)
    for r in rows:
        n = {"C#2": 2, "C#4": 4, "C#8": 8}.get(r.scheme)
        if n:
            assert r.fwd_ratio == pytest.approx(1 / n)


# ---------------------------------------------------------- throughput
@needs_iverilog
def test_throughput_matches_timing_contract():
    from tb.throughput import measure
    cfg = HwConfig(array=4, groups=2, weight_rows=16, mem_rows=8)
    rows = measure(cfg, "icarus", events=[1, 2, 8], tiles=8)
    by = {(r["events"], r["overlap"]): r for r in rows}
    for e in (1, 2, 8):
        assert by[(e, True)]["period"] == max(e + 1, cfg.groups + 1)
        assert by[(e, False)]["period"] > by[(e, True)]["period"]


def test_cli_no_synth_no_sim_gives_manifest_figures_and_memory(tmp_path):
    out = tmp_path / "rep"
    r = _cli("--array", "8", "--groups", "2,4", "--no-synth", "--no-sim", "--out-dir", str(out))
    assert r.returncode == 0, r.stderr
    md = (out / "hardware_report.md").read_text()
    # ARRAY | GROUPS | LIF units | membrane bits (64 rows x S x 16) | weight bits | acc | cycles
    assert "| 8 | 2 | 4 | 4,096 | 16,384 | 256 | 3 |" in md
    assert "| 8 | 4 | 2 | 2,048 | 16,384 | 256 | 5 |" in md
    assert "Not measured (`--no-sim`)" in md and "Ratios compared with the paper" in md
    assert not (out / "area_by_block.png").exists()
    assert (out / "memory_by_scheme.png").exists()
