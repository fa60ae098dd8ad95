"""The command set, the port list and the tile period are each defined once
(golden.encoding, gen.core.core_signature, gen.timing.tile_period); the
manifest, the RTL layouts and the testbench derive from them."""

from __future__ import annotations

import pytest
from amaranth.hdl import Value
from amaranth.lib import enum as amenum

from gen.core import LifPeArrayCore
from gen.emit import PORT_NAMES, build_manifest
from gen.layouts import cmd_layout, tile_layout
from gen.timing import TILE_PERIOD_FORMULA, cycles, tile_period
from golden.config import HwConfig
from golden.encoding import ERROR_WIDTH, Error, Mode, Op, error_layout

CFG = HwConfig(array=8, groups=4, weight_rows=6, mem_rows=20)


def test_encodings_match_docs():
    # docs/interface.md "Command stream" / "Errors" (typed here from the document)
    assert {m.name: int(m) for m in Op} == {"EVENT": 0, "TILE": 1, "LAYER": 2, "RESERVED": 3}
    assert {m.name: int(m) for m in Mode} == {"CHAINED": 0, "READOUT": 1, "INDEPENDENT": 2,
                                             "RESERVED": 3}
    assert ERROR_WIDTH == 3
    layout = error_layout()
    assert {n: f.offset for n, f in layout} == {"reserved_op_or_mode": 0, "event_row_range": 1,
                                                "mem_row_range": 2}
    assert [int(e) for e in Error] == [1, 2, 4]


def test_payload_fields_are_enum_typed():
    for layout in (cmd_layout(CFG), tile_layout(CFG)):
        assert layout["mode"].shape is Mode
    assert cmd_layout(CFG)["op"].shape is Op
    assert isinstance(Op.EVENT, amenum.IntEnum) and Op.TILE == 1     # usable as plain ints


def test_manifest_encodings_come_from_golden_encoding():
    m = build_manifest(CFG)
    assert m["opcodes"] == {"EVENT": 0, "TILE": 1, "LAYER": 2}
    assert m["modes"] == {"CHAINED": 0, "READOUT": 1, "INDEPENDENT": 2}
    assert m["error_bits"] == {"RESERVED_OP_OR_MODE": 0, "EVENT_ROW_RANGE": 1, "MEM_ROW_RANGE": 2}


def test_manifest_ports_are_the_component_signature():
    m = build_manifest(CFG)
    core = LifPeArrayCore(CFG)
    members = {"__".join(map(str, p)): len(Value.cast(v))
               for p, _, v in core.signature.flatten(core)}
    got = {p["name"]: p["width"] for p in m["ports"]}
    assert got.pop("clk") == got.pop("rst") == 1
    assert got == members
    assert set(PORT_NAMES) == {p["name"] for p in m["ports"]}


@pytest.mark.parametrize("groups", [1, 2, 4, 8])
def test_period_formula_text_is_the_function(groups):
    cfg = HwConfig(array=8, groups=groups)
    assert cycles(cfg)["tile_period_formula"] == TILE_PERIOD_FORMULA
    for events in range(0, 3 * groups + 2):
        text = eval(TILE_PERIOD_FORMULA, {"max": max, "__builtins__": {}},   # noqa: S307
                    {"events": events, "groups": groups})
        assert text == tile_period(events, groups) == max(events + 1, groups + 1)
