"""Cycle-level checks of the core against the timing in the manifest
(``gen.emit.cycles``, docs/interface.md "Timing") and the stream rules."""

from __future__ import annotations

import random

import pytest
from amaranth.sim import Simulator

from gen.core import LifPeArrayCore
from gen.emit import cycles
from gen.layouts import Mode, Op
from golden.config import HwConfig

CMD0 = {"op": 0, "row": 0, "base": 0, "mode": 0, "first": 0}


def _sim(cfg, bench):
    dut = LifPeArrayCore(cfg)
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    async def testbench(ctx):
        await bench(ctx, dut)

    sim.add_testbench(testbench)
    sim.run()


@pytest.mark.parametrize("groups", [1, 2, 4])
def test_tile_latency_matches_manifest(groups):
    cfg = HwConfig(array=8, groups=groups, weight_rows=4, mem_rows=4)
    cyc = cycles(cfg)
    seen = {}

    async def bench(ctx, dut):
        ctx.set(dut.out.ready, 1)
        for c in ({"op": Op.LAYER.value, "first": 1}, {"op": Op.EVENT.value, "row": 1},
                  {"op": Op.TILE.value}):
            ctx.set(dut.cmd.valid, 1)
            ctx.set(dut.cmd.payload, {**CMD0, **c})
            assert ctx.get(dut.cmd.ready) == 1
            await ctx.tick()                      # accepted on this edge
        ctx.set(dut.cmd.valid, 0)
        # edge 0 = the TILE's edge; look at out__valid after each later edge.
        beats = []
        for edge in range(1, groups + 6):
            await ctx.tick()
            if ctx.get(dut.out.valid):
                beats.append((edge, ctx.get(dut.out.payload.group), ctx.get(dut.out.payload.last)))
        seen["beats"] = beats
        assert ctx.get(dut.busy) == 0

    _sim(cfg, bench)
    beats = seen["beats"]
    assert beats[0][0] == cyc["first_beat_latency"]
    assert beats[-1][0] == cyc["last_beat_latency"]
    assert [b[1] for b in beats] == list(range(groups))            # one beat per cycle
    assert [b[0] for b in beats] == list(range(beats[0][0], beats[0][0] + groups))
    assert [b[2] for b in beats] == [0] * (groups - 1) + [1]


def _stream_run(cfg, events_per_tile, tiles, ready_prob=1.0, seed=0):
    """Send `tiles` tiles of `events_per_tile` EVENTs back to back; return
    (stall cycles on cmd, cycles from first command to last beat, beats)."""
    rng = random.Random(seed)
    cmds = [{"op": Op.LAYER.value, "mode": Mode.CHAINED.value, "first": 1}]
    for _ in range(tiles):
        cmds += [{"op": Op.EVENT.value, "row": rng.randrange(cfg.weight_rows)}
                 for _ in range(events_per_tile)]
        cmds.append({"op": Op.TILE.value})
    res = {"stalls": 0, "cycles": 0, "beats": 0, "violations": []}

    async def bench(ctx, dut):
        pending = list(cmds)
        held = None          # (payload) of a beat that was offered but not taken
        cycle = 0
        while pending or res["beats"] < tiles * cfg.groups:
            if pending:
                ctx.set(dut.cmd.valid, 1)
                ctx.set(dut.cmd.payload, {**CMD0, **pending[0]})
            else:
                ctx.set(dut.cmd.valid, 0)
            ready = int(rng.random() < ready_prob)
            ctx.set(dut.out.ready, ready)
            valid = ctx.get(dut.out.valid)
            payload = ctx.get(dut.out.payload).as_value().value if valid else None
            if held is not None and (not valid or payload != held):
                res["violations"].append(cycle)          # beat lost or changed
            cmd_taken = bool(pending) and ctx.get(dut.cmd.ready)
            if pending and not cmd_taken:
                res["stalls"] += 1
            await ctx.tick()
            cycle += 1
            if cmd_taken:
                pending.pop(0)
            if valid and ready:
                res["beats"] += 1
                held = None
            elif valid:
                held = payload
            assert cycle < 100000
        res["cycles"] = cycle

    _sim(cfg, bench)
    return res


@pytest.mark.parametrize("groups", [2, 4, 8])
def test_no_stall_when_tiles_have_at_least_n_events(groups):
    cfg = HwConfig(array=8, groups=groups, weight_rows=8, mem_rows=4)
    res = _stream_run(cfg, events_per_tile=cycles(cfg)["min_events_no_stall"], tiles=6)
    assert res["stalls"] == 0
    # LAYER + steady-state period max(E+1, N+1) = N+1 per tile, then the last
    # beat is valid last_beat_latency edges after the last TILE and transfers
    # on the edge after that.
    assert res["cycles"] == 1 + 6 * (groups + 1) + cycles(cfg)["last_beat_latency"] + 1


@pytest.mark.parametrize("groups", [2, 4])
def test_stall_when_tiles_are_shorter_than_n(groups):
    cfg = HwConfig(array=8, groups=groups, weight_rows=8, mem_rows=4)
    tiles, e = 6, groups - 1
    res = _stream_run(cfg, events_per_tile=e, tiles=tiles)
    assert res["stalls"] > 0
    # The LIF stage is then the bottleneck: from the first TILE (edge 2+E) it is
    # busy for N+1 cycles per tile, and the output register adds one edge.
    assert res["cycles"] == (2 + e) + tiles * cycles(cfg)["lif_cycles_per_tile"] + 1


def test_backpressure_never_loses_or_changes_a_beat():
    cfg = HwConfig(array=8, groups=4, weight_rows=8, mem_rows=4)
    res = _stream_run(cfg, events_per_tile=1, tiles=8, ready_prob=0.3, seed=5)
    assert res["beats"] == 8 * 4
    assert not res["violations"]


# ---------------------------------------------------------------- stream model
def test_stream_cycles_steady_state_is_the_tile_period():
    """A long uniform stream costs tile_period per tile (plus the pipeline tail)."""
    from gen.timing import PassTiming, cycles, stream_cycles, tile_period
    for n in (1, 4):
        cfg = HwConfig(array=8, groups=n)
        for e in (0, n - 1, n, n + 3, 20):
            r = stream_cycles([PassTiming([e] * 200)], cfg)
            per = tile_period(e, n)
            assert 200 * per <= r["cycles"] <= 200 * per + cycles(cfg)["last_beat_latency"] + 1, (n, e)


def test_stream_cycles_loads_fences_and_idle_waits():
    """Loads delay a pass's first command; a fence behind the previous pass
    serializes; without it the load overlaps that pass's EVENTs."""
    from gen.timing import PassTiming, stream_cycles
    cfg = HwConfig(array=8, groups=2)
    work = PassTiming([50] * 4)
    serial = stream_cycles([work, PassTiming([50] * 4, loads=100, loads_after=0)], cfg)
    overlap = stream_cycles([work, PassTiming([50] * 4, loads=100, loads_after=-1)], cfg)
    alone = stream_cycles([work, PassTiming([50] * 4)], cfg)
    # the first load may share the edge of the fencing pass's last command: 100 loads cost 99
    assert serial["load_wait"] == 99 and serial["cycles"] == alone["cycles"] + 99
    assert overlap["load_wait"] == 0 and overlap["cycles"] == alone["cycles"]
    idle = stream_cycles([work, PassTiming([50] * 4, wait_idle=True)], cfg)
    assert idle["idle_wait"] > 0 and idle["cycles"] > alone["cycles"]
