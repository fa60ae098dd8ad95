"""Run ``python -m tb.run`` in-process on a network and inputs (shared by the co-simulation tests)."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr, redirect_stdout

import numpy as np

from golden.cli import run_main
from golden.network import save_network


def run_network(tmp_path, net, x: np.ndarray, *args: str) -> dict:
    """Save ``net`` and ``x`` under ``tmp_path``, run tb.run with ``args`` and
    ``--workers 1 --out tmp_path/out``; assert exit status 0; return results.json."""
    from tb import run
    save_network(net, tmp_path / "net.npz")
    np.save(tmp_path / "x.npy", x)
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = run_main(run._main, run.PROG, [
            "--network", str(tmp_path / "net.npz"), "--inputs", str(tmp_path / "x.npy"),
            "--workers", "1", *args, "--out", str(tmp_path / "out")])
    assert code == 0, out.getvalue()[-3000:] + err.getvalue()[-3000:]
    return json.loads((tmp_path / "out" / "results.json").read_text())
