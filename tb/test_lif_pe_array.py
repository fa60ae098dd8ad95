"""Co-simulation of the generated ``lif_pe_array`` against the golden schedule.

Two halves live in this file, in the layout of alexforencich's cocotb test
modules (one test module per RTL block, pytest parametrization over the
parameters):

* cocotb tests (run inside the simulator, configured by the JSON plan whose
  path is in ``TB_PLAN``):

  - ``full_run``: reset, then the whole schedule of a seeded random network
    (:mod:`tb.stimulus`) over all samples and timesteps, with random command
    gaps and output backpressure; every output beat and every membrane row
    (read back through ``dbg_addr`` after each timestep) is compared with
    :func:`golden.schedule.build_schedule`; ``error`` must stay 0; after
    reset and at every idle point no output may be X/Z, nor any control
    output where the BFM samples it (checked on Icarus, trivially true on
    Verilator; docs/reliability.md §4);
  - ``reset_mid_run``: start the same schedule, assert ``rst`` somewhere in
    the middle (commands and beats in flight), then run the whole schedule
    again from the start, fully checked.

* pytest functions that emit, build and run those tests through
  :mod:`tb.sim` (by default on the bulk path, tb/bulk.py, which runs cocotb
  tests of the same names on ``tb_bulk_top``; ``QUICK_BFM`` on this file's
  per-cycle tests) (which uses ``cocotb_tools.runner``; cocotb-test is not used:
  it is broken on cocotb 2.x, see its issue #278, and its maintainer points
  to cocotb's own runner).

Run ``pytest tb/test_lif_pe_array.py`` (quick set) or with ``--full`` for
the whole sweep; ``make sim`` runs one configuration.
"""

from __future__ import annotations

import random

import pytest

from tb.plan import load_plan
from tb.session import Session

# --------------------------------------------------------------------------
# cocotb side
# --------------------------------------------------------------------------

try:
    import cocotb
except ImportError:  # pragma: no cover - cocotb is a hard dependency
    cocotb = None


async def _start(dut, name: str):
    """The session of cocotb test ``name`` after reset (clock running, reset
    contract checked), or None when the plan does not select ``name``."""
    plan = load_plan()
    if name not in plan["tests"]:
        return None
    s = Session(dut, plan)
    s.bfm.drive_all_idle(rst=1)
    await s.start_clock(dut)
    await s.reset(name)
    return s


if cocotb is not None:

    @cocotb.test()
    async def full_run(dut):
        """Reset, run the whole schedule, check every beat and membrane row."""
        s = await _start(dut, "full_run")
        if s is None:
            return
        await s.checked_run("full_run")

    @cocotb.test()
    async def reset_mid_run(dut):
        """Reset in the middle of a run, then a clean fully checked run."""
        s = await _start(dut, "reset_mid_run")
        if s is None:
            return
        # abort somewhere in the middle third of the operations (between
        # commands, with beats and commands still in flight)
        rng = random.Random(s.plan["seed"] * 7919 + 1)
        n = len(s.ops)
        abort = rng.randint(n // 3, max(n // 3 + 1, 2 * n // 3))
        sb = s.scoreboard()
        await s.bfm.run(s.ops, sb, abort_at_op=abort)
        if sb.unresolved_text:   # X/Z before the reset; mismatches there are not judged
            s.fail("reset_mid_run", sb.unresolved_text + " [before the mid-run reset]")
        await s.reset("reset_mid_run")
        await s.checked_run("reset_mid_run")


    @cocotb.test()
    async def error_flags(dut):
        """docs/interface.md "Errors": sticky bits, dropped commands, N beats
        for a bad TILE, cleared by reset."""
        from tb.bfm import BfmUnresolved
        s = await _start(dut, "error_flags")
        if s is None:
            return
        try:
            await _error_flags(s)
        except BfmUnresolved as e:
            s.fail("error_flags", str(e))

    async def _error_flags(s):
        from tb.bfm import exchange
        cfg, cmd = s.cfg, s.layouts["cmd"]
        problems = []
        # bit 0: reserved op and reserved mode; the commands are dropped
        beats, err = await exchange(s.bfm, [cmd.pack(op=3), cmd.pack(op=2, mode=3)], 0)
        if err != 0b001 or beats:
            problems.append(f"reserved op/mode: error {err:#05b} (exp 0b001), {len(beats)} beats (exp 0)")
        beats, err = await exchange(s.bfm, [cmd.pack(op=2, base=0, mode=0, first=1),
                                            cmd.pack(op=1)], cfg.groups)
        if err != 0b001:
            problems.append(f"error bits are not sticky: {err:#05b} after a good tile (exp 0b001)")
        if [int(b["group"]) for b in beats] != list(range(cfg.groups)):
            problems.append(f"a good tile after an error gave groups {[int(b['group']) for b in beats]}")
        await s.reset("error_flags")
        # bit 2: a CHAINED layer at the last row; its second tile would use row mem_rows
        last = cfg.mem_rows - 1
        if last < (1 << cfg.mem_addr_width):
            beats, err = await exchange(s.bfm, [cmd.pack(op=2, base=last, mode=0, first=1),
                                                cmd.pack(op=1), cmd.pack(op=1)], 2 * cfg.groups)
            if err != 0b100:
                problems.append(f"membrane row {cfg.mem_rows} >= mem_rows: error {err:#05b} (exp 0b100)")
            got = [(int(b["tile"]), int(b["group"]), int(b["last"])) for b in beats]
            exp = [(t, g, int(g == cfg.groups - 1)) for t in range(2) for g in range(cfg.groups)]
            if got != exp:
                problems.append(f"bad TILE must still give its N beats: got (tile, group, last) {got}")
        await s.reset("error_flags")
        beats, err = await exchange(s.bfm, [], 0, max_cycles=4)
        if err != 0:
            problems.append(f"reset does not clear error: {err:#05b}")
        msg = "[error_flags] " + "; ".join(problems) if problems else None
        s.record("error_flags", {"ok": not problems, "failure": msg})
        assert not problems, msg


# --------------------------------------------------------------------------
# pytest side
# --------------------------------------------------------------------------

#: quick default set: (sim, array, groups, layer_share, reset)
QUICK = [
    ("verilator", 8, 1, True, "soft"),
    ("verilator", 8, 2, True, "hard"),
    ("verilator", 32, 4, True, "soft"),
    ("verilator", 32, 8, False, "soft"),
    ("icarus", 8, 2, True, "soft"),
    ("icarus", 32, 4, False, "hard"),
    ("verilator", 128, 4, True, "soft"),
]


def _full_sweep():
    cases = []
    for sim in ("verilator", "icarus"):
        for array, groups in ((8, 1), (8, 2), (8, 4), (8, 8), (32, 1), (32, 4), (32, 8),
                              (64, 8), (128, 1), (128, 4), (128, 32)):
            for share in (True, False):
                for reset in ("soft", "hard"):
                    case = (sim, array, groups, share, reset)
                    if case not in QUICK:
                        cases.append(case)
    return cases


def _id(case) -> str:
    sim, a, g, share, reset = case
    return f"{sim}-A{a}-G{g}-{'L' if share else 'noL'}-{reset}"


def _run_case(sim, array, groups, share, reset, seed=1, **kw):
    from tb.sim import SimOptions, run_sim
    opts = SimOptions(sim=sim, array=array, groups=groups, layer_share=share, reset=reset,
                      seed=seed, **kw)
    res = run_sim(opts, quiet=True)
    assert res.ok, res.failure_text()
    return res


@pytest.mark.parametrize("case", QUICK, ids=_id)
def test_lif_pe_array(case):
    """Quick regression (bulk path): both simulators, several ARRAY/GROUPS, L on/off,
    soft/hard reset."""
    res = _run_case(*case)
    assert res.summary["tests"]["full_run"]["path"] == "bulk"


#: the per-cycle BFM path (``tb.sim --path bfm``; QUICK runs the default bulk path)
QUICK_BFM = [("verilator", 8, 2, True, "soft"), ("icarus", 8, 2, False, "hard"),
             ("verilator", 32, 4, True, "soft")]


@pytest.mark.parametrize("case", QUICK_BFM, ids=_id)
def test_lif_pe_array_bfm_path(case):
    """The same checks through the per-cycle BFM (corner tests and debugging use it)."""
    res = _run_case(*case, path="bfm")
    assert res.summary["tests"]["full_run"]["path"] == "bfm"


@pytest.mark.slow
@pytest.mark.parametrize("case", _full_sweep(), ids=_id)
def test_lif_pe_array_full(case):
    """The full sweep (``--full`` or ``-m slow``)."""
    _run_case(*case)


@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_error_flags(sim):
    """Directed check of the error bits (reserved op/mode, membrane row range)."""
    _run_case(sim, 8, 2, True, "soft", tests=("error_flags",))


@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_saturation_narrow_widths(sim):
    """Narrow accumulator/membrane so the dense samples saturate (F2/F4) and
    fire with ``>=``; the golden schedule must actually reach saturation."""
    res = _run_case(sim, 16, 4, True, "soft", seed=3,
                    extra_cfg={"acc_width": 10, "mem_width": 11, "theta_int": 200,
                               "fire": "ge", "leak_int": 192})
    cov = res.summary["tests"]["full_run"]["checked"]["coverage"]
    assert cov["value_sat_hi"] > 0 and cov["value_sat_lo"] > 0, cov


@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_bulk_small_memories(sim):
    """Bulk path with tiny tb_bulk_top memories: many blocks, weight-load
    queue windows and weight-table reloads (pauses for the next window while
    commands wait), pauses because the capture memories are nearly full (also
    in the middle of a command stream), all still bit-exact."""
    res = _run_case(sim, 8, 2, True, "soft", seed=2, samples=2, timesteps=2,
                    tests=("full_run",),
                    bulk_depths={"ops": 16, "wt": 8, "wq": 16, "out": 16, "mem": 8})
    prof = res.summary["tests"]["full_run"]["bulk_cpu_seconds"]
    assert prof["blocks"] > 10 and prof["pauses"] > prof["blocks"], prof
    assert prof["wl_windows"] > 10 and prof["wt_loads"] > 10, prof
