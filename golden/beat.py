"""One ``out`` stream beat (docs/interface.md "Output stream").

:class:`Beat` is the single beat record of the project: the transaction
model (:class:`golden.core_model.CoreModel`) produces it, the schedule
(:func:`golden.schedule.build_schedule`) expects it, the testbench scoreboard
compares the wire against it.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .encoding import TILE_INDEX_WIDTH

__all__ = ["Beat"]


class Beat(NamedTuple):
    """One ``out`` beat.

    ``spikes`` int64 [S] 0/1 (all 0 in READOUT); ``values`` int64 [S]: U
    before reset, or X in READOUT; ``tile``: tile index within the layer, NOT
    reduced (the wire carries :attr:`wire_tile`, ``tile mod 2**16``);
    ``group``, ``last``, ``readout`` as on the wire. ``layer``, ``t`` and
    ``sample`` say where the beat comes from (for messages; -1 when unknown,
    e.g. for beats of the transaction model); ``tile0`` the tile the core's
    tile counter stood at 0 for (the first tile after the LAYER command that
    started the pass: :attr:`wire_tile` counts from it).
    """

    spikes: np.ndarray
    values: np.ndarray
    tile: int
    group: int
    last: int
    readout: int
    layer: int = -1
    t: int = -1
    sample: int = -1
    tile0: int = 0

    @property
    def wire_tile(self) -> int:
        """The ``tile`` field as on the wire: ``tile - tile0`` modulo ``2**TILE_INDEX_WIDTH``."""
        return (self.tile - self.tile0) % (1 << TILE_INDEX_WIDTH)
