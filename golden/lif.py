"""Float LIF primitives: neuron constants, the spike function with its surrogate gradient, one step.

LIF step (one membrane slot, paper eq. 1/2/4/8, docs/fixed-point.md F3-F6)::

    U  = λ·V + X                       # V: carried membrane, 0 at the first timestep
    O  = [U > θ]  (fire="gt")  or  [U >= θ]  (fire="ge")
    V' = U − θ·O  (reset="soft")  or  U·(1 − O)  (reset="hard")

Surrogate gradient (paper §3.2; SpikingJelly ``surrogate.ATan``)::

    dO/dU = (α/2) / (1 + (π/2 · α · (U − θ))²),   α = 2 by default,

which for α = 2 is the derivative of ``arctan(π(U−θ))/π + 1/2``.
``detach_reset=True`` (the released code's setting, default) stops the
gradient through the ``θ·O`` reset term.

:func:`synapse` is the layer's current X = W·O. The network built from these
(:class:`golden.reference.EfficientLIFNet`) and its reversible backward pass
(:mod:`golden.reversible`) both sit above this module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .config import FIRE_MODES, RESET_MODES
from .errors import ProjectError
from .geometry import LayerGeometry

__all__ = ["ReferenceModelError", "LIFParams", "surrogate_grad", "ATanSpike", "spike_fn", "lif_step",
           "synapse"]


class ReferenceModelError(ProjectError, ValueError):
    """Invalid float-model parameter, layer spec or input. The message names it."""


@dataclass(frozen=True)
class LIFParams:
    """Neuron constants shared by every LIF layer of a network.

    ``leak`` λ (0 < λ <= 1), ``theta`` θ > 0, ``fire`` "gt"|"ge",
    ``reset`` "soft"|"hard", ``alpha`` ATan surrogate sharpness,
    ``detach_reset`` no gradient through the reset term.
    """

    leak: float = 0.25
    theta: float = 1.0
    fire: str = "gt"
    reset: str = "soft"
    alpha: float = 2.0
    detach_reset: bool = True

    def __post_init__(self) -> None:
        for name in ("leak", "theta", "alpha"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ReferenceModelError(f"{name}={v!r}: expected a finite number")
        if not 0 < self.leak <= 1:
            raise ReferenceModelError(f"leak={self.leak!r}: must satisfy 0 < λ <= 1")
        if not self.theta > 0:
            raise ReferenceModelError(f"theta={self.theta!r}: must be > 0")
        if not self.alpha > 0:
            raise ReferenceModelError(f"alpha={self.alpha!r}: must be > 0")
        if self.fire not in FIRE_MODES:
            raise ReferenceModelError(f"fire={self.fire!r}: must be 'gt' (U > θ) or 'ge' (U >= θ)")
        if self.reset not in RESET_MODES:
            raise ReferenceModelError(f"reset={self.reset!r}: must be 'soft' or 'hard'")
        if not isinstance(self.detach_reset, bool):
            raise ReferenceModelError(f"detach_reset={self.detach_reset!r}: expected a bool")


def surrogate_grad(u: torch.Tensor, theta: float, alpha: float) -> torch.Tensor:
    """ATan surrogate dO/dU = (α/2) / (1 + (π/2·α·(U−θ))²)."""
    x = (math.pi / 2 * alpha) * (u - theta)
    return (alpha / 2) / (1 + x * x)


class ATanSpike(torch.autograd.Function):
    """Heaviside firing with the ATan surrogate gradient."""

    @staticmethod
    def forward(ctx, u, theta: float, alpha: float, ge: bool):
        ctx.save_for_backward(u)
        ctx.theta, ctx.alpha = theta, alpha
        return (u >= theta if ge else u > theta).to(u.dtype)

    @staticmethod
    def backward(ctx, grad_o):
        (u,) = ctx.saved_tensors
        return grad_o * surrogate_grad(u, ctx.theta, ctx.alpha), None, None, None


def spike_fn(u: torch.Tensor, p: LIFParams) -> torch.Tensor:
    """O = f(U) with the firing rule and surrogate gradient of ``p``."""
    return ATanSpike.apply(u, p.theta, p.alpha, p.fire == "ge")


def lif_step(v: torch.Tensor, x: torch.Tensor, p: LIFParams):
    """One LIF step. Returns ``(u, o, v_next)`` (see module docstring)."""
    u = p.leak * v + x
    o = spike_fn(u, p)
    r = o.detach() if p.detach_reset else o
    v_next = u - p.theta * r if p.reset == "soft" else u * (1 - r)
    return u, o, v_next



def synapse(spec: LayerGeometry, spikes: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """X = W·O for a batch of input spikes [B, *in_shape] -> [B, *out_shape]."""
    if spec.kind == "linear":
        return spikes.flatten(1) @ weight.t()
    return F.conv2d(spikes, weight, stride=spec.stride, padding=spec.padding)
