"""Compare what the core produced with the golden schedule.

:class:`Scoreboard` takes the expected output beats (in order) and the
expected membrane rows of every :class:`~golden.schedule.TimestepEnd`, and is
fed the decoded beats and membrane read-backs observed on the DUT. It checks
every field of every beat and every word of every membrane row, counts what
it checked, and builds a readable report of the first mismatches:

    beat 17: sample 1, layer 2 'blk_b' (chained), t 0, tile 1, group 3
      slot 5 (PE 101): spike exp 1 got 0, value exp 300 got 299

The report always ends with the seed and the command line that reproduces
the run. Pure Python: unit-tested without a simulator.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from golden.config import HwConfig
from golden.encoding import MODE_BY_NAME

from .payload import fmt_value

__all__ = ["Scoreboard", "Mismatch"]

MODE_NAMES = {int(code): name for name, code in MODE_BY_NAME.items()}


@dataclass
class Mismatch:
    """One mismatching beat or membrane row, already formatted."""

    kind: str          # "beat", "membrane", "extra beat", "missing beat", "error flag", "x/z"
    text: str


@dataclass
class Scoreboard:
    """Checks observed beats and membrane rows against the expected ones.

    ``layer_names``/``layer_modes`` (index -> str) are only used in messages.
    ``max_report`` limits how many mismatches are formatted in detail
    (all are counted); ``max_slots`` limits the lines per beat.
    """

    cfg: HwConfig
    expected_beats: list
    repro: str = ""
    layer_names: dict = field(default_factory=dict)
    layer_modes: dict = field(default_factory=dict)
    max_report: int = 8
    max_slots: int = 8
    neuron_of: object = None   # (layer, tile, pe) -> str, e.g. "neuron (c 3, h 2, w 1)"

    def __post_init__(self) -> None:
        self.next_beat = 0
        self.beats_checked = 0
        self.spikes_checked = 0
        self.values_checked = 0
        self.membrane_words_checked = 0
        self.membrane_rows_checked = 0
        self.spill_rows_checked = 0     # mspill beats compared with the schedule's spills
        self.spill_words_checked = 0
        self.mismatches: list[Mismatch] = []
        self.n_mismatches = 0
        self.unresolved_text = ""   # the first X/Z finding (the BFM stops there)
        self._prev_got = None
        self.coverage = {"spikes": 0, "readout_beats": 0, "value_sat_hi": 0, "value_sat_lo": 0,
                         "mem_sat_hi": 0, "mem_sat_lo": 0, "u_eq_theta": 0}

    # ---------------------------------------------------------------- beats
    def _where(self, b) -> str:
        name = self.layer_names.get(b.layer, "")
        mode = self.layer_modes.get(b.layer, "")
        lay = f"layer {b.layer}" + (f" {name!r}" if name else "") + (f" ({mode})" if mode else "")
        return f"sample {b.sample}, {lay}, t {b.t}, tile {b.tile}, group {b.group}"

    def _fail(self, kind: str, text: str) -> None:
        self.n_mismatches += 1
        if len(self.mismatches) < self.max_report:
            self.mismatches.append(Mismatch(kind, text))

    @property
    def beats_expected(self) -> int:
        return len(self.expected_beats)

    @property
    def beats_pending(self) -> int:
        return len(self.expected_beats) - self.next_beat

    def check_beat(self, got: dict) -> bool:
        """Check one observed beat (decoded ``out`` payload fields)."""
        idx = self.next_beat
        if idx >= len(self.expected_beats):
            self._fail("extra beat", f"beat {idx}: unexpected extra beat (tile {got.get('tile')}, "
                       f"group {got.get('group')}, last {got.get('last')}); only "
                       f"{len(self.expected_beats)} expected")
            return False
        exp = self.expected_beats[idx]
        self.next_beat += 1
        S = self.cfg.slots
        lines = []
        hdr = {"tile": exp.wire_tile, "group": exp.group, "last": exp.last,
               "readout": exp.readout}
        for k, v in hdr.items():
            if int(got[k]) != v:
                lines.append(f"  {k}: exp {v} got {fmt_value(got[k])}")
        es, ev = np.asarray(exp.spikes), np.asarray(exp.values)
        gs, gv = np.asarray(got["spikes"]), np.asarray(got["values"])
        bad = np.flatnonzero((es != gs) | (ev != gv))
        for k in bad[:self.max_slots].tolist():
            pe = exp.group * S + k
            nrn = f", {self.neuron_of(exp.layer, exp.tile, pe)}" if self.neuron_of else ""
            lines.append(f"  slot {k} (PE {pe}{nrn}): spike exp {int(es[k])} got {fmt_value(gs[k])}, "
                         f"value exp {int(ev[k])} got {fmt_value(gv[k])}")
        if bad.size > self.max_slots:
            lines.append(f"  ... and {bad.size - self.max_slots} more slot(s) of this beat")
        self.beats_checked += 1
        self.spikes_checked += S
        self.values_checked += S
        self.coverage["spikes"] += int(es.sum())
        if exp.readout:
            self.coverage["readout_beats"] += 1
        else:
            self.coverage["value_sat_hi"] += int((ev == self.cfg.mem_max).sum())
            self.coverage["value_sat_lo"] += int((ev == self.cfg.mem_min).sum())
            self.coverage["u_eq_theta"] += int((ev == self.cfg.theta_int).sum())
        prev, self._prev_got = self._prev_got, got
        if lines:
            hint = self._hint(idx, got, prev)
            self._fail("beat", f"beat {idx}: {self._where(exp)}{hint}\n" + "\n".join(lines))
            return False
        return True

    def check_beats(self, got: dict) -> int:
        """:meth:`check_beat` of ``n`` beats at once (the bulk path, tb/bulk.py).

        ``got`` maps every ``out`` field to an array: ``[n]`` for the header
        fields, ``[n, S]`` for ``spikes`` and ``values``. Beats that match
        are compared and counted with numpy; every other beat (and any extra
        beat) goes through :meth:`check_beat`, so counts, coverage and the
        report are the same as checking one beat at a time. Returns the
        number of mismatching beats.
        """
        n = len(got["tile"])
        i0 = self.next_beat
        m = max(0, min(n, len(self.expected_beats) - i0))
        exp = self.expected_beats[i0:i0 + m]
        bad = np.zeros(m, dtype=bool)
        if m:
            es = np.stack([b.spikes for b in exp])
            ev = np.stack([b.values for b in exp])
            gs, gv = np.asarray(got["spikes"])[:m], np.asarray(got["values"])[:m]
            bad = ((es != gs) | (ev != gv)).any(axis=1)
            hdr = {"tile": [b.wire_tile for b in exp], "group": [b.group for b in exp],
                   "last": [b.last for b in exp], "readout": [b.readout for b in exp]}
            for k, v in hdr.items():
                bad |= np.asarray(got[k])[:m] != np.asarray(v)
            good = ~bad
            ng = int(good.sum())
            S = self.cfg.slots
            self.beats_checked += ng
            self.spikes_checked += S * ng
            self.values_checked += S * ng
            self.coverage["spikes"] += int(es[good].sum())
            ro = np.asarray(hdr["readout"], dtype=bool)
            self.coverage["readout_beats"] += int((good & ro).sum())
            evn = ev[good & ~ro]
            self.coverage["value_sat_hi"] += int((evn == self.cfg.mem_max).sum())
            self.coverage["value_sat_lo"] += int((evn == self.cfg.mem_min).sum())
            self.coverage["u_eq_theta"] += int((evn == self.cfg.theta_int).sum())

        def row(i):
            return {k: (v[i] if np.ndim(v) == 2 else int(v[i])) for k, v in got.items()}

        for i in np.flatnonzero(bad).tolist() + list(range(m, n)):
            self.next_beat = i0 + i
            self._prev_got = row(i - 1) if i > 0 else self._prev_got
            self.check_beat(row(i))
        self.next_beat = i0 + m
        if n:
            self._prev_got = row(n - 1)
        return int(bad.sum()) + (n - m)

    def _same(self, got: dict, exp) -> bool:
        return (int(got["tile"]) == exp.wire_tile and int(got["group"]) == exp.group
                and np.array_equal(np.asarray(got["spikes"]), exp.spikes)
                and np.array_equal(np.asarray(got["values"]), exp.values))

    def _hint(self, idx: int, got: dict, prev) -> str:
        """Explain a misaligned stream: a repeated or a skipped beat."""
        if prev is not None and all(np.array_equal(np.asarray(got[k]), np.asarray(prev[k]))
                                    for k in got):
            return " [got a copy of the previous beat: duplicated?]"
        for skip in (1, 2, 3):
            if idx + skip < len(self.expected_beats) and \
                    self._same(got, self.expected_beats[idx + skip]):
                return f" [got expected beat {idx + skip}: {skip} beat(s) dropped?]"
        return ""

    def missing_beats(self) -> None:
        """Record every expected beat that never arrived (call at the end)."""
        if self.next_beat < len(self.expected_beats):
            exp = self.expected_beats[self.next_beat]
            n = len(self.expected_beats) - self.next_beat
            self._fail("missing beat", f"{n} expected beat(s) never arrived; the first is beat "
                       f"{self.next_beat}: {self._where(exp)}")

    # ------------------------------------------------------------- membrane
    def check_membrane(self, te, row: int, got: np.ndarray) -> bool:
        """Check one read-back membrane row after TimestepEnd ``te``."""
        exp = np.asarray(te.membrane[row])
        got = np.asarray(got)
        self.membrane_rows_checked += 1
        self.membrane_words_checked += exp.size
        self.coverage["mem_sat_hi"] += int((exp == self.cfg.mem_max).sum())
        self.coverage["mem_sat_lo"] += int((exp == self.cfg.mem_min).sum())
        bad = np.flatnonzero(exp != got)
        if bad.size == 0:
            return True
        lines = [f"  slot {k}: exp {int(exp[k])} got {fmt_value(got[k])}" for k in bad[:self.max_slots]]
        if bad.size > self.max_slots:
            lines.append(f"  ... and {bad.size - self.max_slots} more word(s) of this row")
        self._fail("membrane", f"membrane row {row} after sample {te.sample}, t {te.t} "
                   f"(read back via dbg_addr):\n" + "\n".join(lines))
        return False

    def check_membranes(self, rows, got: np.ndarray) -> int:
        """:meth:`check_membrane` of many rows at once (the bulk path):
        ``rows`` a list of ``(TimestepEnd, row)``, ``got`` ``[len(rows), S]``.
        Rows that match are compared and counted with numpy; every other row
        goes through :meth:`check_membrane` (same counts, coverage and report).
        Returns the number of mismatching rows."""
        if not rows:
            return 0
        exp = np.stack([np.asarray(te.membrane[r]) for te, r in rows])
        got = np.asarray(got)
        bad = (exp != got).any(axis=1)
        good = exp[~bad]
        self.membrane_rows_checked += good.shape[0]
        self.membrane_words_checked += good.size
        self.coverage["mem_sat_hi"] += int((good == self.cfg.mem_max).sum())
        self.coverage["mem_sat_lo"] += int((good == self.cfg.mem_min).sum())
        for i in np.flatnonzero(bad).tolist():
            self.check_membrane(rows[i][0], rows[i][1], got[i])
        return int(bad.sum())

    def error_flag(self, value: int, when: str) -> None:
        self._fail("error flag", f"error = {value:#x} (bits: 0 bad op/mode, 1 row >= weight_rows, "
                   f"2 membrane row >= mem_rows) {when}")

    def unresolved(self, text: str) -> None:
        """An output held X/Z where the BFM sampled it (one line, from
        :meth:`tb.bfm.CoreBfm.unresolved_message`); the run stops there."""
        if not self.unresolved_text:
            self.unresolved_text = text
        self._fail("x/z", text)

    # --------------------------------------------------------------- report
    @property
    def ok(self) -> bool:
        return self.n_mismatches == 0

    def report(self) -> str:
        if self.ok:
            return "no mismatches"
        if self.unresolved_text:
            # one line: the X/Z finding and the repro command; earlier mismatches after it
            head = self.unresolved_text + (f"; reproduce: {self.repro}" if self.repro else "")
            others = [m.text for m in self.mismatches if m.kind != "x/z"]
            if not others:
                return head
            return "\n".join([head, f"earlier: {self.n_mismatches - 1} mismatch(es); first "
                              f"{len(others)}:"] + others)
        parts = [f"{self.n_mismatches} mismatch(es); first {len(self.mismatches)}:"]
        parts += [m.text for m in self.mismatches]
        if self.repro:
            parts.append(f"reproduce: {self.repro}")
        return "\n".join(parts)

    def counts(self) -> dict:
        return {"beats": self.beats_checked, "beats_expected": len(self.expected_beats),
                "spikes": self.spikes_checked, "values": self.values_checked,
                "membrane_rows": self.membrane_rows_checked,
                "membrane_words": self.membrane_words_checked,
                "spill_rows": self.spill_rows_checked, "spill_words": self.spill_words_checked,
                "mismatches": self.n_mismatches, "coverage": dict(self.coverage)}
