"""One VGG16-CIFAR-size sample, bit-exact on the RTL: prints figures, asserts nothing.

``python benchmarks/vgg_sample.py [--array 128] [--groups 4] [-T 5] [--rate 0.15] [--seed 1]``

Builds an integer network of the VGG16-CIFAR geometry of
:func:`golden.memory.vgg16` (input 3x32x32; 13 conv 3x3 layers, padding 1,
channels 128,128 | 256,256 | 256x3 | 512x3 | 512x3, 2x2 OR max-pooling of the
input spikes at the first layer of every stage after the first, L-shared
membranes per stage from stage 2 on as in golden.memory, C#N chained; then a
read-out linear layer 512 -> 10 after a last 2x2 pool) with random weights
calibrated layer by layer, so that the spike rates stay in a realistic band:
for each layer in turn, the weight scale (weights ``round(s * (z + 0.5))``,
``z`` standard normal, clipped to the weight width) is bisected until the
layer, fed the previous layer's golden spikes, fires at ``--rate`` (default
15 %) on average over T (the layer alone, without its L-sharing, which the
printed rates of the whole network then include). The input is Bernoulli
spikes at ``--input-rate``.

It runs one sample, T timesteps (weight-stationary mapping where the
schedule's :func:`golden.mapping.choose_mappings` picks it), through
:func:`tb.shard.run_shard` (what ``python -m tb.run`` runs per shard:
golden schedule, bulk path on Verilator at ARRAY x GROUPS, every beat and
membrane row checked, the outputs compared with
:func:`golden.fixed_model.run_fixed`), and prints the per-layer spike rates,
the cycles, CPU seconds (this process, the simulating child, and the
simulator's own checked run), wall time, load average and the result
(bit-exact or the mismatches). The build is timed apart (cached once built).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

STAGES = ((128, 2), (256, 2), (256, 3), (512, 3), (512, 3))   # golden.memory.vgg16, CIFAR


def _cpu(who=resource.RUSAGE_SELF) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def _weights(rng, shape, scale: float, wmax: int) -> np.ndarray:
    z = rng.standard_normal(shape)
    return np.clip(np.rint(scale * (z + 0.5)), -wmax - 1, wmax).astype(np.int64)


def _rate_of(cfg, layer_fn, x, scale):
    from golden.fixed_model import run_fixed
    from golden.network import Network
    layer = layer_fn(scale)
    net = Network(x.shape[2:], (layer,))
    spikes = run_fixed(cfg, net, x).layers[0].spikes
    return float(spikes.mean()), layer, spikes


def calibrate(cfg, layer_fn, x, rate: float, lo=0.05, hi=64.0, steps=10):
    """Bisect the weight scale of ``layer_fn(scale)`` (the layer alone, fed
    ``x`` [T, 1, *in_shape]) for a mean spike rate of ``rate``."""
    best = None
    for _ in range(steps):
        mid = (lo * hi) ** 0.5
        r, layer, sp = _rate_of(cfg, layer_fn, x, mid)
        if best is None or abs(r - rate) < abs(best[0] - rate):
            best = (r, layer, sp, mid)
        if abs(r - rate) < 0.01:
            break
        lo, hi = (mid, hi) if r < rate else (lo, mid)
    return best


def vgg_network(cfg, rng, x0, rate: float):
    """The calibrated network; ``x0`` [T, 1, 3, 32, 32] input spikes."""
    from golden.geometry import pool_spikes
    from golden.network import Layer, Network
    wmax = (1 << (cfg.weight_width - 1)) - 1
    layers, x, cin, size = [], x0, 3, 32
    for si, (ch, count) in enumerate(STAGES):
        for k in range(count):
            pool = 2 if si and k == 0 else 1
            block = si if si else None
            name = f"stage{si + 1}.{k}"

            seed = int(rng.integers(1 << 30))

            pshape = (cin, size // pool, size // pool)

            def fn(s, pshape=pshape, ch=ch, name=name, seed=seed):
                w = _weights(np.random.default_rng(seed), (ch, pshape[0], 3, 3), s, wmax)
                return Layer.conv(pshape, w, padding=1, name=name)
            xp = x if pool == 1 else \
                pool_spikes(x.reshape((-1,) + x.shape[2:]), pool).reshape(x.shape[:2] + pshape)
            r, layer, sp, scale = calibrate(cfg, fn, xp, rate)
            print(f"  {name}: {cin}->{ch} ch at {pshape[1]}x{pshape[2]}, "
                  f"weight scale {scale:.2f}, rate alone {100 * r:.1f}%", flush=True)
            layers.append(Layer.conv(pshape, layer.weight, padding=1, pool=pool, name=name,
                                     block=block))
            x = sp.astype(np.uint8)
            cin, size = ch, x.shape[-1]
    w = rng.integers(-8, 9, (10, cin * (size // 2) ** 2))
    layers.append(Layer.linear(w, mode="readout", name="readout", pool=2))
    return Network(x0.shape[2:], tuple(layers))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python benchmarks/vgg_sample.py",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--array", type=int, default=128)
    ap.add_argument("--groups", type=int, default=4)
    ap.add_argument("-T", "--timesteps", type=int, default=5)
    ap.add_argument("--rate", type=float, default=0.15, help="target spike rate per layer")
    ap.add_argument("--input-rate", type=float, default=0.15)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--stress", type=int, choices=(0, 1), default=0,
                    help="1: random command gaps and backpressure")
    a = ap.parse_args(argv)

    from golden.config import HwConfig
    from golden.fixed_model import run_fixed
    from golden.schedule import build_schedule
    from tb.run import choose_config
    from tb.shard import build_for, run_shard

    load0 = os.getloadavg()
    t0, c0 = time.monotonic(), _cpu()
    base = HwConfig(array=a.array, groups=a.groups)
    rng = np.random.default_rng(a.seed)
    x0 = (rng.random((a.timesteps, 1, 3, 32, 32)) < a.input_rate).astype(np.uint8)
    net = vgg_network(base, rng, x0, a.rate)
    cfg, need = choose_config(net, base, {})
    t_cal, c_cal = time.monotonic() - t0, _cpu() - c0
    print(f"vgg_sample: VGG16-CIFAR ({len(net.layers)} layers), T={a.timesteps}, 1 sample, "
          f"{cfg.name}; load average {load0[0]:.2f} at start", flush=True)
    print(f"calibration: {t_cal:.1f} s wall, {c_cal:.1f} CPU-s", flush=True)

    t1, c1 = time.monotonic(), _cpu()
    res = run_fixed(cfg, net, x0)
    t_fixed, c_fixed = time.monotonic() - t1, _cpu() - c1
    t1, c1 = time.monotonic(), _cpu()
    sched = build_schedule(cfg, net, np.swapaxes(x0, 0, 1))
    t_sched, c_sched = time.monotonic() - t1, _cpu() - c1
    maps = sorted({p.mapping for p in sched.allocation.plans.values()})
    print(f"golden: run_fixed {t_fixed:.2f} s ({c_fixed:.2f} CPU-s), build_schedule "
          f"{t_sched:.2f} s ({c_sched:.2f} CPU-s); mappings {', '.join(maps)}; "
          f"weights {sched.allocation.weights}; {sched.counts.get('commands', 0)} commands, "
          f"{sched.counts.get('beats', 0)} beats, {sched.counts.get('weight_loads', 0)} "
          f"weight loads", flush=True)
    print("spike rates per layer (whole network, mean over T): " + ", ".join(
        f"{ly.name} {100 * float(tr.spikes.mean()):.1f}%"
        for ly, tr in zip(net.layers, res.layers) if ly.mode != "readout"), flush=True)

    t1, c1, k1 = time.monotonic(), _cpu(), _cpu(resource.RUSAGE_CHILDREN)
    b = build_for(cfg, "verilator", "bulk")
    print(f"build: {'reused' if b.reused else 'built'} in {time.monotonic() - t1:.1f} s wall, "
          f"{_cpu() - c1 + _cpu(resource.RUSAGE_CHILDREN) - k1:.1f} CPU-s", flush=True)

    t1, c1, k1 = time.monotonic(), _cpu(), _cpu(resource.RUSAGE_CHILDREN)
    r = run_shard(cfg, net, np.swapaxes(x0, 0, 1), [0], "verilator", stress=bool(a.stress),
                  seed=a.seed, repro="python benchmarks/vgg_sample.py")
    wall = time.monotonic() - t1
    cpu_self, cpu_child = _cpu() - c1, _cpu(resource.RUSAGE_CHILDREN) - k1
    cyc = r.cycles.get("cycles", 0)
    load1 = os.getloadavg()
    print(f"run: {cyc:,} cycles; wall {wall:.1f} s; CPU {cpu_self + cpu_child:.1f} s "
          f"(this process {cpu_self:.1f}, simulating child {cpu_child:.1f}, of which the "
          f"checked run {r.run_cpu_seconds:.1f}: {cyc / max(r.run_cpu_seconds, 1e-9):,.0f} "
          f"cycles/CPU-s); load average {load1[0]:.2f}", flush=True)
    print(f"checked: {r.checked}", flush=True)
    if r.ok:
        print("result: bit-exact (every beat and membrane row, and the outputs equal "
              "golden.fixed_model.run_fixed)")
    else:
        print(f"result: MISMATCH ({sum(r.sample_mismatches)} mismatches; outputs equal run_fixed: "
              f"{r.golden_equal})\n{(r.failure or '')[:2000]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
