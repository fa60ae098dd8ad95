"""HwConfig's error paths: every bad input is one one-line ConfigError naming the problem.

Complements the hypothesis properties of tests/test_properties.py with the
specific inputs that once escaped as TypeError or produced unreadable
messages (non-mapping ``from_dict``, non-string or multi-line field names,
unknown / repeated arguments, huge integers).
"""

from __future__ import annotations

import json
from collections import OrderedDict

import pytest

from golden.config import ConfigError, HwConfig


def _one_line_config_error(call, match: str) -> str:
    with pytest.raises(ConfigError, match=match) as ei:
        call()
    assert type(ei.value) is ConfigError
    msg = str(ei.value)
    assert "\n" not in msg and len(msg) < 300, msg
    return msg


@pytest.mark.parametrize("d", [None, [("array", 8)], "array", 3, 1.5, b"{}", {"array"}])
def test_from_dict_needs_a_mapping(d):
    _one_line_config_error(lambda: HwConfig.from_dict(d),
                           r"^configuration: expected a mapping of field names to values, got "
                           + type(d).__name__ + "$")


def test_from_dict_accepts_any_mapping():
    cfg = HwConfig(array=8, groups=2)
    assert HwConfig.from_dict(OrderedDict(cfg.to_dict())) == cfg
    assert HwConfig.from_dict(json.loads(cfg.to_json())) == cfg
    assert HwConfig.from_dict({}) == HwConfig()


@pytest.mark.parametrize("d, names", [
    ({"bogus": 1}, "'bogus'"),
    ({"a\nb": 1, "array": 8}, r"'a\\nb'"),                   # quoted: the newline stays escaped
    ({1: 2, "x": 3}, "'x', 1"),                               # mixed key types sort by their repr
    ({2 ** 200: 1}, "<201-bit integer>"),
    ({None: 1, (1, 2): 3}, r"\(1, 2\), None"),
])
def test_unknown_fields_are_quoted_on_one_line(d, names):
    _one_line_config_error(lambda: HwConfig.from_dict(d),
                           r"^unknown configuration field\(s\): " + names + "$")


def test_constructor_call_errors_are_config_errors():
    _one_line_config_error(lambda: HwConfig(bogus=1), r"^unknown configuration field\(s\): 'bogus'$")
    _one_line_config_error(lambda: HwConfig(**{"a\nb": 1}), r"^unknown configuration field\(s\): 'a\\nb'$")
    _one_line_config_error(lambda: HwConfig(*range(14)), r"^configuration: 14 positional values for 13 fields$")
    _one_line_config_error(lambda: HwConfig(8, array=16), r"^array: given both positionally and by name$")
    _one_line_config_error(lambda: HwConfig().replace(nope=1), r"^unknown configuration field\(s\): 'nope'$")
    # the valid spellings still work
    assert HwConfig(8, 2) == HwConfig(array=8, groups=2) == HwConfig().replace(array=8, groups=2)


def test_from_real_call_errors_are_config_errors():
    _one_line_config_error(lambda: HwConfig.from_real(bogus=1), r"^unknown configuration field\(s\): 'bogus'$")
    _one_line_config_error(lambda: HwConfig.from_real(leak_int=3),
                           r"^leak_int: from_real\(\) takes the real value \(leak=\.\.\.\), not leak_int$")
    _one_line_config_error(lambda: HwConfig.from_real(theta_int=3),
                           r"^theta_int: from_real\(\) takes the real value \(theta=\.\.\.\), not theta_int$")


@pytest.mark.parametrize("kw, match", [
    ({"leak_bits": True}, r"^leak_bits: expected an integer, got True$"),
    ({"leak_bits": 0}, r"^leak_bits=0: must be between 1 and 16$"),
    ({"leak_bits": None}, r"^leak_bits: expected an integer, got None$"),
    ({"frac_bits": 2 ** 70}, r"^frac_bits=<71-bit integer>: must be between 0 and mem_width-1=15$"),
    ({"frac_bits": float("nan")}, r"^frac_bits: expected an integer, got nan$"),
    ({"leak": None}, r"^leak: expected a number, got None$"),
    ({"theta": float("nan")}, r"^theta=nan: must be a finite number$"),
    ({"theta": 10 ** 5000}, r"^theta_int=<16618-bit integer>: θ must be at least 1 LSB"),
    ({"leak": -(10 ** 400)}, r"^leak_int=-<1337-bit integer>: λ = leak_int/2\*\*leak_bits"),
    ({"theta": 1e308, "frac_bits": 31, "mem_width": 32}, r"^theta=1e\+308 is far outside"),
])
def test_from_real_bad_values_name_the_field(kw, match):
    _one_line_config_error(lambda: HwConfig.from_real(**kw), match)


@pytest.mark.parametrize("field, value, shown", [
    ("array", 2 ** 20000, "<20001-bit integer>"),        # str() of this int is refused by Python
    ("mem_rows", -(2 ** 70), "-<71-bit integer>"),
    ("theta_int", 2 ** 64, "<65-bit integer>"),
    ("weight_rows", 2 ** 63, "9223372036854775808"),     # up to 64 bits: the exact value
], ids=["array_2p20000", "mem_rows_neg2p70", "theta_int_2p64", "weight_rows_2p63"])
def test_huge_integers_are_shown_short(field, value, shown):
    _one_line_config_error(lambda: HwConfig(**{field: value}), "^" + field + "=" + shown + ": ")


@pytest.mark.parametrize("field, value", [("array", None), ("groups", float("nan")), ("mem_width", 16.0),
                                          ("reset", None), ("fire", 1), ("weight_rows", [1])])
def test_wrong_types_name_the_field(field, value):
    _one_line_config_error(lambda: HwConfig(**{field: value}), "^" + field + ": expected an? ")


def test_long_strings_are_truncated():
    msg = _one_line_config_error(lambda: HwConfig(reset="x" * 10000), r"^reset='x+\.\.\.: must be one of")
    assert len(msg) < 200
