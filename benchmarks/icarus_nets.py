"""Icarus: what the emitted Verilog costs, and what one rewrite of it saves.

``python benchmarks/icarus_nets.py [--array 128] [--groups 4] [--samples 6] [-T 3]``

Runs the first block of the simrate workload (benchmarks/simrate.py: the
seeded test network, its golden schedule compiled for ``tb_bulk_top``) in
``vvp`` alone, driven by a small Verilog bench instead of cocotb (so neither
VPI nor Python is measured), twice:

1. the Verilog as ``gen.emit`` writes it;
2. the same Verilog with every net that has eight or more continuous part
   assignments (``assign beat[15:0] = ...``) and every continuous
   concatenation of eight or more parts (``assign wr_data = {a, b, ...}``)
   computed in one ``always_comb`` instead (:func:`rewrite`).

Icarus builds such nets as trees of strength-preserving ``.concat8``
functors; every change of any part re-sends the whole wide vector, and the
receiver converts it back to four-state one bit at a time
(``vvp_vector4_t::set_bit`` + ``reduce4`` were 57 % of the time at
ARRAY=128 under ``perf``). It prints the CPU seconds and cycles per
CPU-second of both, and whether the captured beats and membrane rows are
byte-identical. It prints and never asserts. The rewrite is an experiment
for the generator (the fix belongs in the emitted Verilog, gen/), not part of
any build.
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
  reg rst = 1, go = 0, load_ops = 1, load_wt = 1, stress = 1;
  reg [31:0] n_ops = `NOPS, n_wt = `NWT, seed = 1, stall_limit = 5000;
  wire done; wire [2:0] status; wire [31:0] cycles, beats_total;
  tb_bulk_top t(.clk(clk), .rst(rst), .go(go), .load_ops(load_ops), .load_wt(load_wt),
                .n_ops(n_ops), .n_wt(n_wt), .seed(seed), .stress(stress),
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
      @(negedge clk) begin load_ops = 0; load_wt = 0; go = ~go; end
    end
  end
endmodule
"""


def rewrite(text: str, min_parts: int = 8) -> tuple[str, int]:
    """Move wide many-part nets of each module into ``always_comb`` blocks."""
    mods = text.split("endmodule")
    total = 0
    for k, mod in enumerate(mods):
        lines = mod.split("\n")
        decl = {}
        for ln in lines:
            m = re.match(r"\s*wire (?:signed )?\[(\d+):0\] (\S+)\s*;", ln)
            if m:
                decl[m.group(2)] = int(m.group(1)) + 1
        parts, drop, extra = {}, set(), []
        for i, ln in enumerate(lines):
            m = re.match(r"  assign (\S+)\[(\d+):(\d+)\] = (.*);$", ln) or \
                re.match(r"  assign (\S+)\[(\d+)()\] = (.*);$", ln)
            if m:
                hi = int(m.group(2))
                lo = int(m.group(3)) if m.group(3) else hi
                parts.setdefault(m.group(1), []).append((i, hi, lo, m.group(4)))

        def var(net):
            return net + "__c" if not net.startswith("\\") else net + "__c "
        for net, ps in parts.items():
            if len(ps) < min_parts or net not in decl:
                continue
            w, c = decl[net], var(net)
            body = "\n".join(f"    {c}[{hi}:{lo}] = {rhs};" for _, hi, lo, rhs in ps)
            extra.append(f"  reg [{w - 1}:0] {c};\n  always_comb begin\n    {c} = {{{w}{{1'bz}}}};\n"
                         f"{body}\n  end\n  assign {net} = {c};")
            drop.update(i for i, *_ in ps)
        for i, ln in enumerate(lines):
            m = re.match(r"  assign (\S+) = (\{.*\});$", ln)
            if m and m.group(2).count(",") >= min_parts - 1 and m.group(1) in decl:
                net = m.group(1)
                w, c = decl[net], var(net)
                extra.append(f"  reg [{w - 1}:0] {c};\n  always_comb {c} = {m.group(2)};\n"
                             f"  assign {net} = {c};")
                drop.add(i)
        if extra:
            total += len(extra)
            mods[k] = "\n".join(ln for i, ln in enumerate(lines) if i not in drop) + "\n" + \
                "\n".join(extra) + "\n"
    return "endmodule".join(mods), total


def _vvp(d: Path, core: Path, n_ops: int, n_wt: int, name: str) -> tuple[float, str]:
    exe = d / f"{name}.vvp"
    subprocess.run(["iverilog", "-g2012", f"-DNOPS={n_ops}", f"-DNWT={n_wt}", "-o", str(exe),
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
    a = ap.parse_args(argv)

    from golden.config import HwConfig
    from golden.schedule import build_schedule
    from tb.bfm import flatten
    from tb.build import emit_rtl, sim_build_dir
    from tb.bulk import blocks, compile_program, ops_bin, wt_bin
    from tb.bulk_top import BulkDepths, depths_for, write_bulk_top
    from tb.payload import layouts_from_manifest
    from tb.stimulus import make_network, make_spikes

    cfg = HwConfig(array=a.array, groups=a.groups)
    verilog, mpath = emit_rtl(cfg)
    mf = json.loads(Path(mpath).read_text())
    net = make_network(cfg, 1, True)
    sched = build_schedule(cfg, net, make_spikes(net, 1, a.samples, a.timesteps))
    ops, _ = flatten(sched, layouts_from_manifest(mf, cfg))
    prog = compile_program(ops, 1, True)
    depths = BulkDepths(**dict(vars(depths_for(mf)), ops=1 << 17))
    lo, hi, ids = blocks(prog, depths)[0]
    d = sim_build_dir() / "icarus_nets" / cfg.name
    d.mkdir(parents=True, exist_ok=True)
    (d / "bulk_ops.bin").write_bytes(ops_bin(prog, lo, hi, ids))
    width = {p["name"]: p["width"] for p in mf["ports"]}["wload__payload"]
    (d / "bulk_wt.bin").write_bytes(wt_bin(prog, width, ids))
    write_bulk_top(mf, d, depths)
    (d / "bench.v").write_text(BENCH)
    text = Path(verilog).read_text()
    new, n = rewrite(text)
    (d / "core_rewritten.v").write_text(new)
    n_wt = len(prog.wt) if ids is None else int(ids.size)
    print(f"icarus_nets: {cfg.name}, {a.samples} samples, T={a.timesteps}, stress on; "
          f"{hi - lo} operation words; {n} nets rewritten", flush=True)
    rows = []
    for name, core in (("emitted", Path(verilog)), ("rewritten", d / "core_rewritten.v")):
        cpu, out = _vvp(d, core, hi - lo + 1, n_wt, name)
        cyc = int(re.search(r"cycles (\d+)", out).group(1))
        caps = b"".join((d / f).read_bytes() for f in ("bulk_out.hex", "bulk_mem.hex")
                        if (d / f).exists())
        rows.append((name, cyc, cpu, caps))
        print(f"{name:10s} {cyc:8d} cycles {cpu:8.2f} CPU-s {cyc / cpu:12,.0f} cycles/CPU-s",
              flush=True)
    print(f"captures identical: {rows[0][3] == rows[1][3]}; speed-up {rows[0][2] / rows[1][2]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
