"""Command-line plumbing shared by every ``python -m ...`` entry point.

Contract of every command of the project:

* a bad option prints exactly one ``<prog>: error: <message>`` line on stderr
  and exits with status 2 (:class:`OneLineParser`);
* a :class:`golden.errors.ProjectError` raised by the work (bad file, bad
  parameter, missing tool, unwritable folder) is printed the same way, first
  line only, exit status 2 (:func:`run_main`);
* output piped into a program that closes early (``| head``) ends quietly;
* any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import os
import sys

from .errors import ProjectError

__all__ = ["OneLineParser", "bounded_int", "posint", "run_main", "error_line"]


def error_line(prog: str, message) -> str:
    """``<prog>: error: <first line of message>``."""
    text = str(message).strip().splitlines()
    return f"{prog}: error: {text[0] if text else type(message).__name__}"


class OneLineParser(argparse.ArgumentParser):
    """argparse whose ``error()`` prints one ``<prog>: error: <message>`` line and exits 2.

    Defaults are shown in ``--help`` (``ArgumentDefaultsHelpFormatter``) for
    every option that has a help text.
    """

    def __init__(self, *args, **kw):
        kw.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
        super().__init__(*args, **kw)

    def error(self, message):
        print(error_line(self.prog, message), file=sys.stderr)
        sys.exit(2)


def bounded_int(lo: int, message: str, hi: int | None = None):
    """argparse type: an integer in ``[lo, hi]``; otherwise ``message`` (a format
    string with ``{v!r}``, the text given) as the error."""
    def conv(v: str) -> int:
        try:
            n = int(v)
        except ValueError:
            raise argparse.ArgumentTypeError(message.format(v=v)) from None
        if n < lo or (hi is not None and n > hi):
            raise argparse.ArgumentTypeError(message.format(v=v))
        return n
    return conv


def posint(name: str, hi: int | None = None):
    """argparse type: a positive integer (``<name> must be a positive integer, got ...``)."""
    rng = "a positive integer" if hi is None else f"an integer from 1 to {hi}"
    return bounded_int(1, f"{name} must be {rng}, got {{v!r}}", hi)


def run_main(main, prog: str, argv=None) -> int:
    """Run ``main(argv)`` under the project's error contract; return the exit status.

    Use as ``sys.exit(run_main(main, "python -m pkg.tool"))``.
    """
    try:
        status = main(argv)
        sys.stdout.flush()
        return 0 if status is None else int(status)
    except ProjectError as exc:
        print(error_line(prog, exc), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader (e.g. `| head`) went away: stop quietly, and keep Python
        # from complaining again when it flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
