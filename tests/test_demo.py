"""Smoke tests of the end-to-end demo (golden/digits.py, tb/demo*.py) on tiny subsets.

Fast tests (no simulator): dataset split, spike encoding, the four variant
labellings, training determinism and the weight cache, quantization of all
variants onto one build, the report formatting, the CLI's bad-option exit.
One RTL test (marked slow, ``--full``) runs two test samples of the L+C#4
variant on a small ARRAY=32, GROUPS=4 build through :mod:`tb.demo_rtl` on
both simulation paths and requires the RTL's read-out to equal the
fixed-point model's and the two paths' checks and cycle counts to agree.
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


# A small training (2 epochs, 8 channels, 256 images: a few seconds) whose weights
# -- the float32 grid weights and the float64 shadow weights -- are hashed.
_REPRO_SCRIPT = r"""
import hashlib, sys
import torch
from golden.digits import TrainConfig, encode, load_split, train
threads = int(sys.argv[1])
torch.set_num_threads(threads if threads else max(2, torch.get_num_threads()))
tc = TrainConfig(epochs=2, channels=8, batch=32)
s = load_split()
x, y = encode(s.x_train[:256], tc.timesteps), s.y_train[:256]
for scheme in ("baseline", "L+C#4"):
    m = train(scheme, tc, x, y)
    h = hashlib.sha256()
    for w in list(m.weights) + list(m.shadow_weights):
        h.update(w.detach().numpy().tobytes())
    print(scheme, torch.get_num_threads(), h.hexdigest())
"""


def _repro_digests(threads, env):
    p = subprocess.run([sys.executable, "-c", _REPRO_SCRIPT, str(threads)], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    rows = [line.split() for line in p.stdout.splitlines()]
    return {r[0]: r[2] for r in rows}, {int(r[1]) for r in rows}


def test_parallel_training_writes_the_sequential_weights(split, tmp_path):
    """tb.demo's train_all with worker processes (--jobs 2) caches byte-identical
    weight files and returns the same models as training one variant after another."""
    from types import SimpleNamespace

    from tb.demo import _cache_file, train_all
    n = 96
    sub = SimpleNamespace(y_train=split.y_train[:n])
    x = encode(split.x_train[:n], TINY.timesteps)
    seq = train_all(TINY, sub, x, tmp_path / "seq", quiet=True, jobs=1)
    par = train_all(TINY, sub, x, tmp_path / "par", quiet=True, jobs=2)
    for s in SCHEMES:
        assert _cache_file(s, TINY, tmp_path / "par").read_bytes() == \
            _cache_file(s, TINY, tmp_path / "seq").read_bytes(), s
        assert all(torch.equal(a, b) for a, b in zip(seq[s].weights, par[s].weights)), s


def test_training_is_bit_reproducible_across_threads_and_instruction_sets():
    """One torch thread vs the default count (at least 2) on another CPU code path:
    the same weights, bit for bit, including the float64 shadow weights.

    ``ATEN_CPU_CAPABILITY=default`` / ``ONEDNN_MAX_CPU_ISA=SSE41`` make torch and
    oneDNN take the kernels of a CPU without AVX2 (other vector widths, other
    summation orders), as on another machine.
    """
    import os
    base = {k: v for k, v in os.environ.items()
            if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "ATEN_CPU_CAPABILITY",
                         "ONEDNN_MAX_CPU_ISA")}
    one, n1 = _repro_digests(1, {**base, "OMP_NUM_THREADS": "1"})
    many, n2 = _repro_digests(0, {**base, "ATEN_CPU_CAPABILITY": "default",
                                  "ONEDNN_MAX_CPU_ISA": "SSE41"})
    assert n1 == {1} and min(n2) >= 2
    assert set(one) == {"baseline", "L+C#4"}
    assert one == many


def test_deterministic_exp_and_cosine_are_accurate():
    """The libm-free exp (softmax) and cosine (learning rate) of the bit-reproducible training."""
    import math
    from golden.digits import _cosine, _exp
    x = torch.linspace(-700.0, 0.0, 20001, dtype=torch.float64)
    ref = torch.exp(x)
    assert float(((_exp(x) - ref) / ref).abs().max()) < 1e-14
    assert float(_exp(torch.tensor([0.0], dtype=torch.float64))) == 1.0
    assert float(_exp(torch.tensor([-1e4], dtype=torch.float64))) > 0.0   # clamped, not 0/NaN
    for k in range(31):
        assert abs(_cosine(math.pi * k / 30) - math.cos(math.pi * k / 30)) < 1e-14


def test_synapse_gradients_are_on_the_exact_grid(split):
    """Every weight gradient is a sum of exact terms: a multiple of 2^-GRAD_FRAC_BITS."""
    from golden.digits import GRAD_FRAC_BITS, _audit_graph, _cross_entropy_grad, _grad_rounder
    from golden.digits import build_model
    tc = replace(TINY, channels=8)
    model = build_model("L+C#4", tc, dtype=torch.float64)
    x = torch.from_numpy(np.swapaxes(encode(split.x_train[:16], tc.timesteps), 0, 1)).double()
    logits = model(x)
    grad, _ = _cross_entropy_grad(logits.detach(), torch.from_numpy(split.y_train[:16]))
    assert torch.allclose(grad, (torch.softmax(logits.detach(), 1)
                                 - torch.nn.functional.one_hot(torch.from_numpy(split.y_train[:16]),
                                                               10)) / 16, atol=1e-15)
    _audit_graph(logits.grad_fn, _grad_rounder(tc))
    logits.backward(grad)
    scale = 2.0 ** GRAD_FRAC_BITS
    for w in model.weights:
        assert torch.equal(w.grad * scale, torch.round(w.grad * scale))
        assert float(w.grad.abs().max()) > 0


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
    png = rep.plot(fl, qr, [])
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000


@pytest.mark.parametrize("args,msg", [(["--rtl", "C#2"], "unknown variant"),
                                      (["--samples", "0"], "positive integer"),
                                      (["--jobs", "0"], "positive integer"),
                                      (["--path", "fast"], "invalid choice")])
def test_cli_bad_option_exits_2(args, msg):
    p = subprocess.run([sys.executable, "-m", "tb.demo", *args], cwd=REPO, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("python -m tb.demo: error:") and msg in lines[0]


@pytest.mark.slow
def test_rtl_two_samples_match_fixed_point_on_both_paths(split):
    """Two test samples of a tiny L+C#4 model on an ARRAY=32 build, checked bit-exactly,
    on the bulk path (the demo's, with its memory depths) and on the per-cycle BFM:
    the same read-out, checks and cycle counts (the demo's tables do not depend on
    the path)."""
    from golden.fixed_model import run_fixed
    from golden.quantize import quantize
    from tb.demo_rtl import DEMO_DEPTHS, build_core, run_network
    x = encode(split.x_train[:64], TINY.timesteps)
    model = train("L+C#4", TINY, x, split.y_train[:64])
    q = quantize(model, array=32, weight_rows=1 << 12)
    xt = encode(split.x_test[:2], TINY.timesteps)
    fixed = run_fixed(q.cfg, q.network, np.swapaxes(xt, 0, 1)).output  # [T, B, 10]
    runs = {}
    for path in ("bulk", "bfm"):
        b = build_core(q.cfg, path=path, depths=DEMO_DEPTHS if path == "bulk" else None)
        assert b.top == ("tb_bulk_top" if path == "bulk" else "lif_pe_array")
        r = runs[path] = run_network(b, q.network, xt)
        assert r.ok, r.failure
        assert r.summary["path"] == path
        assert r.summary["checked"]["mismatches"] == 0 and r.summary["checked"]["beats"] > 0
        assert np.array_equal(r.readout, np.swapaxes(fixed, 0, 1).reshape(r.readout.shape))
    a, b = runs["bulk"].summary, runs["bfm"].summary
    for k in ("checked", "cycles", "wload_cycles", "readback_cycles", "sample_first_cycle",
              "sample_mismatches", "tiles", "events"):
        assert a[k] == b[k], k
    assert a["blocks"] == 1 and a["cycles"] > a["wload_cycles"] + a["readback_cycles"] > 0


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
                "tile": b.wire_tile, "group": b.group, "last": b.last, "readout": b.readout}
    for b in beats[:3]:
        Stats.cycles += 10
        assert sb.check_beat(got(b))
    Stats.cycles += 10
    assert not sb.check_beat(got(beats[3], [1, 1, 6, 1]))   # the RTL said 6
    assert sb.n_mismatches == 1
    assert sb.readout[0, 0].tolist() == [1, 2, 3, 4, 7, 8]  # only the 6 real outputs
    assert sb.readout[1, 0].tolist() == [1, 1, 6, 1, 0, 0]  # what the RTL said, not the golden value
    assert sb.sample_first_cycle.tolist() == [10, 40]


def test_recording_scoreboard_check_beats_records_as_check_beat():
    """The bulk path's block check (check_beats + beat_cycles) records the same
    read-out, sample cycles and per-sample mismatches as one beat at a time."""
    from golden.schedule import Beat
    from tb.demo_cocotb import RecordingScoreboard
    cfg = HwConfig(array=8, groups=2)            # S = 4 slots per group
    z = np.zeros(4, dtype=np.int64)
    beats = [Beat(z, z + 5, 0, 0, 0, 0, 0, 0, 0),                       # a LIF beat, sample 0
             Beat(z, np.array([1, 2, 3, 4]), 0, 0, 0, 1, 1, 0, 0),      # read-out, sample 0, t 0
             Beat(z, np.array([7, 8, 9, 10]), 0, 1, 1, 1, 1, 0, 0),     # group 1: neurons 4..7
             Beat(z, z + 5, 0, 0, 0, 0, 0, 0, 1),                       # sample 1
             Beat(z, np.array([1, 1, 1, 1]), 0, 0, 0, 1, 1, 0, 1)]
    seen = [b.values.copy() for b in beats]
    seen[4][2] = 6                                                      # the RTL said 6
    cycles = [10, 20, 30, 40, 50]

    def one_at_a_time():
        class Stats:
            cycles = 0
        sb = RecordingScoreboard(cfg, beats)
        sb.attach(samples=2, timesteps=1, outputs=6, stats=Stats, progress=None)
        for b, v, c in zip(beats, seen, cycles):
            Stats.cycles = c
            sb.check_beat({"spikes": list(b.spikes), "values": list(v), "tile": b.tile,
                           "group": b.group, "last": b.last, "readout": b.readout})
        return sb

    def in_blocks():
        sb = RecordingScoreboard(cfg, beats)
        sb.attach(samples=2, timesteps=1, outputs=6, stats=None, progress=None)
        for lo, hi in ((0, 2), (2, 5)):
            sb.beat_cycles(np.array(cycles[lo:hi]))
            sb.check_beats({"spikes": np.stack([b.spikes for b in beats[lo:hi]]),
                            "values": np.stack(seen[lo:hi]),
                            **{k: np.array([getattr(b, k) for b in beats[lo:hi]])
                               for k in ("tile", "group", "last", "readout")}})
        return sb

    a, b = one_at_a_time(), in_blocks()
    assert a.n_mismatches == b.n_mismatches == 1
    assert a.sample_mismatches.tolist() == b.sample_mismatches.tolist() == [0, 1]
    assert np.array_equal(a.readout, b.readout) and b.readout[1, 0].tolist() == [1, 1, 6, 1, 0, 0]
    assert a.sample_first_cycle.tolist() == b.sample_first_cycle.tolist() == [10, 40]
    assert a.counts() == b.counts()


def _readme_golden_example() -> str:
    """The first ```python block of README.md's "Using the golden models" section."""
    text = (REPO / "README.md").read_text()
    section = text.split("## Using the golden models", 1)[1].split("\n## ", 1)[0]
    assert "```python\n" in section, "README: no python block under 'Using the golden models'"
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_readme_golden_model_example_runs_and_is_seeded():
    """README's golden-model example runs, prints the float-vs-fixed agreement
    report, and prints the same thing twice (seeded)."""
    code = _readme_golden_example()
    outs = []
    for _ in range(2):
        p = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                           timeout=300)
        assert p.returncode == 0, p.stderr
        outs.append(p.stdout)
    out = outs[0]
    assert outs[0] == outs[1], "the README example is not seeded: two runs printed different reports"
    assert out.startswith("## Quantization") and "* frac_bits = " in out
    for title in ("### float model vs fixed point",
                  "### float model with quantized weights/λ/θ vs fixed point"):
        table = out.split(title, 1)[1]
        assert all(f"| layer{i} |" in table for i in range(3))
        assert "argmax agreement" in table
