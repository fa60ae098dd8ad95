"""The testbench's off-chip memory: membrane rows spilled by the core, filled back
into it, and the traffic counted per transfer (docs/traffic.md).

:class:`OffChip` holds the membrane rows by off-chip row (``MemRow.vrow``),
checks every ``mspill`` beat against the schedule's expected row (address and
data) before storing it, serves every ``mfill`` beat from what was stored
(so a wrong spill propagates) and counts the bits of every transfer under the
key ``(kind, t, layer, chunk, sample)`` of :class:`golden.traffic.Transfer`:
``weight_rd`` per weight-load beat (``A·WW`` bits), ``mem_rd`` / ``mem_wr``
per fill / spill beat (``S·MW``), ``spike_rd`` per pass (the pass's input
map, 1 bit per input neuron: what the host reads to make its EVENTs),
``spike_wr`` per output beat (``S`` spike bits). :meth:`transfers` gives the
list that must equal ``golden.traffic.transfers(golden.traffic.hw_traffic(...))``.
"""

from __future__ import annotations

import math

import numpy as np

from golden.schedule import LayerPass

__all__ = ["OffChip", "pass_key"]


def pass_key(item: LayerPass) -> tuple:
    return (item.t, item.layer, item.chunk, item.sample)


class OffChip:
    def __init__(self, sched):
        cfg = sched.cfg
        self.cfg = cfg
        self.mem: dict = {}                 # vrow -> int64 [S]
        self.bits: dict = {}                # (kind, t, layer, chunk, sample) -> bits
        self.spill_mismatches: list = []
        self.spills_checked = 0
        self.fills = 0
        self.in_bits = {i: math.prod(ly.in_shape) for i, ly in enumerate(sched.net.layers)}

    def add(self, kind: str, key: tuple, bits: int) -> None:
        k = (kind,) + tuple(key)
        self.bits[k] = self.bits.get(k, 0) + bits

    def weight(self, key: tuple) -> None:
        self.add("weight_rd", key, self.cfg.array * self.cfg.weight_width)

    def spike_in(self, item: LayerPass) -> None:
        self.add("spike_rd", pass_key(item), self.in_bits[item.layer])

    def spike_out(self, key: tuple) -> None:
        self.add("spike_wr", key, self.cfg.slots)

    def fill(self, row, key: tuple) -> np.ndarray:
        """Data of an mfill beat for ``row`` (a MemRow): the last spill of its vrow."""
        if row.vrow not in self.mem:
            raise KeyError(f"fill of off-chip row {row.vrow} that was never spilled")
        self.fills += 1
        self.add("mem_rd", key, self.cfg.slots * self.cfg.mem_width)
        return self.mem[row.vrow]

    def spill(self, exp, key: tuple, addr: int, data) -> bool:
        """An mspill beat (``addr``, ``data``) expected to be ``exp`` (a MemRow)."""
        data = np.asarray(data, dtype=np.int64)
        self.spills_checked += 1
        self.add("mem_wr", key, self.cfg.slots * self.cfg.mem_width)
        self.mem[exp.vrow] = data
        ok = addr == exp.addr and np.array_equal(data, exp.data)
        if not ok and len(self.spill_mismatches) < 8:
            self.spill_mismatches.append(
                f"spill {self.spills_checked - 1} (t {key[0]}, layer {key[1]}, chunk {key[2]}, "
                f"sample {key[3]}): got row {addr} {data.tolist()}, expected row {exp.addr} "
                f"{np.asarray(exp.data).tolist()}")
        return ok

    def transfers(self, burst_bytes: int = 64) -> list:
        """Sorted ``(kind, bits, t, layer, chunk, sample)`` (weights: sample -1)."""
        out = []
        for (kind, t, layer, chunk, sample), bits in self.bits.items():
            out.append((kind, bits, t, layer, chunk, -1 if kind == "weight_rd" else sample))
        return sorted(out)

    def summary(self, burst_bytes: int = 64) -> dict:
        burst = burst_bytes * 8
        kinds: dict = {}
        for kind, bits, *_ in self.transfers():
            k = kinds.setdefault(kind, {"bits": 0, "bursts": 0, "transfers": 0})
            k["bits"] += bits
            k["bursts"] += -(-bits // burst)
            k["transfers"] += 1
        return {"kinds": kinds, "spills_checked": self.spills_checked, "fills": self.fills,
                "spill_mismatches": len(self.spill_mismatches)}
