"""Known faults that must make a proof fail (the proofs have teeth).

Each :class:`Fault` rewrites the Verilog of the design under proof and names
the proof that must then fail. Faults come from two places:

* :data:`tb.mutations.MUTATIONS` (the co-simulation's fault-injection set),
  applied unchanged to the block they target;
* :data:`FORMAL_MUTATIONS` below, written for the proofs: a rounding tie
  broken the wrong way, a saturation bound off by one, ``U`` carried to the
  next group instead of ``V'``, ``cmd__ready`` waiting for ``cmd__valid``,
  a non-sticky error flag.

Like :class:`tb.mutations.Mutation`, every rewrite checks that it matched the
expected number of times, so a fault can never "fail the proof" by not
being applied.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from tb.mutations import MUTATIONS, MutationNotFound

__all__ = ["TextFault", "FORMAL_MUTATIONS", "Fault", "tb_mutation"]


@dataclass(frozen=True)
class TextFault:
    """``pattern`` -> ``repl`` (a string or a function of the match), which
    must match ``count`` times (``None``: at least once)."""
    name: str
    bug: str
    pattern: str
    repl: "str | Callable"
    count: "int | None" = 1

    def apply(self, text: str) -> str:
        new, n = re.subn(self.pattern, self.repl, text, flags=re.M)
        if n == 0 or (self.count is not None and n != self.count):
            raise MutationNotFound(f"fault {self.name!r}: pattern matched {n} time(s), expected "
                                   f"{self.count or 'at least 1'}; the generator's Verilog "
                                   f"changed, update formal/faults.py")
        return new


def _tie_down(m):
    """Replace the constant ``N'hH`` of group 2/3 by ``H - 1`` (the F3 +2^(lb-1),
    or a saturation value)."""
    width, value = int(m.group(2)), int(m.group(3), 16)
    return f"{m.group(1)}{width}'h{value - 1:x}{m.group(4)}"


def _temp_of(text: str, lhs_pattern: str, what: str) -> str:
    """The ``\\$N`` temporary a wire/register is assigned from."""
    m = re.findall(lhs_pattern, text, flags=re.M)
    if len(m) != 1:
        raise MutationNotFound(f"{what}: found {len(m)} time(s), expected 1; the generator's "
                               f"Verilog changed, update formal/faults.py")
    return m[0]


def _sub_once(text: str, pattern: str, repl, what: str) -> str:
    new, n = re.subn(pattern, repl, text, flags=re.M)
    if n != 1:
        raise MutationNotFound(f"{what}: matched {n} time(s), expected 1; the generator's "
                               f"Verilog changed, update formal/faults.py")
    return new


def _acc_sat_minus_one(text: str) -> str:
    """PE 0's accumulator saturates at acc_max - 1 instead of acc_max."""
    # gen/pe_array.py: acc_bound_p0 = sum negative ? acc_min : acc_max (the
    # saturation value once the sum overflows); acc_max is the second constant
    return _sub_once(text, r"^(\s*assign acc_bound_p0 = \S+ \? \d+'h[0-9a-f]+ : )(\d+)'h([0-9a-f]+)"
                     r"(;)$", _tie_down, "fault 'acc_sat_max_minus_one'")


def _error_not_sticky(text: str) -> str:
    """The error register forgets its flags when the next command is accepted."""
    tmp = _temp_of(text, r"^\s*error <= (\\\$\d+)\s*;$", "error register")
    return _sub_once(text, rf"^(\s*{re.escape(tmp)}\s*= )error;$", r"\1accept ? 3'h0 : error;",
                     "fault 'error_not_sticky'")


def _carry_u(text: str) -> str:
    """In the LIF stage, load ``carry`` from the units' ``u`` instead of ``v_next``."""
    unit_ports = re.findall(r"\\\S*lif_unit_(\d+)\s+lif_unit_\1\s*\((.*?)\);", text, flags=re.S)
    rename = {}
    for _k, body in unit_ports:
        ports = dict((p, w.strip()) for p, w in re.findall(r"\.(\w+)\(([^()]*)\)", body))
        rename[ports["v_next"]] = ports["u"]
    tmp = _temp_of(text, r"^\s*carry <= (\\\$\d+)\s*;$", "carry register")
    pat = re.compile(rf"^(\s*{re.escape(tmp)}\s*= \{{)([^}}]*)(\}};)$", re.M)
    hits = 0

    def swap(mm):
        nonlocal hits
        parts = [p.strip() for p in mm.group(2).split(",")]
        if not rename or not all(p in rename for p in parts):
            return mm.group(0)
        hits += 1
        return mm.group(1) + " " + " , ".join(rename[p] for p in parts) + " " + mm.group(3)

    new = pat.sub(swap, text)
    if hits != 1:
        raise MutationNotFound(f"fault 'carry_u': carry update matched {hits} time(s), expected 1")
    return new


class _FnFault(TextFault):
    def apply(self, text: str) -> str:
        return self.repl(text)


FORMAL_MUTATIONS = {f.name: f for f in (
    # gen/lif_unit.py: the +2^(lb-1) is the low part of {X - c, lb'h2^(lb-1)} in each
    # of the unit's four parallel sums
    TextFault("tie_toward_minus_inf", "F3 rounding ties broken toward -inf (+2^(lb-1) - 1)",
              r"^(\s*assign \\\$\d+\s*= \$signed\(leak_product\) \+ \$signed\(\{ [^{}]*, )"
              r"(\d+)'h([0-9a-f]+)( \}\);)$", _tie_down, count=None),
    _FnFault("acc_sat_max_minus_one", "F2 saturation bound off by one: PE 0 saturates at "
             "acc_max - 1", "", _acc_sat_minus_one),
    _FnFault("carry_u", "U carried to the next group instead of V' (F6/F7)", "", _carry_u),
    TextFault("ready_waits_for_valid", "cmd__ready depends on cmd__valid (ready only while "
              "valid)", r"^(\s*assign cmd_ready = )([^;]*);$", r"\1(\2) & cmd__valid;"),
    _FnFault("error_not_sticky", "the error flags clear when the next command is accepted", "",
             _error_not_sticky),
)}


def tb_mutation(name: str, slots: int):
    """A :data:`tb.mutations.MUTATIONS` entry as a text rewrite for a block with ``slots`` units."""
    mut = {m.name: m for m in MUTATIONS}[name]
    return lambda text: mut.apply(text, slots)


@dataclass(frozen=True)
class Fault:
    """``name`` is applied to the DUT of proof ``proof``, which must then fail.
    ``source``: "tb" (tb/mutations.py) or "formal" (:data:`FORMAL_MUTATIONS`)."""
    name: str
    source: str
    proof: str

    @property
    def bug(self) -> str:
        if self.source == "tb":
            return {m.name: m for m in MUTATIONS}[self.name].bug
        return FORMAL_MUTATIONS[self.name].bug

    def mutate(self, slots: int):
        if self.source == "tb":
            return tb_mutation(self.name, slots)
        return FORMAL_MUTATIONS[self.name].apply
