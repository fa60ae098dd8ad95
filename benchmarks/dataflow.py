"""PE utilization and weight-load share of the dataflow (issue 12): prints, asserts nothing.

For VGG16 and ResNet19 at 32×32 (the conv-layer geometry of the
:mod:`golden.memory` architectures) and for the ``make sim`` test network,
at ARRAY=128 with GROUPS 1 and 4, it lays every layer onto the array with the
schedule's own mapping and allocation (:func:`golden.schedule.plan_allocation`,
:func:`golden.schedule.plan_passes`), draws random input spikes for every layer
at ``--rate`` (default 15 %), counts the EVENTs of every tile, and runs the
cycle model :func:`gen.timing.stream_cycles` (the timing rules of
docs/interface.md, an ideal host: no gaps, ``out__ready`` = 1, weight loads
overlapped with EVENTs as the fences allow). Per layer it prints tiles,
EVENTs, weight rows loaded, exposed weight-load cycles (cycles the command
stream waited for a load), LIF cycles (tiles × (N+1)), total cycles, the ideal
(real synaptic additions / A) and PE utilization = ideal / total.

Assumptions (printed): the weight buffer holds two of the largest weight
blocks (one chunk, double-buffered); the membrane buffer holds the state of a
mini-batch of ``--batch`` samples (issue 13 streams it otherwise); ``--timesteps``
timesteps; every other layer's input is random spikes at ``--rate``. VGG16's and
ResNet19's conv1 takes the image directly, as in the authors' networks (F2d,
``--conv1 direct``, the default): one image per sample, the same every
timestep, CIFAR-like normalized pixels (``--pixels gaussian``: N(0, 1);
``uniform``) quantized as ``golden.quantize.quantize_input`` does to signed
8-bit ``round(x·2^5)`` and fed as 24 bit-plane channels (``Network.input_spikes``;
the measured bit density, about 50 %, is printed); ``--conv1 spikes`` feeds 3
channels of spikes at ``--rate`` instead (the earlier benchmark). ResNet19's
shortcuts are counted (F2c): the second conv of a basic block adds the block's
input through a 1×1 stride-2 conv where a stage starts, else the identity
(whose EVENTs count one real synapse each). "before" is the position mapping
of the previous main with per-tile reloading while idle, from expected event
counts (without shortcuts).

The last line states, for VGG16-CIFAR at ARRAY=128 GROUPS=4, the ops-weighted
utilization, the worst layer's utilization and the weight-load share.

    python benchmarks/dataflow.py [--rate 0.15] [--batch 8] [--timesteps 2] [--seed 1]
                                  [--conv1 direct|spikes] [--pixels gaussian|uniform]
"""

from __future__ import annotations

import os
import resource
import sys
import time
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from gen.timing import PassTiming, stream_cycles  # noqa: E402
from golden.cli import OneLineParser, posint, run_main  # noqa: E402
from golden.config import HwConfig  # noqa: E402
from golden.geometry import LayerGeometry, sharing_units  # noqa: E402
from golden.mapping import tile_fanin_sizes  # noqa: E402
from golden.memory import ARCHS  # noqa: E402
from golden.schedule import PassPlan, plan_allocation, plan_passes  # noqa: E402

ARRAY = 128
#: Bits of the direct (image) input of conv1 (F2d): 3·8 = 24 bit-plane channels.
INPUT_BITS = 8


@dataclass
class GeoNet:
    """Layers without weights, as plan_allocation's geometry-only mode reads them.
    ``input_bits`` B > 0: direct input (F2d), ``in_shape`` holds the 3·B bit planes;
    ``identity``: layers whose shortcut is an identity (a 1×1 conv with one real
    synapse per shortcut EVENT)."""

    name: str
    in_shape: tuple
    layers: list
    input_bits: int = 0
    identity: frozenset = frozenset()

    def blocks(self) -> list:
        return sharing_units(self.layers)


def arch_net(name: str, size: int = 32, input_bits: int = INPUT_BITS) -> GeoNet:
    """Conv layers of a golden.memory architecture: 3×3, padding 1; VGG16 pools
    2×2 between stages (the next conv sees the pooled map), ResNet19 starts a
    stage with a stride-2 conv. Blocks as in golden.memory (L sharing).
    ``input_bits`` B > 0: conv1 takes the image directly as 3·B bit planes (F2d,
    the authors' networks); 0: 3 spike channels. ResNet19: the second conv of
    every basic block adds the block's input through its shortcut (F2c): a 1×1
    stride-2 conv where a stage starts (channels change), else the identity."""
    arch = ARCHS[name](size)
    prev = (3 * (input_bits or 1), size, size)
    layers, identity = [], set()
    for i, ly in enumerate(arch.layers):
        c, h, w = ly.shape
        stride = 2 if name.startswith("resnet") and prev[1] == 2 * h else 1
        cin_shape = (prev[0], h * stride, w * stride) if stride == 2 else (prev[0], h, w)
        block = None if ly.block is None else hash(ly.block) % (1 << 30)
        skip = {}
        if name.startswith("resnet") and i > 0 and i % 2 == 0:
            # layer i closes the basic block of layers i-1, i; its input is layer i-2's output
            src = layers[i - 2]
            sshape = src.out_chw
            sst = sshape[1] // h
            skip = dict(skip=i - 2, skip_in_shape=sshape, skip_stride=sst)
            if sst == 1 and sshape[0] == c:
                identity.add(i)
        layers.append(LayerGeometry("conv", cin_shape, c, 3, stride, 1, "chained", block, ly.name, **skip))
        prev = (c, h, w)
    return GeoNet(f"{name}-{size}", layers[0].in_shape, layers, input_bits, frozenset(identity))


def pixel_planes(net: GeoNet, rng, pixels: str) -> np.ndarray:
    """One direct-input sample as bit-plane spikes ``[3·B·H·W]`` (uint8): CIFAR-like
    pixels quantized as golden.quantize.quantize_input does with the quantizer's
    default signed B-bit input and ``input_frac_bits = B − 3`` (range ±4):
    ``gaussian``: per-channel normalized pixels, x ~ N(0, 1); ``uniform``: x ~
    U(−1.96, 1.96) (normalized flat histogram). Channel c·B + b is bit b
    (Network.input_spikes)."""
    from golden.network import Network
    b = net.input_bits
    img = (3,) + tuple(net.in_shape[1:])
    x = rng.standard_normal(img) if pixels == "gaussian" else rng.uniform(-1.96, 1.96, img)
    lo, hi = -(1 << (b - 1)), (1 << (b - 1)) - 1
    q = np.clip(np.round(x * 2.0 ** (b - 3)), lo, hi).astype(np.int64)
    view = SimpleNamespace(input_bits=b, image_shape=img, in_shape=tuple(net.in_shape),
                           input_range=(lo, hi), input_signed=True)
    return Network.input_spikes(view, q).ravel()


def sim_net(cfg: HwConfig) -> GeoNet:
    """The ``make sim`` test network (tb.stimulus.make_network, seed 1) as geometry."""
    from tb.stimulus import make_network
    net = make_network(cfg, 1, True)
    return GeoNet("make-sim", net.in_shape, list(net.layers))


def largest_block(cfg: HwConfig, net: GeoNet) -> int:
    probe = cfg.replace(weight_rows=1 << 16)
    alloc = plan_allocation(probe, net, samples=1, weights=False)
    return max(b.rows for p in alloc.plans.values() for b in p.blocks)


def run(net: GeoNet, groups: int, rate: float, batch: int, timesteps: int, seed: int,
        weight_rows: int | None = None, pixels: str = "gaussian") -> dict:
    """Lay ``net`` out, draw spikes, run the cycle model; per-layer figures."""
    cfg = HwConfig(array=ARRAY, groups=groups, weight_rows=1 << 16, mem_rows=1 << 16)
    rows = weight_rows or min(1 << 16, 2 * largest_block(cfg, net))
    cfg = cfg.replace(weight_rows=rows)
    alloc = plan_allocation(cfg, net, samples=batch, weights=False)
    cfg = cfg.replace(mem_rows=max(1, alloc.sample_rows * batch))
    alloc = plan_allocation(cfg, net, samples=batch, weights=False)
    rng = np.random.default_rng(seed)
    inputs = {}
    timings, owners = [], []
    per = {i: {"tiles": 0, "events": 0, "synapses": 0, "loads": 0} for i in range(len(net.layers))}

    def spikes(sample, t, i):
        """Layer ``i``'s input: bit planes of one image per sample (the same every
        timestep) for a direct-input conv1, else random spikes at ``rate``."""
        key = (sample, 0 if i == 0 and net.input_bits else t, i)
        if key not in inputs:
            inputs[key] = (pixel_planes(net, rng, pixels).astype(bool) if i == 0 and net.input_bits
                           else rng.random(int(np.prod(net.layers[i].in_shape))) < rate)
        return inputs[key]

    item_to_pass = {}
    for item, pp in enumerate(plan_passes(cfg, net, alloc, batch, timesteps)):
        if not isinstance(pp, PassPlan):
            continue
        item_to_pass[item] = len(timings)
        i = pp.layer
        x = spikes(pp.sample, pp.t, i)
        # the shortcut's input is the block's input: the source layer's output spikes
        skip = net.layers[i].skip
        xs = None if skip is None else spikes(pp.sample, pp.t, skip + 1)
        plan = alloc.plans[i]
        events, loads = [], 0
        for k, _, load in pp.blocks:
            blk = plan.blocks[k]
            loads += blk.rows if load else 0
            for j in range(blk.j0, blk.j1):
                tp = plan.tiles[j]
                rel = tp.rows[x[tp.fanin]]
                nev = int(rel.size) + tp.bias_rows.size
                per[i]["synapses"] += int(blk.synapses[rel].sum())
                if xs is not None:
                    srel = tp.skip_rows[xs[tp.skip_fanin]]
                    nev += int(srel.size)
                    # an identity shortcut's EVENT feeds one neuron; a 1×1 conv's all it reaches
                    per[i]["synapses"] += (int(srel.size) if i in net.identity
                                           else int(blk.synapses[srel].sum()))
                    per[i]["skip_events"] = per[i].get("skip_events", 0) + int(srel.size)
                events.append(nev)
        per[i]["tiles"] += len(events)
        per[i]["events"] += sum(events)
        per[i]["loads"] += loads
        after = item_to_pass[pp.loads_after] if pp.loads_after >= 0 else -1
        timings.append(PassTiming(events, int(pp.layer_cmd), loads, after, pp.wait_idle))
        owners.append(pp)
    res = stream_cycles(timings, cfg)
    prev_end = 0
    for pp, (end, lw) in zip(owners, res["passes"]):
        d = per[pp.layer]
        d["cycles"] = d.get("cycles", 0) + end - prev_end
        d["load_wait"] = d.get("load_wait", 0) + lw
        prev_end = end
    last = len(owners) - 1
    per[owners[last].layer]["cycles"] += res["cycles"] - prev_end
    for d in per.values():
        d["lif"] = d["tiles"] * (groups + 1)
        d["ideal"] = d["synapses"] / ARRAY
        d["util"] = d["ideal"] / max(1, d["cycles"])
    mappings = {i: alloc.plans[i].mapping for i in per}
    return {"cfg": cfg, "alloc": alloc, "per": per, "total": res, "mappings": mappings,
            "names": [lay.name or str(i) for i, lay in enumerate(net.layers)],
            "largest": max(b.rows for p in alloc.plans.values() for b in p.blocks)}


def before(net: GeoNet, groups: int, rate: float) -> float:
    """Utilization of the previous main's position mapping with per-tile reloads
    (loads while idle, then the tile's EVENTs), from expected event counts."""
    cfg = HwConfig(array=ARRAY, groups=groups, weight_rows=1 << 16, mem_rows=1 << 16)
    ideal = cycles = 0.0
    for layer in net.layers:
        f = tile_fanin_sizes(cfg, layer).astype(np.float64)
        cycles += float((f + np.maximum(rate * f + 1, groups + 1) + groups + 3).sum())
        ideal += rate * float(np.prod(layer.in_shape)) * _synapses_per_input(layer) / ARRAY
    return ideal / cycles


def _synapses_per_input(layer) -> float:
    """Average real synapses per input spike: C_out × k² × (outputs / inputs positions)."""
    if layer.kind == "linear":
        return float(layer.out_channels)
    cin, hi, wi = layer.in_shape
    c, ho, wo = layer.out_chw
    return c * layer.kernel ** 2 * (ho * wo) / (hi * wi)


def table(name: str, r: dict) -> list:
    per, cfg = r["per"], r["cfg"]
    out = [f"{name}: ARRAY={ARRAY} GROUPS={cfg.groups}, weight buffer {cfg.weight_rows} rows "
           f"({cfg.weight_rows / r['largest']:.2f} x the largest weight block), mini-batch {r['alloc'].batch}",
           f"  {'layer':<10} {'mapping':<18} {'tiles':>7} {'EVENTs':>9} {'rows ld':>8} {'ld wait':>8} "
           f"{'LIF':>8} {'cycles':>9} {'ideal':>9} {'util':>6}"]
    for i, d in per.items():
        out.append(f"  {r['names'][i][:10]:<10} {r['mappings'][i]:<18} {d['tiles']:>7} {d['events']:>9} {d['loads']:>8} "
                   f"{d['load_wait']:>8} {d['lif']:>8} {d['cycles']:>9} {d['ideal']:>9.0f} "
                   f"{100 * d['util']:>5.1f}%")
    tot = r["total"]
    ideal = sum(d["ideal"] for d in per.values())
    out.append(f"  total: {tot['cycles']} cycles, ideal {ideal:.0f}, utilization "
               f"{100 * ideal / tot['cycles']:.1f} % (ops-weighted), worst layer "
               f"{100 * min(d['util'] for d in per.values()):.1f} %, exposed weight-load cycles "
               f"{tot['load_wait']} ({100 * tot['load_wait'] / tot['cycles']:.2f} %), weight rows "
               f"loaded {tot['loads']} ({100 * tot['loads'] / tot['cycles']:.1f} % of the cycles, "
               f"overlapped with EVENTs)")
    return out


def main(argv=None) -> int:
    ap = OneLineParser(prog="benchmarks/dataflow.py", description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=float, default=0.15, help="input spike rate of every layer")
    ap.add_argument("--batch", type=posint("--batch", 64), default=8,
                    help="samples per weight load (membrane buffer holds their state)")
    ap.add_argument("--timesteps", type=posint("--timesteps", 8), default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--conv1", choices=("direct", "spikes"), default="direct",
                    help=f"VGG16/ResNet19 conv1 input: the image as {INPUT_BITS}-bit planes (the authors' "
                         f"networks; default) or 3 channels of spikes at --rate (the earlier benchmark)")
    ap.add_argument("--pixels", choices=("gaussian", "uniform"), default="gaussian",
                    help="distribution of the normalized pixels of a direct-input conv1")
    a = ap.parse_args(argv)
    if not 0.0 < a.rate <= 1.0:
        ap.error(f"--rate {a.rate}: expected 0 < rate <= 1")
    t0, cpu0 = time.monotonic(), resource.getrusage(resource.RUSAGE_SELF).ru_utime
    bits = INPUT_BITS if a.conv1 == "direct" else 0
    nets = [arch_net("vgg16", input_bits=bits), arch_net("resnet19", input_bits=bits)]
    print(f"rate {a.rate}, batch {a.batch}, T={a.timesteps}, seed {a.seed}; load {os.getloadavg()[0]:.2f}")
    if bits:
        density = pixel_planes(nets[0], np.random.default_rng(a.seed), a.pixels).mean()
        print(f"VGG16/ResNet19 conv1: direct input, {a.pixels} normalized pixels quantized to signed "
              f"{bits}-bit round(x·2^{bits - 3}) (golden.quantize.quantize_input), fed as "
              f"{3 * bits} bit-plane channels (F2d); measured bit density {100 * density:.1f} %")
    else:
        print(f"VGG16/ResNet19 conv1: 3 channels of random spikes at {a.rate} (--conv1 spikes)")
    print("ResNet19: shortcuts counted (F2c): 1×1 stride-2 conv where a stage starts, identity "
          "elsewhere (one real synapse per shortcut EVENT)")
    summary = {}
    for net in nets + [None]:
        for groups in (1, 4):
            cfg = HwConfig(array=ARRAY, groups=groups)
            n = net or sim_net(cfg)
            if net is None:
                # the make-sim run: its build's 256-row buffer, 3 samples, T = 3
                r = run(n, groups, a.rate, 3, 3, a.seed, weight_rows=cfg.weight_rows)
                for line in table(n.name + " (make sim build)", r):
                    print(line)
            r = run(n, groups, a.rate, a.batch, a.timesteps, a.seed, pixels=a.pixels)
            for line in table(n.name, r):
                print(line)
            b = before(n, groups, a.rate)
            print(f"  before (position mapping, per-tile reload): utilization {100 * b:.1f} %")
            summary[(n.name, groups)] = r
    cpu = resource.getrusage(resource.RUSAGE_SELF).ru_utime - cpu0
    print(f"time {time.monotonic() - t0:.1f} s wall, {cpu:.1f} CPU-s, load {os.getloadavg()[0]:.2f}")
    for groups in (1, 4):
        r = summary[("vgg16-32", groups)]
        per, tot = r["per"], r["total"]
        ideal = sum(d["ideal"] for d in per.values())
        worst = min(per, key=lambda i: per[i]["util"])
        rest = min(per[i]["util"] for i in per if i != 0)
        print(f"VGG16-CIFAR ARRAY=128 GROUPS={groups}: utilization {100 * ideal / tot['cycles']:.1f} % "
              f"ops-weighted, worst layer {100 * per[worst]['util']:.1f} % ({nets[0].layers[worst].name}; "
              f"worst after conv1 {100 * rest:.1f} %), weight-load share "
              f"{100 * tot['load_wait'] / tot['cycles']:.2f} % exposed, {100 * tot['loads'] / tot['cycles']:.2f} % "
              f"loaded (weight buffer {r['cfg'].weight_rows} rows = 2 chunks, batch {r['alloc'].batch})")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, "benchmarks/dataflow.py"))
