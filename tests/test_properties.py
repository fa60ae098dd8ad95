"""Property-based tests (hypothesis) of everything the project reads from a user.

* :class:`golden.config.HwConfig` (constructor, ``from_real``, ``from_dict``):
  any input either builds a configuration whose documented invariants hold, or
  raises :class:`ConfigError` -- never another exception;
* ``python -m gen.emit`` (``gen.emit.main(argv)``, in process): any
  combination of options either succeeds or exits with status 2 and exactly
  one ``error: ...`` line on stderr, no traceback, and nothing written to the
  output folder. A few small valid configurations go all the way through
  emission and Verilator lint;
* network files (:func:`golden.network.load_network`): truncated, bit-flipped,
  re-packed with missing / mistyped arrays or a mutated JSON description --
  either a :class:`Network` or exactly one :class:`NetworkError` with a
  one-line message.

Most examples stay on the cheap validation paths; ``deadline=None`` because
the machine is shared. ``PROPERTY_SCALE=20 pytest tests/test_properties.py``
multiplies the example counts of the cheap properties (not the lint one).
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from golden.config import (FIRE_MODES, MAX_ARRAY, MAX_LEAK_BITS, MAX_ROWS, MAX_WIDTH,
                           RESET_MODES, ConfigError, HwConfig)
from golden.network import Layer, Network, NetworkError, load_network, save_network

FIELDS = list(HwConfig().to_dict())
#: multiplies max_examples of the cheap properties (environment PROPERTY_SCALE)
SCALE = max(1, int(os.environ.get("PROPERTY_SCALE", "1") or 1))

# Values a user (or a JSON file) might put in a field: mostly plausible
# integers around the limits, sometimes nonsense.
junk = st.one_of(st.none(), st.booleans(), st.floats(allow_nan=True), st.text(max_size=4),
                 st.lists(st.integers(), max_size=2), st.just(2 ** 70), st.just(-(2 ** 70)))
plausible_int = st.one_of(st.integers(-3, 40), st.sampled_from([64, 127, 128, 255, 256, 257,
                                                               4095, 4096, 4097, 65536, 65537]))


def _field_value(name):
    if name in ("reset", "fire"):
        return st.one_of(st.sampled_from(RESET_MODES + FIRE_MODES), st.text(max_size=5), junk)
    return st.one_of(plausible_int, plausible_int, plausible_int, junk)


config_kwargs = st.fixed_dictionaries({}, optional={f: _field_value(f) for f in FIELDS})


def check_invariants(cfg: HwConfig) -> None:
    """What every successfully built HwConfig must satisfy (docs/fixed-point.md F1-F6)."""
    assert 1 <= cfg.groups <= cfg.array <= MAX_ARRAY and cfg.array % cfg.groups == 0
    assert cfg.lif_units * cfg.groups == cfg.array
    assert 2 <= cfg.weight_width <= cfg.acc_width <= MAX_WIDTH
    assert 2 <= cfg.mem_width <= MAX_WIDTH and 0 <= cfg.frac_bits < cfg.mem_width
    assert 1 <= cfg.leak_bits <= MAX_LEAK_BITS
    assert 0 < cfg.leak <= 1
    assert cfg.reset in RESET_MODES and cfg.fire in FIRE_MODES
    # θ is reachable by a saturating membrane and is at least one LSB (F5)
    assert 1 <= cfg.theta_int <= cfg.mem_max
    assert cfg.theta_int < cfg.mem_max or cfg.fire == "ge"
    assert 1 <= cfg.weight_rows <= MAX_ROWS and 1 <= cfg.mem_rows <= MAX_ROWS
    # F3: the leak never grows |V| and fits mem_width; F6: soft reset cannot overflow
    for v in (cfg.mem_min, cfg.mem_max, -1, 0, 1):
        lv = (v * cfg.leak_int + (1 << (cfg.leak_bits - 1))) >> cfg.leak_bits
        assert cfg.mem_min <= lv <= cfg.mem_max and abs(lv) <= abs(v)
    assert 0 <= cfg.mem_max - cfg.theta_int
    # derived widths are consistent
    assert (1 << cfg.weight_addr_width) >= cfg.weight_rows
    assert (1 << cfg.mem_addr_width) >= cfg.mem_rows
    assert (1 << cfg.group_width) >= cfg.groups
    # serialisation round trip
    assert HwConfig.from_dict(json.loads(cfg.to_json())) == cfg
    assert cfg.replace() == cfg


def _one_line(msg: str) -> bool:
    return bool(msg.strip()) and "\n" not in msg.strip() and "Traceback" not in msg


# ---------------------------------------------------------------- HwConfig
@settings(max_examples=400 * SCALE, deadline=None)
@given(config_kwargs)
def test_hwconfig_valid_or_config_error(kw):
    try:
        cfg = HwConfig(**kw)
    except ConfigError as e:
        assert _one_line(str(e)), repr(str(e))
        # the message names the field it is about
        assert any(str(e).startswith(f) for f in FIELDS), str(e)
        return
    check_invariants(cfg)


@settings(max_examples=300 * SCALE, deadline=None)
@given(st.builds(dict, array=st.sampled_from([1, 2, 4, 8, 12, 128]),
                 groups=st.sampled_from([1, 2, 3, 4, 8]),
                 mem_width=st.integers(2, 34), frac_bits=st.integers(-1, 34),
                 leak_bits=st.integers(-1, 18), fire=st.sampled_from(FIRE_MODES)),
       st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                 st.floats(0, 1), st.sampled_from([1.0, 0.5, 0.25, 2 ** -16, 1e308, -1e308,
                                                   1e-320, 0.0, -0.0])),
       st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                 st.floats(0, 1e6), st.sampled_from([1.0, 2 ** -8, 127.5, 1e308, 5e-324])))
def test_hwconfig_from_real_valid_or_config_error(kw, leak, theta):
    """Real-valued λ and θ: exact -> a valid config, otherwise one ConfigError."""
    try:
        cfg = HwConfig.from_real(leak=leak, theta=theta, **kw)
    except ConfigError as e:
        assert _one_line(str(e)), repr(str(e))
        return
    check_invariants(cfg)
    assert cfg.leak == leak and cfg.theta == theta


@pytest.mark.parametrize("value", [1e308, -1e308, 1e300])
def test_hwconfig_from_real_huge_leak_is_config_error(value):
    """Regression: a leak so large that ``leak * 2**leak_bits`` overflows to inf
    used to raise OverflowError (and ``python -m gen.emit --leak 1e308`` showed a
    traceback) instead of a ConfigError."""
    with pytest.raises(ConfigError, match="leak"):
        HwConfig.from_real(leak=value, theta=1.0, leak_bits=16)


@settings(max_examples=200 * SCALE, deadline=None)
# (unknown names are echoed unquoted in the message, so they are kept to one line here)
@given(st.dictionaries(st.one_of(st.sampled_from(FIELDS),
                                 st.text(st.characters(blacklist_categories=("Cc", "Zl", "Zp")),
                                         max_size=6)),
                       st.one_of(plausible_int, junk), max_size=6))
def test_hwconfig_from_dict_valid_or_config_error(d):
    try:
        cfg = HwConfig.from_dict(d)
    except ConfigError as e:
        assert _one_line(str(e)), repr(str(e))
        return
    check_invariants(cfg)


# ----------------------------------------------------------- gen.emit CLI
INT_OPTS = ["--array", "--groups", "--weight-width", "--acc-width", "--mem-width",
            "--frac-bits", "--leak-bits", "--weight-rows", "--mem-rows"]
bad_text = st.sampled_from(["", "x", "1.5", "0x10", "1e3", " 3", "--", "-", "nan", "inf",
                            "9" * 5000, "\u0663", "3 4"])
int_text = st.one_of(plausible_int.map(str), plausible_int.map(str), bad_text)
real_text = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["0.25", "1", "0.5", "1.0", "0", "-0.25", "1e308", "-1e308", "1e-320",
                     "0.1", "255.99609375", "128", "1/4", "", "x"]))


#: plausible values per option (the "mostly valid" half of the examples)
GOOD = {"--array": ["4", "8", "32", "128"], "--groups": ["1", "2", "4"],
        "--weight-width": ["2", "4", "8"], "--acc-width": ["8", "12", "16", "20"],
        "--mem-width": ["10", "12", "16", "20"], "--frac-bits": ["0", "4", "8"],
        "--leak-bits": ["1", "4", "8", "10"], "--weight-rows": ["1", "3", "16", "256"],
        "--mem-rows": ["1", "5", "8", "64"], "--leak": ["0.25", "0.5", "1", "0.75"],
        "--theta": ["1", "0.5", "2", "0.25"]}
SMALL = {"--array": ["1", "2", "4", "8"], "--weight-rows": ["1", "3", "16"],
         "--mem-rows": ["1", "2", "8"]}


def _opt_pairs(draw, small: bool):
    argv = []
    plausible = draw(st.booleans())
    for opt in INT_OPTS + ["--leak", "--theta"]:
        if not draw(st.booleans()):
            continue
        if small and opt in SMALL:
            v = draw(st.one_of(st.sampled_from(SMALL[opt]), bad_text) if not plausible
                     else st.sampled_from(SMALL[opt]))
        elif plausible:
            v = draw(st.sampled_from(GOOD[opt]))
        else:
            v = draw(real_text if opt in ("--leak", "--theta") else int_text)
        if opt in ("--leak", "--theta") or not draw(st.integers(0, 3)):
            argv += [f"{opt}={v}"]   # '=' form: values may start with '-'
        else:
            argv += [opt, v]
    for opt, choices in (("--reset", RESET_MODES), ("--fire", FIRE_MODES)):
        if draw(st.booleans()):
            argv += [opt, draw(st.one_of(st.sampled_from(choices), st.text(max_size=4)))]
    if draw(st.integers(0, 4)) == 0:
        argv += ["--top", draw(st.one_of(
            st.sampled_from(["lif_pe_array", "core1", "module", "clk", "1abc", "a b", "_x",
                             "x" * 64, "ü", ""]),
            st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)))]
    if draw(st.integers(0, 6)) == 0:
        argv += [draw(st.sampled_from(["--bogus", "--array", "-q", "extra", "--groups=",
                                       "--verilog=1", "--out-dir"]))]
    return argv


@st.composite
def emit_argv(draw):
    """(argv without --out-dir, with_verilog). With --verilog the shape is kept
    small so a valid draw costs one small elaboration, never a big one."""
    verilog = draw(st.integers(0, 4)) == 0
    argv = _opt_pairs(draw, small=verilog)
    if verilog:
        argv.insert(draw(st.integers(0, len(argv))), "--verilog")
        # a valid --verilog draw must not default to ARRAY=128 / 256 rows
        for opt, v in (("--array", "8"), ("--weight-rows", "16"), ("--mem-rows", "8")):
            if not any(a == opt or a.startswith(opt + "=") for a in argv):
                argv += [opt, v]
    return argv, verilog


def run_emit_main(argv):
    """gen.emit.main(argv) in process -> (status, stdout, stderr)."""
    from gen.emit import main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    return rc, out.getvalue(), err.getvalue()


def _listing(d: Path) -> list:
    return sorted(str(p.relative_to(d)) for p in d.rglob("*"))


@settings(max_examples=250 * SCALE, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(emit_argv())
def test_emit_cli_success_or_one_error_line(case):
    argv, verilog = case
    with tempfile.TemporaryDirectory(prefix="prop-emit-") as tmp:
        out_dir = Path(tmp) / "out"
        rc, out, err = run_emit_main(argv + ["--out-dir", str(out_dir)])
        assert rc in (0, 2), (argv, rc, err)
        event(f"status {rc}" + (" with --verilog" if verilog else ""))
        assert "Traceback" not in err and "Traceback" not in out, err
        if rc == 2:
            lines = err.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("python -m gen.emit: error: "), (argv, err)
            assert not out_dir.exists() or _listing(out_dir) == [], _listing(out_dir)
            return
        assert err == "", err
        if verilog and "--verilog" in argv:
            files = _listing(out_dir)
            top = next((a.split("=", 1)[1] if "=" in a else argv[i + 1]
                        for i, a in enumerate(argv) if a.startswith("--top")), "lif_pe_array")
            assert files == sorted([f"{top}.json", f"{top}.v"]), files
            manifest = json.loads((out_dir / f"{top}.json").read_text())
            check_invariants(HwConfig.from_dict(manifest["config"]))
        else:
            # without --verilog: the manifest on stdout, nothing on disk
            assert not out_dir.exists()
            manifest = json.loads(out)
            check_invariants(HwConfig.from_dict(manifest["config"]))


def test_emit_cli_huge_leak_is_one_error_line(tmp_path):
    """Regression for the OverflowError of HwConfig.from_real (see above)."""
    rc, out, err = run_emit_main(["--leak", "1e308", "--out-dir", str(tmp_path / "o")])
    assert rc == 2 and err.startswith("python -m gen.emit: error: --leak") and len(err.strip().splitlines()) == 1, err


small_valid_cfg = st.builds(
    dict,
    ag=st.sampled_from([(1, 1), (2, 2), (4, 1), (4, 4), (6, 3), (8, 2), (12, 4), (16, 8)]),
    weight_width=st.integers(2, 8), extra_acc=st.integers(0, 6), mem_width=st.integers(3, 20),
    leak_bits=st.integers(1, 16), reset=st.sampled_from(RESET_MODES),
    fire=st.sampled_from(FIRE_MODES), weight_rows=st.integers(1, 20), mem_rows=st.integers(1, 9),
    leak_frac=st.floats(0, 1), theta_frac=st.floats(0, 1))


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(p=small_valid_cfg)
def test_emit_small_random_configs_lint_clean(p):
    """A few random *valid* small builds go all the way: CLI -> Verilog -> Verilator lint."""
    from gen.lint import verilator_lint
    a, g = p["ag"]
    mw = p["mem_width"]
    lb = p["leak_bits"]
    leak_int = max(1, round(p["leak_frac"] * (1 << lb)))
    top = (1 << (mw - 1)) - (1 if p["fire"] == "ge" else 2)
    assume(top >= 1)
    theta_int = max(1, round(p["theta_frac"] * top))
    frac = min(mw - 1, 4)
    argv = ["--verilog", "--array", str(a), "--groups", str(g),
            "--weight-width", str(p["weight_width"]),
            "--acc-width", str(p["weight_width"] + p["extra_acc"]),
            "--mem-width", str(mw), "--frac-bits", str(frac), "--leak-bits", str(lb),
            "--leak", repr(leak_int / (1 << lb)), "--theta", repr(theta_int / (1 << frac)),
            "--reset", p["reset"], "--fire", p["fire"],
            "--weight-rows", str(p["weight_rows"]), "--mem-rows", str(p["mem_rows"])]
    with tempfile.TemporaryDirectory(prefix="prop-lint-") as tmp:
        rc, out, err = run_emit_main(argv + ["--out-dir", tmp])
        assert rc == 0, (argv, err)
        ok, log = verilator_lint(Path(tmp) / "lif_pe_array.v")
        assert ok, f"{' '.join(argv)}\n{log[-3000:]}"


# ------------------------------------------------------------ network files
def _small_network(rng: np.random.Generator) -> Network:
    w0 = rng.integers(-8, 8, size=(4, 2, 3, 3))
    w1 = rng.integers(-8, 8, size=(6, 4 * 1 * 1))
    return Network((2, 3, 3), (
        Layer.conv((2, 3, 3), w0, padding=1, mode="chained", block=0, name="c0",
                   bias=rng.integers(-300, 300, size=4)),
        Layer.linear(w1, mode="readout", name="ro", pool=2, bias=rng.integers(-9, 9, size=6))))


@functools.lru_cache(maxsize=1)
def _good_bytes() -> bytes:
    """A valid network file (as bytes) written by save_network."""
    with tempfile.TemporaryDirectory(prefix="prop-net-") as tmp:
        p = Path(tmp) / "good.npz"
        save_network(_small_network(np.random.default_rng(0)), p)
        return p.read_bytes()


def _load_bytes(data: bytes):
    """load_network on ``data``; returns the Network or the NetworkError. Any
    other exception propagates (and fails the test)."""
    with tempfile.TemporaryDirectory(prefix="prop-net-") as tmp:
        p = Path(tmp) / "n.npz"
        p.write_bytes(data)
        try:
            return load_network(p)
        except NetworkError as e:
            assert _one_line(str(e)), repr(str(e))
            assert str(p) in str(e) or "n.npz" in str(e), str(e)
            return e


def _npz(arrays: dict, compressed: bool = False) -> bytes:
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return buf.getvalue()


def _contents(data: bytes) -> dict:
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


HS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])


@settings(max_examples=150 * SCALE, **HS)
@given(st.data())
def test_network_file_truncated(data):
    good_file_bytes = _good_bytes()
    n = data.draw(st.integers(0, len(good_file_bytes) - 1))
    r = _load_bytes(good_file_bytes[:n])
    assert isinstance(r, NetworkError)


@settings(max_examples=200 * SCALE, **HS)
@given(st.data())
def test_network_file_bit_flips(data):
    good_file_bytes = _good_bytes()
    raw = bytearray(good_file_bytes)
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] ^= 1 << data.draw(st.integers(0, 7))
    r = _load_bytes(bytes(raw))
    assert isinstance(r, (Network, NetworkError))


@settings(max_examples=80 * SCALE, **HS)
@given(st.data())
def test_network_file_compressed_and_corrupted(data):
    """The same arrays in a deflate-compressed archive, then corrupted (zlib
    errors used to escape as ``zlib.error``)."""
    good_file_bytes = _good_bytes()
    raw = bytearray(_npz(_contents(good_file_bytes), compressed=True))
    for _ in range(data.draw(st.integers(1, 6))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    r = _load_bytes(bytes(raw))
    assert isinstance(r, (Network, NetworkError))


@settings(max_examples=60 * SCALE, **HS)
@given(st.binary(max_size=600))
def test_network_file_random_bytes(blob):
    good_file_bytes = _good_bytes()
    assert isinstance(_load_bytes(blob), NetworkError)
    # a valid zip header followed by garbage
    assert isinstance(_load_bytes(good_file_bytes[:40] + blob), NetworkError)


weird_arrays = st.one_of(
    st.sampled_from([np.zeros(0), np.array(1.5), np.array([np.nan]), np.array([1 + 2j]),
                     np.array(["a", "b"]), np.array([True, False]), np.zeros((2, 2, 2, 2, 2)),
                     np.array([2 ** 62], dtype=np.uint64), np.full((4, 2, 3, 3), 2.0),
                     np.full((4, 2, 3, 3), 1e300), np.zeros((4, 2, 3, 3), dtype=np.float16),
                     np.array("not json"), np.array(b"bytes"), np.array('{"format": 1}'),
                     np.array(["{}", "{}"]), np.zeros((6, 36), dtype=np.int8)]),
    st.integers(-2 ** 63, 2 ** 63 - 1).map(lambda v: np.full((6, 36), v, dtype=np.int64)))

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-3, 10), st.sampled_from([2 ** 40, -1]),
                      st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=4))
json_value = st.recursive(json_leaf, lambda c: st.one_of(st.lists(c, max_size=3),
                                                         st.dictionaries(st.text(max_size=3), c,
                                                                         max_size=3)),
                          max_leaves=6)


@settings(max_examples=250 * SCALE, **HS)
@given(st.data())
def test_network_file_mutated_contents(data):
    """Re-packed archives: keys dropped, arrays replaced by other dtypes and
    shapes, JSON description fields removed, added or given other values."""
    arrays = _contents(_good_bytes())
    desc = json.loads(str(arrays["network.json"][()]))
    for _ in range(data.draw(st.integers(1, 3))):
        what = data.draw(st.sampled_from(["drop_key", "replace_array", "json_top", "json_layer",
                                          "json_drop", "json_extra", "json_layers_list"]))
        if what == "drop_key" and arrays:
            arrays.pop(data.draw(st.sampled_from(sorted(arrays))))
        elif what == "replace_array":
            key = data.draw(st.sampled_from(sorted(arrays) + ["w9", "network.json"]))
            arrays[key] = data.draw(weird_arrays)
        elif what == "json_top":
            desc[data.draw(st.sampled_from(["format", "version", "in_shape", "layers"]))] = \
                data.draw(json_value)
        elif what == "json_layer" and isinstance(desc.get("layers"), list) and desc["layers"] \
                and isinstance(desc["layers"][0], dict):
            layer = desc["layers"][data.draw(st.integers(0, len(desc["layers"]) - 1))]
            if isinstance(layer, dict):
                key = data.draw(st.sampled_from(["kind", "in_shape", "out_channels", "kernel",
                                                 "stride", "padding", "mode", "block", "name",
                                                 "weight"]))
                layer[key] = data.draw(st.one_of(json_value, st.sampled_from(
                    ["linear", "conv", "chained", "independent", "readout", "w0", "w1",
                     [2, 3, 3], [18], [1, 2 ** 31, 2 ** 31]])))
        elif what == "json_drop" and isinstance(desc, dict) and desc:
            desc.pop(data.draw(st.sampled_from(sorted(desc))))
        elif what == "json_extra":
            desc[data.draw(st.text(max_size=4))] = data.draw(json_value)
        elif what == "json_layers_list" and isinstance(desc.get("layers"), list):
            desc["layers"] = data.draw(st.sampled_from([[], desc["layers"][::-1],
                                                        desc["layers"][:1], desc["layers"] * 2]))
        if "network.json" in arrays and arrays["network.json"].dtype.kind == "U" \
                and arrays["network.json"].ndim == 0:
            arrays["network.json"] = np.array(json.dumps(desc))
    r = _load_bytes(_npz(arrays))
    assert isinstance(r, (Network, NetworkError))
    if isinstance(r, Network):
        # whatever loads must be a self-consistent, small network
        for layer in r.layers:
            assert layer.weight.dtype == np.int64
            assert layer.bias is None or (layer.bias.dtype == np.int64
                                          and layer.bias.shape == (layer.out_channels,))


@pytest.mark.parametrize("mode", ["chained", "independent", "readout"])
def test_network_file_huge_shape_validate_is_network_error(tmp_path, mode):
    """A 1x1 conv on a declared 10^7 x 10^7 input: the weight array is tiny, the
    declared geometry absurd. validate() must refuse it with one NetworkError
    naming the layer, from arithmetic alone (it once built [tiles, array]
    arrays first -> MemoryError)."""
    import tracemalloc
    net = Network((1, 10 ** 7, 10 ** 7),
                  (Layer.conv((1, 10 ** 7, 10 ** 7), np.ones((4, 1, 1, 1)), mode=mode, name="big"),))
    p = tmp_path / "huge.npz"
    save_network(net, p)
    loaded = load_network(p)
    tracemalloc.start()
    try:
        with pytest.raises(NetworkError, match=r"^layer 0 \('big'\): .*(mem_rows=64|> 65536)") as ei:
            loaded.validate(HwConfig(array=8, groups=2))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert _one_line(str(ei.value))
    assert peak < 16 << 20, f"validate() allocated {peak} bytes before refusing"


def test_network_huge_input_small_output_validates_without_dense_mask():
    """A huge declared input with a stride that leaves a tiny output is a legal
    network: validate() maps its few tiles without an [H_in, W_in] mask."""
    import tracemalloc
    from golden.mapping import tile_fanin_sizes
    layer = Layer.conv((2, 10 ** 7, 10 ** 7), np.ones((4, 2, 3, 3)), stride=10 ** 6, mode="readout")
    cfg = HwConfig(array=8, groups=2)
    tracemalloc.start()
    try:
        Network(layer.in_shape, (layer,)).validate(cfg)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, f"validate() allocated {peak} bytes"
    # output 4 x 10 x 10 = 400 neurons, 50 tiles of 8 PEs; 8 positions x 3x3 windows x 2 channels
    assert tile_fanin_sizes(cfg, layer).tolist() == [2 * 8 * 9] * 50


def test_property_helpers_can_fail():
    """The invariant checker and the one-line check reject what they must."""
    assert not _one_line("a\nb") and not _one_line("Traceback (most recent call last)")
    bad = HwConfig()
    object.__setattr__(bad, "groups", 3)  # bypass validation: 128 % 3 != 0
    with pytest.raises(AssertionError):
        check_invariants(bad)


# ------------------------------------------------------ tb.sim / tb.soak CLI
sim_opt = st.one_of(
    st.tuples(st.sampled_from(["--array", "--groups", "--seed", "-T", "--samples"]),
              st.one_of(st.sampled_from(["1", "2", "4", "8", "16", "128"]), int_text)),
    st.tuples(st.sampled_from(["--sim"]), st.sampled_from(["verilator", "icarus", "vcs", ""])),
    st.tuples(st.sampled_from(["--reset"]), st.sampled_from(["soft", "hard", "x"])),
    st.tuples(st.sampled_from(["--layer-share", "--stress", "--waves"]),
              st.sampled_from(["0", "1", "2", "yes", ""])),
    st.tuples(st.just("--cfg"), st.sampled_from(
        ["acc_width=12", "fire=ge", "theta_int=0", "mem_width=x", "bogus=1", "theta_int",
         "array=4", "leak_int=300", "weight_rows=1", "mem_rows=1"])),
    st.tuples(st.sampled_from(["--bogus", "-x"]), st.just("1")))


def _parse(parse, argv):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            return parse(argv), err.getvalue()
        except SystemExit as e:
            return e.code, err.getvalue()


@settings(max_examples=150 * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(sim_opt, max_size=5))
def test_tb_sim_and_soak_options_valid_or_one_error_line(pairs):
    """``python -m tb.sim`` / ``python -m tb.soak`` option parsing (no
    simulation is started): options or exit 2 with one ``...: error:`` line."""
    from tb.sim import SimOptions
    from tb.sim import parse_args as sim_parse
    from tb.soak import SoakOptions
    from tb.soak import parse_args as soak_parse
    argv = [x for p in pairs for x in p]
    r, err = _parse(sim_parse, argv)
    if isinstance(r, SimOptions):
        r.config()
    else:
        lines = err.strip().splitlines()
        assert r == 2 and len(lines) == 1 and lines[0].startswith("python -m tb.sim: error:"), (argv, err)
    # the soak has no --layer-share/--stress/--waves and takes ranges for --samples/-T
    soak_only = ("--layer-share", "--stress", "--waves", "--samples", "-T")
    r, err = _parse(soak_parse, [x for p in pairs if p[0] not in soak_only for x in p])
    if not isinstance(r, tuple) or not isinstance(r[0], SoakOptions):
        lines = err.strip().splitlines()
        assert r == 2 and len(lines) == 1 and lines[0].startswith("python -m tb.soak: error:"), (argv, err)


def test_network_flatten_check_does_not_wrap():
    """Regression: the conv -> linear shape check multiplied C*H*W with
    np.prod in int64, so a declared conv output of 3 x 3 x 2049638230412172402
    neurons (9 * that = 2**64 + 2) was accepted as feeding a 2-input linear
    layer. The check must use exact integers."""
    h = (2 * pow(9, -1, 2 ** 64)) % 2 ** 64
    with pytest.raises(NetworkError, match="does not match"):
        Network((1, 3, h), (Layer.conv((1, 3, h), np.ones((3, 1, 1, 1))),
                            Layer.linear(np.ones((2, 2)))))


@pytest.mark.parametrize("w", [np.full((2, 3), 1e300), np.full((2, 3), 2 ** 63, dtype=np.uint64)],
                         ids=["float1e300", "uint64_2p63"])
def test_layer_weights_beyond_int64_are_rejected(w):
    """Weights int64 cannot hold exactly are refused (never cast to garbage),
    with one NetworkError naming the layer and the value."""
    with pytest.raises(NetworkError, match=r"^layer 'fc': weight (1e\+300|9223372036854775808) "
                                           r"at index \(0, 0\) is beyond the int64 range$"):
        Layer.linear(w, name="fc")


@pytest.mark.parametrize("w, msg", [
    (np.array([[1.0, 2.5]]), r"weight must hold integers, got 2\.5 at index \(0, 1\)$"),
    (np.array([[np.nan, 1.0]]), r"weight must hold integers, got nan at index \(0, 0\)$"),
    (np.array([[1.0, 2.0 ** 63]]), r"weight 9\.223372036854776e\+18 at index \(0, 1\) is beyond"),
    ([[1, 2], [3]], r"weight is not a numeric array"),
    (np.array([["a"]]), r"weight must hold integers, got dtype <U1"),
])
def test_layer_bad_weights_name_the_value(w, msg):
    with pytest.raises(NetworkError, match=r"^layer 'fc': " + msg):
        Layer.linear(w, name="fc")
    if isinstance(w, np.ndarray) and w.ndim == 2:
        with pytest.raises(NetworkError, match=r"^layer 'fc': " + msg):
            Layer("linear", (w.shape[1],), w.shape[0], w, name="fc")


def test_layer_weights_at_the_int64_edges_are_kept():
    lo, hi = np.iinfo(np.int64).min, np.iinfo(np.int64).max
    assert Layer.linear(np.array([[hi]], dtype=np.uint64)).weight.tolist() == [[hi]]
    assert Layer.linear(np.array([[-2.0 ** 63, 3.0]])).weight.tolist() == [[lo, 3]]
