"""Amaranth generator of the shared-LIF PE array core ``lif_pe_array``.

Entry points: ``python -m gen.emit --verilog`` (:mod:`gen.emit`),
``python -m gen.lint FILE.v`` (:mod:`gen.lint`), the top-level component
:class:`gen.core.LifPeArrayCore`. See ``docs/generator.md``.
"""
