"""The LIF membrane-memory part of the hardware report.

Which architectures, input sizes, sharing schemes and time steps the report
tabulates, and the rows themselves (:func:`golden.memory.memory_table`, one
sample, membranes of ``mem_width`` bits beside the paper's 32-bit figures).
"""

from __future__ import annotations

from golden.memory import memory_table

__all__ = ["MEMORY_ARCHS", "MEMORY_SIZES", "MEMORY_SCHEMES", "MEMORY_T", "memory_rows"]

MEMORY_ARCHS = ("vgg16", "resnet19")
MEMORY_SIZES = (32, 64, 224)
MEMORY_SCHEMES = ("baseline", "L", "C#2", "L+C#2", "C#4", "C#8")
MEMORY_T = 5


def memory_rows(mem_width: int) -> list:
    """golden.memory rows for :data:`MEMORY_ARCHS` x :data:`MEMORY_SIZES` x
    :data:`MEMORY_SCHEMES`, T = :data:`MEMORY_T`."""
    rows = []
    for arch in MEMORY_ARCHS:
        for size in MEMORY_SIZES:
            rows += memory_table(arch, size, MEMORY_T, MEMORY_SCHEMES, mem_width)
    return rows
