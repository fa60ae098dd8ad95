"""Command-line pieces shared by ``python -m tb.sim``, ``tb.soak`` and ``tb.demo``.

The parser (one-line errors, defaults in ``--help``), the integer option
types and the error contract (:func:`golden.cli.run_main`) are
:mod:`golden.cli`'s; this module adds what only the testbench commands need:
``--cfg FIELD=VALUE`` items, phase lines and the simulation progress bar.
"""

from __future__ import annotations

import sys
import time

__all__ = ["parse_cfg_items", "phase", "SimProgress"]


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


def phase(text: str, stream=None) -> None:
    """Print one phase line (``emit: ...``, ``build: ...``, ``run: ...``) on
    stderr, so stdout keeps only the result."""
    print(text, file=stream or sys.stderr, flush=True)


class SimProgress:
    """Progress of one co-simulation from the records of its ``progress.json``
    (``test``, ``beats``, ``beats_expected``, ``cycles``; :func:`tb.build.run`).

    On a terminal: a bar redrawn in place, shown once the run has lasted
    ``after`` seconds. Otherwise (a log file, CI): one line every ``every``
    seconds. Call :meth:`close` when the run has ended.
    """

    def __init__(self, stream=None, *, after: float = 2.0, every: float = 30.0, width: int = 30):
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.after, self.every, self.width = after, every, width
        self.t0 = time.monotonic()
        self.last = self.t0
        self.drawn = False

    def text(self, rec: dict, now: float) -> str:
        done, total = int(rec.get("beats", 0)), max(1, int(rec.get("beats_expected", 1)))
        frac = min(1.0, done / total)
        fill = round(frac * self.width)
        return (f"run:   {rec.get('test', '?'):14s} [{'#' * fill}{'.' * (self.width - fill)}] "
                f"{100 * frac:5.1f} %  beats {done:,}/{total:,}, cycles {int(rec.get('cycles', 0)):,}, "
                f"{now - self.t0:.0f} s")

    def __call__(self, rec: dict) -> None:
        now = time.monotonic()
        if self.tty:
            if now - self.t0 >= self.after:
                self.stream.write("\r" + self.text(rec, now))
                self.stream.flush()
                self.drawn = True
        elif now - self.last >= self.every:
            self.last = now
            print(self.text(rec, now), file=self.stream, flush=True)

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = False
