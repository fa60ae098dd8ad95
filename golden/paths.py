"""Where the project writes its build output (simulator builds, caches, reports).

One rule, used by every module that writes output without being told a
folder (``tb.build``, ``tb.demo``, the report flow):

* ``ELIF_BUILD_DIR`` set in the environment: that folder;
* run from a checkout of the project (the folder above ``golden/`` holds the
  project's ``pyproject.toml``, also for ``pip install -e``): the checkout's
  root, so ``sim_build/``, ``build/`` and ``reports/`` sit beside the sources
  as the README describes;
* installed from a wheel (the packages sit in ``site-packages``): the current
  working directory — never the installation folder.

``tb.build`` additionally honours ``TB_SIM_BUILD`` for its simulator builds
alone (see :func:`tb.build.sim_build_dir`).

Pure standard library; evaluated at every call, so a changed environment
variable or working directory takes effect without re-importing.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["BUILD_DIR_ENV", "PROJECT_NAME", "checkout_root", "build_root", "build_path"]

#: environment variable that overrides :func:`build_root`
BUILD_DIR_ENV = "ELIF_BUILD_DIR"
#: ``[project] name`` in pyproject.toml; identifies a checkout of this project
PROJECT_NAME = "efficientlif-rtl"

_SOURCE_ROOT = Path(__file__).resolve().parent.parent


def checkout_root() -> Path | None:
    """The root of the checkout the packages are imported from, or None when
    they are installed (no project ``pyproject.toml`` beside ``golden/``)."""
    py = _SOURCE_ROOT / "pyproject.toml"
    try:
        text = py.read_text(encoding="utf-8")
    except OSError:
        return None
    return _SOURCE_ROOT if f'name = "{PROJECT_NAME}"' in text else None


def build_root() -> Path:
    """The folder build output goes to (see the module docstring); absolute."""
    env = os.environ.get(BUILD_DIR_ENV, "").strip()
    if env:
        return Path(env).expanduser().absolute()
    root = checkout_root()
    return root if root is not None else Path.cwd()


def build_path(*parts: str) -> Path:
    """``build_root() / parts``, e.g. ``build_path("reports")``."""
    return build_root().joinpath(*parts)
