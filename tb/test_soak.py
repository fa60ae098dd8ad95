"""Soak tests: :mod:`tb.soak` in CI (short) and on demand (long).

* ``test_soak_short`` (default set): ~30k output spike bits on ARRAY=128
  GROUPS=4 (the build the quick regression also uses), random backpressure,
  command gaps, a mid-run reset; prints the figures, asserts only that
  nothing mismatched and the target was reached;
* ``test_soak_detects_dropped_beats`` (default set): the same runner on a
  mutant that drops beats under backpressure must report a failure, so the
  soak cannot pass vacuously;
* ``test_soak_cli_*``: bad options -> exit 2, one line;
* ``test_soak_long`` (``-m soak``, never by default): the full soak,
  1,000,000 spike bits (``make soak`` runs the same from the command line);
* ``test_soak_random_configs`` (``-m soak``): 16 random shapes, widths and
  seeds on Verilator, one soak run each (``python -m tb.soak
  --random-configs``).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tb.soak import SoakOptions, main, run_soak


def _print(res):
    print("\n" + res.text())
    if res.failures:
        print(res.failures[0])


def test_soak_short():
    """~30k spike bits with a mid-run reset in the first run; figures printed."""
    opts = SoakOptions(array=128, groups=4, spikes=30_000, seed0=7000, reset_every=1,
                       samples=(3, 4), timesteps=(2, 3))
    res = run_soak(opts, progress=print)
    _print(res)
    assert res.ok, res.failures[0] if res.failures else res.text()
    assert res.target_reached and res.reset_runs >= 1
    assert res.mismatches == 0 and res.spike_bits >= 30_000 and res.membrane_words > 0


def test_soak_detects_dropped_beats():
    """Self-check: a Verilog mutant that drops a beat under backpressure
    (tb/mutations.py 'drop_beat_backpressure') must make the soak fail."""
    from tb.mutations import MUTATIONS
    mut = next(m for m in MUTATIONS if m.name == "drop_beat_backpressure")
    extra = {"weight_width": 4, "theta_int": 6}   # the fault-injection build (reused)
    slots = 8 // 2
    opts = SoakOptions(array=8, groups=2, spikes=5_000, seed0=5, reset_every=0,
                       samples=(2, 2), timesteps=(3, 3), extra_cfg=extra, stall_limit=600,
                       mutate=lambda text: mut.apply(text, slots), tag=mut.name)
    res = run_soak(opts)
    _print(res)
    assert not res.ok and res.failed_runs == 1 and res.runs == 1, res.text()


@pytest.mark.parametrize("args, needle", [
    (["--array", "0"], "--array"),
    (["--groups", "3"], "groups"),
    (["--spikes", "x"], "--spikes"),
    (["--samples", "5-2"], "--samples"),
    (["--minutes", "nan"], "--minutes"),
    (["--cfg", "theta_int"], "FIELD=VALUE"),
    (["--cfg", "mem_width=abc"], "integer"),
    (["--cfg", "bogus=1"], "bogus"),
    (["--cfg", "reset=hard"], "--reset"),
    (["--sim", "modelsim"], "--sim"),
    (["--json", "/nonexistent-dir/x.json"], "--json"),
    (["--bogus"], "--bogus"),
])
def test_soak_cli_bad_options(args, needle, capsys):
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("python -m tb.soak: error:") and needle in err, err


def test_soak_cli_entry_point_help():
    r = subprocess.run([sys.executable, "-m", "tb.soak", "--help"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and "--spikes" in r.stdout and "--minutes" in r.stdout


@pytest.mark.soak
def test_soak_long():
    """The full soak: >= 1,000,000 spike bits on ARRAY=128 GROUPS=4 (``-m soak``)."""
    res = run_soak(SoakOptions(), progress=print)
    _print(res)
    assert res.ok and res.target_reached, res.text()


@pytest.mark.soak
@pytest.mark.parametrize("seed", range(100, 116))
def test_soak_random_configs(seed):
    """Random shapes, widths and seeds on Verilator (``-m soak``): one run of
    ``python -m tb.soak --random-configs --seed SEED --runs 1 --samples 3
    --reset-every 1`` (both cocotb tests, 3 samples)."""
    res = run_soak(SoakOptions(random_configs=True, seed0=seed, runs=1, spikes=0,
                               samples=(3, 3), reset_every=1), progress=print)
    _print(res)
    assert res.ok and res.runs == 1 and res.target_reached, \
        res.failures[0] if res.failures else res.text()


def test_soak_random_configs_plan():
    """``--random-configs`` (no simulation): every run gets a valid build and
    test network from its seed, different runs different builds; ``--runs``
    and ``--random-configs`` reach SoakOptions."""
    from tb.soak import _plan_run, parse_args
    from tb.stimulus import make_network
    opts, _, _ = parse_args(["--random-configs", "--runs", "16", "--spikes", "1", "--seed", "100"])
    assert opts.random_configs and opts.runs == 16
    names = set()
    for k in range(16):
        so = _plan_run(opts, k)
        cfg = so.config()
        make_network(cfg, so.seed, so.layer_share)
        names.add(cfg.name)
    assert len(names) > 4, names
