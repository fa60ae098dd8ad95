"""Where the shards of ``python -m tb.run`` run: this process, or a Dask cluster.

:func:`choose` picks the executor: an existing Dask cluster (``scheduler``
address, or ``$DASK_SCHEDULER_ADDRESS``), a local Dask cluster of
``workers`` processes (default: one per CPU of this machine), or this
process alone (``workers=1``, or Dask not installed: the ``dask`` extra).
:func:`run_shards` runs :func:`tb.shard.run_shard` over the shards and
returns their results; :func:`merge` keys them by sample id, so a shard
that a lost worker's replacement ran again is neither lost nor counted
twice.

On Dask every shard is one task with ``retries`` (:data:`RETRIES`) for an
exception; a worker that dies while running a shard makes the scheduler run
the shard elsewhere (up to ``distributed.scheduler.allowed-failures`` times,
then :class:`RunError`). The job (configuration + network) is one task
whose result the shards depend on, so it is recomputed if the worker that
held it is lost. Each worker process emits and builds a configuration once
(:func:`tb.shard.build_for`).
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from golden.config import HwConfig
from golden.errors import ProjectError
from golden.network import Network

from .shard import COUNTS, CYCLES, ShardResult, run_shard

__all__ = ["RunError", "Job", "Executor", "choose", "shards_of", "run_shards", "merge", "Merged",
           "SCHEDULER_ENV", "RETRIES", "dask_available"]

SCHEDULER_ENV = "DASK_SCHEDULER_ADDRESS"
#: Extra attempts of a shard that raised (a lost worker is handled by the scheduler).
RETRIES = 2


class RunError(ProjectError, RuntimeError):
    """The fan-out could not complete (no Dask, unreachable scheduler, lost workers)."""


@dataclass(frozen=True)
class Job:
    """What every shard needs besides its samples (pickled once per worker)."""

    cfg: HwConfig
    net: Network
    sim: str = "verilator"
    stress: bool = False
    seed: int = 1
    #: the reproduce command, ``{samples}`` standing for the shard's sample ids
    repro: str = ""
    #: simulation path of :func:`tb.shard.run_shard` ("bulk" or "bfm")
    path: str = "bulk"


@dataclass(frozen=True)
class Executor:
    """``kind``: "single", "local" (a LocalCluster of ``workers``) or "scheduler"."""

    kind: str
    workers: int = 1
    address: str = ""

    def describe(self) -> str:
        if self.kind == "single":
            return "this process (no Dask)"
        if self.kind == "local":
            return f"a local Dask cluster of {self.workers} worker processes"
        return f"the Dask cluster at {self.address}"


def dask_available() -> bool:
    try:
        import distributed  # noqa: F401
    except ImportError:
        return False
    return True


def machine_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def choose(workers: Optional[int] = None, scheduler: Optional[str] = None,
           report: Callable[[str], None] | None = None, samples: Optional[int] = None) -> Executor:
    """The executor for ``--workers`` / ``--scheduler`` (``$DASK_SCHEDULER_ADDRESS``
    when neither is given); ``report`` gets one line saying which is used.
    A local cluster has at most ``samples`` workers (more would idle)."""
    address = scheduler or ("" if workers else os.environ.get(SCHEDULER_ENV, "").strip())
    if address:
        if not dask_available():
            raise RunError(f"--scheduler {address}: Dask is not installed (pip install "
                           f"'efficientlif-rtl[dask]'); without it use --workers 1")
        ex = Executor("scheduler", 0, address)
        why = "" if scheduler else f" (${SCHEDULER_ENV})"
    elif workers == 1:
        ex, why = Executor("single"), " (--workers 1)"
    elif not dask_available():
        ex, why = Executor("single"), " (Dask is not installed: pip install 'efficientlif-rtl[dask]')"
    else:
        n = workers or machine_cpus()
        why = "" if workers else " (one per CPU)"
        if samples is not None and 0 < samples < n:
            n, why = samples, f" (one per sample; {workers or machine_cpus()} would idle)"
        ex = Executor("local", n) if n > 1 else Executor("single")
        if n == 1:
            why = " (one sample)"
    if report is not None:
        report(f"shards: {ex.describe()}{why}")
    return ex


def shards_of(sample_ids, size: int) -> list:
    """``sample_ids`` cut into consecutive tuples of at most ``size``."""
    ids = [int(i) for i in sample_ids]
    return [tuple(ids[k:k + size]) for k in range(0, len(ids), size)]


def default_shard_size(samples: int, workers: int) -> int:
    """About two shards per worker: balance against the start-up of each simulation."""
    return max(1, math.ceil(samples / max(1, 2 * workers)))


# ------------------------------------------------------------------ progress
class Progress:
    """Samples done: a tqdm bar on a terminal, else one line every ``every`` s."""

    def __init__(self, total: int, stream=None, every: float = 15.0):
        self.total, self.done, self.every = total, 0, every
        self.stream = stream or sys.stderr
        self.t0 = self.last = time.monotonic()
        self.bar = None
        if getattr(self.stream, "isatty", lambda: False)():
            try:
                from tqdm import tqdm
                self.bar = tqdm(total=total, unit="sample", desc="run", file=self.stream,
                                dynamic_ncols=True)
            except ImportError:
                pass

    def set(self, done: int, note: str = "") -> None:
        done = max(self.done, min(self.total, int(done)))
        if self.bar is not None:
            self.bar.update(done - self.done)
            if note:
                self.bar.set_postfix_str(note, refresh=False)
        finished = done == self.total and self.done < self.total
        self.done = done
        now = time.monotonic()
        if self.bar is None and (finished or (now - self.last >= self.every and done < self.total)):
            self.last = now
            print(f"run:   {done}/{self.total} samples done, {now - self.t0:.0f} s"
                  + (f" ({note})" if note else ""), file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# --------------------------------------------------------------- execution
def _repro(job: Job, ids) -> str:
    from .shard import format_samples
    return job.repro.replace("{samples}", format_samples(ids)) if job.repro else ""


def _task(job: Job, spikes: np.ndarray, ids: tuple, topic: str = "") -> ShardResult:
    """One Dask task: a shard on the worker that runs it. With ``topic``, the
    samples started so far go to the client as worker events of that topic."""
    prog = None
    if topic:
        from distributed import get_worker
        try:
            w = get_worker()
        except ValueError:   # not on a worker (called directly)
            w = None
        if w is not None:
            def prog(n):
                w.log_event(topic, {"shard": int(ids[0]), "started": int(n)})
    return run_shard(job.cfg, job.net, spikes, ids, job.sim, stress=job.stress, seed=job.seed,
                     repro=_repro(job, ids), progress=prog, path=job.path)


def _identity(x):
    return x


def run_shards(job: Job, spikes: np.ndarray, sample_ids, executor: Executor, *,
               shard_size: Optional[int] = None, progress: Optional[Progress] = None,
               report: Callable[[str], None] | None = None) -> list:
    """Run every sample of ``sample_ids`` (``spikes[k]`` is sample ``sample_ids[k]``)
    on ``executor``; returns the :class:`ShardResult` list (any order)."""
    ids = [int(i) for i in sample_ids]
    if executor.kind == "single":
        def prog(n):
            if progress is not None:
                progress.set(n)
        return [run_shard(job.cfg, job.net, spikes, ids, job.sim, stress=job.stress,
                          seed=job.seed, repro=_repro(job, ids), progress=prog, path=job.path)]
    return _run_dask(job, spikes, ids, executor, shard_size, progress, report)


def _run_dask(job, spikes, ids, executor, shard_size, progress, report):
    import logging

    from distributed import Client, LocalCluster, as_completed
    from distributed.scheduler import KilledWorker

    cluster = None
    try:
        if executor.kind == "local":
            cluster = LocalCluster(n_workers=executor.workers, threads_per_worker=1,
                                   processes=True, dashboard_address=None,
                                   silence_logs=logging.ERROR)
            client = Client(cluster)
        else:
            try:
                client = Client(executor.address, timeout="30s")
            except (OSError, TimeoutError, ValueError) as e:
                raise RunError(f"cannot reach the Dask scheduler at {executor.address} "
                               f"({type(e).__name__}: {e})") from None
        with client:
            threads = client.nthreads()     # worker address -> threads (one shard each)
            nworkers, slots = len(threads), sum(threads.values())
            if executor.kind == "scheduler" and report is not None:
                report(f"shards: {nworkers} worker(s) connected to {executor.address}"
                       + (f", {slots} threads" if slots != nworkers else "")
                       + ("" if slots == nworkers else " (CPU-s per shard are exact only with "
                          "one thread per worker)"))
            size = shard_size or default_shard_size(len(ids), slots or 1)
            pos = {i: k for k, i in enumerate(ids)}
            token = uuid.uuid4().hex[:8]
            job_f = client.submit(_identity, job, key=f"tb.run-job-{token}", pure=False)
            topic = f"tb.run-progress-{token}" if progress is not None else ""
            started, finished, lock = {}, 0, threading.Lock()

            def show():
                if progress is not None:
                    progress.set(sum(started.values()), f"{finished}/{len(futures)} shards done")

            def on_event(event):   # samples started per shard, from the workers
                _, msg = event
                with lock:
                    k = msg["shard"]   # the samples before the one started now are done
                    done = max(0, min(int(msg["started"]) - 1, sizes[k] - 1))
                    started[k] = max(started.get(k, 0), done)
                    show()

            futures, sizes = {}, {}
            for sh in shards_of(ids, size):
                part = spikes[[pos[i] for i in sh]]
                f = client.submit(_task, job_f, part, sh, topic,
                                  key=f"tb.run-shard-{token}-{sh[0]}", retries=RETRIES, pure=False)
                futures[f], sizes[sh[0]] = sh, len(sh)
            if report is not None:
                report(f"run:   {len(ids)} samples in {len(futures)} shards of up to {size}")
            if topic:
                client.subscribe_topic(topic, on_event)
            results = []
            try:
                for f in as_completed(futures):
                    sh = futures[f]
                    try:
                        res = f.result()
                    except KilledWorker as e:
                        raise RunError(f"samples {_fmt(sh)}: the workers running them were lost "
                                       f"too often ({e}); run them again with --samples "
                                       f"{_fmt(sh)}") from None
                    results.append(res)
                    with lock:
                        finished += 1
                        started[sh[0]] = len(sh)
                        show()
            finally:
                if topic:
                    client.unsubscribe_topic(topic)
            return results
    finally:
        if cluster is not None:
            cluster.close()


def _fmt(ids) -> str:
    from .shard import format_samples
    return format_samples(ids)


# -------------------------------------------------------------------- merge
@dataclass
class Merged:
    """All shards of one run, keyed by sample id (order of ``sample_ids``)."""

    sample_ids: list
    ok: bool
    outputs: Optional[np.ndarray]          # int64 [samples, T, outputs]; None if any is missing
    checked: dict
    cycles: dict
    sample_mismatches: list
    failing: list
    unchecked: list
    golden_equal: bool
    seconds: float                         # simulation wall time, summed over shards
    cpu_seconds: float
    shards: list                           # the ShardResults, in sample order
    duplicates: int                        # shard results dropped as repeats
    #: CPU seconds of the checked runs alone (simulating and checking, no start-up or
    #: schedule), summed over shards
    run_cpu_seconds: float = 0.0

    @property
    def predictions(self) -> Optional[np.ndarray]:
        """Argmax over the outputs summed over T (lowest index on a tie)."""
        return None if self.outputs is None else self.outputs.sum(axis=1).argmax(axis=1)


def merge(results, sample_ids) -> Merged:
    """Merge shard results by sample id: every sample must be reported exactly
    once (a repeated shard is dropped; a missing sample is a :class:`RunError`)."""
    ids = [int(i) for i in sample_ids]
    by_id, shards, dup = {}, [], 0
    for r in sorted(results, key=lambda r: r.sample_ids[0] if r.sample_ids else -1):
        if any(i in by_id for i in r.sample_ids):
            if all(by_id.get(i) is not None for i in r.sample_ids):
                dup += 1
                continue
            raise RunError(f"shards overlap on samples {_fmt([i for i in r.sample_ids if i in by_id])}")
        for k, i in enumerate(r.sample_ids):
            by_id[i] = (r, k)
        shards.append(r)
    missing = [i for i in ids if i not in by_id]
    extra = sorted(set(by_id) - set(ids))
    if missing or extra:
        raise RunError(f"shard results cover the wrong samples (missing {_fmt(missing) or '-'}, "
                       f"unexpected {_fmt(extra) or '-'})")
    outs = [by_id[i][0].outputs for i in ids]
    outputs = None
    if all(o is not None for o in outs):
        outputs = np.stack([by_id[i][0].outputs[by_id[i][1]] for i in ids]).astype(np.int64)
    checked = {k: sum(r.checked.get(k, 0) for r in shards) for k in COUNTS}
    cycles = {k: sum(r.cycles.get(k, 0) for r in shards) for k in CYCLES}
    per = [int(by_id[i][0].sample_mismatches[by_id[i][1]]) for i in ids]
    failing = sorted(i for r in shards for i in r.failing)
    unchecked = sorted(i for r in shards for i in r.unchecked)
    return Merged(ids, all(r.ok for r in shards), outputs, checked, cycles, per, failing, unchecked,
                  all(r.golden_equal for r in shards), sum(r.seconds for r in shards),
                  sum(r.cpu_seconds for r in shards), shards, dup,
                  sum(r.run_cpu_seconds for r in shards))
