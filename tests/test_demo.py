"""Smoke tests of the end-to-end demo (golden/digits.py, tb/demo*.py) on tiny subsets.

Fast tests (no simulator): dataset split, spike encoding, the four variant
labellings, training determinism and the weight cache, quantization of all
variants onto one build, the report formatting, the CLI's bad-option exit.
One RTL test (marked slow, ``--full``) runs two test samples of the L+C#4
variant on a small ARRAY=32, GROUPS=4 build through :mod:`tb.demo_rtl` and
requires the RTL's read-out to equal the fixed-point model's.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

# the demo's extra dependencies (pip install -e '.[demo]', done by `make demo`)
pytest.importorskip("sklearn", reason="scikit-learn missing: pip install -e '.[demo]' (make demo)")
pytest.importorskip("matplotlib", reason="matplotlib missing: pip install -e '.[demo]' (make demo)")
pytest.importorskip("tqdm", reason="tqdm missing: pip install -e '.[demo]' (make demo)")

from golden.config import HwConfig
from golden.digits import (GROUPS, SCHEMES, DigitsError, TrainConfig, accuracy, cache_key,
                           demo_layers, encode, load_split, scheme_layers, train, train_cached)

REPO = Path(__file__).resolve().parent.parent
TINY = TrainConfig(epochs=1, channels=4, batch=32)


@pytest.fixture(scope="module")
def split():
    return load_split()


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(1)


def test_split_is_stratified_and_fixed(split):
    assert split.x_train.shape == (1437, 8, 8) and split.x_test.shape == (360, 8, 8)
    assert np.bincount(split.y_test).min() >= 35  # every class present, roughly 36 each
    again = load_split()
    assert np.array_equal(again.x_test, split.x_test) and np.array_equal(again.y_test, split.y_test)
    other = load_split(seed=1)
    assert not np.array_equal(other.y_test, split.y_test)


def test_encoding_rate_and_shape():
    img = np.array([[[0, 4, 8, 16] + [0] * 4] + [[0] * 8] * 7], dtype=np.uint8)
    s = encode(img, 4)
    assert s.shape == (1, 4, 1, 8, 8) and s.dtype == np.uint8
    counts = s[0, :, 0, 0, :4].sum(axis=0).tolist()
    assert counts == [0, 1, 2, 4]               # spike count = round(T·x/16)
    assert s[0, :, 0, 0, 2].tolist() == [1, 0, 1, 0]  # 8/16: every other step, starting half full
    assert set(np.unique(encode(np.full((2, 8, 8), 16, np.uint8), 5))) == {1}


@pytest.mark.parametrize("bad,match", [
    (np.zeros((2, 8, 7)), "shape"), (np.full((1, 8, 8), 17), "0..16"), (-np.ones((1, 8, 8)), "0..16")])
def test_encoding_rejects_bad_images(bad, match):
    with pytest.raises(DigitsError, match=match):
        encode(bad, 4)


def test_encoding_rejects_bad_timesteps():
    with pytest.raises(DigitsError, match="timesteps"):
        encode(np.zeros((1, 8, 8)), 0)


def test_variant_labelling():
    modes = {s: [(l.mode, l.block) for l in scheme_layers(s)] for s in SCHEMES}
    assert modes["baseline"] == [("independent", None)] * 3 + [("readout", None)]
    assert modes["L"] == [("independent", None), ("independent", 1), ("independent", 1), ("readout", None)]
    assert modes["C#4"] == [("chained", None)] * 3 + [("readout", None)]
    assert modes["L+C#4"] == [("chained", None), ("chained", 1), ("chained", 1), ("readout", None)]
    with pytest.raises(DigitsError, match="unknown scheme"):
        scheme_layers("C#2")
    with pytest.raises(DigitsError, match="multiple of"):
        demo_layers(6)


def test_training_is_deterministic_and_cached(split, tmp_path):
    x = encode(split.x_train[:96], TINY.timesteps)
    y = split.y_train[:96]
    m1 = train("L+C#4", TINY, x, y)
    m2 = train("L+C#4", TINY, x, y)
    for a, b in zip(m1.weights, m2.weights):
        a, b = a.detach(), b.detach()
        assert torch.equal(a, b)
        # QAT: trained weights lie on the 2^-6 grid and inside the clip
        assert torch.equal(a * 64, torch.round(a * 64)) and float(a.abs().max()) <= TINY.weight_clip
    m3, cached = train_cached("L+C#4", TINY, x, y, tmp_path)
    assert not cached and len(list(tmp_path.glob("*.pt"))) == 1
    m4, cached = train_cached("L+C#4", TINY, x, y, tmp_path)
    assert cached and all(torch.equal(a, b) for a, b in zip(m3.weights, m4.weights))
    assert cache_key("L+C#4", TINY) != cache_key("L+C#4", replace(TINY, lr=1e-3))
    assert cache_key("L+C#4", TINY) != cache_key("C#4", TINY)
    assert 0.0 <= accuracy(m4, x, y) <= 1.0


def test_quantize_all_variants_onto_one_build(split):
    from tb.demo import fixed_eval, quantize_all
    x = encode(split.x_train[:64], TINY.timesteps)
    models = {s: train(s, TINY, x, split.y_train[:64]) for s in SCHEMES}
    quants = quantize_all(models)
    cfgs = {q.cfg for q in quants.values()}
    assert len(cfgs) == 1
    cfg = cfgs.pop()
    assert (cfg.array, cfg.groups) == (128, GROUPS)
    for q in quants.values():  # every variant fits the build, all weights static
        from golden.schedule import plan_allocation
        assert plan_allocation(cfg, q.network).weights == "static"
    xt = encode(split.x_test[:8], TINY.timesteps)
    rows, preds = fixed_eval(models, quants, xt, split.y_test[:8])
    assert [r["scheme"] for r in rows] == list(SCHEMES)
    for r in rows:
        assert len(preds[r["scheme"]]) == 8
        assert all(0.0 <= l["agreement"] <= 1.0 for l in r["layers"])


def test_report_formatting(tmp_path):
    from tb import demo_report as rep
    fl = [{"scheme": s, "acc": 0.9, "fwd_words": 10, "bwd_words": 20, "fwd_kib_32": 0.04,
           "bwd_kib_32": 0.08} for s in SCHEMES]
    qr = [{"scheme": s, "float_acc": 0.9, "fixed_acc": 0.8, "pred_agree": 0.95, "frac_bits": 6,
           "layers": [{"layer": "a", "mode": "chained", "agreement": 0.5, "mismatches": 1, "spikes": 2},
                      {"layer": "r", "mode": "readout", "agreement": 1.0, "mismatches": 0, "spikes": 0}]}
          for s in SCHEMES]
    t1 = rep.table1(fl, 4, 16)
    assert t1.startswith("| Method | Acc") and t1.count("\n| ") == len(SCHEMES)  # one row each
    assert "| a |" in rep.layer_table(qr).splitlines()[0] + "|"
    assert "1 of 2 differ" in rep.quant_table(qr)
    summ = rep.summary_table(fl, qr, [])
    assert summ.count("not run") == len(SCHEMES) and "80.00 %" in summ
    cfg = rep.config_table(HwConfig().to_dict(), {}, {"frac_bits": {"reason": "a |w| b"}})
    assert "a \\|w\\| b" in cfg  # pipes escaped inside cells
    rep.plot(tmp_path / "d.png", fl, qr, [])
    assert (tmp_path / "d.png").stat().st_size > 1000


@pytest.mark.parametrize("args,msg", [(["--rtl", "C#2"], "unknown variant"),
                                      (["--samples", "0"], "positive integer")])
def test_cli_bad_option_exits_2(args, msg):
    p = subprocess.run([sys.executable, "-m", "tb.demo", *args], cwd=REPO, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("python -m tb.demo: error:") and msg in lines[0]


@pytest.mark.slow
def test_rtl_two_samples_match_fixed_point(split):
    """Two test samples of a tiny L+C#4 model on an ARRAY=32 build, checked bit-exactly."""
    from golden.fixed_model import run_fixed
    from golden.quantize import quantize
    from tb.demo_rtl import build_core, run_network
    x = encode(split.x_train[:64], TINY.timesteps)
    model = train("L+C#4", TINY, x, split.y_train[:64])
    q = quantize(model, array=32, weight_rows=1 << 12)
    xt = encode(split.x_test[:2], TINY.timesteps)
    r = run_network(build_core(q.cfg), q.network, xt)
    assert r.ok, r.failure
    assert r.summary["checked"]["mismatches"] == 0 and r.summary["checked"]["beats"] > 0
    fixed = run_fixed(q.cfg, q.network, np.swapaxes(xt, 0, 1)).output  # [T, B, 10]
    assert np.array_equal(r.readout, np.swapaxes(fixed, 0, 1).reshape(r.readout.shape))


def test_recording_scoreboard_keeps_rtl_readout_and_counts_mismatches():
    """The read-out the demo scores comes from the observed beats, and a wrong value is a mismatch."""
    from golden.schedule import Beat
    from tb.demo_cocotb import RecordingScoreboard
    cfg = HwConfig(array=8, groups=2)            # S = 4 slots per group
    z = np.zeros(4, dtype=np.int64)
    beats = [Beat(z, z + 5, 0, 0, 0, 0, 0, 0, 0),                       # a LIF beat, sample 0
             Beat(z, np.array([1, 2, 3, 4]), 0, 0, 0, 1, 1, 0, 0),      # read-out, sample 0, t 0
             Beat(z, np.array([7, 8, 9, 10]), 0, 1, 1, 1, 1, 0, 0),     # group 1: neurons 4..7
             Beat(z, np.array([1, 1, 1, 1]), 0, 0, 0, 1, 1, 0, 1)]      # sample 1
    class Stats:
        cycles = 0
    sb = RecordingScoreboard(cfg, beats)
    sb.attach(samples=2, timesteps=1, outputs=6, stats=Stats, progress=None)

    def got(b, values=None):
        return {"spikes": list(b.spikes), "values": list(b.values if values is None else values),
                "tile": b.tile, "group": b.group, "last": b.last, "readout": b.readout}
    for b in beats[:3]:
        Stats.cycles += 10
        assert sb.check_beat(got(b))
    Stats.cycles += 10
    assert not sb.check_beat(got(beats[3], [1, 1, 6, 1]))   # the RTL said 6
    assert sb.n_mismatches == 1
    assert sb.readout[0, 0].tolist() == [1, 2, 3, 4, 7, 8]  # only the 6 real outputs
    assert sb.readout[1, 0].tolist() == [1, 1, 6, 1, 0, 0]  # what the RTL said, not the golden value
    assert sb.sample_first_cycle.tolist() == [10, 40]
