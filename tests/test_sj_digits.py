"""``python -m tb.sj_digits`` (``make demo-sj``) in small: SpikingJelly training, both import routes, RTL.

One run of the example with 2 epochs on 200 training images, 8 channels, 6
test images and ARRAY=8 (both routes share one Verilator build, 20-60 s the
first time; cached in ``TB_SIM_BUILD`` / ``sim_build/``). Checked from the
report JSON: the imported float reference equals SpikingJelly's forward
spike for spike on every LIF layer (direct import and through the NIR file
from snnTorch's exporter), the NIR route quantizes to the direct import's
integers, and the RTL ran with 0 mismatches and gave the fixed-point
model's class on every sample. The checks that turn these into a failing
exit status are tested on doctored rows.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("spikingjelly.clock_driven.neuron", reason="SpikingJelly is not installed (extra 'import')")
pytest.importorskip("snntorch", reason="snnTorch is not installed (extra 'import')")
pytest.importorskip("nirtorch", reason="nirtorch (snnTorch's NIR exporter) is not installed")

from golden.cli import run_main  # noqa: E402
from tb import sj_digits  # noqa: E402

SAMPLES = 6


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    d = tmp_path_factory.mktemp("sjd")
    code = run_main(sj_digits.main, sj_digits.PROG, [
        "--epochs", "2", "--train-samples", "200", "--samples", str(SAMPLES), "--channels", "8",
        "--array", "8", "--out", str(d / "run"), "--report", str(d / "report.md")])
    doc = json.loads((d / "report.json").read_text())
    return code, doc, (d / "report.md").read_text()


def test_tiny_run_end_to_end(report):
    code, doc, md = report
    assert code == 0, md
    assert doc["ok"]
    rows = {r["route"]: r for r in doc["rows"]}
    assert set(rows) == {"sj", "nir"}
    for r in rows.values():
        # the structure read from the model: C#4 everywhere, conv2/conv3 one L block, a read-out
        assert [l["mode"] for l in r["layers"]] == ["chained"] * 3 + ["readout"]
        assert [l["block"] for l in r["layers"]] == [None, 1, 1, None]
        assert all(l["bias"] for l in r["layers"])             # folded BatchNorm (and fc's bias)
        assert r["spike_diff"] == 0 and r["spikes_compared"] > 0
        assert r["ref_acc"] == r["framework_acc"] and r["ref_pred_equals_framework"]
        assert r["rtl_mismatches"] == 0 and r["rtl_ok"] and r["rtl_golden_equal"]
        assert r["rtl_equals_fixed"] and r["rtl_acc"] == r["fixed_acc"]
        assert r["rtl_checked"]["beats"] == r["rtl_checked"]["beats_expected"] > 0
    assert [l["pool"] for l in rows["sj"]["layers"]] == [1, 2, 1, 2]     # max pooling read
    assert rows["nir"]["nir_equals_direct_import"]
    assert rows["nir"]["cfg"]["weight_rows"] == sj_digits.WEIGHT_ROWS      # golden.convert --weight-rows
    assert "| sj | PoolNet |" in md and "python -m golden.convert" in md and "python -m tb.run" in md


def test_failures_are_detected(report):
    _, doc, _ = report
    good = doc["rows"][0]
    assert sj_digits._failures([good]) == []
    for change, text in ((dict(spike_diff=3), "differs from SpikingJelly on 3 spikes"),
                         (dict(rtl_mismatches=1), "RTL run failed"),
                         (dict(rtl_equals_fixed=False), "RTL classes differ"),
                         (dict(nir_equals_direct_import=False), "integer network differs")):
        bad = sj_digits._failures([{**good, **change}])
        assert len(bad) == 1 and text in bad[0], bad


def test_bad_options_are_one_line(capsys):
    for argv, text in ((["--routes", "x"], "--routes"), (["--channels", "6"], "not a multiple of --groups"),
                       (["--array", "6"], "--array 6 is not a multiple")):
        with pytest.raises(SystemExit) as e:
            sj_digits.parse_args(argv)
        assert e.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("python -m tb.sj_digits: error:") and text in err[0]
