"""A full-size VGG16-CIFAR conv layer on the RTL (issue 12): 64 -> 64 channels,
3×3, 32×32, T = 2, ARRAY 128 GROUPS 4, weight-stationary mapping, random
command gaps and output backpressure, every beat and membrane row checked
against the golden model by ``python -m tb.run`` on Verilator.

At GROUPS 4 a group holds 16 channels, so a tile holds 2 positions × 16
channels per group (p = 2, kx = 4): 512 tiles share one weight block of
64·3·4 = 768 rows.
"""

from __future__ import annotations

import numpy as np
from tbrun_util import run_network

from golden.config import HwConfig
from golden.network import Layer, Network
from golden.schedule import plan_allocation


def vgg_layer() -> Network:
    rng = np.random.default_rng(12)
    w = rng.integers(-6, 12, (64, 64, 3, 3))
    return Network((64, 32, 32), (Layer.conv((64, 32, 32), w, padding=1, name="vgg_conv64"),))


def test_layout_of_the_vgg_layer():
    cfg = HwConfig(array=128, groups=4, weight_rows=1024, mem_rows=512)
    alloc = plan_allocation(cfg, vgg_layer())
    plan = alloc.plans[0]
    assert plan.mapping == "weight_stationary" and alloc.weights == "static"
    assert len(plan.tiles) == 512 and [b.rows for b in plan.blocks] == [768]
    # 75 % of a row's additions are real synapses (3 of 4 window columns per position)
    assert plan.blocks[0].synapses.sum() == 64 * 3 * 4 * 128 * 3 // 4


def test_vgg_layer_bit_exact_on_verilator(tmp_path):
    x = (np.random.default_rng(13).random((1, 2, 64, 32, 32)) < 0.15).astype(np.uint8)
    doc = run_network(tmp_path, vgg_layer(), x, "--array", "128", "--groups", "4", "--stress", "1")
    c = doc["checked"]
    assert doc["ok"] and doc["golden_equal"]
    assert c["mismatches"] == 0 and c["beats"] == c["beats_expected"] == 512 * 2 * 4
    assert c["membrane_words"] == 512 * 32 * 2
    outputs = np.load(tmp_path / "out" / "outputs.npy")
    assert 0 < outputs.mean() < 1       # the layer fires, but not everywhere
