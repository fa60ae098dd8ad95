"""Analytic off-chip (DRAM) traffic of a spiking network on the PE array.

For a network's conv-layer geometry, an on-chip budget (:class:`Budget`:
weight, membrane and spike buffer bits), a mini-batch of ``B`` samples, ``T``
timesteps and a sharing scheme (baseline, L, C#N, L+C#N), count the bits and
the bursts that cross the chip boundary: weight reads, membrane fills
(reads) and spills (writes), spike reads (layer inputs) and spike writes
(layer outputs), per layer and in total, per mini-batch. The full rules,
with the reasoning, are in ``docs/traffic.md``; in short:

Geometry (derived from the :mod:`golden.memory` architectures, no second
table): every LIF layer is a 3×3 conv (stride 1, or 2 where the map halves in
ResNet19) whose input is the previous LIF layer's output (3 input channels of
``pixel_bits`` for the first layer). A 2×2 max-pool (VGG16) is applied on the
way out, so a pre-pool layer writes the pooled map. ResNet19: the second
layer of every basic block also reads the block input (the shortcut) and,
in the first block of a stage, holds the 1×1 shortcut-conv weights of its
output channels. Read-out/classifier layers are not counted.

Loop order (the paper's "standard" time-major processing, weight-stationary,
mini-batch of ``B`` samples per weight load)::

    for t in 0..T-1:                      # timestep-major
      for unit u (a layer, or an L sharing block) in network order:
        for each sub-batch of b samples (b = B unless u is fused, below):
          for layer l of u:
            for weight chunk k of l:      # output channels; whole c' slices of all N groups
              read chunk k                 # once per sub-batch
              for sample s of the sub-batch:
                read the input spikes of (s, t, l)  (once per chunk unless the buffer holds them)
                fill membranes of (s, chunk k)      (if not on chip)
                compute; write output spikes; spill membranes (if not kept)

Counted, per mini-batch (``W_l`` weight bits of layer ``l``, ``K_l`` its
chunks, ``I_l`` / ``O_l`` its input / output bits per sample and timestep,
``S_u`` the membrane bits of unit ``u`` per sample = ``golden.memory``
words × ``mem_bits``, ``m_u`` its layers):

* weights: all weights fit the weight buffer -> ``ΣW_l`` once; otherwise
  ``W_l · T · ceil(B / b)`` per layer (``b`` = sub-batch);
* input spikes: ``I_l · T · B``, times ``K_l`` unless ``b · I_l`` fits the
  spike buffer (or ``K_l = 1``); output spikes ``O_l · T · B``;
* membranes: nothing if ``B · ΣS_u`` fits the membrane buffer (all state on
  chip across timesteps). Otherwise every unit travels every timestep:
  *layer-major* (every baseline / C#N layer; an L block whose state does not
  fit): each layer of the unit fills and spills ``S_u`` per sample and
  timestep, except the zero start (first layer, t = 0) and the final state
  (last layer, t = T-1): ``(m_u·T − 1)·S_u·B`` fills and as many spills.
  *Fused* (an L block with ``b = floor(M / S_u) ≥ 1``): the shared membrane
  of ``b`` samples stays on chip through the block's layers, so it travels
  once per block and timestep: ``(T − 1)·S_u·B`` fills and spills, at the
  price of reloading the block's weights ``ceil(B / b)`` times per timestep.
  The model takes the cheaper of the two (fewer bits) and reports which.

Bursts: each transfer (one chunk of weights; one sample's input map of one
chunk pass; one chunk's output spikes or membrane words of one sample) is
rounded up to whole bursts of ``burst_bytes``; ``accesses`` sums them.
:func:`transfers` lists the same transfers one by one in the loop order
(what a schedule emits and a testbench counts); its sums equal the closed
forms above.

API: :func:`traffic` (one network/scheme/budget/B -> :class:`Traffic`),
:func:`sweep`, :func:`markdown_table`, :func:`comparison_lines`,
:func:`plot_png`, :func:`traffic_markdown` (the report section).
CLI: ``python -m golden.traffic [--arch ...] [--format markdown|text]
[--plot FILE.png]``.
"""

from __future__ import annotations

import argparse
import io
import math
import sys
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Optional, Sequence

from .cli import OneLineParser, posint, run_main
from .config import HwConfig
from .errors import ProjectError
from .files import atomic_write, check_writable_dir
from .geometry import sharing_units
from .memory import ARCHS, Arch, MemoryCalcError, parse_scheme, scheme_memory

__all__ = [
    "TrafficError", "ConvLayer", "Budget", "LayerTraffic", "Traffic", "KINDS",
    "DEFAULT_SCHEMES", "DEFAULT_ARCHS", "DEFAULT_SIZES", "DEFAULT_BATCHES", "PAPER_L_REDUCTION",
    "SATA_SOURCE", "Transfer", "transfers", "hw_traffic", "layer_table", "array_budget", "sata_budget", "block_budget", "conv_layers", "traffic",
    "sweep", "markdown_table", "comparison_lines", "plot_png", "traffic_markdown", "main",
]

#: Traffic kinds, in table order: (key, direction, what).
KINDS = (("weight_rd", "read", "weights"), ("mem_rd", "read", "membrane fills"),
         ("mem_wr", "write", "membrane spills"), ("spike_rd", "read", "input spikes / pixels"),
         ("spike_wr", "write", "output spikes"))
DEFAULT_SCHEMES = ("baseline", "L", "C#2", "C#4", "L+C#4")
DEFAULT_ARCHS = ("vgg16", "resnet19")
DEFAULT_SIZES = (32, 64, 224)
DEFAULT_BATCHES = (1, 8, 64)
DEFAULT_T = 5
DEFAULT_BURST = 64
#: Paper §5.3.9 / Fig. 9 bottom: L-sharing reduction of total DRAM accesses, VGG16, B = 64.
PAPER_L_REDUCTION = {32: ("CIFAR-10", 0.23), 64: ("TinyImageNet", 0.25)}

SATA_SOURCE = ("SATA_Sim (github.com/RuokaiYin/SATA_Sim) inference-energy-cal/archs/"
               "sata-config.yaml: GLB-weight 147,456 B, GLB-ifmap 32,768 B, GLB-ofmap 32,768 B, "
               "128 PEs, 8-bit weights")


class TrafficError(ProjectError, ValueError):
    """Bad network, scheme, budget or parameter. The message names it."""


@dataclass(frozen=True)
class ConvLayer:
    """One LIF conv layer as the traffic model sees it.

    ``out_shape`` (C, H, W) after any pool (what is written out);
    ``lif_shape`` (C, H, W) of the membranes; ``fanin`` weights per output
    channel (9·Cin, plus the 1×1 shortcut inputs where it holds them);
    ``in_elems`` input elements per sample and timestep, each ``in_bits``
    bits (1 for spikes, ``pixel_bits`` for the image); ``block`` the L
    sharing block id (None: own membrane)."""

    name: str
    lif_shape: tuple
    out_shape: tuple
    fanin: int
    in_elems: int
    in_bits: int = 1
    block: Optional[object] = None
    mode: str = "chained"           # for golden.geometry.sharing_units


@dataclass(frozen=True)
class Budget:
    """On-chip buffers in bits. ``spike_bits`` = 0: no spike buffer (inputs
    are re-read for every weight chunk)."""

    name: str
    weight_bits: int
    membrane_bits: int
    spike_bits: int = 0
    source: str = ""

    def __post_init__(self):
        for f in ("weight_bits", "membrane_bits", "spike_bits"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise TrafficError(f"budget {self.name}: {f}={v!r}: expected an integer >= 0")


def array_budget(cfg: Optional[HwConfig] = None) -> Budget:
    """The buffers of ``cfg`` (default: ``HwConfig()``): weight and membrane
    buffer bits, no spike buffer (EVENTs arrive from the host)."""
    cfg = cfg or HwConfig()
    return Budget("array", cfg.weight_buffer_bits, cfg.membrane_buffer_bits, 0,
                  f"HwConfig(array={cfg.array}, groups={cfg.groups}): weight_rows={cfg.weight_rows} "
                  f"× {cfg.array} × {cfg.weight_width} b, mem_rows={cfg.mem_rows} × {cfg.slots} × "
                  f"{cfg.mem_width} b")


def sata_budget() -> Budget:
    """SATA's global buffers (:data:`SATA_SOURCE`). SATA has no separate
    membrane buffer; ASSUMPTION: its 32 KiB output-map GLB holds the
    membranes and its 32 KiB input-map GLB the input spikes."""
    return Budget("sata", 147456 * 8, 32768 * 8, 32768 * 8,
                  SATA_SOURCE + "; assumption: membranes in GLB-ofmap, spikes in GLB-ifmap")


def block_budget(layers: Sequence[ConvLayer], batch: int, mem_bits: int = 16,
                 scheme: str = "L") -> Budget:
    """The paper's premise (Fig. 5A): SATA's weight and spike buffers and a
    membrane buffer just large enough for the largest sharing block (a unit
    of two or more layers; any unit if there is none) of ``scheme`` for
    ``batch`` samples, so every L block fuses at b = B."""
    units = _units(layers, scheme)
    blocks = [u for u in units if len(u) > 1] or units
    need = max(_unit_words(layers, u, scheme) for u in blocks) * mem_bits * batch
    s = sata_budget()
    return Budget("block", s.weight_bits, need, s.spike_bits,
                  f"membrane buffer = largest {scheme} sharing block × B (paper's premise)")


# ---------------------------------------------------------------- geometry
def conv_layers(arch, input_size: Optional[int] = None, pixel_bits: int = 8) -> list:
    """:class:`ConvLayer` list of a :mod:`golden.memory` architecture (name
    or :class:`golden.memory.Arch`), or a list of ConvLayer (returned)."""
    if isinstance(arch, (list, tuple)) and all(isinstance(x, ConvLayer) for x in arch) and arch:
        return list(arch)
    if isinstance(arch, str):
        if arch not in ARCHS:
            raise TrafficError(f"unknown architecture {arch!r}; known: {', '.join(ARCHS)}")
        try:
            arch = ARCHS[arch](input_size)
        except MemoryCalcError as e:
            raise TrafficError(str(e)) from None
    if not isinstance(arch, Arch):
        raise TrafficError(f"cannot read conv layers from {type(arch).__name__}: expected an "
                           f"architecture name, a golden.memory.Arch or a list of ConvLayer")
    lif = list(arch.layers)
    residual = arch.name.startswith("resnet")
    s = arch.input_size
    out = []
    prev = (3, s, s)                 # what the previous layer wrote (the image for layer 0)
    stage_start = {}                 # stage prefix -> index of its first layer
    for i, ly in enumerate(lif):
        c, h, w = ly.shape
        nxt = lif[i + 1].shape if i + 1 < len(lif) else None
        pooled = (not residual and nxt is not None and nxt[1] < h)
        oshape = (c, h // 2, w // 2) if pooled else (c, h, w)
        fanin = 9 * prev[0]
        in_elems = math.prod(prev)
        if residual and "." in ly.name:
            stage, idx = ly.name.rsplit(".", 1)
            stage_start.setdefault(stage, i)
            j = int(idx)
            if j % 2 == 1:           # second conv of a basic block: + shortcut input
                block_in = out[i - 2].out_shape if i >= 2 else (3, s, s)
                in_elems += math.prod(block_in)
                if j == 1 and block_in != (c, h, w):
                    fanin += block_in[0]   # 1×1 shortcut conv weights per output channel
        out.append(ConvLayer(ly.name, (c, h, w), oshape, fanin, in_elems,
                             pixel_bits if i == 0 else 1, ly.block))
        prev = oshape
    return out


def _units(layers, scheme: str) -> list:
    layer_sharing, _ = parse_scheme(scheme)
    if layer_sharing:
        return sharing_units(layers)
    return [[i] for i in range(len(layers))]


def _unit_words(layers, unit, scheme: str) -> int:
    """Membrane words per sample of one unit (golden.memory's rule)."""
    try:
        return scheme_memory([SimpleNamespace(name=layers[i].name, shape=layers[i].lif_shape,
                                              block=layers[i].block,
                                              neurons=math.prod(layers[i].lif_shape))
                              for i in unit], scheme)
    except MemoryCalcError as e:
        raise TrafficError(str(e)) from None


# ------------------------------------------------------------------ model
@dataclass
class LayerTraffic:
    """Traffic of one layer per mini-batch: ``bits[kind]``, ``accesses[kind]``
    (bursts); ``chunks`` weight chunks, ``mode`` of its unit ('resident',
    'layer-major', 'fused b=N'), ``sub_batch`` samples per weight load,
    ``unit_layers`` the layers of its unit (m > 1: an L sharing block),
    ``unit`` the unit's index in network order, ``chunk_channels`` the
    output channels of each weight chunk."""

    name: str
    chunks: int
    mode: str
    sub_batch: int
    unit_layers: int = 1
    unit: int = 0
    chunk_channels: tuple = ()
    bits: dict = field(default_factory=lambda: {k: 0 for k, _, _ in KINDS})
    accesses: dict = field(default_factory=lambda: {k: 0 for k, _, _ in KINDS})

    def add(self, kind: str, transfer_bits: int, count: int, burst_bits: int) -> None:
        self.bits[kind] += transfer_bits * count
        self.accesses[kind] += -(-transfer_bits // burst_bits) * count

    @property
    def total_bits(self) -> int:
        return sum(self.bits.values())

    @property
    def total_accesses(self) -> int:
        return sum(self.accesses.values())


@dataclass
class Traffic:
    """Traffic of a network per mini-batch of ``batch`` samples."""

    arch: str
    input_size: Optional[int]
    scheme: str
    budget: Budget
    batch: int
    timesteps: int
    weight_bits: int
    mem_bits: int
    burst_bytes: int
    layers: list
    geometry: tuple = ()
    groups: int = 1
    membranes_resident: bool = False
    weights_resident: bool = False

    def bits(self, kind: Optional[str] = None) -> int:
        return sum(ly.bits[kind] if kind else ly.total_bits for ly in self.layers)

    def accesses(self, kind: Optional[str] = None) -> int:
        return sum(ly.accesses[kind] if kind else ly.total_accesses for ly in self.layers)

    def per_sample(self, kind: Optional[str] = None) -> float:
        """Bursts per sample."""
        return self.accesses(kind) / self.batch


def _check_int(name, v, lo):
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise TrafficError(f"{name}={v!r}: expected an integer >= {lo}")


def _chunks(cout: int, per_channel_bits: int, groups: int, cap_bits: int, name: str) -> list:
    """Output-channel counts of the weight chunks of a layer (multiples of
    ``groups`` so a chunk holds whole c' slices of every group)."""
    per = (cap_bits // (per_channel_bits * groups)) * groups
    if per == 0:
        raise TrafficError(f"layer {name}: the weight buffer ({cap_bits} bits) cannot hold "
                           f"{groups} output channel(s) of {per_channel_bits} bits")
    per = min(per, cout)
    return [per] * (cout // per) + ([cout % per] if cout % per else [])


def traffic(arch, scheme: str = "baseline", budget: Optional[Budget] = None, batch: int = 1,
            timesteps: int = DEFAULT_T, input_size: Optional[int] = None, weight_bits: int = 8,
            mem_bits: int = 16, burst_bytes: int = DEFAULT_BURST, pixel_bits: int = 8,
            name: Optional[str] = None, chunk_channels: Optional[int] = None,
            fuse: bool = True) -> Traffic:
    """DRAM traffic of one mini-batch (module docstring, docs/traffic.md).
    ``name`` labels the result (default: the architecture's name).
    ``chunk_channels``: output channels per weight chunk (default: as many
    multiples of N as fit the weight buffer; the hardware schedule's weight
    blocks hold one tile's channels, :func:`hw_traffic`); ``fuse=False``:
    never fuse an L block (the hardware schedule runs every unit
    layer-major)."""
    for what, v, lo in (("batch", batch, 1), ("timesteps", timesteps, 1),
                        ("weight_bits", weight_bits, 1), ("mem_bits", mem_bits, 1),
                        ("burst_bytes", burst_bytes, 1), ("pixel_bits", pixel_bits, 1)):
        _check_int(what, v, lo)
    budget = budget or array_budget()
    layers = conv_layers(arch, input_size, pixel_bits)
    try:
        _, groups = parse_scheme(scheme)
    except MemoryCalcError as e:
        raise TrafficError(str(e)) from None
    burst = burst_bytes * 8
    T, B = timesteps, batch
    units = _units(layers, scheme)
    words = [_unit_words(layers, u, scheme) for u in units]
    resident = B * sum(words) * mem_bits <= budget.membrane_bits
    w_all = sum(ly.fanin * ly.lif_shape[0] * weight_bits for ly in layers)
    w_resident = w_all <= budget.weight_bits
    chunks = [_chunks(ly.lif_shape[0], ly.fanin * weight_bits, groups, budget.weight_bits, ly.name)
              if chunk_channels is None else
              [min(chunk_channels, ly.lif_shape[0])] * -(-ly.lif_shape[0] // chunk_channels)
              for ly in layers]

    def unit_rows(u: int, unit, sub: int, fused: bool) -> list:
        rows = []
        m = len(unit)
        for j, i in enumerate(unit):
            ly, ks = layers[i], chunks[i]
            mode = "resident" if resident else (f"fused b={sub}" if fused else "layer-major")
            r = LayerTraffic(ly.name, len(ks), mode, sub, m, u, tuple(ks))
            loads = 1 if w_resident else T * -(-B // sub)
            for ch in ks:
                r.add("weight_rd", ch * ly.fanin * weight_bits, 1 if w_resident else loads, burst)
            ibits = ly.in_elems * ly.in_bits
            reread = 1 if (len(ks) == 1 or sub * ibits <= budget.spike_bits) else len(ks)
            r.add("spike_rd", ibits, T * B * reread, burst)
            plane = ly.out_shape[1] * ly.out_shape[2]
            for ch in ks:
                r.add("spike_wr", ch * plane, T * B, burst)
            if not resident:
                c, h, w = ly.lif_shape
                fills = (T - 1) if j == 0 else (0 if fused else T)
                spills = (T - 1) if j == m - 1 else (0 if fused else T)
                for ch in ks:
                    mb = ch // groups * h * w * mem_bits
                    r.add("mem_rd", mb, fills * B, burst)
                    r.add("mem_wr", mb, spills * B, burst)
            rows.append(r)
        return rows

    out = []
    for u, (unit, wd) in enumerate(zip(units, words)):
        rows = unit_rows(u, unit, B, False)
        sub = budget.membrane_bits // (wd * mem_bits)
        if fuse and not resident and len(unit) > 1 and sub >= 1:
            fused = unit_rows(u, unit, min(sub, B), True)
            if sum(r.total_bits for r in fused) < sum(r.total_bits for r in rows):
                rows = fused
        out += rows
    if name is None:
        name = arch if isinstance(arch, str) else getattr(arch, "name", "network")
    size = input_size if isinstance(arch, str) else getattr(arch, "input_size", input_size)
    return Traffic(name, size, scheme, budget, B, T, weight_bits, mem_bits, burst_bytes, out,
                   tuple(layers), groups, resident, w_resident)


@dataclass(frozen=True)
class Transfer:
    """One off-chip transfer of the explicit schedule: ``kind`` (:data:`KINDS`),
    ``bits``, timestep ``t``, layer index, weight chunk, sample (-1 for weights)."""

    kind: str
    bits: int
    t: int
    layer: int
    chunk: int
    sample: int


def transfers(plan: Traffic):
    """The transfers of ``plan`` (a :func:`traffic` result) one by one, in the
    loop order of docs/traffic.md, with its per-unit choices (resident /
    layer-major / fused b). This is the sequence a schedule emits and a
    testbench's off-chip memory sees; its sums equal ``plan``'s counts (the
    closed forms are checked against it in tests/test_golden_traffic.py)."""
    geo, rows, g = plan.geometry, plan.layers, plan.groups
    T, B, wb, mb = plan.timesteps, plan.batch, plan.weight_bits, plan.mem_bits
    units: dict = {}
    for i, r in enumerate(rows):
        units.setdefault(r.unit, []).append(i)
    for t in range(T):
        for unit in units.values():
            head = rows[unit[0]]
            sub, fused = head.sub_batch, head.mode.startswith("fused")
            m = len(unit)
            for s0 in range(0, B, sub):
                samples = range(s0, min(B, s0 + sub))
                for j, i in enumerate(unit):
                    ly, ks = geo[i], rows[i].chunk_channels
                    ibits = ly.in_elems * ly.in_bits
                    reread = len(ks) > 1 and sub * ibits > plan.budget.spike_bits
                    plane = ly.lif_shape[1] * ly.lif_shape[2]
                    oplane = ly.out_shape[1] * ly.out_shape[2]
                    for k, ch in enumerate(ks):
                        if not plan.weights_resident or (t == 0 and s0 == 0):
                            yield Transfer("weight_rd", ch * ly.fanin * wb, t, i, k, -1)
                        for s in samples:
                            if k == 0 or reread:
                                yield Transfer("spike_rd", ibits, t, i, k, s)
                            if not plan.membranes_resident:
                                fill = (t > 0) if j == 0 else not fused
                                if fill:
                                    yield Transfer("mem_rd", ch // g * plane * mb, t, i, k, s)
                            yield Transfer("spike_wr", ch * oplane, t, i, k, s)
                            if not plan.membranes_resident:
                                spill = (t < T - 1) if j == m - 1 else not fused
                                if spill:
                                    yield Transfer("mem_wr", ch // g * plane * mb, t, i, k, s)


def hw_traffic(cfg: HwConfig, net, samples: int, timesteps: int, burst_bytes: int = DEFAULT_BURST,
               mapping: Optional[str] = None) -> Traffic:
    """The model for one run of ``net`` (a :class:`golden.network.Network`) on
    build ``cfg`` as :func:`golden.schedule.build_schedule` lays it out:
    ``cfg``'s buffers (:func:`array_budget`), ``cfg.weight_width`` /
    ``cfg.mem_width`` bits, 1-bit input spikes, the schedule's weight blocks as
    chunks, units layer-major, B = ``samples``. ``transfers(hw_traffic(...))``
    is what the testbench's off-chip memory must count (tb/offchip.py).

    Only layouts without padding are modelled (the hardware moves whole rows,
    the model neuron words): CHAINED conv/linear layers whose tiles fill every
    PE slot, one weight block per chunk, no bias rows, all samples in one
    mini-batch; anything else raises :class:`TrafficError`."""
    from .schedule import plan_allocation
    net.validate(cfg, mapping=mapping)
    alloc = plan_allocation(cfg, net, mapping, samples)
    if alloc.batch < samples:
        raise TrafficError(f"{samples} samples run in mini-batches of {alloc.batch}: model one "
                           f"mini-batch at a time")
    layers, chunk = [], None
    for i, ly in enumerate(net.layers):
        plan = alloc.plans[i]
        c = ly.out_shape[0]
        if ly.mode != "chained" or ly.bias is not None or ly.pool > 1 or \
                getattr(ly, "skip", None) is not None:
            raise TrafficError(f"layer {i} ({ly.name}): only CHAINED layers without bias, "
                               f"pooling or a shortcut input are modelled on the hardware")
        if len(plan.tiles) * cfg.array != math.prod(ly.out_shape) or c % len(plan.blocks):
            raise TrafficError(f"layer {i} ({ly.name}): tiles with padding slots or uneven "
                               f"weight blocks are not modelled on the hardware")
        k = c // len(plan.blocks)
        if chunk not in (None, k):
            raise TrafficError(f"layer {i} ({ly.name}): weight blocks of {k} channels, the "
                               f"previous layers' of {chunk}")
        chunk = k
        fanin = plan.blocks[0].rows
        layers.append(ConvLayer(ly.name, tuple(ly.out_shape), tuple(ly.out_shape),
                                fanin, math.prod(ly.in_shape), 1, ly.block))
    scheme = (("L+" if any(len(b) > 1 for b in net.blocks()) else "") + f"C#{cfg.groups}")
    if scheme == "C#1":
        scheme = "baseline"
    return traffic(layers, scheme, array_budget(cfg), samples, timesteps,
                   weight_bits=cfg.weight_width, mem_bits=cfg.mem_width, burst_bytes=burst_bytes,
                   name="network", chunk_channels=chunk, fuse=False)


def _budgets(names: Sequence[str], layers, batch: int, mem_bits: int) -> list:
    out = []
    for n in names:
        if n == "array":
            out.append(array_budget())
        elif n == "sata":
            out.append(sata_budget())
        elif n == "block":
            out.append(block_budget(layers, batch, mem_bits))
        else:
            raise TrafficError(f"unknown budget {n!r}; known: array, sata, block")
    return out


def sweep(archs=DEFAULT_ARCHS, sizes=DEFAULT_SIZES, batches=DEFAULT_BATCHES,
          schemes=DEFAULT_SCHEMES, budgets=("array", "sata"), **kw) -> list:
    """:class:`Traffic` for every combination (arch, size, B, budget, scheme)."""
    if not schemes:
        raise TrafficError("no schemes given")
    out = []
    for arch in archs:
        for size in sizes:
            layers = conv_layers(arch, size, kw.get("pixel_bits", 8))
            for b in batches:
                for bud in _budgets(budgets, layers, b, kw.get("mem_bits", 16)):
                    for s in schemes:
                        out.append(traffic(layers, s, bud, b, input_size=size, name=arch, **kw))
    return out


# ---------------------------------------------------------------- output
def _groups(rows):
    """Group Traffic rows by (arch, size, batch, budget name) in order."""
    out: dict = {}
    for r in rows:
        out.setdefault((r.arch, r.input_size, r.batch, r.budget.name), []).append(r)
    return out


def _fmt(x: float) -> str:
    return f"{x / 1e6:.4g} M"


def _blocks_cell(t) -> str:
    """'fused k/n (b=..)' over the L blocks (units of 2+ layers) of ``t``."""
    firsts = list({ly.unit: ly for ly in reversed(t.layers) if ly.unit_layers > 1}.values())
    if not firsts:
        return "no blocks"
    if all(ly.mode == "resident" for ly in firsts):
        return "all on chip"
    fused = [ly.sub_batch for ly in firsts if ly.mode.startswith("fused")]
    return f"{len(fused)}/{len(firsts)} fused" + (f" (b ≥ {min(fused)})" if fused else "")


def markdown_table(rows: Sequence[Traffic], fmt: str = "markdown") -> str:
    """One line per (arch, input, B, budget): bursts per sample per scheme and
    the ratio to the first scheme (baseline), plus the baseline breakdown."""
    if not rows:
        return ""
    schemes = list(dict.fromkeys(r.scheme for r in rows))
    head = ["arch", "input", "B", "budget"] + [f"{s} bursts/sample (÷{schemes[0]})"
                                               for s in schemes]
    head += [f"{schemes[0]}: weights / membranes / spikes %", "L blocks fused"]
    table = [head]
    for (arch, size, b, bud), grp in _groups(rows).items():
        by = {r.scheme: r for r in grp}
        base = by.get(schemes[0])
        cells = [arch, str(size), str(b), bud]
        for s in schemes:
            r = by.get(s)
            if r is None:
                cells.append("")
                continue
            ratio = f" ({r.accesses() / base.accesses():.3f})" if base else ""
            cells.append(_fmt(r.per_sample()) + ratio)
        if base:
            t = base.accesses()
            wt = base.accesses("weight_rd") / t
            mm = (base.accesses("mem_rd") + base.accesses("mem_wr")) / t
            cells.append(f"{100 * wt:.0f} / {100 * mm:.0f} / {100 * (1 - wt - mm):.0f}")
        else:
            cells.append("")
        lr = by.get("L")
        cells.append(_blocks_cell(lr) if lr else "")
        table.append(cells)
    if fmt == "markdown":
        lines = ["| " + " | ".join(table[0]) + " |", "|" + "---|" * len(table[0])]
        lines += ["| " + " | ".join(c) + " |" for c in table[1:]]
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in table)


def layer_table(t: Traffic, fmt: str = "markdown") -> str:
    """Per-layer bits and bursts of one :class:`Traffic`."""
    head = ["layer", "chunks", "mode"] + [f"{k} bits" for k, _, _ in KINDS] + ["bursts"]
    table = [head]
    for ly in t.layers:
        table.append([ly.name, str(ly.chunks), ly.mode] + [f"{ly.bits[k]:,}" for k, _, _ in KINDS]
                     + [f"{ly.total_accesses:,}"])
    table.append(["total", "", ""] + [f"{t.bits(k):,}" for k, _, _ in KINDS]
                 + [f"{t.accesses():,}"])
    if fmt == "markdown":
        return "\n".join(["| " + " | ".join(table[0]) + " |", "|" + "---|" * len(head)]
                         + ["| " + " | ".join(c) + " |" for c in table[1:]])
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in table)


def _ratio(arch_base, arch_l, size, budget, batch=64, **kw) -> tuple:
    lb = conv_layers(arch_base, size)
    ll = conv_layers(arch_l, size)
    bud = ({"array": array_budget(), "sata": sata_budget()}.get(budget)
           or block_budget(ll, batch, kw.get("mem_bits", 16)))
    base = traffic(lb, "baseline", bud, batch, input_size=size, **kw)
    shared = traffic(ll, "L", bud, batch, input_size=size, **kw)
    return shared.accesses() / base.accesses(), base, shared


def comparison_lines(budgets=("array", "sata", "block"), batch: int = 64, timesteps: int = DEFAULT_T,
                     weight_bits: int = 8, mem_bits: int = 16, burst_bytes: int = DEFAULT_BURST) -> list:
    """Lines comparing L / baseline total DRAM accesses at ``batch`` with the
    paper's 23 % (CIFAR-10, 32×32) and 25 % (TinyImageNet, 64×64)."""
    kw = dict(timesteps=timesteps, burst_bytes=burst_bytes)
    lines = [f"L vs baseline, VGG16, B = {batch}, T = {timesteps}, {weight_bits}-bit weights, "
             f"{mem_bits}-bit membranes, {burst_bytes} B bursts (total DRAM accesses, L / baseline):"]
    for size, (ds, red) in PAPER_L_REDUCTION.items():
        lines.append(f"* {ds} ({size}×{size}): paper {1 - red:.2f} ({100 * red:.0f} % fewer)")
        for bud in budgets:
            parts = []
            for label, a_b, a_l in (("vgg16", "vgg16", "vgg16"), ("vgg16-ls", "vgg16-ls", "vgg16-ls"),
                                    ("paper's mix", "vgg16", "vgg16-ls")):
                r, _, _ = _ratio(a_b, a_l, size, bud, batch, weight_bits=weight_bits,
                                 mem_bits=mem_bits, **kw)
                parts.append(f"{label} {r:.3f}")
            r_ns, base, shared = _ratio("vgg16", "vgg16", size, bud, batch, weight_bits=weight_bits,
                                        mem_bits=mem_bits, **kw)
            ns = ((shared.accesses() - shared.accesses("spike_rd") - shared.accesses("spike_wr"))
                  / (base.accesses() - base.accesses("spike_rd") - base.accesses("spike_wr")))
            r32, _, _ = _ratio("vgg16", "vgg16", size, bud, batch, weight_bits=32, mem_bits=32, **kw)
            parts.append(f"vgg16 without spikes {ns:.3f}")
            parts.append(f"vgg16 32-bit weights+membranes {r32:.3f}")
            lines.append(f"  * ours, {bud} budget: " + "; ".join(parts))
    lines.append("(vgg16 / vgg16-ls: baseline and L on the same network; paper's mix: baseline "
                 "vgg16 vs L vgg16-ls, as the paper's Table 1 figures are; golden.memory docs.)")
    return lines


def plot_png(batches=(1, 8, 64), sizes=DEFAULT_SIZES, budget: str = "block",
             schemes=DEFAULT_SCHEMES, arch: str = "vgg16", **kw) -> bytes:
    """PNG bytes: total DRAM accesses per scheme normalized to baseline, per
    input size (dataset) and mini-batch, like the paper's Fig. 9 bottom."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise TrafficError("matplotlib is not installed (pip install matplotlib)") from None
    names = {32: "CIFAR-10 (32)", 64: "TinyImageNet (64)", 224: "ImageNet-100 (224)"}
    fig, axes = plt.subplots(1, len(batches), figsize=(4.2 * len(batches), 3.6), sharey=True,
                             squeeze=False)
    width = 0.8 / len(schemes)
    for ax, b in zip(axes[0], batches):
        rows = sweep([arch], sizes, [b], schemes, [budget], **kw)
        for k, s in enumerate(schemes):
            vals = []
            for size in sizes:
                grp = [r for r in rows if r.input_size == size]
                base = next(r for r in grp if r.scheme == schemes[0]).accesses()
                vals.append(next(r for r in grp if r.scheme == s).accesses() / base)
            ax.bar([i + (k - (len(schemes) - 1) / 2) * width for i in range(len(sizes))], vals,
                   width, label=s)
        ax.set_xticks(range(len(sizes)))
        ax.set_xticklabels([names.get(s, str(s)) for s in sizes], fontsize=8)
        ax.set_title(f"{arch}, B = {b}, {budget} budget", fontsize=9)
        ax.axhline(1.0, color="grey", lw=0.6)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel(f"DRAM accesses / {schemes[0]}")
    axes[0][-1].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def traffic_markdown(plot_name: Optional[str] = None, archs=DEFAULT_ARCHS, sizes=DEFAULT_SIZES,
                     batches=DEFAULT_BATCHES, schemes=DEFAULT_SCHEMES,
                     budgets=("array", "sata", "block"), **kw) -> str:
    """The report section: heading, budgets, the table, the comparison with
    the paper and (if ``plot_name`` is given) a link to the plot file."""
    rows = sweep(archs, sizes, batches, schemes, budgets, **kw)
    lines = ["## Off-chip (DRAM) traffic (golden.traffic)", "",
             "Bursts per sample (÷ baseline) for one mini-batch of B samples, T = "
             f"{kw.get('timesteps', DEFAULT_T)}; rules in `docs/traffic.md`. Budgets:", ""]
    for b in (array_budget(), sata_budget()):
        lines.append(f"* **{b.name}**: weights {b.weight_bits:,} b, membranes {b.membrane_bits:,} b, "
                     f"spikes {b.spike_bits:,} b ({b.source})")
    if "block" in budgets:
        lines.append("* **block**: SATA's weight/spike buffers, membrane buffer = the largest L "
                     "sharing block's state for B samples (the paper's premise)")
    lines += ["", markdown_table(rows), ""]
    lines += comparison_lines(timesteps=kw.get("timesteps", DEFAULT_T))
    if plot_name:
        lines += ["", f"![DRAM accesses per scheme]({plot_name})"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    def listarg(name, conv, known=None, lo=None):
        def parse(text):
            vals = [v.strip() for v in text.split(",") if v.strip()]
            try:
                out = [conv(v) for v in vals]
            except ValueError:
                out = None
            if not out or (known and any(v not in known for v in out)) or (
                    lo is not None and any(v < lo for v in out)):
                what = f" from {', '.join(known)}" if known else (f" >= {lo}" if lo is not None else "")
                raise argparse.ArgumentTypeError(f"{name} must be a comma-separated list{what}, "
                                                 f"got {text!r}")
            return out
        return parse

    ap = OneLineParser(prog="python -m golden.traffic",
                       description="Off-chip DRAM traffic (weights, membranes, spikes) per scheme.")
    ap.add_argument("--arch", default=",".join(DEFAULT_ARCHS), type=listarg("--arch", str, list(ARCHS)),
                    help="architectures")
    ap.add_argument("--input", default="32,64,224", type=listarg("--input", int, lo=1),
                    help="input sizes")
    ap.add_argument("--batch", default="1,8,64", type=listarg("--batch", int, lo=1),
                    help="mini-batch sizes B")
    ap.add_argument("--schemes", default=",".join(DEFAULT_SCHEMES), type=listarg("--schemes", str),
                    help="schemes (baseline, L, C#N, L+C#N); the first is the reference")
    ap.add_argument("--budget", default="array,sata,block",
                    type=listarg("--budget", str, ["array", "sata", "block"]), help="on-chip budgets")
    ap.add_argument("--timesteps", "-T", type=posint("--timesteps"), default=DEFAULT_T, help="T")
    ap.add_argument("--weight-bits", type=posint("--weight-bits", 32), default=8, help="weight bits")
    ap.add_argument("--mem-bits", type=posint("--mem-bits", 64), default=16, help="membrane bits")
    ap.add_argument("--burst", type=posint("--burst"), default=DEFAULT_BURST, help="burst bytes")
    ap.add_argument("--format", choices=("markdown", "text"), default="markdown", help="table format")
    ap.add_argument("--per-layer", action="store_true", help="also print per-layer tables")
    ap.add_argument("--plot", metavar="FILE.png", help="write a Fig.-9-style plot (VGG16, block budget)")
    args = ap.parse_args(argv)
    if args.plot and not args.plot.lower().endswith(".png"):
        ap.error(f"--plot {args.plot!r}: the file name must end in .png")
    if args.plot:
        import os
        check_writable_dir(os.path.dirname(os.path.abspath(args.plot)), "--plot folder")
    kw = dict(timesteps=args.timesteps, weight_bits=args.weight_bits, mem_bits=args.mem_bits,
              burst_bytes=args.burst)
    rows = sweep(args.arch, args.input, args.batch, args.schemes, args.budget, **kw)
    png = plot_png(args.batch, args.input, "block", args.schemes, **kw) if args.plot else None
    print(markdown_table(rows, args.format))
    if args.per_layer:
        for r in rows:
            print(f"\n{r.arch} {r.input_size} B={r.batch} {r.budget.name} {r.scheme}:")
            print(layer_table(r, args.format))
    print()
    print("\n".join(comparison_lines([b for b in args.budget], 64, **kw)))
    if png is not None:
        atomic_write({args.plot: png})
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, "python -m golden.traffic"))
