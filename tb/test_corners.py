"""Arithmetic corner cases in the RTL, checked against the golden model.

Each :data:`CASES` entry is a small build (ARRAY 4-8) whose parameters sit at
a limit of docs/fixed-point.md: λ = 1 (IF neuron) and the smallest λ
(``leak_int = 1``), θ = 1 and the largest legal θ for the firing rule, gt and
ge, hard and soft reset, GROUPS = ARRAY (one LIF unit), narrow accumulators
and membranes that saturate at both ends, weights at ``weight_min`` /
``weight_max``.

The network and input spikes of a case are built by :func:`corner_stimulus`
from a palette of weight *recipes* (all ``weight_max``, all ``weight_min``,
rows that sum exactly to θ, θ±1, θ/2, ``acc_max``, ...) and on/off/random
input timesteps; :func:`find_stimulus` tries seeds in order until the golden
model (:func:`golden.schedule.build_schedule`) shows that every corner the
case names in ``require`` actually occurs in the stimulus (for example
``tie_quiet``: U == θ exactly and no spike because fire = gt). So a test can
never pass because the corner was not exercised.

The co-simulation itself reuses the testbench parts of ``tb/``: the BFM
(random backpressure and command gaps), the scoreboard (every beat, every
membrane row after every timestep, error flags), and the reset contract
(no beat during reset, no X/Z output after it). After the run the outputs are
checked once more for X/Z. The cocotb test ``corner_run`` below reads the
network (``.npz``) and spikes (``.npy``) named in the plan.

``tests/test_corners_golden.py`` checks the same stimuli in the golden model
against an independent integer reference and hand-computed numbers.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from golden.config import HwConfig
from golden.network import Layer, Network
from tb.plan import load_network_run, load_plan, record

# --------------------------------------------------------------------------
# cases and stimulus (pure Python, also used by tests/test_corners_golden.py)
# --------------------------------------------------------------------------

#: name -> (HwConfig fields, corners that must occur, simulators)
CASES = {
    # IF neuron (λ = 1), largest θ for '>' (mem_max - 1): U == θ does not fire,
    # only the saturated U = mem_max fires; soft reset leaves V' = 1.
    "if_theta_max_gt_soft": (
        dict(array=8, groups=2, weight_width=8, acc_width=9, mem_width=10, frac_bits=4,
             leak_bits=8, leak_int=256, theta_int=510, fire="gt", reset="soft"),
        ("tie_quiet", "u_hi_fired", "u_lo", "x_hi", "x_lo", "ro_x_hi", "ro_x_lo", "w_ext"),
        ("verilator",)),
    # smallest λ (1/256), θ = 1 with '>=': U == 1 fires, hard reset to 0.
    "min_leak_theta1_ge_hard": (
        dict(array=8, groups=4, weight_width=8, acc_width=10, mem_width=10, frac_bits=4,
             leak_bits=8, leak_int=1, theta_int=1, fire="ge", reset="hard"),
        ("tie_fired", "u_hi", "u_lo", "leak_nonzero", "x_hi", "x_lo", "w_ext"),
        ("verilator",)),
    # GROUPS = ARRAY: one LIF unit serves all four groups; θ = mem_max (largest
    # for '>='), so the only firing U is the saturated one, V' = 0 (soft).
    "one_lif_unit_theta_max_ge": (
        dict(array=4, groups=4, weight_width=6, acc_width=8, mem_width=8, frac_bits=2,
             leak_bits=4, leak_int=8, theta_int=127, fire="ge", reset="soft"),
        ("tie_fired", "u_lo", "x_hi", "x_lo", "leak_nonzero", "w_ext"),
        ("verilator", "icarus")),
    # θ = 1 with '>', IF neuron, hard reset, accumulator and membrane as narrow
    # as the weights (a single weight_min already is acc_min = mem_min).
    "if_theta1_gt_hard_narrow_acc": (
        dict(array=8, groups=2, weight_width=6, acc_width=6, mem_width=6, frac_bits=2,
             leak_bits=6, leak_int=64, theta_int=1, fire="gt", reset="hard"),
        ("tie_quiet", "u_hi", "u_lo", "x_hi", "x_lo", "ro_x_hi", "ro_x_lo", "w_ext"),
        ("icarus", "verilator")),
}


def case_config(name: str) -> HwConfig:
    return HwConfig(**CASES[name][0])


def _exact_row(rng, cfg: HwConfig, n_in: int, target: int) -> np.ndarray:
    """Weights over ``n_in`` inputs, all of one sign, summing to ``target``
    (so with every input active, X = target with no saturation on the way)."""
    row = np.zeros(n_in, dtype=np.int64)
    big = cfg.weight_max if target >= 0 else cfg.weight_min
    rest = target
    for i in rng.permutation(n_in):
        if rest == 0:
            break
        step = min(rest, big) if target >= 0 else max(rest, big)
        row[i] = step
        rest -= step
    return row if rest == 0 else None


def _weights(rng, cfg: HwConfig, n_out: int, n_in: int) -> np.ndarray:
    th, amax, amin = cfg.theta_int, cfg.acc_max, cfg.acc_min
    targets = [t for t in {th, th - 1, th + 1, th // 2, th - th // 2, amax, amin, 1, -1, 0,
                           cfg.weight_max, cfg.weight_min}
               if amin <= t <= amax]
    w = np.zeros((n_out, n_in), dtype=np.int64)
    for o in range(n_out):
        kind = rng.choice(["max", "min", "exact", "exact", "exact", "rand", "small", "mixed"])
        if kind == "max":
            w[o] = cfg.weight_max
        elif kind == "min":
            w[o] = cfg.weight_min
        elif kind == "exact":
            row = _exact_row(rng, cfg, n_in, int(rng.choice(sorted(targets))))
            w[o] = row if row is not None else 0
        elif kind == "rand":
            w[o] = rng.integers(cfg.weight_min, cfg.weight_max + 1, size=n_in)
        elif kind == "small":
            w[o] = rng.integers(max(-3, cfg.weight_min), min(3, cfg.weight_max) + 1, size=n_in)
        else:  # extremes of both signs: order-dependent saturation (F2)
            w[o] = rng.choice([cfg.weight_min, cfg.weight_max], size=n_in)
    return w


def corner_stimulus(cfg: HwConfig, seed: int, samples: int = 2, timesteps: int = 4):
    """(network, spikes [samples, T, F]) for ``cfg`` from ``seed``: chained
    layer (2 tiles, the last partially filled), independent layer, read-out
    layer, every layer's rows drawn from the weight recipes."""
    rng = np.random.default_rng([seed, 77])
    a, n = cfg.array, cfg.groups
    f_in = int(rng.integers(6, 13))
    c0 = a + n                      # chained: S+1 slots per group -> 2 tiles
    c1 = a + a // 2                 # independent: 2 tiles
    c2 = a                          # read-out
    net = Network((f_in,), (
        Layer.linear(_weights(rng, cfg, c0, f_in), mode="chained", name="chain"),
        Layer.linear(_weights(rng, cfg, c1, c0), mode="independent", name="indep"),
        Layer.linear(_weights(rng, cfg, c2, c1), mode="readout", name="readout")))
    spikes = np.zeros((samples, timesteps, f_in), dtype=np.int64)
    for b in range(samples):
        for t in range(timesteps):
            kind = rng.choice(["on", "on", "off", "rand"])
            spikes[b, t] = 1 if kind == "on" else 0 if kind == "off" else rng.random(f_in) < 0.5
    return net.validate(cfg), spikes


def corner_coverage(cfg: HwConfig, net: Network, result) -> dict:
    """How often each corner occurs in a golden run (``FixedResult``)."""
    cov = dict.fromkeys(["tie_quiet", "tie_fired", "u_hi", "u_hi_fired", "u_lo", "x_hi", "x_lo",
                         "ro_x_hi", "ro_x_lo", "leak_nonzero", "fired", "w_ext"], 0)
    for layer, tr in zip(net.layers, result.layers):
        cov["x_hi"] += int((tr.current == cfg.acc_max).sum())
        cov["x_lo"] += int((tr.current == cfg.acc_min).sum())
        if layer.mode == "readout":
            cov["ro_x_hi"] += int((tr.current == cfg.acc_max).sum())
            cov["ro_x_lo"] += int((tr.current == cfg.acc_min).sum())
            continue
        u, o = tr.membrane, tr.spikes
        tie = u == cfg.theta_int
        cov["tie_quiet"] += int((tie & (o == 0)).sum())
        cov["tie_fired"] += int((tie & (o == 1)).sum())
        cov["u_hi"] += int((u == cfg.mem_max).sum())
        cov["u_hi_fired"] += int(((u == cfg.mem_max) & (o == 1)).sum())
        cov["u_lo"] += int((u == cfg.mem_min).sum())
        cov["fired"] += int(o.sum())
        # L = U - X wherever U did not saturate: a non-zero leak result
        x_sat = np.clip(tr.current, cfg.mem_min, cfg.mem_max)
        unsat = (u != cfg.mem_max) & (u != cfg.mem_min)
        cov["leak_nonzero"] += int(((u != x_sat) & unsat).sum())
    w_all = np.concatenate([layer.weight.ravel() for layer in net.layers])
    cov["w_ext"] = int((w_all == cfg.weight_min).any() and (w_all == cfg.weight_max).any())
    return cov


def find_stimulus(name: str, max_seeds: int = 300):
    """First seed whose stimulus hits every required corner of case ``name``.

    Returns ``(seed, net, spikes, schedule, coverage)``; raises AssertionError
    naming the corners that no seed reached."""
    from golden.schedule import build_schedule
    cfg = case_config(name)
    require = CASES[name][1]
    best = None
    for seed in range(max_seeds):
        net, spikes = corner_stimulus(cfg, seed)
        sched = build_schedule(cfg, net, spikes)
        cov = corner_coverage(cfg, net, sched.result)
        missing = [k for k in require if not cov[k]]
        if not missing:
            return seed, net, spikes, sched, cov
        if best is None or len(missing) < len(best):
            best = missing
    raise AssertionError(f"{name}: no stimulus among {max_seeds} seeds hits {best}")


# --------------------------------------------------------------------------
# cocotb side
# --------------------------------------------------------------------------

try:
    import cocotb
except ImportError:  # pragma: no cover
    cocotb = None


if cocotb is not None:

    @cocotb.test()
    async def corner_run(dut):
        """Reset (contract + X/Z check), the whole schedule of the plan's
        network and spikes with backpressure and gaps, X/Z check at the end."""
        plan = load_plan()
        if "corner_run" not in plan["tests"]:
            return
        from cocotb.clock import Clock

        from tb.bfm import BfmTimeout, CoreBfm
        from tb.scoreboard import Scoreboard

        nr = load_network_run(plan)
        cfg, net, layouts, ops, beats = nr.cfg, nr.net, nr.layouts, nr.ops, nr.beats
        bfm = CoreBfm(dut, layouts, cfg, plan["seed"], stress=plan["stress"],
                      stall_limit=plan.get("stall_limit", 3000))
        sb = Scoreboard(cfg, beats, repro=plan.get("repro", ""),
                        layer_names={i: l.name for i, l in enumerate(net.layers)},
                        layer_modes={i: l.mode for i, l in enumerate(net.layers)})
        bfm.drive_all_idle(rst=1)
        Clock(dut.clk, 10, unit="ns").start()
        t0 = time.monotonic()
        problems = await bfm.reset(cycles=3)
        timeout = None
        if not problems:
            try:
                await bfm.run(ops, sb, stop_after=8)
            except BfmTimeout as e:
                timeout = str(e)
            if timeout is None and sb.ok:
                sb.missing_beats()
            bad = bfm.unresolved_outputs()
            if bad:
                problems.append("outputs not 0/1 at the end of the run: " + ", ".join(bad))
        parts = (["reset / X-Z contract: " + "; ".join(problems)] if problems else []) \
            + ([f"TIMEOUT: {timeout}"] if timeout else []) + ([] if sb.ok else [sb.report()])
        failure = ("[corner_run] " + "\n".join(parts)) if parts else None
        record(plan, "corner_run", {"ok": failure is None, "checked": sb.counts(),
                                    "cycles": bfm.stats.cycles, "failure": failure,
                                    "sim_seconds": time.monotonic() - t0})
        assert failure is None, failure


# --------------------------------------------------------------------------
# pytest side
# --------------------------------------------------------------------------

def run_corner(name: str, sim: str, tmp_path: Path, mutate=None, tag: str = ""):
    """Emit/build (cached) and co-simulate case ``name``; returns (RunResult, coverage, seed)."""
    import tb.build as tbb
    from golden.network import save_network
    seed, net, spikes, sched, cov = find_stimulus(name)
    cfg = case_config(name)
    verilog, manifest = tbb.emit_rtl(cfg)
    if mutate is not None:
        verilog = tbb.mutate_rtl(cfg, verilog, mutate, tag)
    b = tbb.build(cfg, sim, verilog, manifest, tag=tag)
    save_network(net, tmp_path / "net.npz")
    np.save(tmp_path / "spikes.npy", spikes)
    plan = {"seed": seed, "stress": True, "tests": ["corner_run"], "stall_limit": 3000,
            "network": str(tmp_path / "net.npz"), "spikes": str(tmp_path / "spikes.npy"),
            "repro": f"pytest tb/test_corners.py -k '{name} and {sim}'  (stimulus seed {seed})"}
    r = tbb.run(b, plan, test_module="tb.test_corners")
    return r, cov, seed


PARAMS = [(name, sim) for name, (_, _, sims) in CASES.items() for sim in sims]


@pytest.mark.parametrize("name, sim", PARAMS, ids=[f"{n}-{s}" for n, s in PARAMS])
def test_corner(name, sim, tmp_path):
    r, cov, seed = run_corner(name, sim, tmp_path)
    t = r.summary.get("tests", {}).get("corner_run", {})
    c = t.get("checked", {})
    print(f"{name} on {sim}: seed {seed}, golden coverage {cov}; checked beats {c.get('beats')}, "
          f"spike bits {c.get('spikes')}, membrane words {c.get('membrane_words')}, "
          f"cycles {t.get('cycles')}")
    assert r.ok, r.failure_text()
    assert c["beats"] == c["beats_expected"] > 0 and c["mismatches"] == 0


@pytest.mark.slow
def test_corner_detects_fire_ge_mutant(tmp_path):
    """Self-check: with '>' turned into '>=' in every LIF unit (tb/mutations.py)
    the U == θ case must fail -- the tie corner is really exercised in RTL."""
    from tb.mutations import MUTATIONS
    mut = next(m for m in MUTATIONS if m.name == "fire_ge")
    name = "if_theta_max_gt_soft"
    slots = case_config(name).slots
    r, cov, seed = run_corner(name, "verilator", tmp_path,
                              mutate=lambda text: mut.apply(text, slots), tag=mut.name)
    assert cov["tie_quiet"] > 0
    assert not r.ok, "the fire_ge mutant passed the U == θ corner case"
    assert "mismatch" in r.failure_text()


def _busy_x(text: str) -> str:
    """Drive the top-level ``busy`` output with X (an undriven/uninitialised output)."""
    import re
    # (the core's busy also ORs the mspill register: `\$N | mspill__valid`,
    # as in tb/mutations.py busy_x_backpressure)
    new, n = re.subn(r"^(\s*assign busy = )(?:\\busy\$\d+\s*\|\s*\\busy\$\d+|"
                     r"\\\$\d+\s*\|\s*mspill__valid)\s*;$", r"\1 1'bx;",
                     text, count=1, flags=re.M)
    if n != 1:
        raise RuntimeError("the top-level 'assign busy' changed; update _busy_x")
    return new


def test_icarus_x_output_is_caught(tmp_path):
    """Self-check of the X/Z rule on Icarus: with ``busy`` forced to X the
    reset contract check (tb/bfm.py CoreBfm.reset) must fail the run and
    name the port."""
    r, cov, seed = run_corner("one_lif_unit_theta_max_ge", "icarus", tmp_path,
                              mutate=_busy_x, tag="busy_x")
    assert not r.ok
    assert "outputs not 0/1 after reset" in r.failure_text() and "busy" in r.failure_text(), \
        r.failure_text()
