"""Layer geometry shared by the float reference and the integer network.

:class:`LayerGeometry` holds the fifteen fields that describe one synaptic
layer (kind, shapes, mode, block, name, input pooling, residual input) without its weights, checks them, and derives the shapes. The float
model's :class:`golden.reference.LayerSpec` and the integer network's
:class:`golden.network.Layer` (which adds the int64 weight) are subclasses,
so each field and each rule is written here once.

Shapes (all C, H, W order):

* ``kind = "linear"``: ``in_shape = (F,)``, weight ``[out, F]``, output
  ``(out,)``. After a conv layer its input is that layer's output flattened
  in C, H, W order (``F = C*H*W``);
* ``kind = "conv"``: ``in_shape = (C, H, W)``, weight ``[out, C, k, k]``
  (square kernel, equal stride and zero padding on both axes), output
  ``(out, H', W')`` with ``H' = (H + 2*padding - k) // stride + 1``.

``mode``: "chained" (C#N over the build's groups), "independent" (own
membrane per neuron) or "readout" (current out, no LIF). ``block``: an
integer id shared by consecutive LIF layers that share one membrane (L), or
None; a readout layer has no membrane and no block. ``name``: free text used
in messages.

``pool`` (input max pooling, docs/network-format.md): ``pool = k > 1`` means
the layer's input spikes are the previous layer's output spikes ORed over
non-overlapping ``k×k`` windows (stride ``k``, no padding, a remainder row or
column dropped as PyTorch's ``MaxPool2d(k)`` does): ``(C, H, W) -> (C, H//k,
W//k)``, and ``in_shape`` is that pooled shape (a linear layer takes it
flattened). ``pool = 1``: no pooling. The first layer cannot pool (the host
pools the network input itself). :func:`pool_spikes` is the one implementation.

``skip`` (residual sum, docs/network-format.md): ``skip = j`` (a LIF layer
before this one) adds a second synaptic input to this layer's current, a
shortcut from layer ``j``'s output spikes (unpooled): ``X = W·O_in + W_s·O_j
(+ b)``. The shortcut is a conv with ``skip_kernel`` / ``skip_stride`` /
``skip_padding`` (an identity shortcut is a 1×1 conv with an identity
weight) or, on a linear layer, a linear map of ``O_j`` flattened;
``skip_in_shape`` is layer ``j``'s output shape and the shortcut's output
must be this layer's output shape. ``skip = None``: one input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Optional

import numpy as np

from .errors import ProjectError

__all__ = ["LayerGeometryError", "LayerGeometry", "output_shape", "is_int", "where", "sharing_units",
           "check_chain", "pool_spikes", "pooled_shape", "KINDS", "MODES", "LIF_MODES"]

KINDS = ("linear", "conv")
MODES = ("chained", "independent", "readout")
#: Modes that run the LIF stage and own membrane state.
LIF_MODES = ("chained", "independent")


class LayerGeometryError(ProjectError, ValueError):
    """An invalid layer field; subclasses of :class:`LayerGeometry` raise their own class."""


def is_int(v) -> bool:
    """A Python or numpy integer, not a bool."""
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def pooled_shape(shape: tuple, k: int) -> tuple:
    """``(C, H, W)`` after OR pooling over ``k×k`` windows with stride ``k``: ``(C, H//k, W//k)``."""
    if k == 1:
        return tuple(shape)
    c, h, w = shape
    return (c, h // k, w // k)


def pool_spikes(spikes: np.ndarray, k: int) -> np.ndarray:
    """OR of 0/1 ``spikes [M, C, H, W]`` over ``k×k`` windows, stride ``k`` -> ``[M, C, H//k, W//k]``.

    A remainder row/column (``H mod k``) is dropped. ``k = 1`` returns ``spikes``.
    Same dtype as the input.
    """
    if k == 1:
        return spikes
    m, c, h, w = spikes.shape
    ho, wo = h // k, w // k
    x = spikes[:, :, :ho * k, :wo * k].reshape(m, c, ho, k, wo, k)
    return x.max(axis=(3, 5))


def output_shape(layer) -> tuple:
    """(C,) for linear, (C, H', W') for conv with H' = (H + 2·padding − kernel) // stride + 1."""
    if layer.kind == "linear":
        return (layer.out_channels,)
    _, h, w = layer.in_shape
    k, s, p = layer.kernel, layer.stride, layer.padding
    return (layer.out_channels, (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1)


@dataclass(frozen=True, eq=False)
class LayerGeometry:
    """Kind, shapes, mode and sharing block of one layer (see the module docstring).

    Construction checks every field and raises ``_error`` (a
    :class:`LayerGeometryError` here; subclasses name their own class) with a
    one-line message naming the layer and the field. Integer fields are
    normalised to Python ints, ``in_shape`` to a tuple.
    """

    kind: str
    in_shape: tuple
    out_channels: int
    kernel: int = 1
    stride: int = 1
    padding: int = 0
    mode: str = "chained"
    block: Optional[int] = None
    name: str = ""
    pool: int = 1
    skip: Optional[int] = None
    skip_in_shape: Optional[tuple] = None
    skip_kernel: int = 1
    skip_stride: int = 1
    skip_padding: int = 0

    #: Exception class raised for a bad field (subclasses override it).
    _error: ClassVar[type] = LayerGeometryError

    @property
    def _who(self) -> str:
        """``layer 'conv1'`` (or ``layer``): how messages about this layer start."""
        return f"layer {self.name!r}" if isinstance(self.name, str) and self.name else "layer"

    def _bad(self, msg: str) -> Exception:
        """The error to raise for ``msg`` about this layer."""
        return self._error(f"{self._who}: {msg}")

    def __post_init__(self) -> None:
        bad, put = self._bad, lambda f, v: object.__setattr__(self, f, v)
        if not isinstance(self.name, str):
            raise bad(f"name must be a string, got {self.name!r}")
        if self.kind not in KINDS:
            raise bad(f"kind={self.kind!r}: must be one of {', '.join(KINDS)}")
        if self.mode not in MODES:
            raise bad(f"mode={self.mode!r}: must be one of {', '.join(MODES)}")
        if self.block is not None and not is_int(self.block):
            raise bad(f"block={self.block!r}: must be an integer id or None")
        if self.mode == "readout" and self.block is not None:
            raise bad(f"a readout layer has no membrane and cannot be in sharing block {self.block}")
        try:
            shape = tuple(self.in_shape)
        except TypeError:
            shape = ()
        if not shape or not all(is_int(d) and d > 0 for d in shape):
            raise bad(f"in_shape={self.in_shape!r}: must be a tuple of positive integers")
        put("in_shape", tuple(int(d) for d in shape))
        for fname in ("out_channels", "kernel", "stride", "pool"):
            v = getattr(self, fname)
            if not is_int(v) or v < 1:
                raise bad(f"{fname}={v!r}: must be a positive integer")
            put(fname, int(v))
        if not is_int(self.padding) or self.padding < 0:
            raise bad(f"padding={self.padding!r}: must be a non-negative integer")
        put("padding", int(self.padding))
        if self.block is not None:
            put("block", int(self.block))
        shape = self.in_shape
        if self.kind == "linear":
            if len(shape) != 1:
                raise bad(f"a linear layer takes in_shape (features,), got {shape}")
            if (self.kernel, self.stride, self.padding) != (1, 1, 0):
                raise bad("kernel/stride/padding must keep their defaults (1/1/0) on a linear layer")
        else:
            if len(shape) != 3:
                raise bad(f"a conv layer takes in_shape (C, H, W), got {shape}")
            _, h, w = shape
            if h + 2 * self.padding < self.kernel or w + 2 * self.padding < self.kernel:
                raise bad(f"kernel {self.kernel} is larger than the padded input "
                          f"{h + 2 * self.padding}x{w + 2 * self.padding}")
        self._check_skip(bad, put)

    def _check_skip(self, bad, put) -> None:
        for fname in ("skip_kernel", "skip_stride"):
            v = getattr(self, fname)
            if not is_int(v) or v < 1:
                raise bad(f"{fname}={v!r}: must be a positive integer")
            put(fname, int(v))
        if not is_int(self.skip_padding) or self.skip_padding < 0:
            raise bad(f"skip_padding={self.skip_padding!r}: must be a non-negative integer")
        put("skip_padding", int(self.skip_padding))
        if self.skip is None:
            if self.skip_in_shape is not None or (self.skip_kernel, self.skip_stride,
                                                  self.skip_padding) != (1, 1, 0):
                raise bad("skip_in_shape/skip_kernel/skip_stride/skip_padding need skip (the "
                          "shortcut's source layer)")
            return
        if not is_int(self.skip) or self.skip < 0:
            raise bad(f"skip={self.skip!r}: must be the index of an earlier LIF layer or None")
        put("skip", int(self.skip))
        if self.mode == "readout":
            raise bad("a readout layer cannot take a residual (skip) input")
        try:
            shape = tuple(self.skip_in_shape)
        except TypeError:
            shape = ()
        if not shape or not all(is_int(d) and d > 0 for d in shape):
            raise bad(f"skip_in_shape={self.skip_in_shape!r}: must be a tuple of positive integers")
        put("skip_in_shape", tuple(int(d) for d in shape))
        if self.kind == "linear":
            if (self.skip_kernel, self.skip_stride, self.skip_padding) != (1, 1, 0):
                raise bad("skip_kernel/skip_stride/skip_padding must keep their defaults on a "
                          "linear layer")
        else:
            if len(shape) != 3:
                raise bad(f"a conv layer's shortcut takes a (C, H, W) source, got {shape}")
            if output_shape(self.skip_geometry) != self.out_shape:
                raise bad(f"shortcut ({self.skip_kernel}x{self.skip_kernel}, stride "
                          f"{self.skip_stride}, padding {self.skip_padding}) of {shape} gives "
                          f"{output_shape(self.skip_geometry)}, not the layer's output "
                          f"{self.out_shape}")

    # ----------------------------------------------------------- derived
    @property
    def out_shape(self) -> tuple:
        """(C,) for linear, (C, H', W') for conv."""
        return output_shape(self)

    @property
    def out_chw(self) -> tuple:
        """Output shape as (C, H, W); a linear layer is (C, 1, 1)."""
        s = self.out_shape
        return s if len(s) == 3 else (s[0], 1, 1)

    @property
    def out_size(self) -> int:
        return math.prod(self.out_shape)

    @property
    def weight_shape(self) -> tuple:
        """linear ``(out, F)``, conv ``(out, C, k, k)``."""
        if self.kind == "linear":
            return (self.out_channels, self.in_shape[0])
        return (self.out_channels, self.in_shape[0], self.kernel, self.kernel)

    @property
    def fan_in(self) -> int:
        """Synapses per output neuron (linear: F; conv: C·k·k, padding included)."""
        return math.prod(self.weight_shape[1:])

    @property
    def is_lif(self) -> bool:
        return self.mode in LIF_MODES

    @property
    def skip_geometry(self) -> Optional["_SkipGeometry"]:
        """The shortcut synapse as a plain geometry (kind, in_shape, kernel, stride,
        padding, out_channels), or None without a skip input."""
        if self.skip is None:
            return None
        if self.kind == "linear":
            return _SkipGeometry("linear", (math.prod(self.skip_in_shape),), self.out_channels)
        return _SkipGeometry("conv", self.skip_in_shape, self.out_channels, self.skip_kernel,
                             self.skip_stride, self.skip_padding)

    @property
    def skip_weight_shape(self) -> Optional[tuple]:
        """Shape of the shortcut weight: linear ``(out, F_j)``, conv ``(out, C_j, k_s, k_s)``."""
        g = self.skip_geometry
        if g is None:
            return None
        if g.kind == "linear":
            return (self.out_channels, g.in_shape[0])
        return (self.out_channels, g.in_shape[0], g.kernel, g.kernel)

    def describe(self) -> dict:
        """JSON-able description of the fields (the network file's layer entry)."""
        return {"kind": self.kind, "in_shape": list(self.in_shape),
                "out_channels": self.out_channels, "kernel": self.kernel,
                "stride": self.stride, "padding": self.padding, "mode": self.mode,
                "block": self.block, "name": self.name, "pool": self.pool, "skip": self.skip,
                "skip_in_shape": None if self.skip_in_shape is None else list(self.skip_in_shape),
                "skip_kernel": self.skip_kernel, "skip_stride": self.skip_stride,
                "skip_padding": self.skip_padding}


@dataclass(frozen=True)
class _SkipGeometry:
    """The shortcut synapse of a layer with a skip input (what :func:`output_shape` needs)."""

    kind: str
    in_shape: tuple
    out_channels: int
    kernel: int = 1
    stride: int = 1
    padding: int = 0


# ------------------------------------------------------------ layer chains
def where(index: int, layer: LayerGeometry) -> str:
    """``layer 3 ('conv2')``: how messages name a layer of a chain."""
    return f"layer {index} ({layer.name!r})" if layer.name else f"layer {index}"


def sharing_units(layers) -> list:
    """Membrane-sharing units in layer order: lists of layer indices.

    Each LIF layer without a block id is a unit of its own; consecutive
    layers with the same block id form one unit. Readout layers are not
    listed (they have no membrane).
    """
    out: list = []
    for i, layer in enumerate(layers):
        if layer.mode == "readout":
            continue
        if (layer.block is not None and out and out[-1][-1] == i - 1
                and layers[i - 1].block == layer.block):
            out[-1].append(i)
        else:
            out.append([i])
    return out


def check_chain(layers, in_shape: tuple, error: type) -> None:
    """The geometry rules of a chain of layers; raises ``error`` naming the layer.

    Layer 0 takes ``in_shape`` and every later layer the previous layer's
    output (a linear layer takes it flattened in C, H, W order); the layers
    of a sharing block are contiguous and have one mode and one output shape
    (they share one membrane).
    """
    prev = in_shape
    for i, layer in enumerate(layers):
        if layer.pool > 1:
            if i == 0:
                raise error(f"{where(i, layer)}: pool={layer.pool} on the first layer; pool the "
                            f"network input before sending it")
            if len(prev) != 3 or min(prev[1:]) < layer.pool:
                raise error(f"{where(i, layer)}: pool={layer.pool} needs a (C, H, W) input of at "
                            f"least {layer.pool}x{layer.pool}, got {prev} from "
                            f"{where(i - 1, layers[i - 1])}")
            prev = pooled_shape(prev, layer.pool)
        ok = (layer.in_shape == prev) or (
            layer.kind == "linear" and layer.in_shape[0] == math.prod(prev))
        if not ok:
            src = "the network input" if i == 0 else f"the output of {where(i - 1, layers[i - 1])}"
            raise error(f"{where(i, layer)}: in_shape {layer.in_shape} does not match "
                        f"{src} {prev}" + (f" (after pool={layer.pool})" if layer.pool > 1 else "") + (" (flattened: a conv output feeds a linear layer"
                                           " as C*H*W features)" if layer.kind == "linear" else ""))
        if layer.skip is not None:
            j = layer.skip
            if j >= i or not layers[j].is_lif:
                raise error(f"{where(i, layer)}: skip={j} must name an earlier LIF layer (the "
                            f"shortcut takes its output spikes)")
            if layer.skip_in_shape != layers[j].out_shape:
                raise error(f"{where(i, layer)}: skip_in_shape {layer.skip_in_shape} does not "
                            f"match the output {layers[j].out_shape} of {where(j, layers[j])}")
        prev = layer.out_shape
    for blk in sharing_units(layers):
        first = layers[blk[0]]
        for i in blk[1:]:
            layer = layers[i]
            if layer.out_chw != first.out_chw:
                raise error(f"{where(i, layer)}: out_shape {layer.out_shape} differs from "
                            f"{first.out_shape} of {where(blk[0], first)} in sharing block "
                            f"{first.block}; layers of a block share one membrane and need "
                            f"the same output shape")
            if layer.mode != first.mode:
                raise error(f"{where(i, layer)}: mode {layer.mode!r} differs from "
                            f"{first.mode!r} of {where(blk[0], first)} in sharing block "
                            f"{first.block}")
    seen: dict = {}
    for i, layer in enumerate(layers):
        if layer.block is None:
            continue
        if layer.block in seen and seen[layer.block] != i - 1:
            raise error(f"{where(i, layer)}: sharing block {layer.block} is not contiguous "
                        f"(it also holds {where(seen[layer.block], layers[seen[layer.block]])}"
                        f" with other layers in between)")
        seen[layer.block] = i
