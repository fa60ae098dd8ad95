"""Tests of flow/synth.py: Yosys output parsers (canned text, no tools) and
real Yosys runs of a tiny build (ARRAY=4, a few seconds)."""

from __future__ import annotations

import stat

import pytest

from flow.synth import (ModuleStats, SynthError, SynthResult, cache_key, is_flip_flop,
                        parse_ltp, parse_memories, parse_stat, synthesize, yosys_version)
from golden.errors import OutputError
from tests.yosys_canned import LTP_TEXT, MEM_TEXT, STAT_TEXT, TOP, emit_tiny, needs_yosys


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


def test_parse_stat_without_modules_is_an_error():
    with pytest.raises(SynthError, match="no module statistics"):
        parse_stat("nothing here\n")


def test_parse_memories_and_ltp():
    (m,) = parse_memories(MEM_TEXT)
    assert (m.module, m.name, m.width, m.size, m.rd_ports, m.wr_ports, m.bits) == \
        (f"{TOP}.membrane_buffer", "membrane_mem", 32, 2, 1, 1, 64)
    ltp = parse_ltp(LTP_TEXT)
    assert ltp[TOP] == (3, "\\a [1]", "\\out [0]")
    assert ltp[f"{TOP}.pe_array"][0] == 7


@pytest.mark.parametrize("t,ff", [("$_DFF_P_", True), ("$_SDFFE_PP0P_", True),
                                  ("$_SDFFCE_PN1P_", True), ("$_DFFE_PP_", True),
                                  ("$_MUX_", False), ("$_XOR_", False), ("$mem_v2", False)])
def test_flip_flop_types(t, ff):
    assert is_flip_flop(t) is ff


def test_instances_multiply_through_the_hierarchy():
    mods = {"t": ModuleStats("t", {"a": 2, "$_AND_": 1}), "a": ModuleStats("a", {"b": 3}),
            "b": ModuleStats("b", {"$_OR_": 1})}
    res = SynthResult("t", "k", "v", 0.0, mods, [], {}, 0)
    assert res.instances() == {"t": 1, "a": 2, "b": 6}
    assert res.total_gates() == 7


def test_result_round_trips_and_rejects_an_old_format():
    modules, total = parse_stat(STAT_TEXT)
    res = SynthResult(TOP, "k", "v", 1.5, modules, parse_memories(MEM_TEXT), {TOP: 3}, 3,
                      yosys_total_cells=total)
    d = res.to_dict()
    back = SynthResult.from_dict(d)
    assert back.total_gates() == res.total_gates() == 63 and back.memories == res.memories
    d["format"] = -1
    with pytest.raises(SynthError, match="old format"):
        SynthResult.from_dict(d)


# ---------------------------------------------------------- real yosys runs
@needs_yosys
def test_yosys_tiny_build_cache_and_file_modes(tmp_path):
    cfg, v, manifest = emit_tiny(tmp_path)
    cache = tmp_path / "cache"
    res = synthesize(v, TOP, cache)
    assert not res.cached
    assert res.total_gates() + res.total_memory_cells() == res.yosys_total_cells
    assert res.depth > 0
    # the cache JSON and the kept log are world-readable (atomic_write), no temp left
    written = sorted(p.name for p in cache.iterdir())
    assert written == [f"{res.key}.json", f"{res.key}.log"]
    for p in cache.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o644, p
    # cache: same Verilog -> cached, equal figures; changed Verilog -> new key
    again = synthesize(v, TOP, cache)
    assert again.cached and again.key == res.key and again.total_gates() == res.total_gates()
    v2 = tmp_path / "changed.v"
    v2.write_text(v.read_text() + "\n// changed\n")
    assert cache_key(v2.read_bytes(), yosys_version(), TOP) != res.key


@needs_yosys
def test_synth_error_is_one_line(tmp_path):
    bad = tmp_path / "bad.v"
    bad.write_text("module lif_pe_array(input a); syntax error here\nendmodule\n")
    with pytest.raises(SynthError) as e:
        synthesize(bad, TOP, tmp_path / "cache")
    assert "\n" not in str(e.value)
    assert not list((tmp_path / "cache").glob("*.json"))


@needs_yosys
def test_unwritable_cache_is_an_output_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    good = tmp_path / "good.v"
    good.write_text("module lif_pe_array(input a, output y); assign y = ~a; endmodule\n")
    with pytest.raises(OutputError):
        synthesize(good, TOP, blocker / "cache")
    assert blocker.read_text() == "x"


def test_missing_yosys_is_one_line():
    with pytest.raises(SynthError, match="not found on PATH"):
        yosys_version("no-such-yosys-binary")
