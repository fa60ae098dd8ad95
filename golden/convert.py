"""``python -m golden.convert GRAPH.nir -o NET.npz``: a NIR graph -> a quantized network file.

Reads the graph with :func:`golden.importers.nir.from_nir` (``--reset`` is
required, ``--fire``, ``--dt``, ``--share``), quantizes it with
:func:`golden.quantize.quantize` for the hardware options (``--array``,
widths, ``--frac-bits``, ``--weight-rows`` / ``--mem-rows``) and writes the integer :class:`golden.network.Network`
(docs/network-format.md) plus, with ``--config``, the :class:`HwConfig` as
JSON. Both files are written all-or-nothing. Every problem is one
``python -m golden.convert: error: ...`` line, exit status 2.

:func:`convert` is the same as a function.
"""

from __future__ import annotations

import json
import sys
from typing import Optional, Sequence

from .cli import OneLineParser, posint, run_main
from .config import MAX_ROWS
from .files import atomic_write
from .network import Network

__all__ = ["convert", "main"]

PROG = "python -m golden.convert"


def convert(graph, *, reset: Optional[str] = None, fire: str = "gt", dt: Optional[float] = None,
            share: Sequence = (), array: int = 128, weight_width: int = 8, acc_width: int = 16,
            mem_width: int = 16, leak_bits: int = 8, frac_bits: Optional[int] = None,
            weight_rows: Optional[int] = None, mem_rows: Optional[int] = None):
    """NIR graph (object or path) -> :class:`golden.quantize.Quantized` (cfg, network, choices)."""
    from .importers.nir import from_nir
    from .quantize import quantize
    model = from_nir(graph, reset=reset, fire=fire, dt=dt, share=share)
    return quantize(model, weight_width=weight_width, acc_width=acc_width, mem_width=mem_width,
                    leak_bits=leak_bits, array=array, frac_bits=frac_bits, weight_rows=weight_rows,
                    mem_rows=mem_rows)


def _network_bytes(net: Network) -> bytes:
    """The bytes :func:`golden.network.save_network` writes, so the network and the
    config can go through one all-or-nothing :func:`atomic_write`."""
    import os
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "net.npz")
        net.save(p)
        with open(p, "rb") as fh:
            return fh.read()


def main(argv=None) -> int:
    ap = OneLineParser(prog=PROG, description="Convert a NIR graph into a quantized network file (.npz).")
    ap.add_argument("graph", help="NIR graph file (.nir, HDF5)")
    ap.add_argument("-o", "--output", required=True, help="network file to write (.npz)")
    ap.add_argument("--reset", choices=("soft", "hard"), required=True,
                    help="reset mode (NIR cannot express it: required)")
    ap.add_argument("--fire", choices=("gt", "ge"), default="gt", help="firing rule: U > θ (NIR) or U >= θ")
    ap.add_argument("--dt", type=float, default=None, help="discretization step (default: graph metadata 'dt')")
    ap.add_argument("--share", action="append", default=[], metavar="NODE[,NODE...][:N]",
                    help="LIF nodes forming one L block, with C#N group count N (repeatable)")
    ap.add_argument("--array", type=posint("--array"), default=128, help="PE array size")
    ap.add_argument("--weight-width", type=posint("--weight-width"), default=8, help="weight bits")
    ap.add_argument("--acc-width", type=posint("--acc-width"), default=16, help="accumulator bits")
    ap.add_argument("--mem-width", type=posint("--mem-width"), default=16, help="membrane bits")
    ap.add_argument("--leak-bits", type=posint("--leak-bits"), default=8, help="leak fraction bits")
    ap.add_argument("--frac-bits", type=int, default=None, help="fixed-point fraction bits (default: chosen)")
    ap.add_argument("--weight-rows", type=posint("--weight-rows", MAX_ROWS), default=None,
                    help="weight buffer rows of the configuration (default: the fewest that hold the network)")
    ap.add_argument("--mem-rows", type=posint("--mem-rows", MAX_ROWS), default=None,
                    help="membrane buffer rows of the configuration (default: the fewest that hold the network)")
    ap.add_argument("--config", default=None, help="also write the hardware configuration (JSON) here")
    a = ap.parse_args(argv)
    q = convert(a.graph, reset=a.reset, fire=a.fire, dt=a.dt, share=a.share, array=a.array,
                weight_width=a.weight_width, acc_width=a.acc_width, mem_width=a.mem_width,
                leak_bits=a.leak_bits, frac_bits=a.frac_bits, weight_rows=a.weight_rows,
                mem_rows=a.mem_rows)
    files = {a.output: _network_bytes(q.network)}
    if a.config:
        files[a.config] = json.dumps(q.cfg.to_dict(), indent=2, sort_keys=True) + "\n"
    atomic_write(files)
    c = q.cfg
    print(f"{a.output}: {len(q.network.layers)} layers, groups={c.groups}, frac_bits={c.frac_bits}, "
          f"theta_int={c.theta_int}, leak_int={c.leak_int}/2^{c.leak_bits}, reset={c.reset}, fire={c.fire}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, PROG))
