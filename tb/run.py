"""``python -m tb.run``: run a user's network over an input set on the generated RTL.

::

    python -m tb.run --network NET.npz --inputs X.npy
                     [--array A --groups N [--weight-rows R] [--mem-rows R] [--cfg F=V ...]
                      | --config CFG.json]
                     [--sim verilator|icarus] [--samples 0-9,17] [--workers N | --scheduler ADDR]
                     [--shard-size K] [--stress 0|1] [--seed S] [--path bulk|bfm]
                     [--out DIR] [-q]

Loads the network (:func:`golden.network.load_network`) and the inputs
(``.npy``, 0/1 ``uint8`` or ``bool`` ``[samples, T, *in_shape]``), takes the
configuration from ``--config`` (JSON of :meth:`HwConfig.to_dict`, e.g.
written by ``python -m golden.convert --config``) or from the options
(``weight_rows`` / ``mem_rows`` not given: the defaults, grown to a power of
two that holds the network, :func:`golden.mapping.rows_needed`), refuses a
network that does not fit with one line naming the layer and the buffer,
then runs every selected sample on the RTL (:func:`tb.shard.run_shard`:
every beat and every membrane row after every timestep against the golden
schedule, the recorded outputs against :func:`golden.fixed_model.run_fixed`),
in this process or sharded over Dask (:mod:`tb.fanout`).

stdout: the summary (what ``make sim`` prints: pass/fail, beats, spikes,
membrane words, mismatches, cycles, simulation rate) and the outputs of every
sample (read-out summed over T, predicted class = argmax). stderr: phase
lines and progress. ``--out DIR``: ``results.json`` and ``outputs.npy``
(int64 ``[samples, T, outputs]``, rows in the order of ``sample_ids`` in the
JSON), written together, all or nothing. A failing sample is named with the
command that reproduces it. Exit status 0 pass, 1 mismatch / failed
simulation or build, 2 bad options or files (one line).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from golden.cli import OneLineParser, bounded_int, posint, run_main
from golden.config import MAX_ROWS, ConfigError, HwConfig
from golden.errors import ProjectError
from golden.files import atomic_write, check_writable_dir, require_file
from golden.mapping import rows_needed, weight_rows_total
from golden.network import NetworkError, load_network

from .build import SIMULATORS, BuildError
from .cli import parse_cfg_items, phase
from .fanout import Job, Progress, choose, merge, run_shards
from .shard import PATHS, format_samples

__all__ = ["InputError", "load_inputs", "parse_samples", "choose_config", "main", "PROG"]

PROG = "python -m tb.run"
#: outputs printed on stdout (all of them go to --out)
#: Outputs per sample printed in the table (all of them are in outputs.npy).
MAX_OUTPUTS_PRINTED = 32
MAX_PRINTED = 64


class InputError(ProjectError, ValueError):
    """A bad input spike file or sample selection; the message names the file."""


# ------------------------------------------------------------------- inputs
def load_inputs(path, in_shape: tuple, net=None) -> np.ndarray:
    """The 0/1 spikes of ``path`` (.npy, uint8 or bool ``[samples, T, *in_shape]``) as uint8.

    A direct-input network (``net.input_bits``, docs/fixed-point.md F2d) also takes
    integers ``[samples, T, *net.image_shape]`` and returns their bit planes."""
    path = require_file(path, "inputs", InputError)
    where = f"inputs {path!r}"
    try:
        x = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise InputError(f"{where}: not a readable .npy array ({str(e).splitlines()[0]})") from None
    if not isinstance(x, np.ndarray):
        x.close()
        raise InputError(f"{where}: an .npz archive, expected one .npy array")
    img = getattr(net, "image_shape", None)
    if getattr(net, "input_bits", 0) and x.dtype.kind in "iu" and x.ndim == 2 + len(img) \
            and tuple(x.shape[2:]) == tuple(img) and tuple(img) != tuple(in_shape):
        if x.shape[0] < 1 or x.shape[1] < 1:
            raise InputError(f"{where}: shape {tuple(x.shape)} has an empty samples or T axis")
        try:
            return net.input_spikes(x)
        except ValueError as e:
            raise InputError(f"{where}: {e}") from None
    if x.dtype not in (np.uint8, np.bool_):
        raise InputError(f"{where}: dtype {x.dtype}, expected uint8 (or bool) 0/1 spikes")
    want = ("samples", "T") + tuple(in_shape)
    if x.ndim != 2 + len(in_shape) or tuple(x.shape[2:]) != tuple(in_shape):
        raise InputError(f"{where}: shape {tuple(x.shape)}, expected [samples, T, "
                         f"{', '.join(str(d) for d in in_shape)}] for the network's input "
                         f"{tuple(in_shape)}")
    if x.shape[0] < 1 or x.shape[1] < 1:
        raise InputError(f"{where}: shape {tuple(x.shape)} has no {want[0 if x.shape[0] < 1 else 1]}")
    x = x.astype(np.uint8)
    bad = np.argwhere(x > 1)
    if bad.size:
        at = tuple(int(i) for i in bad[0])
        raise InputError(f"{where}: value {int(x[at])} at index {at}; spikes must be 0 or 1")
    return x


def parse_samples(text: str) -> list:
    """``"0-9,17"`` -> sorted unique ids; raises argparse's error for bad syntax."""
    out = set()
    for item in text.split(","):
        item = item.strip()
        lo, sep, hi = item.partition("-")
        try:
            a = int(lo)
            b = int(hi) if sep else a
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"--samples expects ids and ranges like 0-9,17, got {text!r}") from None
        if a < 0 or b < a:
            raise argparse.ArgumentTypeError(f"--samples: bad range {item!r} in {text!r}")
        if b - a > 10_000_000:
            raise argparse.ArgumentTypeError(f"--samples: range {item!r} is too large")
        out.update(range(a, b + 1))
    return sorted(out)


# ------------------------------------------------------------ configuration
def _pow2_at_least(n: int) -> int:
    return 1 << max(0, (int(n) - 1).bit_length())


def choose_config(net, base: HwConfig, rows_given: dict) -> tuple[HwConfig, dict]:
    """The configuration the network runs on, and the rows it needs.

    ``base`` holds every field; ``rows_given`` names the ``weight_rows`` /
    ``mem_rows`` the user fixed (kept, checked). The others become the
    default grown to the smallest power of two that holds the network.
    Raises :class:`NetworkError` (one line naming the layer and what does
    not fit) when the network cannot run on it.
    """
    widest = base.replace(weight_rows=MAX_ROWS, mem_rows=MAX_ROWS)
    try:
        net.validate(widest)   # arithmetic and the largest buffers: bounded work, named layer
    except NetworkError as e:
        raise NetworkError(f"the network does not fit {base.array} PEs x {base.groups} groups: "
                           f"{e}") from None
    need_w, need_m = rows_needed(widest, net.layers)
    # two of the largest weight blocks (loading overlaps the EVENTs), or everything at once
    want_w = min(weight_rows_total(widest, net.layers), 2 * need_w)
    d = HwConfig()
    rows = {"weight_rows": rows_given.get("weight_rows") or min(MAX_ROWS, max(
                d.weight_rows, _pow2_at_least(want_w))),
            "mem_rows": rows_given.get("mem_rows") or min(MAX_ROWS, max(
                d.mem_rows, _pow2_at_least(need_m)))}
    cfg = base.replace(**rows)
    try:
        net.validate(cfg)
    except NetworkError as e:
        raise NetworkError(f"the network does not fit the configuration: {e}") from None
    return cfg, {"weight_rows": need_w, "mem_rows": need_m}


def _load_config(path: str) -> HwConfig:
    where = f"--config {path!r}"
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise ConfigError(f"{where}: cannot read it ({e.strerror or e})") from None
    try:
        d = json.loads(text)
    except ValueError as e:
        raise ConfigError(f"{where}: not valid JSON ({e})") from None
    try:
        return HwConfig.from_dict(d)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None


# ---------------------------------------------------------------- options
class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Defaults in --help, except the "not given" ones (None, [], False): their help says it."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or action.default == []:
            return action.help
        return super()._get_help_string(action)


def build_parser() -> OneLineParser:
    p = OneLineParser(
        formatter_class=_Help, prog=PROG, description="Run a network (.npz) over an input set (.npy) on the generated RTL, "
                               "checking every beat and membrane row against the golden model.",
        epilog="Exit status: 0 pass, 1 mismatch or failed simulation/build, 2 bad options or files. "
               "Without --workers/--scheduler the samples are sharded over a local Dask cluster "
               "with one worker per CPU ($DASK_SCHEDULER_ADDRESS: that cluster); without Dask "
               "installed, in this process.")
    p.add_argument("--network", required=True, metavar="NET.npz", help="network file (docs/network-format.md); required")
    p.add_argument("--inputs", required=True, metavar="X.npy",
                   help="input spikes, uint8 0/1 [samples, T, *in_shape]; required")
    p.add_argument("--config", metavar="CFG.json", default=None,
                   help="hardware configuration (HwConfig JSON, e.g. from golden.convert --config); "
                        "excludes --array/--groups/--weight-rows/--mem-rows/--cfg")
    d = HwConfig()
    p.add_argument("--array", type=posint("ARRAY"), default=None, metavar="A", help=f"PEs (default {d.array})")
    p.add_argument("--groups", type=posint("GROUPS"), default=None, metavar="N",
                   help=f"C#N channel groups (default {d.groups})")
    p.add_argument("--weight-rows", type=posint("--weight-rows", MAX_ROWS), default=None, metavar="R",
                   help="weight buffer rows (default: 256, or the power of two that holds two of the network's largest weight blocks, or all its weights)")
    p.add_argument("--mem-rows", type=posint("--mem-rows", MAX_ROWS), default=None, metavar="R",
                   help="membrane buffer rows (default: 64, or the power of two the network needs)")
    p.add_argument("--cfg", nargs="*", default=[], metavar="FIELD=VALUE",
                   help="other HwConfig fields, e.g. theta_int=200 fire=ge reset=hard")
    p.add_argument("--sim", choices=SIMULATORS, default="verilator", help="simulator")
    p.add_argument("--path", choices=PATHS, default="bulk",
                   help="simulation path: 'bulk' (default) the testbench top tb_bulk_top runs "
                   "blocks of stimulus without Python in the loop (tb/bulk.py); 'bfm' the "
                   "per-cycle BFM (tb/bfm.py, slower, for debugging). Same checks")
    p.add_argument("--samples", type=parse_samples, default=None, metavar="RANGE",
                   help="sample ids to run, e.g. 0-99 or 3,17 (default: all)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--workers", type=posint("--workers", 1024), default=None, metavar="N",
                   help="local Dask worker processes (1: this process, no Dask; default: one per CPU)")
    g.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="address of a running Dask scheduler, e.g. tcp://head:8786 "
                        "(default: $DASK_SCHEDULER_ADDRESS if set)")
    p.add_argument("--shard-size", type=posint("--shard-size"), default=None, metavar="K",
                   help="samples per Dask task (default: about two shards per worker)")
    p.add_argument("--stress", type=bounded_int(0, "--stress must be 0 or 1, got {v!r}", 1),
                   default=0, metavar="0|1", help="1: random command gaps and output backpressure")
    p.add_argument("--seed", type=bounded_int(0, "--seed must be a non-negative integer, got {v!r}"),
                   default=1, help="seed of the gaps and backpressure (--stress 1)")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="write results.json and outputs.npy here (default: nothing written)")
    p.add_argument("-q", "--quiet", action="store_true", help="no phase lines or progress")
    return p


def _base_config(a, p) -> tuple[HwConfig, dict]:
    hw_opts = [o for o, v in (("--array", a.array), ("--groups", a.groups),
                              ("--weight-rows", a.weight_rows), ("--mem-rows", a.mem_rows),
                              ("--cfg", a.cfg or None)) if v is not None]
    if a.config:
        if hw_opts:
            p.error(f"--config excludes {', '.join(hw_opts)} (edit the JSON instead)")
        base = _load_config(a.config)
        return base, {"weight_rows": base.weight_rows, "mem_rows": base.mem_rows}
    extra = parse_cfg_items(a.cfg, p.error)
    for k in ("weight_rows", "mem_rows"):
        if k in extra:
            p.error(f"--cfg {k}: use --{k.replace('_', '-')} instead")
    d = HwConfig()
    try:
        base = HwConfig(array=a.array or d.array, groups=a.groups or d.groups, **extra)
    except ConfigError as e:
        p.error(f"bad configuration: {e}")
    return base, {k: v for k, v in (("weight_rows", a.weight_rows), ("mem_rows", a.mem_rows)) if v}


def _repro_template(a) -> str:
    """The command that reruns some samples in this process (``{samples}`` placeholder)."""
    words = ["python", "-m", "tb.run", "--network", a.network, "--inputs", a.inputs]
    if a.config:
        words += ["--config", a.config]
    else:
        for opt, v in (("--array", a.array), ("--groups", a.groups),
                       ("--weight-rows", a.weight_rows), ("--mem-rows", a.mem_rows)):
            if v is not None:
                words += [opt, str(v)]
        if a.cfg:
            words += ["--cfg"] + list(a.cfg)
    words += ["--sim", a.sim]
    if a.path != "bulk":
        words += ["--path", a.path]
    if a.stress:
        words += ["--stress", "1", "--seed", str(a.seed)]
    return " ".join(shlex.quote(w) for w in words) + " --samples {samples} --workers 1"


# ---------------------------------------------------------------- summary
def format_summary(a, cfg, net, merged, executor, wall: float, run_wall: float, build) -> str:
    c, cy = merged.checked, merged.cycles
    n = len(merged.sample_ids)
    cyc = cy["cycles"]
    rate = cyc / merged.seconds if merged.seconds > 0 else 0.0
    cpu_rate = cyc / merged.cpu_seconds if merged.cpu_seconds > 0 else 0.0
    run_rate = cyc / merged.run_cpu_seconds if merged.run_cpu_seconds > 0 else 0.0
    agg = cyc / run_wall if run_wall > 0 else 0.0
    T = merged.outputs.shape[1] if merged.outputs is not None else "?"
    status = "PASS" if merged.ok else "FAIL"
    lines = [f"== {a.network} on {cfg.name}, {a.sim}, {n} samples x T={T}, "
             f"{len(merged.shards)} shard(s) on {executor.describe()}",
             f"   network: {len(net.layers)} layers, input {net.in_shape}, output {net.out_shape} "
             f"({net.layers[-1].mode}); inputs: {a.inputs}"]
    if build is not None:
        lines.append(f"   build:   {build.build_dir} "
                     f"({'reused' if build.reused else f'built in {build.seconds:.1f} s'})")
    lines += [
        f"   run:     {status}  beats {c['beats']}/{c['beats_expected']}, spikes {c['spikes']}, "
        f"values {c['values']}, membrane words {c['membrane_words']} ({c['membrane_rows']} rows), "
        + (f"spilled rows {c['spill_rows']} ({c['spill_words']} words), " if c['spill_rows'] else "")
        + f"mismatches {c['mismatches']}; outputs == golden.fixed_model: "
        f"{'yes' if merged.golden_equal else 'NO'}",
        f"      cycles {cyc} (waiting for weight loads {cy['wload_cycles']}, read-back "
        f"{cy['readback_cycles']}, cmd gaps {cy['gap_cycles']}, out stalled "
        f"{cy['backpressure_cycles']})",
        f"      weight rows loaded {cy['wl_beats']}, overlapped with commands "
        f"{cy['wl_hidden_beats']} (same edge as a command: {cy['wl_overlap_cycles']} cycles); "
        + (f"PE utilization {100 * cy['synapses'] / (cfg.array * max(1, cyc)):.1f} %, "
           if cy["synapses"] else "")
        + f"EVENTs per cycle {cy['events'] / max(1, cyc):.3f}, "
        f"weight-load share {100 * cy['wload_cycles'] / max(1, cyc):.1f} %",
        f"      rate ({'/'.join(sorted({r.path for r in merged.shards}))} path): {rate:,.0f} cycles/s, {cpu_rate:,.0f} cycles/CPU-s "
        f"({merged.cpu_seconds:.2f} CPU-s, simulators {merged.seconds:.1f} s); all shards "
        f"together {agg:,.0f} cycles/s (run {run_wall:.1f} s)",
        f"      simulating and checking alone: {run_rate:,.0f} cycles/CPU-s "
        f"({merged.run_cpu_seconds:.2f} CPU-s; the rest is simulator start-up and the golden "
        f"schedule)"]
    if merged.duplicates:
        lines.append(f"   note:    {merged.duplicates} repeated shard result(s) dropped "
                     f"(a lost worker's shard ran again)")
    lines.append(f"   result:  {status}   wall time {wall:.1f} s")
    if merged.outputs is not None:
        sums = merged.outputs.sum(axis=1)
        pred = merged.predictions
        lines.append(f"outputs ({'read-out' if net.layers[-1].mode == 'readout' else 'spike count'} "
                     f"summed over T; class = argmax):")
        lines.append("   sample  class  outputs")
        shown = list(range(min(n, MAX_PRINTED)))
        bad, skipped = set(merged.failing), set(merged.unchecked)
        for k in shown:
            i = merged.sample_ids[k]
            note = "   (FAILED)" if i in bad else "   (not checked)" if i in skipped else ""
            vals = " ".join(str(int(v)) for v in sums[k][:MAX_OUTPUTS_PRINTED])
            more = f" ... (+{sums[k].size - MAX_OUTPUTS_PRINTED})" if sums[k].size > MAX_OUTPUTS_PRINTED else ""
            lines.append(f"   {i:6d}  {int(pred[k]):5d}  {vals}{more}{note}")
        if n > len(shown):
            lines.append(f"   ... {n - len(shown)} more (all in --out outputs.npy)")
    return "\n".join(lines)


def failure_text(a, merged, template: str) -> str:
    lines = []
    if merged.failing:
        lines.append(f"FAILED samples {format_samples(merged.failing)}; reproduce: "
                     f"{template.replace('{samples}', format_samples(merged.failing))}")
    if merged.unchecked:
        lines.append(f"not checked (the run stopped at the first mismatches): samples "
                     f"{format_samples(merged.unchecked)}")
    for r in merged.shards:
        if not r.ok:
            lines.append(f"-- shard {format_samples(r.sample_ids)} (host {r.host}, run directory "
                         f"{r.run_dir}):\n{r.failure}")
            break
    return "\n".join(lines)


def results_json(a, cfg, net, merged, executor, needs, wall: float, template: str) -> dict:
    pred = merged.predictions
    return {
        "ok": merged.ok, "network": os.path.abspath(a.network), "inputs": os.path.abspath(a.inputs),
        "cfg": cfg.to_dict(), "config_name": cfg.name, "rows_needed": needs, "sim": a.sim,
        "stress": bool(a.stress), "seed": a.seed, "executor": executor.describe(),
        "sample_ids": merged.sample_ids,
        "predictions": None if pred is None else [int(v) for v in pred],
        "sample_mismatches": merged.sample_mismatches, "failing": merged.failing,
        "unchecked": merged.unchecked, "golden_equal": merged.golden_equal,
        "checked": merged.checked, "cycles": merged.cycles,
        "sim_seconds": merged.seconds, "cpu_seconds": merged.cpu_seconds, "wall_seconds": wall,
        "run_cpu_seconds": merged.run_cpu_seconds,
        "outputs_file": "outputs.npy",
        "outputs_shape": None if merged.outputs is None else list(merged.outputs.shape),
        "repro": template.replace("{samples}", format_samples(merged.failing))
        if merged.failing else "",
        "shards": [{"samples": format_samples(r.sample_ids), "ok": r.ok, "host": r.host,
                    "pid": r.pid, "path": r.path, "seconds": r.seconds, "cpu_seconds": r.cpu_seconds,
                    "run_dir": r.run_dir, "build_dir": r.build_dir} for r in merged.shards],
    }


def _network_arithmetic(net, base: HwConfig, a) -> HwConfig:
    """The configuration with the arithmetic the network was quantized for:
    ``--config`` / ``--cfg`` must agree with it (one line naming the field),
    the defaults are replaced by it; a network without the record (hand-made,
    file version < 4) runs on ``base`` as given."""
    if net.arithmetic is None:
        return base
    if a.config:
        net.check_quantized_for(base, f"--config {a.config!r}")
        return base
    given = parse_cfg_items(a.cfg, lambda msg: None) if a.cfg else {}
    for k, v in given.items():
        if k in net.arithmetic and v != net.arithmetic[k]:
            raise NetworkError(f"--cfg {k}={v!r}, but the network was quantized for "
                               f"{k}={net.arithmetic[k]!r}; running it so would change its behaviour")
    return base.replace(**net.arithmetic)


# -------------------------------------------------------------------- main
def main(argv=None) -> int:
    t_start = time.monotonic()
    p = build_parser()
    a = p.parse_args(sys.argv[1:] if argv is None else argv)
    say = (lambda text: None) if a.quiet else phase
    base, rows_given = _base_config(a, p)
    net = load_network(a.network)
    base = _network_arithmetic(net, base, a)
    spikes = load_inputs(a.inputs, net.in_shape, net)
    ids = a.samples if a.samples is not None else list(range(spikes.shape[0]))
    if ids and ids[-1] >= spikes.shape[0]:
        raise InputError(f"--samples: sample {ids[-1]} does not exist ({a.inputs!r} holds "
                         f"{spikes.shape[0]} samples, ids 0-{spikes.shape[0] - 1})")
    cfg, needs = choose_config(net, base, rows_given)
    spill = needs["mem_rows"] > cfg.mem_rows   # spilled membranes (docs/schedule.md)
    out = check_writable_dir(a.out, "--out folder") if a.out else None
    template = _repro_template(a)
    say(f"config: {cfg.name} (the network needs {needs['weight_rows']} weight rows, "
        f"{needs['mem_rows']} membrane rows)")
    executor = choose(a.workers, a.scheduler, report=say, samples=len(ids))
    build = None
    if executor.kind != "scheduler":
        # same filesystem: build here, with phase lines, before the shards reuse it
        from .build import build as do_build
        from .build import build_bulk, emit_rtl
        from .shard import remember_build
        verilog, manifest = emit_rtl(cfg, report=say)
        if a.path == "bulk":
            from .demo_rtl import SPILL_DEPTH
            build = build_bulk(cfg, a.sim, verilog, manifest, quiet=True, report=say,
                               depths={"sp": SPILL_DEPTH} if spill else None)[0]
        else:
            build = do_build(cfg, a.sim, verilog, manifest, quiet=True, report=say)
        remember_build(cfg, a.sim, build, a.path, spill)
    else:
        say("build: on each worker (cached in its $TB_SIM_BUILD or sim_build/)")
    job = Job(cfg, net, a.sim, bool(a.stress), a.seed, template, a.path)
    progress = None if a.quiet else Progress(len(ids))
    t_run = time.monotonic()
    try:
        results = run_shards(job, spikes[ids], ids, executor, shard_size=a.shard_size,
                             progress=progress, report=say)
    finally:
        if progress is not None:
            progress.close()
    run_wall = time.monotonic() - t_run
    merged = merge(results, ids)
    wall = time.monotonic() - t_start
    print(format_summary(a, cfg, net, merged, executor, wall, run_wall, build))
    if not merged.ok:
        print(failure_text(a, merged, template))
    if out is not None:
        buf = io.BytesIO()
        np.save(buf, merged.outputs if merged.outputs is not None else np.zeros(0, np.int64))
        doc = results_json(a, cfg, net, merged, executor, needs, wall, template)
        atomic_write({out / "results.json": json.dumps(doc, indent=1) + "\n",
                      out / "outputs.npy": buf.getvalue()})
        say(f"wrote {out / 'results.json'}, {out / 'outputs.npy'}")
    return 0 if merged.ok else 1


def _main(argv=None) -> int:
    try:
        return main(argv)
    except BuildError as e:   # the log tail follows the error line
        print(f"{PROG}: error: build failed: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(run_main(_main, PROG))
