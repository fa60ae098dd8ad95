r"""The emitted Verilog restructured for Icarus Verilog (``vvp``): same logic, fewer wide nets.

:func:`icarus_verilog` takes the text :func:`gen.emit.generate_verilog`
writes and returns an equivalent text that Icarus simulates several times
faster (tb/build.py compiles it for every Icarus build; Verilator, Yosys and
the FPGA flow read the emitted text unchanged). Per module, purely textual:

**Dead view-field wires removed** (:func:`strip_field_wires`, applied first;
10x on the bulk path at ARRAY=128). Amaranth names every field of a
``lib.data`` view signal with a wire of its own (``\weights[121]``,
``\wload__payload.data[9]``, ``\cmd__payload.first``: 1,790 of them at
ARRAY=128), driven by a part select of the whole vector and read by
nothing. Verilator and Yosys drop them; Icarus keeps a functor for each
and re-evaluates it, with the whole 512-1,032-bit vector converted one bit
at a time (``vvp_vector4_t::set_bit`` + ``reduce4``, more than half of
``vvp``'s time at ARRAY=128), whenever that vector changes. Only wires
declared, assigned once and referenced nowhere else in their module are
removed, so no logic changes; the fields stay visible as slices of their
vectors (waveform builds keep the emitted text).

**Next-state processes as continuous assignments** (:func:`continuous_next_state`,
also applied). Yosys writes the next-state logic of every register as an
``always @*`` process (a default assignment, an ``if``/``else if`` chain,
``if (rst)``: 274 of the 283 at ARRAY=128 have exactly that form). ``vvp``
wakes such a process on any change of any input, compares the wide inputs
with their old values (``anyedge``) and copies them in and out of the
thread; one ``assign t = rst ? 0 : c1 ? e1 : ... : default`` is a mux
functor instead (1.36x on top of the above). The values are the same
whenever the conditions are 0/1, which they are from the first reset on
(before it the registers are X either way; an X condition picks the else
branch in a process but merges both values in ``?:``); processes of any
other form are left as they are.

**Part-assigned nets as one concatenation** (:func:`concat_part_nets`, also
applied): the output beat (37 part assignments) and the PE currents (32 +
32) become ``assign net = {...};`` (each part resized to its width as the
part assignment did); Icarus builds part-assigned nets as trees of
strength-aware ``.concat8`` functors that convert the whole vector one bit
at a time on every change of any part, a concatenation as plain ``.concat``
(1.38x on top of the above).

An experiment, not applied: :func:`procedural_wide_nets` computes every
net with :data:`MIN_PARTS` or more continuous part assignments (``assign
beat[15:0] = ...``) or a continuous concatenation of as many parts in one
``always_comb`` instead (Icarus builds those as trees of ``.concat8``
functors that re-send the whole vector on any change). It gave 2x before
the field wires were removed and 1.06x after.

``benchmarks/icarus_nets.py`` measures each in ``vvp`` alone and checks the
captures are byte-identical; the co-simulation checks every beat and row on
the rewritten text (the Icarus X mutant of tb/test_fault_injection.py, the
Icarus cases of tb/test_corners.py, tb/test_lif_pe_array.py and
tb/test_row_range.py run on it).
"""

from __future__ import annotations

import re
from collections import Counter

__all__ = ["MIN_PARTS", "icarus_verilog", "strip_field_wires", "continuous_next_state",
           "concat_part_nets", "procedural_wide_nets"]

#: part assignments / concatenation parts from which a net is rewritten
MIN_PARTS = 8

_FIELD_DECL = re.compile(r"^  wire (?:signed )?(?:\[\d+:0\] )?(\\\S*[.\[]\S*) ;\n", re.M)
_ESCAPED = re.compile(r"\\\S+")


def strip_field_wires(text: str) -> tuple[str, int]:
    """Remove the dead view-field wires of every module (rewrite 1); returns
    the text and how many were removed."""
    mods = text.split("endmodule")
    total = 0
    for k, mod in enumerate(mods):
        names = set(_FIELD_DECL.findall(mod))
        if not names:
            continue
        refs = Counter(t for t in _ESCAPED.findall(mod) if t in names)
        dead = {n for n in names if refs[n] == 2}
        if not dead:
            continue

        def keep(line: str, dead=dead) -> bool:
            m = re.match(r"  wire (?:signed )?(?:\[\d+:0\] )?(\\\S+) ;$", line) or \
                re.match(r"  assign (\\\S+)\s+= [^;]*;$", line)
            return not (m and m.group(1) in dead)
        lines = mod.split("\n")
        kept = [ln for ln in lines if keep(ln)]
        if len(lines) - len(kept) != 2 * len(dead):
            raise RuntimeError(f"internal: field wire removal left {len(lines) - len(kept)} lines "
                               f"for {len(dead)} wires")
        mods[k] = "\n".join(kept)
        total += len(dead)
    return "endmodule".join(mods), total


def procedural_wide_nets(text: str, min_parts: int = MIN_PARTS) -> tuple[str, int]:
    """Move wide many-part nets of each module into ``always_comb`` blocks
    (rewrite 2); returns the text and how many nets were moved."""
    mods = text.split("endmodule")
    total = 0
    for k, mod in enumerate(mods):
        lines = mod.split("\n")
        decl = {}
        for ln in lines:
            m = re.match(r"\s*wire (?:signed )?\[(\d+):0\] (\S+)\s*;", ln)
            if m:
                decl[m.group(2)] = int(m.group(1)) + 1
        parts, drop, extra = {}, set(), []
        for i, ln in enumerate(lines):
            m = re.match(r"  assign (\S+)\[(\d+):(\d+)\] = (.*);$", ln) or \
                re.match(r"  assign (\S+)\[(\d+)()\] = (.*);$", ln)
            if m:
                hi = int(m.group(2))
                lo = int(m.group(3)) if m.group(3) else hi
                parts.setdefault(m.group(1), []).append((i, hi, lo, m.group(4)))

        def var(net):
            return net + "__c" if not net.startswith("\\") else net + "__c "
        for net, ps in parts.items():
            if len(ps) < min_parts or net not in decl:
                continue
            w, c = decl[net], var(net)
            body = "\n".join(f"    {c}[{hi}:{lo}] = {rhs};" for _, hi, lo, rhs in ps)
            extra.append(f"  reg [{w - 1}:0] {c};\n  always_comb begin\n    {c} = {{{w}{{1'bz}}}};\n"
                         f"{body}\n  end\n  assign {net} = {c};")
            drop.update(i for i, *_ in ps)
        for i, ln in enumerate(lines):
            m = re.match(r"  assign (\S+) = (\{.*\});$", ln)
            if m and m.group(2).count(",") >= min_parts - 1 and m.group(1) in decl:
                net = m.group(1)
                w, c = decl[net], var(net)
                extra.append(f"  reg [{w - 1}:0] {c};\n  always_comb {c} = {m.group(2)};\n"
                             f"  assign {net} = {c};")
                drop.add(i)
        if extra:
            total += len(extra)
            mods[k] = "\n".join(ln for i, ln in enumerate(lines) if i not in drop) + "\n" + \
                "\n".join(extra) + "\n"
    return "endmodule".join(mods), total


def icarus_verilog(text: str) -> tuple[str, dict]:
    """The text tb/build.py compiles for Icarus: :func:`strip_field_wires`,
    :func:`continuous_next_state` and :func:`concat_part_nets` applied;
    returns it and ``{"field_wires": n, "next_state": m, "part_nets": k}``."""
    text, nf = strip_field_wires(text)
    text, nn = continuous_next_state(text)
    text, nc = concat_part_nets(text)
    head = "// Restructured for Icarus by gen/icarus.py (same logic; see its docstring).\n"
    return head + text, {"field_wires": nf, "next_state": nn, "part_nets": nc}


_ASSIGN = re.compile(r"^(\\\S+ |[A-Za-z_][\w$]*)\s*= (.*);$")
_IF = re.compile(r"^(?:end else )?if \((.*)\) begin$")


def _chain_expr(lines: list, target: str):
    """The expression of one ``always @*`` body of the emitted form (a default
    assignment of ``target``, then ``if (c) begin t = e; end [else if (c)
    begin t = e; end]* [else begin t = e; end]`` chains), or None."""
    value = None
    i = 0
    while i < len(lines):
        ln = lines[i]
        m = _ASSIGN.match(ln)
        if m:
            if m.group(1).strip() != target.strip():
                return None
            value = f"({m.group(2)})"
            i += 1
            continue
        arms, other = [], None
        while i < len(lines):
            m = _IF.match(lines[i])
            if m and (not arms or lines[i].startswith("end else if")):
                cond = m.group(1)
            elif arms and lines[i] == "end else begin":
                cond = None
            else:
                break
            a = _ASSIGN.match(lines[i + 1]) if i + 1 < len(lines) else None
            if not a or a.group(1).strip() != target.strip():
                return None
            if cond is None:
                other = f"({a.group(2)})"
            else:
                arms.append((cond, f"({a.group(2)})"))
            i += 2
            if other is not None:
                break
        if not arms or i >= len(lines) or lines[i] != "end" or value is None:
            return None
        i += 1
        expr = other if other is not None else value
        for cond, e in reversed(arms):
            expr = f"(({cond}) ? {e} : {expr})"
        value = expr
    return value


def continuous_next_state(text: str) -> tuple[str, int]:
    """Each emitted ``always @*`` next-state process of the form
    :func:`_chain_expr` reads becomes one continuous ``assign`` of nested
    conditional expressions (its ``reg`` a ``wire``). Same values whenever
    the conditions are 0/1 (an X condition selects the else branch in the
    process but merges both values in ``?:``)."""
    out, n = [], 0
    for mod in text.split("endmodule"):
        def repl(m):
            nonlocal n
            body = [ln.strip() for ln in m.group(1).split("\n") if ln.strip()
                    and not ln.strip().startswith("if (\\$auto$verilog_backend")]
            first = _ASSIGN.match(body[0]) if body else None
            if not first:
                return m.group(0)
            target = first.group(1)
            expr = _chain_expr(body, target)
            if expr is None:
                return m.group(0)
            n += 1
            return f"  assign {target} = {expr};\n"
        new = re.sub(r"  always @\* begin\n(.*?)\n  end\n", repl, mod, flags=re.S)
        # the converted targets: reg -> wire
        for t in re.findall(r"^  assign (\\\S+ |[A-Za-z_][\w$]*) = \(", new, re.M):
            new = re.sub(r"^(  )reg( (?:signed )?(?:\[\d+:0\] )?" + re.escape(t.strip()) + r" ?;)",
                         r"\1wire\2", new, flags=re.M)
        out.append(new)
    return "endmodule".join(out), n


def concat_part_nets(text: str, min_parts: int = MIN_PARTS) -> tuple[str, int]:
    """Each net driven by :data:`MIN_PARTS` or more continuous part
    assignments that together cover it exactly (``assign beat[15:0] = a;
    assign beat[31:16] = b; ...``) gets one continuous concatenation
    instead (``assign beat = {..., b, a};``). Icarus builds the former as a
    tree of strength-aware ``.concat8`` functors, which convert the whole
    vector one bit at a time on every change of any part; a concatenation
    is a plain four-state ``.concat``."""
    mods = text.split("endmodule")
    total = 0
    for k, mod in enumerate(mods):
        lines = mod.split("\n")
        decl = {}
        for ln in lines:
            m = re.match(r"\s*wire (?:signed )?\[(\d+):0\] (\S+)\s*;", ln)
            if m:
                decl[m.group(2)] = int(m.group(1)) + 1
        widths = {}
        for ln in lines:
            m = re.match(r"\s*(?:wire|reg|input|output)\s+(?:signed\s+)?(?:\[(\d+):0\]\s+)?"
                         r"(\\\S+ |[A-Za-z_][\w$]*)\s*;", ln)
            if m:
                widths[m.group(2).strip()] = int(m.group(1)) + 1 if m.group(1) else 1
        parts = {}
        for i, ln in enumerate(lines):
            m = re.match(r"  assign (\S+)\[(\d+):(\d+)\] = (.*);$", ln) or \
                re.match(r"  assign (\S+)\[(\d+)()\] = (.*);$", ln)
            if m:
                hi = int(m.group(2))
                lo = int(m.group(3)) if m.group(3) else hi
                parts.setdefault(m.group(1), []).append((i, hi, lo, m.group(4)))

        def operand(rhs: str, w: int, widths=widths) -> str:
            r = rhs.strip()
            m = re.fullmatch(r"(\d+)'[hbd][0-9a-fA-F_xz]+", r)
            if (m and int(m.group(1)) == w) or widths.get(r) == w:
                return rhs
            m = re.fullmatch(r"(\\\S+ |[A-Za-z_][\w$]*)\[(\d+)(?::(\d+))?\]", rhs)
            if m and int(m.group(2)) - int(m.group(3) or m.group(2)) + 1 == w:
                return rhs
            return f"{w}'({rhs})"           # the part assignment's own resizing
        first, drop = {}, set()
        for net, ps in parts.items():
            if len(ps) < min_parts or net not in decl:
                continue
            ps = sorted(ps, key=lambda p: p[2])
            if ps[0][2] != 0 or ps[-1][1] != decl[net] - 1 or \
                    any(a[1] + 1 != b[2] for a, b in zip(ps, ps[1:])):
                continue
            ops = ", ".join(operand(rhs, hi - lo + 1) for _, hi, lo, rhs in reversed(ps))
            first[min(p[0] for p in ps)] = f"  assign {net} = {{ {ops} }};"
            drop.update(p[0] for p in ps)
            total += 1
        if first:
            mods[k] = "\n".join(first.get(i, ln) for i, ln in enumerate(lines)
                                if i not in drop or i in first)
    return "endmodule".join(mods), total
