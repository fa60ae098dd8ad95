"""Importers: trained SNNs from SpikingJelly, snnTorch and NIR -> the project's float reference.

* :func:`from_spikingjelly` (``golden.importers.spikingjelly``) and
  :func:`from_snntorch` (``golden.importers.snntorch``) trace a PyTorch
  ``nn.Module`` (:mod:`golden.importers.common`) and return an
  :class:`~golden.importers.common.Imported` whose ``model`` is a float64
  :class:`golden.reference.EfficientLIFNet`, ready for :func:`golden.quantize.quantize`;
* :func:`from_nir` (``golden.importers.nir``) maps a ``nir.NIRGraph``; the
  command line is ``python -m golden.convert``.

The frameworks are the optional extra ``import`` of pyproject.toml; this
package imports them only when an importer is called. docs/importing.md
lists the supported modules and nodes, the exact mappings and the refusals.
"""

from .common import FrameworkTrace, Imported, ImporterError

__all__ = ["ImporterError", "Imported", "FrameworkTrace", "from_spikingjelly", "from_snntorch", "from_nir"]


def from_spikingjelly(model, example_input, timesteps=None):
    """See :func:`golden.importers.spikingjelly.from_spikingjelly`."""
    from .spikingjelly import from_spikingjelly as f
    return f(model, example_input, timesteps=timesteps)


def from_snntorch(model, example_input, timesteps=None):
    """See :func:`golden.importers.snntorch.from_snntorch`."""
    from .snntorch import from_snntorch as f
    return f(model, example_input, timesteps=timesteps)


def from_nir(graph, **kwargs):
    """See :func:`golden.importers.nir.from_nir`."""
    from .nir import from_nir as f
    return f(graph, **kwargs)
