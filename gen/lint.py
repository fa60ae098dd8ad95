"""Verilator lint of the generated Verilog, with the project's waiver file.

``verilator --lint-only -Wall`` must pass on every emitted configuration. The
only waivers are in ``gen/lint_waivers/verilator.vlt``; each is justified
there. Command line::

    python -m gen.lint rtl/lif_pe_array.v        # exit 0 clean, 1 warnings, 2 bad use
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from golden.cli import OneLineParser, run_main

from .tools import verilator_bin, verilator_env

__all__ = ["waiver_path", "verilator_lint", "main"]


def waiver_path() -> Path:
    """Absolute path of the checked-in Verilator waiver (``.vlt``) file."""
    return Path(__file__).resolve().parent / "lint_waivers" / "verilator.vlt"


def verilator_lint(path, top: "str | None" = None, timeout: float = 600) -> "tuple[bool, str]":
    """Run ``verilator --lint-only -Wall`` with the waiver file on ``path``.

    ``top`` defaults to the file's stem (the emitter names the file after the
    top module). Returns ``(ok, log)``: ``ok`` is True when Verilator exits 0
    and prints no warning; ``log`` is its combined output.
    """
    path = Path(path)
    top = top or path.stem
    cmd = [verilator_bin(), "--lint-only", "-Wall", "--top-module", top,
           str(waiver_path()), str(path)]
    proc = subprocess.run(cmd, env=verilator_env(), capture_output=True, text=True,
                          timeout=timeout)
    log = proc.stdout + proc.stderr
    ok = proc.returncode == 0 and "%Warning" not in log and "%Error" not in log
    return ok, log


PROG = "python -m gen.lint"


def _run(argv) -> int:
    p = OneLineParser(prog=PROG, description="Verilator lint (-Wall, with the project's waiver "
                                             "file) of one Verilog file; exit 0 clean, 1 warnings.")
    p.add_argument("file", metavar="FILE.v", help="the Verilog file to lint")
    path = Path(p.parse_args(argv).file)
    if not path.is_file():
        p.error(f"{path}: no such file")
    ok, log = verilator_lint(path)
    sys.stdout.write(log)
    print("lint: clean" if ok else "lint: FAILED", file=sys.stderr)
    return 0 if ok else 1


def main(argv=None) -> int:
    """The command line; returns the exit status (0 clean, 1 warnings, 2 bad use)."""
    return run_main(_run, PROG, argv)


if __name__ == "__main__":
    sys.exit(main())
