"""Speed of the fixed-point model and the schedule builder (printed, never asserted).

    .venv/bin/python benchmarks/bench_fixed_model.py [--repeat 3]

Cases:
* run_fixed on a 128-channel 16x16 3x3 conv layer (padding 1), T=5, batch 8,
  random 8-bit weights (few saturations) and large positive weights (many
  neurons take the sequential F2 fallback);
* build_schedule for a small conv network on the default 128-PE C#4 build.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from golden.config import HwConfig  # noqa: E402
from golden.fixed_model import run_fixed  # noqa: E402
from golden.network import Layer, Network  # noqa: E402
from golden.schedule import build_schedule  # noqa: E402


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="runs per case; the best is printed")
    args = ap.parse_args(argv)
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    rng = np.random.default_rng(0)
    cfg = HwConfig()
    for label, lo, hi, rate in (("random weights", -128, 127, 0.2), ("saturating weights", -8, 127, 0.5)):
        spikes = (rng.random((5, 8, 128, 16, 16)) < rate).astype(np.uint8)
        layer = Layer.conv((128, 16, 16), rng.integers(lo, hi + 1, (128, 128, 3, 3)), padding=1)
        net = Network((128, 16, 16), (layer,))
        res = run_fixed(cfg, net, spikes)
        cur = res.layers[0].current
        sat = float(np.mean((cur == cfg.acc_max) | (cur == cfg.acc_min)))
        t = best_of(lambda net=net, spikes=spikes: run_fixed(cfg, net, spikes), args.repeat)
        print(f"run_fixed conv 128x16x16 k3 T=5 B=8 ({label}, {100 * sat:.1f}% saturated X): {t:.3f} s")

    cfg = HwConfig(array=128, groups=4, weight_rows=8192, mem_rows=256)
    l1 = Layer.conv((2, 16, 16), rng.integers(-40, 80, (16, 2, 3, 3)), padding=1, block=0, name="c1")
    l2 = Layer.conv((16, 16, 16), rng.integers(-20, 40, (16, 16, 3, 3)), padding=1, block=0, name="c2")
    l3 = Layer.linear(rng.integers(-30, 30, (10, 16 * 16 * 16)), mode="readout", name="fc")
    net = Network((2, 16, 16), (l1, l2, l3))
    sp = (rng.random((4, 5, 2, 16, 16)) < 0.3).astype(np.uint8)
    for rows in (65536, 4096):
        c_rows = cfg.replace(weight_rows=rows)
        sched = build_schedule(c_rows, net, sp)
        t = best_of(lambda c_rows=c_rows: build_schedule(c_rows, net, sp), args.repeat)
        c = sched.counts
        print(f"build_schedule 3-layer net, 4 samples x T=5, weight_rows={rows} "
              f"({sched.allocation.weights} weights): {t:.3f} s for {c['commands']} commands, "
              f"{c['beats']} beats, {c['weight_loads']} weight loads")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
