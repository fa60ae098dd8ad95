"""Tests of flow/sweep.py: the build records and the sweep driver (emit only,
or a failing job; no synthesis or simulation)."""

from __future__ import annotations

import json

import pytest

from flow.attribution import attribute_blocks
from flow.sweep import BuildReport, run
from flow.synth import SynthError
from golden.config import HwConfig
from tests.yosys_canned import canned_cfg, canned_manifest, canned_result


def test_as_dict_without_and_with_synthesis():
    cfg = canned_cfg()
    r = BuildReport(cfg, canned_manifest(cfg))
    d = r.as_dict()
    assert d["lif_units"] == 2 and d["name"] == cfg.name and "synth" not in d
    r.synth = canned_result()
    r.blocks = attribute_blocks(r.synth)
    d = json.loads(json.dumps(r.as_dict()))          # JSON-serialisable
    assert d["synth"]["total_cells"] == 63
    assert d["blocks"]["lif"] == {"cells": 20, "flip_flops": 0, "ge": 46.6, "memory_bits": 0,
                                  "memories": 0, "instances": 2, "depth": 0}
    assert d["lif_share_cells"] == pytest.approx(0.4)


@pytest.fixture
def private_sim_build(tmp_path, monkeypatch):
    monkeypatch.setenv("TB_SIM_BUILD", str(tmp_path / "sim_build"))
    return tmp_path / "sim_build"


def test_emit_only_sweep_returns_one_report_per_config(private_sim_build):
    cfgs = [HwConfig(array=8, groups=2), HwConfig(array=8, groups=4)]
    lines = []
    reports = run(cfgs, synth=False, sim=None, log=lines.append)
    assert [r.cfg for r in reports] == cfgs
    assert [r.manifest["lif_units"] for r in reports] == [4, 2]
    assert all(r.verilog.is_file() and private_sim_build in r.verilog.parents for r in reports)
    assert all(r.synth is None and r.blocks is None for r in reports)
    assert lines[0].startswith("[emit 1/2]") and len(lines) == 2


def test_a_failing_job_raises_its_project_error(private_sim_build, tmp_path):
    with pytest.raises(SynthError, match="not found on PATH"):
        run([HwConfig(array=8, groups=2)], synth=True, sim=None, yosys="no-such-yosys-binary",
            cache_dir=tmp_path / "cache", log=lambda _: None)
    assert not (tmp_path / "cache").exists()
