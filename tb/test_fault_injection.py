"""Fault injection: the co-simulation must catch real bugs.

Each mutation of :mod:`tb.mutations` is applied to the emitted Verilog, the
mutant is built (``sim_build/verilator/<config>-<mutation>[-tb_bulk_top]/``)
and run through the ``full_run`` cocotb test of BOTH co-simulation paths:
the bulk path (tb/bulk.py, the default of ``make sim``) and the per-cycle
BFM (tb/bfm.py). On each the run must FAIL with a scoreboard finding (a
mismatch, a missing/extra beat or a watchdog timeout), not with a build
error. The unmutated design must pass the same runs.

``test_icarus_x_mid_run_is_caught`` runs the X mutant of
:data:`tb.mutations.X_MUTATIONS` on Icarus, on both paths: the X/Z check
(the BFM's, or ``tb_bulk_top``'s) must name the port and the cycle
(docs/reliability.md §4), not time out.

The configuration uses 4-bit weights and a small θ so that U = θ happens
often (the ``>`` vs ``>=`` mutation is only visible then); the baseline test
checks that it does.
"""

from __future__ import annotations

import re

import pytest

from tb.mutations import MUTATIONS, X_MUTATIONS

FAULT_CASE = dict(sim="verilator", array=8, groups=2, seed=5, samples=2, timesteps=3,
                  tests=("full_run",), stall_limit=600,
                  extra_cfg={"weight_width": 4, "theta_int": 6})


def _opts(**kw):
    from tb.sim import SimOptions
    return SimOptions(**dict(FAULT_CASE, **kw))


PATHS = ("bulk", "bfm")


@pytest.mark.parametrize("path", PATHS)
def test_unmutated_design_passes(path):
    from tb.sim import run_sim
    res = run_sim(_opts(path=path))
    assert res.ok, res.failure_text()
    cov = res.summary["tests"]["full_run"]["checked"]["coverage"]
    assert cov["u_eq_theta"] > 0, f"stimulus never hits U == θ, fire_ge would go unseen: {cov}"


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("mutation", MUTATIONS, ids=lambda m: m.name)
def test_mutation_is_detected(mutation, path):
    from tb.sim import run_sim
    opts = _opts(tag=mutation.name, path=path)
    slots = opts.config().slots
    opts.mutate = lambda text: mutation.apply(text, slots)
    res = run_sim(opts)
    assert not res.ok, f"mutation {mutation.name!r} ({mutation.bug}) was NOT detected " \
        f"on the {path} path:\n{res.text}"
    findings = "\n".join(res.run.failures)
    assert re.search(r"^\[full_run\] seed \d+: (TIMEOUT|\d+ mismatch)", findings, re.M), \
        f"mutation {mutation.name!r} failed for another reason on the {path} path:\n{res.text}"
    assert res.summary["tests"]["full_run"].get("path") == path, res.summary
    print(f"{mutation.name} ({path} path): detected\n{findings}")


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("mutation", X_MUTATIONS, ids=lambda m: m.name)
def test_icarus_x_mid_run_is_caught(mutation, path):
    """A control output that goes X mid-run on Icarus fails the run at once
    with a one-line X/Z finding (port, cycle, seed, repro), not a timeout."""
    from tb.sim import run_sim
    opts = _opts(sim="icarus", tag=mutation.name, path=path)
    slots = opts.config().slots
    opts.mutate = lambda text: mutation.apply(text, slots)
    res = run_sim(opts)
    assert not res.ok, f"X mutant {mutation.name!r} ({mutation.bug}) was NOT detected:\n{res.text}"
    findings = "\n".join(res.run.failures)
    first = findings.splitlines()[0]
    m = re.match(r"^\[full_run\] seed 5: X/Z on output busy=[xXzZ] at cycle (\d+)\b.*"
                 r"; reproduce: .*--seed 5", first)
    assert m, f"X mutant {mutation.name!r} failed for another reason:\n{findings}"
    assert int(m.group(1)) > 3, f"X expected mid-run, not right after reset: {first}"
    assert "TIMEOUT" not in findings and "reset contract" not in findings, findings
    print(f"{mutation.name}: detected\n{findings}")


#: streamed weights (the network's 174 weight rows do not fit 64): weight blocks
#: pass through the buffer as a ring while EVENTs run, so the fences matter
WSTREAM_CASE = dict(extra_cfg=dict(FAULT_CASE["extra_cfg"], weight_rows=64))


@pytest.mark.parametrize("path", PATHS)
def test_weight_stream_concurrent_and_checked(path):
    """The streamed workload passes with the weight-load stream driven
    concurrently with the commands under random gaps and backpressure, and
    wload and cmd beats really transfer on the same edges."""
    from tb.sim import run_sim
    res = run_sim(_opts(path=path, **WSTREAM_CASE))
    assert res.ok, res.failure_text()
    t = res.summary["tests"]["full_run"]
    assert t["weights"] == "streamed" and t["wl_beats"] == t["weight_loads"] > 0, t
    assert t["wl_gap_cycles"] > 0 and t["backpressure_cycles"] > 0 and t["gap_cycles"] > 0, t
    assert t["wl_overlap_cycles"] > 0 and t["wl_hidden_beats"] > 0, t
    assert t["wload_cycles"] + t["readback_cycles"] < t["cycles"], t
    assert 0 < t["pe_utilization"] < 1 and 0 < t["wload_share"] < 1, t


@pytest.mark.parametrize("path", PATHS)
def test_ignored_loads_after_fence_is_detected(path):
    """Driver fault: the weight loads ignore ``loads_after`` (sent as early
    as the stream allows), so ring rows are rewritten under EVENTs still to
    come; the scoreboard must report mismatches (not a timeout or a build
    error)."""
    from tb.sim import run_sim
    res = run_sim(_opts(path=path, driver_fault="ignore_loads_after", **WSTREAM_CASE))
    assert not res.ok, f"ignoring loads_after was NOT detected on the {path} path:\n{res.text}"
    findings = "\n".join(res.run.failures)
    assert re.search(r"^\[full_run\] seed \d+: \d+ mismatch", findings, re.M), \
        f"the fault failed for another reason on the {path} path:\n{res.text}"
    assert "driver fault 'ignore_loads_after'" in findings, findings
    print(f"ignore_loads_after ({path} path): detected\n{findings}")
