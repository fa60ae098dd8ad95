"""Generate ``tb_bulk_top``: a Verilog testbench top for the bulk co-simulation.

``tb_bulk_top`` wraps ``lif_pe_array`` and runs a whole block of stimulus
without Python in the loop (tb/bulk.py fills and drains it between blocks):

* an **operation memory** (``op_mem``, :func:`op_width` bits per word: 64
  when the command payload fits, else :data:`OPW` = 128; read
  with ``$fread`` from the binary file ``bulk_ops.bin`` in the simulator's
  working directory, the run directory: 8 or 16 bytes per word, most significant
  byte first (Verilator's ``$fread`` costs a ``fgetc`` per byte); ``$readmemh`` parsing costs more than the simulation) holds
  the program; word bits ``[2:0]`` kind, ``[34:3]`` argument,
  ``[35 +: cmd width]`` command payload:

  ====  ======  =========================================================
  kind  name    meaning
  ====  ======  =========================================================
  0     END     end of the block: pause once the read-back pipeline is empty
  1     IDLE    wait until ``busy`` = 0 was seen in a cycle without a command
                offered (the previous cycle, as the per-cycle BFM samples it;
                this cycle when a command follows, which is then offered at
                once, as the BFM does) and ``arg`` beats (since reset) were
                captured; record the first non-zero ``error`` (value and
                operation index)
  3     CMD     ``arg`` cycles with ``cmd__valid`` = 0, then one ``cmd`` beat
  4     RB      drive ``dbg_addr`` = ``arg``; ``dbg_data`` is captured two
                edges later (one row per cycle, pipelined)
  5     WAITWL  wait until ``arg`` weight-load beats (since reset) were
                accepted; these cycles are counted in ``wl_wait_cycles``
                (the *exposed* weight-load cycles)
  2     WAITMF  wait until ``arg`` membrane fill beats (since reset) were
                accepted (a top with a spill/fill engine only)
  ====  ======  =========================================================

* a **weight-load engine**, running concurrently with the operation
  memory: its queue ``wq_mem`` (``bulk_wq.bin``, 8 bytes per entry, most
  significant first: bits ``[63:32]`` weight-table index, ``[31:0]`` fence)
  holds a window of the weight-load stream, entry 0 being beat ``wl_lo``
  (counted from reset). Beat ``wl_count`` (the beats accepted so far) is
  presented once ``cmd_count`` (command beats accepted so far, including one
  accepted on the same edge) has reached its fence, so it transfers on a
  later edge than the command it waits for; with ``stress`` = 1 a second
  xorshift generator puts a gap of 1-6 cycles after a beat with
  probability 1/4. It stops offering while the block is ending (END) or a
  capture memory is nearly full, so that a pause finds both streams quiet;
  the counters live across pauses, so a block boundary never breaks a
  fence. When WAITWL waits for a beat beyond the loaded window the top
  pauses with status WLQ (the host loads the next window);
* with ``BulkDepths.sp`` > 0 (networks whose membranes spill, docs/schedule.md
  "Spilled membranes"; otherwise ``mfill`` is tied off and ``mspill__ready``
  high, and none of this exists: no per-cycle cost) a **spill capture
  memory** ``cap_sp`` (``sp`` words: every ``mspill`` beat of the block,
  ``bulk_sp.hex``; ``mspill__ready`` is 1 with probability 3/4 under
  stress, 0 once it is full) and a **fill engine** with its queue ``fq_mem``
  (``bulk_mq.bin``, 8 bytes per entry, most significant first: bit 63
  *forward*, ``[62:32]`` capture index, ``[31:0]`` fence in output beats)
  and data ``fd_mem`` (``bulk_md.bin``, the mfill payload,
  ``ceil(width / 8)`` bytes): entry 0 is fill ``mf_lo`` (since reset); fill
  ``mf_count`` is offered once ``beats_total`` (counting this edge's beat)
  has reached its fence (the beats of the pass's ``fills_after`` item), with
  the random 1-6 cycle gaps of the weight-load engine under stress, and not
  while the block ends or a capture memory is nearly full. Its payload is
  ``fd_mem``'s, or, for a *forward* entry, the data of spill ``cap_sp[index]``
  of this block with ``fd_mem``'s address, offered only once that spill was
  captured (from the edge that captures it on, bypassing the memory) (a fill that reads a spill of the same block, read in the
  simulator; the host serves from ``fd_mem`` the fills whose spills it has
  already drained and checked, and reloads the queue at every ``go``, when
  ``n_sp`` restarts at 0). WAITMF beyond the loaded queue pauses with status
  MFQ;
* a **weight table** (``wt_mem``, the wload payload width, ``bulk_wt.bin``,
  ``ceil(width / 8)`` bytes per word, most significant first):
  every distinct weight-load beat once (or those of the window); the queue
  indexes it;
* **capture memories** of every transferred output beat (``cap_out``,
  written to ``bulk_out.hex``), the ``cycles`` count at its transfer
  (``cap_cyc``, ``bulk_cyc.hex``, 32 bits) and every read-back membrane row
  (``cap_mem``, ``bulk_mem.hex``), dumped with ``$writememh`` at a pause;
* an xorshift32 generator seeded from ``seed`` that drives ``out__ready`` in
  phases (always / 85 % / 50 % / 15 % / never ready) when ``stress`` = 1;
* the clock ``clk`` (an output: generated inside, ``always #5``, so the
  simulator advances without a callback into cocotb per edge);
* a watchdog (``stall_limit`` cycles without an operation completing, a
  weight-load beat accepted or a beat or row captured) and, on four-state simulators only, an X/Z check of
  ``busy`` and ``out__valid`` every cycle, of ``cmd__ready`` /
  ``wload__ready`` while offering, and of every output at each IDLE.

The DUT's ``rst`` is the top's ``rst`` registered on the rising edge (the
DUT is reset one cycle after the top, for as many cycles), and ``n_wq`` /
``wl_lo`` / ``stall_limit`` are registered when ``go`` toggles: no logic
outside a clocked process reads a top-level input, so a Verilator build
evaluates the DUT's next-state logic once per rising edge rather than in
every ``eval()`` (its input-combinational phase; about a fifth of the time).

Host protocol (ports): after reset, write the binary files, set ``n_ops`` /
``n_wt`` / ``n_wq`` / ``wl_lo`` and ``load_ops`` / ``load_wt`` / ``load_wq``,
then toggle ``go``. The top reads the files (``load_*`` = 1), runs until END,
a capture memory being nearly full (only where no beat is offered: never
mid-handshake), the weight-load window being exhausted while WAITWL waits,
a timeout or an X/Z, dumps the captures, and raises ``done`` with
``status`` (1 END, 2 FULL, 3 TIMEOUT, 4 X/Z, 5 WLQ, 6 MFQ). While paused ``out__ready`` and every ``valid`` are 0, so a
block may end anywhere in the stream. Toggle ``go`` again to continue
(``load_ops`` = 0 after FULL or WLQ: same block, next operation).

Generated from the manifest's port widths (never edit the output);
:func:`bulk_top_verilog` is its only writer.
"""

from __future__ import annotations

__all__ = ["TOP", "OPW", "op_width", "KINDS", "STATUS", "BulkDepths", "bulk_top_verilog", "bulk_top_ports",
           "bulk_top_outputs", "write_bulk_top", "depths_for"]

from dataclasses import dataclass
from pathlib import Path

from golden.files import atomic_write

TOP = "tb_bulk_top"
#: half clock period of the generated clock (time units of the 1ns/1ps timescale)
HALF_PERIOD = 5
#: extra Verilator flags of a tb_bulk_top build (the generated clock is a delay loop)
VERILATOR_FLAGS = ("--timing", "-CFLAGS", "-fcoroutines", "-CFLAGS", "-std=gnu++20")
OPW = 128
ARG_BITS = 32


def op_width(cmd_width: int) -> int:
    """Bits per operation word of a top whose command payload is ``cmd_width`` bits."""
    return 64 if 3 + ARG_BITS + cmd_width <= 64 else OPW

KINDS = {"END": 0, "IDLE": 1, "WAITMF": 2, "CMD": 3, "RB": 4, "WAITWL": 5}
STATUS = {1: "END", 2: "FULL", 3: "TIMEOUT", 4: "XZ", 5: "WLQ", 6: "MFQ"}
#: X/Z finding codes of the ``xz_what`` port
XZ_WHAT = {1: "busy", 2: "out__valid", 3: "cmd__ready", 4: "wload__ready", 5: "an output at an idle point",
           6: "mfill__ready", 7: "mspill__valid"}
#: out__ready probabilities (of 256) of the backpressure phases, indexed by 3 random bits
BP_LEVELS = (256, 256, 218, 128, 38, 0, 256, 128)
#: cycles the top's ``cycles`` counter holds beyond the per-cycle BFM's count
#: in a run of one block without a pause (tests/test_demo.py compares the two
#: paths): START_CYCLES before the first operation (``S_START``), END_CYCLES
#: after the last one (END seen, ``S_DUMP``, ``done``)
START_CYCLES, END_CYCLES = 1, 4
FILES = {"ops": "bulk_ops.bin", "wt": "bulk_wt.bin", "wq": "bulk_wq.bin", "out": "bulk_out.hex",
         "mem": "bulk_mem.hex", "cyc": "bulk_cyc.hex", "mq": "bulk_mq.bin", "md": "bulk_md.bin",
         "sp": "bulk_sp.hex"}
#: bytes per fill queue entry (use_capture << 63 | capture index << 32 | fence)
MQ_BYTES = 8
#: bytes per weight-load queue entry (index << 32 | fence)
WQ_BYTES = 8


@dataclass(frozen=True)
class BulkDepths:
    """Memory depths (words) of one generated top."""

    ops: int = 1 << 15
    wt: int = 1 << 12
    wq: int = 1 << 15
    out: int = 1 << 12
    mem: int = 1 << 10
    #: depth of the spill capture memory and of the fill queue; 0: no spill/fill
    #: engine (mfill tied off, mspill ready high: no per-cycle cost)
    sp: int = 0


def depths_for(manifest: dict) -> BulkDepths:
    """Depths sized to keep each memory within a few Mbit."""
    w = {p["name"]: p["width"] for p in manifest["ports"]}

    def pow2(bits_budget, width, lo, hi):
        d = lo
        while d * 2 <= hi and d * 2 * width <= bits_budget:
            d *= 2
        return d

    return BulkDepths(ops=1 << 15, wq=1 << 15, wt=pow2(1 << 23, w["wload__payload"], 256, 1 << 13),
                      out=pow2(1 << 22, w["out__payload"], 256, 1 << 13),
                      mem=pow2(1 << 21, w["dbg_data"], 64, 1 << 11))


def _ports(manifest: dict) -> dict:
    return {p["name"]: (p["dir"], p["width"]) for p in manifest["ports"]}


SPILL_PORTS = ("load_mq", "n_mq", "mf_lo", "n_sp", "mf_count", "sp_count")
SPILL_INPUTS = ("load_mq", "n_mq", "mf_lo")


def bulk_top_ports(manifest: dict, depths: BulkDepths | None = None) -> list[str]:
    """Names of ``tb_bulk_top``'s ports (the only signals cocotb touches)."""
    extra = list(SPILL_PORTS) if depths is not None and depths.sp else []
    return extra + ["clk", "rst", "go", "load_ops", "load_wt", "load_wq", "n_ops", "n_wt", "n_wq",
            "wl_lo", "seed", "stress", "stall_limit", "done", "status", "op_ptr", "n_out",
            "n_mem", "beats_total", "err_seen", "err_val", "err_op", "xz_what", "xz_cycle",
            "cycles", "cmd_count", "wl_count", "wl_wait_cycles", "wl_valid_cycles",
            "wl_gap_cycles", "wl_both_cycles", "wl_exp_beats", "rb_cycles", "gap_cycles",
            "bp_cycles", "dut_busy", "dut_error", "dut_out_valid"]


#: the inputs of ``tb_bulk_top`` (every other port of :func:`bulk_top_ports` is an output)
INPUTS = ("rst", "go", "load_ops", "load_wt", "load_wq", "n_ops", "n_wt", "n_wq", "wl_lo", "seed",
          "stress", "stall_limit")


def bulk_top_outputs(manifest: dict, depths: BulkDepths | None = None) -> list[str]:
    """The outputs among :func:`bulk_top_ports` (read-only through VPI)."""
    return [n for n in bulk_top_ports(manifest, depths) if n not in INPUTS + SPILL_INPUTS]


def _clog2(n: int) -> int:
    return max(1, (n - 1).bit_length())


def bulk_top_verilog(manifest: dict, depths: BulkDepths | None = None, source: str = "") -> str:
    """The Verilog text of ``tb_bulk_top`` for the DUT described by ``manifest``."""
    d = depths or depths_for(manifest)
    p = _ports(manifest)
    dut = manifest.get("top", "lif_pe_array")
    need = {"clk", "rst", "cmd__valid", "cmd__ready", "cmd__payload", "out__valid", "out__ready",
            "out__payload", "wload__valid", "wload__ready", "wload__payload", "dbg_addr",
            "dbg_data", "busy", "error"}
    missing = need - set(p)
    if missing:
        raise ValueError(f"manifest lacks port(s) {sorted(missing)} of docs/interface.md")
    CW, WW, OW = p["cmd__payload"][1], p["wload__payload"][1], p["out__payload"][1]
    AW, DW, EW = p["dbg_addr"][1], p["dbg_data"][1], p["error"][1]
    if 3 + ARG_BITS + CW > OPW:
        raise ValueError(f"cmd payload of {CW} bits does not fit the {OPW}-bit operation word")
    W = op_width(CW)
    OA, WA, CA, MA = _clog2(d.ops), _clog2(d.wt), _clog2(d.out), _clog2(d.mem)
    QA = _clog2(d.wq)
    slack = 8 * 64 + 16   # beats still arriving after the last command of a block (>> 2 tiles x N)
    slack = min(slack, d.out // 2)
    levels = "\n".join(f"            3'd{i}: bp_lvl_of = 9'd{v};" for i, v in enumerate(BP_LEVELS))
    ports_conn = ",\n".join(f"        .{n}(d_{n})" for n in
                            ["clk", "rst", "cmd__valid", "cmd__ready", "cmd__payload",
                             "out__valid", "out__ready", "out__payload", "wload__valid",
                             "wload__ready", "wload__payload", "dbg_addr", "dbg_data", "busy",
                             "error"])
    SP = d.sp
    if SP and "mfill__valid" not in p:
        raise ValueError("a spill/fill engine (BulkDepths.sp) for a core without mfill/mspill ports")
    if SP:
        MW = p["mfill__payload"][1]
        fa = manifest["streams"]["mfill"]["fields"]["addr"]
        if manifest["streams"]["mfill"] != manifest["streams"]["mspill"]:
            raise ValueError("mfill and mspill payload layouts differ: the fill engine cannot "
                             "forward a captured spill")
        addr_mask = ((1 << fa["width"]) - 1) << fa["offset"]
        ports_conn += (",\n        .mfill__valid(d_mfill__valid),\n        .mfill__payload(d_mfill__payload),\n"
                       "        .mspill__ready(d_mspill__ready),\n        .mfill__ready(d_mfill__ready),\n"
                       "        .mspill__valid(d_mspill__valid),\n        .mspill__payload(d_mspill__payload)")
        spill_wires = (f"    reg  d_mfill__valid;\n    reg  [{MW - 1}:0] d_mfill__payload;\n"
                       "    wire d_mfill__ready;\n    wire d_mspill__ready;\n    wire d_mspill__valid;\n"
                       f"    wire [{MW - 1}:0] d_mspill__payload;\n")
    elif "mfill__valid" in p:     # membrane spill/fill ports: not driven (tie-off)
        ports_conn += (",\n        .mfill__valid(1'b0),\n        .mfill__payload("
                       f"{p['mfill__payload'][1]}'d0),\n        .mspill__ready(1'b1),\n"
                       "        .mfill__ready(d_mfill__ready),\n        .mspill__valid(d_mspill__valid),\n"
                       "        .mspill__payload(d_mspill__payload)")
        spill_wires = ("    /* verilator lint_off UNUSED */\n    wire d_mfill__ready;\n"
                       "    wire d_mspill__valid;\n"
                       f"    wire [{p['mspill__payload'][1] - 1}:0] d_mspill__payload;\n"
                       "    /* verilator lint_on UNUSED */\n")
    else:
        spill_wires = ""
    frag = _spill_fragments(d, MW if SP else 0, addr_mask if SP else 0) if SP else _NO_SPILL
    src = f" from {source}" if source else ""
    HALF = HALF_PERIOD
    return f"""// Generated by tb/bulk_top.py{src}: testbench top of the bulk co-simulation.
// Do not edit: regenerate (python -m tb.sim --path bulk rewrites it). See tb/bulk_top.py.
module {TOP} (
    output reg  clk,
    input  wire rst,
    input  wire go,
    input  wire load_ops,
    input  wire load_wt,
    input  wire load_wq,
    input  wire [31:0] n_ops,
    input  wire [31:0] n_wt,
    input  wire [31:0] n_wq,
    input  wire [31:0] wl_lo,
    input  wire [31:0] seed,
    input  wire stress,
    input  wire [31:0] stall_limit,
    output reg  done,
    output reg  [2:0] status,
    output reg  [31:0] op_ptr,
    output reg  [31:0] n_out,
    output reg  [31:0] n_mem,
    output reg  [31:0] beats_total,
    output reg  err_seen,
    output reg  [{EW - 1}:0] err_val,
    output reg  [31:0] err_op,
    output reg  [3:0] xz_what,
    output reg  [31:0] xz_cycle,
    output reg  [31:0] cycles,
    output reg  [31:0] cmd_count,
    output reg  [31:0] wl_count,
    output reg  [31:0] wl_wait_cycles,
    output reg  [31:0] wl_valid_cycles,
    output reg  [31:0] wl_gap_cycles,
    output reg  [31:0] wl_both_cycles,
    output reg  [31:0] wl_exp_beats,
    output reg  [31:0] rb_cycles,
    output reg  [31:0] gap_cycles,
    output reg  [31:0] bp_cycles,
    output wire dut_busy,
    output wire [{EW - 1}:0] dut_error,
    output wire dut_out_valid{frag['ports']}
);
    // The clock is generated here (10 time units per cycle, 1 ns with the
    // testbench's 1ns/1ps timescale): no simulator callback per edge.
    // (builds with that simulator need --timing; tb/bulk_top.py VERILATOR_FLAGS)
    initial clk = 1'b0;
    always #{HALF} clk = ~clk;

    localparam [2:0] K_END = 3'd0, K_IDLE = 3'd1, K_CMD = 3'd3, K_RB = 3'd4, K_WAITWL = 3'd5;
    localparam [1:0] S_WAIT = 2'd0, S_START = 2'd1, S_RUN = 2'd2, S_DUMP = 2'd3;
    localparam [2:0] ST_END = 3'd1, ST_FULL = 3'd2, ST_TIMEOUT = 3'd3, ST_XZ = 3'd4, ST_WLQ = 3'd5;

    reg [{W - 1}:0] op_mem [0:{d.ops - 1}];
    reg [{WW - 1}:0] wt_mem [0:{d.wt - 1}];
    reg [63:0] wq_mem [0:{d.wq - 1}];
    reg [{OW - 1}:0] cap_out [0:{d.out - 1}];
    reg [31:0] cap_cyc [0:{d.out - 1}];
    reg [{DW - 1}:0] cap_mem [0:{d.mem - 1}];

    // DUT ports. The DUT's reset is rst registered on the rising edge (one
    // cycle later than the top's own), and the top's inputs that logic reads
    // outside the clocked block are registered at go: nothing combinational
    // depends on a top-level input, so Verilator evaluates the DUT's
    // next-state logic (Amaranth's "if (rst) next = init" processes) once per
    // clock edge, not in every eval() call (its input-combinational phase).
    wire d_clk = clk;
    reg  d_rst_q;
    wire d_rst = d_rst_q;
    always @(posedge clk) d_rst_q <= rst;
    reg  [31:0] n_wq_q, wl_lo_q, stall_limit_q;
    reg  d_cmd__valid;
    wire d_cmd__ready;
    reg  [{CW - 1}:0] d_cmd__payload;
    wire d_out__valid;
    wire d_out__ready;
    wire [{OW - 1}:0] d_out__payload;
    reg  d_wload__valid;
    wire d_wload__ready;
    reg  [{WW - 1}:0] d_wload__payload;
    reg  [{AW - 1}:0] d_dbg_addr;
    wire [{DW - 1}:0] d_dbg_data;
    wire d_busy;
    wire [{EW - 1}:0] d_error;

{spill_wires}    {dut} dut (
{ports_conn}
    );

    assign dut_busy = d_busy;
    assign dut_error = d_error;
    assign dut_out_valid = d_out__valid;

    reg [1:0] state;
    reg go_q;
    reg [31:0] stall;
    reg [7:0] gap_cnt;
    reg rb_v0, rb_v1;
    reg [31:0] lfsr;
    reg [8:0] bp_lvl;
    reg [8:0] bp_left;
    reg bp_ready;
    reg [31:0] wlfsr;
    reg [7:0] wl_gap;

    wire running = state == S_RUN;
    wire [{OA - 1}:0] cur_a = op_ptr[{OA - 1}:0];
    wire [{OA - 1}:0] nxt_a = cur_a + {OA}'d1;
    wire [{W - 1}:0] cur = op_mem[cur_a];
    wire [{W - 1}:0] nxt = op_mem[nxt_a];
    wire [2:0] cur_kind = cur[2:0];
    wire [31:0] cur_arg = cur[34:3];
    wire [{CW - 1}:0] cur_pl = cur[{35 + CW - 1}:35];
    wire [2:0] nxt_kind = nxt[2:0];
    wire [31:0] nxt_arg = nxt[34:3];
    wire [{CW - 1}:0] nxt_pl = nxt[{35 + CW - 1}:35];

    wire out_room = n_out < 32'd{d.out};
    assign d_out__ready = running & bp_ready & out_room;
    wire out_fire = d_out__valid & d_out__ready;
    wire cmd_fire = d_cmd__valid & d_cmd__ready;
    wire wl_fire = d_wload__valid & d_wload__ready;
    wire near_out = n_out >= 32'd{d.out - slack};
    wire near_mem = n_mem + 32'd2 >= 32'd{d.mem};
{frag['decl']}    wire near_full = near_out | near_mem{frag['near']};
    wire quiet = !d_cmd__valid && !d_wload__valid && !rb_v0 && !rb_v1{frag['quiet']};
    wire idle_ok = !d_busy && !d_cmd__valid;
    // the weight-load beat to offer after this edge (beats accepted, counting this edge's)
    wire [31:0] wl_pos = wl_count + {{31'd0, wl_fire}};
    // IDLE passes on idle_ok of the previous cycle, as the per-cycle BFM samples
    // it: both paths give the same cycle counts
    reg idle_q;
    // (an IDLE followed by a command passes on this cycle's idle_ok and offers the
    // command at once, as the BFM does in the cycle after it saw the core idle)
    wire idle_pass = nxt_kind == K_CMD ? idle_ok : idle_q;
    wire adv = cur_kind == K_IDLE ? (idle_pass && beats_total >= cur_arg) :
               cur_kind == K_WAITWL ? wl_pos >= cur_arg :
               cur_kind == K_CMD ? cmd_fire :
               cur_kind == K_RB ? !near_mem :{frag['adv']} 1'b0;
    // weight-load engine: the beat to offer after this edge, its fence and table index
    wire [31:0] wl_rel = wl_pos - wl_lo_q;
    wire wl_have = wl_rel < n_wq_q;
    wire [63:0] wq_w = wq_mem[wl_rel[{QA - 1}:0]];
    wire [31:0] wq_fence = wq_w[31:0];
    wire [31:0] wq_idx = wq_w[63:32];
    wire [31:0] cmd_next = cmd_count + {{31'd0, cmd_fire}};
    wire wl_hold = cur_kind == K_END || near_full;
    wire wl_ok = wl_have && wq_fence <= cmd_next && !wl_hold;
    wire wl_waiting = cur_kind == K_WAITWL && wl_count < cur_arg;
    wire wl_starved = wl_waiting && !wl_have && !d_wload__valid;
    wire [31:0] wlfsr_a = wlfsr ^ (wlfsr << 13);
    wire [31:0] wlfsr_b = wlfsr_a ^ (wlfsr_a >> 17);
    wire [31:0] wlfsr_n = wlfsr_b ^ (wlfsr_b << 5);
{frag['engine_wires']}    wire timeout = stall >= stall_limit_q;
    wire [31:0] lfsr_a = lfsr ^ (lfsr << 13);
    wire [31:0] lfsr_b = lfsr_a ^ (lfsr_a >> 17);
    wire [31:0] lfsr_n = lfsr_b ^ (lfsr_b << 5);

    task automatic load_file(input integer which, input [31:0] count);
        integer fd;
        integer got;
        begin
            fd = {frag['fopen']}which == 0 ? $fopen("{FILES['ops']}", "rb") :
                 which == 1 ? $fopen("{FILES['wt']}", "rb") : $fopen("{FILES['wq']}", "rb");
            if (fd == 0) begin
                $display("tb_bulk_top: cannot open the file of memory %0d", which);
            end else begin
                if (which == 0) got = $fread(op_mem, fd, 0, count);{frag['fread']}
                else if (which == 1) got = $fread(wt_mem, fd, 0, count);
                else got = $fread(wq_mem, fd, 0, count);
                $fclose(fd);
                if (got != count * ({frag['fbytes']}which == 0 ? {W // 8} : which == 1 ? {(WW + 7) // 8} : {WQ_BYTES}))
                    $display("tb_bulk_top: short read of %0d bytes", got);
            end
        end
    endtask

    function automatic [8:0] bp_lvl_of(input [2:0] k);
        begin
            case (k)
{levels}
            default: bp_lvl_of = 9'd256;
            endcase
        end
    endfunction

`ifndef VERILATOR
    // X/Z checks (four-state simulators; constant false on two-state Verilator),
    // evaluated in the clocked block at each rising edge (a continuous
    // expression would reduce the ~1,100 output bits on every change of them)
    reg [3:0] xz_now;
    task automatic xz_check;
        begin
            xz_now = 4'd0;
            if ((^{{d_busy}}) === 1'bx) xz_now = 4'd1;
            else if ((^{{d_out__valid}}) === 1'bx) xz_now = 4'd2;
            else if (d_cmd__valid && (^{{d_cmd__ready}}) === 1'bx) xz_now = 4'd3;
            else if (d_wload__valid && (^{{d_wload__ready}}) === 1'bx) xz_now = 4'd4;{frag['xz']}
            else if (cur_kind == K_IDLE && idle_q && beats_total >= cur_arg) begin
                if ((^{{d_cmd__ready, d_out__valid, d_out__payload, d_wload__ready,
                       d_dbg_data, d_busy, d_error}}) === 1'bx) xz_now = 4'd5;
            end
        end
    endtask
`else
    wire [3:0] xz_now = 4'd0;
`endif

    always @(posedge clk) begin
        if (rst) begin
            state <= S_WAIT;
            go_q <= go;
            done <= 1'b0;
            status <= 3'd0;
            op_ptr <= 32'd0;
            n_out <= 32'd0;
            n_mem <= 32'd0;
            beats_total <= 32'd0;
            err_seen <= 1'b0;
            err_val <= {EW}'d0;
            err_op <= 32'd0;
            xz_what <= 4'd0;
            xz_cycle <= 32'd0;
            cycles <= 32'd0;
            cmd_count <= 32'd0;
            wl_count <= 32'd0;
            wl_wait_cycles <= 32'd0;
            wl_valid_cycles <= 32'd0;
            wl_gap_cycles <= 32'd0;
            wl_both_cycles <= 32'd0;
            wl_exp_beats <= 32'd0;
            wlfsr <= (seed ^ 32'h9e3779b9) | 32'd1;
            wl_gap <= 8'd0;
            rb_cycles <= 32'd0;
            idle_q <= 1'b0;
            gap_cycles <= 32'd0;
            bp_cycles <= 32'd0;
            stall <= 32'd0;
            gap_cnt <= 8'd0;
            rb_v0 <= 1'b0;
            rb_v1 <= 1'b0;
            lfsr <= seed | 32'd1;
            bp_lvl <= 9'd256;
            bp_left <= 9'd0;
            bp_ready <= 1'b1;
            d_cmd__valid <= 1'b0;
            d_cmd__payload <= {CW}'d0;
            d_wload__valid <= 1'b0;
            d_wload__payload <= {WW}'d0;
            d_dbg_addr <= {AW}'d0;
            n_wq_q <= 32'd0;
            wl_lo_q <= 32'd0;
            stall_limit_q <= 32'hffffffff;{frag['reset']}
        end else begin
            cycles <= cycles + 32'd1;
            go_q <= go;
            idle_q <= idle_ok;
            // captures (every state: nothing transfers while paused)
            if (out_fire) begin
                cap_out[n_out[{CA - 1}:0]] <= d_out__payload;
                cap_cyc[n_out[{CA - 1}:0]] <= cycles;
                n_out <= n_out + 32'd1;
                beats_total <= beats_total + 32'd1;
            end
            if (rb_v1) begin
                cap_mem[n_mem[{MA - 1}:0]] <= d_dbg_data;
                n_mem <= n_mem + 32'd1;
            end
            if (cmd_fire) cmd_count <= cmd_count + 32'd1;
            if (wl_fire) wl_count <= wl_count + 32'd1;{frag['capture']}
            rb_v1 <= rb_v0;
            rb_v0 <= 1'b0;
            case (state)
            S_WAIT: if (go != go_q) begin
                if (load_ops) begin
                    load_file(0, n_ops);
                    op_ptr <= 32'd0;
                end
                if (load_wt && n_wt != 32'd0)
                    load_file(1, n_wt);
                if (load_wq && n_wq != 32'd0)
                    load_file(2, n_wq);
{frag['load']}                n_wq_q <= n_wq;
                wl_lo_q <= wl_lo;
                stall_limit_q <= stall_limit;
                n_out <= 32'd0;
                n_mem <= 32'd0;
                done <= 1'b0;
                status <= 3'd0;
                err_seen <= 1'b0;
                xz_what <= 4'd0;
                stall <= 32'd0;
                state <= S_START;
            end
            S_START: begin
                d_cmd__valid <= 1'b0;
                // the weight-load engine may offer at once (as the per-cycle BFM in its first cycle)
                d_wload__valid <= wl_gap == 8'd0 && wl_ok;
                d_wload__payload <= wt_mem[wq_idx[{WA - 1}:0]];{frag['start']}
                gap_cnt <= 8'd0;
                state <= S_RUN;
            end
            S_RUN: begin
`ifndef VERILATOR
                xz_check;
`endif
                // backpressure phases
                lfsr <= lfsr_n;
                if (bp_left == 9'd0) begin
                    bp_lvl <= bp_lvl_of(lfsr[2:0]);
                    bp_left <= bp_lvl_of(lfsr[2:0]) == 9'd0 ? {{4'd0, lfsr[8:4]}} + 9'd4
                                                           : {{1'b0, lfsr[15:8]}} + 9'd20;
                end else begin
                    bp_left <= bp_left - 9'd1;
                end
                bp_ready <= !stress || bp_lvl == 9'd256 || {{1'b0, lfsr[23:16]}} < bp_lvl;
                wlfsr <= wlfsr_n;
                if (d_wload__valid) wl_valid_cycles <= wl_valid_cycles + 32'd1;
                if (wl_waiting && !rb_v0) wl_wait_cycles <= wl_wait_cycles + 32'd1;
                if (wl_fire && cmd_fire) wl_both_cycles <= wl_both_cycles + 32'd1;
                if (wl_fire && wl_waiting) wl_exp_beats <= wl_exp_beats + 32'd1;
                // weight-load engine (concurrent with the operations below)
                if (wl_fire) begin
                    if (stress && wlfsr[1:0] == 2'd0) begin
                        // 1-6 cycles, as the command gaps
                        wl_gap <= {{5'd0, wlfsr[4:2] >= 3'd6 ? wlfsr[4:2] - 3'd5 : wlfsr[4:2] + 3'd1}};
                        d_wload__valid <= 1'b0;
                    end else begin
                        d_wload__valid <= wl_ok;
                        d_wload__payload <= wt_mem[wq_idx[{WA - 1}:0]];
                    end
                end else if (!d_wload__valid) begin
                    if (wl_gap != 8'd0) begin
                        wl_gap <= wl_gap - 8'd1;
                        wl_gap_cycles <= wl_gap_cycles + 32'd1;
                    end
                    if (wl_gap <= 8'd1 && wl_ok) begin
                        d_wload__valid <= 1'b1;
                        d_wload__payload <= wt_mem[wq_idx[{WA - 1}:0]];
                    end
                end
{frag['run']}                // n rows: n + 1 cycles (the last row's data), as on the per-cycle path
                if (rb_v0 || cur_kind == K_RB) rb_cycles <= rb_cycles + 32'd1;
                if (d_out__valid && !d_out__ready) bp_cycles <= bp_cycles + 32'd1;
                stall <= (out_fire || rb_v1 || wl_fire{frag['progress']}) ? 32'd0 : stall + 32'd1;
                if (xz_now != 4'd0) begin
                    xz_what <= xz_now;
                    xz_cycle <= cycles;
                    status <= ST_XZ;
                    state <= S_DUMP;
                end else if (timeout) begin
                    status <= ST_TIMEOUT;
                    state <= S_DUMP;
                end else if (quiet && (cur_kind == K_END || near_full || wl_starved{frag['starved']})) begin
                    // pause where no beat is offered and no row is in flight
                    status <= cur_kind == K_END ? ST_END : near_full ? ST_FULL : {frag['st']};
                    gap_cnt <= 8'd0;
                    state <= S_DUMP;
                end else if (adv) begin
                    stall <= 32'd0;
                    op_ptr <= op_ptr + 32'd1;
                    if (cur_kind == K_IDLE && d_error != {EW}'d0 && !err_seen) begin
                        err_seen <= 1'b1;
                        err_val <= d_error;
                        err_op <= op_ptr;
                    end
                    if (cur_kind == K_RB) begin
                        d_dbg_addr <= cur_arg[{AW - 1}:0];
                        rb_v0 <= 1'b1;
                    end
                    // offer the next operation's beat at once (back to back)
                    d_cmd__valid <= !near_full && nxt_kind == K_CMD && nxt_arg[7:0] == 8'd0;
                    if (nxt_kind == K_CMD) begin
                        d_cmd__payload <= nxt_pl;
                        gap_cnt <= nxt_arg[7:0];
                    end
                end else if (cur_kind == K_CMD && !d_cmd__valid) begin
                    // command gap, or an offer deferred by a pause
                    if (gap_cnt != 8'd0) begin
                        gap_cycles <= gap_cycles + 32'd1;
                        gap_cnt <= gap_cnt - 8'd1;
                    end
                    if (gap_cnt <= 8'd1 && !near_full) begin
                        d_cmd__valid <= 1'b1;
                        d_cmd__payload <= cur_pl;
                    end
                end
            end
            default: begin   // S_DUMP: the captures of this block are complete
                d_cmd__valid <= 1'b0;
                d_wload__valid <= 1'b0;{frag['dump']}
                if (n_out != 32'd0) $writememh("{FILES['out']}", cap_out, 0, n_out - 32'd1);
                if (n_out != 32'd0) $writememh("{FILES['cyc']}", cap_cyc, 0, n_out - 32'd1);
                if (n_mem != 32'd0) $writememh("{FILES['mem']}", cap_mem, 0, n_mem - 32'd1);
                done <= 1'b1;
                state <= S_WAIT;
            end
            endcase
        end
    end
endmodule
"""


_NO_SPILL = dict.fromkeys(("ports", "decl", "near", "quiet", "adv", "engine_wires", "reset", "capture",
                           "load", "start", "run", "progress", "starved", "st", "dump", "fread",
                           "fopen", "fbytes", "xz"), "")
_NO_SPILL["st"] = "ST_WLQ"


def _spill_fragments(d: BulkDepths, MW: int, addr_mask: int) -> dict:
    """The Verilog of the spill capture and the fill engine (``d.sp`` > 0)."""
    SP, SA = d.sp, _clog2(d.sp)
    NB = (MW + 7) // 8
    f = dict(_NO_SPILL)
    f["ports"] = (",\n    input  wire load_mq,\n    input  wire [31:0] n_mq,\n    input  wire [31:0] mf_lo,\n"
                  "    output reg  [31:0] n_sp,\n    output reg  [31:0] mf_count,\n"
                  "    output reg  [31:0] sp_count")
    f["decl"] = f"""    // spill capture memory and fill queue (tb/bulk_top.py _spill_fragments)
    localparam [2:0] ST_MFQ = 3'd6, K_WAITMF = 3'd2;
    reg [{MW - 1}:0] cap_sp [0:{SP - 1}];
    reg [63:0] fq_mem [0:{SP - 1}];
    reg [{MW - 1}:0] fd_mem [0:{SP - 1}];
    reg [31:0] n_mq_q, mf_lo_q;
    reg [7:0] mf_gap;
    reg sp_rdy;
    assign d_mspill__ready = running & sp_rdy & (n_sp < 32'd{SP});
    wire sp_fire = d_mspill__valid & d_mspill__ready;
    wire mf_fire = d_mfill__valid & d_mfill__ready;
    wire near_sp = n_sp + 32'd2 >= 32'd{SP};
"""
    f["near"] = " | near_sp"
    f["quiet"] = " && !d_mfill__valid"
    f["adv"] = "\n               cur_kind == K_WAITMF ? mf_pos >= cur_arg :"
    f["engine_wires"] = f"""    // fill engine: the fill to offer after this edge; its fence (beats received,
    // counting this edge's), its source (the fill data memory, or a spill
    // captured in this block, forwarded once captured) and its payload
    wire [31:0] mf_pos = mf_count + {{31'd0, mf_fire}};
    wire [31:0] mf_rel = mf_pos - mf_lo_q;
    wire mf_have = mf_rel < n_mq_q;
    wire [63:0] fq_w = fq_mem[mf_rel[{SA - 1}:0]];
    wire mf_cap = fq_w[63];
    wire [30:0] mf_ci = fq_w[62:32];
    wire [31:0] beats_next = beats_total + {{31'd0, out_fire}};
    // a spill captured on this edge is forwarded at once (as the per-cycle BFM
    // serves a fill from a spill it sampled in the same cycle)
    wire mf_byp = sp_fire && {{1'b0, mf_ci}} == n_sp;
    wire mf_src_ok = !mf_cap || {{1'b0, mf_ci}} < n_sp || mf_byp;
    wire mf_ok = mf_have && fq_w[31:0] <= beats_next && mf_src_ok && !wl_hold;
    wire [{MW - 1}:0] mf_fd = fd_mem[mf_rel[{SA - 1}:0]];
    wire [{MW - 1}:0] mf_cw = mf_byp ? d_mspill__payload : cap_sp[mf_ci[{SA - 1}:0]];
    localparam [{MW - 1}:0] MF_ADDR = {MW}'h{addr_mask:x};
    wire [{MW - 1}:0] mf_pl = mf_cap ? ((mf_cw & ~MF_ADDR) | (mf_fd & MF_ADDR)) : mf_fd;
    wire mf_starved = cur_kind == K_WAITMF && mf_count < cur_arg && !mf_have && !d_mfill__valid;
"""
    f["reset"] = """
            n_sp <= 32'd0;
            mf_count <= 32'd0;
            sp_count <= 32'd0;
            n_mq_q <= 32'd0;
            mf_lo_q <= 32'd0;
            mf_gap <= 8'd0;
            sp_rdy <= 1'b1;
            d_mfill__valid <= 1'b0;
            d_mfill__payload <= 0;"""
    f["capture"] = f"""
            if (sp_fire) begin
                cap_sp[n_sp[{SA - 1}:0]] <= d_mspill__payload;
                n_sp <= n_sp + 32'd1;
                sp_count <= sp_count + 32'd1;
            end
            if (mf_fire) mf_count <= mf_count + 32'd1;"""
    f["load"] = """                if (load_mq && n_mq != 32'd0) begin
                    load_file(3, n_mq);
                    load_file(4, n_mq);
                end
                n_mq_q <= n_mq;
                mf_lo_q <= mf_lo;
                n_sp <= 32'd0;
"""
    f["start"] = """
                d_mfill__valid <= mf_gap == 8'd0 && mf_ok;
                d_mfill__payload <= mf_pl;"""
    f["run"] = """                // mspill ready: 3/4 under stress; fill engine (as the weight-load engine)
                sp_rdy <= !stress || lfsr[25:24] != 2'd0;
                if (mf_fire) begin
                    if (stress && wlfsr[6:5] == 2'd0) begin
                        mf_gap <= {5'd0, wlfsr[9:7] >= 3'd6 ? wlfsr[9:7] - 3'd5 : wlfsr[9:7] + 3'd1};
                        d_mfill__valid <= 1'b0;
                    end else begin
                        d_mfill__valid <= mf_ok;
                        d_mfill__payload <= mf_pl;
                    end
                end else if (!d_mfill__valid) begin
                    if (mf_gap != 8'd0) mf_gap <= mf_gap - 8'd1;
                    if (mf_gap <= 8'd1 && mf_ok) begin
                        d_mfill__valid <= 1'b1;
                        d_mfill__payload <= mf_pl;
                    end
                end
"""
    f["progress"] = " || sp_fire || mf_fire"
    f["xz"] = ("\n            else if (d_mfill__valid && (^{d_mfill__ready}) === 1'bx) xz_now = 4'd6;"
               "\n            else if ((^{d_mspill__valid}) === 1'bx) xz_now = 4'd7;")
    f["starved"] = " || mf_starved"
    f["st"] = "wl_starved ? ST_WLQ : ST_MFQ"
    f["dump"] = f"""
                d_mfill__valid <= 1'b0;
                if (n_sp != 32'd0) $writememh("{FILES['sp']}", cap_sp, 0, n_sp - 32'd1);"""
    f["fread"] = """
                else if (which == 3) got = $fread(fq_mem, fd, 0, count);
                else if (which == 4) got = $fread(fd_mem, fd, 0, count);"""
    f["fopen"] = (f"which == 3 ? $fopen(\"{FILES['mq']}\", \"rb\") : "
                  f"which == 4 ? $fopen(\"{FILES['md']}\", \"rb\") : ")
    f["fbytes"] = f"which == 3 ? {MQ_BYTES} : which == 4 ? {NB} : "
    return f


def write_bulk_top(manifest: dict, out_dir: Path, depths: BulkDepths | None = None,
                   source: str = "") -> Path:
    """Write ``<out_dir>/tb_bulk_top.v`` (only when its text changed); returns the path."""
    text = bulk_top_verilog(manifest, depths, source)
    path = Path(out_dir) / f"{TOP}.v"
    if not path.exists() or path.read_text() != text:
        atomic_write({path: text})
    return path
