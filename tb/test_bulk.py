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
    assert any(k == 1 for k, _ in ops) and any(k == 2 for k, _ in ops)


def test_ports_vlt_names_every_port_and_nothing_else():
    from tb.build import ports_vlt
    text = ports_vlt("lif_pe_array", ["clk", "out__payload"])
    lines = text.splitlines()
    assert lines[0] == "`verilator_config"
    assert [ln for ln in lines if ln.startswith("public")] == [
        'public_flat_rw -module "lif_pe_array" -var "clk"',
        'public_flat_rw -module "lif_pe_array" -var "out__payload"']
