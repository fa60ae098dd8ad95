"""amaranth.sim drivers of the bare core and of the serial I/O wrapper (flow/io_wrap.py).

Not a test module: imported by ``tests/test_flow_fpga.py``. Both drivers take
the same weight rows and command list and return the output beats (raw
payload integers, in order), the membrane words read back through ``dbg``
and the final ``busy``/``error``; the wrapper driver speaks only through the
wrapper's pins (serial shifting, ``go_*``, ``cap``).
"""

from __future__ import annotations

from amaranth.hdl import Value
from amaranth.sim import Simulator

from flow.io_wrap import IoWrapper, out_fields
from gen.core import LifPeArrayCore
from gen.layouts import cmd_layout, wload_layout

_CMD_DEFAULTS = {"op": 0, "row": 0, "base": 0, "mode": 0, "first": 0}


def _bits(layout, fields) -> int:
    return layout.const(fields).as_bits()


def run_bare(cfg, weights, cmds, dbg_rows, n_beats):
    dut = LifPeArrayCore(cfg)
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    res = {"beats": [], "dbg": {}}

    async def bench(ctx):
        ctx.set(dut.out.ready, 1)
        for r, row in enumerate(weights):
            ctx.set(dut.wload.valid, 1)
            ctx.set(dut.wload.payload, {"addr": r, "data": [int(w) for w in row]})
            await ctx.tick()
        ctx.set(dut.wload.valid, 0)
        for c in cmds:
            ctx.set(dut.cmd.valid, 1)
            ctx.set(dut.cmd.payload, {**_CMD_DEFAULTS, **c})
            await ctx.tick().until(dut.cmd.ready)
            ctx.set(dut.cmd.valid, 0)
        for _ in range(4 * cfg.groups + 20):
            await ctx.tick()
        res["busy"], res["error"] = ctx.get(dut.busy), ctx.get(dut.error)
        for row in dbg_rows:
            ctx.set(dut.dbg_addr, row)
            await ctx.tick()
            await ctx.tick()
            res["dbg"][row] = ctx.get(dut.dbg_data)

    async def monitor(ctx):
        async for _, _, valid, ready, payload in ctx.tick().sample(
                dut.out.valid, dut.out.ready, Value.cast(dut.out.payload)):
            if valid and ready:
                res["beats"].append(payload)

    sim.add_testbench(bench)
    sim.add_process(monitor)
    sim.run_until(2e-3)
    return res


def run_wrapped(cfg, weights, cmds, dbg_rows, n_beats):
    dut = IoWrapper(cfg, core=LifPeArrayCore(cfg))
    fields = out_fields(cfg)
    width = dut.out_width
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    res = {"beats": [], "dbg": {}}

    def field(word, name):
        off, w = fields[name]
        return (word >> off) & ((1 << w) - 1)

    async def shift_in(ctx, enable, value, nbits):
        ctx.set(enable, 1)
        for i in range(nbits):
            ctx.set(dut.sdi, (value >> i) & 1)
            await ctx.tick()
        ctx.set(enable, 0)

    async def read_out(ctx):
        ctx.set(dut.cap, 1)
        await ctx.tick()
        ctx.set(dut.cap, 0)
        word = 0
        ctx.set(dut.sh_out, 1)
        for i in range(width):
            word |= ctx.get(dut.sdo) << i
            await ctx.tick()
        ctx.set(dut.sh_out, 0)
        return word

    async def drain(ctx):
        if ctx.get(dut.out_full):
            word = await read_out(ctx)
            if field(word, "out_full"):
                res["beats"].append(field(word, "out_payload"))

    async def push(ctx, pend, go):
        while ctx.get(pend):
            await drain(ctx)
            await ctx.tick()
        ctx.set(go, 1)
        await ctx.tick()
        ctx.set(go, 0)

    async def bench(ctx):
        wl, cl = wload_layout(cfg), cmd_layout(cfg)
        for r, row in enumerate(weights):
            await shift_in(ctx, dut.sh_wload, _bits(wl, {"addr": r, "data": [int(w) for w in row]}),
                           wl.size)
            await push(ctx, dut.wload_pend, dut.go_wload)
        for c in cmds:
            await shift_in(ctx, dut.sh_cmd, _bits(cl, {**_CMD_DEFAULTS, **c}), cl.size)
            await push(ctx, dut.cmd_pend, dut.go_cmd)
            await drain(ctx)
        for _ in range(20 * n_beats + 50):
            if len(res["beats"]) >= n_beats and not ctx.get(dut.cmd_pend):
                break
            await drain(ctx)
            await ctx.tick()
        for _ in range(4 * cfg.groups + 20):
            await ctx.tick()
        word = await read_out(ctx)
        res["busy"], res["error"] = field(word, "busy"), field(word, "error")
        res["extra_beat"] = field(word, "out_full")
        for row in dbg_rows:
            await shift_in(ctx, dut.sh_ctl, row, cfg.mem_addr_width)
            ctx.set(dut.go_ctl, 1)
            await ctx.tick()
            ctx.set(dut.go_ctl, 0)
            for _ in range(3):
                await ctx.tick()
            res["dbg"][row] = field(await read_out(ctx), "dbg_data")

    sim.add_testbench(bench)
    sim.run_until(20e-3)
    return res
