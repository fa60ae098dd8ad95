"""Reversible, memory-saving backward for soft-reset LIF chains (paper §4.3, eq. 18/19).

A *chain* is the sequence of LIF steps that pass one membrane along: for a
C#N layer the groups of timestep 0, then of timestep 1, ...; for an L block
the groups of every layer of the block, timestep by timestep (see
:mod:`golden.reference`). Plain autograd stores the membrane U of every
step. Here each layer-step is one :class:`RevLayerStep` autograd function
that stores only

* its input spikes and output spikes as ``bool`` (1 byte per spike; 1 bit in
  the paper's count),
* the weight (a parameter, not an activation),
* the carried membrane V' of the chain's *last* step, plus every K-th one
  counted back from the end when ``checkpoint_every=K``.

Backward walks the chain from its end. A step with carried membrane V'
recomputes its current ``X = W·O_in`` from the stored input spikes, its
membrane ``U = V' + θ·O`` and the previous carried membrane

    V'_prev = (U − X) / λ,

which it hands to the previous step through the chain's :class:`ChainTape`.
Autograd runs a step's backward only after the backward of the step that
consumed its output membrane, so the tape is always filled in time.

Numerics: every reverse step divides by λ, so a rounding error of the
forward pass grows like (1/λ)^k after k reverse steps (λ = 0.25 over 15
steps: 4^15 ≈ 1e9). Use float64, short chains, λ close to 1, or a checkpoint
interval K to bound k. :attr:`ChainTape.initial_error` reports how far the
reconstructed membrane before the chain's first step is from its true value
0, a direct measure of the accumulated error.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .geometry import LayerGeometry
from .lif import LIFParams, surrogate_grad, synapse

__all__ = ["ChainTape", "RevLayerStep", "rev_layer_step", "SpikeSynapse", "SavedBytes",
           "saved_bytes"]


class ChainTape:
    """Backward-time mailbox of one membrane chain of ``length`` group steps.

    ``keep(s)``: whether the forward stores V' after step ``s`` (the last step
    always; with ``checkpoint_every=K`` also every K-th step counted back
    from the last). ``mailbox[s]``: V' after step ``s`` reconstructed during
    backward. ``initial_error``: max |V| reconstructed before step 0 (true
    value 0), set when the backward reaches the chain's start.
    """

    def __init__(self, length: int, checkpoint_every: Optional[int] = None):
        self.length = length
        self.checkpoint_every = checkpoint_every
        self.mailbox: dict = {}
        self.initial_error: Optional[float] = None

    def keep(self, step: int) -> bool:
        back = self.length - 1 - step
        if back == 0:
            return True
        return self.checkpoint_every is not None and back % self.checkpoint_every == 0


class RevLayerStep(torch.autograd.Function):
    """One timestep of one LIF layer over its ``ng`` chained groups, reversible.

    forward(v[B, *state], o_in[B, *in_shape], w, tape, step0, spec, ng, p)
      -> (o[B, *out_shape], v_next[B, *state], u[B, *out_shape], x[B, *out_shape])
    ``u`` (membranes before reset) and ``x`` (currents) are returned for
    recording only and are not differentiable. ``step0`` is the chain index
    of this layer-step's group 0.
    """

    @staticmethod
    def forward(ctx, v, o_in, w, tape: ChainTape, step0: int, spec: LayerGeometry, ng: int,
                p: LIFParams):
        ge = p.fire == "ge"
        x = synapse(spec, o_in, w)
        us, os_, keeps, keep_idx = [], [], [], []
        for g, xg in enumerate(x.chunk(ng, dim=1)):
            u = p.leak * v + xg
            o = (u >= p.theta if ge else u > p.theta).to(u.dtype)
            v = u - p.theta * o
            us.append(u)
            os_.append(o)
            if tape.keep(step0 + g):
                keeps.append(v)
                keep_idx.append(g)
        o = torch.cat(os_, dim=1)
        u = torch.cat(us, dim=1)
        ctx.save_for_backward(o_in.to(torch.bool), o.to(torch.bool), w, *keeps)
        ctx.meta = (tape, step0, spec, ng, p, tuple(keep_idx))
        ctx.mark_non_differentiable(u, x)
        return o, v, u, x

    @staticmethod
    def backward(ctx, g_o, g_v, _g_u, _g_x):
        tape, step0, spec, ng, p, keep_idx = ctx.meta
        o_in_b, o_b, w, *keeps = ctx.saved_tensors
        kept = dict(zip(keep_idx, keeps))
        need_in, need_w = ctx.needs_input_grad[1], ctx.needs_input_grad[2]
        with torch.enable_grad():
            o_in = o_in_b.to(w.dtype).requires_grad_(need_in)
            wd = w.detach().requires_grad_(need_w)
            x = synapse(spec, o_in, wd)
        xs = x.detach().chunk(ng, dim=1)
        os_ = o_b.to(w.dtype).chunk(ng, dim=1)
        g_os = (torch.zeros_like(x) if g_o is None else g_o).chunk(ng, dim=1)
        last = step0 + ng - 1
        v_after = kept.get(ng - 1)
        if v_after is None:
            v_after = tape.mailbox.pop(last, None)
            if v_after is None:
                raise RuntimeError(
                    f"reversible backward: membrane after chain step {last} was never "
                    "reconstructed; the gradient must flow through the whole chain "
                    "(use backward='autograd' for partial losses)")
        gv = torch.zeros_like(v_after) if g_v is None else g_v
        g_xs = [None] * ng
        for g in reversed(range(ng)):
            if g in kept:
                v_after = kept[g]
            u = v_after + p.theta * os_[g]
            sg = surrogate_grad(u, p.theta, p.alpha)
            g_u = g_os[g] * sg + (gv if p.detach_reset else gv * (1 - p.theta * sg))
            g_xs[g] = g_u
            gv = p.leak * g_u
            v_after = (u - xs[g]) / p.leak
        if step0 > 0:
            tape.mailbox[step0 - 1] = v_after
        else:
            tape.initial_error = float(v_after.abs().max()) if v_after.numel() else 0.0
        g_x = torch.cat(g_xs, dim=1)
        g_in = g_w = None
        wanted = [t for t, need in ((o_in, need_in), (wd, need_w)) if need]
        if wanted:
            grads = list(torch.autograd.grad(x, wanted, g_x))
            g_in = grads.pop(0) if need_in else None
            g_w = grads.pop(0) if need_w else None
        return gv, g_in, g_w, None, None, None, None, None


def rev_layer_step(tape: ChainTape, step0: int, v, o_in, w, spec: LayerGeometry, ng: int,
                   p: LIFParams, record: bool = False):
    """Apply :class:`RevLayerStep`; returns ``(o, v_next, u, x)`` (u, x None unless record)."""
    o, v, u, x = RevLayerStep.apply(v, o_in, w, tape, step0, spec, ng, p)
    return o, v, (u if record else None), (x if record else None)


class SpikeSynapse(torch.autograd.Function):
    """X = W·O_in for a read-out layer, saving the input spikes as ``bool``.

    Plain autograd would save them in the float dtype; spikes are 0/1, so
    the bool copy is exact.
    """

    @staticmethod
    def forward(ctx, o_in, w, spec: LayerGeometry):
        ctx.save_for_backward(o_in.to(torch.bool), w)
        ctx.spec = spec
        return synapse(spec, o_in, w)

    @staticmethod
    def backward(ctx, g_x):
        o_in_b, w = ctx.saved_tensors
        need_in, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        with torch.enable_grad():
            o_in = o_in_b.to(w.dtype).requires_grad_(need_in)
            wd = w.detach().requires_grad_(need_w)
            x = synapse(ctx.spec, o_in, wd)
        wanted = [t for t, need in ((o_in, need_in), (wd, need_w)) if need]
        grads = list(torch.autograd.grad(x, wanted, g_x)) if wanted else []
        g_in = grads.pop(0) if need_in else None
        g_w = grads.pop(0) if need_w else None
        return g_in, g_w, None


# ------------------------------------------------------------ memory counting
class SavedBytes:
    """Context manager counting the bytes autograd saves for backward.

    Uses ``torch.autograd.graph.saved_tensors_hooks``. A storage shared by
    several saves (views, repeated saves) is counted once, in full. Tensors whose
    storage belongs to one of ``exclude`` (e.g. the model's parameters) are
    counted separately in ``param_bytes``. After the block: ``total`` (all
    non-excluded bytes), ``by_dtype`` {dtype name: bytes}, ``param_bytes``.
    """

    def __init__(self, exclude=()):
        self._exclude = {t.untyped_storage().data_ptr() for t in exclude}
        self._seen: dict = {}
        self.param_bytes = 0
        self._hooks = None

    def _pack(self, t: torch.Tensor):
        storage = t.untyped_storage()
        key = storage.data_ptr()
        if key not in self._seen:
            self._seen[key] = (str(t.dtype).replace("torch.", ""), storage.nbytes(),
                               key in self._exclude)
        return t

    @staticmethod
    def _unpack(t):
        return t

    def __enter__(self):
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc):
        self._hooks.__exit__(*exc)
        return False

    @property
    def by_dtype(self) -> dict:
        out: dict = {}
        for name, nbytes, excluded in self._seen.values():
            if not excluded:
                out[name] = out.get(name, 0) + nbytes
        return out

    @property
    def total(self) -> int:
        return sum(self.by_dtype.values())

    @property
    def excluded_bytes(self) -> int:
        return sum(n for _, n, ex in self._seen.values() if ex)


def saved_bytes(model: nn.Module, spikes: torch.Tensor) -> SavedBytes:
    """Run ``model(spikes)`` under :class:`SavedBytes` (parameters excluded)."""
    with SavedBytes(exclude=list(model.parameters())) as counter:
        model(spikes)
    return counter
