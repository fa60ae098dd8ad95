"""``python -m tb.run``: CLI errors, a single-process run against the golden model,
the Dask fan-out (a 2-worker local cluster, a scheduler started here, a worker
killed mid-run) giving exactly the single-process result, and the build
cache's locks under concurrent builds.

One tiny network on one small configuration (ARRAY 8, GROUPS 2, Verilator):
its build is made once (about 20-40 s on a loaded machine) and cached in
sim_build/ for every test.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest

from golden.cli import run_main
from golden.config import HwConfig
from golden.fixed_model import run_fixed
from golden.network import Layer, Network, save_network

REPO = Path(__file__).resolve().parents[1]
SAMPLES = 5


def tiny_network() -> Network:
    """conv (own membrane) -> L block of two chained convs -> linear read-out."""
    rng = np.random.default_rng(5)
    return Network((2, 4, 4), (
        Layer.conv((2, 4, 4), rng.integers(-30, 90, (4, 2, 3, 3)), padding=1, mode="independent",
                   name="c1"),
        Layer.conv((4, 4, 4), rng.integers(-30, 70, (4, 4, 3, 3)), padding=1, block=0, name="c2"),
        Layer.conv((4, 4, 4), rng.integers(-30, 70, (4, 4, 3, 3)), padding=1, block=0, name="c3"),
        Layer.linear(rng.integers(-60, 60, (6, 64)), mode="readout", name="fc")))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("tbrun")
    net = tiny_network()
    save_network(net, d / "net.npz")
    x = (np.random.default_rng(6).random((SAMPLES, 3, 2, 4, 4)) < 0.4).astype(np.uint8)
    np.save(d / "x.npy", x)
    return d, net, x


def cli(argv) -> tuple[int, str, str]:
    from tb import run
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = run_main(run._main, run.PROG, argv)
        except SystemExit as e:     # the parser's one-line error
            code = e.code
    return code, out.getvalue(), err.getvalue()


def base_args(d: Path, *extra) -> list:
    return ["--network", str(d / "net.npz"), "--inputs", str(d / "x.npy"), "--array", "8",
            "--groups", "2", *extra]


def load_out(d: Path) -> tuple[dict, np.ndarray]:
    return json.loads((d / "results.json").read_text()), np.load(d / "outputs.npy")


# ----------------------------------------------------------- error paths
def _one_line_error(code, err, text):
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("python -m tb.run: error:"), err
    assert text in lines[0], lines[0]


def test_bad_network_file(files, tmp_path):
    d, _, _ = files
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    code, out, err = cli(["--network", str(bad), "--inputs", str(d / "x.npy"), "--workers", "1"])
    _one_line_error(code, err, "not a readable .npz archive")
    code, out, err = cli(["--network", str(tmp_path / "missing.npz"), "--inputs", str(d / "x.npy")])
    _one_line_error(code, err, "no such file")


@pytest.mark.parametrize("what, make, text", [
    ("dtype", lambda x: x.astype(np.float32), "dtype float32, expected uint8"),
    ("shape", lambda x: x[:, :, :, :3], "expected [samples, T, 2, 4, 4]"),
    ("value", lambda x: np.where(np.arange(x.size).reshape(x.shape) == 7, 2, x).astype(np.uint8),
     "value 2 at index (0, 0, 0, 1, 3)"),
])
def test_bad_inputs(files, tmp_path, what, make, text):
    d, _, x = files
    np.save(tmp_path / "x.npy", make(x))
    code, out, err = cli(["--network", str(d / "net.npz"), "--inputs", str(tmp_path / "x.npy"),
                          "--workers", "1", "--out", str(tmp_path / "o")])
    _one_line_error(code, err, text)
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_network_too_big_for_the_given_configuration(files):
    d, _, _ = files
    code, _, err = cli(base_args(d, "--weight-rows", "32", "--workers", "1"))
    _one_line_error(code, err, "layer 1 ('c2'): weight rows per chunk (input channels x kernel rows x window width) 48 > weight_rows=32")
    # 16 rows hold one pass of every layer (the membranes spill, test_spilled_membranes_*);
    # 8 do not hold layer c1's 16
    code, _, err = cli(base_args(d, "--mem-rows", "8", "--workers", "1"))
    _one_line_error(code, err, "layer 0 ('c1'): one weight block's tiles need 16 membrane rows")
    _one_line_error(code, err, "> mem_rows=8, so even spilled membranes do not fit")
    code, _, err = cli(base_args(d, "--config", str(d / "x.npy")))
    _one_line_error(code, err, "--config excludes --array, --groups")
    code, _, err = cli(base_args(d, "--samples", "3,99", "--workers", "1"))
    _one_line_error(code, err, "sample 99 does not exist")


def test_spilled_membranes_give_the_resident_outputs(files, single, tmp_path):
    """The network needs 24 membrane rows; with 16 they spill off chip and back
    (tb/offchip.py checks every spilled row), and the outputs stay those of the
    resident run."""
    d, _, _ = files
    out = tmp_path / "spilled"
    code, stdout, err = cli(base_args(d, "--mem-rows", "16", "--workers", "1", "--out", str(out)))
    assert code == 0, stdout + err
    res, outputs = load_out(out)
    res0, outputs0 = load_out(single[0])
    assert res["rows_needed"]["mem_rows"] > res["cfg"]["mem_rows"] == 16
    assert res["ok"] and res["golden_equal"] and res["checked"]["mismatches"] == 0
    assert res["checked"]["spill_rows"] > 0 and "spilled rows" in stdout
    assert res0["checked"]["spill_rows"] == 0
    np.testing.assert_array_equal(outputs, outputs0)


def test_samples_ranges_round_trip():
    from tb.run import parse_samples
    from tb.shard import format_samples
    assert parse_samples("7,0-3,9-10,2") == [0, 1, 2, 3, 7, 9, 10]
    assert format_samples([10, 0, 1, 2, 3, 7, 9]) == "0-3,7,9-10"


# ------------------------------------------------------------------ runs
@pytest.fixture(scope="module")
def single(files, tmp_path_factory):
    """One process, every sample; also the reference of the Dask runs."""
    d, _, _ = files
    out = tmp_path_factory.mktemp("single")
    code, stdout, err = cli(base_args(d, "--workers", "1", "--out", str(out)))
    assert code == 0, stdout + err
    return out, stdout, err


def test_single_process_equals_the_golden_model(files, single):
    d, net, x = files
    out, stdout, err = single
    doc, outputs = load_out(out)
    cfg = HwConfig.from_dict(doc["cfg"])
    assert cfg.array == 8 and cfg.groups == 2 and doc["rows_needed"] == {"weight_rows": 64,
                                                                         "mem_rows": 24}
    gold = np.swapaxes(run_fixed(cfg, net, np.swapaxes(x, 0, 1)).output, 0, 1)   # [B, T, 6]
    assert outputs.dtype == np.int64 and np.array_equal(outputs, gold)
    assert doc["predictions"] == gold.sum(axis=1).argmax(axis=1).tolist()
    assert doc["ok"] and doc["failing"] == [] and doc["sample_ids"] == list(range(SAMPLES))
    c = doc["checked"]
    assert c["mismatches"] == 0 and c["beats"] == c["beats_expected"] > 0 and c["membrane_words"] > 0
    assert "shards: this process (no Dask) (--workers 1)" in err
    assert "   result:  PASS" in stdout and "cycles/CPU-s" in stdout
    assert "rate (bulk path)" in stdout and "simulating and checking alone" in stdout
    assert [s["path"] for s in doc["shards"]] == ["bulk"] and doc["run_cpu_seconds"] > 0
    # the outputs table: one row per sample with its class and its read-out summed over T
    row = next(ln for ln in stdout.splitlines() if ln.split()[:1] == ["3"])
    assert row.split() == ["3", str(doc["predictions"][3])] + [str(v) for v in gold[3].sum(axis=0)]


def _same_result(a_dir: Path, b_dir: Path) -> dict:
    a, ao = load_out(a_dir)
    b, bo = load_out(b_dir)
    assert np.array_equal(ao, bo)
    for k in ("ok", "sample_ids", "predictions", "sample_mismatches", "checked", "failing",
              "golden_equal", "cfg"):
        assert a[k] == b[k], k
    return b


def test_two_worker_local_cluster_equals_one_process(files, single, tmp_path):
    pytest.importorskip("distributed")
    d, _, _ = files
    code, stdout, err = cli(base_args(d, "--workers", "2", "--shard-size", "2",
                                      "--out", str(tmp_path)))
    assert code == 0, stdout + err
    doc = _same_result(single[0], tmp_path)
    assert "shards: a local Dask cluster of 2 worker processes" in err
    assert [s["samples"] for s in doc["shards"]] == ["0-1", "2-3", "4"]
    assert len({s["pid"] for s in doc["shards"]}) == 2      # both workers ran shards


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    import logging
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, silence_logs=logging.ERROR) as c:
        yield c


def test_scheduler_address_of_a_running_cluster(files, single, cluster, tmp_path):
    d, _, _ = files
    code, stdout, err = cli(base_args(d, "--scheduler", cluster.scheduler_address,
                                      "--shard-size", "3", "--out", str(tmp_path)))
    assert code == 0, stdout + err
    _same_result(single[0], tmp_path)
    assert f"the Dask cluster at {cluster.scheduler_address}" in err
    assert "2 worker(s) connected" in err


def _proc_table() -> dict:
    """pid -> (ppid, state, start time, comm) of every process (Linux /proc)."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
        except OSError:
            continue
        comm = st[st.index("(") + 1:st.rindex(")")]
        f = st[st.rindex(")") + 2:].split()
        out[int(d)] = (int(f[1]), f[0], int(f[19]), comm)
    return out


#: process names of the simulators a shard starts (Verilator builds are named after
#: their toplevel; Icarus runs vvp)
SIM_NAMES = ("tb_bulk_top", "lif_pe_array", "vvp")


def _alive(pid: int, start: int) -> bool:
    """The process ``pid`` that started at ``start`` still runs (a zombie does not)."""
    p = _proc_table().get(pid)
    return p is not None and p[2] == start and p[1] != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_killed_worker_loses_and_double_counts_nothing(files, single, cluster, tmp_path):
    """A worker process dies while its first shard's simulator runs: the scheduler
    reruns that shard elsewhere; every sample is reported exactly once, results
    unchanged, and the dead worker's simulator does not run on (the plugin stops
    it with SIGSTOP before killing the worker, so only tb.build's watchdog can
    end it)."""
    import cloudpickle
    from distributed import Client, WorkerPlugin

    d = files[0]
    marker = tmp_path / "killed"

    class KillOnFirstShard(WorkerPlugin):
        name = "tb-run-test-kill"

        def __init__(self, path):
            self.path = str(path)

        def transition(self, key, start, finish, **kw):
            if finish == "executing" and "tb.run-shard" in str(key):
                try:
                    fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                except FileExistsError:
                    return
                import signal
                import threading

                def kill_when_simulating(fd=fd, key=key):
                    me = os.getpid()
                    t_end = time.monotonic() + 120
                    while time.monotonic() < t_end:
                        procs = _proc_table()
                        mine, todo = [], [me]
                        while todo:
                            p = todo.pop()
                            kids = [c for c, v in procs.items() if v[0] == p]
                            mine += kids
                            todo += kids
                        sims = [c for c in mine if procs[c][3] in SIM_NAMES]
                        if sims:
                            for c in sims:
                                os.kill(c, signal.SIGSTOP)   # cannot finish on its own now
                            text = " ".join(f"{c}:{procs[c][2]}" for c in sims)
                            os.write(fd, f"{me} {key}\n{text}".encode())
                            os.close(fd)
                            os._exit(1)     # the worker process dies here, mid-simulation
                        time.sleep(0.01)
                    os.write(fd, f"{me} {key}\n".encode())
                    os.close(fd)
                    os._exit(1)

                threading.Thread(target=kill_when_simulating, daemon=True).start()

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        with Client(cluster.scheduler_address) as c:
            c.register_plugin(KillOnFirstShard(marker))
            pids0 = {w["pid"] for w in c.scheduler_info()["workers"].values()} \
                if all("pid" in w for w in c.scheduler_info()["workers"].values()) else set()
            try:
                code, stdout, err = cli(base_args(d, "--scheduler",
                                                  cluster.scheduler_address, "--shard-size", "1",
                                                  "--out", str(tmp_path / "o")))
            finally:
                c.unregister_worker_plugin(KillOnFirstShard.name)
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    head, _, sims = marker.read_text().partition("\n")
    sims = [tuple(int(x) for x in w.split(":")) for w in sims.split()]
    try:
        assert code == 0, stdout + err
        killed_pid = int(head.split()[0])          # the kill did happen
        assert not pids0 or killed_pid in pids0
        assert sims, "the killed worker had no simulator running"
        t_end = time.monotonic() + 10
        while any(_alive(*s) for s in sims) and time.monotonic() < t_end:
            time.sleep(0.1)
        orphans = [s[0] for s in sims if _alive(*s)]
        assert not orphans, f"simulator(s) {orphans} of the killed worker still run"
        doc = _same_result(single[0], tmp_path / "o")
        assert sorted(s["samples"] for s in doc["shards"]) == [str(i) for i in range(SAMPLES)]
        assert killed_pid not in {s["pid"] for s in doc["shards"]}
    finally:
        import signal
        for pid, start in sims:     # never leave a stopped orphan behind, pass or fail
            if _alive(pid, start):
                os.kill(pid, signal.SIGKILL)


# ------------------------------------------------------ fan-out plumbing
def _shard(ids, ok=True, val=0):
    from tb.shard import CYCLES, ShardResult
    n = len(ids)
    return ShardResult(tuple(ids), ok, np.full((n, 1, 2), val, np.int64),
                       {"beats": n, "mismatches": 0 if ok else 1}, {k: 10 * n for k in CYCLES},
                       [0] * n if ok else [1] + [0] * (n - 1), () if ok else (ids[0],), (), "",
                       True, 1.0, 1.0, "", "", True)


def test_merge_keys_results_by_sample_id():
    from tb.fanout import RunError, merge
    m = merge([_shard([2, 3], val=2), _shard([0, 1]), _shard([2, 3], val=2)], [0, 1, 2, 3])
    assert m.duplicates == 1 and m.checked["beats"] == 4 and m.cycles["cycles"] == 40
    assert m.outputs[:, 0, 0].tolist() == [0, 0, 2, 2] and m.ok
    with pytest.raises(RunError, match="missing 3"):
        merge([_shard([0, 1]), _shard([2])], [0, 1, 2, 3])
    with pytest.raises(RunError, match="overlap on samples 1"):
        merge([_shard([0, 1]), _shard([1, 2])], [0, 1, 2])


def test_failure_names_samples_and_the_reproduce_command():
    from types import SimpleNamespace

    from tb.fanout import merge
    from tb.run import _repro_template, failure_text
    a = SimpleNamespace(network="n.npz", inputs="x.npy", config=None, array=8, groups=2,
                        weight_rows=None, mem_rows=None, cfg=[], sim="verilator", stress=0, seed=1,
                        path="bulk")
    m = merge([_shard([0, 1]), _shard([17, 18], ok=False)], [0, 1, 17, 18])
    text = failure_text(a, m, _repro_template(a))
    assert not m.ok and m.failing == [17]
    assert text.splitlines()[0] == (
        "FAILED samples 17; reproduce: python -m tb.run --network n.npz --inputs x.npy --array 8 "
        "--groups 2 --sim verilator --samples 17 --workers 1")
    a.path = "bfm"    # the per-cycle path is named in the command; bulk is the default
    assert failure_text(a, m, _repro_template(a)).splitlines()[0].endswith(
        "--sim verilator --path bfm --samples 17 --workers 1")


def test_single_process_fallback_without_dask(monkeypatch):
    from tb import fanout
    lines = []
    monkeypatch.setattr(fanout, "dask_available", lambda: False)
    monkeypatch.delenv(fanout.SCHEDULER_ENV, raising=False)
    assert fanout.choose(None, None, report=lines.append).kind == "single"
    assert lines == ["shards: this process (no Dask) (Dask is not installed: pip install "
                     "'efficientlif-rtl[dask]')"]
    with pytest.raises(fanout.RunError, match="Dask is not installed"):
        fanout.choose(None, "tcp://127.0.0.1:1")
    monkeypatch.setattr(fanout, "dask_available", lambda: True)
    monkeypatch.setenv(fanout.SCHEDULER_ENV, "tcp://head:8786")
    assert fanout.choose(None, None).address == "tcp://head:8786"
    assert fanout.choose(2, None).kind == "local"           # --workers wins over the variable
    assert fanout.choose(8, None, samples=3).workers == 3   # no idle workers
    assert fanout.choose(8, None, samples=1).kind == "single"


def test_concurrent_builds_of_one_configuration_build_once(tmp_path):
    """Two processes build the same new configuration at once into one shared
    build folder: the file lock lets one build and the other reuse it."""
    code = textwrap.dedent("""
        import json, sys, time
        from golden.config import HwConfig
        from tb.demo_rtl import build_core
        time.sleep(max(0.0, float(sys.argv[1]) - time.time()))   # both start together
        b = build_core(HwConfig(array=4, groups=2, mem_rows=8, weight_rows=8), "icarus")
        print(json.dumps({"reused": b.reused, "dir": str(b.build_dir)}))
    """)
    env = dict(os.environ, TB_SIM_BUILD=str(tmp_path / "sb"))
    start = str(time.time() + 4.0)
    procs = [subprocess.Popen([sys.executable, "-c", code, start], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    res = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        res.append(json.loads(out.strip().splitlines()[-1]))
    assert sorted(r["reused"] for r in res) == [False, True]
    assert res[0]["dir"] == res[1]["dir"]


SMALL = HwConfig(array=4, groups=2, mem_rows=8, weight_rows=8)


def test_a_build_in_use_is_not_replaced_by_a_build_of_other_sources(tmp_path, monkeypatch):
    """Two checkouts (or an old and a new gen/) share one build folder: a
    build of other Verilog under the same configuration name goes to its own
    content-addressed folder, so a Build handed out earlier keeps its binary
    (before: the folder was rebuilt in place and the first user simulated the
    other sources' binary)."""
    import shutil

    from tb.build import KEY_FILE, build, emit_rtl
    monkeypatch.setenv("TB_SIM_BUILD", str(tmp_path / "sb"))
    v, m = emit_rtl(SMALL)
    a = build(SMALL, "icarus", v, m)
    key_a, vvp_a = (a.build_dir / KEY_FILE).read_text(), (a.build_dir / "sim.vvp").read_bytes()
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(m, other / m.name)
    (other / v.name).write_text(v.read_text() + "\n// other sources\n")
    b = build(SMALL, "icarus", other / v.name, other / m.name)
    assert not b.reused and b.build_dir != a.build_dir
    assert b.build_dir.parent == a.build_dir.parent            # same configuration name
    assert (a.build_dir / KEY_FILE).read_text() == key_a
    assert (a.build_dir / "sim.vvp").read_bytes() == vvp_a
    assert build(SMALL, "icarus", v, m).reused                # both stay cached


def test_an_unstamped_or_temporary_folder_is_never_reused(tmp_path, monkeypatch):
    """A folder without its completion stamp, and a leftover ``.tmp-`` folder
    of a killed build (even one holding a binary and the right key), are
    rebuilt over / removed, not reused."""
    import shutil

    from tb.build import KEY_FILE, TMP_PREFIX, build, emit_rtl
    monkeypatch.setenv("TB_SIM_BUILD", str(tmp_path / "sb"))
    v, m = emit_rtl(SMALL)
    a = build(SMALL, "icarus", v, m)
    stale = a.build_dir.parent / f"{TMP_PREFIX}{a.build_dir.name}-deadbeef"
    shutil.copytree(a.build_dir, stale)
    (a.build_dir / KEY_FILE).unlink()                         # as if killed before the stamp
    b = build(SMALL, "icarus", v, m)
    assert not b.reused and b.build_dir == a.build_dir and (b.build_dir / KEY_FILE).exists()
    assert not stale.exists()
    assert sorted(p.name for p in b.build_dir.parent.iterdir()) == [b.build_dir.name]


def test_a_build_killed_midway_is_rebuilt_and_runs(tmp_path):
    """SIGKILL a process while Verilator compiles: it leaves only a ``.tmp-``
    folder; the next build rebuilds (not reused), removes it, and the result
    simulates and passes."""
    import signal
    code = textwrap.dedent("""
        import json
        from golden.config import HwConfig
        from tb.demo_rtl import build_core
        b = build_core(HwConfig(array=4, groups=2), "verilator", "bfm")
        print(json.dumps({"reused": b.reused, "dir": str(b.build_dir)}))
    """)
    sb = tmp_path / "sb"
    env = dict(os.environ, TB_SIM_BUILD=str(sb))
    p = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=env)
    t0 = time.monotonic()
    while not list(sb.glob("verilator/*/.tmp-*/*.o")) and time.monotonic() - t0 < 240:
        assert p.poll() is None, "the build ended before it could be killed"
        time.sleep(0.02)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    home = next(q for q in sb.glob("verilator/*") if q.is_dir())
    assert [q.name[:5] for q in home.iterdir()] == [".tmp-"]  # nothing under a key's name
    time.sleep(0.5)                                           # the runner's watchdog kills the compiler
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["reused"] is False
    assert [q.name for q in home.iterdir()] == [Path(res["dir"]).name]
    sim = subprocess.run([sys.executable, "-m", "tb.sim", "--array", "4", "--groups", "2",
                          "--sim", "verilator", "--path", "bfm", "--samples", "1", "-T", "2"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
    assert sim.returncode == 0, sim.stdout + sim.stderr
    assert "reused" in sim.stdout


def test_every_option_has_help_and_help_runs():
    import argparse

    from tb.run import build_parser
    p = build_parser()
    missing = [a.option_strings for a in p._actions if not a.help or a.help == argparse.SUPPRESS]
    assert missing == []
    r = subprocess.run([sys.executable, "-m", "tb.run", "--help"], capture_output=True, text=True,
                       cwd=REPO, timeout=120)
    assert r.returncode == 0 and r.stdout.startswith("usage: python -m tb.run"), r.stderr
    text = " ".join(r.stdout.split())
    assert "(default: verilator)" in text and "default: None" not in text


def test_recording_a_lif_last_layer_keeps_spikes_at_their_neuron_index():
    """A chained LIF last layer: group g's slot k is neuron g·C/N + k (not g·S + k),
    its spikes are recorded, padding slots are not, and a mismatch is blamed on
    its sample and named by the sample's global id."""
    from golden.schedule import Beat
    from tb.demo_cocotb import RecordingScoreboard
    cfg = HwConfig(array=8, groups=2)                       # S = 4 slots per group
    layer = Layer.linear(np.ones((6, 3), np.int64))         # 3 neurons per group
    z = np.zeros(4, dtype=np.int64)
    beats = [Beat(np.array([1, 1, 0, 0]), z + 3, 0, 0, 0, 0, 0, 0, 0),
             Beat(np.array([1, 0, 1, 0]), z + 5, 0, 1, 1, 0, 0, 0, 0),
             Beat(np.array([0, 1, 0, 0]), z, 0, 0, 0, 0, 0, 0, 1),
             Beat(z, z, 0, 1, 1, 0, 0, 0, 1)]

    class Stats:
        cycles = 0
    sb = RecordingScoreboard(cfg, beats)
    sb.attach(2, 1, 6, Stats, None, last=(0, layer), sample_ids=[40, 41])

    def got(b, spikes=None):
        return {"spikes": list(b.spikes if spikes is None else spikes), "values": list(b.values),
                "tile": b.wire_tile, "group": b.group, "last": b.last, "readout": b.readout}
    assert all(sb.check_beat(got(b)) for b in beats[:3])
    assert not sb.check_beat(got(beats[3], [0, 0, 1, 0]))
    assert sb.readout[0, 0].tolist() == [1, 1, 0, 1, 0, 1]
    assert sb.readout[1, 0].tolist() == [0, 1, 0, 0, 0, 1]   # what the RTL said
    assert sb.sample_mismatches.tolist() == [0, 1]
    assert "sample 41, layer 0" in sb.mismatches[0].text


def test_bad_config_file(files, tmp_path):
    d, _, _ = files
    cfgs = {"bad.json": "{not json", "field.json": json.dumps({"array": 8, "colour": 1}),
            "value.json": json.dumps({"array": 8, "groups": 3})}
    texts = {"bad.json": "not valid JSON", "field.json": "unknown configuration field(s): 'colour'",
             "value.json": "groups=3: must divide array=8"}
    for name, body in cfgs.items():
        (tmp_path / name).write_text(body)
        code, _, err = cli(["--network", str(d / "net.npz"), "--inputs", str(d / "x.npy"),
                            "--config", str(tmp_path / name), "--workers", "1"])
        _one_line_error(code, err, texts[name])


def test_progress_lines_without_a_terminal():
    from tb.fanout import Progress
    log = io.StringIO()
    p = Progress(3, log, every=0.0)
    for n in (1, 1, 3, 3, 2):
        p.set(n)
    p.close()
    lines = log.getvalue().splitlines()
    assert [ln.split(",")[0] for ln in lines] == ["run:   1/3 samples done", "run:   1/3 samples done",
                                                  "run:   3/3 samples done"]


def test_configuration_must_match_the_quantized_arithmetic(files, tmp_path):
    """A network quantized for some theta/leak/widths is never run with others:
    --config and --cfg that differ are refused by field; without them the
    network's own arithmetic replaces the defaults."""
    import dataclasses
    from golden.network import load_network
    from tb import run
    d, _, _ = files
    q = HwConfig(array=8, groups=2, theta_int=300, reset="hard")
    net = dataclasses.replace(load_network(d / "net.npz"), arithmetic=q.arithmetic())
    save_network(net, tmp_path / "net.npz")
    (tmp_path / "cfg.json").write_text(json.dumps(HwConfig(array=8, groups=2).to_dict()))
    args = ["--network", str(tmp_path / "net.npz"), "--inputs", str(d / "x.npy"), "--workers", "1"]
    code, _, err = cli(args + ["--config", str(tmp_path / "cfg.json")])
    _one_line_error(code, err, "theta_int=256, but the network was quantized for theta_int=300")
    code, _, err = cli(args + ["--array", "8", "--groups", "2", "--cfg", "theta_int=256"])
    _one_line_error(code, err, "--cfg theta_int=256, but the network was quantized for theta_int=300")
    a = run.build_parser().parse_args(args + ["--array", "8", "--groups", "2"])
    got = run._network_arithmetic(net, HwConfig(array=8, groups=2), a)
    assert got.theta_int == 300 and got.reset == "hard" and got.array == 8
    plain = load_network(d / "net.npz")
    assert run._network_arithmetic(plain, HwConfig(array=8, groups=2), a) == HwConfig(array=8, groups=2)
