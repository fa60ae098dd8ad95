"""LIF membrane-memory calculator for baseline / L / C#N / L+C#N (paper Table 1).

Counting rules (one sample, membranes only; weights and spikes not counted):

* **forward**: the membrane words that must live between LIF steps.
  baseline: one per neuron of every LIF layer; C#N: a layer needs only one
  group's worth, ``C·H·W / N``; L: a sharing block of same-shape layers
  needs one layer's worth; L+C#N: one group of one layer per block.
* **backward**: plain BPTT keeps the membrane of every LIF step for the
  surrogate gradient: ``T ×`` the baseline forward memory, whatever the
  sharing (a C#N layer runs N steps of 1/N of the neurons per timestep).
  With the reversible backward of paper §4.3 (golden/reversible.py) a
  *shared* scheme stores only the last membrane of each chain, i.e. its
  forward memory. The paper's Table 1 uses plain BPTT for the baseline and
  the reversible backward for the shared schemes; so does the ``bwd``
  column here (``bwd_bptt`` gives plain BPTT for every scheme).
* sizes in MiB (2^20 bytes), which is what reproduces the paper's figures
  (e.g. ResNet19 baseline, 32×32: 753,664 membranes × 4 B = 2.875 MiB,
  Table 1: 2.88 MB). ``*_32`` columns use 32-bit membranes as the paper
  does; ``*_hw`` columns use the hardware ``mem_width``.

Architectures: ``vgg16`` and ``resnet19`` follow the authors' released code
(scaled-up channels, see docs/golden.md for the exact layer lists and the
comparison with Table 1). A :class:`golden.network.Network` or a list of
:class:`golden.reference.LayerSpec` can be measured too (:func:`lif_layers`).

CLI: ``python -m golden.memory --arch vgg16 --input 32 --timesteps 5``
prints a markdown table; ``--help`` lists the options.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import asdict, dataclass
from typing import Iterable, Optional, Sequence
from .errors import ProjectError

__all__ = ["MemoryCalcError", "LIFLayer", "Arch", "MemoryRow", "vgg16", "vgg16_ls", "resnet19", "ARCHS",
           "DEFAULT_SCHEMES", "lif_layers", "scheme_memory", "memory_table", "markdown",
           "PAPER_TABLE1", "VGG16_LS_NOTE", "main"]

MiB = float(1 << 20)
DEFAULT_SCHEMES = ("baseline", "L", "C#2", "L+C#2", "C#4", "L+C#4", "C#8", "L+C#8")


class MemoryCalcError(ProjectError, ValueError):
    """Bad architecture, scheme or argument. The message names it."""


@dataclass(frozen=True)
class LIFLayer:
    """One layer of LIF neurons: output ``shape`` (C, H, W) and sharing ``block`` (None: own)."""

    name: str
    shape: tuple
    block: Optional[object] = None

    @property
    def neurons(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class Arch:
    """A named list of LIF layers in network order (consecutive equal blocks share)."""

    name: str
    input_size: int
    layers: tuple


def _stage(prefix: str, channels: int, size: int, count: int, block) -> list:
    return [LIFLayer(f"{prefix}.{i}", (channels, size, size), block) for i in range(count)]


def vgg16(input_size: int = 32, stage2_channels: int = 256, name: str = "vgg16") -> Arch:
    """VGG16 of the released code: 13 conv+LIF layers, channels
    128,128 | 256,256 | 256×3 | 512×3 | 512×3, 2×2 max-pool between stages.
    Blocks (L): the stages from the second one on; the input layer (conv1)
    and conv2 keep their own membranes, as in the released L-sharing code."""
    s = _check_size(input_size, 16)
    return Arch(name, input_size, tuple(
        [LIFLayer("conv1", (128, s, s)), LIFLayer("conv2", (128, s, s))]
        + _stage("stage2", stage2_channels, s // 2, 2, "stage2")
        + _stage("stage3", 256, s // 4, 3, "stage3")
        + _stage("stage4", 512, s // 8, 3, "stage4") + _stage("stage5", 512, s // 16, 3, "stage5")))


def resnet19(input_size: int = 32) -> Arch:
    """ResNet19 of the released code: conv1 128 ch at full size, then three
    stages of basic blocks (3×256, 3×512, 2×512 channels, each stage starts
    with stride 2), two LIF layers per basic block. Blocks (L): one per stage,
    as in the released L-sharing code (the input layer keeps its own)."""
    s = _check_size(input_size, 8)
    return Arch("resnet19", input_size, tuple(
        [LIFLayer("conv1", (128, s, s))]
        + _stage("stage1", 256, s // 2, 6, "stage1") + _stage("stage2", 512, s // 4, 6, "stage2")
        + _stage("stage3", 512, s // 8, 4, "stage3")))


#: Which VGG16 the paper's L-sharing figures belong to (printed under the table).
VGG16_LS_NOTE = ("the paper's L and L+C#N VGG16 figures are those of the released code's "
                 "L-sharing VGG16 (vgg16-ls: 128 instead of 256 channels in stage 2); compare "
                 "them with the vgg16-ls rows, not with vgg16")


def vgg16_ls(input_size: int = 32) -> Arch:
    """The released code's *L-sharing* VGG16 (:data:`VGG16_LS_NOTE`)."""
    return vgg16(input_size, stage2_channels=128, name="vgg16-ls")


ARCHS = {"vgg16": vgg16, "vgg16-ls": vgg16_ls, "resnet19": resnet19}

#: Paper Table 1 (T = 5, 32-bit, MB): (arch, dataset input size) -> scheme -> (fwd, bwd).
PAPER_TABLE1 = {
    ("vgg16", 32): {"baseline": (1.80, 9.0), "L": (1.23, 1.23), "C#2": (0.90, 0.90),
                    "L+C#2": (0.62, 0.62)},
    ("vgg16", 64): {"baseline": (7.22, 36.1), "L": (4.91, 4.91), "C#2": (3.61, 3.61),
                    "L+C#2": (2.46, 2.46)},
    ("vgg16", 224): {"baseline": (88.43, 442.15), "L": (60.10, 60.10), "C#2": (44.21, 44.21),
                     "L+C#2": (30.05, 30.05)},
    ("resnet19", 32): {"baseline": (2.88, 14.40), "L": (1.31, 1.31), "C#2": (1.44, 1.44),
                       "L+C#2": (0.66, 0.66)},
    ("resnet19", 64): {"baseline": (11.5, 57.5), "L": (5.25, 5.25), "C#2": (5.75, 5.75),
                       "L+C#2": (2.63, 2.63)},
    ("resnet19", 224): {"baseline": (140.88, 704.4), "L": (64.31, 64.31), "C#2": (70.44, 70.44),
                        "L+C#2": (32.16, 32.16)},
}


def _check_size(size, div: int) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or size < div or size % div:
        raise MemoryCalcError(f"input size {size!r}: must be a positive multiple of {div}")
    return size


def parse_scheme(scheme: str) -> tuple:
    """'baseline' | 'L' | 'C#N' | 'L+C#N' -> (layer_sharing, groups)."""
    s = str(scheme).strip()
    if s == "baseline":
        return False, 1
    if s == "L":
        return True, 1
    layer = s.startswith("L+")
    rest = s[2:] if layer else s
    if rest.startswith("C#") and rest[2:].isdigit() and int(rest[2:]) >= 1:
        return layer, int(rest[2:])
    raise MemoryCalcError(f"scheme {scheme!r}: expected baseline, L, C#N or L+C#N (N >= 1)")


def lif_layers(net) -> list:
    """LIF layers of an :class:`Arch`, a ``golden.network.Network`` or a list of
    ``golden.reference.LayerSpec`` (readout layers have no membrane and are skipped)."""
    if isinstance(net, Arch):
        return list(net.layers)
    layers = getattr(net, "layers", net)
    out = []
    try:
        for i, layer in enumerate(layers):
            if layer.mode == "readout":
                continue
            shape = tuple(layer.out_shape)
            out.append(LIFLayer(layer.name or f"layer{i}", shape if len(shape) == 3 else (shape[0], 1, 1),
                                layer.block))
    except (AttributeError, TypeError):
        raise MemoryCalcError(f"cannot read LIF layers from {type(net).__name__}: expected an Arch, "
                              f"a golden.network.Network or a list of LayerSpec") from None
    if not out:
        raise MemoryCalcError("the network has no LIF layers")
    return out


def _units(layers: Sequence[LIFLayer], layer_sharing: bool) -> list:
    """Membrane-sharing units: lists of consecutive layers with the same block id."""
    units: list = []
    for layer in layers:
        if (layer_sharing and layer.block is not None and units
                and units[-1][-1].block == layer.block):
            if units[-1][-1].shape != layer.shape:
                raise MemoryCalcError(f"block {layer.block!r}: layer {layer.name} shape {layer.shape} "
                                      f"differs from {units[-1][-1].name} {units[-1][-1].shape}")
            units[-1].append(layer)
        else:
            units.append([layer])
    return units


def scheme_memory(layers: Sequence[LIFLayer], scheme: str) -> int:
    """Forward membrane words (per sample) of ``layers`` under ``scheme``."""
    layer_sharing, groups = parse_scheme(scheme)
    words = 0
    for unit in _units(layers, layer_sharing):
        c = unit[0].shape[0]
        if c % groups:
            raise MemoryCalcError(f"scheme {scheme}: {groups} groups do not divide the {c} channels "
                                  f"of layer {unit[0].name}")
        words += unit[0].neurons // groups
    return words


@dataclass(frozen=True)
class MemoryRow:
    """One table row. Words are membranes per sample; ``*_mib_32`` at 32 bits,
    ``*_mib_hw`` at ``mem_width`` bits; ``bwd`` = reversible for shared schemes,
    plain BPTT for the baseline; ``bwd_bptt`` = plain BPTT; ratios vs baseline."""

    arch: str
    input_size: Optional[int]
    scheme: str
    timesteps: int
    batch: int
    mem_width: int
    fwd_words: int
    bwd_words: int
    bwd_bptt_words: int
    fwd_mib_32: float
    bwd_mib_32: float
    bwd_bptt_mib_32: float
    fwd_mib_hw: float
    bwd_mib_hw: float
    fwd_ratio: float
    bwd_ratio: float

    def as_dict(self) -> dict:
        return asdict(self)


def memory_table(net="vgg16", input_size: Optional[int] = 32, timesteps: int = 5,
                 schemes: Iterable[str] = DEFAULT_SCHEMES, mem_width: int = 16,
                 batch: int = 1) -> list:
    """Rows of :class:`MemoryRow` for ``net`` (an architecture name, an
    :class:`Arch`, a ``golden.network.Network`` or a list of LayerSpec) under
    each scheme. Block ids of ``net`` define the L sharing; C#N applies N
    groups to every LIF layer (their channel count must be divisible by N)."""
    for name, v, lo in (("timesteps", timesteps, 1), ("mem_width", mem_width, 1), ("batch", batch, 1)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise MemoryCalcError(f"{name}={v!r}: expected an integer >= {lo}")
    if isinstance(net, str):
        if net not in ARCHS:
            raise MemoryCalcError(f"unknown architecture {net!r}; known: {', '.join(ARCHS)}")
        net = ARCHS[net](input_size)
    arch_name = net.name if isinstance(net, Arch) else "network"
    size = net.input_size if isinstance(net, Arch) else None
    layers = lif_layers(net)
    schemes = list(schemes)
    if not schemes:
        raise MemoryCalcError("no schemes given")
    base = scheme_memory(layers, "baseline")
    rows = []
    for scheme in schemes:
        fwd = scheme_memory(layers, scheme) * batch
        bptt = base * timesteps * batch
        bwd = bptt if scheme == "baseline" else fwd
        rows.append(MemoryRow(
            arch=arch_name, input_size=size, scheme=scheme, timesteps=timesteps, batch=batch,
            mem_width=mem_width, fwd_words=fwd, bwd_words=bwd, bwd_bptt_words=bptt,
            fwd_mib_32=fwd * 4 / MiB, bwd_mib_32=bwd * 4 / MiB, bwd_bptt_mib_32=bptt * 4 / MiB,
            fwd_mib_hw=fwd * mem_width / 8 / MiB, bwd_mib_hw=bwd * mem_width / 8 / MiB,
            fwd_ratio=fwd / (base * batch), bwd_ratio=bwd / bptt))
    return rows


def _paper_ref(r: MemoryRow):
    if r.timesteps != 5 or r.batch != 1:
        return None
    if r.arch.endswith("-ls") and not r.scheme.startswith("L"):
        return None          # the paper's non-L VGG16 figures are for the other VGG16
    return PAPER_TABLE1.get((r.arch.replace("-ls", ""), r.input_size), {}).get(r.scheme)


def _other_vgg16(r: MemoryRow) -> bool:
    """A vgg16 row shown beside a paper figure that belongs to vgg16-ls."""
    return r.arch == "vgg16" and r.scheme.startswith("L")


def markdown(rows: Sequence[MemoryRow], paper: bool = True) -> str:
    """A markdown table of ``rows``; with ``paper`` adds Table 1's figures where it
    has them, marking (†, note under the table) those of another VGG16."""
    if not rows:
        return ""
    w = rows[0].mem_width
    paper = paper and any(_paper_ref(r) for r in rows)
    head = ["arch", "input", "T", "scheme", "fwd words", "bwd words", "fwd MiB (32b)",
            "bwd MiB (32b)", "bwd BPTT MiB (32b)", f"fwd MiB ({w}b)", f"bwd MiB ({w}b)",
            "fwd / baseline", "bwd / baseline"]
    if paper:
        head += ["paper fwd / bwd MB"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    marked = False
    for r in rows:
        cells = [r.arch, str(r.input_size or "-"), str(r.timesteps), r.scheme, str(r.fwd_words),
                 str(r.bwd_words), f"{r.fwd_mib_32:.3f}", f"{r.bwd_mib_32:.3f}",
                 f"{r.bwd_bptt_mib_32:.3f}", f"{r.fwd_mib_hw:.3f}", f"{r.bwd_mib_hw:.3f}",
                 f"{r.fwd_ratio:.3f}", f"{r.bwd_ratio:.3f}"]
        if paper:
            ref = _paper_ref(r)
            mark = " †" if ref and _other_vgg16(r) else ""
            marked = marked or bool(mark)
            cells.append(f"{ref[0]} / {ref[1]}{mark}" if ref else "")
        lines.append("| " + " | ".join(cells) + " |")
    if marked:
        lines += ["", f"† {VGG16_LS_NOTE}."]
    return "\n".join(lines)


def _csv_ints(text: str, what: str) -> list:
    try:
        vals = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} must be comma-separated integers, got {text!r}") from None
    if not vals:
        raise argparse.ArgumentTypeError(f"{what} is empty")
    return vals


def _load_network_file(path: str):
    """``golden.network.load_network(path)`` with its error as a MemoryCalcError
    (a directory, a missing file and a non-zip file are refused there, one line
    each, before numpy sees them)."""
    from .network import NetworkError, load_network
    try:
        return load_network(path)
    except NetworkError as e:
        raise MemoryCalcError(str(e)) from None


PROG = "python -m golden.memory"


def _main(argv) -> int:
    from .cli import OneLineParser, posint
    ap = OneLineParser(prog=PROG, description="LIF membrane memory of baseline / L / C#N / L+C#N "
                       "(paper Table 1): a markdown table on stdout.")
    ap.add_argument("--arch", default="all", choices=[*ARCHS, "all"],
                    help="architecture of the released code, or all")
    ap.add_argument("--input", default="32,64,224", type=lambda s: _csv_ints(s, "--input"),
                    help="input image sizes, comma-separated")
    ap.add_argument("--network", help="a network .npz (golden.network) instead of --arch/--input")
    ap.add_argument("--timesteps", "-T", type=posint("--timesteps"), default=5,
                    help="timesteps T (plain BPTT stores T membranes per neuron)")
    ap.add_argument("--schemes", default=",".join(DEFAULT_SCHEMES),
                    help="comma-separated schemes (baseline, L, C#N, L+C#N)")
    ap.add_argument("--mem-width", type=posint("--mem-width"), default=16,
                    help="hardware membrane bits (the *_hw columns)")
    ap.add_argument("--batch", type=posint("--batch"), default=1,
                    help="samples per batch (every count is multiplied by it)")
    args = ap.parse_args(argv)
    schemes = [s.strip() for s in args.schemes.split(",") if s.strip()]
    if args.network:
        net = _load_network_file(args.network)
        rows = memory_table(net, None, args.timesteps, schemes, args.mem_width, args.batch)
    else:
        archs = list(ARCHS) if args.arch == "all" else [args.arch]
        rows = []
        for arch in archs:
            for size in args.input:
                rows += memory_table(arch, size, args.timesteps, schemes, args.mem_width, args.batch)
    print(markdown(rows))
    return 0


def main(argv=None) -> int:
    """The CLI under the project's error contract (golden.cli.run_main); returns the exit status."""
    from .cli import run_main
    return run_main(_main, PROG, argv)


if __name__ == "__main__":
    sys.exit(main())
