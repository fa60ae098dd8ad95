"""Bit-level codecs for the three streams of ``lif_pe_array``.

A :class:`StreamLayout` packs and unpacks one stream payload as a Python int.
Layouts come from the generator's manifest (``streams.<name>.fields``), which
is the truth for a given build; :func:`expected_layouts` derives the layout
that ``docs/interface.md`` promises from an :class:`~golden.config.HwConfig`,
and :func:`layouts_from_manifest` refuses a manifest that disagrees with it
(a generator/contract mismatch is reported before any simulation starts).

Vector fields (``count`` elements of ``elem_width`` bits, element ``k`` at
``offset + k*elem_width``) pack from and unpack to numpy int64 arrays; signed
elements are sign-extended on unpacking and two's-complement wrapped on
packing (a value that does not fit raises :class:`PayloadError`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from golden.config import HwConfig
from golden.errors import ProjectError

__all__ = ["Field", "StreamLayout", "PayloadError", "expected_layouts",
           "layouts_from_manifest", "pack_bits", "unpack_bits", "XVAL", "fmt_value",
           "unpack_binstr"]

#: Stands for an element or field that held X/Z (never a legal value).
XVAL = -(1 << 62)


def fmt_value(v) -> str:
    """Format an unpacked value; X/Z elements print as ``X``."""
    return "X" if int(v) == XVAL else str(int(v))


class PayloadError(ProjectError, ValueError):
    """A payload value or a layout that does not fit the stream contract."""


@dataclass(frozen=True)
class Field:
    """One payload field. ``count``/``elem_width`` are set for vector fields."""

    name: str
    offset: int
    width: int
    elem_width: int | None = None
    count: int | None = None
    signed: bool = False

    @property
    def is_vector(self) -> bool:
        return self.count is not None


def pack_bits(values, elem_width: int, signed: bool) -> int:
    """Pack ``values`` (element 0 in the low bits) into one int."""
    vals = [int(v) for v in np.asarray(values).reshape(-1)]
    lo = -(1 << (elem_width - 1)) if signed else 0
    hi = (1 << (elem_width - 1)) - 1 if signed else (1 << elem_width) - 1
    mask = (1 << elem_width) - 1
    word = 0
    for k, v in enumerate(vals):
        if not lo <= v <= hi:
            raise PayloadError(f"element {k} = {v} does not fit {elem_width} "
                               f"{'signed' if signed else 'unsigned'} bits")
        word |= (v & mask) << (k * elem_width)
    return word


def unpack_bits(word: int, count: int, elem_width: int, signed: bool) -> np.ndarray:
    """Inverse of :func:`pack_bits`: ``count`` elements as int64."""
    mask = (1 << elem_width) - 1
    if elem_width == 1 and not signed:
        bits = bin(word)[2:].zfill(count)[::-1][:count]
        return np.frombuffer(bits.encode(), dtype=np.uint8).astype(np.int64) - ord("0")
    if elem_width in (8, 16, 32, 64) and word >= 0:
        dt = {8: "i1", 16: "<i2", 32: "<i4", 64: "<i8"}[elem_width] if signed else \
             {8: "u1", 16: "<u2", 32: "<u4", 64: "<u8"}[elem_width]
        raw = word.to_bytes(count * elem_width // 8, "little")
        return np.frombuffer(raw, dtype=dt).astype(np.int64)
    out = np.empty(count, dtype=np.int64)
    sign = 1 << (elem_width - 1)
    for k in range(count):
        v = (word >> (k * elem_width)) & mask
        out[k] = v - (1 << elem_width) if signed and v & sign else v
    return out


def unpack_binstr(binstr: str, offset: int, count: int, elem_width: int,
                  signed: bool) -> np.ndarray:
    """Like :func:`unpack_bits` on a 4-state MSB-first bit string (a
    ``LogicArray.binstr``); elements holding any X/Z bit become :data:`XVAL`."""
    n = len(binstr)
    out = np.empty(count, dtype=np.int64)
    for k in range(count):
        lo = offset + k * elem_width
        bits = binstr[n - lo - elem_width:n - lo]
        if bits.strip("01"):
            out[k] = XVAL
        else:
            v = int(bits, 2)
            out[k] = v - (1 << elem_width) if signed and bits[0] == "1" else v
    return out


class StreamLayout:
    """Field layout of one stream payload; packs/unpacks Python ints."""

    def __init__(self, name: str, payload_width: int, fields: dict[str, Field]):
        self.name = name
        self.payload_width = payload_width
        self.fields = dict(fields)
        used = 0
        for f in self.fields.values():
            if f.is_vector and f.elem_width * f.count != f.width:
                raise PayloadError(f"{name}.{f.name}: width {f.width} != "
                                   f"count {f.count} x elem_width {f.elem_width}")
            if f.offset < 0 or f.offset + f.width > payload_width:
                raise PayloadError(f"{name}.{f.name}: bits [{f.offset}, "
                                   f"{f.offset + f.width}) outside the {payload_width}-bit payload")
            m = ((1 << f.width) - 1) << f.offset
            if used & m:
                raise PayloadError(f"{name}.{f.name}: overlaps another field")
            used |= m

    @classmethod
    def from_manifest(cls, name: str, entry: dict) -> "StreamLayout":
        try:
            fields = {}
            for fname, d in entry["fields"].items():
                fields[fname] = Field(fname, int(d["offset"]), int(d["width"]),
                                      d.get("elem_width"), d.get("count"),
                                      bool(d.get("signed", False)))
            return cls(name, int(entry["payload_width"]), fields)
        except (KeyError, TypeError) as e:
            raise PayloadError(f"manifest stream {name!r} is malformed: missing {e}") from None

    def pack(self, **values) -> int:
        """Pack field values (missing scalar fields are 0) into a payload int."""
        unknown = set(values) - set(self.fields)
        if unknown:
            raise PayloadError(f"{self.name}: unknown field(s) {sorted(unknown)}")
        word = 0
        for fname, v in values.items():
            f = self.fields[fname]
            if f.is_vector:
                arr = np.asarray(v).reshape(-1)
                if arr.size != f.count:
                    raise PayloadError(f"{self.name}.{fname}: expected {f.count} "
                                       f"elements, got {arr.size}")
                bits = pack_bits(arr, f.elem_width, f.signed)
            else:
                bits = int(v)
                lo = -(1 << (f.width - 1)) if f.signed else 0
                hi = (1 << f.width) - 1 if not f.signed else (1 << (f.width - 1)) - 1
                if not lo <= bits <= hi:
                    raise PayloadError(f"{self.name}.{fname} = {bits} does not fit "
                                       f"{f.width} bits")
                bits &= (1 << f.width) - 1
            word |= bits << f.offset
        return word

    def pack_rows(self, n: int | None = None, **columns) -> list[int]:
        """Vectorised :meth:`pack` of ``n`` payloads at once (numpy).

        A scalar field is an int array ``[n]`` (or one int for every row), a
        vector field an array ``[n, count]``; missing fields are 0. Returns
        ``n`` Python ints, row ``i`` equal to ``pack(**{f: columns[f][i]})``
        (the scalar :meth:`pack` is the oracle in tb/test_bulk.py). A value
        that does not fit raises :class:`PayloadError` naming the row.
        """
        unknown = set(columns) - set(self.fields)
        if unknown:
            raise PayloadError(f"{self.name}: unknown field(s) {sorted(unknown)}")
        cols = {}
        for fname, v in columns.items():
            f = self.fields[fname]
            arr = np.asarray(v, dtype=np.int64)
            if f.is_vector:
                if arr.ndim != 2 or arr.shape[1] != f.count:
                    raise PayloadError(f"{self.name}.{fname}: expected [n, {f.count}] "
                                       f"elements, got shape {arr.shape}")
            elif arr.ndim > 1:
                raise PayloadError(f"{self.name}.{fname}: expected [n] values, got shape {arr.shape}")
            cols[fname] = arr
        if n is None:
            sizes = {a.shape[0] for a in cols.values() if a.ndim >= 1}
            if len(sizes) != 1:
                raise PayloadError(f"{self.name}: give n or columns of one length, got {sorted(sizes)}")
            n = sizes.pop()
        small = np.zeros(n, dtype=np.int64)    # fields that end below bit 62, summed in numpy
        wide = []                              # (offset, list of ints) of the others
        for fname, arr in cols.items():
            f = self.fields[fname]
            count, ew = (f.count, f.elem_width) if f.is_vector else (1, f.width)
            if ew > 62:
                raise PayloadError(f"{self.name}.{fname}: {ew}-bit elements are too wide for pack_rows")
            a = np.broadcast_to(arr.reshape(-1, count), (n, count))
            lo = -(1 << (ew - 1)) if f.signed else 0
            hi = (1 << (ew - 1)) - 1 if f.signed else (1 << ew) - 1
            bad = (a < lo) | (a > hi)
            if bad.any():
                r, k = (int(x[0]) for x in np.nonzero(bad))
                what = f"element {k}" if f.is_vector else "value"
                raise PayloadError(f"{self.name}.{fname} row {r}: {what} = {int(a[r, k])} does not "
                                   f"fit {ew} {'signed' if f.signed else 'unsigned'} bits")
            u = a & ((1 << ew) - 1)
            if f.offset + f.width <= 62:
                small |= (u << (np.arange(count, dtype=np.int64) * ew + f.offset)).sum(axis=1)
                continue
            if ew in (8, 16, 32):
                raw = u.astype(f"<u{ew // 8}").tobytes()
            else:   # any other element width: a little-endian bit matrix
                bits = ((u[:, :, None] >> np.arange(ew, dtype=np.int64)) & 1).astype(np.uint8)
                raw = np.packbits(bits.reshape(n, f.width), axis=1, bitorder="little").tobytes()
            nb = len(raw) // n if n else 0
            wide.append((f.offset, [int.from_bytes(raw[i * nb:(i + 1) * nb], "little")
                                    for i in range(n)]))
        out = small.tolist()
        for off, vals in wide:
            out = [w | (v << off) for w, v in zip(out, vals)]
        return out

    def unpack(self, word: int) -> dict:
        """Split a payload int into its fields (vectors as int64 arrays)."""
        out = {}
        for fname, f in self.fields.items():
            bits = (word >> f.offset) & ((1 << f.width) - 1)
            if f.is_vector:
                out[fname] = unpack_bits(bits, f.count, f.elem_width, f.signed)
            elif f.signed and bits >> (f.width - 1):
                out[fname] = bits - (1 << f.width)
            else:
                out[fname] = bits
        return out

    def unpack_logic(self, binstr: str) -> dict:
        """:meth:`unpack` for a 4-state bit string; X/Z parts become :data:`XVAL`."""
        out = {}
        for fname, f in self.fields.items():
            if f.is_vector:
                out[fname] = unpack_binstr(binstr, f.offset, f.count, f.elem_width, f.signed)
            else:
                out[fname] = int(unpack_binstr(binstr, f.offset, 1, f.width, f.signed)[0])
        return out

    def describe(self) -> str:
        parts = [f"{f.name}[{f.offset}+:{f.width}]" for f in
                 sorted(self.fields.values(), key=lambda f: f.offset)]
        return f"{self.name}({self.payload_width} bits: {', '.join(parts)})"


def _sequential(name: str, specs) -> StreamLayout:
    fields, off = {}, 0
    for spec in specs:
        fname, width = spec[0], spec[1]
        if len(spec) > 2:
            count, elem_width, signed = spec[2]
            fields[fname] = Field(fname, off, width, elem_width, count, signed)
        else:
            fields[fname] = Field(fname, off, width)
        off += width
    return StreamLayout(name, off, fields)


def expected_layouts(cfg: HwConfig) -> dict[str, StreamLayout]:
    """The stream layouts ``docs/interface.md`` specifies for ``cfg``."""
    S, VW = cfg.slots, cfg.value_width
    cmd = _sequential("cmd", [("op", 2), ("row", cfg.weight_addr_width),
                              ("base", cfg.mem_addr_width), ("mode", 2), ("first", 1),
                              ("spill", 1)])
    out = _sequential("out", [("spikes", S, (S, 1, False)),
                              ("values", S * VW, (S, VW, True)),
                              ("tile", 16), ("group", cfg.group_width),
                              ("last", 1), ("readout", 1)])
    wload = _sequential("wload", [("addr", cfg.weight_addr_width),
                                  ("data", cfg.array * cfg.weight_width,
                                   (cfg.array, cfg.weight_width, True))])
    mrow = [("addr", cfg.mem_addr_width),
            ("data", cfg.slots * cfg.mem_width, (cfg.slots, cfg.mem_width, True))]
    return {"cmd": cmd, "out": out, "wload": wload, "mfill": _sequential("mfill", mrow),
            "mspill": _sequential("mspill", mrow)}


def layouts_from_manifest(manifest: dict, cfg: HwConfig) -> dict[str, StreamLayout]:
    """Read the build's stream layouts and check them against the contract.

    Offsets and widths of every field named in ``docs/interface.md`` must
    agree; anything else is a generator bug and raises :class:`PayloadError`
    with the first disagreement.
    """
    want = expected_layouts(cfg)
    streams = manifest.get("streams")
    if not isinstance(streams, dict):
        raise PayloadError("manifest has no 'streams' section")
    got = {}
    for name, exp in want.items():
        if name not in streams:
            raise PayloadError(f"manifest lacks stream {name!r}")
        lay = StreamLayout.from_manifest(name, streams[name])
        if lay.payload_width != exp.payload_width:
            raise PayloadError(f"stream {name}: manifest payload is {lay.payload_width} bits, "
                               f"docs/interface.md gives {exp.payload_width} for {cfg.name}")
        for fname, ef in exp.fields.items():
            gf = lay.fields.get(fname)
            if gf is None:
                raise PayloadError(f"stream {name}: manifest lacks field {fname!r}")
            if (gf.offset, gf.width) != (ef.offset, ef.width):
                raise PayloadError(f"stream {name}.{fname}: manifest has bits "
                                   f"[{gf.offset}+:{gf.width}], docs/interface.md "
                                   f"gives [{ef.offset}+:{ef.width}]")
            if ef.is_vector:
                gf = Field(fname, gf.offset, gf.width, ef.elem_width, ef.count, ef.signed) \
                    if not gf.is_vector else gf
                if (gf.elem_width, gf.count, gf.signed) != (ef.elem_width, ef.count, ef.signed):
                    raise PayloadError(f"stream {name}.{fname}: manifest elements "
                                       f"{gf.count}x{gf.elem_width} signed={gf.signed}, "
                                       f"expected {ef.count}x{ef.elem_width} signed={ef.signed}")
                lay.fields[fname] = gf
        got[name] = lay
    return got
