"""Unit tests of the testbench infrastructure (no simulator needed).

Payload codec vs docs/interface.md and the generator manifest, scoreboard
diffs, stimulus properties, mutation patterns and option parsing.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from golden.config import HwConfig
from golden.mapping import choose_mappings, layer_tiles
from golden.schedule import build_schedule
from tb.payload import (XVAL, PayloadError, StreamLayout, expected_layouts,
                        layouts_from_manifest, pack_bits, unpack_binstr, unpack_bits)
from tb.scoreboard import Scoreboard
from tb.stimulus import DENSITIES, StimulusError, make_network, make_spikes

CFGS = [HwConfig(array=8, groups=2), HwConfig(array=32, groups=4),
        HwConfig(array=128, groups=4), HwConfig(array=16, groups=16, acc_width=12)]


# ------------------------------------------------------------------ payload
@pytest.mark.parametrize("width,signed", [(1, False), (4, True), (8, True), (16, True),
                                          (13, True), (16, False), (32, True)])
def test_pack_unpack_roundtrip(width, signed):
    rng = np.random.default_rng(width)
    lo, hi = (-(1 << (width - 1)), (1 << (width - 1))) if signed else (0, 1 << width)
    vals = rng.integers(lo, hi, size=37)
    vals[0], vals[-1] = lo, hi - 1
    word = pack_bits(vals, width, signed)
    assert np.array_equal(unpack_bits(word, 37, width, signed), vals)
    binstr = format(word, f"0{37 * width}b")
    assert np.array_equal(unpack_binstr(binstr, 0, 37, width, signed), vals)


def test_pack_rejects_out_of_range():
    with pytest.raises(PayloadError, match="does not fit"):
        pack_bits([128], 8, True)


def test_unpack_binstr_marks_x():
    # element 1 (bits 4..7) holds an X
    got = unpack_binstr("0001" + "00x0" + "1111", 0, 3, 4, True)
    assert got.tolist() == [-1, XVAL, 1]


def test_out_layout_by_hand():
    """docs/interface.md for A=8, N=2, VW=16: spikes[0:4], values[4:68], tile[68:84], ..."""
    out = expected_layouts(HwConfig(array=8, groups=2))["out"]
    assert [(f.name, f.offset, f.width) for f in out.fields.values()] == [
        ("spikes", 0, 4), ("values", 4, 64), ("tile", 68, 16), ("group", 84, 1),
        ("last", 85, 1), ("readout", 86, 1)]
    word = out.pack(spikes=[1, 0, 0, 1], values=[-1, 2, 0, 0], tile=3, group=1, last=1)
    assert word & 0xF == 0b1001
    assert (word >> 4) & 0xFFFF == 0xFFFF and (word >> 20) & 0xFFFF == 2
    assert (word >> 68) & 0xFFFF == 3 and (word >> 84) & 7 == 0b011
    back = out.unpack(word)
    assert back["values"].tolist() == [-1, 2, 0, 0] and back["readout"] == 0


@pytest.mark.parametrize("cfg", CFGS[:2], ids=lambda c: c.name)
def test_manifest_layout_matches_contract(cfg):
    from gen.emit import build_manifest
    lays = layouts_from_manifest(build_manifest(cfg), cfg)
    for name, lay in expected_layouts(cfg).items():
        assert lays[name].payload_width == lay.payload_width


def test_manifest_disagreement_is_reported():
    cfg = HwConfig(array=8, groups=2)
    from gen.emit import build_manifest
    man = json.loads(json.dumps(build_manifest(cfg)))
    man["streams"]["cmd"]["fields"]["row"]["offset"] += 1
    with pytest.raises(PayloadError, match=r"cmd\.(row|base)"):
        layouts_from_manifest(man, cfg)


def test_overlapping_fields_rejected():
    from tb.payload import Field
    with pytest.raises(PayloadError, match="overlaps"):
        StreamLayout("x", 8, {"a": Field("a", 0, 4), "b": Field("b", 3, 4)})


# --------------------------------------------------------------- scoreboard
def _beat(cfg, **kw):
    from golden.schedule import Beat
    d = dict(spikes=np.zeros(cfg.slots, np.int64), values=np.zeros(cfg.slots, np.int64),
             tile=0, group=0, last=0, readout=0, layer=2, t=1, sample=0)
    d.update(kw)
    return Beat(**d)


def test_scoreboard_reports_slot_pe_and_repro():
    cfg = HwConfig(array=8, groups=2)
    exp = [_beat(cfg, group=1, last=1, tile=3, values=np.array([0, 5, 0, 0]))]
    sb = Scoreboard(cfg, exp, repro="make sim ARRAY=8 GROUPS=2 SEED=9",
                    layer_names={2: "blk_b"}, layer_modes={2: "chained"})
    got = {"spikes": np.array([0, 1, 0, 0]), "values": np.array([0, 4, 0, 0]), "tile": 3,
           "group": 1, "last": 1, "readout": 0}
    assert not sb.check_beat(got)
    rep = sb.report()
    assert "sample 0, layer 2 'blk_b' (chained), t 1, tile 3, group 1" in rep
    assert "slot 1 (PE 5): spike exp 0 got 1, value exp 5 got 4" in rep
    assert "make sim ARRAY=8 GROUPS=2 SEED=9" in rep


def test_scoreboard_counts_and_passes_equal_beats():
    cfg = HwConfig(array=8, groups=2)
    exp = [_beat(cfg, group=g, last=int(g == 1)) for g in range(2)]
    sb = Scoreboard(cfg, exp)
    for b in exp:
        assert sb.check_beat({"spikes": b.spikes, "values": b.values, "tile": b.wire_tile,
                              "group": b.group, "last": b.last, "readout": b.readout})
    sb.missing_beats()
    assert sb.ok and sb.counts()["beats"] == 2 and sb.counts()["spikes"] == 8


def test_scoreboard_missing_extra_and_membrane():
    cfg = HwConfig(array=8, groups=2)
    sb = Scoreboard(cfg, [_beat(cfg)])
    sb.missing_beats()
    assert "1 expected beat(s) never arrived" in sb.report()
    sb2 = Scoreboard(cfg, [])
    sb2.check_beat({"tile": 0, "group": 0, "last": 0})
    assert "unexpected extra beat" in sb2.report()
    from golden.schedule import TimestepEnd
    te = TimestepEnd(1, 2, {5: np.array([1, 2, 3, 4])})
    sb3 = Scoreboard(cfg, [])
    assert not sb3.check_membrane(te, 5, np.array([1, 2, XVAL, 4]))
    assert "membrane row 5 after sample 1, t 2" in sb3.report()
    assert "slot 2: exp 3 got X" in sb3.report()



def test_scoreboard_unresolved_is_one_line_with_repro():
    cfg = HwConfig(array=8, groups=2)
    sb = Scoreboard(cfg, [_beat(cfg)], repro="make sim ARRAY=8 GROUPS=2 SEED=9")
    sb.unresolved("X/Z on output busy=X at cycle 40 (operation 7 of 30)")
    assert not sb.ok and sb.unresolved_text.startswith("X/Z on output busy=X")
    assert sb.report() == ("X/Z on output busy=X at cycle 40 (operation 7 of 30); "
                           "reproduce: make sim ARRAY=8 GROUPS=2 SEED=9")
    sb2 = Scoreboard(cfg, [])
    sb2.check_beat({"tile": 0, "group": 0, "last": 0})
    sb2.unresolved("X/Z on output out__valid=Z at cycle 9 (operation 1 of 2)")
    lines = sb2.report().splitlines()
    assert lines[0].startswith("X/Z on output out__valid=Z at cycle 9")
    assert "earlier: 1 mismatch(es)" in lines[1] and "unexpected extra beat" in lines[2]


# ----------------------------------------------------------------- stimulus
@pytest.mark.parametrize("cfg", CFGS, ids=lambda c: c.name)
@pytest.mark.parametrize("share", [True, False])
def test_network_covers_features(cfg, share):
    net = make_network(cfg, seed=4, layer_share=share)
    modes = [l.mode for l in net.layers]
    assert {"chained", "independent", "readout"} <= set(modes)
    assert {"linear", "conv"} <= {l.kind for l in net.layers}
    blocks = [b for b in net.blocks() if len(b) > 1]
    assert (len(blocks) == 1 and len(blocks[0]) == 2) if share else not blocks
    tiles = [layer_tiles(cfg, l, m) for l, m in zip(net.layers, choose_mappings(cfg, net.layers))]
    assert max(tiles) >= 2, tiles
    assert make_network(cfg, seed=4, layer_share=share).layers[1].weight.tobytes() == \
        net.layers[1].weight.tobytes()  # seeded


def test_partial_tile_present():
    cfg = HwConfig(array=32, groups=4)
    net = make_network(cfg, seed=1)
    from golden.schedule import plan_allocation
    alloc = plan_allocation(cfg, net)
    assert any((tp[-1].pe_neurons < 0).any() for tp in alloc.tiles.values())


def test_spike_densities():
    net = make_network(HwConfig(array=8, groups=2), seed=1)
    sp = make_spikes(net, seed=1, samples=3, timesteps=20)
    dens = sp.reshape(3, -1).mean(axis=1)
    assert np.allclose(dens, DENSITIES, atol=0.08), dens


def test_narrow_config_saturates_in_golden_model():
    """The saturating sample must drive U to both ends of the membrane range."""
    cfg = HwConfig(array=16, groups=4, acc_width=10, mem_width=11, theta_int=200,
                   fire="ge", leak_int=192)
    net = make_network(cfg, seed=3)
    sched = build_schedule(cfg, net, make_spikes(net, 3, 3, 3))
    vals = np.concatenate([b.values for it in sched.items if hasattr(it, "beats")
                           for b in it.beats if not b.readout])
    assert (vals == cfg.mem_max).any() and (vals == cfg.mem_min).any()


def test_unfit_config_is_a_clear_error():
    with pytest.raises(StimulusError, match="no test network fits"):
        make_network(HwConfig(array=128, groups=128), seed=1)


# ---------------------------------------------------------------- mutations
def test_mutation_not_found_is_an_error():
    from tb.mutations import MUTATIONS, MutationNotFound
    with pytest.raises(MutationNotFound, match="matched 0 time"):
        MUTATIONS[0].apply("module x; endmodule", 4)


# ------------------------------------------------------------------ options
@pytest.mark.parametrize("args,msg", [
    (["--groups", "3", "--array", "8"], "must divide array"),
    (["--sim", "modelsim"], "invalid choice"),
    (["--layer-share", "2"], "LAYER_SHARE must be 0 or 1"),
    (["-T", "0"], "T must be an integer from 1 to 256"),
    (["--seed", "x"], "SEED must be a non-negative integer"),
    (["--cfg", "acc_width=wide"], "expected an integer"),
])
def test_bad_options_exit_2_with_one_line(args, msg):
    p = subprocess.run([sys.executable, "-m", "tb.sim", *args], capture_output=True, text=True)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and msg in lines[0], p.stderr
