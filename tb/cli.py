"""Command-line pieces shared by ``python -m tb.sim``, ``tb.soak`` and ``tb.demo``.

Every tb/ command line reports a bad option as exactly one
``tb.<tool>: error: ...`` line on stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["OneLineParser", "bounded_int", "posint", "parse_cfg_items"]


class OneLineParser(argparse.ArgumentParser):
    """``error()`` prints one ``<tag>: error: <message>`` line and exits 2."""

    def __init__(self, *args, tag: str, **kw):
        super().__init__(*args, **kw)
        self.tag = tag

    def error(self, message):
        print(f"{self.tag}: error: {message}", file=sys.stderr)
        sys.exit(2)


def bounded_int(lo: int, message: str):
    """argparse type: an integer >= ``lo``; otherwise ``message`` (a format
    string with ``{v!r}``, the text given) as the error."""
    def conv(v: str) -> int:
        try:
            n = int(v)
        except ValueError:
            raise argparse.ArgumentTypeError(message.format(v=v)) from None
        if n < lo:
            raise argparse.ArgumentTypeError(message.format(v=v))
        return n
    return conv


def posint(name: str):
    """argparse type: a positive integer (``<name> must be a positive integer, got ...``)."""
    return bounded_int(1, f"{name} must be a positive integer, got {{v!r}}")


def parse_cfg_items(items, error) -> dict:
    """``--cfg FIELD=VALUE ...`` -> extra HwConfig fields (integers where the
    field is one). ``array``, ``groups`` and ``reset`` have options of their
    own; ``error(message)`` is called (and must not return) on a bad item."""
    from golden.config import HwConfig
    ints = {f for f, v in HwConfig().to_dict().items() if isinstance(v, int)}
    extra = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not sep:
            error(f"--cfg expects FIELD=VALUE, got {item!r}")
        if k in ("array", "groups", "reset"):
            error(f"--cfg {k}: use --{k} instead")
        try:
            extra[k] = int(v) if k in ints else v
        except ValueError:
            error(f"--cfg {k}={v!r}: expected an integer")
    return extra
