"""PyTorch float reference of EfficientLIF-Net (baseline, L, C#N, L+C#N).

This is the *float* model: what a user trains. The bit-accurate integer model
of the hardware lives in :mod:`golden.fixed_model`; the two agree under the
conditions listed in ``docs/fixed-point.md`` ("Float model correspondence").

The LIF step, the firing rule and its ATan surrogate gradient are in
:mod:`golden.lif`; the layer geometry and its checks in :mod:`golden.geometry`.

Sharing = *which* V a step starts from (docs/fixed-point.md F7):

* **independent** (baseline): every neuron has its own membrane, carried
  from timestep t to t+1.
* **chained** with ``groups = N`` (C#N, eq. 7-11): the C output channels are N
  contiguous groups of C/N; slot (c', h, w) of group g+1 starts from V' of
  the same slot of group g; group N-1 carries to group 0 of the next timestep.
  ``groups = 1`` chained is the baseline again.
* **block** (L, eq. 4-6; L+C#N, eq. 12-14): consecutive chained layers with
  the same block id and the same output shape share one membrane: layer l+1
  starts from layer l's last V' in the same timestep, the block's last layer
  carries to the block's first layer at t+1.
* **readout**: the layer outputs its current X (no LIF). The network's output
  is the read-out current summed over timesteps (or per timestep).

Residual sums: a layer with ``skip = j`` adds a shortcut synapse of layer j's
spikes of the same timestep, ``X = W·O_in + W_s·O_j (+ b)`` (weights in
``skip_weights[str(i)]``; docs/fixed-point.md F2c). Direct input
(``direct_input=True``): the first layer takes the input values themselves
(any finite numbers, e.g. the same image every timestep) instead of 0/1
spikes (F2d; the integer network sends them as bit planes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from . import reversible as rev
from .geometry import LayerGeometry, check_chain, sharing_units, where
from .lif import LIFParams, ReferenceModelError, lif_step, synapse
from .memory import MemoryCalcError
from .memory import parse_scheme as _parse_scheme

__all__ = ["LayerSpec", "EfficientLIFNet", "NetTrace", "with_scheme", "parse_scheme"]


# ----------------------------------------------------------------- layer spec
def _pos_int(v, name: str) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ReferenceModelError(f"{name}={v!r}: expected an integer >= 1")


@dataclass(frozen=True)
class LayerSpec(LayerGeometry):
    """One synaptic layer followed by its neurons, for the float model.

    The fifteen fields of :class:`golden.geometry.LayerGeometry` (kind, in_shape,
    out_channels, kernel, stride, padding, mode, block, name, pool, skip, skip_in_shape,
    skip_kernel, skip_stride, skip_padding) and its
    checks, plus ``bias``: True when the layer adds a per-output-channel bias
    current every timestep (``X = W·O + b``; folded BatchNorm). A bad field
    raises :class:`ReferenceModelError`. Its weight (a float tensor of
    ``weight_shape``) and bias (``[out_channels]``) are held by
    :class:`EfficientLIFNet` (``weights[i]``, ``biases[str(i)]``).
    """

    bias: bool = False

    _error = ReferenceModelError

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.bias, bool):
            raise self._bad(f"bias={self.bias!r}: must be True or False")


def validate_layers(layers: Sequence[LayerSpec], groups: int) -> None:
    """Network-level checks: shapes chain, blocks are sound (:func:`golden.geometry.check_chain`),
    a readout layer is last, ``groups`` divides every chained layer's channels."""
    if not layers:
        raise ReferenceModelError("network has no layers")
    _pos_int(groups, "groups")
    for i, spec in enumerate(layers):
        if not isinstance(spec, LayerSpec):
            raise ReferenceModelError(f"layer {i}: expected a LayerSpec, got {type(spec).__name__}")
    check_chain(layers, layers[0].in_shape, ReferenceModelError)
    for i, spec in enumerate(layers):
        if spec.mode == "readout" and i != len(layers) - 1:
            raise ReferenceModelError(f"{where(i, spec)}: a readout layer must be the last layer")
        if spec.mode == "chained" and spec.out_channels % groups:
            raise ReferenceModelError(f"{where(i, spec)}: groups={groups} must divide "
                                      f"out_channels={spec.out_channels}")


def parse_scheme(scheme: str) -> tuple[bool, int]:
    """'baseline' | 'L' | 'C#N' | 'L+C#N' -> (layer_sharing, groups); see golden.memory.parse_scheme."""
    try:
        return _parse_scheme(scheme)
    except MemoryCalcError as e:
        raise ReferenceModelError(str(e)) from None


def with_scheme(layers: Sequence[LayerSpec], scheme: str) -> tuple[list, int]:
    """Re-label a layer list for a sharing scheme; returns ``(layers, groups)``.

    Readout layers are kept. ``baseline``: every LIF layer independent.
    ``C#N``: every LIF layer chained, no blocks. ``L``/``L+C#N``: maximal runs
    of consecutive LIF layers with equal output shape become blocks (a run
    of one layer gets no block).
    """
    layer_sharing, groups = parse_scheme(scheme)
    out = []
    for spec in layers:
        if spec.mode == "readout":
            out.append(replace(spec, block=None))
        elif scheme == "baseline":
            out.append(replace(spec, mode="independent", block=None))
        else:
            out.append(replace(spec, mode="chained", block=None))
    if layer_sharing:
        i = 0
        while i < len(out):
            j = i
            while (j + 1 < len(out) and out[j + 1].mode == "chained" and out[i].mode == "chained"
                   and out[j + 1].out_shape == out[i].out_shape):
                j += 1
            if j > i:
                for k in range(i, j + 1):
                    out[k] = replace(out[k], block=i)
            i = j + 1
    return out, groups


# --------------------------------------------------------------------- network
@dataclass
class NetTrace:
    """Everything one forward pass produced, per layer, time-major.

    ``spikes[l]``, ``membranes[l]`` (U before reset), ``currents[l]`` (X):
    tensors [T, B, *out_shape]; for a readout layer ``spikes`` and
    ``membranes`` are None. ``final[l]``: V' carried out of the layer's last
    step (shape of one group's state), None for readout layers.
    ``output``: read-out current summed over T [B, *out_shape] (or the last
    layer's spike count if it is not a readout layer).
    """

    spikes: list = field(default_factory=list)
    membranes: list = field(default_factory=list)
    currents: list = field(default_factory=list)
    final: list = field(default_factory=list)
    output: Optional[torch.Tensor] = None
    per_step: Optional[torch.Tensor] = None


class EfficientLIFNet(nn.Module):
    """A feed-forward SNN built from a list of :class:`LayerSpec`.

    ``groups``: C#N group count of every chained layer. ``params``: neuron
    constants. ``backward``: "autograd" (plain BPTT, stores every membrane)
    or "reversible" (paper §4.3, :mod:`golden.reversible`; soft reset only),
    with ``checkpoint_every`` = K (store a membrane every K reverse steps;
    None = only the chain's last one).

    ``forward(spikes[T, B, *in_shape]) -> [B, *out_shape]``: read-out current
    summed over T (``per_step=True``: [T, B, *out_shape]).
    ``run(spikes, record=True) -> NetTrace`` also returns every layer's
    spikes, membranes and currents.
    """

    def __init__(self, layers: Sequence[LayerSpec], groups: int = 1,
                 params: LIFParams = LIFParams(), backward: str = "autograd",
                 checkpoint_every: Optional[int] = None, init_gain: float = 2.0,
                 dtype: torch.dtype = torch.float32, direct_input: bool = False):
        super().__init__()
        layers = list(layers)
        validate_layers(layers, groups)
        if not isinstance(params, LIFParams):
            raise ReferenceModelError(f"params: expected LIFParams, got {type(params).__name__}")
        if backward not in ("autograd", "reversible"):
            raise ReferenceModelError(f"backward={backward!r}: must be 'autograd' or 'reversible'")
        if backward == "reversible" and params.reset != "soft":
            raise ReferenceModelError("backward='reversible' needs reset='soft': a hard reset "
                                 "destroys the residual membrane the reverse step recomputes from")
        if not isinstance(direct_input, bool):
            raise ReferenceModelError(f"direct_input={direct_input!r}: must be True or False")
        if backward == "reversible" and (direct_input or any(s.bias or s.pool > 1 or s.skip is not None
                                                             for s in layers)):
            raise ReferenceModelError("backward='reversible' does not support bias, input "
                                      "pooling, residual (skip) inputs or direct input; use "
                                      "backward='autograd'")
        if checkpoint_every is not None:
            _pos_int(checkpoint_every, "checkpoint_every")
        self.layers = layers
        self.groups = groups
        self.params = params
        self.backward_mode = backward
        self.checkpoint_every = checkpoint_every
        self.direct_input = direct_input
        gen = torch.Generator().manual_seed(0)
        self.weights = nn.ParameterList([
            nn.Parameter(torch.randn(s.weight_shape, generator=gen, dtype=dtype)
                         * (init_gain / math.sqrt(s.fan_in)))
            for s in layers])
        # only layers with a bias have one (models without bias keep their state_dict)
        self.biases = nn.ParameterDict({str(i): nn.Parameter(torch.zeros(s.out_channels, dtype=dtype))
                                        for i, s in enumerate(layers) if s.bias})
        # shortcut weights of the layers with a residual (skip) input
        self.skip_weights = nn.ParameterDict({
            str(i): nn.Parameter(torch.randn(s.skip_weight_shape, generator=gen, dtype=dtype)
                                 * (init_gain / math.sqrt(math.prod(s.skip_weight_shape[1:]))))
            for i, s in enumerate(layers) if s.skip is not None})
        self._chains = self._plan_chains()

    # ------------------------------------------------------------- structure
    def lif_groups(self, index: int) -> int:
        """Number of chained groups of layer ``index`` (1 for independent layers)."""
        return self.groups if self.layers[index].mode == "chained" else 1

    def _plan_chains(self) -> list:
        """Map each LIF layer to (chain id, position in block, block size); None for readout."""
        plan = [None] * len(self.layers)
        for chain, unit in enumerate(sharing_units(self.layers)):
            for pos, i in enumerate(unit):
                plan[i] = (chain, pos, len(unit))
        return plan

    def state_shape(self, index: int) -> tuple:
        """Shape of one group's membrane state of layer ``index`` (no batch)."""
        c, *rest = self.layers[index].out_shape
        return (c // self.lif_groups(index), *rest)

    def chain_length(self, index: int, timesteps: int) -> int:
        """Number of LIF steps (groups x layers x timesteps) in layer ``index``'s chain."""
        chain, _, size = self._chains[index]
        return timesteps * size * self.lif_groups(index)

    def _synapse(self, i: int, o_in: torch.Tensor, outs: Optional[list] = None) -> torch.Tensor:
        """X = W·O (+ W_s·O_skip for a residual layer; + b broadcast over positions when layer
        ``i`` has a bias). ``outs[j]``: the spikes layer j emitted this timestep."""
        spec = self.layers[i]
        x = synapse(spec, o_in, self.weights[i])
        if spec.skip is not None:
            x = x + synapse(spec.skip_geometry, outs[spec.skip], self.skip_weights[str(i)])
        if spec.bias:
            b = self.biases[str(i)]
            x = x + (b.view(1, -1, 1, 1) if spec.kind == "conv" else b.view(1, -1))
        return x

    # --------------------------------------------------------------- running
    def check_input(self, spikes: torch.Tensor) -> None:
        want = self.layers[0].in_shape
        if not isinstance(spikes, torch.Tensor):
            raise ReferenceModelError(f"input spikes: expected a torch.Tensor, got {type(spikes).__name__}")
        if spikes.dim() != 2 + len(want) or tuple(spikes.shape[2:]) != want:
            raise ReferenceModelError(f"input spikes: shape {tuple(spikes.shape)} is not [T, B, *{want}]")
        if spikes.shape[0] < 1 or spikes.shape[1] < 1:
            raise ReferenceModelError(f"input spikes: shape {tuple(spikes.shape)} has an empty T or B axis")
        if self.direct_input:
            if not bool(torch.isfinite(spikes).all()):
                raise ReferenceModelError("direct input: values must be finite")
        elif not bool(((spikes == 0) | (spikes == 1)).all()):
            raise ReferenceModelError("input spikes: values must be 0 or 1")

    def forward(self, spikes: torch.Tensor, per_step: bool = False) -> torch.Tensor:
        trace = self.run(spikes, record=False)
        return trace.per_step if per_step else trace.output

    def run(self, spikes: torch.Tensor, record: bool = True) -> NetTrace:
        self.check_input(spikes)
        dtype = self.weights[0].dtype
        spikes = spikes.to(dtype)
        T, B = spikes.shape[:2]
        p = self.params
        trace = NetTrace()
        n = len(self.layers)
        rec_s = [[] for _ in range(n)]
        rec_u = [[] for _ in range(n)]
        rec_x = [[] for _ in range(n)]
        state: dict = {}      # chain id -> V carried
        steps: dict = {}      # chain id -> index of the next group step in the chain
        tapes: dict = {}      # chain id -> reversible tape
        reversible = self.backward_mode == "reversible" and torch.is_grad_enabled()
        outs = []
        final = [None] * n
        for t in range(T):
            o_in = spikes[t]
            o_of = [None] * n                              # spikes of each layer at step t
            for i, spec in enumerate(self.layers):
                w = self.weights[i]
                if spec.pool > 1:                          # OR of 0/1 spikes = max
                    o_in = F.max_pool2d(o_in, spec.pool)
                if spec.mode == "readout":
                    x = rev.SpikeSynapse.apply(o_in, w, spec) if reversible else self._synapse(i, o_in)
                    outs.append(x)
                    if record:
                        rec_x[i].append(x)
                    continue
                chain = self._chains[i][0]
                ng = self.lif_groups(i)
                v = state.get(chain)
                if v is None:
                    v = torch.zeros((B, *self.state_shape(i)), dtype=dtype)
                else:
                    v = v.reshape(B, *self.state_shape(i))
                if reversible:
                    if chain not in tapes:
                        tapes[chain] = rev.ChainTape(self.chain_length(i, T), self.checkpoint_every)
                    o, v, u, x = rev.rev_layer_step(tapes[chain], steps.get(chain, 0), v, o_in, w,
                                                    spec, ng, p, record)
                else:
                    x = self._synapse(i, o_in, o_of)
                    us, os_ = [], []
                    for xg in x.chunk(ng, dim=1):
                        u, og, v = lif_step(v, xg, p)
                        us.append(u)
                        os_.append(og)
                    o = os_[0] if ng == 1 else torch.cat(os_, dim=1)
                    u = us[0] if ng == 1 else torch.cat(us, dim=1)
                steps[chain] = steps.get(chain, 0) + ng
                state[chain] = v
                final[i] = v
                if record:
                    rec_s[i].append(o)
                    rec_u[i].append(u)
                    rec_x[i].append(x)
                o_of[i] = o
                o_in = o
            if self.layers[-1].mode != "readout":
                outs.append(o_in)
        trace.per_step = torch.stack(outs)
        trace.output = trace.per_step.sum(0)
        if record:
            for i, spec in enumerate(self.layers):
                lif = spec.mode != "readout"
                trace.spikes.append(torch.stack(rec_s[i]) if lif else None)
                trace.membranes.append(torch.stack(rec_u[i]) if lif and rec_u[i][0] is not None else None)
                trace.currents.append(torch.stack(rec_x[i]))
            trace.final = final
        return trace
