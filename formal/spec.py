"""The fixed-point rules F2-F6 (docs/fixed-point.md), written to be obviously right.

This is the specification the proofs compare the generated RTL with. It is
written from the document, not from ``gen/``: every function works on
unbounded integers -- Python ints, or Amaranth values, whose ``+ - *`` and
shifts widen the result so that nothing ever overflows -- and every
narrowing is an explicit :func:`sat` clamp. Where the hardware keeps
intermediate results at fixed widths and truncates them, the spec does not,
so a proof of ``RTL == spec`` also proves those widths are enough.

The same code runs on Python ints (``tests/test_formal.py`` compares it with
``golden.fixedpoint`` exhaustively on narrow configurations) and on Amaranth
values (inside the property harnesses of :mod:`formal.lif_props`).

F3 is stated twice: :func:`leak` is the formula of the document (product,
+half, floor shift) and :func:`is_nearest_tie_up` its prose ("λ·V rounded to
the nearest integer, ties toward +∞") as an inequality without any shift or
rounding; the LIF proof asserts that the two agree for every V.
"""

from __future__ import annotations

from amaranth.hdl import Mux, Value, ValueCastable

from golden.config import HwConfig

__all__ = ["select", "sat", "accumulate", "leak", "is_nearest_tie_up", "integrate",
           "fire", "reset", "lif_step"]


def _is_hdl(*xs) -> bool:
    return any(isinstance(x, (Value, ValueCastable)) for x in xs)


def select(cond, a, b):
    """``a if cond else b`` for ints/bools and for Amaranth values."""
    if _is_hdl(cond, a, b):
        return Mux(cond, a, b)
    return a if cond else b


def sat(x, width: int):
    """Clamp ``x`` to the signed ``width``-bit range [-2^(w-1), 2^(w-1)-1]."""
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    return select(x > hi, hi, select(x < lo, lo, x))


def accumulate(cfg: HwConfig, acc, w):
    """F2, one event: ``X <- sat_acc(X + w)``."""
    return sat(acc + w, cfg.acc_width)


def leak(cfg: HwConfig, v):
    """F3 as a formula: ``L = (V * leak_int + 2^(leak_bits-1)) >> leak_bits``
    (``>>`` is a floor shift on Python ints and on signed Amaranth values)."""
    return (v * cfg.leak_int + (1 << (cfg.leak_bits - 1))) >> cfg.leak_bits


def is_nearest_tie_up(cfg: HwConfig, v, l):
    """F3 as prose: ``l`` is the integer nearest to λ·V = leak_int·V / 2^leak_bits,
    ties toward +∞, i.e. ``l - 1/2 <= λ·V < l + 1/2`` (scaled by 2^leak_bits)."""
    one = 1 << cfg.leak_bits
    half = 1 << (cfg.leak_bits - 1)
    scaled_v = v * cfg.leak_int
    return (l * one - half <= scaled_v) & (scaled_v < l * one + half)


def integrate(cfg: HwConfig, l, x):
    """F4: ``U = sat_mem(L + X)``."""
    return sat(l + x, cfg.mem_width)


def fire(cfg: HwConfig, u):
    """F5: ``O = U > θ`` (gt) or ``U >= θ`` (ge)."""
    return (u > cfg.theta_int) if cfg.fire == "gt" else (u >= cfg.theta_int)


def reset(cfg: HwConfig, u, o):
    """F6: soft ``V' = U - θ·O``; hard ``V' = 0 if O else U``."""
    if cfg.reset == "soft":
        return u - cfg.theta_int * o
    return select(o, 0, u)


def lif_step(cfg: HwConfig, v, x):
    """One LIF step F3 -> F4 -> F5 -> F6: returns ``(L, U, O, V')``."""
    l = leak(cfg, v)
    u = integrate(cfg, l, x)
    o = fire(cfg, u)
    return l, u, o, reset(cfg, u, o)
