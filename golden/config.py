"""The one hardware configuration object read by ``gen/``, ``golden/`` and ``tb/``.

Every width, depth and arithmetic constant of a build lives in :class:`HwConfig`.
Nothing else in the project re-derives a width on its own: the generator, the
fixed-point golden model and the testbenches all take an ``HwConfig`` and read
its fields and derived properties.

Number formats (see ``docs/fixed-point.md`` for the full rules):

* weights, accumulated currents and membrane potentials are signed two's
  complement integers that share one scale: an integer ``n`` stands for the
  real value ``n * 2**-frac_bits``;
* the leak is the unsigned fixed-point number ``leak_int / 2**leak_bits``;
* the threshold is ``theta_int`` in the membrane scale.

The object validates itself on construction and raises :class:`ConfigError`
(a ``ValueError``) whose message names the offending field.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from .errors import ProjectError

__all__ = ["ConfigError", "HwConfig", "RESET_MODES", "FIRE_MODES", "ARITHMETIC_FIELDS"]

#: Reset applied after a spike: subtract θ ("soft", paper default) or set to 0 ("hard").
RESET_MODES = ("soft", "hard")
#: Firing comparison: ``U > θ`` ("gt", the paper) or ``U >= θ`` ("ge", SpikingJelly).
FIRE_MODES = ("gt", "ge")

# Sanity bounds. They keep generated netlists and simulations within what the
# flow has been exercised on; they are not limits of the architecture.
MAX_ARRAY = 4096
MAX_WIDTH = 32
MAX_WEIGHT_WIDTH = 16
MAX_LEAK_BITS = 16
MAX_ROWS = 1 << 16


class ConfigError(ProjectError, ValueError):
    """An invalid hardware parameter. The message names the field."""


def _show(v) -> str:
    """``repr(v)`` for a message, short even for a huge integer (whose full
    decimal form may be thousands of digits, or refused by Python altogether)."""
    if isinstance(v, int) and not isinstance(v, bool) and v.bit_length() > 64:
        return f"{'-' if v < 0 else ''}<{v.bit_length()}-bit integer>"
    text = repr(v)
    return text if len(text) <= 80 else text[:77] + "..."


def _unknown_fields(names) -> None:
    """Raise :class:`ConfigError` for names that are not fields (quoted, so one line)."""
    known = {f.name for f in fields(HwConfig)}
    unknown = sorted({_show(n) for n in names if not isinstance(n, str) or n not in known})
    if unknown:
        raise ConfigError(f"unknown configuration field(s): {', '.join(unknown)}")


def _clog2(n: int) -> int:
    """Bits needed to address ``n`` items (at least 1)."""
    return max(1, (n - 1).bit_length())



#: The :class:`HwConfig` fields that define the integer arithmetic (F1-F8) a
#: network was quantized for; a network file records them (docs/network-format.md).
ARITHMETIC_FIELDS = ("weight_width", "acc_width", "mem_width", "frac_bits", "leak_bits",
                     "leak_int", "theta_int", "reset", "fire")

@dataclass(frozen=True)
class HwConfig:
    """Parameters of one PE-array build.

    ``array``        number of PEs (post-synaptic neurons per tile).
    ``groups``       C#N group count N; ``array/groups`` shared LIF units.
                     ``groups=1`` is the baseline: one LIF unit per PE.
    ``weight_width`` signed weight bits.
    ``acc_width``    signed bits of each PE accumulator (saturating).
    ``mem_width``    signed bits of a membrane word (saturating).
    ``frac_bits``    fraction bits of the common weight/current/membrane scale.
    ``leak_bits``    fraction bits of the leak λ.
    ``leak_int``     λ = leak_int / 2**leak_bits, 0 < λ <= 1.
    ``theta_int``    θ in membrane LSBs, θ >= 1.
    ``reset``        "soft" (subtract θ) or "hard" (to zero).
    ``fire``         "gt" (U > θ) or "ge" (U >= θ).
    ``weight_rows``  depth of the weight buffer (rows of ``array`` weights).
    ``mem_rows``     depth of the membrane buffer (rows of ``array/groups`` words).
    """

    array: int = 128
    groups: int = 4
    weight_width: int = 8
    acc_width: int = 16
    mem_width: int = 16
    frac_bits: int = 8
    leak_bits: int = 8
    leak_int: int = 64
    theta_int: int = 256
    reset: str = "soft"
    fire: str = "gt"
    weight_rows: int = 256
    mem_rows: int = 64

    # ------------------------------------------------------------------ checks
    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if f.type in ("int", int):
                if isinstance(v, bool) or not isinstance(v, int):
                    raise ConfigError(f"{f.name}: expected an integer, got {_show(v)}")
            elif not isinstance(v, str):
                raise ConfigError(f"{f.name}: expected a string, got {_show(v)}")

        def need(cond: bool, field: str, msg: str) -> None:
            if not cond:
                raise ConfigError(f"{field}={_show(getattr(self, field))}: {msg}")

        need(1 <= self.array <= MAX_ARRAY, "array", f"must be between 1 and {MAX_ARRAY}")
        need(1 <= self.groups <= self.array, "groups",
             f"must be between 1 and array={self.array}")
        need(self.array % self.groups == 0, "groups",
             f"must divide array={self.array} (each LIF unit serves one slot of every group)")
        need(2 <= self.weight_width <= MAX_WEIGHT_WIDTH, "weight_width",
             f"must be between 2 and {MAX_WEIGHT_WIDTH}")
        need(self.weight_width <= self.acc_width <= MAX_WIDTH, "acc_width",
             f"must be between weight_width={self.weight_width} and {MAX_WIDTH}")
        need(2 <= self.mem_width <= MAX_WIDTH, "mem_width", f"must be between 2 and {MAX_WIDTH}")
        need(0 <= self.frac_bits < self.mem_width, "frac_bits",
             f"must be between 0 and mem_width-1={self.mem_width - 1}")
        need(1 <= self.leak_bits <= MAX_LEAK_BITS, "leak_bits",
             f"must be between 1 and {MAX_LEAK_BITS}")
        need(1 <= self.leak_int <= (1 << self.leak_bits), "leak_int",
             f"λ = leak_int/2**leak_bits must satisfy 0 < λ <= 1, "
             f"i.e. 1 <= leak_int <= {1 << self.leak_bits}")
        need(self.reset in RESET_MODES, "reset", f"must be one of {', '.join(RESET_MODES)}")
        need(self.fire in FIRE_MODES, "fire", f"must be one of {', '.join(FIRE_MODES)}")
        top = self.mem_max if self.fire == "ge" else self.mem_max - 1
        need(1 <= self.theta_int <= top, "theta_int",
             f"θ must be at least 1 LSB and at most {top} so that a {self.mem_width}-bit "
             f"membrane can reach it (fire={self.fire}); widen mem_width or lower θ")
        need(1 <= self.weight_rows <= MAX_ROWS, "weight_rows", f"must be between 1 and {MAX_ROWS}")
        need(1 <= self.mem_rows <= MAX_ROWS, "mem_rows", f"must be between 1 and {MAX_ROWS}")

    # ----------------------------------------------------------- constructors
    @classmethod
    def from_real(cls, *, leak: float = 0.25, theta: float = 1.0, **kw) -> "HwConfig":
        """Build from real-valued λ and θ; both must be exact on their grids.

        ``leak`` is converted with ``leak_bits`` fraction bits and ``theta``
        with ``frac_bits``. A value that is not exactly representable raises
        :class:`ConfigError` naming the nearest representable value, so a
        quantization choice is never made silently.
        """
        _unknown_fields(kw)
        for name in ("leak_int", "theta_int"):
            if name in kw:
                raise ConfigError(f"{name}: from_real() takes the real value "
                                  f"({name[:-4]}=...), not {name}")
        base = cls()
        leak_bits = kw.get("leak_bits", base.leak_bits)
        frac_bits = kw.get("frac_bits", base.frac_bits)
        for name, value in (("leak", leak), ("theta", theta)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{name}: expected a number, got {_show(value)}")
            if value != value or value in (float("inf"), float("-inf")):
                raise ConfigError(f"{name}={value!r}: must be a finite number")

        def usable(v, lo, hi):
            return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi

        if not usable(leak_bits, 1, MAX_LEAK_BITS) or not usable(frac_bits, 0, MAX_WIDTH - 1):
            # Let the constructor report the bad width with its own message.
            return cls(leak_bits=leak_bits, frac_bits=frac_bits,
                       **{k: v for k, v in kw.items() if k not in ("leak_bits", "frac_bits")})
        leak_int = _exact(leak, leak_bits, "leak", "leak_bits")
        theta_int = _exact(theta, frac_bits, "theta", "frac_bits")
        return cls(leak_int=leak_int, theta_int=theta_int, **kw)

    def replace(self, **changes) -> "HwConfig":
        """A copy with some fields changed (validated again)."""
        _unknown_fields(changes)
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def arithmetic(self) -> dict:
        """The :data:`ARITHMETIC_FIELDS` of this configuration (what a quantized network depends on)."""
        return {k: getattr(self, k) for k in ARITHMETIC_FIELDS}

    @classmethod
    def from_dict(cls, d: dict) -> "HwConfig":
        """Build from a mapping of field names (e.g. :meth:`to_dict` / JSON)."""
        if not isinstance(d, Mapping):
            raise ConfigError(f"configuration: expected a mapping of field names to values, "
                              f"got {type(d).__name__}")
        _unknown_fields(d)
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    # ------------------------------------------------------ derived quantities
    @property
    def lif_units(self) -> int:
        """Shared LIF units in the netlist (= slots per group)."""
        return self.array // self.groups

    @property
    def slots(self) -> int:
        """Neuron slots per group in one tile (= ``lif_units``)."""
        return self.array // self.groups

    @property
    def leak(self) -> float:
        return self.leak_int / (1 << self.leak_bits)

    @property
    def theta(self) -> float:
        return self.theta_int / (1 << self.frac_bits)

    @property
    def scale(self) -> float:
        """Real value of one LSB of weights, currents and membranes."""
        return 2.0 ** -self.frac_bits

    @property
    def mem_min(self) -> int:
        return -(1 << (self.mem_width - 1))

    @property
    def mem_max(self) -> int:
        return (1 << (self.mem_width - 1)) - 1

    @property
    def acc_min(self) -> int:
        return -(1 << (self.acc_width - 1))

    @property
    def acc_max(self) -> int:
        return (1 << (self.acc_width - 1)) - 1

    @property
    def weight_min(self) -> int:
        return -(1 << (self.weight_width - 1))

    @property
    def weight_max(self) -> int:
        return (1 << (self.weight_width - 1)) - 1

    @property
    def value_width(self) -> int:
        """Width of each per-slot value in an output beat (membrane or current)."""
        return max(self.acc_width, self.mem_width)

    @property
    def weight_addr_width(self) -> int:
        return _clog2(self.weight_rows)

    @property
    def mem_addr_width(self) -> int:
        return _clog2(self.mem_rows)

    @property
    def group_width(self) -> int:
        return _clog2(self.groups)

    @property
    def membrane_buffer_bits(self) -> int:
        return self.mem_rows * self.slots * self.mem_width

    @property
    def weight_buffer_bits(self) -> int:
        return self.weight_rows * self.array * self.weight_width

    @property
    def name(self) -> str:
        """A short identifier, unique per configuration, safe for file names."""
        parts = [f"a{self.array}", f"g{self.groups}", f"w{self.weight_width}",
                 f"acc{self.acc_width}", f"m{self.mem_width}", f"f{self.frac_bits}",
                 f"l{self.leak_int}q{self.leak_bits}", f"th{self.theta_int}",
                 self.reset, self.fire, f"wr{self.weight_rows}", f"mr{self.mem_rows}"]
        return "_".join(parts)


def _checked_init(self, *args, **kw) -> None:
    """``HwConfig(...)``: a wrong call (unknown field, too many or repeated
    arguments) is a :class:`ConfigError` too, not a ``TypeError``."""
    names = [f.name for f in fields(HwConfig)]
    if len(args) > len(names):
        raise ConfigError(f"configuration: {len(args)} positional values for {len(names)} fields")
    _unknown_fields(kw)
    twice = sorted(set(names[:len(args)]) & set(kw))
    if twice:
        raise ConfigError(f"{twice[0]}: given both positionally and by name")
    _dataclass_init(self, *args, **kw)


_dataclass_init = HwConfig.__init__
HwConfig.__init__ = functools.wraps(_dataclass_init)(_checked_init)


def _exact(value: float, bits: int, name: str, bits_name: str) -> int:
    scaled = value * (1 << bits)
    if scaled in (float("inf"), float("-inf")):  # round() would raise OverflowError
        raise ConfigError(f"{name}={_show(value)} is far outside the representable range")
    n = round(scaled)
    if n != scaled:
        raise ConfigError(
            f"{name}={_show(value)} is not representable with {bits_name}={bits} "
            f"fraction bits; nearest is {n}/2**{bits} = {n / (1 << bits)!r}")
    return int(n)
