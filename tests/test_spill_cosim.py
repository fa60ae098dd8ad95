"""Spilled membranes on the RTL (issue 13): a conv layer whose membrane region
is 4x ``mem_rows`` and whose weights are 4x ``weight_rows`` runs bit-exact on
Verilator, a 2x one on Icarus, through the per-cycle BFM with random command,
weight-load and fill gaps, ``out`` and ``mspill`` backpressure, and through
the bulk path (tb_bulk_top's fill engine and spill capture, tb/bulk_top.py). The
testbench's off-chip memory (tb/offchip.py) fills every row from what the
core spilled and checks every ``mspill`` beat against the golden schedule;
the traffic it counted equals ``golden.traffic.transfers(hw_traffic(...))``.
A mutant whose spills carry a wrong row address (the buffer itself right,
so every beat right) is caught by the spill check alone. The mixed network (every mode, a shortcut) is checked the
same way on Icarus.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from golden.config import HwConfig
from golden.schedule import LayerPass, build_schedule
from golden.traffic import hw_traffic, transfers
from test_golden_spill import conv_net

SMALL = (HwConfig(array=8, groups=2, weight_rows=18, mem_rows=16), 16, 2, 3)   # 2x / 2x
LARGE = (HwConfig(array=8, groups=2, weight_rows=36, mem_rows=32), 64, 2, 3)   # 4x / 4x


def _run(case, sim: str, mutate=None, tag: str = "spill", net=None, path: str = "bfm",
         sp: int = 0):
    """``path`` "bulk": tb_bulk_top with a spill/fill engine of depth ``sp``
    (0: tb.demo_rtl.SPILL_DEPTH)."""
    from tb.build import build, build_bulk, emit_rtl, mutate_rtl
    from tb.demo_rtl import SPILL_DEPTH
    from tb.demo_rtl import run_network
    cfg, cout, samples, T = case
    net = net or conv_net(cout)
    x = (np.random.default_rng(21).random((samples, T, 2, 4, 4)) < 0.5).astype(np.uint8)
    verilog, manifest = emit_rtl(cfg)
    if mutate is not None:
        verilog = mutate_rtl(cfg, verilog, mutate, tag)
    if path == "bulk":
        b = build_bulk(cfg, sim, verilog, manifest, depths={"sp": sp or SPILL_DEPTH}, quiet=True,
                       tag=tag if mutate else "")[0]
    else:
        b = build(cfg, sim, verilog, manifest, quiet=True, tag=tag if mutate else "")
    r = run_network(b, net, x, stress=True, seed=4, tag=tag)
    sched = build_schedule(cfg, net, x)
    summary = r.summary or json.loads((Path(r.run_dir) / "summary.json").read_text())
    return cfg, net, sched, r, summary


def _check(case, sim, net=None, path: str = "bfm", sp: int = 0):
    cfg, net, sched, r, sm = _run(case, sim, net=net, path=path, sp=sp)
    assert r.ok, r.failure
    assert sm["path"] == path
    a = sched.allocation
    assert a.membranes == "spilled"
    spills = sum(len(it.spills) for it in sched.items if isinstance(it, LayerPass))
    oc = sm["offchip"]
    assert oc["spills_checked"] == spills > 0 and oc["spill_mismatches"] == 0
    assert oc["fills"] == sum(len(it.fills) for it in sched.items if isinstance(it, LayerPass))
    model = sorted([x.kind, x.bits, x.t, x.layer, x.chunk, x.sample]
                   for x in transfers(hw_traffic(cfg, net, case[2], case[3])))
    assert sorted(sm["transfers"]) == model
    return cfg, sched, sm


def test_spilled_l_block_on_icarus():
    """Two layers sharing one spilled membrane (L + C#2)."""
    from golden.network import Layer, Network
    rng = np.random.default_rng(7)
    net = Network((2, 4, 4), (
        Layer.conv((2, 4, 4), rng.integers(-8, 12, (16, 2, 3, 3)), padding=1, block=0, name="a"),
        Layer.conv((16, 4, 4), rng.integers(-3, 5, (16, 16, 3, 3)), padding=1, block=0, name="b")))
    cfg = HwConfig(array=8, groups=2, weight_rows=144, mem_rows=16)
    _check((cfg, 16, 2, 3), "icarus", net)


def test_spill_2x_on_icarus():
    cfg, sched, _ = _check(SMALL, "icarus")
    assert sched.allocation.sample_rows >= 2 * cfg.mem_rows


@pytest.mark.parametrize("sp", [16, 64])
def test_spill_2x_on_icarus_bulk(sp):
    """The bulk path with a small spill capture memory (the top pauses when it
    fills up): fills of spills drained at a pause come from the host's copy of
    them, the others are forwarded from the capture memory inside the
    simulator (with 16 rows every fill comes from the host, with 64 both)."""
    cfg, sched, sm = _check(SMALL, "icarus", path="bulk", sp=sp)
    assert sm["pauses"] > 1
    prof = sm["bulk_cpu_seconds"]
    assert prof["mf_windows"] > 1 and prof["fills_from_host"] > 0
    assert (prof["fills_forwarded"] > 0) == (sp == 64)
    assert prof["fills_forwarded"] + prof["fills_from_host"] == sm["offchip"]["fills"]


@pytest.mark.parametrize("path", ["bfm", "bulk"])
def test_spill_4x_on_verilator(path):
    cfg, sched, sm = _check(LARGE, "verilator", path=path)
    a = sched.allocation
    assert a.sample_rows >= 4 * cfg.mem_rows
    assert sum(b.rows for b in a.plans[0].blocks) >= 4 * cfg.weight_rows
    assert a.weights == "streamed"
    assert sm["checked"]["mismatches"] == 0 and sm["checked"]["beats"] == sched.counts["beats"]


@pytest.mark.parametrize("path", ["bfm", "bulk"])
@pytest.mark.parametrize("name", ["spill_addr_plus_one"])
def test_spill_mutant_is_caught_by_the_spill_check(name, path):
    from tb.mutations import SPILL_MUTATIONS
    mut = next(m for m in SPILL_MUTATIONS if m.name == name)
    cfg = SMALL[0]
    _, _, _, r, sm = _run(SMALL, "verilator", lambda text: mut.apply(text, cfg.slots), name,
                          path=path)
    assert not r.ok
    assert "spill" in (r.failure or ""), r.failure
    assert sm["offchip"]["spill_mismatches"] > 0


def test_tb_run_spilled_network_on_both_paths(tmp_path):
    """python -m tb.run: a spilled network runs with --path bfm and on the
    default (bulk) path."""
    from tbrun_util import run_network
    cfg, cout, samples, T = SMALL
    net = conv_net(cout)
    x = (np.random.default_rng(2).random((samples, T, 2, 4, 4)) < 0.5).astype(np.uint8)
    doc = run_network(tmp_path, net, x, "--array", "8", "--groups", "2", "--weight-rows", "18",
                      "--mem-rows", "16", "--sim", "icarus", "--path", "bfm", "--stress", "1")
    assert doc["ok"] and doc["golden_equal"] and doc["checked"]["mismatches"] == 0
    doc = run_network(tmp_path, net, x, "--array", "8", "--groups", "2", "--weight-rows", "18",
                      "--mem-rows", "16", "--sim", "icarus", "--stress", "1")
    assert doc["ok"] and doc["golden_equal"] and doc["checked"]["mismatches"] == 0


def test_spilled_mixed_network_on_icarus():
    """CHAINED, residual, INDEPENDENT and readout layers, spilled (bias-free,
    padded INDEPENDENT rows, a shortcut input map): every beat and every
    spilled row checked, and the testbench-counted traffic == hw_traffic's."""
    from test_golden_spill import mixed_net
    cfg = HwConfig(array=8, groups=2, weight_rows=128, mem_rows=32)
    _, _, sm = _check((cfg, 0, 2, 3), "icarus", mixed_net())
    assert sm["offchip"]["spills_checked"] == 256


def test_spilled_featured_network_on_icarus():
    """Bias rows, padded slots, an L block, a pooled INDEPENDENT conv, a
    readout, spilled with streamed weights: traffic == hw_traffic's."""
    from test_golden_spill import featured_net
    cfg = HwConfig(array=8, groups=2, weight_rows=64, mem_rows=16)
    _, sched, _ = _check((cfg, 0, 2, 3), "icarus", featured_net())
    assert sched.allocation.weights == "streamed"
