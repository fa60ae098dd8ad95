"""What one proof is: a :class:`Proof` builds the files of one sby job."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

__all__ = ["Proof", "Job"]


@dataclass
class Job:
    """Files and Yosys script of one sby run, plus what to print from a counterexample."""
    files: dict
    script: str
    mode: str
    depth: int
    #: harness signals shown (step by step) when the proof fails
    show: list = field(default_factory=list)
    #: which of ``show`` are signed numbers (the rest print unsigned, in hex when wide)
    signed: frozenset = frozenset()


@dataclass(frozen=True)
class Proof:
    """``name``: unique id; ``what``: one-line statement; ``config``: short text;
    ``build(mutate)`` -> :class:`Job`, where ``mutate`` (str -> str or None)
    is applied to the DUT Verilog; ``quick``: part of the pytest subset."""
    name: str
    what: str
    config: str
    build: Callable
    quick: bool = False
