"""Mutations of the emitted Verilog that model real design bugs.

Each :class:`Mutation` rewrites the text of ``lif_pe_array.v`` with a regular
expression anchored on names the generator keeps stable (``spike``,
``theta_ge``, ``leak_product``, ``carry``, ``mem_wr_addr``, ``out_free``, ``out__ready``; see
``gen/lif_unit.py`` and ``gen/lif_stage.py``). :meth:`Mutation.apply` raises
:class:`MutationNotFound` when the pattern does not match the expected number
of times, so a fault-injection test can never pass because nothing was
mutated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

__all__ = ["Mutation", "MutationNotFound", "MUTATIONS", "X_MUTATIONS", "SPILL_MUTATIONS"]


class MutationNotFound(RuntimeError):
    """The Verilog does not contain the code a mutation targets."""


@dataclass(frozen=True)
class Mutation:
    """``pattern`` is replaced by ``repl``; ``per_unit`` means one match per
    LIF unit (``cfg.slots`` matches), otherwise exactly one match."""

    name: str
    bug: str
    pattern: str
    repl: "str | Callable"      # a replacement string or a function of the match
    per_unit: bool = False

    def apply(self, text: str, slots: int) -> str:
        new, n = re.subn(self.pattern, self.repl, text, flags=re.M)
        want = slots if self.per_unit else 1
        if n != want:
            raise MutationNotFound(f"mutation {self.name!r}: pattern matched {n} time(s), "
                                   f"expected {want}; the generator's Verilog changed, "
                                   f"update tb/mutations.py (pattern: {self.pattern})")
        return new


MUTATIONS = (
    # gen/lif_unit.py: spike = (L+X > θ), the sign of L+X-θ-1, for fire="gt" (the default)
    Mutation("fire_ge", "firing comparison U > θ turned into U >= θ (F5)",
             r"^(\s*assign spike = )~ \\\$\d+ \[\d+\];$", r"\1theta_ge;", per_unit=True),
    # leak_product = V * leak_int; the next line's {X, lb'h2^(lb-1)} gives lb: V * 2^lb = no leak
    Mutation("leak_skipped", "the leak λ·V is skipped: U = V + X instead of λ·V + X (F3)",
             r"^(\s*assign leak_product = )\$signed\(v\) \* \$signed\(\d+'h[0-9a-f]+\);"
             r"(\n\s*assign \\\$\d+\s*= \$signed\(leak_product\) \+ \$signed\(\{ [^{}]*, (\d+)'h)",
             lambda m: f"{m.group(1)}$signed({{ v, {m.group(3)}'h0 }});{m.group(2)}",
             per_unit=True),
    Mutation("no_group_carry", "V' is not carried from group g to g+1: every group "
             "restarts from the buffer row (F7 chained)",
             r"^(\s*assign (\S+)\s*= (\S+)\s*\? (\\?\$\d+|mem_q\[\d+:\d+\])\s*: )carry\[(\d+):(\d+)\];$",
             r"\1\4 ;", per_unit=True),
    Mutation("mem_row_plus_one", "membrane written one row too high (off-by-one address)",
             r"^(\s*assign mem_wr_addr = )(mem_row[^;]*);$", r"\1\2 + 1'b1;"),
    Mutation("drop_beat_backpressure", "the LIF stage ignores out__ready: a blocked beat "
             "is overwritten (dropped)",
             r"^(\s*assign out_free = )[^;]+;$", r"\g<1>1'h1;"),
    Mutation("duplicate_beat_backpressure", "out__valid is not cleared after a transfer: "
             "the last beat is delivered again",
             r"(end else if \()out__ready(\) begin\s*\\\$\d+\s*= 1'h0;)", r"\g<1>1'h0\2"),
)


#: Mutations that make a control output X mid-run (visible on Icarus only; on
#: two-state Verilator ``1'bx`` is 0). After reset ``out__valid`` = 0, so the
#: reset X/Z check passes and only the BFM's per-cycle check can catch them
#: (tb/test_fault_injection.py ``test_icarus_x_mid_run_is_caught``).
X_MUTATIONS = (
    Mutation("busy_x_backpressure", "busy goes X while a beat is held by backpressure "
             "(out__valid = 1, out__ready = 0), e.g. an uninitialised status register",
             # (the core's busy also ORs the mspill register: `\$N | mspill__valid`)
             r"^(\s*assign busy = )((?:\\busy\$\d+\s*\|\s*\\busy\$\d+|"
             r"\\\$\d+\s*\|\s*mspill__valid)\s*);$",
             r"\1(out__valid & ~out__ready) ? 1'bx : (\2);"),
)


#: Mutations of the membrane spill path (gen/core.py ``spill_beat``), detected
#: only by a spilled-membrane run (tests/test_spill_cosim.py): the buffer
#: itself stays right, so the beats are right and only the mspill check of
#: tb/offchip.py can see them.
SPILL_MUTATIONS = (
    Mutation("spill_addr_plus_one", "mspill carries the written row's address + 1 "
             "(the row is right, its label wrong: the host would store it elsewhere)",
             r"^(\s*\\\$\d+ \[\d+:0\] = )mem_wr_addr;$", r"\1mem_wr_addr + 1'b1;"),
)
