"""The hardware-cost flow: synthesis, netlist attribution and the report.

This is the highest layer of the project (``golden < gen < tb < flow``): it
may import :mod:`golden`, :mod:`gen` and :mod:`tb`, and none of them imports
it. Modules, lowest first:

* :mod:`flow.synth` — runs Yosys on one Verilog file and parses the result
  (cell counts per module, memories, logic depth), cached by content hash;
* :mod:`flow.attribution` — cells to report blocks, gate equivalents, LIF
  share, and the netlist-vs-configuration consistency checks;
* :mod:`flow.memory_table` — the LIF membrane-memory rows of the report
  (from :mod:`golden.memory`);
* :mod:`flow.sweep` — emits, synthesizes and simulates every configuration
  (:class:`flow.sweep.BuildReport` per build);
* :mod:`flow.io_wrap` — the serial I/O wrapper ``fpga_top`` (every core port
  registered, 15 pins) for place and route;
* :mod:`flow.fpga` — Yosys ``synth_ecp5``/``synth_ice40`` + nextpnr of the
  wrapped core: resources, post-route fmax, critical path by block
  (``python -m flow.fpga`` = ``make fpga``; a section of the report);
* :mod:`flow.render` — the markdown text; :mod:`flow.plots` — the PNG plots;
* :mod:`flow.report` — the command line ``python -m flow.report``
  (= ``make report``). Method: ``docs/report.md``.
"""
