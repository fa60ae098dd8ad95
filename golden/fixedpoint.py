"""Per-operation fixed-point primitives (docs/fixed-point.md, rules F2-F6).

Every function works on Python ints or on numpy integer arrays (int64) and
returns the same kind. These are the building blocks of the layer-level model
in :mod:`golden.fixed_model` and the reference for the generator's per-block
unit tests.
"""

from __future__ import annotations

import numpy as np

from .config import HwConfig

__all__ = ["saturate", "accumulate", "leak", "integrate", "fire", "reset", "lif_step", "bias_rows",
           "bias_split"]


def saturate(x, width: int):
    """Clamp to the signed ``width``-bit range (``sat_w`` in the rules)."""
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    if isinstance(x, np.ndarray):
        return np.clip(x, lo, hi)
    return min(max(int(x), lo), hi)


def accumulate(cfg: HwConfig, weights) -> "np.ndarray | int":
    """F2: saturating accumulation of a sequence of weight rows, in order.

    ``weights`` has shape (events, ...) ; returns the current X with the
    trailing shape. An empty sequence gives 0.
    """
    w = np.asarray(weights, dtype=np.int64)
    x = np.zeros(w.shape[1:], dtype=np.int64)
    for row in w:
        x = saturate(x + row, cfg.acc_width)
    return x


def leak(cfg: HwConfig, v):
    """F3: λ·V rounded to nearest, ties toward +inf (add half, floor-shift)."""
    half = 1 << (cfg.leak_bits - 1)
    if isinstance(v, np.ndarray):
        return (v.astype(np.int64) * cfg.leak_int + half) >> cfg.leak_bits
    return (int(v) * cfg.leak_int + half) >> cfg.leak_bits


def integrate(cfg: HwConfig, l, x):
    """F4: U = sat_mem(L + X)."""
    return saturate(l + x, cfg.mem_width)


def fire(cfg: HwConfig, u):
    """F5: 1 where U > θ (fire="gt") or U >= θ (fire="ge")."""
    if isinstance(u, np.ndarray):
        o = u > cfg.theta_int if cfg.fire == "gt" else u >= cfg.theta_int
        return o.astype(np.int64)
    return int(u > cfg.theta_int) if cfg.fire == "gt" else int(u >= cfg.theta_int)


def reset(cfg: HwConfig, u, o):
    """F6: soft (U − θ·O) or hard (0 where O) reset; returns V'."""
    if cfg.reset == "soft":
        return u - cfg.theta_int * o
    if isinstance(u, np.ndarray):
        return np.where(o != 0, 0, u)
    return 0 if o else u


def lif_step(cfg: HwConfig, v, x):
    """One LIF step (F3→F4→F5→F6). Returns ``(u, o, v_next)``."""
    u = integrate(cfg, leak(cfg, v), x)
    o = fire(cfg, u)
    return u, o, reset(cfg, u, o)


def bias_rows(cfg: HwConfig, bias) -> int:
    """F2b: number of bias rows of a layer with integer ``bias`` [C] (None: no bias, 0 rows).

    ``R = max_c ceil(b_c / weight_max)`` over positive and ``ceil(b_c / weight_min)``
    over negative biases: the fewest rows in which every channel's bias splits
    into pieces within ``[weight_min, weight_max]``. All-zero bias: 0 rows.
    """
    if bias is None:
        return 0
    b = np.asarray(bias, dtype=np.int64)
    if not b.size:
        return 0
    hi, lo = cfg.weight_max, cfg.weight_min
    pos = -(-int(np.maximum(b, 0).max()) // hi)          # weight_width >= 2: hi >= 1
    neg = -(-int(np.maximum(-b, 0).max()) // -lo)
    return max(pos, neg)


def bias_split(cfg: HwConfig, bias) -> np.ndarray:
    """F2b: int64 ``[R, C]`` bias pieces, ``R = bias_rows(cfg, bias)``.

    Greedy, row 0 first: ``piece_r = clip(b - piece_0 - ... - piece_{r-1},
    weight_min, weight_max)``; so a channel's pieces are full-range values of
    the bias's sign, then the remainder, then zeros, and they sum to ``b``.
    """
    n = bias_rows(cfg, bias)
    b = np.zeros(0, np.int64) if bias is None else np.asarray(bias, dtype=np.int64)
    out = np.zeros((n, b.size), dtype=np.int64)
    rem = b.copy()
    for r in range(n):
        out[r] = np.clip(rem, cfg.weight_min, cfg.weight_max)
        rem -= out[r]
    return out
