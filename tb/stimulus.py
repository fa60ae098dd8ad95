"""Seeded random networks and input spikes for the co-simulation.

:func:`make_network` builds, for any :class:`~golden.config.HwConfig`, a
six-layer network that exercises every feature of the core:

=====  ===========  ===========================  ======================
layer  name         kind                         mode
=====  ===========  ===========================  ======================
0      conv_in      conv 3x3, pad 1              chained (C#N)
1      blk_a        conv 3x3, pad 1, C -> C      chained, block 0 (L)
2      blk_b        conv 3x3, pad 1, C -> C      chained, block 0 (L)
3      fc_chain     linear                       chained (C#N)
4      fc_indep     linear                       independent
5      readout      linear                       readout
=====  ===========  ===========================  ======================

With ``layer_share=False`` layers 1 and 2 get separate membranes. Sizes scale
with the array so every LIF layer has at least two tiles and (where the
array allows it) a partially filled last tile, while every tile's fan-in fits
``weight_rows`` and all membrane regions fit ``mem_rows``.

Weights are biased per layer so that activity propagates and, with dense
input, membranes saturate at both ends of their range. :func:`make_spikes`
draws one sample per density in :data:`DENSITIES` (sparse, dense,
saturating), cycling when more samples are asked for.
"""

from __future__ import annotations

import math

import numpy as np

from golden.config import HwConfig
from golden.network import Layer, Network, NetworkError
from golden.mapping import choose_mappings, membrane_rows_of_block
from golden.errors import ProjectError

__all__ = ["StimulusError", "DENSITIES", "make_network", "make_spikes"]

#: Input spike probability per sample: sparse, dense, saturating.
DENSITIES = (0.06, 0.45, 0.97)


class StimulusError(ProjectError, ValueError):
    """No test network fits the configuration; the message says why."""


def _conv_shapes(cfg: HwConfig, rng: np.random.Generator) -> list[tuple[int, int]]:
    """Candidate (channels C, side hw) of the conv stage, best first: C
    divisible by N, C*hw*hw <= weight_rows (it feeds a linear layer), >= 2
    chained tiles, preferring a partially filled last tile and few tiles."""
    n, s, wr = cfg.groups, cfg.slots, cfg.weight_rows
    scored = []
    for k0 in range(1, 9):
        for hw in range(1, 11):
            c = n * k0
            size = c * hw * hw
            if size > wr:
                continue
            slots = k0 * hw * hw
            tiles = -(-slots // s)
            partial = slots % s != 0
            score = (tiles >= 2) * 4 + partial * 2 + (tiles <= 4) - (hw < 3) - 4 * (hw < 2)
            scored.append((-score, tiles, float(rng.random()), c, hw))
    if not scored:
        raise StimulusError(f"{cfg.name}: weight_rows={wr} is too small for a conv layer "
                            f"with groups={n} channels")
    return [(c, hw) for *_, c, hw in sorted(scored)]


def _weights(rng, shape, lo, hi, cfg, strong_frac=0.0) -> np.ndarray:
    """Uniform integer weights in [lo, hi] of the weight range (fractions);
    ``strong_frac`` of the output rows get saturating-size weights of one sign."""
    wmin, wmax = cfg.weight_min, cfg.weight_max
    a, b = int(round(lo * (wmax if lo > 0 else -wmin))), int(round(hi * wmax))
    w = rng.integers(a, b + 1, size=shape, dtype=np.int64)
    if strong_frac:
        rows = rng.random(shape[0]) < strong_frac
        sign = rng.random(shape[0]) < 0.5
        big = rng.integers(wmax // 2, wmax + 1, size=shape, dtype=np.int64)
        w[rows & sign] = big[rows & sign]
        w[rows & ~sign] = -big[rows & ~sign]
    return np.clip(w, wmin, wmax)


def make_network(cfg: HwConfig, seed: int, layer_share: bool = True) -> Network:
    """The seeded six-layer test network for ``cfg`` (see the module doc)."""
    rng = np.random.default_rng([seed, 1])
    cin = int(rng.integers(1, 3))
    last = None
    for c, hw in _conv_shapes(cfg, rng)[:24]:
        net = _build(cfg, np.random.default_rng([seed, 3]), cin, c, hw, layer_share)
        try:
            return net.validate(cfg)
        except NetworkError as e:
            last = e
    raise StimulusError(f"{cfg.name}: no test network fits this configuration: {last}")


def _build(cfg: HwConfig, rng, cin: int, c: int, hw: int, layer_share: bool) -> Network:
    a, n, s, wr = cfg.array, cfg.groups, cfg.slots, cfg.weight_rows
    blk = 0 if layer_share else None
    layers = [
        Layer.conv((cin, hw, hw), _weights(rng, (c, cin, 3, 3), -0.3, 1.0, cfg),
                   padding=1, mode="chained", name="conv_in"),
        Layer.conv((c, hw, hw), _weights(rng, (c, c, 3, 3), -0.6, 1.0, cfg),
                   padding=1, mode="chained", block=blk, name="blk_a"),
        Layer.conv((c, hw, hw), _weights(rng, (c, c, 3, 3), -0.6, 1.0, cfg),
                   padding=1, mode="chained", block=blk, name="blk_b"),
    ]
    f = c * hw * hw
    per_group = max(1, math.ceil(1.5 * s)) if s > 1 else 2
    fc1 = max(n, min(n * per_group, (wr // n) * n))
    layers.append(Layer.linear(_weights(rng, (fc1, f), -0.7, 1.0, cfg, strong_frac=0.3),
                               mode="chained", name="fc_chain"))
    fc2 = max(2, min(wr, math.ceil(1.6 * a)))
    # keep the independent layer (N rows per tile) inside mem_rows
    maps = choose_mappings(cfg, layers)
    used = sum(membrane_rows_of_block(cfg, lay, m) for lay, m in zip(layers[:2], maps)) \
        + membrane_rows_of_block(cfg, layers[-1], maps[-1])
    if not layer_share:
        used += membrane_rows_of_block(cfg, layers[2], maps[2])
    room = max(1, (cfg.mem_rows - used) // n)
    if -(-fc2 // a) > room:
        fc2 = max(2, room * a - max(1, a // 4))
    layers.append(Layer.linear(_weights(rng, (fc2, fc1), -0.8, 1.0, cfg, strong_frac=0.4),
                               mode="independent", name="fc_indep"))
    ro = max(2, math.ceil(2.5 * a))
    layers.append(Layer.linear(_weights(rng, (ro, fc2), -1.0, 1.0, cfg, strong_frac=0.2),
                               mode="readout", name="readout"))
    return Network((cin, hw, hw), tuple(layers))


def make_spikes(net: Network, seed: int, samples: int, timesteps: int) -> np.ndarray:
    """int64 ``[samples, T, *in_shape]`` Bernoulli spikes, density per sample
    from :data:`DENSITIES` (cycled)."""
    if samples < 1 or timesteps < 1:
        raise StimulusError(f"need samples >= 1 and timesteps >= 1, got {samples}, {timesteps}")
    rng = np.random.default_rng([seed, 2])
    out = np.zeros((samples, timesteps) + tuple(net.in_shape), dtype=np.int64)
    for b in range(samples):
        p = DENSITIES[b % len(DENSITIES)]
        out[b] = rng.random(out[b].shape) < p
    return out
