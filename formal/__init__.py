"""Formal proofs of the generated RTL (docs/reliability.md, "Formal proofs").

Layering: ``formal`` sits beside ``tb``: it imports ``golden`` and ``gen``, and
``tb.mutations`` for the fault set; nothing in ``golden``/``gen``/``tb``
imports it.

* :mod:`formal.spec` -- the fixed-point rules F2-F6 (docs/fixed-point.md) as
  width-free integer arithmetic, usable on Python ints and Amaranth values.
* :mod:`formal.dut` -- the design under proof: the generator's Verilog of one
  block (optionally mutated) and an Amaranth ``Instance`` of it.
* :mod:`formal.harness`, :mod:`formal.jobs` -- harness building blocks, what a proof is.
* :mod:`formal.lif_props`, :mod:`formal.stream_props` -- property harnesses.
* :mod:`formal.tools` -- finds the tools and runs one SymbiYosys job.
* :mod:`formal.faults` -- known faults that must make a proof fail.
* :mod:`formal.run` -- ``python -m formal.run`` (``make formal``).
"""
