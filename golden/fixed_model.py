"""Bit-accurate fixed-point model of a whole network (docs/fixed-point.md F2-F8).

:func:`run_fixed` computes, in the natural (C, H, W) layout, exactly what the
core computes when driven by the schedule of :mod:`golden.schedule`:

* input pooling: a layer with ``pool = k`` takes the previous layer's spikes
  ORed over k×k windows (:func:`golden.geometry.pool_spikes`);
* F2 currents: the saturating sum of the layer's bias pieces (F2b), then
  the weights of the active inputs in ascending flat pre-synaptic index order,
  then (F2c, a residual layer) the shortcut weights of the active spikes of
  its source layer in ascending flat index. Fast path: P = sum of positive and
  Q = sum of negative weights over the active inputs (a matmul each); every
  partial sum lies in [Q, P], so where ``Q >= acc_min`` and ``P <= acc_max``
  no step saturates and X = P + Q exactly. The other neurons fall back to the
  sequential saturating loop;
* F3-F6 LIF steps (via :mod:`golden.fixedpoint`), chained over the groups
  (F7 chained mode) or per neuron (independent mode), or no LIF (F8 readout);
* F7 sharing: the first timestep starts from 0; a sharing block chains layer
  to layer within a timestep and its last layer to its first layer across
  timesteps; C#N chains group g to g+1 and group N-1 to group 0 of the next
  layer in the block (paper eq. 13) or of the block's first layer at the next
  timestep (eq. 11/14).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from . import fixedpoint as fp
from .config import HwConfig
from .geometry import pool_spikes
from .network import Layer, Network

__all__ = ["LayerTrace", "FixedResult", "run_fixed", "layer_currents", "check_spikes"]


@dataclass
class LayerTrace:
    """Everything one layer produced, natural layout, int64.

    ``spikes``   [T, B, *out_shape] 0/1 (all 0 for readout).
    ``current``  [T, B, *out_shape] X (F2).
    ``membrane`` [T, B, *out_shape] U before reset (F4); None for readout.
    ``v_after``  [T, B, *state_shape] V' this layer left in its membrane
                 rows after timestep t: chained ``state_shape = (C/N, H, W)``
                 (``(C/N,)`` for linear) = V' of group N-1; independent
                 ``state_shape = out_shape``. None for readout.
    """

    spikes: np.ndarray
    current: np.ndarray
    membrane: Optional[np.ndarray]
    v_after: Optional[np.ndarray]


@dataclass
class FixedResult:
    """Per-layer traces of :func:`run_fixed` plus the network it ran."""

    net: Network
    layers: list

    def stored_state(self, index: int) -> np.ndarray:
        """Membrane state stored after each timestep for LIF layer ``index``.

        [T, B, *state_shape]: the ``v_after`` of the last layer of the
        layer's sharing block (what its membrane rows hold after timestep t).
        """
        blk = self.net.block_of(index)
        return self.layers[blk[-1]].v_after

    @property
    def output(self) -> np.ndarray:
        """Last layer's currents if it is a readout layer, else its spikes."""
        last = self.layers[-1]
        return last.current if self.net.layers[-1].mode == "readout" else last.spikes


def check_spikes(spikes, shape_tail: tuple, what: str, lead: str) -> np.ndarray:
    """Validate a 0/1 spike array ``[..lead.., *shape_tail]``; returns it as uint8.

    Raises ValueError naming ``what`` when the shape or values are wrong.
    """
    a = np.asarray(spikes)
    nlead = len(lead.split(","))
    if a.ndim != nlead + len(shape_tail) or tuple(a.shape[nlead:]) != tuple(shape_tail):
        raise ValueError(f"{what}: expected shape [{lead}, {', '.join(map(str, shape_tail))}], "
                         f"got {list(a.shape)}")
    if a.dtype.kind not in "biuf":
        raise ValueError(f"{what}: expected 0/1 numbers, got dtype {a.dtype}")
    if a.size and not np.all((a == 0) | (a == 1)):
        bad = a[(a != 0) & (a != 1)].ravel()[0].item()
        raise ValueError(f"{what}: spikes must be 0 or 1, found {bad!r}")
    return a.astype(np.uint8)


# ---------------------------------------------------------------- currents
_CHUNK_ELEMS = 1 << 22


def _saturating_sum(cfg: HwConfig, contrib: np.ndarray, pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """F2 for rows of ordered contributions ``contrib`` [n, K]: x ← sat_acc(x + d_k), k = 0..K-1.

    ``pos`` / ``neg`` are the row sums of the positive / negative entries.
    By induction the walk never drops below the running sum of the negative
    entries (clamping at the top cannot push it below that) and never rises
    above the running sum of the positive ones. So when ``neg >= acc_min``
    only the upper bound can act and the walk is a one-sided reflection,
    ``x = S_K - max(0, max_k S_k - acc_max)`` with ``S_k`` the prefix sums; symmetrically when ``pos <= acc_max``. Rows that
    can hit both bounds run the plain sequential loop.
    """
    hi, lo = cfg.acc_max, cfg.acc_min
    out = np.empty(contrib.shape[0], dtype=np.int64)
    upper = neg >= lo
    lower = ~upper & (pos <= hi)
    both = ~upper & ~lower
    if upper.any():
        s = np.cumsum(contrib[upper], axis=1, dtype=np.int64)
        out[upper] = s[:, -1] - np.maximum(0, s.max(axis=1) - hi)
    if lower.any():
        s = np.cumsum(contrib[lower], axis=1, dtype=np.int64)
        out[lower] = s[:, -1] + np.maximum(0, lo - s.min(axis=1))
    if both.any():
        steps = np.ascontiguousarray(contrib[both].T).astype(np.int64)   # [K, n]
        acc = np.zeros(steps.shape[1], dtype=np.int64)
        for d in steps[steps.any(axis=1)]:
            acc += d
            np.clip(acc, lo, hi, out=acc)                           # F2: saturate every step
        out[both] = acc
    return out


def _patches(layer: Layer, x: np.ndarray) -> np.ndarray:
    """[M, *in_shape] -> [M, Ho*Wo, C*k*k] receptive-field patches (columns in c, kh, kw order).

    That column order is ascending flat input index (c·H·W + ih·W + iw), the
    F2 event order. Zero padding gives 0 entries.
    """
    k, s, p = layer.kernel, layer.stride, layer.padding
    m, c = x.shape[0], x.shape[1]
    if p:
        x = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    win = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::s, ::s]
    _, _, ho, wo, _, _ = win.shape
    return win.transpose(0, 2, 3, 1, 4, 5).reshape(m, ho * wo, c * k * k)


def layer_currents(cfg: HwConfig, layer: Layer, spikes: np.ndarray,
                   skip_spikes: Optional[np.ndarray] = None) -> np.ndarray:
    """F2 currents of ``layer`` for a batch of inputs.

    ``spikes`` [M, *layer.in_shape] (or [M, F] flattened for linear) 0/1;
    ``skip_spikes`` [M, *layer.skip_in_shape] the output spikes of the layer's
    shortcut source (F2c; required exactly when ``layer.skip`` is set).
    Returns int64 [M, *layer.out_shape]. The layer's bias pieces (F2b) come
    first, then its own events in ascending flat input index, then the
    shortcut's events in ascending flat source index, with saturation at
    every step (F2).
    """
    m = spikes.shape[0]
    if (skip_spikes is None) != (layer.skip is None):
        raise ValueError(f"layer {layer.name!r}: skip_spikes must be given exactly when the layer has a "
                         f"skip input")
    if layer.kind == "linear":
        cols = spikes.reshape(m, 1, -1)                            # [M, 1, F]
        wmat = layer.weight                                        # [out, F]
    else:
        cols = _patches(layer, spikes.reshape((m,) + layer.in_shape))   # [M, P, K]
        wmat = layer.weight.reshape(layer.out_channels, -1)            # [out, K]
    if layer.skip is not None:                                     # F2c: the shortcut's events last
        g = layer.skip_geometry
        scols = (skip_spikes.reshape(m, 1, -1) if g.kind == "linear" else
                 _patches(g, skip_spikes.reshape((m,) + g.in_shape)))
        cols = np.concatenate([cols, scols.astype(cols.dtype)], axis=2)
        wmat = np.concatenate([wmat, layer.skip_weight.reshape(layer.out_channels, -1)], axis=1)
    pieces = fp.bias_split(cfg, layer.bias)                        # F2b: [R, out]
    if pieces.shape[0]:
        # R always-on events first, then the inputs in ascending index (F2b order)
        ones = np.ones(cols.shape[:2] + (pieces.shape[0],), dtype=cols.dtype)
        cols = np.concatenate([ones, cols], axis=2)
        wmat = np.concatenate([pieces.T, wmat], axis=1)
    npos, kdim = cols.shape[1], cols.shape[2]
    # Exactness of the float matmul: every partial sum is an integer of
    # magnitude <= kdim * max|w|; float32 is exact below 2**24, float64 below 2**53.
    bound = kdim * max(1, int(np.abs(wmat).max(initial=0)))
    ftype = np.float32 if bound < (1 << 24) else np.float64
    if bound >= (1 << 53):
        raise ValueError(f"layer fan-in {kdim} too large for exact float accumulation")
    flat_cols = cols.reshape(m * npos, kdim)
    wp = np.maximum(wmat, 0).T.astype(ftype)
    wn = np.minimum(wmat, 0).T.astype(ftype)
    pos_sum = np.empty((m * npos, wmat.shape[0]), dtype=np.int64)   # [M*P, out]
    neg_sum = np.empty_like(pos_sum)
    step = max(1, (4 * _CHUNK_ELEMS) // kdim)                       # bounds the float copy
    for r0 in range(0, m * npos, step):
        a = flat_cols[r0:r0 + step].astype(ftype)
        pos_sum[r0:r0 + step] = a @ wp
        neg_sum[r0:r0 + step] = a @ wn
    x = pos_sum + neg_sum
    slow = (pos_sum > cfg.acc_max) | (neg_sum < cfg.acc_min)
    if slow.any():
        # int32 is exact for every prefix sum when kdim * max|w| < 2**31 (``bound``)
        dt = np.int32 if bound < (1 << 31) else np.int64
        chunk = max(1, _CHUNK_ELEMS // kdim)                       # bounds the [rows, K] temporaries
        for o in np.flatnonzero(slow.any(axis=0)):
            rows = np.flatnonzero(slow[:, o])
            w_o = wmat[o].astype(dt)
            for lo in range(0, rows.size, chunk):
                rr = rows[lo:lo + chunk]
                contrib = flat_cols[rr].astype(dt) * w_o           # [n, K], ascending input index
                x[rr, o] = _saturating_sum(cfg, contrib, pos_sum[rr, o], neg_sum[rr, o])
    if layer.kind == "linear":
        return x.reshape(m, layer.out_channels)
    _, ho, wo = layer.out_shape
    return x.reshape(m, ho, wo, layer.out_channels).transpose(0, 3, 1, 2).copy()


# --------------------------------------------------------------------- LIF
def _lif_chained(cfg: HwConfig, v: np.ndarray, x: np.ndarray):
    """F7 chained: x [B, N, Cg*HW], v [B, Cg*HW] -> (u, o [B, N, Cg*HW], v' of group N-1)."""
    u_all = np.empty_like(x)
    o_all = np.empty_like(x)
    for g in range(x.shape[1]):
        u, o, v = fp.lif_step(cfg, v, x[:, g])                     # F3 -> F4 -> F5 -> F6
        u_all[:, g], o_all[:, g] = u, o
    return u_all, o_all, v


def run_fixed(cfg: HwConfig, net: Network, spikes_in) -> FixedResult:
    """Run ``net`` on ``spikes_in`` [T, B, *net.in_shape] (0/1) with the rules of docs/fixed-point.md.

    Returns a :class:`FixedResult` with one :class:`LayerTrace` per layer.
    Raises ValueError / NetworkError for malformed input or a network that
    does not fit the arithmetic of ``cfg`` (weights out of range, chained
    channels not divisible by ``groups``).
    """
    if not isinstance(cfg, HwConfig):
        raise TypeError(f"run_fixed() needs an HwConfig, got {type(cfg).__name__}")
    net.check_arithmetic(cfg)
    spikes = check_spikes(spikes_in, net.in_shape, "spikes_in", "T, B")
    n_t, batch = spikes.shape[:2]
    n = cfg.groups

    traces = []
    for layer in net.layers:
        shp = (n_t, batch) + layer.out_shape
        lif = layer.mode != "readout"
        if layer.mode == "chained":
            c = layer.out_shape[0]
            state_shape = (c // n,) + layer.out_shape[1:]
        else:
            state_shape = layer.out_shape
        traces.append(LayerTrace(
            spikes=np.zeros(shp, dtype=np.int64), current=np.zeros(shp, dtype=np.int64),
            membrane=np.zeros(shp, dtype=np.int64) if lif else None,
            v_after=np.zeros((n_t, batch) + state_shape, dtype=np.int64) if lif else None))

    # Membrane of each sharing unit, keyed by its first layer. F7: the first
    # timestep reads 0 (the `first` flag), so every unit starts at zero.
    owner = {}
    state = {}
    for blk in net.blocks():
        for i in blk:
            owner[i] = blk[0]
    for t in range(n_t):
        x_in = spikes[t]
        for i, layer in enumerate(net.layers):
            tr = traces[i]
            x_in = pool_spikes(x_in, layer.pool)                    # input max pooling (OR)
            skip_in = None if layer.skip is None else traces[layer.skip].spikes[t].astype(np.uint8)
            cur = layer_currents(cfg, layer, x_in, skip_in)        # F2 (+ F2c shortcut)
            tr.current[t] = cur
            flat = cur.reshape(batch, -1)
            if layer.mode == "readout":                            # F8
                x_in = np.zeros_like(cur, dtype=np.uint8)
                continue
            key = owner[i]
            if layer.mode == "chained":
                xg = flat.reshape(batch, n, -1)
                v = state.get(key, np.zeros((batch, xg.shape[2]), dtype=np.int64))
                u, o, v = _lif_chained(cfg, v, xg)
                u, o = u.reshape(flat.shape), o.reshape(flat.shape)
            else:
                v = state.get(key, np.zeros_like(flat))
                u, o, v = fp.lif_step(cfg, v, flat)                 # F3 -> F6 per neuron
            state[key] = v
            tr.membrane[t] = u.reshape(cur.shape)
            tr.spikes[t] = o.reshape(cur.shape)
            tr.v_after[t] = v.reshape(tr.v_after.shape[1:])
            x_in = o.reshape(cur.shape).astype(np.uint8)
    return FixedResult(net=net, layers=traces)
