"""The bulk co-simulation path: whole blocks of stimulus per Python call.

The per-cycle BFM (:mod:`tb.bfm`) runs Python twice per clock cycle. Here the
operations of :func:`tb.bfm.flatten` are compiled once into a program for
the generated testbench top ``tb_bulk_top`` (:mod:`tb.bulk_top`): 128-bit
operation words (IDLE / WAITWL / CMD with its random gap / RB per membrane
row / END), the weight-load stream (per beat: its fence and an index into a
table of the distinct weight-load beats), written as binary files
(read with ``$fread``; the hex texts of :func:`ops_hex`/:func:`wt_hex` feed
benchmarks/simrate.py's raw driver) into the run directory. cocotb toggles ``go`` and awaits ``done``:
in between the simulator runs with no Python at all (``out__ready`` comes
from the top's xorshift generator seeded from the test seed, command gaps
from the program). At every pause the top dumps the output beats and
membrane rows it captured (``$writememh``); they are decoded with numpy and
every beat and row goes through the same :class:`tb.scoreboard.Scoreboard`
as on the per-cycle path, so a mismatch names the same sample, layer,
timestep, tile, group, neuron, expected and got values and the reproduce
command. The first non-zero ``error`` at an idle point, a watchdog timeout
and (Icarus) an X/Z output end the run with the same messages as the BFM.

Two halves, like ``tb/test_lif_pe_array.py``:

* host side: :func:`compile_program`, :func:`blocks`, the hex writers and
  decoders (pure Python + numpy, unit-tested in tb/test_bulk.py);
* cocotb tests ``full_run`` and ``reset_mid_run`` (same names, plan and
  summary as ``tb/test_lif_pe_array.py``; run by ``tb.sim --path bulk``, the
  default). ``error_flags`` stays on the per-cycle path.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from golden.files import atomic_write

from .bfm import CMD, IDLE, MARK, RB, WAITMF, WAITWL
from .bulk_top import FILES, KINDS, OPW, STATUS, op_width, WQ_BYTES, XZ_WHAT, BulkDepths, depths_for
from .payload import StreamLayout
from .session import Session, cpu_seconds

__all__ = ["Program", "compile_program", "blocks", "wl_window", "ops_hex", "wt_hex", "ops_bin",
           "wt_bin", "wq_bin",
           "decode_words",
           "decode_columns", "decode_rows",
           "TEST_MODULE", "BULK_TESTS"]

TEST_MODULE = "tb.bulk"
BULK_TESTS = ("full_run", "reset_mid_run")
_K = {IDLE: KINDS["IDLE"], WAITWL: KINDS["WAITWL"], WAITMF: KINDS["WAITMF"], CMD: KINDS["CMD"]}


@dataclass
class Program:
    """A flattened schedule compiled for ``tb_bulk_top``.

    ``kind``/``arg``/``pl`` per operation word (END words are added per
    block), ``orig`` the index of the :func:`tb.bfm.flatten` operation it
    came from, ``wt`` the distinct weight-load payloads, ``wl_idx`` /
    ``wl_fence`` per beat of the weight-load stream its index into ``wt``
    and its fence (commands accepted before it may be presented), ``rows``
    the (TimestepEnd, row) of every RB word in order.
    """

    kind: np.ndarray
    arg: np.ndarray
    pl: np.ndarray
    orig: np.ndarray
    wt: list
    rows: list
    n_ops: int                       # BFM operations
    wl_idx: np.ndarray = None
    wl_fence: np.ndarray = None
    opw: int = OPW                   # bits per operation word (tb.bulk_top.op_width)
    #: (word index, LayerPass) of every MARK of a spilled run: the pass's input
    #: map is read (traffic) once the top reaches word ``index``
    marks: list = None


def compile_program(ops: list, seed: int, stress: bool, cmd_width: int | None = None) -> Program:
    """Compile :func:`tb.bfm.flatten` operations (a :class:`tb.bfm.Ops`: the
    main stream and its weight-load stream ``ops.wl``); command gaps (valid
    low before a command: 1-6 cycles with probability 1/4) are drawn from
    ``seed`` when ``stress`` (the weight-load gaps come from the top's own
    generator). ``cmd_width`` (the command payload's width; None: unknown)
    picks the operation word width (:func:`tb.bulk_top.op_width`)."""
    kind, arg, pl, orig, rows, marks = [], [], [], [], [], []
    wt_index: dict = {}
    wt: list = []
    wl = getattr(ops, "wl", [])
    wl_idx = np.empty(len(wl), dtype=np.int64)
    for j, (a, _) in enumerate(wl):
        k = wt_index.get(a)
        if k is None:
            k = wt_index[a] = len(wt)
            wt.append(a)
        wl_idx[j] = k
    wl_fence = np.array([f for _, f in wl], dtype=np.int64)
    if wl_fence.size and (wl_fence.max() >= 1 << 32 or wl_idx.max() >= 1 << 32):
        raise ValueError("weight-load stream too long for the 32-bit fences of tb_bulk_top")
    for i, (k, a) in enumerate(ops):
        if k == MARK:
            marks.append((len(kind), a))
            continue
        if k == RB:
            for r in sorted(a.membrane):
                kind.append(KINDS["RB"])
                arg.append(r)
                pl.append(0)
                orig.append(i)
                rows.append((a, r))
            continue
        kind.append(_K[k])
        orig.append(i)
        if k in (IDLE, WAITWL, WAITMF):
            arg.append(a)
            pl.append(0)
        else:
            arg.append(0)
            pl.append(a)
    kind = np.array(kind, dtype=np.int64)
    arg = np.array(arg, dtype=np.int64)
    pl = np.array(pl, dtype=object)
    try:
        pl = pl.astype(np.int64)
    except OverflowError:   # a command payload over 63 bits: keep Python ints
        pass
    if stress:
        rng = np.random.default_rng([seed, 5])
        is_cmd = kind == KINDS["CMD"]
        gap = np.where(rng.random(kind.size) < 0.25, rng.integers(1, 7, kind.size), 0)
        arg = np.where(is_cmd, gap, arg)
    return Program(kind, arg, pl, np.array(orig, dtype=np.int64), wt, rows, len(ops),
                   wl_idx, wl_fence, OPW if cmd_width is None else op_width(cmd_width), marks)


def blocks(prog: Program, depths: BulkDepths, stop: int | None = None):
    """Split the operation words into blocks ``(lo, hi)`` of at most
    ``depths.ops - 1`` words (+ END). ``stop`` truncates the program (a
    mid-run reset). The weight-load stream is loaded in windows
    (:func:`wl_window`), independently of the blocks."""
    n = prog.kind.size if stop is None else min(stop, prog.kind.size)
    return [(lo, min(n, lo + depths.ops - 1)) for lo in range(0, n, depths.ops - 1)]


def wl_window(prog: Program, start: int, depths: BulkDepths):
    """The window ``(start, end, wt_ids)`` of the weight-load stream loaded
    into the top's queue: at most ``depths.wq`` beats whose distinct table
    entries fit ``depths.wt``; ``wt_ids`` (the global table indices of the
    window's table) is None when the whole table fits and is loaded once."""
    n = prog.wl_idx.size
    end = min(n, start + depths.wq)
    if len(prog.wt) <= depths.wt:
        return start, end, None
    while True:
        ids = np.unique(prog.wl_idx[start:end])
        if ids.size <= depths.wt or end - start <= 1:
            return start, end, ids
        end = start + (end - start) // 2


def ops_hex(prog: Program, lo: int, hi: int) -> str:
    """Hex text (one word per line) of words ``lo..hi-1`` + END (see tb/bulk_top.py)."""
    return _op_words(prog, lo, hi).tobytes().hex("\n", prog.opw // 8) + "\n"


def _op_words(prog: Program, lo: int, hi: int) -> np.ndarray:
    """Operation words ``lo..hi-1`` + END as big-endian uint64: pairs ``[n, 2]`` (high,
    low) of 128-bit words, or ``[n, 1]`` of 64-bit words (``prog.opw``)."""
    kind = np.append(prog.kind[lo:hi], KINDS["END"]).astype(np.uint64)
    arg = np.append(prog.arg[lo:hi], 0).astype(np.uint64)
    pl = prog.pl[lo:hi]
    if pl.dtype == object:
        lo64 = np.array([int(p) & ((1 << 29) - 1) for p in pl] + [0], dtype=np.uint64)
        hi64 = np.array([int(p) >> 29 for p in pl] + [0], dtype=np.uint64)
    else:
        p = np.append(pl, 0).astype(np.uint64)
        lo64, hi64 = p & np.uint64((1 << 29) - 1), p >> np.uint64(29)
    word_lo = kind | (arg << np.uint64(3)) | (lo64 << np.uint64(35))
    if prog.opw == 64:
        if np.any(hi64):
            raise ValueError("a command payload too wide for 64-bit operation words")
        return word_lo.reshape(-1, 1).astype(">u8")
    assert prog.opw == OPW == 128
    return np.stack([hi64, word_lo], axis=1).astype(">u8")


def ops_bin(prog: Program, lo: int, hi: int) -> bytes:
    """The ``$fread`` file of words ``lo..hi-1`` + END: the words of
    :func:`ops_hex`, ``prog.opw / 8`` bytes each, most significant byte first."""
    return _op_words(prog, lo, hi).tobytes()


def wq_bin(prog: Program, lo: int, hi: int, wt_ids=None) -> bytes:
    """The ``$fread`` file of weight-load beats ``lo..hi-1``: 8 bytes each,
    most significant first, ``table index << 32 | fence`` (the index into
    the window's table ``wt_ids`` when given)."""
    idx = prog.wl_idx[lo:hi]
    if wt_ids is not None:
        idx = np.searchsorted(wt_ids, idx)
    words = (idx.astype(np.uint64) << np.uint64(32)) | prog.wl_fence[lo:hi].astype(np.uint64)
    assert WQ_BYTES == 8
    return words.astype(">u8").tobytes()


def wt_bin(prog: Program, width: int, wt_ids=None) -> bytes:
    """The ``$fread`` file of the weight table: ``ceil(width / 8)`` bytes per
    word, most significant first."""
    nb = (width + 7) // 8
    words = prog.wt if wt_ids is None else [prog.wt[int(i)] for i in wt_ids]
    return b"".join(w.to_bytes(nb, "big") for w in words)


def wt_hex(prog: Program, width: int, wt_ids=None) -> str:
    """Hex text (one word per line) of the weight table (all of it, or ``wt_ids``)."""
    nh = (width + 3) // 4
    words = prog.wt if wt_ids is None else [prog.wt[int(i)] for i in wt_ids]
    return "".join(format(w, f"0{nh}x") + "\n" for w in words)


def _hex_lines(text: str) -> list[str]:
    """Data lines of a ``$writememh`` file (Icarus adds ``// 0x...`` address comments)."""
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("//")]


def decode_words(lines: list[str], lay: StreamLayout) -> list[dict]:
    """Decode ``$writememh`` lines of ``lay`` payloads into field dicts (as
    :meth:`tb.bfm.CoreBfm.decode_beat`); lines with X/Z digits (Icarus)
    decode with :data:`tb.payload.XVAL` for the unknown parts."""
    cols = decode_columns(lines, lay)
    if cols is None:
        return [_decode_one(ln, lay) for ln in lines]
    return [{k: (c[i] if c.ndim == 2 else int(c[i])) for k, c in cols.items()}
            for i in range(len(lines))]


def decode_columns(lines: list[str], lay: StreamLayout) -> dict | None:
    """Decode ``$writememh`` lines into one array per field (``[n]`` or
    ``[n, count]``, int64), or None when a line holds an X/Z digit."""
    W = lay.payload_width
    nh = (W + 3) // 4
    if any(ln.strip("0123456789abcdefABCDEF") for ln in lines):
        return None
    n = len(lines)
    raw = bytes.fromhex("".join(ln.rjust(nh, "0")[-nh:].rjust(2 * ((nh + 1) // 2), "0")
                                for ln in lines))
    nb = (nh + 1) // 2
    be = np.frombuffer(raw, dtype=np.uint8).reshape(n, nb)
    bits = np.unpackbits(be[:, ::-1], axis=1, bitorder="little")   # bit k of the word at [:, k]
    cols = {}
    for f in lay.fields.values():
        fb = bits[:, f.offset:f.offset + f.width]
        ew = f.elem_width if f.is_vector else f.width
        cnt = f.count if f.is_vector else 1
        if ew == 1:
            v = fb.astype(np.int64)
        elif ew in (8, 16, 32):
            by = np.packbits(fb, axis=1, bitorder="little")
            v = by.view(f"<u{ew // 8}").astype(np.int64).reshape(n, cnt)
        else:
            v = (fb.reshape(n * cnt, ew).astype(np.int64) @ (1 << np.arange(ew, dtype=np.int64)))
            v = v.reshape(n, cnt)
        if f.signed:
            v = np.where(v >= (1 << (ew - 1)), v - (1 << ew), v)
        cols[f.name] = v if f.is_vector else v[:, 0]
    return cols


def _decode_one(line: str, lay: StreamLayout) -> dict:
    bits = "".join(format(int(ch, 16), "04b") if ch in "0123456789abcdefABCDEF" else ch.lower() * 4
                   for ch in line)
    bits = bits.rjust(lay.payload_width, "0")[-lay.payload_width:]
    return lay.unpack_logic(bits)


def decode_rows(lines: list[str], slots: int, width: int) -> list[np.ndarray]:
    """Membrane rows (``slots`` signed words of ``width`` bits) from ``$writememh`` lines."""
    from .payload import Field
    lay = StreamLayout("mem", slots * width, {"w": Field("w", 0, slots * width, width, slots, True)})
    return [d["w"] for d in decode_words(lines, lay)]


# --------------------------------------------------------------------------
# cocotb side
# --------------------------------------------------------------------------
try:
    import cocotb
except ImportError:  # pragma: no cover
    cocotb = None


class BulkRunner:
    """Drives one ``tb_bulk_top``: reset, blocks, pauses, decoding."""

    def __init__(self, dut, session):
        self.dut, self.s = dut, session
        plan = session.plan
        self.manifest = json.loads(Path(plan["manifest"]).read_text())
        self.depths = BulkDepths(**dict(vars(depths_for(self.manifest)), **plan["bulk_depths"])) \
            if plan.get("bulk_depths") else depths_for(self.manifest)
        self.prog = compile_program(session.ops, plan["seed"], plan["stress"],
                                    self.manifest_width("cmd__payload"))
        self.go = 0
        self.wt_loaded = None
        self.wq_end = 0          # end of the weight-load window in the queue (since reset)
        self.cfg = session.cfg
        ops = session.ops
        self.mf, self.mf_src = getattr(ops, "mf", []), getattr(ops, "mf_src", [])
        self.exp_sp = getattr(ops, "spills", [])
        self.spill = bool(self.mf or self.exp_sp)
        # spill index -> the last fill that reads it back (the host keeps a spill's data until then)
        self.sp_last_use = {s: j for j, s in enumerate(self.mf_src) if s >= 0}
        if self.spill and not self.depths.sp:
            raise RuntimeError("spilled membranes on a tb_bulk_top built without a spill/fill "
                               "engine (tb.build.build_bulk with depths {'sp': N})")
        #: tb.offchip.OffChip of a spilled-membrane run (set by the caller): spill
        #: checks and traffic; the spills are checked in any case
        self.offchip = None
        self._host_reset()

    def _host_reset(self) -> None:
        """Host-side state of the spill/fill streams and the traffic counts (at reset)."""
        self.sp_data: dict = {}   # spill index (since reset) -> the row data the core spilled
        #                           (kept while a fill still reads it back)
        self.sp_done = 0          # spills received and checked
        self.mark_i = 0           # next MARK of prog.marks to count
        self.cnt = {"wl": 0, "mf": 0, "beats": 0}   # transfers counted into the traffic
        self.mq_from = (0, np.zeros(0, dtype=bool))  # fill queue loaded at go: first fill, forwarded?

    def _int(self, name: str) -> int:
        return int(getattr(self.dut, name).value)

    async def reset(self, cycles: int = 3) -> list[str]:
        from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge
        d = self.dut
        await FallingEdge(d.clk)
        d.rst.value = 1
        d.go.value = self.go
        d.load_ops.value = 0
        d.load_wt.value = 0
        d.load_wq.value = 0
        d.n_wq.value = 0
        d.wl_lo.value = 0
        d.seed.value = self.s.plan["seed"] & 0xFFFFFFFF
        d.stress.value = int(bool(self.s.plan["stress"]))
        d.stall_limit.value = int(self.s.plan.get("stall_limit", 5000))
        if self.depths.sp:
            d.load_mq.value = 0
            d.n_mq.value = 0
            d.mf_lo.value = 0
        problems = []
        # the DUT's reset is rst registered in the top (tb/bulk_top.py): its
        # first reset edge is the second one here, so out__valid is checked
        # from the second cycle on; it still gets ``cycles`` reset edges
        for k in range(cycles):
            await RisingEdge(d.clk)
            await ReadOnly()
            v = d.dut_out_valid.value
            if k and v.is_resolvable and int(v):
                problems.append(f"out__valid = 1 while in reset (cycle {k})")
        await FallingEdge(d.clk)
        d.rst.value = 0
        self.wt_loaded = None
        self.wq_end = 0
        self._host_reset()
        await ReadOnly()
        bad = [f"{n}={getattr(d, 'dut_' + n).value}" for n in ("busy", "error", "out_valid")
               if not getattr(d, "dut_" + n).value.is_resolvable]
        if bad:
            problems.append("outputs not 0/1 after reset: " + ", ".join(bad))
        elif int(d.dut_error.value):
            problems.append(f"error = {int(d.dut_error.value)} after reset")
        await FallingEdge(d.clk)
        return problems

    def counters(self) -> dict:
        return {"cycles": self._int("cycles"), "wload_cycles": self._int("wl_wait_cycles"),
                "readback_cycles": self._int("rb_cycles"), "gap_cycles": self._int("gap_cycles"),
                "backpressure_cycles": self._int("bp_cycles"), "wl_beats": self._int("wl_count"),
                "wl_valid_cycles": self._int("wl_valid_cycles"),
                "wl_gap_cycles": self._int("wl_gap_cycles"),
                "wl_overlap_cycles": self._int("wl_both_cycles"),
                "wl_exposed_beats": self._int("wl_exp_beats")}

    def _refill_wl(self, wl_w: int, force: bool) -> None:
        """Load the next window of the weight-load stream (from the beat the
        top will offer next) when the loaded one is exhausted (``force``:
        the top paused for it) or less than half of it is left."""
        d, prog = self.dut, self.prog
        pos = self._int("wl_count")
        n = prog.wl_idx.size
        if pos >= n or (not force and self.wq_end - pos >= self.depths.wq // 2
                        and self.wq_end > pos):
            d.load_wq.value = 0
            return
        lo, hi, ids = wl_window(prog, pos, self.depths)
        Path(FILES["wq"]).write_bytes(wq_bin(prog, lo, hi, ids))
        key = "all" if ids is None else tuple(ids.tolist())
        self.profile["wl_windows"] += 1
        if key != self.wt_loaded:
            self.profile["wt_loads"] += 1
            Path(FILES["wt"]).write_bytes(wt_bin(prog, wl_w, ids))
            self.wt_loaded = key
            d.n_wt.value = len(prog.wt) if ids is None else int(ids.size)
            d.load_wt.value = 1
        d.wl_lo.value = lo
        d.n_wq.value = hi - lo
        d.load_wq.value = 1
        self.wq_end = hi

    def _refill_mf(self) -> None:
        """Load the fill queue from the next fill on (at every go: the capture
        indices of fills served from spills of this block count from 0 at go).
        A fill whose spill the host has received and checked is served from
        the fill data memory (that spill's data); one whose spill is still to
        come is forwarded from the top's spill capture memory once captured."""
        d, sp = self.dut, self.depths.sp
        pos = self._int("mf_count")
        n = len(self.mf)
        d.mf_lo.value = pos
        for k in [k for k in self.sp_data if self.sp_last_use[k] < pos]:
            del self.sp_data[k]     # read back by every fill that needs it
        if pos >= n:
            d.n_mq.value = 0
            d.load_mq.value = 0
            return
        lay = self.s.layouts["mfill"]
        nb = (lay.payload_width + 7) // 8
        zeros = np.zeros(self.cfg.slots, dtype=np.int64)
        q, data = [], []
        for j in range(pos, min(n, pos + sp)):
            row, fence = self.mf[j][0], self.mf[j][1]
            src = self.mf_src[j]
            if src < 0:
                raise RuntimeError(f"fill {j} of off-chip row {row.vrow} that was never spilled")
            if src < self.sp_done:
                q.append(fence)
                data.append(lay.pack(addr=row.addr, data=self.sp_data[src]).to_bytes(nb, "big"))
            else:
                q.append((1 << 63) | (min(src - self.sp_done, (1 << 31) - 1) << 32) | fence)
                data.append(lay.pack(addr=row.addr, data=zeros).to_bytes(nb, "big"))
        self.mq_from = (pos, np.array([w >> 63 for w in q], dtype=bool))
        Path(FILES["mq"]).write_bytes(np.array(q, dtype=np.uint64).astype(">u8").tobytes())
        Path(FILES["md"]).write_bytes(b"".join(data))
        d.n_mq.value = len(q)
        d.load_mq.value = 1
        self.profile["mf_windows"] += 1

    def _drain_spills(self, sb, judge: bool) -> None:
        """Check the spills captured in this block against the schedule (tb/offchip.py's rules)."""
        n_sp = self._int("n_sp")
        if not n_sp:
            return
        lay = self.s.layouts["mspill"]
        lines = _hex_lines(Path(FILES["sp"]).read_text())
        cols = decode_columns(lines, lay)
        words = decode_words(lines, lay) if cols is None else None
        oc = self.offchip
        for i in range(n_sp):
            k = self.sp_done + i
            addr = int(cols["addr"][i]) if cols is not None else words[i]["addr"]
            data = np.asarray(cols["data"][i] if cols is not None else words[i]["data"])
            if k in self.sp_last_use:
                self.sp_data[k] = data
            if not judge:
                continue
            if k >= len(self.exp_sp):
                sb._fail("spill", f"unexpected mspill beat (row {addr}) after the "
                                  f"{len(self.exp_sp)} expected")
                continue
            exp, key = self.exp_sp[k]
            if oc is not None:
                ok = oc.spill(exp, key, addr, data)
            else:
                ok = addr == exp.addr and np.array_equal(data, exp.data)
            sb.spill_rows_checked += 1
            sb.spill_words_checked += int(data.size)
            if not ok:
                sb._fail("spill", oc.spill_mismatches[-1] if oc is not None and oc.spill_mismatches
                         else f"spill {k}: got row {addr} {data.tolist()}, expected row "
                              f"{exp.addr} {np.asarray(exp.data).tolist()}")
        self.sp_done += n_sp

    def _count_traffic(self, lo: int) -> None:
        """Count into the off-chip model what moved since the last pause:
        weight-load beats, fills accepted, output beats, passes reached."""
        oc, ops = self.offchip, self.s.ops
        if oc is None:
            return
        wl_key, beat_key = getattr(ops, "wl_key", []), getattr(ops, "beat_key", [])
        n_wl, n_b = self._int("wl_count"), self._int("beats_total")
        for j in range(self.cnt["wl"], min(n_wl, len(wl_key))):
            oc.weight(wl_key[j])
        for k in range(self.cnt["beats"], min(n_b, len(beat_key))):
            oc.spike_out(beat_key[k])
        if self.spill:
            n_mf = self._int("mf_count")
            pos, fwd = self.mq_from
            k = int(fwd[:max(0, n_mf - pos)].sum())
            self.profile["fills_forwarded"] += k
            self.profile["fills_from_host"] += max(0, n_mf - pos) - k
            bits = self.cfg.slots * self.cfg.mem_width
            for j in range(self.cnt["mf"], n_mf):
                oc.fills += 1
                oc.add("mem_rd", self.mf[j][2], bits)
            self.cnt["mf"] = n_mf
        self.cnt["wl"], self.cnt["beats"] = n_wl, n_b
        at = lo + self._int("op_ptr")
        marks = self.prog.marks or []
        while self.mark_i < len(marks) and marks[self.mark_i][0] <= at:
            oc.spike_in(marks[self.mark_i][1])
            self.mark_i += 1

    def progress_record(self, name: str, sb) -> None:
        """Rewrite the plan's ``progress`` file (test, beats received of the
        expected, cycles), as the per-cycle path does, for the host's progress
        bar (:func:`tb.build.run`); written after every pause of the top."""
        if not self.s.plan.get("progress"):
            return
        atomic_write({self.s.plan["progress"]: json.dumps({
            "test": name, "beats": sb.next_beat, "beats_expected": sb.beats_expected,
            "cycles": self._int("cycles")})})

    async def run(self, sb, *, stop: int | None = None, stop_after: int | None = None,
                  judge: bool = True, name: str = "") -> str | None:
        """Run the program (up to compiled word ``stop``) and check it with
        ``sb``; returns a timeout message or None. With ``judge`` False
        (before a mid-run reset) nothing but X/Z is recorded. ``name``: the
        test, for the progress records."""
        from cocotb.triggers import RisingEdge

        d, prog = self.dut, self.prog
        prof = self.profile = {"files": 0.0, "simulate": 0.0, "check": 0.0, "blocks": 0, "pauses": 0,
                               "wl_windows": 0, "wt_loads": 0, "mf_windows": 0,
                               "fills_forwarded": 0, "fills_from_host": 0}
        c = cpu_seconds()
        wl_w = self.manifest_width("wload__payload")
        out_l = self.s.layouts["out"]
        row_i = 0
        status = None
        for lo, hi in blocks(prog, self.depths, stop):
            Path(FILES["ops"]).write_bytes(ops_bin(prog, lo, hi))
            prof["blocks"] += 1
            d.n_ops.value = hi - lo + 1
            d.load_ops.value = 1
            while True:
                d.load_wt.value = 0
                if status == "WLQ" and self._int("wl_count") >= prog.wl_idx.size:
                    raise RuntimeError("tb_bulk_top waits for weight-load beats beyond the "
                                       "stream (inconsistent program)")
                self._refill_wl(wl_w, status == "WLQ")
                if self.spill:
                    self._refill_mf()
                self.go ^= 1
                d.go.value = self.go
                c1 = cpu_seconds()
                prof["files"] += c1 - c
                await RisingEdge(d.done)
                c = cpu_seconds()
                prof["simulate"] += c - c1
                prof["pauses"] += 1
                status = STATUS.get(self._int("status"), "?")
                n_out, n_mem = self._int("n_out"), self._int("n_mem")
                if self.spill:
                    self._drain_spills(sb, judge)
                if judge:
                    self._count_traffic(lo)
                    if n_out:
                        lines = _hex_lines(Path(FILES["out"]).read_text())
                        if hasattr(sb, "beat_cycles"):   # e.g. tb/demo_cocotb.py's recorder
                            sb.beat_cycles(np.array([int(x, 16) for x in _hex_lines(
                                Path(FILES["cyc"]).read_text())], dtype=np.int64))
                        cols = decode_columns(lines, out_l)
                        if cols is not None:
                            sb.check_beats(cols)
                        else:   # X/Z digits (Icarus): one beat at a time
                            for got in decode_words(lines, out_l):
                                sb.check_beat(got)
                    if n_mem:
                        lines = _hex_lines(Path(FILES["mem"]).read_text())
                        got = decode_rows(lines, self.cfg.slots, self.cfg.mem_width)
                        sb.check_membranes(prog.rows[row_i:row_i + len(got)], np.array(got))
                        row_i += len(got)
                    if self._int("err_seen"):
                        i = lo + self._int("err_op")
                        sb.error_flag(self._int("err_val"),
                                      f"at operation {int(prog.orig[i])} (cycle {self._int('cycles')})")
                else:
                    row_i += n_mem
                if judge and name:
                    self.progress_record(name, sb)
                if status == "XZ":
                    i = lo + self._int("op_ptr")
                    what = XZ_WHAT.get(self._int("xz_what"), "?")
                    port = f"{what}=x" if self._int("xz_what") != 5 else what
                    sb.unresolved(self._xz_message(port, i))
                    return None
                if status == "TIMEOUT":
                    return self._timeout_message(lo + self._int("op_ptr"), sb) if judge else None
                if stop_after is not None and judge and sb.n_mismatches >= stop_after:
                    return None
                d.load_ops.value = 0
                d.load_wt.value = 0
                d.load_wq.value = 0
                if self.spill:
                    d.load_mq.value = 0
                c1 = cpu_seconds()
                prof["check"] += c1 - c
                c = c1
                if status == "END":
                    break
        if judge and stop is None and self.spill and self.sp_done != len(self.exp_sp):
            sb._fail("spill", f"{self.sp_done} mspill beats received, {len(self.exp_sp)} expected")
        return None

    def manifest_width(self, port: str) -> int:
        return {p["name"]: p["width"] for p in self.manifest["ports"]}[port]

    def _xz_message(self, port: str, i: int) -> str:
        try:
            from cocotb.utils import get_sim_time
            t = f", sim time {get_sim_time('ns'):g} ns"
        except Exception:  # pragma: no cover
            t = ""
        op = int(self.prog.orig[min(i, self.prog.orig.size - 1)]) if self.prog.orig.size else 0
        return (f"X/Z on output {port} at cycle {self._int('xz_cycle')}{t} "
                f"(bulk path, operation {op} of {self.prog.n_ops})")

    def _timeout_message(self, i: int, sb) -> str:
        limit = self.s.plan.get("stall_limit", 5000)
        if i >= self.prog.kind.size:
            what, op = "the end of the block", self.prog.n_ops
        else:
            k, a, op = int(self.prog.kind[i]), int(self.prog.arg[i]), int(self.prog.orig[i])
            nwl, ncmd = self._int("wl_count"), self._int("cmd_count")
            fence = int(self.prog.wl_fence[nwl]) if nwl < self.prog.wl_fence.size else None
            what = {KINDS["IDLE"]: f"the core to become idle with {a} beats received "
                                   f"(busy={self._int('dut_busy')}, beats received {sb.next_beat})",
                    KINDS["CMD"]: "cmd__ready",
                    KINDS["WAITWL"]: f"weight-load beats ({nwl} of {a} accepted; the next "
                                     f"beat's fence is {fence} commands, {ncmd} accepted)",
                    KINDS["WAITMF"]: f"membrane fill beats ({self._int('mf_count') if self.spill else 0}"
                                     f" of {a} accepted; spills received {self.sp_done})",
                    KINDS["RB"]: "membrane read-back", KINDS["END"]: "the end of the block"}[k]
        return (f"no progress for {limit} cycles at operation {op} of {self.prog.n_ops} "
                f"(cycle {self._int('cycles')}, bulk path): waiting for {what}")


async def _start(dut, name: str):
    from tb.plan import load_plan
    plan = load_plan()
    if name not in plan["tests"]:
        return None
    s = Session(dut, plan, bfm=False)
    r = BulkRunner(dut, s)   # tb_bulk_top generates its own clock
    await _reset(s, r, name)
    return s, r


async def _reset(s, r, name: str) -> None:
    problems = await r.reset()
    if problems:
        msg = f"[{name}] reset contract: " + "; ".join(problems)
        if s.plan.get("repro"):
            msg += f"\nreproduce: {s.plan['repro']}"
        s.record(name, {"ok": False, "failure": msg})
        raise AssertionError(msg)


async def _checked_run(s, r, name: str) -> None:
    sb = s.scoreboard()
    c0, t0, cpu0 = r.counters(), time.monotonic(), cpu_seconds()
    timeout = await r.run(sb, stop_after=s.plan.get("max_report", 8), name=name)
    if timeout is None and sb.ok:
        sb.missing_beats()
    c1 = r.counters()
    s.extra = {"bulk_cpu_seconds": getattr(r, "profile", {})}
    s.finish(name, sb, timeout, {k: c1[k] - c0[k] for k in c1}, time.monotonic() - t0, cpu0)


if cocotb is not None:

    @cocotb.test()
    async def full_run(dut):
        """Reset, run the whole schedule in blocks, check every beat and membrane row."""
        st = await _start(dut, "full_run")
        if st is None:
            return
        await _checked_run(*st, "full_run")

    @cocotb.test()
    async def reset_mid_run(dut):
        """Run part of the schedule, reset with beats in flight, then a clean checked run."""
        st = await _start(dut, "reset_mid_run")
        if st is None:
            return
        s, r = st
        rng = random.Random(s.plan["seed"] * 7919 + 1)
        n = len(s.ops)
        abort = rng.randint(n // 3, max(n // 3 + 1, 2 * n // 3))
        stop = int(np.searchsorted(r.prog.orig, abort))
        sb = s.scoreboard()
        await r.run(sb, stop=stop, judge=False)
        if sb.unresolved_text:
            s.fail("reset_mid_run", sb.unresolved_text + " [before the mid-run reset]")
        await _reset(s, r, "reset_mid_run")
        await _checked_run(s, r, "reset_mid_run")
