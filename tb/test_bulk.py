"""Tests of the fast co-simulation pieces.

* vectorised payload packing (:meth:`tb.payload.StreamLayout.pack_rows`,
  :func:`tb.bfm.flatten`) against the scalar packer
  (:meth:`StreamLayout.pack`, :func:`tb.bfm.flatten_scalar`) on random
  payloads of the document-derived layouts (:func:`tb.payload.expected_layouts`);
* the ports-only Verilator visibility file (:func:`tb.build.ports_vlt`).

No simulator is needed for these.
"""

from __future__ import annotations

import numpy as np
import pytest

from golden.config import HwConfig
from tb.payload import Field, PayloadError, StreamLayout, expected_layouts

CONFIGS = [dict(array=8, groups=2), dict(array=32, groups=4, weight_width=4),
           dict(array=16, groups=4, acc_width=10, mem_width=11, weight_width=5),
           dict(array=128, groups=4)]


def _random_columns(lay: StreamLayout, n: int, rng) -> dict:
    cols = {}
    for f in lay.fields.values():
        ew = f.elem_width if f.is_vector else f.width
        lo, hi = (-(1 << (ew - 1)), (1 << (ew - 1)) - 1) if f.signed else (0, (1 << ew) - 1)
        shape = (n, f.count) if f.is_vector else (n,)
        v = rng.integers(lo, hi + 1, size=shape, dtype=np.int64)
        # make the extremes certain to occur
        v.reshape(-1)[:2] = (lo, hi)
        cols[f.name] = v
    return cols


@pytest.mark.parametrize("kw", CONFIGS, ids=lambda kw: f"A{kw['array']}-G{kw['groups']}")
@pytest.mark.parametrize("stream", ["cmd", "wload", "out"])
def test_pack_rows_equals_scalar_pack(kw, stream):
    lay = expected_layouts(HwConfig(**kw))[stream]
    rng = np.random.default_rng([len(stream), kw["array"], kw["groups"]])
    n = 37
    cols = _random_columns(lay, n, rng)
    got = lay.pack_rows(n, **cols)
    exp = [lay.pack(**{k: v[i] for k, v in cols.items()}) for i in range(n)]
    assert got == exp
    # and it round-trips through the scalar unpacker
    back = lay.unpack(got[5])
    for k, v in cols.items():
        assert np.array_equal(np.asarray(back[k]), v[5]), k


def test_pack_rows_missing_and_broadcast_fields():
    lay = expected_layouts(HwConfig(array=8, groups=2))["cmd"]
    got = lay.pack_rows(4, op=np.array([0, 1, 2, 3]), first=1)
    assert got == [lay.pack(op=o, first=1) for o in range(4)]


def test_pack_rows_odd_element_width():
    lay = StreamLayout("t", 3 + 7 * 9, {"a": Field("a", 0, 3),
                                         "v": Field("v", 3, 63, 9, 7, True)})
    rng = np.random.default_rng(4)
    cols = {"a": rng.integers(0, 8, 11), "v": rng.integers(-256, 256, (11, 7))}
    assert lay.pack_rows(**cols) == [lay.pack(a=cols["a"][i], v=cols["v"][i]) for i in range(11)]


@pytest.mark.parametrize("bad", [dict(op=np.array([0, 4])), dict(row=np.array([-1, 0]))])
def test_pack_rows_rejects_values_that_do_not_fit(bad):
    lay = expected_layouts(HwConfig(array=8, groups=2))["cmd"]
    with pytest.raises(PayloadError, match=r"row \d+: value = -?\d+ does not fit"):
        lay.pack_rows(2, **bad)


def test_pack_rows_rejects_bad_shapes_and_names():
    lay = expected_layouts(HwConfig(array=8, groups=2))["wload"]
    with pytest.raises(PayloadError, match="expected \\[n, 8\\]"):
        lay.pack_rows(2, data=np.zeros((2, 7), dtype=np.int64))
    with pytest.raises(PayloadError, match="unknown field"):
        lay.pack_rows(2, nope=np.zeros(2))
    with pytest.raises(PayloadError, match=r"element 3 = 128 does not fit 8 signed"):
        d = np.zeros((2, 8), dtype=np.int64)
        d[1, 3] = 128
        lay.pack_rows(2, data=d)


@pytest.mark.parametrize("kw", [dict(array=8, groups=2), dict(array=32, groups=4),
                                dict(array=16, groups=4, weight_rows=32, mem_rows=16)],
                         ids=lambda kw: f"A{kw['array']}-G{kw['groups']}")
def test_flatten_equals_scalar_flatten(kw):
    from golden.schedule import build_schedule
    from tb.bfm import flatten, flatten_scalar
    from tb.stimulus import make_network, make_spikes
    cfg = HwConfig(**kw)
    net = make_network(cfg, 3, True)
    sched = build_schedule(cfg, net, make_spikes(net, 3, 2, 2))
    lay = expected_layouts(cfg)
    ops, beats = flatten(sched, lay)
    ops0, beats0 = flatten_scalar(sched, lay)
    assert len(beats) == len(beats0) and all(a is b for a, b in zip(beats, beats0))
    assert [(k, a if isinstance(a, int) else id(a)) for k, a in ops] == \
        [(k, a if isinstance(a, int) else id(a)) for k, a in ops0]
    assert ops.wl == ops0.wl and ops.wl
    from tb.bfm import CMD, WAITWL
    assert any(k == WAITWL for k, _ in ops) and any(k == CMD for k, _ in ops)


def _fence_oracle(sched):
    """Independent statement of docs/schedule.md "Driving a schedule": per
    weight-load beat the commands that must precede it, and per pass the
    loads that must precede its first command."""
    from golden.schedule import LayerPass
    cmds_through, n = {}, 0
    for i, it in enumerate(sched.items):
        if isinstance(it, LayerPass):
            n += len(it.commands)
            cmds_through[i] = n
    fences = [0] * len(sched.static_weight_loads)
    need = []            # (commands before the pass, loads before its first command)
    nc = 0
    for it in sched.items:
        if isinstance(it, LayerPass):
            f = cmds_through[it.loads_after] if it.loads_after >= 0 else 0
            fences += [max([f] + fences)] * len(it.weight_loads)
            need.append((nc, len(fences)))
            nc += len(it.commands)
    return fences, need


@pytest.mark.parametrize("kw", [dict(array=32, groups=4), dict(array=8, groups=2, weight_rows=64),
                                dict(array=8, groups=2)], ids=["A32", "A8-wr64", "A8-static"])
def test_flatten_fences_follow_the_schedule(kw):
    """Every weight-load beat's fence and every WAITWL equal the rules of
    docs/schedule.md; a command is never preceded by fewer loads than its
    pass needs; ``ignore_loads_after`` drops exactly the fences."""
    from golden.schedule import build_schedule
    from tb.bfm import CMD, WAITWL, ScheduleError, flatten
    from tb.stimulus import make_network, make_spikes
    cfg = HwConfig(**kw)
    net = make_network(cfg, 3, True)
    sched = build_schedule(cfg, net, make_spikes(net, 3, 2, 2))
    lay = expected_layouts(cfg)
    ops, _ = flatten(sched, lay)
    fences, need = _fence_oracle(sched)
    assert [f for _, f in ops.wl] == fences
    # replay the main stream: the loads waited for before each pass's first command
    waited, nc, k, seen = 0, 0, 0, []
    for kind, a in ops:
        if kind == WAITWL:
            waited = a
        elif kind == CMD:
            if k < len(need) and nc == need[k][0]:
                seen.append(waited)
                k += 1
                while k < len(need) and need[k][0] == nc:   # passes without commands
                    seen.append(waited)
                    k += 1
            nc += 1
    assert seen == [w for _, w in need][:len(seen)] and len(seen) == len(need)
    if sched.allocation.weights == "streamed":
        # fenced, and some pass's loads may start before the previous pass's commands
        assert max(fences) > 0 and any(fences[w - 1] < nc0 for nc0, w in need[1:])
    bad, _ = flatten(sched, lay, "ignore_loads_after")
    assert [f for _, f in bad.wl] == [0] * len(fences) and list(bad) == list(ops)
    from golden.schedule import LayerPass
    i = next((i for i, it in enumerate(sched.items)
              if isinstance(it, LayerPass) and it.weight_loads), None)
    if i is None:
        return
    with pytest.raises(ScheduleError, match="not an earlier LayerPass"):
        items = list(sched.items)
        items[i] = items[i]._replace(loads_after=i)
        flatten(sched._replace(items=items), lay)


def test_ports_vlt_names_every_port_and_nothing_else():
    from tb.build import ports_vlt
    text = ports_vlt("lif_pe_array", ["clk", "out__payload"])
    lines = text.splitlines()
    assert lines[0] == "`verilator_config"
    assert [ln for ln in lines if ln.startswith("public")] == [
        'public_flat_rw -module "lif_pe_array" -var "clk"',
        'public_flat_rw -module "lif_pe_array" -var "out__payload"']


# --------------------------------------------------------------------------
# bulk path: program compilation, hex files, decoding, generated top
# --------------------------------------------------------------------------

def _small_program(stress=True, **kw):
    from golden.schedule import build_schedule
    from tb.bfm import flatten
    from tb.bulk import compile_program
    from tb.stimulus import make_network, make_spikes
    cfg = HwConfig(**(kw or dict(array=8, groups=2)))
    net = make_network(cfg, 2, True)
    sched = build_schedule(cfg, net, make_spikes(net, 2, 2, 2))
    lay = expected_layouts(cfg)
    ops, beats = flatten(sched, lay)
    return cfg, lay, ops, compile_program(ops, 2, stress)


def _parse_ops_hex(text: str):
    words = [int(ln, 16) for ln in text.split()]
    return [(w & 7, (w >> 3) & 0xFFFFFFFF, w >> 35) for w in words]


def test_program_words_decode_to_the_flattened_operations():
    """Independent decoding of the hex words (document layout of tb/bulk_top.py)
    gives back every BFM operation: weight loads through the table, commands
    with their payload, read-back rows in order, END last."""
    from tb.bfm import CMD, IDLE, RB, WAITWL
    from tb.bulk import ops_hex, wq_bin, wt_hex
    cfg, lay, ops, prog = _small_program(stress=True, array=16, groups=4, weight_rows=32,
                                         mem_rows=16)
    words = _parse_ops_hex(ops_hex(prog, 0, prog.kind.size))
    wl_width = lay["wload"].payload_width
    table = [int(ln, 16) for ln in wt_hex(prog, wl_width).split()]
    assert len(table) == len(set(table)) and all(len(ln) == (wl_width + 3) // 4
                                                  for ln in wt_hex(prog, wl_width).split())
    # the weight-load queue: 8 bytes per beat, index << 32 | fence
    q = wq_bin(prog, 0, len(ops.wl))
    entries = [int.from_bytes(q[i:i + 8], "big") for i in range(0, len(q), 8)]
    assert [(table[e >> 32], e & 0xFFFFFFFF) for e in entries] == ops.wl
    assert words[-1][0] == 0
    it = iter(words[:-1])
    gaps = 0
    for k, a in ops:
        if k == RB:
            for r in sorted(a.membrane):
                assert next(it)[:2] == (4, r)
            continue
        kind, arg, pl = next(it)
        if k == IDLE:
            assert (kind, arg) == (1, a)
        elif k == WAITWL:
            assert (kind, arg) == (5, a)
        elif k == CMD:
            assert kind == 3 and pl == a and 0 <= arg <= 6
            gaps += arg > 0
    assert next(it, None) is None
    n_cmd = sum(k == CMD for k, _ in ops)
    assert 0.1 * n_cmd < gaps < 0.4 * n_cmd, (gaps, n_cmd)
    _, _, _, calm = _small_program(stress=False, array=16, groups=4, weight_rows=32, mem_rows=16)
    assert not calm.arg[calm.kind == 3].any()


def test_blocks_cover_the_program_and_respect_depths():
    from tb.bulk import blocks, wl_window
    from tb.bulk_top import BulkDepths
    _, _, ops, prog = _small_program(array=32, groups=4)
    for d in (BulkDepths(ops=64, wt=4, wq=16, out=256, mem=64), BulkDepths(ops=1 << 15)):
        bl = blocks(prog, d)
        assert bl[0][0] == 0 and bl[-1][1] == prog.kind.size
        assert all(a[1] == b[0] for a, b in zip(bl, bl[1:]))
        assert all(0 < hi - lo <= d.ops - 1 for lo, hi in bl)
        pos, n = 0, len(ops.wl)
        while pos < n:
            lo, hi, ids = wl_window(prog, pos, d)
            assert lo == pos < hi <= min(n, pos + d.wq)
            if ids is None:
                assert len(prog.wt) <= d.wt
            else:
                assert set(prog.wl_idx[lo:hi].tolist()) <= set(ids.tolist()) and ids.size <= d.wt
            pos = hi
    assert blocks(prog, BulkDepths(), stop=10) == [(0, 10)]


def test_decode_words_matches_scalar_unpack():
    from tb.bulk import decode_rows, decode_words
    from tb.payload import XVAL, unpack_bits
    cfg = HwConfig(array=32, groups=4)
    lay = expected_layouts(cfg)["out"]
    rng = np.random.default_rng(9)
    cols = _random_columns(lay, 9, rng)
    words = lay.pack_rows(9, **cols)
    nh = (lay.payload_width + 3) // 4
    got = decode_words([format(w, f"0{nh}x") for w in words], lay)
    for i, g in enumerate(got):
        exp = lay.unpack(words[i])
        assert set(g) == set(exp)
        for k in exp:
            assert np.array_equal(np.asarray(g[k]), np.asarray(exp[k])), (i, k)
    # an X digit (Icarus) poisons exactly the elements it covers
    line = "x" + format(words[0], f"0{nh}x")[1:]
    g = decode_words([line], lay)[0]
    top = max(lay.fields.values(), key=lambda f: f.offset)
    assert g[top.name] == XVAL and np.array_equal(g["spikes"], cols["spikes"][0])
    S, MW = cfg.slots, cfg.mem_width
    row = rng.integers(-(1 << (MW - 1)), 1 << (MW - 1), S)
    from tb.payload import pack_bits
    w = pack_bits(row, MW, True)
    dec = decode_rows([format(w, f"0{(S * MW + 3) // 4}x")], S, MW)[0]
    assert np.array_equal(dec, row) and np.array_equal(unpack_bits(w, S, MW, True), row)


def test_bulk_top_is_generated_from_the_manifest_widths():
    from tb.bulk_top import TOP, bulk_top_ports, bulk_top_verilog
    cfg = HwConfig(array=8, groups=2)
    lay = expected_layouts(cfg)
    manifest = {"top": "lif_pe_array", "ports": [
        {"name": "clk", "dir": "in", "width": 1}, {"name": "rst", "dir": "in", "width": 1},
        {"name": "cmd__valid", "dir": "in", "width": 1}, {"name": "cmd__ready", "dir": "out", "width": 1},
        {"name": "cmd__payload", "dir": "in", "width": lay["cmd"].payload_width},
        {"name": "out__valid", "dir": "out", "width": 1}, {"name": "out__ready", "dir": "in", "width": 1},
        {"name": "out__payload", "dir": "out", "width": lay["out"].payload_width},
        {"name": "wload__valid", "dir": "in", "width": 1},
        {"name": "wload__ready", "dir": "out", "width": 1},
        {"name": "wload__payload", "dir": "in", "width": lay["wload"].payload_width},
        {"name": "dbg_addr", "dir": "in", "width": cfg.mem_addr_width},
        {"name": "dbg_data", "dir": "out", "width": cfg.slots * cfg.mem_width},
        {"name": "busy", "dir": "out", "width": 1}, {"name": "error", "dir": "out", "width": 3}]}
    text = bulk_top_verilog(manifest)
    assert f"module {TOP} (" in text and "lif_pe_array dut (" in text
    assert f"reg  [{lay['wload'].payload_width - 1}:0] d_wload__payload;" in text
    assert f"wire [{lay['out'].payload_width - 1}:0] d_out__payload;" in text
    for port in bulk_top_ports(manifest):
        assert f" {port}," in text or f" {port}\n" in text, port
    with pytest.raises(ValueError, match="lacks port"):
        bulk_top_verilog(dict(manifest, ports=manifest["ports"][:-1]))


@pytest.mark.parametrize("sp", [0, 64])
def test_bulk_top_passes_verilator_lint(tmp_path, sp):
    """``verilator --lint-only -Wall`` with the generator's waiver file on the
    emitted core + generated top (the same waivers as the core; no others),
    without and with the spill/fill engine (``sp``)."""
    import dataclasses
    import json
    from gen.lint import verilator_lint
    from tb.build import emit_rtl
    from tb.bulk_top import TOP, depths_for, write_bulk_top
    cfg = HwConfig(array=8, groups=2)
    v, m = emit_rtl(cfg)
    mf = json.loads(m.read_text())
    top = write_bulk_top(mf, tmp_path, dataclasses.replace(depths_for(mf), sp=sp))
    both = tmp_path / "both.v"
    both.write_text(v.read_text() + "\n" + top.read_text())
    ok, log = verilator_lint(both, top=TOP)
    assert ok, log


def test_scoreboard_check_beats_equals_check_beat():
    """The vectorised Scoreboard.check_beats gives the same counts, coverage
    and report as check_beat one beat at a time, with mismatches, a
    duplicated beat and an extra beat."""
    from golden.schedule import build_schedule
    from tb.bfm import flatten
    from tb.scoreboard import Scoreboard
    from tb.stimulus import make_network, make_spikes
    cfg = HwConfig(array=8, groups=2)
    net = make_network(cfg, 4, True)
    sched = build_schedule(cfg, net, make_spikes(net, 4, 1, 2))
    _, beats = flatten(sched, expected_layouts(cfg))
    got = [{"spikes": b.spikes.copy(), "values": b.values.copy(), "tile": b.wire_tile,
            "group": b.group, "last": b.last, "readout": b.readout} for b in beats]
    got[3]["values"][1] += 1
    got[7]["tile"] += 1
    got[9] = dict(got[8])
    got.append(dict(got[-1]))
    one, many = Scoreboard(cfg, beats, repro="r"), Scoreboard(cfg, beats, repro="r")
    for g in got:
        one.check_beat(g)
    cols = {k: np.array([g[k] for g in got]) for k in got[0]}
    half = len(got) // 2
    many.check_beats({k: v[:half] for k, v in cols.items()})
    many.check_beats({k: v[half:] for k, v in cols.items()})
    assert not one.ok and one.counts() == many.counts()
    assert one.report() == many.report()
    assert "duplicated?" in one.report() and "extra beat" in one.report()


def test_binary_files_hold_the_hex_words():
    """The $fread files hold the same words as the $readmemh texts (MSB first)."""
    from tb.bulk import ops_bin, ops_hex, wt_bin, wt_hex
    cfg, lay, ops, prog = _small_program()
    n = prog.kind.size
    b = ops_bin(prog, 0, n)
    assert [int.from_bytes(b[i:i + 16], "big") for i in range(0, len(b), 16)] == \
        [int(x, 16) for x in ops_hex(prog, 0, n).split()]
    W = lay["wload"].payload_width
    nb = (W + 7) // 8
    b = wt_bin(prog, W)
    assert [int.from_bytes(b[i:i + nb], "big") for i in range(0, len(b), nb)] == \
        [int(x, 16) for x in wt_hex(prog, W).split()] == prog.wt


def test_narrow_operation_words_hold_the_same_operations():
    """With a command payload that fits, the words are 64 bits (8 bytes in the
    $fread file) and decode to the same kind/arg/payload as 128-bit words;
    a payload too wide for them is refused."""
    import dataclasses

    from tb.bulk import ops_bin, ops_hex
    from tb.bulk_top import op_width
    cfg, lay, ops, prog = _small_program()
    cw = lay["cmd"].payload_width
    assert op_width(cw) == 64 and op_width(29) == 64 and op_width(30) == 128
    narrow = dataclasses.replace(prog, opw=64)
    n = prog.kind.size
    assert _parse_ops_hex(ops_hex(narrow, 0, n)) == _parse_ops_hex(ops_hex(prog, 0, n))
    b = ops_bin(narrow, 0, n)
    assert len(b) == 8 * (n + 1)
    assert [int.from_bytes(b[i:i + 8], "big") for i in range(0, len(b), 8)] == \
        [int(x, 16) for x in ops_hex(prog, 0, n).split()]
    wide = dataclasses.replace(narrow, pl=np.where(narrow.kind == 3, 1 << 40, 0))
    with pytest.raises(ValueError, match="too wide"):
        ops_bin(wide, 0, n)


def test_scoreboard_check_membranes_equals_check_membrane():
    """The vectorised Scoreboard.check_membranes gives the same counts,
    coverage and report as check_membrane one row at a time, with bad rows."""
    from golden.schedule import TimestepEnd, build_schedule
    from tb.scoreboard import Scoreboard
    from tb.stimulus import make_network, make_spikes
    cfg = HwConfig(array=8, groups=2)
    net = make_network(cfg, 4, True)
    sched = build_schedule(cfg, net, make_spikes(net, 4, 1, 2))
    rows = [(te, r) for te in sched.items if isinstance(te, TimestepEnd)
            for r in sorted(te.membrane)]
    got = np.stack([np.asarray(te.membrane[r]) for te, r in rows]).copy()
    got[2, 1] += 1
    got[-1, :] = cfg.mem_max
    one, many = Scoreboard(cfg, [], repro="r"), Scoreboard(cfg, [], repro="r")
    for (te, r), g in zip(rows, got):
        one.check_membrane(te, r, g)
    half = len(rows) // 2
    assert many.check_membranes(rows[:half], got[:half]) == 1
    assert many.check_membranes(rows[half:], got[half:]) == 1
    assert many.check_membranes([], got[:0]) == 0
    assert not one.ok and one.counts() == many.counts()
    assert one.report() == many.report() and "membrane row" in one.report()


def test_bulk_top_spill_engine_only_when_asked():
    """A top for a resident network (BulkDepths.sp = 0) has no spill/fill
    engine (mfill tied off, mspill ready high: no per-cycle cost); with sp > 0
    it has the capture memory, the fill queue and their ports."""
    import dataclasses
    from gen.emit import build_manifest
    from tb.bulk_top import SPILL_PORTS, bulk_top_ports, bulk_top_verilog, depths_for
    m = build_manifest(HwConfig(array=8, groups=2, mem_rows=16))
    d0 = depths_for(m)
    d1 = dataclasses.replace(d0, sp=32)
    v0, v1 = bulk_top_verilog(m, d0), bulk_top_verilog(m, d1)
    assert ".mfill__valid(1'b0)" in v0 and ".mspill__ready(1'b1)" in v0
    assert "cap_sp" not in v0 and "fq_mem" not in v0 and "K_WAITMF" not in v0
    assert "reg [63:0] fq_mem [0:31];" in v1 and ".mfill__valid(d_mfill__valid)" in v1
    assert not set(SPILL_PORTS) & set(bulk_top_ports(m, d0))
    assert set(SPILL_PORTS) <= set(bulk_top_ports(m, d1))
