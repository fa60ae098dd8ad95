"""SpikingJelly (0.0.0.0.14, ``clock_driven`` API) -> the project's float reference.

Mapping of one single-step neuron module (docs/importing.md has the table):

* ``LIFNode(tau, decay_input=True)``: ``H = V + (X - V)/tau`` = ``(1 - 1/tau)·V + X/tau``,
  so λ = 1 - 1/τ and an input gain 1/τ folded into the weights of the layer
  feeding it; ``decay_input=False``: ``H = (1 - 1/tau)·V + X``, gain 1;
* ``IFNode``: λ = 1, gain 1;
* ``ParametricLIFNode``: frozen at its current τ = 1/sigmoid(w): λ = 1 - sigmoid(w),
  gain sigmoid(w) (decay_input=True) or 1;
* ``v_reset=None`` -> soft reset (subtract θ); ``v_reset=0`` -> hard reset to 0;
  any other ``v_reset`` is refused; θ = ``v_threshold``; SpikingJelly fires on
  ``H - θ >= 0`` (``surrogate.heaviside``) -> fire = "ge"; ``detach_reset`` is
  copied (it only changes gradients); the surrogate's ``alpha`` is copied
  for ``surrogate.ATan`` (gradients only);
* any other neuron (multi-step nodes, LIAF, QIF, EIF, activation_based nodes,
  a surrogate with ``spiking=False``) is refused naming the module.
"""

from __future__ import annotations

import math

import torch

from .common import Adapter, ImporterError, Imported, NeuronSpec, trace_and_map

__all__ = ["from_spikingjelly", "SpikingJellyAdapter"]


def _framework():
    try:
        from spikingjelly.clock_driven import functional, neuron, surrogate
    except ImportError as e:   # pragma: no cover - depends on the optional extra
        raise ImporterError(f"SpikingJelly is not installed ({e}); install the 'import' extra: "
                            f"pip install -c constraints.txt -e '.[import]'") from None
    return functional, neuron, surrogate


class SpikingJellyAdapter(Adapter):
    framework = "SpikingJelly"

    def __init__(self):
        self.functional, self.neuron_mod, self.surrogate = _framework()
        try:
            from spikingjelly.activation_based import neuron as ab
            self.ab_base = ab.BaseNode
        except ImportError:     # pragma: no cover
            self.ab_base = ()

    def neuron(self, module, name):
        n = self.neuron_mod
        cls = type(module).__name__
        if self.ab_base and isinstance(module, self.ab_base):
            raise ImporterError(f"neuron module {name!r} ({cls}) is from spikingjelly.activation_based; "
                                f"only the clock_driven single-step LIFNode/IFNode/ParametricLIFNode are "
                                f"supported")
        if not isinstance(module, n.BaseNode):
            return None
        if type(module) not in (n.LIFNode, n.IFNode, n.ParametricLIFNode):
            raise ImporterError(f"neuron module {name!r} ({cls}) is not supported; use the single-step "
                                f"LIFNode, IFNode or ParametricLIFNode")
        sf = module.surrogate_function
        if getattr(sf, "spiking", True) is not True:
            raise ImporterError(f"neuron module {name!r} ({cls}): surrogate_function has spiking=False "
                                f"(it outputs analog values, not spikes)")
        alpha = float(getattr(sf, "alpha", 2.0)) if isinstance(sf, self.surrogate.ATan) else 2.0
        theta = float(module.v_threshold)
        if not theta > 0:
            raise ImporterError(f"neuron module {name!r} ({cls}): v_threshold={theta!r} must be > 0")
        if module.v_reset is None:
            reset = "soft"
        elif float(module.v_reset) == 0.0:
            reset = "hard"
        else:
            raise ImporterError(f"neuron module {name!r} ({cls}): v_reset={module.v_reset!r} is not "
                                f"supported (only None = soft reset, or 0 = hard reset to zero)")
        if type(module) is n.IFNode:
            leak, gain = 1.0, 1.0
        else:
            if type(module) is n.LIFNode:
                tau = float(module.tau)
                if not (math.isfinite(tau) and tau > 1):
                    raise ImporterError(f"neuron module {name!r} ({cls}): tau={tau!r} must be > 1 "
                                        f"(λ = 1 - 1/τ must lie in (0, 1])")
                k = 1.0 / tau
            else:
                k = float(module.w.detach().double().sigmoid())
                if not 0 < k < 1:
                    raise ImporterError(f"neuron module {name!r} ({cls}): 1/τ = sigmoid(w) = {k!r} gives "
                                        f"no leak in (0, 1]")
            leak = 1.0 - k
            gain = k if module.decay_input else 1.0
        return NeuronSpec(leak=leak, gain=gain, theta=theta, reset=reset, fire="ge",
                          detach_reset=bool(module.detach_reset), alpha=alpha)

    def start_state(self, module, name, args, kwargs, x):
        v = module.v
        if isinstance(v, torch.Tensor):
            return v
        if float(v) != 0.0:
            raise ImporterError(f"neuron module {name!r} starts from v={v!r}, not 0")
        return None

    def state_after(self, module, output):
        return module.v

    def reset(self, model):
        self.functional.reset_net(model)


def from_spikingjelly(model, example_input, timesteps=None) -> Imported:
    """Import a SpikingJelly ``clock_driven`` model by running it once on ``example_input``.

    ``timesteps=None``: ``model(example_input)`` runs all timesteps itself (the
    EfficientLIF-Net authors' pattern: a loop over T inside ``forward``);
    ``timesteps=T``: ``example_input`` is [T, ...] and the model is one step,
    called on ``example_input[t]`` for t = 0..T-1. Returns an
    :class:`~golden.importers.common.Imported` (float64 model, input spikes,
    the framework's own trace). Raises :class:`ImporterError` naming the module
    for anything it cannot map exactly.
    """
    return trace_and_map(model, example_input, SpikingJellyAdapter(), timesteps=timesteps)
