"""``python -m formal.run`` (``make formal``): run every proof, one line each.

::

    python -m formal.run                 # all proofs
    python -m formal.run --quick         # the subset tests/test_formal.py runs
    python -m formal.run --only lif_unit_w32   # proofs whose name contains a text
    python -m formal.run --list          # names and statements, run nothing
    python -m formal.run --faults        # also apply each known fault: its proof must fail

Each line: ``PASS|FAIL|ERROR  name  seconds  mode/depth  configuration``.
A failure prints the failed assertions (source lines of formal/*.py), the
counterexample's signal values step by step, and the VCD path. Exit status:
0 all passed (and, with ``--faults``, every fault was caught), 1 otherwise,
2 for a usage error or a missing tool (one line naming it).
Job folders go to ``--work`` (default ``build/formal``).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from golden.cli import OneLineParser, run_main
from golden.config import HwConfig

from . import lif_props, stream_props
from .faults import FORMAL_MUTATIONS, Fault
from .jobs import Proof
from .tools import find_tools, read_vcd, run_sby

__all__ = ["PROOFS", "FAULTS", "run_proof", "main"]


def _cfg(**kw) -> HwConfig:
    base = dict(array=4, groups=2, weight_rows=3, mem_rows=3)
    base.update(kw)
    return HwConfig(**base)


#: LIF-unit matrix: (name, configuration). Widths narrow to 32 bits, acc below /
#: equal / above mem, λ = 1, powers of two, 0.3125 (leak_bits = 4), 255/256,
#: 2^-16; θ = 1 up to the largest legal θ; soft/hard; gt/ge.
LIF_MATRIX = (
    ("lif_unit_narrow_l1_hard_gt", _cfg(weight_width=4, acc_width=6, mem_width=6, frac_bits=2,
                                       leak_bits=4, leak_int=16, theta_int=1, reset="hard")),
    ("lif_unit_default", _cfg()),
    ("lif_unit_acc_above_mem_l05_ge", _cfg(acc_width=12, mem_width=8, frac_bits=4, leak_bits=8,
                                          leak_int=128, theta_int=1, fire="ge")),
    ("lif_unit_acc_below_mem_l0_3125", _cfg(acc_width=8, mem_width=12, frac_bits=4,
                                           leak_bits=4, leak_int=5, theta_int=2046)),
    ("lif_unit_w32_l0_3125_soft_gt", _cfg(acc_width=32, mem_width=32, frac_bits=8, leak_bits=4,
                                         leak_int=5, theta_int=(1 << 31) - 2)),
    ("lif_unit_w32_l1_hard_ge", _cfg(acc_width=16, mem_width=32, frac_bits=8, leak_bits=8,
                                    leak_int=256, theta_int=256, reset="hard", fire="ge")),
    ("lif_unit_acc32_mem24_l255_ge_max", _cfg(acc_width=32, mem_width=24, frac_bits=8,
                                             leak_bits=8, leak_int=255,
                                             theta_int=(1 << 23) - 1, reset="hard", fire="ge")),
    ("lif_unit_leak16_min", _cfg(leak_bits=16, leak_int=1, theta_int=3)),
)

#: Small builds for the sequential proofs.
PE_CFG = _cfg(weight_width=4, acc_width=5, mem_width=5, frac_bits=2, leak_bits=4, leak_int=5,
              theta_int=3)
PE_CFG_EQ = _cfg(weight_width=4, acc_width=4, mem_width=5, frac_bits=2, leak_bits=4,
                 leak_int=5, theta_int=3, groups=4)
STAGE_CFGS = {n: _cfg(groups=n, weight_width=4, acc_width=5, mem_width=5, frac_bits=2,
                      leak_bits=4, leak_int=5, theta_int=3) for n in (1, 2, 4)}
CORE_CFG = _cfg(weight_width=2, acc_width=2, mem_width=2, frac_bits=0, leak_bits=1, leak_int=1,
                theta_int=1, fire="ge")
CORE_DEPTH = 16
CORE_X_DEPTH = 12
PE_K = 5   # k: also the base case depth, enough to saturate a 5-bit accumulator with 4-bit weights


def stage_depth(n: int) -> int:
    """Reset, the announcement (cycle 1), the earliest offer (cycle 2), N+1 LIF
    cycles, the last beat shown, and 3 more cycles for later offers and stalls."""
    return n + 7


def _desc(cfg: HwConfig) -> str:
    lam = f"λ={cfg.leak_int}/2^{cfg.leak_bits}"
    return (f"A={cfg.array} N={cfg.groups} w{cfg.weight_width} acc{cfg.acc_width} "
            f"mem{cfg.mem_width} {lam} θ={cfg.theta_int} {cfg.reset} {cfg.fire}")


def _proofs():
    out = []
    for i, (name, cfg) in enumerate(LIF_MATRIX):
        out.append(Proof(name, "LifUnit U, O, V' == spec F3-F6 for every V, X", _desc(cfg),
                         lambda mutate=None, cfg=cfg: lif_props.lif_unit_job(cfg, mutate),
                         quick=i in (0, 3, 4)))
    for name, cfg in (("pe_array_f2", PE_CFG), ("pe_array_f2_acc_eq_weight", PE_CFG_EQ)):
        out.append(Proof(name, "PeArray read == F2 step relation (k-induction)", _desc(cfg),
                         lambda mutate=None, cfg=cfg: lif_props.pe_array_job(cfg, PE_K, mutate),
                         quick=name == "pe_array_f2"))
    for n, cfg in STAGE_CFGS.items():
        out.append(Proof(f"lif_stage_chain_n{n}", "LifStage: one tile, beats/carry/write-back "
                         "== F3-F7, out stream rules, timing", _desc(cfg),
                         lambda mutate=None, cfg=cfg, n=n: lif_props.lif_stage_job(
                             cfg, stage_depth(n), mutate), quick=n == 2))
    out.append(Proof("core_stream_contract", "core: out stable, N beats per TILE in order, "
                     "busy/drain, error flags, reset values", _desc(CORE_CFG),
                     lambda mutate=None: stream_props.core_job(CORE_CFG, CORE_DEPTH,
                                                               mutate=mutate), quick=False))
    out.append(Proof("core_stream_contract_any_powerup", "same, from any flip-flop power-up "
                     "state (X) after one reset cycle", _desc(CORE_CFG),
                     lambda mutate=None: stream_props.core_job(CORE_CFG, CORE_X_DEPTH,
                                                               x_init=True, mutate=mutate),
                     quick=True))
    out.append(Proof("core_cmd_ready_cone", "cmd__ready has no combinational path from "
                     "cmd__valid / cmd__payload", _desc(CORE_CFG),
                     lambda mutate=None: stream_props.ready_cone_job(CORE_CFG, mutate),
                     quick=True))
    return out


PROOFS = _proofs()


def _slots(proof_name: str) -> int:
    if proof_name.startswith("lif_unit"):
        return 1
    if proof_name.startswith("lif_stage_chain_n"):
        return STAGE_CFGS[int(proof_name.rsplit("n", 1)[1])].slots
    if proof_name.startswith("pe_array"):
        return PE_CFG.slots
    return CORE_CFG.slots


#: Every known fault and the proof it must break.
FAULTS = (
    Fault("fire_ge", "tb", "lif_unit_default"),
    Fault("leak_skipped", "tb", "lif_unit_acc_below_mem_l0_3125"),
    Fault("no_group_carry", "tb", "lif_stage_chain_n2"),
    Fault("mem_row_plus_one", "tb", "lif_stage_chain_n2"),
    Fault("drop_beat_backpressure", "tb", "core_stream_contract_any_powerup"),
    Fault("duplicate_beat_backpressure", "tb", "core_stream_contract_any_powerup"),
    Fault("tie_toward_minus_inf", "formal", "lif_unit_acc_below_mem_l0_3125"),
    Fault("acc_sat_max_minus_one", "formal", "pe_array_f2"),
    Fault("carry_u", "formal", "lif_stage_chain_n2"),
    Fault("ready_waits_for_valid", "formal", "core_cmd_ready_cone"),
    Fault("error_not_sticky", "formal", "core_stream_contract_any_powerup"),
)
assert {f.name for f in FAULTS if f.source == "formal"} == set(FORMAL_MUTATIONS)


def _run_yosys(tools, workdir: Path, name: str, job):
    import subprocess
    from .tools import SbyResult
    d = workdir / name
    d.mkdir(parents=True, exist_ok=True)
    for fname, text in job.files.items():
        (d / fname).write_text(text, encoding="utf-8")
    (d / "check.ys").write_text(job.script + "\n", encoding="utf-8")
    t0 = time.monotonic()
    proc = subprocess.run([tools.yosys, "-q", "check.ys"], cwd=d, capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    status = "PASS" if proc.returncode == 0 else (
        "FAIL" if "Assertion failed: selection is not empty" in out else "ERROR")
    failed = [line.strip() for line in out.splitlines() if "/" in line and "ERROR" not in line]
    return SbyResult(status, time.monotonic() - t0, d, failed=failed, log=out[-3000:])


def run_proof(proof: Proof, tools, workdir: Path, *, mutate=None, tag: str = ""):
    """Build and run one proof; returns ``(SbyResult, Job)``."""
    job = proof.build(mutate=mutate)
    name = proof.name + (f"-{tag}" if tag else "")
    if job.mode == "yosys":
        return _run_yosys(tools, Path(workdir), name, job), job
    res = run_sby(tools, Path(workdir) / name, name, job.files, job.script, mode=job.mode,
                  depth=job.depth)
    return res, job


def counterexample(res, job, max_steps: int = 24) -> str:
    """Readable text of a failed proof: failed assertions, values per step, VCD path."""
    lines = []
    for loc in res.failed:
        lines.append(f"  failed: {loc}{_source_line(loc)}")
    if res.trace is not None and job.show:
        try:
            steps, widths = read_vcd(res.trace, job.show)
        except (OSError, ValueError) as exc:
            steps, widths = [], {}
            lines.append(f"  (could not read {res.trace}: {exc})")
        if job.mode == "bmc":
            steps = steps[:job.depth]
        for i, values in enumerate(steps[:max_steps]):
            shown = " ".join(f"{n}={_fmt(values[n], widths[n], n in job.signed)}"
                             for n in job.show if n in values)
            lines.append(f"  step {i}: {shown}")
    if res.trace is not None:
        lines.append(f"  trace: {res.trace}")
    if res.status == "ERROR":
        lines.append(res.log[-1500:])
    return "\n".join(lines)


def _fmt(value: int, width: int, signed: bool) -> str:
    if signed:
        return str(value - (1 << width) if value >> (width - 1) else value)
    return hex(value) if width > 8 else str(value)


def _source_line(loc: str) -> str:
    """`` -- <text>`` of ``file.py:LINE`` (an assertion's source), if readable."""
    path, _, rest = loc.rpartition(":")
    line = rest.split(".")[0]
    try:
        text = Path(path).read_text(encoding="utf-8").splitlines()[int(line) - 1].strip()
    except (OSError, ValueError, IndexError):
        return ""
    return f"  -- {text}"


def main(argv=None) -> int:
    p = OneLineParser(prog="formal.run", description="Run the formal proofs (docs/reliability.md).")
    p.add_argument("--quick", action="store_true", help="only the quick subset")
    p.add_argument("--only", default="", help="only proofs whose name contains this text")
    p.add_argument("--list", action="store_true", help="list the proofs and exit")
    p.add_argument("--faults", action="store_true",
                   help="also check that every known fault makes its proof fail")
    p.add_argument("--work", default="build/formal", help="folder for the job files")
    args = p.parse_args(argv)
    proofs = [q for q in PROOFS if (q.quick or not args.quick) and args.only in q.name]
    if args.list:
        for q in proofs:
            print(f"{q.name:36s} {q.what} [{q.config}]")
        return 0
    if not proofs:
        p.error(f"--only={args.only!r}: no proof matches")
    tools = find_tools()
    work = Path(args.work)
    ok = True
    t_all = time.monotonic()
    for q in proofs:
        res, job = run_proof(q, tools, work)
        depth = "structural" if job.mode == "yosys" else f"{job.mode} {job.depth}"
        print(f"{res.status:5s} {q.name:36s} {res.seconds:6.1f} s  {depth:9s} {q.config}",
              flush=True)
        if res.status != "PASS":
            ok = False
            print(counterexample(res, job), flush=True)
    if args.faults:
        for f in FAULTS:
            q = next((x for x in PROOFS if x.name == f.proof), None)
            if q is None or args.only not in q.name:
                continue
            res, job = run_proof(q, tools, work, mutate=f.mutate(_slots(q.name)),
                                 tag=f"fault-{f.name}")
            caught = res.status == "FAIL"
            ok &= caught
            print(f"{'CAUGHT' if caught else 'MISSED'} fault {f.name:28s} by {q.name} "
                  f"{res.seconds:6.1f} s  ({f.bug})", flush=True)
            if not caught:
                print(counterexample(res, job), flush=True)
    print(f"formal: {'all passed' if ok else 'FAILED'} in {time.monotonic() - t_all:.1f} s "
          f"(solver {tools.solver})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(run_main(main, "python -m formal.run", sys.argv[1:]))
