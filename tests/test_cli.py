"""The command lines as a user meets them (issue 10, section 3).

* cocotb's variables (``WAVES``, ``GUI``, ``COCOTB_*``) in the caller's
  environment do not reach the simulators: an Icarus run asked for waves
  writes a real VCD (text header) under a ``.vcd`` name, one not asked for
  writes no waveform at all, and ``os.environ`` is never patched;
* an unwritable build or output folder is one ``error:`` line, exit 2,
  before any long work, for root too (a path below a regular file);
* long phases announce themselves (phase lines with estimates, progress);
* every option of tb.sim, tb.soak, tb.throughput, gen.emit has a help text
  and ``--help`` shows the defaults; absurd ``-T``/``--samples`` are refused;
* ``make`` alone prints the help and starts no set-up;
* build output goes to :func:`golden.paths.build_root` (env overridable).
"""

from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable
# a tiny co-simulation: ARRAY=8, GROUPS=2, one sample, two timesteps
TINY = dict(array=8, groups=2, sim="icarus", samples=1, timesteps=2, tests=("full_run",))

needs_icarus = pytest.mark.skipif(shutil.which("iverilog") is None, reason="needs Icarus Verilog")


def _clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("WAVES", "GUI")}
    env.update(PYTHONPATH=str(REPO), **extra)
    return env


@pytest.fixture(scope="module")
def sim_build(tmp_path_factory):
    """One private simulator build folder for this module's co-simulations."""
    return tmp_path_factory.mktemp("sim_build")


def _waveforms(root: Path) -> list:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.suffix in (".vcd", ".fst", ".ghw", ".wlf", ".vpd"))


# ------------------------------------------------------- cocotb variables
def test_simulator_env_drops_cocotb_variables(monkeypatch):
    from tb.build import simulator_env
    for k, v in {"WAVES": "1", "GUI": "1", "COCOTB_LOG_LEVEL": "DEBUG", "TOPLEVEL_LANG": "vhdl",
                 "SIM": "questa", "GPI_EXTRA": "x", "SIM_CMD_PREFIX": "valgrind",
                 "PYTEST_CURRENT_TEST": "t", "MY_OWN_VAR": "kept",
                 "MAKEFLAGS": "s -j2 -- ARRAY=512 WAVES=1"}.items():
        monkeypatch.setenv(k, v)
    for sim in ("icarus", "verilator"):
        env = simulator_env(sim, {"TB_PLAN": "/p.json"})
        leaked = [k for k in env if k in ("WAVES", "GUI", "TOPLEVEL_LANG", "SIM", "SIM_CMD_PREFIX",
                                          "PYTEST_CURRENT_TEST")
                  or k.startswith(("COCOTB_", "GPI_"))]
        assert leaked == [], (sim, leaked)
        assert env["MY_OWN_VAR"] == "kept" and env["TB_PLAN"] == "/p.json"
    env = simulator_env("verilator")
    # the outer make's command-line variables do not reach Verilator's make
    assert "ARRAY=512" not in env["MAKEFLAGS"] and "WAVES" not in env["MAKEFLAGS"]
    assert env["MAKEFLAGS"].startswith("s -j2") and "VERILATOR_ROOT" in env
    assert os.environ["WAVES"] == "1"  # the caller's environment is untouched


def test_build_module_has_no_environment_patching():
    """The old ``_patched_env`` (os.environ patched around the runner, not
    thread-safe) is gone, and nothing in tb/ assigns to os.environ."""
    import tb.build
    assert not hasattr(tb.build, "_patched_env")
    for path in (REPO / "tb").glob("*.py"):
        text = path.read_text()
        assert not re.search(r"os\.environ\s*\[[^]]+\]\s*=|os\.environ\.(update|pop|setdefault)\(",
                             text), path


@needs_icarus
def test_icarus_waves_with_waves_in_environment_is_a_real_vcd(sim_build, monkeypatch):
    """``make sim SIM=icarus WAVES=1`` wrote FST data into ``dump.vcd``: make
    exported WAVES=1 and cocotb's runner switched Icarus to FST. With the
    variable in the parent environment the file must be a text VCD."""
    from tb.sim import SimOptions, run_sim
    monkeypatch.setenv("TB_SIM_BUILD", str(sim_build))
    monkeypatch.setenv("WAVES", "1")
    monkeypatch.setenv("GUI", "1")
    before = dict(os.environ)
    records = []
    res = run_sim(SimOptions(**TINY, waves=True), progress=records.append)
    assert dict(os.environ) == before
    assert res.ok, res.failure_text()
    wf = res.run.waves_file
    assert wf is not None and wf.suffix == ".vcd" and wf.parent == res.run.run_dir, wf
    head = wf.read_bytes()[:512]
    assert head.startswith(b"$date"), head[:40]
    text = head.decode("ascii")
    assert "$version" in text and "$timescale" in text, text
    # nothing else dumped anywhere in the build folder (no runner FST beside it)
    assert _waveforms(sim_build) == [str(wf.relative_to(sim_build))]
    # the progress records of the run reached the caller
    assert records and records[-1]["beats_expected"] > 0 and records[-1]["test"] == "full_run"


@needs_icarus
def test_waves_in_environment_without_waves_requested_writes_no_waveform(sim_build, monkeypatch):
    """A shell exporting WAVES=1 made every run dump an FST into the shared
    build folder. Waves not requested -> no waveform file anywhere."""
    from tb.sim import SimOptions, run_sim
    root = sim_build / "no-waves"
    monkeypatch.setenv("TB_SIM_BUILD", str(root))
    monkeypatch.setenv("WAVES", "1")
    res = run_sim(SimOptions(**TINY, waves=False))
    assert res.ok, res.failure_text()
    assert res.run.waves_file is None
    assert _waveforms(root) == []
    assert not list(root.rglob("cocotb_iverilog_dump.v"))   # no dump module built in


# ------------------------------------------------------ unwritable output
@pytest.fixture
def below_a_file(tmp_path):
    """A folder path below a regular file: not creatable, even for root."""
    f = tmp_path / "plain-file"
    f.write_text("keep me\n")
    return f / "sub"


def test_check_writable_dir_refuses_a_path_below_a_file(below_a_file):
    from golden.errors import OutputError
    from golden.files import check_writable_dir
    with pytest.raises(OutputError, match="not writable"):
        check_writable_dir(below_a_file, "build folder")


@pytest.mark.parametrize("cmd", [
    ["tb.sim", "--array", "8", "--groups", "2", "--sim", "icarus", "-T", "1", "--samples", "1"],
    ["tb.soak", "--array", "8", "--groups", "2", "--sim", "icarus", "--spikes", "1"],
])
def test_unwritable_sim_build_is_one_error_line(cmd, below_a_file):
    env = _clean_env(TB_SIM_BUILD=str(below_a_file))
    r = subprocess.run([PY, "-m", *cmd], capture_output=True, text=True, env=env, cwd=REPO,
                       timeout=300)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, r.stderr
    assert len(lines) == 1 and lines[0].startswith(f"python -m {cmd[0]}: error: "), r.stderr
    assert "not writable" in lines[0] and "TB_SIM_BUILD" in lines[0], lines[0]
    assert "Traceback" not in r.stderr and r.stdout == ""   # nothing ran, no summary
    assert below_a_file.parent.read_text() == "keep me\n"


def test_emit_unwritable_out_dir_fails_before_elaboration(below_a_file, monkeypatch, capsys):
    import gen.emit
    monkeypatch.setattr(gen.emit, "generate_verilog",
                        lambda *a, **k: pytest.fail("elaborated before checking --out-dir"))
    rc = gen.emit.main(["--verilog", "--array", "8", "--groups", "2",
                        "--out-dir", str(below_a_file)])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("python -m gen.emit: error: --out-dir") and \
        len(err.strip().splitlines()) == 1, err


# ---------------------------------------------------------- long phases
def test_emit_announces_a_long_elaboration(tmp_path, monkeypatch, capsys):
    """``gen.emit --array 4096`` was silent for 15 minutes."""
    import gen.emit
    calls = []

    def fake_emit(cfg, out, top):
        calls.append(cfg.array)
        return Path(out) / f"{top}.v", Path(out) / f"{top}.json"

    monkeypatch.setattr(gen.emit, "emit", fake_emit)
    assert gen.emit.main(["--verilog", "--array", "4096", "--out-dir", str(tmp_path)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert calls == [4096] and len(err) == 1, err
    m = re.search(r"elaborating .*ARRAY=4096.*about (\d+) min", err[0])
    assert m and 5 <= int(m.group(1)) <= 40, err[0]
    # a small array is quick: no announcement
    assert gen.emit.main(["--verilog", "--array", "32", "--out-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().err == ""


def test_build_estimate_uses_recorded_builds(tmp_path, monkeypatch):
    from golden.config import HwConfig
    from tb import build as tbb
    monkeypatch.setenv("TB_SIM_BUILD", str(tmp_path))
    cfg = HwConfig(array=512, groups=8)
    model = tbb.build_estimate(cfg, "verilator")
    assert 60 <= model <= 600, model          # minutes, not seconds, for ARRAY=512
    assert tbb.build_estimate(HwConfig(array=8, groups=2), "verilator") < model
    # this machine recorded builds twice as slow as the model: the estimate follows
    for a in (8, 32, 32):
        tbb._record_build_time("verilator", a, 2 * tbb._model_seconds("verilator", a))
    assert tbb.build_estimate(cfg, "verilator") == pytest.approx(2 * model)


def test_run_sim_reports_each_phase(sim_build, monkeypatch):
    """One line per phase that works (emit, build with an estimate, run); a
    second identical run reuses emit and build and says only ``run``."""
    from tb.sim import SimOptions, run_sim
    if shutil.which("iverilog") is None:
        pytest.skip("needs Icarus Verilog")
    monkeypatch.setenv("TB_SIM_BUILD", str(sim_build / "phases"))
    lines = []
    res = run_sim(SimOptions(**TINY), report=lines.append)
    assert res.ok, res.failure_text()
    assert [ln.split(":")[0] for ln in lines] == ["emit", "build", "run"], lines
    assert re.search(r"first build of this configuration, about \d+ s", lines[1]), lines[1]
    lines.clear()
    assert run_sim(SimOptions(**TINY), report=lines.append).ok
    assert [ln.split(":")[0] for ln in lines] == ["run"], lines


class _Stream(io.StringIO):
    def __init__(self, tty):
        super().__init__()
        self._tty = tty

    def isatty(self):
        return self._tty


def test_progress_bar_tty_and_log():
    from tb.cli import SimProgress
    rec = {"test": "full_run", "beats": 50, "beats_expected": 200, "cycles": 1234}
    tty = _Stream(True)
    bar = SimProgress(tty, after=0.0)
    bar(rec)
    bar(dict(rec, beats=100))
    bar.close()
    out = tty.getvalue()
    assert out.count("\r") == 2 and "25.0 %" in out and "50.0 %" in out and out.endswith("\n")
    log = _Stream(False)
    bar = SimProgress(log, every=0.0)
    bar(rec)
    bar.close()
    assert "\r" not in log.getvalue() and log.getvalue().count("\n") == 1
    assert "beats 50/200" in log.getvalue()


# ------------------------------------------------------------- options
def _parsers():
    import gen.emit
    import tb.sim
    import tb.soak
    return {"tb.sim": tb.sim.build_parser(), "tb.soak": tb.soak.build_parser(),
            "gen.emit": gen.emit._parser()}


@pytest.mark.parametrize("name", ["tb.sim", "tb.soak", "gen.emit"])
def test_every_option_has_help(name):
    p = _parsers()[name]
    missing = [a.option_strings or a.dest for a in p._actions
               if not a.help or a.help == argparse.SUPPRESS]
    assert missing == [], f"{name}: options without help: {missing}"
    text = p.format_help()
    for a in p._actions:
        if a.default not in (None, argparse.SUPPRESS, False) and a.option_strings \
                and "default" not in a.help:
            assert f"(default: {a.default})" in " ".join(text.split()), (name, a.option_strings)


@pytest.mark.parametrize("mod", ["tb.sim", "tb.soak", "tb.throughput", "gen.emit", "gen.lint"])
def test_help_runs_and_shows_defaults(mod):
    r = subprocess.run([PY, "-m", mod, "--help"], capture_output=True, text=True, cwd=REPO,
                       env=_clean_env(), timeout=120)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert r.stdout.startswith(f"usage: python -m {mod}"), r.stdout[:80]
    if mod != "gen.lint":
        assert "(default:" in r.stdout


@pytest.mark.parametrize("argv", [["-T", "100000"], ["--samples", "999"]])
def test_tb_sim_refuses_absurd_runs(argv, capsys):
    from tb.sim import MAX_SAMPLES, MAX_TIMESTEPS, parse_args
    assert MAX_TIMESTEPS == MAX_SAMPLES == 256   # the documented limits (--help, README)
    with pytest.raises(SystemExit) as e:
        parse_args(argv)
    lines = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(lines) == 1
    assert lines[0].startswith("python -m tb.sim: error:") and "from 1 to 256" in lines[0], lines


def test_soak_refuses_absurd_ranges(capsys):
    from tb.soak import main
    with pytest.raises(SystemExit) as e:
        main(["-T", "2-100000"])
    assert e.value.code == 2 and "HI <= 256" in capsys.readouterr().err


def test_no_cli_hides_bugs_behind_except_exception():
    """ProjectError is the one error a CLI catches (golden.cli.run_main); a
    bare ``except Exception`` turned bugs into one-line messages."""
    files = [REPO / "tb" / f"{m}.py" for m in ("build", "cli", "sim", "soak", "throughput", "demo")]
    files += [REPO / "gen" / "emit.py", REPO / "gen" / "lint.py"]
    bad = [f"{f.name}:{i}" for f in files
           for i, line in enumerate(f.read_text().splitlines(), 1)
           if re.search(r"except\s+(Exception|BaseException)\b|except\s*:", line)]
    assert bad == [], bad


# ------------------------------------------------------------------ make
@pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")
def test_make_without_target_prints_help_and_sets_up_nothing(tmp_path):
    venv = tmp_path / "venv"
    r = subprocess.run(["make", "-s", f"VENV={venv}"], capture_output=True, text=True, cwd=REPO,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    for needle in ("make sim", "make test", "make soak", "WAVES=", "ARRAY=", "TB_SIM_BUILD",
                   "ELIF_BUILD_DIR"):
        assert needle in r.stdout, needle
    assert not venv.exists(), "plain `make` started the set-up"


# ----------------------------------------------------------------- paths
def test_build_root_checkout_and_override(tmp_path, monkeypatch):
    from golden.paths import BUILD_DIR_ENV, build_path, build_root, checkout_root
    from tb.build import sim_build_dir
    monkeypatch.delenv(BUILD_DIR_ENV, raising=False)
    monkeypatch.delenv("TB_SIM_BUILD", raising=False)
    assert checkout_root() == REPO and build_root() == REPO
    assert sim_build_dir() == REPO / "sim_build"
    monkeypatch.setenv(BUILD_DIR_ENV, str(tmp_path / "out"))
    assert build_root() == tmp_path / "out" and build_path("reports") == tmp_path / "out" / "reports"
    assert sim_build_dir() == tmp_path / "out" / "sim_build"
    monkeypatch.setenv("TB_SIM_BUILD", str(tmp_path / "sb"))
    assert sim_build_dir() == tmp_path / "sb"


def test_no_output_folder_derived_from_module_location():
    """Output folders come from golden.paths.build_root(), not Path(__file__)
    (a wheel put sim_build/ inside site-packages)."""
    offenders = []
    for f in [*(REPO / "tb").glob("*.py"), REPO / "gen" / "emit.py", REPO / "gen" / "lint.py"]:
        text = f.read_text()
        if re.search(r"Path\(__file__\)[^\n]*parent\.parent", text):
            offenders.append(f.name)
    assert offenders == [], offenders


@pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")
def test_make_takes_waves_from_its_command_line_only(tmp_path):
    """WAVES is cocotb's variable too: an exported WAVES=1 must not turn
    waves on for every `make sim`; `make sim WAVES=1` does."""
    def waves(args, env_waves):
        env = dict(os.environ, **({"WAVES": env_waves} if env_waves else {}))
        env.pop("MAKEFLAGS", None)
        r = subprocess.run(["make", "-n", "sim", f"VENV={tmp_path / 'venv'}", *args],
                           capture_output=True, text=True, cwd=REPO, env=env, timeout=60)
        assert r.returncode == 0, r.stderr
        return re.search(r"--waves '([01])'", r.stdout).group(1)
    assert waves([], "1") == "0"
    assert waves(["WAVES=1"], None) == "1"
    assert waves([], None) == "0"
