"""A small conv network with bias (folded BatchNorm, docs/fixed-point.md F2b) and
max pooling of spikes, bit-exact on the RTL: ``python -m tb.run`` on Verilator
checks every beat and membrane row against the golden model, which adds the
bias through always-on bias rows (split over several rows where a bias exceeds
the weight range) and pools on the host side of the schedule.
"""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr, redirect_stdout

import numpy as np

from golden.cli import run_main
from golden.config import HwConfig
from golden.fixed_model import run_fixed
from golden.mapping import layer_bias_rows
from golden.network import Layer, Network, save_network


def ops_network() -> Network:
    """conv 2->8 (+bias, split over 3 rows) -> pool 2 -> conv 8->8 (+bias, L block with the next)
    -> conv 8->8 -> pool 2, flatten -> linear readout 32->4 (+bias)."""
    rng = np.random.default_rng(21)
    w = lambda *s: rng.integers(-30, 29, s)          # noqa: E731
    b = lambda n: rng.integers(-300, 301, n)         # noqa: E731
    return Network((2, 8, 8), (
        Layer.conv((2, 8, 8), w(8, 2, 3, 3), padding=1, name="conv1", bias=b(8)),
        Layer.conv((8, 4, 4), w(8, 8, 3, 3), padding=1, name="conv2", pool=2, bias=b(8), block=1),
        Layer.conv((8, 4, 4), w(8, 8, 3, 3), padding=1, name="conv3", block=1),
        Layer.linear(w(4, 32), mode="readout", name="fc", pool=2, bias=b(4)),
    ))


def test_ops_network_does_something():
    net = ops_network()
    cfg = HwConfig(array=8, groups=2, theta_int=64, leak_int=200)
    assert layer_bias_rows(cfg, net.layers[0]) >= 2
    x = (np.random.default_rng(22).random((3, 2, 2, 8, 8)) < 0.3).astype(np.uint8)
    res = run_fixed(cfg, net, x)
    for i in range(3):
        assert 0 < res.layers[i].spikes.mean() < 1, f"layer {i} must fire, but not everywhere"


def test_ops_network_bit_exact_on_verilator(tmp_path):
    from tb import run
    net = ops_network()
    save_network(net, tmp_path / "net.npz")
    x = (np.random.default_rng(22).random((2, 3, 2, 8, 8)) < 0.3).astype(np.uint8)
    np.save(tmp_path / "x.npy", x)
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = run_main(run._main, run.PROG, [
            "--network", str(tmp_path / "net.npz"), "--inputs", str(tmp_path / "x.npy"),
            "--array", "8", "--groups", "2", "--workers", "1", "--stress", "1",
            "--cfg", "theta_int=64", "leak_int=200", "--out", str(tmp_path / "out")])
    assert code == 0, out.getvalue()[-3000:] + err.getvalue()[-3000:]
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    c = doc["checked"]
    assert doc["ok"] and doc["golden_equal"]
    assert c["mismatches"] == 0 and c["beats"] == c["beats_expected"] > 0
    assert c["membrane_words"] > 0
    # the RTL's read-out equals the golden model's, which differs from the same
    # network without its biases / without pooling: the RTL did add the bias rows
    cfg = HwConfig.from_dict(doc["config"]) if "config" in doc else None
    got = np.load(tmp_path / "out" / "outputs.npy")
    xt = x.transpose(1, 0, 2, 3, 4)
    cfg = cfg or HwConfig(array=8, groups=2, theta_int=64, leak_int=200)
    want = run_fixed(cfg, net, xt).output.swapaxes(0, 1)            # [samples, T, 4]
    np.testing.assert_array_equal(got.reshape(want.shape), want)
    assert not np.array_equal(want[0], want[1]), "the samples must differ"
    plain = Network(net.in_shape, tuple(Layer(ly.kind, ly.in_shape, ly.out_channels, ly.weight,
                                              ly.kernel, ly.stride, ly.padding, ly.mode, ly.block,
                                              ly.name, ly.pool) for ly in net.layers))
    assert not np.array_equal(run_fixed(cfg, plain, xt).output.swapaxes(0, 1), want)
