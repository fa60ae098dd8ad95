"""gen/icarus.py: the text Icarus compiles has the same logic as the emitted one."""

from __future__ import annotations

import re

from gen.icarus import icarus_verilog, procedural_wide_nets, strip_field_wires

SYNTH = """module m(a, y, z);
  input [15:0] a;
  output [7:0] y;
  output z;
  wire [7:0] \\a.lo ;
  wire [7:0] \\a.hi ;
  wire \\a[3] ;
  assign \\a.lo  = a[7:0];
  assign \\a.hi  = a[15:8];
  assign \\a[3]  = a[3];
  assign y = \\a.hi ;
  assign z = a[0];
endmodule
module n(a);
  input [15:0] a;
  wire [7:0] \\a.hi ;
  assign \\a.hi  = a[15:8];
endmodule
"""


def test_only_dead_field_wires_are_removed():
    out, n = strip_field_wires(SYNTH)
    assert n == 3                                  # \\a.lo and \\a[3] of m, \\a.hi of n
    assert "\\a.lo" not in out and "\\a[3]" not in out
    m = out.split("endmodule")[0]
    assert "wire [7:0] \\a.hi ;" in m and "assign y = \\a.hi ;" in m   # read: kept
    assert "\\a.hi" not in out.split("endmodule")[1]  # per module: unread in n
    gone = [ln for ln in SYNTH.splitlines() if ln not in m.splitlines()][:4]
    assert len(out.splitlines()) == len(SYNTH.splitlines()) - 6
    assert all(re.match(r"  (wire|assign) .*\\a[.\[]", ln) for ln in gone)


def test_emitted_core_loses_only_its_field_wires():
    from golden.config import HwConfig
    from gen.emit import generate_verilog
    text = generate_verilog(HwConfig(array=8, groups=2))
    out, nf = strip_field_wires(text)
    assert nf > 50 and icarus_verilog(text)[1]["field_wires"] == nf
    assert icarus_verilog(text)[1]["next_state"] > 10
    gone = [ln for ln in text.splitlines() if ln not in set(out.splitlines())]
    assert len(gone) == 2 * nf
    assert all(re.match(r"  (wire (signed )?(\[\d+:0\] )?|assign )\\\S*[.\[]", ln) for ln in gone)
    assert strip_field_wires(out)[1] == 0          # idempotent


def test_procedural_wide_nets_moves_many_part_nets():
    text = "module m(a, y);\n  input [7:0] a;\n  output [7:0] y;\n  wire [7:0] y;\n" + \
        "".join(f"  assign y[{i}] = a[{7 - i}];\n" for i in range(8)) + "endmodule\n"
    out, n = procedural_wide_nets(text)
    assert n == 1 and "always_comb" in out and "assign y = y__c;" in out
    assert procedural_wide_nets(text, min_parts=9)[1] == 0


def test_next_state_processes_become_conditional_assigns():
    from gen.icarus import continuous_next_state
    text = """module m(clk, rst, a, b, s, t, q);
  input clk, rst, s, t;
  input [7:0] a, b;
  output [7:0] q;
  reg [7:0] q;
  reg [7:0] \\$1 ;
  reg [7:0] \\$2 ;
  always @* begin
    if (\\$auto$verilog_backend.cc:2355:dump_module$1 ) begin end
    \\$1  = q;
    if (s) begin
      \\$1  = a;
    end else if (t) begin
      \\$1  = b;
    end
    if (rst) begin
      \\$1  = 8'h00;
    end
  end
  always @* begin
    \\$2  = q;
    case (s)
      1'h1: \\$2  = a;
    endcase
  end
  always @(posedge clk) q <= \\$1 ;
endmodule
"""
    out, n = continuous_next_state(text)
    assert n == 1
    assert "  assign \\$1  = ((rst) ? (8'h00) : ((s) ? (a) : ((t) ? (b) : (q))));" in out
    assert "  wire [7:0] \\$1 ;" in out and "  reg [7:0] \\$2 ;" in out   # the case form: kept
    assert out.count("always @*") == 1


def test_part_assigned_nets_become_one_concatenation():
    from gen.icarus import concat_part_nets
    head = "module m(a, b, y);\n  input [3:0] a;\n  input [7:0] b;\n  wire [15:0] y;\n"
    parts = "".join(f"  assign y[{2 * i + 1}:{2 * i}] = a[{i % 4}] ? b[1:0] : 2'h{i % 4};\n"
                    for i in range(7)) + "  assign y[15:14] = b[7:6];\n"
    out, n = concat_part_nets(head + parts + "endmodule\n")
    assert n == 1
    assert "  assign y = { b[7:6], 2'(a[2] ? b[1:0] : 2'h2)," in out
    assert out.count("assign y") == 1
    gap = parts.replace("  assign y[15:14] = b[7:6];\n", "")     # bits 15:14 undriven: kept
    assert concat_part_nets(head + gap + "endmodule\n")[1] == 0
