"""Icarus: what the emitted Verilog costs, and what gen/icarus.py's rewrites of it save.

``python benchmarks/icarus_nets.py [--array 128] [--groups 4] [--samples 6] [-T 3]``

Runs the first block of the simrate workload (benchmarks/simrate.py: the
seeded test network, its golden schedule compiled for ``tb_bulk_top``) in
``vvp`` alone, driven by a small Verilog bench instead of cocotb (so neither
VPI nor Python is measured), on texts of the core (``--variants``): as
``gen.emit`` writes it (``emitted``); :func:`gen.icarus.strip_field_wires`
applied (``no_fields``); then :func:`gen.icarus.continuous_next_state`
(``continuous``); then :func:`gen.icarus.concat_part_nets` (``concat``:
:func:`gen.icarus.icarus_verilog`, what tb/build.py compiles for Icarus);
and the unused experiment :func:`gen.icarus.procedural_wide_nets` on the
emitted text (``wide_nets``) and on ``no_fields`` (``both``).
gen/icarus.py explains what each costs Icarus.

It prints the CPU seconds and cycles per CPU-second of each, and whether
the captured beats and membrane rows are byte-identical to the first
variant's. It prints and never asserts.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

BENCH = """`timescale 1ns/1ps
module bench;
  wire clk;
  reg rst = 1, go = 0, load_ops = 1, load_wt = 1, load_wq = 1, stress = 1;
  reg [31:0] n_ops = `NOPS, n_wt = `NWT, n_wq = `NWQ, wl_lo = 0, seed = 1, stall_limit = 5000;
  wire done; wire [2:0] status; wire [31:0] cycles, beats_total;
  tb_bulk_top t(.clk(clk), .rst(rst), .go(go), .load_ops(load_ops), .load_wt(load_wt),
                .n_ops(n_ops), .n_wt(n_wt), .seed(seed), .stress(stress),
                .load_wq(load_wq), .n_wq(n_wq), .wl_lo(wl_lo),
                .stall_limit(stall_limit), .done(done), .status(status), .cycles(cycles),
                .beats_total(beats_total));
  initial begin
    repeat (4) @(posedge clk);
    @(negedge clk) rst = 0;
    @(negedge clk) go = 1;
    forever begin
      @(posedge done);
      if (status != 2) begin
        $display("status %0d cycles %0d beats %0d", status, cycles, beats_total);
        $finish;
      end
      @(negedge clk) begin load_ops = 0; load_wt = 0; load_wq = 0; go = ~go; end
    end
  end
endmodule
"""


def _vvp(d: Path, core: Path, n_ops: int, n_wt: int, n_wq: int, name: str) -> tuple[float, str]:
    exe = d / f"{name}.vvp"
    subprocess.run(["iverilog", "-g2012", f"-DNOPS={n_ops}", f"-DNWT={n_wt}", f"-DNWQ={n_wq}",
                    "-o", str(exe),
                    "-s", "bench", str(d / "bench.v"), str(d / "tb_bulk_top.v"), str(core)],
                   check=True, capture_output=True, text=True)
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(["vvp", "-n", str(exe)], cwd=d, check=True, capture_output=True,
                         text=True).stdout
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime), out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python benchmarks/icarus_nets.py",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--array", type=int, default=128)
    ap.add_argument("--groups", type=int, default=4)
    ap.add_argument("--samples", type=int, default=6)
    ap.add_argument("-T", "--timesteps", type=int, default=3)
    ap.add_argument("--variants", default="emitted,no_fields,wide_nets,both",
                    help="comma-separated texts to run (the first is the reference)")
    a = ap.parse_args(argv)

    from golden.config import HwConfig
    from golden.schedule import build_schedule
    from tb.bfm import flatten
    from tb.build import emit_rtl, sim_build_dir
    from tb.bulk import blocks, compile_program, ops_bin, wl_window, wq_bin, wt_bin
    from tb.bulk_top import BulkDepths, depths_for, write_bulk_top
    from tb.payload import layouts_from_manifest
    from tb.stimulus import make_network, make_spikes

    cfg = HwConfig(array=a.array, groups=a.groups)
    verilog, mpath = emit_rtl(cfg)
    mf = json.loads(Path(mpath).read_text())
    net = make_network(cfg, 1, True)
    sched = build_schedule(cfg, net, make_spikes(net, 1, a.samples, a.timesteps))
    ops, _ = flatten(sched, layouts_from_manifest(mf, cfg))
    width = {p["name"]: p["width"] for p in mf["ports"]}
    prog = compile_program(ops, 1, True, width["cmd__payload"])
    depths = BulkDepths(**dict(vars(depths_for(mf)), ops=1 << 17, wq=1 << 17))
    lo, hi = blocks(prog, depths)[0]
    wlo, whi, ids = wl_window(prog, 0, depths)
    d = sim_build_dir() / "icarus_nets" / cfg.name
    d.mkdir(parents=True, exist_ok=True)
    (d / "bulk_ops.bin").write_bytes(ops_bin(prog, lo, hi))
    (d / "bulk_wt.bin").write_bytes(wt_bin(prog, width["wload__payload"], ids))
    (d / "bulk_wq.bin").write_bytes(wq_bin(prog, wlo, whi, ids))
    write_bulk_top(mf, d, depths)
    (d / "bench.v").write_text(BENCH)
    from gen.icarus import concat_part_nets, continuous_next_state, icarus_verilog, \
        procedural_wide_nets, strip_field_wires
    text = Path(verilog).read_text()
    variants = {"emitted": text, "no_fields": strip_field_wires(text)[0],
                "wide_nets": procedural_wide_nets(text)[0]}
    variants["both"] = procedural_wide_nets(variants["no_fields"])[0]
    variants["continuous"] = continuous_next_state(variants["no_fields"])[0]
    variants["concat"] = concat_part_nets(variants["continuous"])[0]
    n = icarus_verilog(text)[1]
    for name, t in variants.items():
        (d / f"core_{name}.v").write_text(t)
    n_wt = len(prog.wt) if ids is None else int(ids.size)
    print(f"icarus_nets: {cfg.name}, {a.samples} samples, T={a.timesteps}, stress on; "
          f"{hi - lo} operation words; {n}", flush=True)
    rows = []
    for name in a.variants.split(","):
        if name not in variants:
            ap.error(f"--variants: unknown text {name!r} (expected {', '.join(variants)})")
        core = d / f"core_{name}.v"
        cpu, out = _vvp(d, core, hi - lo + 1, n_wt, whi - wlo, name)
        cyc = int(re.search(r"cycles (\d+)", out).group(1))
        caps = b"".join((d / f).read_bytes() for f in ("bulk_out.hex", "bulk_mem.hex")
                        if (d / f).exists())
        rows.append((name, cyc, cpu, caps))
        print(f"{name:10s} {cyc:8d} cycles {cpu:8.2f} CPU-s {cyc / cpu:12,.0f} cycles/CPU-s",
              flush=True)
    for name, _, cpu, caps in rows[1:]:
        print(f"{name}: captures identical to {rows[0][0]}: {caps == rows[0][3]}; "
              f"speed-up {rows[0][2] / cpu:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
