"""Canned Yosys output and a matching configuration for the tests of flow/.

Not a test module: imported by ``tests/test_flow_*.py``. The text is a
trimmed ``stat -tech cmos`` / ``dump t:$mem_v2`` / ``ltp`` output of a
hand-made ``lif_pe_array`` hierarchy: a top with one ``$_OR_``, a LIF stage
with 12 cells (7 flip-flops) and two 10-cell LIF units, a 30-cell PE array
(10 flip-flops) and a 2 x 32 membrane memory.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from flow.synth import SynthResult, parse_memories, parse_stat
from gen.emit import build_manifest, emit
from golden.config import HwConfig

TOP = "lif_pe_array"
needs_yosys = pytest.mark.skipif(shutil.which("yosys") is None, reason="yosys not installed")

STAT_TEXT = """
=== lif_pe_array ===

   Number of wires:                173
   Number of cells:                  4
     $_OR_                           1
     lif_pe_array.lif_stage          1
     lif_pe_array.pe_array           1
     lif_pe_array.membrane_buffer      1

   Estimated number of transistors:          6+

=== lif_pe_array.lif_stage ===

   Number of cells:                 14
     $_AND_                          5
     $_SDFFE_PP0N_                   7
     lif_pe_array.lif_stage.lif_unit_0      1
     lif_pe_array.lif_stage.lif_unit_1      1

   Estimated number of transistors:        100+

=== lif_pe_array.lif_stage.lif_unit_0 ===

   Number of cells:                 10
     $_XOR_                         10

   Estimated number of transistors:        120

=== lif_pe_array.lif_stage.lif_unit_1 ===

   Number of cells:                 10
     $_XOR_                         10

   Estimated number of transistors:        120

=== lif_pe_array.pe_array ===

   Number of cells:                 30
     $_MUX_                         20
     $_SDFFE_PP0P_                  10

   Estimated number of transistors:        300+

=== lif_pe_array.membrane_buffer ===

   Number of cells:                  1
     $mem_v2                         1

   Estimated number of transistors:          0+

=== design hierarchy ===

   lif_pe_array                      1
     lif_pe_array.lif_stage          1

   Number of cells:                 64
     $_AND_                          5
"""

MEM_TEXT = """
module \\lif_pe_array.membrane_buffer

  attribute \\src "x.v:1.1-2.2"
  cell $mem_v2 \\membrane_mem
    parameter \\ABITS 1
    parameter \\INIT 64'0000
    parameter \\RD_PORTS 1
    parameter \\SIZE 2
    parameter \\WIDTH 32
    parameter \\WR_PORTS 1
    connect \\CLK 1'0
  end
end
"""

LTP_TEXT = """
Longest topological path in lif_pe_array (length=3):
    0: \\a [1]
    1: $n1 (via $c1)
    2: $n2 (via $c2)
   ff: \\out [0] (via $ff1)
Longest topological path in lif_pe_array.pe_array (length=7):
    0: \\x
"""


def canned_result() -> SynthResult:
    modules, total = parse_stat(STAT_TEXT)
    return SynthResult(top=TOP, key="k", yosys_version="Yosys test", seconds=0.0,
                       modules=modules, memories=parse_memories(MEM_TEXT),
                       module_depth={f"{TOP}.pe_array": 7}, depth=3, yosys_total_cells=total)


def canned_cfg() -> HwConfig:
    return HwConfig(array=4, groups=2, weight_rows=2, mem_rows=1)


def canned_manifest(cfg: HwConfig) -> dict:
    return build_manifest(cfg, TOP)


def emit_tiny(folder: Path) -> tuple:
    """Emit the ARRAY=4, GROUPS=2 build the Yosys tests synthesize (a few
    seconds); returns ``(cfg, verilog path, manifest dict)``."""
    cfg = HwConfig(array=4, groups=2, weight_rows=4, mem_rows=4)
    v, m = emit(cfg, folder / "rtl", TOP)
    return cfg, Path(v), json.loads(Path(m).read_text())
