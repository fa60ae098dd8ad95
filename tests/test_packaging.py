"""The project as a wheel (issue 10, section 3).

A wheel built from the project omitted ``gen/lint_waivers/verilator.vlt``
(so every Verilator lint and build of an installed copy failed) and the
installed copy put ``sim_build/`` inside ``site-packages``. Build a wheel
from a clean copy of the sources, check its contents, unpack it as an
installation and check where an installed copy puts its build output
(:func:`golden.paths.build_root`: the working directory, or
``ELIF_BUILD_DIR``).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _top_level_packages() -> tuple:
    """Top-level packages named in pyproject.toml (the wheel's contents follow it)."""
    import tomllib
    with open(REPO / "pyproject.toml", "rb") as f:
        names = tomllib.load(f)["tool"]["setuptools"]["packages"]
    return tuple(sorted({n.split(".")[0] for n in names}))


PACKAGES = _top_level_packages()

pytestmark = pytest.mark.skipif(importlib.util.find_spec("setuptools") is None,
                                reason="needs setuptools to build the wheel")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built (no network, no build isolation) from a copy of the
    sources, so the checkout gets no build/ or egg-info and no stale file of
    the checkout's build/ can slip into the wheel."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for f in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / f, src / f)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "sim_build", "build", "*.egg-info")
    for pkg in PACKAGES:
        shutil.copytree(REPO / pkg, src / pkg, ignore=ignore)
    out = tmp / "dist"
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                        "--no-index", "-q", "-w", str(out), str(src)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    wheels = list(out.glob("*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_contents(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "gen/lint_waivers/verilator.vlt" in names, "the lint waiver file is missing"
    assert "golden/paths.py" in names and "tb/test_lif_pe_array.py" in names
    bad = [n for n in names if n.split("/")[0] in ("sim_build", "build", "reports", "rtl")
           or "/sim_build/" in n or "__pycache__" in n]
    assert bad == [], bad
    # every file of the packages is in it (nothing the code reads is left behind)
    for pkg in PACKAGES:
        for f in (REPO / pkg).rglob("*"):
            if f.is_file() and "__pycache__" not in f.parts and f.suffix in (".py", ".vlt"):
                assert f.relative_to(REPO).as_posix() in names, f


def test_installed_copy_writes_to_the_working_directory(wheel, tmp_path):
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:   # a pure-Python wheel: unpacking is installing
        z.extractall(site)
    work = tmp_path / "work"
    work.mkdir()
    probe = ("import gen.lint, golden.paths as p, tb.build as b; "
             "print(p.checkout_root()); print(p.build_root()); print(b.sim_build_dir()); "
             "print(gen.lint.waiver_path().is_file()); print(p.__file__)")
    env = {k: v for k, v in os.environ.items()
           if k not in ("ELIF_BUILD_DIR", "TB_SIM_BUILD", "PYTHONPATH")}
    env["PYTHONPATH"] = str(site)
    r = subprocess.run([sys.executable, "-c", probe], cwd=work, env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    root, build, sim_build, waiver, module = r.stdout.split("\n")[:5]
    assert Path(module).is_relative_to(site), module   # the installed copy was imported
    assert root == "None"
    assert Path(build) == work and Path(sim_build) == work / "sim_build"
    assert waiver == "True"
    env["ELIF_BUILD_DIR"] = str(tmp_path / "elsewhere")
    r = subprocess.run([sys.executable, "-c", probe], cwd=work, env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.split("\n")[2]) == tmp_path / "elsewhere" / "sim_build"
    assert not (site / "sim_build").exists()
