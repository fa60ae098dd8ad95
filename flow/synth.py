"""Yosys driver: generic synthesis with the hierarchy and memories kept.

:func:`synthesize` runs Yosys on one Verilog file and returns a
:class:`SynthResult`: per-module cell counts by type (fine-grained generic
gates ``$_AND_``, ``$_MUX_``, ``$_SDFFE_PP0P_`` ...), Yosys' CMOS transistor
estimate per module, every memory kept as a ``$mem_v2`` cell (width x size,
ports), the instance count of each module seen from the top, and logic depth
(``ltp``: longest topological path in gate levels, flip-flops and memories
excluded) of every leaf module and of the flattened design.

The script (:data:`SCRIPT`) is Yosys' own ``synth`` up to the ``fine`` label
(``proc``, ``opt``, ``alumacc``, ``memory -nomap`` ...) followed by ``synth``'s
``fine`` steps *minus* ``memory_map``: memories stay memories (counted in
bits, not flattened into flip-flops) and ``techmap`` + ``abc -fast`` map the
rest to generic gates. ``synth -flatten`` is not used, so every Amaranth
submodule stays a module and cells can be attributed per block.

Results are cached in ``cache_dir/<key>.json`` where ``key`` is the SHA-256
of the Verilog text, the script template and the Yosys version; a cached
result is returned without running Yosys (``cached = True``). Cache files
and kept logs are written with :func:`golden.files.atomic_write` (mode 0644;
an unwritable cache raises :class:`golden.errors.OutputError`).

Errors (missing Yosys, a failed run, unparsable output) raise
:class:`SynthError` with one line naming the cause and the log file.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from golden.errors import ProjectError
from golden.files import atomic_write

__all__ = ["SCRIPT", "SynthError", "ModuleStats", "Memory", "SynthResult", "yosys_version",
           "cache_key", "synthesize", "parse_stat", "parse_memories", "parse_ltp",
           "is_flip_flop", "is_gate"]

#: Yosys script; ``{verilog}`` and ``{top}`` are filled in, outputs go to the cwd.
SCRIPT = """\
read_verilog {verilog}
synth -top {top} -run begin:fine
opt -fast -full
techmap
opt -fast
abc -fast
opt -fast
hierarchy -check -top {top}
tee -q -o stat.txt stat -tech cmos
tee -q -o mem.txt dump t:$mem_v2
tee -q -o ltp_modules.txt ltp -noff A:top %n t:$mem_v2 %d
flatten
tee -q -o ltp_flat.txt ltp -noff t:$mem_v2 %n
"""

#: Bumped when the parsed-result format changes (part of the cache key).
RESULT_FORMAT = 1

_FF = re.compile(r"^\$_(S?DFFS?R?C?E?|ALDFFE?|DFFSRE?|SDFFC?E|DLATCH|SR)_")


def is_flip_flop(cell_type: str) -> bool:
    """True for Yosys' fine-grained storage cells (one bit each)."""
    return bool(_FF.match(cell_type))


def is_gate(cell_type: str) -> bool:
    """True for a fine-grained internal cell (gate or flip-flop), i.e. ``$_..._``."""
    return cell_type.startswith("$_")


class SynthError(ProjectError, RuntimeError):
    """Yosys is missing, failed, or printed something we cannot parse."""


@dataclass
class ModuleStats:
    """One module of the synthesized hierarchy (counts for ONE instance).

    ``cells`` maps cell type -> count, including ``$mem_v2`` and submodule
    instances (types that are module names). ``transistors`` is Yosys'
    ``stat -tech cmos`` estimate for the module's own gates; ``transistors_partial``
    is True when Yosys marked it with ``+`` (cells it has no figure for, e.g.
    memories or submodules, which are then not included)."""

    name: str
    cells: dict = field(default_factory=dict)
    transistors: int = 0
    transistors_partial: bool = False

    @property
    def gates(self) -> int:
        """Generic gate and flip-flop cells (memories and submodules excluded)."""
        return sum(n for t, n in self.cells.items() if is_gate(t))

    @property
    def flip_flops(self) -> int:
        return sum(n for t, n in self.cells.items() if is_flip_flop(t))

    def submodules(self, known: "set[str]") -> dict:
        """Instances of other modules: {module name: count}."""
        return {t: n for t, n in self.cells.items() if t in known}


@dataclass
class Memory:
    """One ``$mem_v2`` cell: ``size`` words of ``width`` bits in module ``module``."""

    module: str
    name: str
    width: int
    size: int
    rd_ports: int
    wr_ports: int

    @property
    def bits(self) -> int:
        return self.width * self.size


@dataclass
class SynthResult:
    """Everything :func:`synthesize` extracts from one Yosys run."""

    top: str
    key: str
    yosys_version: str
    seconds: float
    modules: dict                      # name -> ModuleStats
    memories: list                     # [Memory]
    module_depth: dict                 # leaf module name -> gate levels
    depth: int                         # flattened design, gate levels
    depth_from: str = ""
    depth_to: str = ""
    yosys_total_cells: int = -1        # Yosys' own hierarchy total (incl. memories)
    cached: bool = False

    # ------------------------------------------------------------ hierarchy
    def instances(self) -> dict:
        """How many times each module occurs in the design seen from ``top``."""
        return _instance_counts(self.top, self.modules)

    def total_gates(self) -> int:
        inst = self.instances()
        return sum(self.modules[m].gates * n for m, n in inst.items())

    def total_flip_flops(self) -> int:
        inst = self.instances()
        return sum(self.modules[m].flip_flops * n for m, n in inst.items())

    def total_memory_cells(self) -> int:
        inst = self.instances()
        return sum(self.modules[m].cells.get("$mem_v2", 0) * n for m, n in inst.items())

    # -------------------------------------------------------------- (de)serialise
    def to_dict(self) -> dict:
        d = asdict(self)
        d["modules"] = {k: asdict(v) for k, v in self.modules.items()}
        d["memories"] = [asdict(m) for m in self.memories]
        d.pop("cached")
        d["format"] = RESULT_FORMAT
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "SynthResult":
        d = dict(d)
        if d.pop("format", None) != RESULT_FORMAT:
            raise SynthError("cached result has an old format")
        d["modules"] = {k: ModuleStats(**v) for k, v in d["modules"].items()}
        d["memories"] = [Memory(**m) for m in d["memories"]]
        return cls(**d)


def _instance_counts(top: str, modules: dict) -> dict:
    known = set(modules)
    # topological order by DFS post-order
    order, seen = [], set()

    def visit(m):
        if m in seen:
            return
        seen.add(m)
        for sub in modules[m].submodules(known):
            visit(sub)
        order.append(m)

    visit(top)
    count = {m: 0 for m in order}
    count[top] = 1
    for m in reversed(order):           # parents before children
        for sub, n in modules[m].submodules(known).items():
            count[sub] += n * count[m]
    return count


# ------------------------------------------------------------------- parsing
_SECTION = re.compile(r"^=== (.+) ===\s*$")
_TYPE_LINE = re.compile(r"^\s{5,}(\S+)\s+(\d+)\s*$")
_CELLS_LINE = re.compile(r"^\s+Number of cells:\s+(\d+)\s*$")
_TRANSISTORS = re.compile(r"^\s+Estimated number of transistors:\s+(\d+)(\+?)\s*$")


def parse_stat(text: str) -> "tuple[dict, int]":
    """Parse ``stat -tech cmos`` output -> ({module: ModuleStats}, hierarchy total cells).

    The total is Yosys' own count over the whole hierarchy (-1 if absent);
    it counts gates, memories and (Yosys 0.23) not the submodule instances."""
    modules: dict = {}
    total = -1
    current = None
    in_hier = False
    for line in text.splitlines():
        m = _SECTION.match(line)
        if m:
            name = m.group(1)
            in_hier = name == "design hierarchy"
            current = None if in_hier else modules.setdefault(name, ModuleStats(name))
            continue
        if in_hier:
            c = _CELLS_LINE.match(line)
            if c:
                total = int(c.group(1))
            continue
        if current is None:
            continue
        t = _TRANSISTORS.match(line)
        if t:
            current.transistors = int(t.group(1))
            current.transistors_partial = bool(t.group(2))
            continue
        c = _TYPE_LINE.match(line)
        if c and not line.strip().startswith("Number"):
            current.cells[c.group(1)] = current.cells.get(c.group(1), 0) + int(c.group(2))
    if not modules:
        raise SynthError("no module statistics in the Yosys stat output")
    return modules, total


_MODULE = re.compile(r"^module \\?(\S+)\s*$")
_MEMCELL = re.compile(r"^\s+cell \$mem_v2 \\?(\S+)\s*$")
_PARAM = re.compile(r"^\s+parameter \\(\w+) (\S+)\s*$")


def _param_int(v: str) -> int:
    if "'" in v:                        # sized constant: width'bits
        return int(v.split("'", 1)[1], 2)
    return int(v)


def parse_memories(text: str) -> list:
    """Parse ``dump t:$mem_v2`` (RTLIL) -> [Memory]."""
    mems, module, cell = [], None, None
    for line in text.splitlines():
        m = _MODULE.match(line)
        if m:
            module = m.group(1)
            continue
        m = _MEMCELL.match(line)
        if m:
            cell = {"module": module, "name": m.group(1)}
            continue
        if cell is not None:
            p = _PARAM.match(line)
            if p and p.group(1) in ("WIDTH", "SIZE", "RD_PORTS", "WR_PORTS"):
                cell[p.group(1)] = _param_int(p.group(2))
            elif line.strip() == "end":
                try:
                    mems.append(Memory(cell["module"], cell["name"], cell["WIDTH"], cell["SIZE"],
                                       cell["RD_PORTS"], cell["WR_PORTS"]))
                except KeyError as e:
                    raise SynthError(f"memory {cell['name']}: no {e.args[0]} parameter") from None
                cell = None
    return mems


_LTP = re.compile(r"^Longest topological path in (\S+) \(length=(\d+)\):\s*$")
_LTP_STEP = re.compile(r"^\s+(\d+|ff): (.*?)(?: \(via .*\))?\s*$")


def parse_ltp(text: str) -> dict:
    """Parse ``ltp`` output -> {module: (length, first node, last node)}."""
    out, cur, nodes = {}, None, []
    for line in text.splitlines():
        m = _LTP.match(line)
        if m:
            if cur:
                out[cur[0]] = (cur[1], nodes[0] if nodes else "", nodes[-1] if nodes else "")
            cur, nodes = (m.group(1), int(m.group(2))), []
            continue
        s = _LTP_STEP.match(line)
        if cur and s:
            nodes.append(s.group(2).strip())
    if cur:
        out[cur[0]] = (cur[1], nodes[0] if nodes else "", nodes[-1] if nodes else "")
    return out


# ------------------------------------------------------------------ running
def yosys_version(yosys: str = "yosys") -> str:
    """``yosys -V`` output (first line); raises SynthError if Yosys is missing."""
    exe = shutil.which(yosys)
    if exe is None:
        raise SynthError(f"{yosys!r} not found on PATH (install Yosys, e.g. apt-get install yosys)")
    try:
        r = subprocess.run([exe, "-V"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise SynthError(f"cannot run {exe} -V: {e}") from None
    return r.stdout.strip().splitlines()[0] if r.stdout.strip() else "unknown"


def cache_key(verilog_text: bytes, version: str, top: str) -> str:
    h = hashlib.sha256()
    for part in (verilog_text, SCRIPT.encode(), version.encode(), top.encode(),
                 str(RESULT_FORMAT).encode()):
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.hexdigest()


def synthesize(verilog: "str | Path", top: str, cache_dir: "str | Path | None" = None, *,
               yosys: str = "yosys", timeout: float = 1800.0,
               log_dir: "str | Path | None" = None) -> SynthResult:
    """Synthesize ``verilog`` (top module ``top``) with :data:`SCRIPT`.

    With ``cache_dir`` a result whose key matches is returned from
    ``cache_dir/<key>.json`` without running Yosys. ``log_dir`` (default: the
    cache dir, else a temporary dir) receives ``<key>.log`` of a real run.
    Raises :class:`SynthError` on any failure.
    """
    verilog = Path(verilog).resolve()
    try:
        text = verilog.read_bytes()
    except OSError as e:
        raise SynthError(f"cannot read {verilog}: {e.strerror or e}") from None
    version = yosys_version(yosys)
    key = cache_key(text, version, top)
    cache_file = Path(cache_dir) / f"{key}.json" if cache_dir else None
    if cache_file is not None and cache_file.exists():
        try:
            res = SynthResult.from_dict(json.loads(cache_file.read_text()))
            res.cached = True
            return res
        except (ValueError, TypeError, KeyError, SynthError):
            pass                         # stale or corrupt: synthesize again
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="synth-") as work:
        workp = Path(work)
        # copy the Verilog so paths in the log are short and machine independent
        (workp / "design.v").write_bytes(text)
        (workp / "synth.ys").write_text(SCRIPT.format(verilog="design.v", top=top))
        log = workp / "yosys.log"
        try:
            r = subprocess.run([shutil.which(yosys) or yosys, "-q", "-l", "yosys.log", "synth.ys"],
                               cwd=work, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise SynthError(f"yosys timed out after {timeout:.0f} s on {verilog}") from None
        except OSError as e:
            raise SynthError(f"cannot run yosys: {e}") from None
        keep = Path(log_dir) if log_dir else (Path(cache_dir) if cache_dir else None)
        kept_log = None
        if keep is not None and log.exists():
            kept_log = keep / f"{key}.log"
            atomic_write({kept_log: log.read_bytes()})
        if r.returncode != 0:
            err = [ln for ln in (r.stderr + r.stdout).splitlines() if "ERROR" in ln]
            first = err[0].strip() if err else f"exit status {r.returncode}"
            raise SynthError(f"yosys failed on {verilog}: {first}"
                             + (f" (log: {kept_log})" if kept_log else ""))
        try:
            modules, total = parse_stat((workp / "stat.txt").read_text())
            memories = parse_memories((workp / "mem.txt").read_text())
            per_module = parse_ltp((workp / "ltp_modules.txt").read_text())
            flat = parse_ltp((workp / "ltp_flat.txt").read_text())
        except OSError as e:
            raise SynthError(f"yosys produced no {Path(e.filename).name} for {verilog}") from None
    if top not in modules:
        raise SynthError(f"top module {top!r} missing from the Yosys statistics")
    if top not in flat:
        raise SynthError(f"no longest-path result for the flattened {top!r}")
    known = set(modules)
    leaves = {m for m, s in modules.items() if not s.submodules(known)}
    depth, d_from, d_to = flat[top]
    res = SynthResult(top=top, key=key, yosys_version=version,
                      seconds=round(time.monotonic() - t0, 1), modules=modules,
                      memories=memories,
                      module_depth={m: v[0] for m, v in per_module.items() if m in leaves},
                      depth=depth, depth_from=d_from, depth_to=d_to,
                      yosys_total_cells=total)
    if cache_file is not None:
        atomic_write({cache_file: json.dumps(res.to_dict(), indent=1, sort_keys=True)})
    return res
