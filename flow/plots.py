"""The two PNG plots of the hardware report, rendered in memory.

:func:`plot_area` (``area_by_block.png``) and :func:`plot_memory`
(``memory_by_scheme.png``) return the PNG bytes; the caller writes them with
the other report files in one :func:`golden.files.atomic_write`. Needs the
``report`` extra (matplotlib); :func:`require_matplotlib` checks it up front.
"""

from __future__ import annotations

import importlib.util
import io

from golden.errors import ProjectError

from .attribution import BLOCKS, lif_share, lif_share_with_controller
from .memory_table import MEMORY_ARCHS, MEMORY_SCHEMES, MEMORY_SIZES, MEMORY_T

__all__ = ["PlotError", "require_matplotlib", "plot_area", "plot_memory"]

DPI = 110


class PlotError(ProjectError, ImportError):
    """matplotlib is not installed."""


def require_matplotlib() -> None:
    """Raise :class:`PlotError` (one line, how to install) without matplotlib."""
    if importlib.util.find_spec("matplotlib") is None:
        raise PlotError("matplotlib is not installed (pip install -e '.[report]')")


def _pyplot():
    require_matplotlib()
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _png(fig, plt) -> bytes:
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=DPI)
    finally:
        plt.close(fig)
    return buf.getvalue()


def plot_area(reports: list) -> bytes:
    """PNG: stacked GE per block for each synthesized build, and the LIF share
    vs GROUPS beside the paper's two points."""
    plt = _pyplot()

    rs = [r for r in reports if r.synth is not None]
    labels = [f"A={r.cfg.array}\nN={r.cfg.groups}" for r in rs]
    keys = [k for k in BLOCKS if any(r.blocks[k].cells for r in rs)]
    colors = {"pe": "#4C72B0", "lif": "#DD8452", "memctl": "#55A868", "membuf": "#8172B3",
              "wbuf": "#937860", "ctrl": "#64B5CD", "other": "#999999"}
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.8), gridspec_kw={"width_ratios": [3, 2]})
    x = range(len(rs))
    bottom = [0.0] * len(rs)
    for k in keys:
        vals = [r.blocks[k].ge / 1000 for r in rs]
        ax.bar(x, vals, bottom=bottom, label=BLOCKS[k], color=colors[k])
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_xticks(list(x), labels)
    ax.set_ylabel("logic area [kGE] (memories excluded)")
    ax.set_title("Logic area by block")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    arrays = sorted({r.cfg.array for r in rs})
    for a in arrays:
        ra = sorted((r for r in rs if r.cfg.array == a), key=lambda r: r.cfg.groups)
        gx = [r.cfg.groups for r in ra]
        tag = f"A={a}, " if len(arrays) > 1 else ""
        ax2.plot(gx, [100 * lif_share(r.blocks, "cells") for r in ra], "o-",
                 label=f"{tag}LIF units, cells")
        ax2.plot(gx, [100 * lif_share(r.blocks, "ge") for r in ra], "s--",
                 label=f"{tag}LIF units, GE")
        ax2.plot(gx, [100 * lif_share_with_controller(r.blocks) for r in ra], "^:",
                 label=f"{tag}LIF units + controller, GE")
    ax2.plot([1, 4], [61.6, 28.6], "k*", ms=13, label="paper (SATA, 128 PEs)")
    ax2.set_xscale("log", base=2)
    groups = sorted({r.cfg.groups for r in rs} | {1, 4})
    ax2.set_xticks(groups, [str(g) for g in groups])
    ax2.set_xlabel("GROUPS (C#N)")
    ax2.set_ylabel("LIF / (PE acc + LIF) [%]")
    ax2.set_title("LIF share of PE compute")
    ax2.set_ylim(0, 100)
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig, plt)


def plot_memory(mem_rows: list) -> bytes:
    """PNG: forward (and baseline backward) LIF memory by scheme, log scale."""
    plt = _pyplot()

    fig, axes = plt.subplots(1, len(MEMORY_ARCHS), figsize=(12, 5.0), sharey=True)
    width = 0.8 / len(MEMORY_SCHEMES)
    for ax, arch in zip(axes, MEMORY_ARCHS):
        for j, s in enumerate(MEMORY_SCHEMES):
            vals = []
            for size in MEMORY_SIZES:
                r = next(r for r in mem_rows if r.arch == arch and r.input_size == size
                         and r.scheme == s)
                vals.append(r.fwd_mib_32)
            ax.bar([i + (j - (len(MEMORY_SCHEMES) - 1) / 2) * width
                    for i in range(len(MEMORY_SIZES))], vals, width, label=s)
        bwd = [next(r for r in mem_rows if r.arch == arch and r.input_size == size
                    and r.scheme == "baseline").bwd_mib_32 for size in MEMORY_SIZES]
        ax.plot(range(len(MEMORY_SIZES)), bwd, "k_", ms=30, mew=2,
                label=f"baseline backward (BPTT, T={MEMORY_T})")
        ax.set_yscale("log")
        ax.set_xticks(range(len(MEMORY_SIZES)), [f"{s}×{s}" for s in MEMORY_SIZES])
        ax.set_title(f"{arch}: LIF forward memory (32-bit, T={MEMORY_T})")
        ax.grid(axis="y", which="both", alpha=0.3)
    axes[0].set_ylabel("MiB per sample")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8,
               frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return _png(fig, plt)
