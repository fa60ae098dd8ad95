"""snnTorch (1.0.0) ``Leaky`` -> the project's float reference.

snnTorch 1.0.0 ``Leaky.forward`` (``reset_delay=True``, the default) keeps U
(before reset) as its state and applies the reset of step t at step t+1::

    r_t = H(U_{t-1} - θ)                      # recomputed from the stored U
    subtract: U_t = β·U_{t-1} + X_t - θ·r_t
    zero:     U_t = β·(1 - r_t)·U_{t-1} + X_t
    S_t = H(U_t - θ)   with H(x) = [x > 0] for the default ATan surrogate

* ``reset_mechanism="zero"`` is exactly the project's hard reset
  (U_t = λ·U_{t-1}·(1 - O_{t-1}) + X_t, λ = β), with either ``reset_delay``
  (without the delay the stored membrane is already reset and never above θ,
  so the recomputed reset is 0);
* ``reset_mechanism="subtract"`` with ``reset_delay=True`` subtracts θ *after*
  the decay, i.e. the project's soft reset with a reset amount θ/β ≠ θ: exact
  only for β = 1 (then it is the project's soft reset), refused otherwise;
  with ``reset_delay=False`` snnTorch recomputes the reset from the already
  reset membrane (a second subtraction when U > 2θ): refused;
* the firing comparison is read from the module's ``spike_grad`` by probing it
  at 0 (``>`` -> fire="gt", ``>=`` -> "ge"); it must output 0/1;
* input gain 1; λ = β clamped to [0, 1] as snnTorch does (β = 0 refused);
  β and θ are read from the module's buffers as stored (float32 unless the
  model was converted), one value per module;
* refused: ``reset_mechanism="none"``, ``inhibition``, ``state_quant``,
  ``graded_spikes_factor != 1``, per-neuron β or θ with different values, and
  every other snnTorch neuron (Synaptic, Alpha, RLeaky, ...).

The reset is always detached in snnTorch (``detach_reset=True``).
"""

from __future__ import annotations

import torch

from .common import Adapter, ImporterError, Imported, NeuronSpec, trace_and_map

__all__ = ["from_snntorch", "SnnTorchAdapter"]


def _framework():
    try:
        import snntorch
    except ImportError as e:   # pragma: no cover - depends on the optional extra
        raise ImporterError(f"snnTorch is not installed ({e}); install the 'import' extra: "
                            f"pip install -c constraints.txt -e '.[import]'") from None
    return snntorch


def _one_value(t, what: str, name: str) -> float:
    t = torch.as_tensor(t).detach()
    if t.numel() == 0:
        raise ImporterError(f"neuron module {name!r} (Leaky): {what} is empty")
    flat = t.flatten()
    if not bool((flat == flat[0]).all()):
        raise ImporterError(f"neuron module {name!r} (Leaky): per-neuron {what} with different values is "
                            f"not supported (one value per layer)")
    return float(flat[0])


class SnnTorchAdapter(Adapter):
    framework = "snnTorch"

    def __init__(self):
        self.snn = _framework()

    def neuron(self, module, name):
        snn = self.snn
        cls = type(module).__name__
        if not isinstance(module, snn.SpikingNeuron):
            return None
        if type(module) is not snn.Leaky:
            raise ImporterError(f"neuron module {name!r} ({cls}) is not supported; only snntorch.Leaky is")
        who = f"neuron module {name!r} (Leaky)"
        if module.inhibition:
            raise ImporterError(f"{who}: inhibition=True is not supported")
        if module.state_quant:
            raise ImporterError(f"{who}: state_quant is not supported (quantize with golden.quantize)")
        if _one_value(module.graded_spikes_factor, "graded_spikes_factor", name) != 1.0:
            raise ImporterError(f"{who}: graded_spikes_factor must be 1 (spikes are 0/1)")
        beta = min(max(_one_value(module.beta, "beta", name), 0.0), 1.0)
        theta = _one_value(module.threshold, "threshold", name)
        if not beta > 0:
            raise ImporterError(f"{who}: beta={beta!r} gives no leak in (0, 1]")
        if not theta > 0:
            raise ImporterError(f"{who}: threshold={theta!r} must be > 0")
        mech = module.reset_mechanism
        delay = bool(getattr(module, "reset_delay", True))
        if mech == "zero":
            reset = "hard"
        elif mech == "subtract":
            if not delay:
                raise ImporterError(f"{who}: reset_mechanism='subtract' with reset_delay=False recomputes "
                                    f"the reset from the already reset membrane (a second subtraction "
                                    f"when U > 2θ); not mappable exactly, use reset_delay=True with beta=1 "
                                    f"or reset_mechanism='zero'")
            if beta != 1.0:
                raise ImporterError(f"{who}: reset_mechanism='subtract' (reset_delay=True) subtracts θ after "
                                    f"the decay, an effective reset of θ/β = {theta / beta!r} != θ = {theta!r}; "
                                    f"the project's soft reset subtracts θ: exact only for beta=1, use "
                                    f"reset_mechanism='zero'")
            reset = "soft"
        else:
            raise ImporterError(f"{who}: reset_mechanism={mech!r} is not supported ('zero' or 'subtract')")
        probe = module.spike_grad(torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64))
        got = [float(v) for v in torch.as_tensor(probe).flatten()]
        if got == [0.0, 0.0, 1.0]:
            fire = "gt"
        elif got == [0.0, 1.0, 1.0]:
            fire = "ge"
        else:
            raise ImporterError(f"{who}: spike_grad gives {got} at U - θ = -1, 0, 1; it must be a 0/1 step")
        return NeuronSpec(leak=beta, gain=1.0, theta=theta, reset=reset, fire=fire, detach_reset=True)

    def current_in(self, args, kwargs):
        return args[0] if args else kwargs.get("input_")

    def start_state(self, module, name, args, kwargs, x):
        mem = args[1] if len(args) > 1 else kwargs.get("mem")
        if mem is None:
            mem = module.mem
        if not isinstance(mem, torch.Tensor) or mem.shape != x.shape:
            return None         # snnTorch starts from zeros_like(input)
        return mem

    def state_after(self, module, output):
        return module.mem

    def membrane_out(self, module, output):
        # with reset_delay=False snnTorch's state is already reset (V'), not U
        return module.mem if getattr(module, "reset_delay", True) else None

    def reset(self, model):
        for m in model.modules():
            if isinstance(m, self.snn.SpikingNeuron) and hasattr(m, "mem"):
                m.mem = torch.zeros(0)


def from_snntorch(model, example_input, timesteps=None) -> Imported:
    """Import an snnTorch model by running it once on ``example_input``.

    ``timesteps=None``: ``model(example_input)`` loops over the timesteps
    itself; ``timesteps=T``: the model is one step, called on ``example_input[t]``.
    Membranes may be kept by the modules (``init_hidden=True`` or ``mem``
    omitted) or passed explicitly (``spk, mem = lif(cur, mem)``); the
    importer follows which membrane each call starts from. Raises
    :class:`ImporterError` naming the module for anything it cannot map exactly.
    """
    return trace_and_map(model, example_input, SnnTorchAdapter(), timesteps=timesteps)
