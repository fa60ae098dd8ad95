"""``python -m tb.demo`` / ``make demo``: train, quantize and run 8x8 digits bit-exact on the RTL.

Steps (docs/demo.md):

1. load scikit-learn's digits, stratified 80/20 split, deterministic rate
   coding over T timesteps (:mod:`golden.digits`);
2. train the four variants baseline, L, C#4, L+C#4 with the float reference
   (bit-reproducible on any machine and thread count; weights cached in
   ``build/demo/``, keyed on every hyperparameter and the training code);
   float accuracy and LIF memory (``golden/memory.py``) in the layout of the
   paper's Table 1;
3. quantize every variant onto ONE build (ARRAY=128, GROUPS=4, default
   widths; the common ``frac_bits`` is the smallest any variant needs, the
   weight buffer holds every weight of the largest variant); fixed-point
   accuracy and per-layer float-vs-fixed spike agreement;
4. emit and build that core in Verilator and run every held-out sample of
   every selected variant through it with the cocotb co-simulation flow
   (schedule, BFM, scoreboard checking every beat and membrane row); RTL
   accuracy from the RTL's own read-out, mismatches, cycles;
5. write ``reports/demo.md`` and ``reports/demo.png``.

Exit status: 0 all good; 1 a mismatch, an RTL accuracy different from the
fixed-point model's, or a failed build/simulation; 2 bad options (one
``tb.demo: error: ...`` line).
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from golden.cli import OneLineParser, posint, run_main
from golden.files import atomic_write, check_writable_dir
from golden.paths import build_path
from tb.build import BuildError

__all__ = ["main", "parse_args"]

PROG = "python -m tb.demo"


def parse_args(argv):
    from golden.digits import SCHEMES
    p = OneLineParser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("--rtl", default=",".join(SCHEMES),
                   help="comma-separated variants to run on the RTL, or 'none' (default: all)")
    p.add_argument("--samples", type=posint("--samples"), default=None,
                   help="only the first N test samples (default: the whole test set)")
    p.add_argument("--epochs", type=posint("--epochs"), default=None,
                   help="training epochs (default: golden.digits.TrainConfig)")
    p.add_argument("-T", "--timesteps", type=posint("-T"), default=None)
    p.add_argument("--sim", choices=("verilator", "icarus"), default="verilator")
    p.add_argument("--path", choices=("bulk", "bfm"), default="bulk",
                   help="'bulk' (default): the testbench top tb_bulk_top runs each variant in "
                   "one block without Python in the loop (tb/bulk.py); 'bfm': the per-cycle "
                   "BFM (tb/bfm.py). Same checks, same cycle counts")
    p.add_argument("--reports", default=str(build_path("reports")), help="output directory")
    p.add_argument("--cache", default=str(build_path("build", "demo")),
                   help="weight cache directory (an empty one trains afresh)")
    p.add_argument("--threads", type=posint("--threads"), default=1,
                   help="torch threads (default 1: the fastest on a shared 2-core machine; the trained "
                   "weights and every number do not depend on it)")
    p.add_argument("--jobs", type=posint("--jobs"), default=None,
                   help="variants trained and simulated at once, in separate processes "
                   "(default: the CPU count, at most 4); the results do not depend on it")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    a = p.parse_args(argv)
    rtl = [] if a.rtl.strip().lower() == "none" else [s.strip() for s in a.rtl.split(",") if s.strip()]
    bad = [s for s in rtl if s not in SCHEMES]
    if bad:
        p.error(f"--rtl: unknown variant(s) {', '.join(bad)}; choose from {', '.join(SCHEMES)} or none")
    a.rtl = [s for s in SCHEMES if s in rtl]
    if a.jobs is None:
        a.jobs = max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                            else (os.cpu_count() or 1)))
    return a


# --------------------------------------------------------------------------- steps

def _bar(disable, **kw):
    from tqdm import tqdm
    return tqdm(disable=disable, dynamic_ncols=True, file=sys.stdout, **kw)


def _cache_file(scheme: str, tc, cache: Path) -> Path:
    """The weight file :func:`golden.digits.train_cached` reads and writes."""
    from golden.digits import cache_key
    return Path(cache) / f"{scheme.replace('+', '_').replace('#', '')}-{cache_key(scheme, tc)}.pt"


def _train_worker(scheme, tc, spikes, labels, cache, threads, queue):
    """Train one scheme into the cache in a worker process (progress to ``queue``)."""
    import torch
    torch.set_num_threads(threads)
    from golden.digits import train_cached
    train_cached(scheme, tc, spikes, labels, cache,
                 lambda epoch, loss: queue.put((scheme, float(loss))))
    return scheme


def train_all(tc, split, spikes_train, cache: Path, quiet: bool, jobs: int = 1,
              threads: int = 1) -> dict:
    """Train (or load) every scheme; returns scheme -> model.

    Schemes without cached weights train in up to ``jobs`` worker processes
    at once (``threads`` torch threads each), which write the cache; the
    models are then loaded from it. The training is bit-reproducible, so the
    weights do not depend on ``jobs``."""
    from golden.digits import SCHEMES, train_cached
    todo = [s for s in SCHEMES if not _cache_file(s, tc, cache).exists()]
    bars = {s: _bar(quiet, total=tc.epochs, desc=f"train {s:8s}", unit="epoch", leave=True,
                    position=i) for i, s in enumerate(SCHEMES)}
    try:
        if jobs > 1 and len(todo) > 1:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor, wait
            ctx = mp.get_context("spawn")
            with ctx.Manager() as manager, ProcessPoolExecutor(min(jobs, len(todo)),
                                                               mp_context=ctx) as pool:
                queue = manager.Queue()
                futs = [pool.submit(_train_worker, s, tc, spikes_train, split.y_train, cache,
                                    threads, queue) for s in todo]
                while True:
                    done = all(f.done() for f in futs)
                    while not queue.empty():
                        s, loss = queue.get()
                        bars[s].update(1)
                        bars[s].set_postfix(loss=f"{loss:.4f}")
                    if done:
                        break
                    wait(futs, timeout=0.2)
                for f in futs:
                    f.result()     # a failed training raises here
        models = {}
        for s in SCHEMES:
            bar = bars[s]

            def progress(epoch, loss, bar=bar):
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}")
            model, cached = train_cached(s, tc, spikes_train, split.y_train, cache, progress)
            if cached:
                bar.set_postfix_str("cached weights" if s not in todo else "trained")
                bar.update(tc.epochs - bar.n)
            models[s] = model
    finally:
        for bar in bars.values():
            bar.close()
    return models


def memory_rows(tc) -> dict:
    """scheme -> MemoryRow of the demo network (block ids of golden.digits.demo_layers)."""
    from golden.digits import SCHEMES, demo_layers
    from golden.memory import memory_table
    rows = memory_table(demo_layers(tc.channels), input_size=None, timesteps=tc.timesteps,
                        schemes=SCHEMES, mem_width=16)
    return {r.scheme: r for r in rows}


def quantize_all(models: dict) -> dict:
    """Quantize every model onto one common HwConfig; scheme -> Quantized."""
    from golden.quantize import quantize
    from golden.mapping import tile_fanin_sizes
    first = {s: quantize(m) for s, m in models.items()}
    frac = min(q.cfg.frac_bits for q in first.values())
    big = {s: quantize(m, frac_bits=frac, weight_rows=1 << 16) for s, m in models.items()}
    wrows = max(sum(int(tile_fanin_sizes(q.cfg, l).sum()) for l in q.network.layers)
                for q in big.values())
    mrows = max(q.choices["mem_rows"]["needed"] for q in big.values())
    out = {s: quantize(m, frac_bits=frac, weight_rows=wrows, mem_rows=mrows) for s, m in models.items()}
    cfgs = {q.cfg for q in out.values()}
    assert len(cfgs) == 1, f"variants quantized to different builds: {cfgs}"
    for s in out:  # report the automatic choice, not "given"
        out[s].choices["frac_bits"] = {"value": frac, "reason": "smallest automatic choice over the "
                                       "variants: " + first[s].choices["frac_bits"]["reason"]
                                       if first[s].cfg.frac_bits == frac else
                                       f"common to all variants (this one alone: "
                                       f"{first[s].cfg.frac_bits})"}
    return out


def fixed_eval(models: dict, quants: dict, spikes: np.ndarray, labels: np.ndarray) -> tuple[list, dict]:
    """Float/fixed accuracy and per-layer spike agreement; returns (rows, scheme -> fixed predictions)."""
    import torch

    from golden.digits import predict
    from golden.fixed_model import run_fixed
    from golden.quantize import agreement_report
    rows, preds = [], {}
    tm = np.ascontiguousarray(np.swapaxes(spikes, 0, 1))
    for s, m in models.items():
        q = quants[s]
        res = run_fixed(q.cfg, q.network, tm)
        fp = res.output.sum(axis=0).reshape(spikes.shape[0], -1).argmax(axis=1)
        preds[s] = fp
        fl = predict(m, spikes)
        rep = agreement_report(m, q, torch.from_numpy(tm))
        rows.append({"scheme": s, "float_acc": float(np.mean(fl == labels)),
                     "fixed_acc": float(np.mean(fp == labels)),
                     "pred_agree": float(np.mean(fl == fp)), "frac_bits": q.cfg.frac_bits,
                     "layers": [{k: l[k] for k in ("layer", "mode", "agreement", "mismatches", "spikes")}
                                for l in rep["float"]["layers"]],
                     "report": rep})
    return rows, preds


def rtl_eval(quants: dict, schemes: list, spikes: np.ndarray, labels: np.ndarray,
             fixed_preds: dict, sim: str, quiet: bool, path: str = "bulk", jobs: int = 1
             ) -> tuple[list, object, str]:
    """Build once, run every selected scheme (``jobs`` simulations at once);
    returns (rows, build, failure text)."""
    from tb.demo_rtl import DEMO_DEPTHS, build_core, run_network
    if not schemes:
        return [], None, ""
    cfg = next(iter(quants.values())).cfg
    t0 = time.monotonic()
    print(f"emit + {sim} build of {cfg.name} (cached in sim_build/ after the first time) ...",
          flush=True)
    b = build_core(cfg, sim, path, DEMO_DEPTHS if path == "bulk" else None)
    print(f"   {'reused' if b.reused else 'built'} in {time.monotonic() - t0:.1f} s: {b.build_dir}",
          flush=True)
    lif_per_tile = b.manifest["cycles"]["lif_cycles_per_tile"]
    n = spikes.shape[0]
    bars = {s: _bar(quiet, total=n, desc=f"RTL   {s:8s}", unit="sample", position=i)
            for i, s in enumerate(schemes)}

    def simulate(s):
        bar = bars[s]

        def progress(k):
            bar.update(max(0, min(n, k) - bar.n))
        return run_network(b, quants[s].network, spikes, progress=progress,
                           tag=f"demo-{s}".replace("+", "_").replace("#", ""))
    try:
        if jobs > 1 and len(schemes) > 1:   # one simulator process per variant, `jobs` at once
            from concurrent.futures import ThreadPoolExecutor
            with ThreadPoolExecutor(min(jobs, len(schemes))) as pool:
                runs = dict(zip(schemes, pool.map(simulate, schemes)))
        else:
            runs = {s: simulate(s) for s in schemes}
    finally:
        for bar in bars.values():
            bar.close()
    rows, failures = [], []
    for s in schemes:
        r = runs[s]
        sm = r.summary
        if not r.ok:
            failures.append(f"[{s}] RTL run failed: {r.failure}\n   run directory: {r.run_dir}")
            rows.append(None)
            continue
        pred = r.predictions
        first = np.asarray(sm["sample_first_cycle"] + [sm["cycles"]])
        per = np.diff(first)
        infer = sm["cycles"] - sm["wload_cycles"] - sm["readback_cycles"]
        lif = sm["tiles"] * lif_per_tile
        row = {"scheme": s, "samples": n, "rtl_acc": float(np.mean(pred == labels)),
               "fixed_acc": float(np.mean(fixed_preds[s] == labels)),
               "same_as_fixed": bool(np.array_equal(pred, fixed_preds[s])),
               "mismatches": sm["checked"]["mismatches"], "beats": sm["checked"]["beats"],
               "spikes": sm["checked"]["spikes"], "values": sm["checked"]["values"],
               "membrane_words": sm["checked"]["membrane_words"], "cycles": sm["cycles"],
               "wload_cycles": sm["wload_cycles"], "readback_cycles": sm["readback_cycles"],
               "inference_cycles": infer, "cycles_per_sample": infer / n,
               "cycles_per_sample_min": int(per.min()), "cycles_per_sample_max": int(per.max()),
               "tiles": sm["tiles"], "events": sm["events"], "lif_cycles": lif,
               "lif_share": lif / max(1, infer), "sim_seconds": r.seconds, "run_dir": str(r.run_dir)}
        if not row["same_as_fixed"] or row["mismatches"]:
            failures.append(f"[{s}] RTL predictions differ from the fixed-point model or mismatches "
                            f"were counted; run directory {r.run_dir}")
        rows.append(row)
    return rows, b, "\n".join(failures)


# --------------------------------------------------------------------------- main

def main(argv=None) -> int:
    a = parse_args(sys.argv[1:] if argv is None else argv)
    # before minutes of training: the report and cache folders must be writable
    check_writable_dir(a.reports, "--reports")
    check_writable_dir(a.cache, "--cache")
    t_start = time.monotonic()
    import torch
    torch.set_num_threads(a.threads)

    from golden.digits import SCHEMES, TrainConfig, encode, load_split
    from tb import demo_report as rep

    tc = TrainConfig()
    if a.epochs:
        tc = replace(tc, epochs=a.epochs)
    if a.timesteps:
        tc = replace(tc, timesteps=a.timesteps)
    quiet = a.no_progress
    split = load_split(tc.split_seed, tc.test_fraction)
    s_train = encode(split.x_train, tc.timesteps)
    s_test = encode(split.x_test, tc.timesteps)
    y_test = split.y_test
    if a.samples:
        s_test, y_test = s_test[:a.samples], y_test[:a.samples]
    print(f"digits: {len(split.y_train)} train / {len(split.y_test)} test images "
          f"({len(y_test)} used), T = {tc.timesteps}, input spike density "
          f"{s_train.mean():.3f}", flush=True)

    t0 = time.monotonic()
    models = train_all(tc, split, s_train, Path(a.cache), quiet, a.jobs, a.threads)
    t_train = time.monotonic() - t0
    mem = memory_rows(tc)
    float_rows = []
    from golden.digits import accuracy
    for s in SCHEMES:
        r = mem[s]
        float_rows.append({"scheme": s, "acc": accuracy(models[s], s_test, y_test),
                           "train_acc": accuracy(models[s], s_train, split.y_train),
                           "fwd_words": r.fwd_words, "bwd_words": r.bwd_words,
                           "bwd_bptt_words": r.bwd_bptt_words,
                           "fwd_kib_32": r.fwd_words * 4 / 1024, "bwd_kib_32": r.bwd_words * 4 / 1024})

    t0 = time.monotonic()
    quants = quantize_all(models)
    quant_rows, fixed_preds = fixed_eval(models, quants, s_test, y_test)
    t_quant = time.monotonic() - t0
    cfg = next(iter(quants.values())).cfg

    t0 = time.monotonic()
    try:
        rtl_rows, build, failure = rtl_eval(quants, a.rtl, s_test, y_test, fixed_preds, a.sim, quiet,
                                            a.path, a.jobs)
    except BuildError as e:  # report it, still write what we have
        rtl_rows, build, failure = [], None, f"build failed: {e}"
    t_rtl = time.monotonic() - t0
    ok_rows = [r for r in rtl_rows if r]
    total = time.monotonic() - t_start

    manifest = build.manifest if build is not None else {}
    choices = quants["L+C#4"].choices
    md = ["# End-to-end demo: EfficientLIF-Net on 8×8 digits, bit-exact on the generated RTL", "",
          f"Generated by `make demo` (`python -m tb.demo`); see docs/demo.md. scikit-learn digits, "
          f"{len(split.y_train)} training / {len(split.y_test)} test images (stratified, seed "
          f"{tc.split_seed}), deterministic rate coding, T = {tc.timesteps}; network conv 3×3/2 "
          f"1→{tc.channels} (own membrane) → L block of two conv 3×3 {tc.channels}→{tc.channels} "
          f"→ linear {tc.channels * 16}→10 read-out.", "",
          "## Summary", "", rep.summary_table(float_rows, quant_rows, ok_rows), "",
          "## Float accuracy and LIF memory (paper Table 1 layout)", "",
          rep.table1(float_rows, tc.timesteps, 16), "",
          "## Hardware build and quantization", "", rep.config_table(cfg.to_dict(), manifest, choices),
          "", "### Accuracy after quantization (test set)", "", rep.quant_table(quant_rows), "",
          "### Per-layer float-vs-fixed spike agreement (test set, all timesteps)", "",
          rep.layer_table(quant_rows), ""]
    if ok_rows:
        md += [f"## RTL co-simulation ({a.sim}, every test sample, every spike, read-out value and "
               f"membrane row checked)", "", rep.rtl_table(ok_rows, cfg.groups), ""]
    if failure:
        md += ["## FAILURES", "", "```", failure, "```", ""]
    md += ["## Run", "",
           f"training {t_train:.1f} s, quantization + fixed-point {t_quant:.1f} s, RTL build + "
           f"simulation {t_rtl:.1f} s, total {total:.1f} s (torch threads {a.threads}).", "",
           "Training hyperparameters: `" + json.dumps(asdict(tc)) + "`", ""]
    out = Path(a.reports)
    atomic_write({
        out / "demo.md": "\n".join(md),
        out / "demo.png": rep.plot(float_rows, quant_rows, ok_rows),
        out / "demo.json": json.dumps(
            {"float": float_rows,
             "quant": [{k: v for k, v in r.items() if k != "report"} for r in quant_rows],
             "rtl": ok_rows, "cfg": cfg.to_dict(), "train": asdict(tc),
             "seconds": {"train": t_train, "quant": t_quant, "rtl": t_rtl, "total": total}},
            indent=1)})

    print()
    print(rep.summary_table(float_rows, quant_rows, ok_rows))
    print()
    print(rep.table1(float_rows, tc.timesteps, 16).split("\n\n")[0])
    print()
    print(rep.quant_table(quant_rows))
    print()
    print(rep.layer_table(quant_rows))
    if ok_rows:
        print()
        print(rep.rtl_table(ok_rows, cfg.groups).split("\n\n")[0])
    print(f"\nreports: {out / 'demo.md'}, {out / 'demo.png'}; total {total:.1f} s")
    if failure:
        print(f"\nFAILED:\n{failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, PROG))
