"""Gradient error and saved-tensor memory of the reversible backward (golden/reversible.py).

For an L+C#N block of two 3x3 conv layers plus a linear read-out, prints a
markdown table over dtype, λ, timesteps T, groups N and checkpoint interval
K: the chain length (T·2·N reverse steps), the largest relative error of the
weight gradients against plain autograd, the reconstruction error of the
chain's initial membrane (true value 0), and the bytes autograd saves for
backward (parameters excluded) with plain BPTT and with the reversible
backward.

    .venv/bin/python benchmarks/reversible_error.py [--batch 8] [--full]
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from golden.lif import LIFParams  # noqa: E402
from golden.reference import EfficientLIFNet, LayerSpec, with_scheme  # noqa: E402
from golden.reversible import ChainTape, saved_bytes  # noqa: E402


def build(groups, params, dtype, backward, k=None):
    layers = [LayerSpec("conv", (2, 8, 8), 8, kernel=3, padding=1, name="c0"),
              LayerSpec("conv", (8, 8, 8), 8, kernel=3, padding=1, name="c1"),
              LayerSpec("linear", (512,), 10, mode="readout", name="fc")]
    layers, g = with_scheme(layers, f"L+C#{groups}")
    return EfficientLIFNet(layers, g, params, backward=backward, checkpoint_every=k, dtype=dtype,
                           init_gain=3.0)


def grads(net, x):
    y = net(x)
    loss = torch.nn.functional.cross_entropy(y, torch.arange(y.shape[0]) % y.shape[1])
    return torch.autograd.grad(loss, list(net.parameters()))


def measure(dtype, leak, T, groups, k, batch):
    p = LIFParams(leak=leak)
    ref = build(groups, p, dtype, "autograd")
    rev = build(groups, p, dtype, "reversible", k)
    rev.load_state_dict(ref.state_dict())
    g = torch.Generator().manual_seed(0)
    x = (torch.rand((T, batch, 2, 8, 8), generator=g) < 0.3).to(dtype)
    tapes = []
    orig = ChainTape.__init__

    def spy(self, *a, **kw):
        orig(self, *a, **kw)
        tapes.append(self)

    ChainTape.__init__ = spy
    try:
        gr = grads(rev, x)
    finally:
        ChainTape.__init__ = orig
    ga = grads(ref, x)
    err = max(float((a - b).norm() / a.norm()) if float(a.norm()) else 0.0 for a, b in zip(ga, gr))
    init_err = max(t.initial_error for t in tapes if t.initial_error is not None)
    sa, sr = saved_bytes(ref, x), saved_bytes(rev, x)
    return err, init_err, sa.total, sr.total


def fmt(v):
    return "nan" if v != v else ("inf" if math.isinf(v) else f"{v:.1e}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--full", action="store_true", help="a larger sweep")
    args = ap.parse_args(argv)
    if args.batch < 1:
        ap.error("--batch must be >= 1")
    torch.set_num_threads(1)
    leaks = (0.25, 0.5, 0.75, 1.0) if args.full else (0.25, 0.5, 0.75)
    ts = (1, 2, 4, 8) if args.full else (2, 4, 8)
    groups = (2, 4)
    ks = (None, 8, 4, 2)
    print("| dtype | λ | T | N | chain steps | K | max rel. grad error | initial V error "
          "| saved bytes BPTT | saved bytes reversible | ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for dtype, leak, T, n, k in itertools.product((torch.float32, torch.float64), leaks, ts, groups, ks):
        if k is not None and k >= T * 2 * n:
            continue
        err, ie, ba, br = measure(dtype, leak, T, n, k, args.batch)
        print(f"| {str(dtype).replace('torch.', '')} | {leak} | {T} | {n} | {T * 2 * n} | {k or '-'} "
              f"| {fmt(err)} | {fmt(ie)} | {ba} | {br} | {br / ba:.3f} |", flush=True)


if __name__ == "__main__":
    main()
