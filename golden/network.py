"""Integer network description shared by the fixed-point model, the schedule and quantization.

A :class:`Network` is a chain of :class:`Layer` objects whose weights are
already integers in the common weight/current/membrane scale of
``docs/fixed-point.md`` (F1). Pure numpy: no torch, no amaranth.

Each layer's geometry (kind, shapes, mode, block; the output-shape rule and
the field checks) is :class:`golden.geometry.LayerGeometry`; a ``chained``
layer uses C#N chaining over ``cfg.groups`` contiguous channel groups
(``groups = 1`` is the baseline), docs/fixed-point.md F7; ``independent``
gives every neuron its own membrane; ``readout`` emits X, no LIF (F8).

Cross-layer (L) sharing: consecutive layers with the same non-None ``block``
id form a sharing block and use one membrane (F7). All layers of a block have
the same output shape and the same mode (chained or independent).

A layer may carry an integer ``bias`` [out_channels] (folded BatchNorm, F2b:
added to X every timestep through always-on bias rows), an input ``pool``
(OR max pooling of the previous layer's spikes, :mod:`golden.geometry`) and a
residual ``skip`` input with its own integer ``skip_weight`` (F2c: the
shortcut's events accumulate into the same current after the layer's own).

Direct input (F2d): ``Network(..., input_bits=B)`` takes B-bit integers (an
image) instead of spikes; layer 0 sees their bit planes as spikes, channel
``c·B + b`` = bit b of channel c (two's complement when ``input_signed``), and
its weight rows for bit b hold ``w·2^b`` (negated for the sign bit), so the
adder-only PEs compute ``Σ w·x`` exactly. :meth:`Network.input_spikes` makes
the bit planes; everything downstream (fixed-point model, schedule, RTL) sees
an ordinary spike input of shape ``in_shape``.

Network files are ``.npz`` archives holding one JSON description under the
key ``network.json``, one int64 array per layer (``w0``, ``w1``, ...), one
per layer with a bias (``b0``, ...) and one per layer with a skip input
(``s0``, ...), docs/network-format.md;
:func:`save_network` / :func:`load_network` read and write them.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
import zlib
from typing import Optional
from dataclasses import dataclass, field

import numpy as np

from .config import HwConfig
from .errors import ProjectError
from .files import atomic_write, require_file
from .geometry import LayerGeometry, check_chain, is_int, sharing_units, where
from .mapping import (MAPPINGS, POSITION, choose_mappings, layer_bias_rows, layer_tiles,
                      membrane_rows_of_block, pass_rows, rows_needed)

__all__ = [
    "NetworkError", "Layer", "Network", "save_network", "load_network", "FILE_FORMAT",
    "FILE_VERSION", "READ_VERSIONS", "MAX_TILES",
]

FILE_FORMAT = "efficientlif-network"
FILE_VERSION = 3
#: Versions :func:`load_network` reads (version 1: no bias, no pool fields; version 2: no skip
#: fields, no input_bits / input_signed).
READ_VERSIONS = (1, 2, 3)


class NetworkError(ProjectError, ValueError):
    """An invalid network description or network file. The message names the layer or file."""


#: Sanity bound on the tiles of one layer (the ``tile`` field of an output beat
#: is 16 bits). LIF layers are bounded harder by ``mem_rows``; this caps readout
#: layers, so that :meth:`Network.validate` never maps an absurd declared shape.
MAX_TILES = 1 << 16


def _int64_weights(weight, bad, what: str = "weight") -> np.ndarray:
    """``weight`` as an int64 array; integers only, every value exactly representable in int64.

    ``what`` names the array in the messages (``"weight"``, ``"bias"``)."""
    if what != "weight":
        return _int64_weights(weight, lambda m: bad(m.replace("weight", what, 1)))
    try:
        w = np.asarray(weight)
    except (ValueError, TypeError, OverflowError) as e:
        raise bad(f"weight is not a numeric array ({e})") from None
    if not w.size:
        return w.astype(np.int64) if w.dtype.kind in "iufb" else np.zeros(w.shape, np.int64)
    if w.dtype.kind == "i":
        return w.astype(np.int64)
    if w.dtype.kind == "u":
        if int(w.max()) > np.iinfo(np.int64).max:
            idx = np.unravel_index(int(np.argmax(w)), w.shape)
            raise bad(f"weight {int(w[idx])} at index {tuple(int(i) for i in idx)} is beyond the "
                      f"int64 range")
        return w.astype(np.int64)
    if w.dtype.kind != "f":
        raise bad(f"weight must hold integers, got dtype {w.dtype}")
    with np.errstate(invalid="ignore"):
        # 2**63 is exact in float64; [-2**63, 2**63) is what int64 holds
        ok = np.isfinite(w) & (w == np.round(w)) & (w >= -2.0 ** 63) & (w < 2.0 ** 63)
    if not ok.all():
        idx = np.unravel_index(int(np.argmin(ok)), w.shape)
        v = w[idx].item()
        at = tuple(int(i) for i in idx)
        if not (np.isfinite(v) and v == round(v)):
            raise bad(f"weight must hold integers, got {v!r} at index {at}")
        raise bad(f"weight {v!r} at index {at} is beyond the int64 range")
    return w.astype(np.int64)


@dataclass(frozen=True, eq=False, init=False)
class Layer(LayerGeometry):
    """One layer of integer weights: the fifteen fields of
    :class:`golden.geometry.LayerGeometry` plus ``weight``, ``bias`` and ``skip_weight``.

    ``Layer(kind, in_shape, out_channels, weight, kernel=1, stride=1,
    padding=0, mode="chained", block=None, name="", pool=1, skip=None, ...,
    bias=None, skip_weight=None)``; ``skip_weight`` int64 of ``skip_weight_shape``
    exactly when ``skip`` is set (F2c);
    ``weight`` is int64, linear ``[out, F]``, conv ``[out, C, k, k]``
    (``weight_shape``); ``bias`` None or int64 ``[out]`` in the weights'
    scale, not limited to the weight range (the schedule splits it into
    weight-range rows, docs/fixed-point.md F2b; :meth:`Network.check_arithmetic`
    bounds it by the accumulator range).

    Structural problems raise :class:`NetworkError` naming the layer. The
    weight array is copied to int64 and made read-only. Equality is identity.
    """

    weight: np.ndarray = field(default=None, repr=False)
    bias: Optional[np.ndarray] = field(default=None, repr=False)
    skip_weight: Optional[np.ndarray] = field(default=None, repr=False)

    _error = NetworkError

    def __init__(self, kind, in_shape, out_channels, weight, *args, bias=None, skip_weight=None,
                 **kwargs):
        object.__setattr__(self, "weight", weight)
        object.__setattr__(self, "bias", bias)
        object.__setattr__(self, "skip_weight", skip_weight)
        super().__init__(kind, in_shape, out_channels, *args, **kwargs)

    def __post_init__(self) -> None:
        super().__post_init__()
        w = _int64_weights(self.weight, self._bad)
        if w.shape != self.weight_shape:
            raise self._bad(f"weight shape {w.shape} does not match {self.weight_shape} "
                            f"({'[out, in]' if self.kind == 'linear' else '[out, in_c, k, k]'})")
        w.setflags(write=False)
        object.__setattr__(self, "weight", w)
        if self.bias is not None:
            b = _int64_weights(self.bias, self._bad, "bias")
            if b.shape != (self.out_channels,):
                raise self._bad(f"bias shape {b.shape} does not match ({self.out_channels},) "
                                f"[out_channels]")
            b.setflags(write=False)
            object.__setattr__(self, "bias", b)
        if (self.skip is None) != (self.skip_weight is None):
            raise self._bad("skip_weight must be given exactly when skip (the shortcut's source "
                            "layer) is")
        if self.skip_weight is not None:
            sw = _int64_weights(self.skip_weight, lambda m: self._bad(m.replace("weight", "skip_weight", 1)))
            if sw.shape != self.skip_weight_shape:
                raise self._bad(f"skip_weight shape {sw.shape} does not match {self.skip_weight_shape}")
            sw.setflags(write=False)
            object.__setattr__(self, "skip_weight", sw)

    # ------------------------------------------------------- constructors
    @classmethod
    def linear(cls, weight, *, mode: str = "chained", block=None, name: str = "", bias=None,
               pool: int = 1) -> "Layer":
        """A linear layer whose shapes come from ``weight[out, in]``."""
        w = _int64_weights(weight, lambda m: NetworkError(f"layer {name!r}: {m}"))
        if w.ndim != 2:
            raise NetworkError(f"layer {name!r}: linear weight must be 2-D [out, in], got shape {w.shape}")
        return cls("linear", (w.shape[1],), w.shape[0], w, mode=mode, block=block, name=name,
                   bias=bias, pool=pool)

    @classmethod
    def conv(cls, in_shape, weight, *, stride: int = 1, padding: int = 0, mode: str = "chained",
             block=None, name: str = "", bias=None, pool: int = 1) -> "Layer":
        """A conv layer whose channel counts and kernel come from ``weight[out, in_c, k, k]``."""
        w = _int64_weights(weight, lambda m: NetworkError(f"layer {name!r}: {m}"))
        if w.ndim != 4 or w.shape[2] != w.shape[3]:
            raise NetworkError(f"layer {name!r}: conv weight must be [out, in_c, k, k], got shape {w.shape}")
        return cls("conv", tuple(in_shape), w.shape[0], w, kernel=w.shape[2], stride=stride,
                   padding=padding, mode=mode, block=block, name=name, bias=bias, pool=pool)


@dataclass(frozen=True, eq=False)
class Network:
    """A chain of layers. ``in_shape`` is the shape of one timestep of input spikes.

    Construction checks what does not depend on the hardware (shapes chain,
    blocks are consecutive and homogeneous); :meth:`validate` adds the checks
    against an :class:`HwConfig`.
    """

    in_shape: tuple
    layers: tuple
    input_bits: int = 0
    input_signed: bool = True

    def __post_init__(self) -> None:
        try:
            shape = tuple(self.in_shape)
        except TypeError:
            shape = ()
        if not shape or not all(is_int(d) and d > 0 for d in shape):
            raise NetworkError(f"network in_shape={self.in_shape!r}: must be a tuple of positive integers")
        shape = tuple(int(d) for d in shape)
        object.__setattr__(self, "in_shape", shape)
        layers = tuple(self.layers)
        object.__setattr__(self, "layers", layers)
        if not layers:
            raise NetworkError("network has no layers")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise NetworkError(f"layer {i}: expected a Layer, got {type(layer).__name__}")
        check_chain(layers, shape, NetworkError)
        b = self.input_bits
        if not is_int(b) or not 0 <= b <= 32:
            raise NetworkError(f"network input_bits={b!r}: must be 0 (spike input) or 1..32 (direct input)")
        object.__setattr__(self, "input_bits", int(b))
        if not isinstance(self.input_signed, (bool, np.bool_)):
            raise NetworkError(f"network input_signed={self.input_signed!r}: must be True or False")
        object.__setattr__(self, "input_signed", bool(self.input_signed))
        if b and shape[0] % b:
            raise NetworkError(f"network in_shape {shape}: direct input with input_bits={b} needs a "
                               f"multiple of {b} channels (features), one per bit plane")

    # ------------------------------------------------------- direct input
    @property
    def image_shape(self) -> tuple:
        """Shape of one direct-input sample (``in_shape`` with the bit planes folded back);
        ``in_shape`` for a spike-input network."""
        if not self.input_bits:
            return self.in_shape
        return (self.in_shape[0] // self.input_bits,) + self.in_shape[1:]

    @property
    def input_range(self) -> tuple:
        """(lo, hi) of a direct-input value: B-bit two's complement or unsigned."""
        b = self.input_bits
        return (-(1 << (b - 1)), (1 << (b - 1)) - 1) if self.input_signed else (0, (1 << b) - 1)

    def input_spikes(self, values) -> np.ndarray:
        """Direct input ``values [..., *image_shape]`` (integers in :attr:`input_range`) ->
        bit-plane spikes ``[..., *in_shape]`` (uint8), channel ``c·B + b`` = bit b of
        ``values mod 2^B`` for channel c. Raises :class:`NetworkError` for a bad array."""
        if not self.input_bits:
            raise NetworkError("input_spikes(): the network takes spikes, not direct input")
        v = np.asarray(values)
        img = self.image_shape
        if v.ndim < len(img) or tuple(v.shape[v.ndim - len(img):]) != img:
            raise NetworkError(f"direct input: shape {list(v.shape)} does not end in the image shape "
                               f"{list(img)}")
        if v.dtype.kind not in "iub" and not (v.dtype.kind == "f" and np.all(v == np.round(v))):
            raise NetworkError(f"direct input: values must be integers (got dtype {v.dtype})")
        v = v.astype(np.int64)
        lo, hi = self.input_range
        if v.size and (v.min() < lo or v.max() > hi):
            bad = v.min() if v.min() < lo else v.max()
            raise NetworkError(f"direct input: value {int(bad)} is outside the "
                               f"{'signed' if self.input_signed else 'unsigned'} {self.input_bits}-bit "
                               f"range [{lo}, {hi}]")
        lead = v.shape[:v.ndim - len(img)]
        u = v & ((1 << self.input_bits) - 1)
        bits = (u[..., None] >> np.arange(self.input_bits)) & 1          # [..., C, (H, W), B]
        ax = len(lead)
        bits = np.moveaxis(bits, -1, ax + 1)                               # [..., C, B, (H, W)]
        return bits.reshape(lead + self.in_shape).astype(np.uint8)

    # ------------------------------------------------------------ structure
    def blocks(self) -> list:
        """Membrane-sharing units in layer order: lists of layer indices.

        Each LIF layer without a block id is a unit of its own; consecutive
        layers with the same block id form one unit. Readout layers are not
        listed (they have no membrane).
        """
        return sharing_units(self.layers)

    def block_of(self, index: int) -> list:
        """The sharing unit (list of layer indices) holding LIF layer ``index``."""
        for blk in self.blocks():
            if index in blk:
                return blk
        raise NetworkError(f"{where(index, self.layers[index])} is a readout layer and has no membrane")

    @property
    def out_shape(self) -> tuple:
        return self.layers[-1].out_shape

    # ----------------------------------------------------------- hw checks
    def check_arithmetic(self, cfg: HwConfig) -> None:
        """The checks the fixed-point arithmetic depends on (F1, F7).

        Raises :class:`NetworkError` naming the layer when a weight does not
        fit ``cfg.weight_width`` bits, a bias is outside the accumulator range
        (F2b) or a chained layer's channel count is
        not a multiple of ``cfg.groups``. :meth:`validate` runs these first;
        :func:`golden.fixed_model.run_fixed` runs only these, since it does
        not need the network to fit the buffers.
        """
        if not isinstance(cfg, HwConfig):
            raise NetworkError(f"validate() needs an HwConfig, got {type(cfg).__name__}")
        for i, layer in enumerate(self.layers):
            for what, w in (("weight", layer.weight), ("skip_weight", layer.skip_weight)):
                if w is not None and w.size and (w.min() < cfg.weight_min or w.max() > cfg.weight_max):
                    bad = w.min() if w.min() < cfg.weight_min else w.max()
                    raise NetworkError(f"{where(i, layer)}: {what} {int(bad)} is outside the "
                                       f"{cfg.weight_width}-bit range [{cfg.weight_min}, "
                                       f"{cfg.weight_max}]")
            b = layer.bias
            if b is not None and b.size and (b.min() < cfg.acc_min or b.max() > cfg.acc_max):
                bad = b.min() if b.min() < cfg.acc_min else b.max()
                raise NetworkError(f"{where(i, layer)}: bias {int(bad)} is outside the "
                                   f"{cfg.acc_width}-bit accumulator range [{cfg.acc_min}, "
                                   f"{cfg.acc_max}]")
            if layer.mode == "chained" and layer.out_channels % cfg.groups:
                raise NetworkError(f"{where(i, layer)}: chained mode needs out_channels "
                                   f"({layer.out_channels}) divisible by groups={cfg.groups}; "
                                   f"use mode='independent' or change the channel count")

    def validate(self, cfg: HwConfig, mapping: Optional[str] = None) -> "Network":
        """Check the network against a hardware build; returns ``self``.

        Raises :class:`NetworkError` naming the layer (index and name) when a
        weight is outside ``[cfg.weight_min, cfg.weight_max]``, a chained
        layer's channel count is not a multiple of ``cfg.groups``, one weight
        block (weight-stationary: one chunk; position mapping: one tile's
        fan-in) exceeds ``cfg.weight_rows`` or the membrane regions exceed
        ``cfg.mem_rows``. ``mapping`` forces one mapping on every layer
        (default: :func:`golden.mapping.choose_mappings`).
        """
        self.check_arithmetic(cfg)
        for i, layer in enumerate(self.layers):
            # Sizes first, arithmetically: a declared shape may be absurd (a file
            # can declare a 10^7 x 10^7 input for a 1x1 kernel) and nothing
            # below may allocate per tile before the tile count is known to fit.
            tiles = max(layer_tiles(cfg, layer, m) for m in MAPPINGS)
            # (a LIF layer whose membrane rows exceed mem_rows runs with spilled
            # membranes, pass by pass: docs/schedule.md "Spilled membranes")
            if tiles > MAX_TILES:
                raise NetworkError(f"{where(i, layer)}: {tiles} tiles (output shape {layer.out_shape}) "
                                   f"> {MAX_TILES}, the most one layer may have; use a larger array "
                                   f"or shrink the layer")
        mappings = choose_mappings(cfg, self.layers, mapping)
        for i, layer in enumerate(self.layers):
            need, _ = rows_needed(cfg, [layer], [mappings[i]])
            if need > cfg.weight_rows:
                what = ("tile fan-in" if mappings[i] == POSITION else
                        "weight rows per chunk (input channels x kernel rows x window width)")
                if layer.skip is not None:
                    what += " (with the shortcut's fan-in)"
                nb = layer_bias_rows(cfg, layer)
                if nb:
                    what += f" + {nb} bias rows"
                raise NetworkError(f"{where(i, layer)}: {what} {need} > weight_rows={cfg.weight_rows} "
                                   f"({mappings[i]} mapping); raise weight_rows (twice that lets "
                                   f"weight loading overlap the EVENTs) or shrink the layer")
        used = sum(membrane_rows_of_block(cfg, self.layers[blk[0]], mappings[blk[0]])
                   for blk in self.blocks())
        if used > cfg.mem_rows:
            # spilled membranes: every pass (one weight block's tiles) must fit on chip
            for i, layer in enumerate(self.layers):
                if not layer.is_lif:
                    continue
                rows = pass_rows(cfg, layer, mappings[i])
                if rows > cfg.mem_rows:
                    raise NetworkError(f"{where(i, layer)}: one weight block's tiles need {rows} "
                                       f"membrane rows ({mappings[i]} mapping, output shape "
                                       f"{layer.out_shape}) > mem_rows={cfg.mem_rows}, so even "
                                       f"spilled membranes do not fit; raise mem_rows, use more "
                                       f"groups or shrink the layer")
        return self

    # --------------------------------------------------------------- files
    def describe(self) -> dict:
        return {"format": FILE_FORMAT, "version": FILE_VERSION, "in_shape": list(self.in_shape),
                "input_bits": self.input_bits, "input_signed": self.input_signed,
                "layers": [dict(layer.describe(), weight=f"w{i}",
                                bias=None if layer.bias is None else f"b{i}",
                                skip_weight=None if layer.skip_weight is None else f"s{i}")
                           for i, layer in enumerate(self.layers)]}

    def save(self, path) -> None:
        save_network(self, path)

    @classmethod
    def load(cls, path) -> "Network":
        return load_network(path)


def save_network(net: Network, path) -> None:
    """Write ``net`` to ``path`` (.npz, mode 0644) with :func:`golden.files.atomic_write`.

    A failure leaves no partial file and raises :class:`golden.errors.OutputError`.
    """
    arrays = {f"w{i}": layer.weight for i, layer in enumerate(net.layers)}
    arrays.update({f"b{i}": layer.bias for i, layer in enumerate(net.layers) if layer.bias is not None})
    arrays.update({f"s{i}": layer.skip_weight for i, layer in enumerate(net.layers)
                   if layer.skip_weight is not None})
    desc = json.dumps(net.describe(), sort_keys=True)
    buf = io.BytesIO()
    np.savez(buf, **{"network.json": np.array(desc)}, **arrays)
    atomic_write({os.fspath(path): buf.getvalue()})


def load_network(path) -> Network:
    """Read a network written by :func:`save_network`.

    Every problem (missing file, not an npz archive, missing or malformed
    JSON, missing weight arrays, wrong shapes) raises :class:`NetworkError`
    naming the file and, where it applies, the layer.
    """
    path = require_file(path, "network file", NetworkError)
    where_f = f"network file {path!r}"
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
        if not zipfile.is_zipfile(io.BytesIO(raw)):
            raise NetworkError(f"{where_f}: not a readable .npz archive (not a zip file)")
        archive = np.load(io.BytesIO(raw), allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise NetworkError(f"{where_f}: not an .npz archive (a single .npy array)")
        with archive:
            contents = {k: archive[k] for k in archive.files}
    except NetworkError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError,
            RuntimeError) as e:  # zipfile: unsupported compression / 'encrypted' flag
        raise NetworkError(f"{where_f}: not a readable .npz archive ({e})") from None
    if "network.json" not in contents:
        raise NetworkError(f"{where_f}: missing the 'network.json' description")
    try:
        desc = json.loads(str(contents["network.json"][()]))
    except (ValueError, TypeError) as e:
        raise NetworkError(f"{where_f}: 'network.json' is not valid JSON ({e})") from None
    if not isinstance(desc, dict):
        raise NetworkError(f"{where_f}: 'network.json' must be a JSON object")
    if desc.get("format") != FILE_FORMAT:
        raise NetworkError(f"{where_f}: format is {desc.get('format')!r}, expected {FILE_FORMAT!r}")
    version = desc.get("version")
    if not is_int(version) or version not in READ_VERSIONS:
        raise NetworkError(f"{where_f}: version {version!r} is not supported "
                           f"(expected one of {', '.join(map(str, READ_VERSIONS))})")
    for key, typ in (("in_shape", list), ("layers", list)):
        if not isinstance(desc.get(key), typ):
            raise NetworkError(f"{where_f}: '{key}' must be a JSON list")
    layers = []
    keys = ("kind", "in_shape", "out_channels", "kernel", "stride", "padding", "mode", "block", "name", "weight")
    if version >= 2:
        keys += ("pool", "bias")
    if version >= 3:
        keys += ("skip", "skip_in_shape", "skip_kernel", "skip_stride", "skip_padding", "skip_weight")
    for i, ld in enumerate(desc["layers"]):
        if not isinstance(ld, dict):
            raise NetworkError(f"{where_f}: layer {i}: must be a JSON object")
        missing = [k for k in keys if k not in ld]
        unknown = sorted(set(ld) - set(keys))
        if missing:
            raise NetworkError(f"{where_f}: layer {i}: missing field(s) {', '.join(missing)}")
        if unknown:
            raise NetworkError(f"{where_f}: layer {i}: unknown field(s) {', '.join(unknown)}")
        wkey = ld["weight"]
        if not isinstance(wkey, str) or wkey not in contents:
            raise NetworkError(f"{where_f}: layer {i}: weight array {wkey!r} is not in the archive")
        if not isinstance(ld["in_shape"], list):
            raise NetworkError(f"{where_f}: layer {i}: in_shape must be a list")
        bkey = ld.get("bias")
        if bkey is not None and (not isinstance(bkey, str) or bkey not in contents):
            raise NetworkError(f"{where_f}: layer {i}: bias array {bkey!r} is not in the archive")
        skey = ld.get("skip_weight")
        if skey is not None and (not isinstance(skey, str) or skey not in contents):
            raise NetworkError(f"{where_f}: layer {i}: skip_weight array {skey!r} is not in the archive")
        sis = ld.get("skip_in_shape")
        if sis is not None and not isinstance(sis, list):
            raise NetworkError(f"{where_f}: layer {i}: skip_in_shape must be a list or null")
        try:
            layers.append(Layer(kind=ld["kind"], in_shape=tuple(ld["in_shape"]),
                                out_channels=ld["out_channels"], weight=contents[wkey],
                                kernel=ld["kernel"], stride=ld["stride"], padding=ld["padding"],
                                mode=ld["mode"], block=ld["block"], name=ld["name"],
                                pool=ld.get("pool", 1),
                                bias=None if bkey is None else contents[bkey],
                                skip=ld.get("skip"), skip_in_shape=None if sis is None else tuple(sis),
                                skip_kernel=ld.get("skip_kernel", 1), skip_stride=ld.get("skip_stride", 1),
                                skip_padding=ld.get("skip_padding", 0),
                                skip_weight=None if skey is None else contents[skey]))
        except NetworkError as e:
            raise NetworkError(f"{where_f}: layer {i}: {e}") from None
    extra = {}
    if version >= 3:
        for k in ("input_bits", "input_signed"):
            if k not in desc:
                raise NetworkError(f"{where_f}: missing field {k!r}")
            extra[k] = desc[k]
    try:
        return Network(tuple(desc["in_shape"]), tuple(layers), **extra)
    except NetworkError as e:
        raise NetworkError(f"{where_f}: {e}") from None
