"""Tests of golden/core_model.py against hand-computed transactions (docs/interface.md)."""

from __future__ import annotations

import pytest

from golden.config import HwConfig
from golden.core_model import ERR_MEM_ROW, ERR_OPCODE, ERR_WEIGHT_ROW, CoreModel, CoreModelError
from golden.schedule import (
    MODE_CHAINED, MODE_INDEPENDENT, MODE_READOUT, OP_EVENT, OP_LAYER, OP_TILE, Command,
)

# A = 4, N = 2, S = 2; θ = 4, λ = 0.5
CFG = HwConfig(array=4, groups=2, theta_int=4, leak_int=128, weight_rows=8, mem_rows=4)


def _core(cfg=CFG):
    core = CoreModel(cfg)
    core.load_weight(0, [6, 1, 1, 5])
    core.load_weight(1, [-1, 2, 0, 3])
    return core


def _run(core, *cmds):
    beats = []
    for c in cmds:
        beats.extend(core.command(c))
    return beats


def _vals(beats):
    return [(b.spikes.tolist(), b.values.tolist(), b.tile, b.group, b.last, b.readout) for b in beats]


def test_chained_tile_by_hand():
    core = _core()
    # X = row0 + row1 = [5, 3, 1, 8]; group 0 slots (5, 3), group 1 slots (1, 8)
    beats = _run(core, Command(OP_LAYER, base=1, mode=MODE_CHAINED, first=1),
                 Command(OP_EVENT, row=0), Command(OP_EVENT, row=1), Command(OP_TILE))
    # g0: U = (5, 3) -> O = (1, 0), V' = (1, 3); g1: L = (1, 2) (0.5·3 rounds up), U = (2, 10) -> O = (0, 1), V' = (2, 6)
    assert _vals(beats) == [([1, 0], [5, 3], 0, 0, 0, 0), ([0, 1], [2, 10], 0, 1, 1, 0)]
    assert core.read_membrane(1).tolist() == [2, 6]
    # next timestep, same tile: reads row 1 (first = 0); only row 0 -> X = [6, 1, 1, 5]
    beats = _run(core, Command(OP_LAYER, base=1, mode=MODE_CHAINED, first=0),
                 Command(OP_EVENT, row=0), Command(OP_TILE))
    # g0: L = (1, 3), U = (7, 4) -> O = (1, 0), V' = (3, 4); g1: L = (2, 2), U = (3, 7) -> (0, 1), V' = (3, 3)
    assert _vals(beats) == [([1, 0], [7, 4], 0, 0, 0, 0), ([0, 1], [3, 7], 0, 1, 1, 0)]
    assert core.read_membrane(1).tolist() == [3, 3]
    assert core.error == 0


def test_first_flag_ignores_stored_row_and_tiles_advance():
    core = _core()
    core.mem[2] = [100, 100]
    core.mem_written[2] = True
    beats = _run(core, Command(OP_LAYER, base=1, mode=MODE_CHAINED, first=1),
                 Command(OP_TILE), Command(OP_EVENT, row=0), Command(OP_TILE))
    assert [b.tile for b in beats] == [0, 0, 1, 1]
    assert beats[2].values.tolist() == [6, 1]          # row 2 holds 100s but first = 1
    # tile 1: g0 U = (6, 1) -> V' = (2, 1); g1 L = (1, 1), U = (2, 6) -> V' = (2, 2)
    assert core.read_membrane(1).tolist() == [0, 0] and core.read_membrane(2).tolist() == [2, 2]


def test_independent_rows_by_hand():
    core = _core()
    beats = _run(core, Command(OP_LAYER, base=0, mode=MODE_INDEPENDENT, first=1),
                 Command(OP_TILE), Command(OP_EVENT, row=0), Command(OP_TILE))
    # tile 1 uses rows 0 + 1·2 + g = 2, 3; each group from 0: U = X
    assert _vals(beats[2:]) == [([1, 0], [6, 1], 1, 0, 0, 0), ([0, 1], [1, 5], 1, 1, 1, 0)]
    assert core.read_membrane(2).tolist() == [2, 1] and core.read_membrane(3).tolist() == [1, 1]
    beats = _run(core, Command(OP_LAYER, base=0, mode=MODE_INDEPENDENT, first=0),
                 Command(OP_TILE), Command(OP_TILE))
    # no events: U = leak(V): (1, 1) from (2, 1) and (1, 1) from (1, 1)
    assert [b.values.tolist() for b in beats[2:]] == [[1, 1], [1, 1]]


def test_readout_and_saturation():
    cfg = CFG.replace(weight_width=4, acc_width=5)      # weights [-8, 7], acc [-16, 15]
    core = CoreModel(cfg)
    core.load_weight(0, [7, -8, 7, 0])
    core.load_weight(1, [-8, 7, 7, 0])
    beats = _run(core, Command(OP_LAYER, mode=MODE_READOUT),
                 Command(OP_EVENT, row=0), Command(OP_EVENT, row=0), Command(OP_EVENT, row=0),
                 Command(OP_EVENT, row=1), Command(OP_TILE))
    # PE0: 7, 14, 15, 7; PE1: -8, -16, -16, -9; PE2: 7, 14, 15, 15 (+7 saturates)
    assert _vals(beats) == [([0, 0], [7, -9], 0, 0, 0, 1), ([0, 0], [15, 0], 0, 1, 1, 1)]
    assert not core.mem_written.any()


def test_error_flags():
    core = _core()
    _run(core, Command(OP_LAYER, base=0, mode=MODE_CHAINED, first=1))
    assert _run(core, Command(3)) == [] and core.error == ERR_OPCODE
    core.reset()
    _run(core, Command(OP_LAYER, base=0, mode=MODE_READOUT, first=1), Command(OP_LAYER, base=2, mode=3))
    assert core.error == ERR_OPCODE and core.mode == MODE_READOUT and core.base == 0   # dropped
    core.reset()
    _run(core, Command(OP_EVENT, row=0), Command(OP_EVENT, row=8))
    assert core.error == ERR_WEIGHT_ROW and core.acc.tolist() == [6, 1, 1, 5]
    core.reset()
    # chained tile at row 4 = mem_rows: still N beats, nothing written, tile advances
    beats = _run(core, Command(OP_LAYER, base=3, mode=MODE_CHAINED, first=1),
                 Command(OP_TILE), Command(OP_TILE))
    assert len(beats) == 4 and core.error == ERR_MEM_ROW
    assert core.mem_written.tolist() == [False, False, False, True]
    core.reset()
    # independent tile 0 at base 3 needs rows 3 and 4: whole tile dropped
    beats = _run(core, Command(OP_LAYER, base=3, mode=MODE_INDEPENDENT, first=1), Command(OP_TILE))
    assert len(beats) == 2 and core.error == ERR_MEM_ROW
    # sticky, and combined
    _run(core, Command(OP_EVENT, row=9))
    assert core.error == ERR_MEM_ROW | ERR_WEIGHT_ROW
    core.reset()
    assert core.error == 0


def test_tile_field_wraps():
    core = _core()
    _run(core, Command(OP_LAYER, mode=MODE_READOUT))
    core.tile = 0xFFFF
    beats = _run(core, Command(OP_TILE), Command(OP_TILE))
    assert [b.tile for b in beats] == [0xFFFF, 0xFFFF, 0x10000, 0x10000]   # unreduced
    assert [b.wire_tile for b in beats] == [0xFFFF, 0xFFFF, 0, 0]           # the wire field


def test_strict_reads_of_unwritten_rows():
    core = CoreModel(CFG)
    with pytest.raises(CoreModelError, match="weight row 3"):
        core.command(Command(OP_EVENT, row=3))
    _run(core, Command(OP_LAYER, base=2, mode=MODE_CHAINED, first=0))
    with pytest.raises(CoreModelError, match="membrane row 2"):
        core.command(Command(OP_TILE))
    lax = CoreModel(CFG, strict=False)
    _run(lax, Command(OP_EVENT, row=3), Command(OP_LAYER, base=2, mode=MODE_CHAINED, first=0))
    assert len(lax.command(Command(OP_TILE))) == 2


def test_bad_weight_loads():
    core = CoreModel(CFG)
    with pytest.raises(ValueError, match="4 entries"):
        core.load_weight(0, [1, 2, 3])
    with pytest.raises(ValueError, match="address 8"):
        core.load_weight(8, [0, 0, 0, 0])
    with pytest.raises(ValueError, match=r"outside \[-128, 127\]"):
        core.load_weight(0, [0, 128, 0, 0])


def test_row_range_rule_is_full_width():
    """docs/interface.md "Membrane rows" / "Errors": rows base + tile·N + g at full
    width; an INDEPENDENT tile with some rows out of range is wholly bad; first = 1
    does not hide it; nothing wraps modulo 2**MA or 2**16."""
    from golden.core_model import tile_rows
    from golden.encoding import Mode
    cfg = HwConfig(array=8, groups=4, weight_rows=4, mem_rows=20)      # MA = 5
    assert tile_rows(cfg, Mode.INDEPENDENT, 31, 0) == [31, 32, 33, 34]   # not 31, 0, 1, 2
    assert tile_rows(cfg, Mode.CHAINED, 3, 1 << 16) == [3 + (1 << 16)]
    assert tile_rows(cfg, Mode.READOUT, 7, 5) == []
    core = CoreModel(cfg, strict=False)
    core.load_weight(0, [1] * 8)
    for row in range(20):
        core.mem[row] = row + 1
    before = core.mem.copy()
    # base 17: rows 17..20, only row 20 out of range -> whole tile bad, first = 0
    beats = _run(core, Command(OP_LAYER, base=17, mode=MODE_INDEPENDENT, first=0),
                 Command(OP_EVENT, row=0), Command(OP_TILE))
    assert core.error == ERR_MEM_ROW and (core.mem == before).all()
    assert [b.values.tolist() for b in beats] == [[1, 1]] * 4          # V = 0: U = X
    core.reset()
    _run(core, Command(OP_LAYER, base=31, mode=MODE_INDEPENDENT, first=1), Command(OP_TILE))
    assert core.error == ERR_MEM_ROW and (core.mem == before).all()
    # CHAINED tile 2**16 at base 0 is row 65536: bad although its wire tile is 0
    core.reset()
    _run(core, Command(OP_LAYER, base=0, mode=MODE_CHAINED, first=0))
    core.tile = 1 << 16
    (b0, b1, b2, b3) = _run(core, Command(OP_TILE))
    assert b0.wire_tile == 0 and b0.tile == 1 << 16
    assert core.error == ERR_MEM_ROW and (core.mem == before).all()


def test_reserved_layer_keeps_the_whole_layer_state():
    core = _core()
    _run(core, Command(OP_LAYER, base=1, mode=MODE_INDEPENDENT, first=1), Command(OP_TILE))
    _run(core, Command(OP_LAYER, base=3, mode=3, first=0))
    assert core.error == ERR_OPCODE
    assert (core.base, core.mode, core.first, core.tile) == (1, MODE_INDEPENDENT, 1, 1)


def test_unused_fields_are_ignored():
    core, ref = _core(), _core()
    a = _run(core, Command(OP_LAYER, row=7, base=0, mode=MODE_CHAINED, first=1),
             Command(OP_EVENT, row=0, base=3, mode=3, first=1), Command(OP_TILE, 5, 3, 3, 0))
    b = _run(ref, Command(OP_LAYER, base=0, mode=MODE_CHAINED, first=1),
             Command(OP_EVENT, row=0), Command(OP_TILE))
    assert _vals(a) == _vals(b) and core.error == 0 and (core.mem == ref.mem).all()
