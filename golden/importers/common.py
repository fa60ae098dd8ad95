"""Framework-neutral part of the PyTorch importers: run the model, record what it does, map it.

:func:`trace_and_map` runs the user's ``nn.Module`` once on an example input
under a :class:`torch.overrides.TorchFunctionMode` plus forward hooks on every
submodule, and records the data flow between three kinds of values:

* the *current* of a synaptic layer (an ``nn.Linear`` / ``nn.Conv2d`` call),
  and channel slices of it (``x[:, a:b]``, ``chunk``, ``split`` on dim 1);
* the *spikes* of a neuron call (one framework neuron module applied to a
  current or a slice of one), reassembled by ``torch.cat(..., dim=1)`` and
  flattened (``flatten``, ``view``/``reshape`` to ``[B, -1]``, ``nn.Flatten``);
* a BatchNorm (``BatchNorm1d`` after a Linear, ``BatchNorm2d`` after a
  Conv2d; eval mode, running statistics) applied to a layer's whole output
  is folded into the layer: ``s = γ/sqrt(var + eps)``, weights ``W·s``, bias
  ``s·(b − mean) + β`` (``b`` the layer's own bias, 0 without), in float64;
* a ``MaxPool2d(k)`` / ``F.max_pool2d(x, k)`` (stride k, no padding or
  dilation, floor mode) of a layer's whole spike map becomes the ``pool`` field of the layer that takes
  the pooled spikes (:mod:`golden.geometry`);
* anything else computed from those ("opaque": a sum, an average pooling,
  an activation...). An opaque value that reaches a layer or a neuron is
  refused with one line naming the module and what fed it.

Everything computed before the first synaptic layer is input encoding: the
tensors the first layer receives must be 0/1 (else: direct analog input, not
supported yet) and are returned as the imported network's input spikes.

The structure is then read off the record, never assumed:

* layers are the synaptic modules in the order of their first call; each is
  called once per timestep, on the spikes of the previous layer of the same
  timestep; ``T`` is the number of calls of the first layer;
* a layer whose current no neuron consumes is a readout layer (must be last);
* the neuron calls on one layer at one timestep must cover its channels with
  N contiguous, ascending, equal slices: N > 1 is C#N (``mode="chained"``,
  ``groups = N``, one N for the whole network), N = 1 ``"independent"``;
* every neuron call's starting membrane is identified (the state a previous
  call left, or zero). Consecutive layers whose first step starts from the
  previous layer's last step form an L block; then *every* call must start
  from exactly the membrane the project's model carries there (docs/golden.md
  "Sharing": group g-1 of the same layer, the last group of the previous
  layer of the block, the last group of the block's last layer at t-1, or
  zero at t = 0). Any other order is refused, naming the module and step.

A framework adapter (:class:`Adapter`) says which modules are its neurons,
what their parameters mean (:class:`NeuronSpec`), and where a call's starting
and final membrane live. The result is an :class:`Imported`: the float64
:class:`golden.reference.EfficientLIFNet` (input gains folded into the
weights), the input spikes, and the framework's own per-layer record
(:class:`FrameworkTrace`) for conformance checks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Optional

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from ..errors import ProjectError
from ..lif import LIFParams
from ..reference import EfficientLIFNet, LayerSpec

__all__ = ["ImporterError", "NeuronSpec", "Adapter", "FrameworkTrace", "Imported", "trace_and_map", "fold_batchnorm",
           "missing_operator", "fold_avg"]


class ImporterError(ProjectError, ValueError):
    """A model, graph or option the importers cannot map exactly. The message names the module or node."""


@dataclass(frozen=True)
class NeuronSpec:
    """What one framework neuron computes, in the project's terms (docs/importing.md).

    ``leak`` λ, ``gain`` (input gain folded into the weights of the layer
    feeding it), ``theta`` θ, ``reset`` "soft"|"hard", ``fire`` "gt"|"ge",
    ``detach_reset``, ``alpha`` (surrogate sharpness, gradients only).
    """

    leak: float
    gain: float
    theta: float
    reset: str
    fire: str
    detach_reset: bool = True
    alpha: float = 2.0

    def lif_params(self) -> LIFParams:
        return LIFParams(leak=self.leak, theta=self.theta, fire=self.fire, reset=self.reset,
                         alpha=self.alpha, detach_reset=self.detach_reset)


class Adapter:
    """Framework hooks used by :func:`trace_and_map` (one subclass per framework)."""

    framework = "framework"

    def neuron(self, module: nn.Module, name: str) -> Optional[NeuronSpec]:
        """The :class:`NeuronSpec` of a supported neuron module, None for a non-neuron;
        raises :class:`ImporterError` naming ``name`` for a neuron it cannot map."""
        raise NotImplementedError

    def current_in(self, args: tuple, kwargs: dict) -> Any:
        return args[0] if args else None

    def start_state(self, module: nn.Module, name: str, args: tuple, kwargs: dict, x) -> Any:
        """The membrane tensor the call starts from, or None when it starts from zero."""
        raise NotImplementedError

    def state_after(self, module: nn.Module, output) -> Any:
        """The membrane tensor the call leaves for the next one."""
        raise NotImplementedError

    def spikes_out(self, output) -> torch.Tensor:
        return output[0] if isinstance(output, (tuple, list)) else output

    def membrane_out(self, module: nn.Module, output) -> Optional[torch.Tensor]:
        """U (before reset) of the call, if the framework exposes it; else None."""
        return None

    def reset(self, model: nn.Module) -> None:
        """Put every neuron of ``model`` back to its zero state."""
        raise NotImplementedError


# ------------------------------------------------------------------ records
@dataclass(frozen=True)
class _Tag:
    kind: str              # "current" | "spikes" | "opaque" | "membrane"
    layer: int = -1
    t: int = -1
    c0: int = 0
    c1: int = 0
    flat: bool = False
    what: str = ""
    bn: bool = False       # current: a folded BatchNorm has been applied
    pool: int = 1          # spikes: max-pooled over pool x pool windows
    avg: tuple = ()        # spikes: average/sum-pooled, (kh, kw, divisor, (C, H, W) before)
    res: bool = False      # current: the residual (shortcut) sum has been added


@dataclass
class _LayerRec:
    module: nn.Module
    name: str
    kind: str
    inputs: list = field(default_factory=list)     # input tensor per timestep
    outputs: list = field(default_factory=list)    # current per timestep (after a folded BatchNorm)
    bn: Optional[nn.Module] = None                 # the BatchNorm folded into this layer
    bn_name: str = ""
    bn_steps: set = field(default_factory=set)     # timesteps at which it was applied
    pool: Optional[int] = None                     # input max pooling (None: not seen yet)
    avg: Optional[tuple] = None                    # input average pooling folded into the weights
    static: bool = False                           # computed once, its current used every timestep
    skip: Optional[int] = None                     # index into _Tracer.skips of its shortcut
    identity_from: Optional[int] = None            # identity shortcut: the source layer
    res_steps: set = field(default_factory=set)    # timesteps at which the shortcut was added
    source: Optional[int] = None                   # a shortcut's source layer (its input spikes)


@dataclass
class _Call:
    module: nn.Module
    name: str
    spec: NeuronSpec
    layer: int
    t: int
    c0: int
    c1: int
    pred: Optional[int]
    pred_what: str
    spikes: Optional[torch.Tensor] = None
    membrane: Optional[torch.Tensor] = None


@dataclass
class FrameworkTrace:
    """What the framework's own forward computed, per layer, time-major [T, B, *out_shape].

    ``currents[l]``: the synaptic layer's output as the framework computed it
    (before the input gain is folded). ``spikes[l]`` / ``membranes[l]``: the
    neuron outputs reassembled over the channel slices (None for a readout
    layer; ``membranes`` also None where the framework does not expose U).
    """

    currents: list
    spikes: list
    membranes: list


@dataclass
class Imported:
    """Result of an importer: ``model`` (float64 EfficientLIFNet), ``spikes`` [T, B, *in_shape]
    (the input spikes the first layer received), ``trace`` (:class:`FrameworkTrace`),
    ``modules`` (per layer: the synaptic module name and the neuron module names), ``notes``."""

    model: EfficientLIFNet
    spikes: torch.Tensor
    trace: FrameworkTrace
    modules: list
    notes: list

    @property
    def params(self) -> LIFParams:
        return self.model.params

    @property
    def groups(self) -> int:
        return self.model.groups


# ---------------------------------------------------------------- helpers
_PASS = {"clone", "detach", "contiguous", "float", "double", "to", "type_as", "requires_grad_"}
_FLATTEN = {"flatten", "view", "reshape"}
_CAT = {"cat", "concat", "concatenate"}
_SPLIT = {"chunk", "split", "tensor_split"}
_ADD = {"add", "__add__", "__radd__"}
_BN = (nn.modules.batchnorm._BatchNorm,)
_POOL = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
         nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool1d,
         nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d, nn.LPPool2d)


def missing_operator(what: str) -> str:
    """The hint for an operation the project does not have yet (issue 11), from its description."""
    w = what.lower()
    if "pool" in w:
        return ("only MaxPool2d of a layer's spikes and average pooling folded into the next layer "
                "are supported")
    if "batch_norm" in w or "batchnorm" in w:
        return "BatchNorm folds only directly after a Linear/Conv2d layer"
    if any(k in w for k in ("add", "sum", "sub")):
        return ("the only sum supported is a residual one: a layer's output plus a shortcut (identity, "
                "or Linear/Conv2d [+ BatchNorm]) of an earlier layer's spikes")
    return "only Linear/Conv2d layers, channel slices, cat and flatten are supported between neurons"


def _tensors(obj) -> list:
    out = []
    if isinstance(obj, torch.Tensor):
        out.append(obj)
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            out.extend(_tensors(o))
    elif isinstance(obj, dict):
        for o in obj.values():
            out.extend(_tensors(o))
    return out


def _func_name(func) -> str:
    name = getattr(func, "__name__", None) or str(func)
    if name == "__get__":          # property getters (Tensor.shape, ...)
        name = getattr(getattr(func, "__self__", None), "__name__", "property")
    return name


def _channel_slice(index, c: int):
    """(c0, c1) when ``index`` selects all of dim 0 and a contiguous channel range of dim 1, else None."""
    if not isinstance(index, tuple) or len(index) < 2:
        return None
    first, ch, *rest = index
    if not (isinstance(first, slice) and first == slice(None)):
        return None
    if not isinstance(ch, slice) or ch.step not in (None, 1):
        return None
    if not all(r is Ellipsis or (isinstance(r, slice) and r == slice(None)) for r in rest):
        return None
    r = range(c)[ch]
    if len(r) == 0:
        return None
    return r.start, r.stop


def _conv_geometry(m: nn.Conv2d, name: str):
    """(kernel, stride, padding) of a Conv2d the project can run, else ImporterError."""
    who = f"module {name!r} (Conv2d)"
    if m.groups != 1:
        raise ImporterError(f"{who}: grouped convolution (groups={m.groups}) is not supported")
    if tuple(m.dilation) != (1, 1):
        raise ImporterError(f"{who}: dilation {tuple(m.dilation)} is not supported")
    if m.padding_mode != "zeros":
        raise ImporterError(f"{who}: padding_mode={m.padding_mode!r} is not supported (zeros only)")
    kh, kw = m.kernel_size
    sh, sw = m.stride
    pad = m.padding
    if isinstance(pad, str):
        if pad == "valid":
            pad = (0, 0)
        elif pad == "same" and kh % 2 and kw % 2:
            pad = ((kh - 1) // 2, (kw - 1) // 2)
        else:
            raise ImporterError(f"{who}: padding={pad!r} with kernel {m.kernel_size} is not supported")
    ph, pw = pad
    if kh != kw or sh != sw or ph != pw:
        raise ImporterError(f"{who}: kernel {m.kernel_size}, stride {m.stride}, padding {m.padding}: "
                            f"only square kernels with equal stride and padding on both axes")
    return kh, sh, ph


def fold_batchnorm(weight: torch.Tensor, bias: Optional[torch.Tensor], bn: nn.Module) -> tuple:
    """``(W', b')`` in float64 with ``W'·x + b' = bn(W·x + b)`` for an eval-mode BatchNorm:
    ``s = γ/sqrt(running_var + eps)`` (γ = 1 without affine), ``W' = W·s`` per output
    channel, ``b' = s·(b − running_mean) + β`` (β = 0 without affine, b = 0 without bias)."""
    w = weight.detach().to(torch.float64)
    var = bn.running_var.detach().to(torch.float64)
    mean = bn.running_mean.detach().to(torch.float64)
    gamma = bn.weight.detach().to(torch.float64) if bn.affine else torch.ones_like(var)
    beta = bn.bias.detach().to(torch.float64) if bn.affine else torch.zeros_like(var)
    s = gamma / torch.sqrt(var + bn.eps)
    b = torch.zeros_like(var) if bias is None else bias.detach().to(torch.float64)
    return w * s.view(-1, *([1] * (w.dim() - 1))), s * (b - mean) + beta


# ------------------------------------------------------------------ tracer
class _Tracer(TorchFunctionMode):
    def __init__(self, adapter: Adapter, names: dict):
        super().__init__()
        self.adapter = adapter
        self.names = names
        self.tags: dict = {}          # id(tensor) -> (tensor, _Tag)
        self.layers: list = []
        self.layer_of: dict = {}      # id(module) -> layer index
        self.skips: list = []         # shortcut convs / linears (_LayerRec), residual sums
        self.skip_of: dict = {}       # id(module) -> index into skips
        self.slice_calls: dict = {}   # (layer, t, c0, c1) -> neuron calls on that current
        self.calls: list = []
        self.state_owner: dict = {}   # id(state tensor) -> (tensor, call index)
        self.stack: list = []
        self.depth = 0
        self.busy = False

    # ---- tags
    def tag(self, t) -> Optional[_Tag]:
        if not isinstance(t, torch.Tensor):
            return None
        hit = self.tags.get(id(t))
        return hit[1] if hit is not None and hit[0] is t else None

    def put(self, t: torch.Tensor, tag: _Tag) -> None:
        self.tags[id(t)] = (t, tag)

    def name(self, m) -> str:
        return self.names.get(id(m), type(m).__name__)

    def rec_of(self, tag: _Tag) -> _LayerRec:
        return self.skips[tag.layer] if tag.kind == "shortcut" else self.layers[tag.layer]

    def describe(self, tag: _Tag) -> str:
        if tag.kind == "shortcut":
            return f"the output of the shortcut {self.skips[tag.layer].name!r}"
        if tag.kind == "current":
            rec = self.layers[tag.layer]
            return f"the output of {rec.name!r}"
        if tag.kind == "spikes":
            return f"the spikes of the neurons on {self.layers[tag.layer].name!r}"
        if tag.kind == "membrane":
            return "a neuron membrane"
        return tag.what

    # ---- functions
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if self.depth == 0 and not self.busy:
            self.busy = True
            try:
                self._on_function(func, args, kwargs, out)
            finally:
                self.busy = False
        return out

    def _on_function(self, func, args, kwargs, out) -> None:
        ins = _tensors((args, kwargs))
        tagged = [(a, self.tag(a)) for a in ins if self.tag(a) is not None]
        if not tagged:
            return
        name = _func_name(func)
        outs = _tensors(out)
        if name.endswith("_") and not name.endswith("__") and name not in _PASS and args \
                and self.tag(args[0]) is not None:
            self.put(args[0], _Tag("opaque", what=f"in-place {name} on {self.describe(self.tag(args[0]))}"))
            return
        if name.startswith("__i") and args and self.tag(args[0]) is not None:
            self.put(args[0], _Tag("opaque", what=f"in-place {name} on {self.describe(self.tag(args[0]))}"))
        if not outs:
            return
        src, tag = tagged[0]
        if name in _PASS and len(tagged) == 1 and len(outs) == 1 and outs[0].shape == src.shape:
            self.put(outs[0], tag)
            return
        if name == "__getitem__" and tag.kind == "current" and len(outs) == 1 and src is args[0]:
            sl = _channel_slice(args[1] if len(args) > 1 else None, tag.c1 - tag.c0)
            if sl is not None:
                self.put(outs[0], replace(tag, c0=tag.c0 + sl[0], c1=tag.c0 + sl[1]))
                return
        if name in _SPLIT and tag.kind == "current" and len(tagged) == 1:
            c0 = tag.c0
            ok = all(o.dim() == src.dim() and o.shape[0] == src.shape[0] and o.shape[2:] == src.shape[2:]
                     for o in outs) and sum(o.shape[1] for o in outs) == src.shape[1]
            if ok and len(outs) > 1:
                for o in outs:
                    self.put(o, replace(tag, c0=c0, c1=c0 + o.shape[1]))
                    c0 += o.shape[1]
                return
        if name in _CAT and len(outs) == 1:
            dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
            pieces = args[0] if args else kwargs.get("tensors", ())
            tags = [self.tag(p) for p in pieces]
            if dim == 1 and tags and all(t is not None and t.kind == "spikes" and not t.flat for t in tags):
                first = tags[0]
                contiguous = all(a.c1 == b.c0 for a, b in zip(tags, tags[1:]))
                same = all(t.layer == first.layer and t.t == first.t for t in tags)
                full = self.layers[first.layer].outputs[first.t].shape[1]
                if contiguous and same and first.c0 == 0 and tags[-1].c1 == full:
                    self.put(outs[0], _Tag("spikes", first.layer, first.t, 0, full))
                    return
        if name in _FLATTEN and tag.kind == "spikes" and len(outs) == 1 and src.dim() == 2 \
                and outs[0].shape == src.shape:
            self.put(outs[0], tag)                 # flattening [B, F] is a no-op
            return
        if name in _FLATTEN and tag.kind == "spikes" and len(outs) == 1 and src.dim() > 2:
            o = outs[0]
            full = self.layers[tag.layer].outputs[tag.t].shape[1]
            if (tag.c0, tag.c1) == (0, full) and o.dim() == 2 and o.shape[0] == src.shape[0] \
                    and o.shape[1] == math.prod(src.shape[1:]):
                self.put(o, replace(tag, c0=0, c1=full, flat=True))
                return
        if name in ("avg_pool2d", "adaptive_avg_pool2d") and tag.kind == "spikes" and len(tagged) == 1 \
                and len(outs) == 1 and args and src is args[0]:
            if name == "avg_pool2d":
                keys = ("input", "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad",
                        "divisor_override")
                p = dict(zip(keys, args), **kwargs)
                avg = self._avg_pool(f"avg_pool2d of {self.describe(tag)}", src, tag, p.get("kernel_size"),
                                     p.get("stride"), p.get("padding", 0), p.get("ceil_mode", False),
                                     p.get("divisor_override"))
            else:
                size = args[1] if len(args) > 1 else kwargs.get("output_size")
                avg = self._adaptive(f"adaptive_avg_pool2d of {self.describe(tag)}", src, tag, size)
            self.put(outs[0], replace(tag, avg=avg))
            return
        if name in _ADD and len(outs) == 1 and len(tagged) == 2 and len(ins) == 2:
            if self._residual(name, tagged, outs[0]):
                return
        if name == "max_pool2d" and tag.kind == "spikes" and len(tagged) == 1 and len(outs) == 1 \
                and args and src is args[0]:
            keys = ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")
            p = dict(zip(keys, args), **kwargs)
            layer, t, k = self._max_pool(f"max_pool2d of {self.describe(tag)}", src, tag,
                                         p.get("kernel_size"), p.get("stride"), p.get("padding", 0),
                                         p.get("dilation", 1), p.get("ceil_mode", False),
                                         p.get("return_indices", False))
            self.put(outs[0], _Tag("spikes", layer, t, 0, tag.c1, pool=k))
            return
        what = f"{name} of " + " and ".join(dict.fromkeys(self.describe(t) for _, t in tagged))
        for o in outs:
            self.put(o, _Tag("opaque", what=what))

    # ---- modules
    def pre(self, module, args, kwargs):
        if self.depth > 0:
            self.depth += 1
            self.stack.append(("nested", None))
            return
        self.busy = True
        try:
            entry = self._pre(module, args, kwargs)
        finally:
            self.busy = False
        if entry[0] is not None:
            self.depth += 1
        self.stack.append(entry)

    def post(self, module, args, kwargs, output):
        entry = self.stack.pop()
        if entry[0] is None:
            return
        self.depth -= 1
        if entry[0] == "nested":
            return
        self.busy = True
        try:
            self._post(module, entry, args, output)
        finally:
            self.busy = False

    def _pre(self, module, args, kwargs):
        name = self.name(module)
        x = args[0] if args else None
        tag = self.tag(x)
        spec = self.adapter.neuron(module, name) if tag is not None else None
        if spec is not None:
            return ("neuron", self._neuron_call(module, name, spec, args, kwargs, tag))
        if isinstance(module, (nn.Linear, nn.Conv2d)) and type(module) in (nn.Linear, nn.Conv2d):
            return self._layer_call(module, name, x, tag)
        if tag is None:
            # before the first layer: input encoding. A neuron there is recorded as nothing.
            return ("encode", None) if not list(module.children()) else (None, None)
        cls = type(module).__name__
        if isinstance(module, _BN):
            return ("bn", self._bn_call(module, name, x, tag))
        if type(module) is nn.MaxPool2d and tag.kind == "spikes":
            return ("pool", self._pool_call(module, name, x, tag))
        if type(module) is nn.AvgPool2d and tag.kind == "spikes":
            return ("avgpool", self._avg_pool(f"module {name!r} (AvgPool2d) on {self.describe(tag)}", x,
                                              tag, module.kernel_size, module.stride, module.padding,
                                              module.ceil_mode, module.divisor_override))
        if type(module) is nn.AdaptiveAvgPool2d and tag.kind == "spikes":
            return ("avgpool", self._adaptive(f"module {name!r} (AdaptiveAvgPool2d) on "
                                              f"{self.describe(tag)}", x, tag, module.output_size))
        if isinstance(module, nn.Sequential) and not len(module):
            return ("pass", None)          # an empty Sequential returns its input (identity shortcut)
        if isinstance(module, _POOL):
            what = ("only AvgPool2d / AdaptiveAvgPool2d of a layer's spike map (folded into the next "
                    "layer) is supported" if "Avg" in cls or "LP" in cls else
                    "pooling is not supported yet here (only MaxPool2d of a layer's spikes)")
            raise ImporterError(f"module {name!r} ({cls}) on {self.describe(tag)}: {what}")
        if isinstance(module, (nn.Conv1d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
                               nn.ConvTranspose3d)) or isinstance(module, (nn.Linear, nn.Conv2d)):
            raise ImporterError(f"module {name!r} ({cls}): only nn.Linear and nn.Conv2d layers are supported")
        if isinstance(module, (nn.Identity, nn.modules.dropout._DropoutNd, nn.Flatten)):
            return ("pass", None)
        if list(module.children()):
            return (None, None)           # a container: look inside
        return ("opaque", None)

    def _bn_call(self, module, name, x, tag) -> int:
        """Fold check of a BatchNorm on a layer's current; returns the layer index."""
        cls = type(module).__name__
        who = f"module {name!r} ({cls}) on {self.describe(tag)}"
        if tag.kind not in ("current", "shortcut") or tag.res:
            raise ImporterError(f"{who}: BatchNorm can be folded only directly after a Linear/Conv2d "
                                f"layer (into its weights and bias)")
        rec = self.rec_of(tag)
        full = rec.outputs[tag.t].shape[1]
        if tag.bn or (tag.c0, tag.c1) != (0, full):
            raise ImporterError(f"{who}: BatchNorm can be folded only once, on the layer's whole "
                                f"output" + ("" if tag.bn else f" (it gets channels {tag.c0}:{tag.c1})"))
        want = nn.BatchNorm1d if rec.kind == "linear" else nn.BatchNorm2d
        if type(module) is not want or x.dim() != (2 if rec.kind == "linear" else 4):
            raise ImporterError(f"{who}: a {'Linear' if rec.kind == 'linear' else 'Conv2d'} layer's "
                                f"output takes {want.__name__} on [B, C{'' if rec.kind == 'linear' else ', H, W'}]")
        if module.running_mean is None or module.running_var is None:
            raise ImporterError(f"{who}: track_running_stats=False normalizes with the batch's own "
                                f"statistics even in eval mode; folding needs running statistics")
        if rec.bn is not None and rec.bn is not module:
            raise ImporterError(f"{who}: the layer's output also goes through {rec.bn_name!r}; one "
                                f"BatchNorm module per layer")
        rec.bn, rec.bn_name = module, name
        rec.bn_steps.add(tag.t)
        return tag

    def _pool_call(self, module, name, x, tag) -> tuple:
        """Check a MaxPool2d of a layer's spikes; returns (layer, t, k)."""
        who = f"module {name!r} (MaxPool2d) on {self.describe(tag)}"
        return self._max_pool(who, x, tag, module.kernel_size, module.stride, module.padding,
                              module.dilation, module.ceil_mode, module.return_indices)

    def _max_pool(self, who, x, tag, kernel_size, stride, padding, dilation, ceil_mode,
                  return_indices) -> tuple:
        """(layer, t, k) of a max pooling the project maps to ``pool = k``, else ImporterError."""
        full = self.layers[tag.layer].outputs[tag.t].shape[1]
        if tag.flat or tag.pool != 1 or tag.avg or (tag.c0, tag.c1) != (0, full) or x.dim() != 4:
            raise ImporterError(f"{who}: max pooling is supported once, on a layer's whole [B, C, H, W] "
                                f"spike map" + (" (not after an average pooling)" if tag.avg else ""))

        def pair(v):
            return tuple(v) if isinstance(v, (tuple, list)) else (v, v)

        k = pair(kernel_size)
        st = pair(stride if stride is not None and stride != [] else kernel_size)
        if (k[0] != k[1] or st != k or pair(padding) != (0, 0) or pair(dilation) != (1, 1)
                or ceil_mode or return_indices):
            raise ImporterError(f"{who}: kernel {kernel_size}, stride {stride}, padding {padding}, "
                                f"dilation {dilation}, ceil_mode={ceil_mode}: only MaxPool2d(k) (square, "
                                f"stride = kernel, no padding or dilation, floor mode) is supported")
        return (tag.layer, tag.t, int(k[0]))

    def _avg_check(self, who, x, tag) -> tuple:
        full = self.layers[tag.layer].outputs[tag.t].shape[1]
        if tag.flat or tag.avg or (tag.c0, tag.c1) != (0, full) or x.dim() != 4:
            raise ImporterError(f"{who}: average pooling is supported once, on a layer's whole "
                                f"[B, C, H, W] spike map, folded into the next Linear/Conv2d layer")
        return tuple(x.shape[1:])

    def _avg_pool(self, who, x, tag, kernel_size, stride, padding, ceil_mode, divisor) -> tuple:
        """(kh, kw, divisor, (C, H, W)) of an AvgPool2d the next layer can fold, else ImporterError."""
        shape = self._avg_check(who, x, tag)

        def pair(v):
            return tuple(v) if isinstance(v, (tuple, list)) else (v, v)

        k = pair(kernel_size)
        st = pair(stride if stride is not None and stride != [] else kernel_size)
        if st != k or pair(padding) != (0, 0) or ceil_mode:
            raise ImporterError(f"{who}: kernel {kernel_size}, stride {stride}, padding {padding}, "
                                f"ceil_mode={ceil_mode}: only non-overlapping windows (stride = kernel, "
                                f"no padding, floor mode) fold exactly into the next layer's weights")
        div = divisor if divisor else k[0] * k[1]
        return (int(k[0]), int(k[1]), int(div), shape)

    def _adaptive(self, who, x, tag, output_size) -> tuple:
        """An AdaptiveAvgPool2d with equal windows (output size divides the input) as ``_avg_pool``."""
        shape = self._avg_check(who, x, tag)
        _, h, w = shape
        size = tuple(output_size) if isinstance(output_size, (tuple, list)) else (output_size,) * 2
        size = tuple(d if d is not None else full for d, full in zip(size, (h, w)))
        if h % size[0] or w % size[1]:
            raise ImporterError(f"{who}: output size {output_size} does not divide the {h}x{w} input; "
                                f"only equal windows fold exactly into the next layer's weights")
        kh, kw = h // size[0], w // size[1]
        return (kh, kw, kh * kw, shape)

    def _residual(self, name, tagged, out) -> bool:
        """``current + shortcut``: tag ``out`` as the current of the layer, record the shortcut."""
        kinds = sorted(t.kind for _, t in tagged)
        if kinds not in (["current", "shortcut"], ["current", "spikes"]):
            return False
        (cur_t, cur), (oth_t, oth) = sorted(tagged, key=lambda p: p[1].kind != "current")
        rec = self.layers[cur.layer]
        who = f"the residual sum {name} of {self.describe(cur)} and {self.describe(oth)}"
        full = rec.outputs[cur.t].shape[1]
        if cur.res or (cur.c0, cur.c1) != (0, full) or cur_t.shape != out.shape:
            raise ImporterError(f"{who}: a shortcut can be added once, to a layer's whole output")
        if oth.kind == "shortcut":
            if oth.t != cur.t:
                raise ImporterError(f"{who}: the shortcut is of timestep {oth.t}, the layer's output of "
                                    f"timestep {cur.t}")
            if rec.skip is not None and rec.skip != oth.layer:
                raise ImporterError(f"{who}: the layer already takes the shortcut "
                                    f"{self.skips[rec.skip].name!r}")
            rec.skip = oth.layer
        else:
            sfull = self.layers[oth.layer].outputs[oth.t].shape[1]
            if oth.flat or oth.pool != 1 or oth.avg or (oth.c0, oth.c1) != (0, sfull) \
                    or oth_t.shape != cur_t.shape:
                raise ImporterError(f"{who}: an identity shortcut must add a whole, unpooled spike map "
                                    f"of the layer's output shape {tuple(cur_t.shape[1:])}")
            if oth.t != cur.t:
                raise ImporterError(f"{who}: the spikes are of timestep {oth.t}, the layer's output of "
                                    f"timestep {cur.t}")
            if rec.identity_from is not None and rec.identity_from != oth.layer:
                raise ImporterError(f"{who}: the identity shortcut comes from another layer at another "
                                    f"timestep")
            rec.identity_from = oth.layer
        if rec.bn is not None and not cur.bn:
            raise ImporterError(f"{who}: the shortcut is added before the layer's BatchNorm "
                                f"{rec.bn_name!r}; add it after")
        rec.res_steps.add(cur.t)
        rec.outputs[cur.t] = out.detach().clone()          # the current the neurons see
        self.put(out, replace(cur, res=True))
        return True

    def _shortcut_call(self, module, name, x, tag, idx):
        """A Linear/Conv2d fed by the spikes of an earlier layer: a residual shortcut."""
        si = self.skip_of.get(id(module))
        if si is None:
            kind = "linear" if isinstance(module, nn.Linear) else "conv"
            if kind == "conv":
                _conv_geometry(module, name)
            si = len(self.skips)
            self.skips.append(_LayerRec(module, name, kind, source=tag.layer))
            self.skip_of[id(module)] = si
        sk = self.skips[si]
        full = self.layers[tag.layer].outputs[tag.t].shape[1]
        t = len(sk.inputs)
        if tag.layer != sk.source or tag.t != t or tag.flat or tag.pool != 1 or tag.avg \
                or (tag.c0, tag.c1) != (0, full):
            raise ImporterError(f"module {name!r} (call {t}, a shortcut) is fed by {self.describe(tag)} at "
                                f"timestep {tag.t}; a shortcut must take all unpooled spikes of one layer "
                                f"at the current timestep")
        sk.inputs.append(x.detach().clone())
        return si

    def _layer_call(self, module, name, x, tag):
        if id(module) in self.skip_of or (
                id(module) not in self.layer_of and tag is not None and tag.kind == "spikes"
                and self.layers and tag.layer < len(self.layers) - 1):
            return ("shortcut", self._shortcut_call(module, name, x, tag, None))
        idx = self.layer_of.get(id(module))
        if idx is None:
            kind = "linear" if isinstance(module, nn.Linear) else "conv"
            if kind == "conv":
                _conv_geometry(module, name)
            idx = len(self.layers)
            self.layers.append(_LayerRec(module, name, kind))
            self.layer_of[id(module)] = idx
        rec = self.layers[idx]
        t = len(rec.inputs)
        if idx == 0:
            if tag is not None:
                raise ImporterError(f"module {name!r}: the first layer takes {self.describe(tag)}")
        else:
            prev = self.layers[idx - 1].name
            if tag is None:
                raise ImporterError(f"module {name!r} is fed by a value not computed from the spikes of "
                                    f"{prev!r} (skip connections and direct input to later layers are "
                                    f"not supported)")
            if tag.kind == "opaque":
                raise ImporterError(f"module {name!r} is fed by {tag.what}: {missing_operator(tag.what)}")
            if tag.kind != "spikes":
                raise ImporterError(f"module {name!r} is fed by {self.describe(tag)}; a layer must take "
                                    f"the spikes of the previous layer's neurons")
            full = self.layers[tag.layer].outputs[tag.t].shape[1]
            if tag.layer != idx - 1 or tag.t != t or (tag.c0, tag.c1) != (0, full):
                raise ImporterError(
                    f"module {name!r} (call {t}) is fed by the spikes of {self.layers[tag.layer].name!r} "
                    f"at timestep {tag.t}"
                    + ("" if (tag.c0, tag.c1) == (0, full) else f", channels {tag.c0}:{tag.c1} only")
                    + f"; expected all spikes of {prev!r} at timestep {t} (a layer module may be used "
                    f"once per timestep, in one place)")
        if idx > 0:
            if rec.pool is not None and rec.pool != tag.pool:
                raise ImporterError(f"module {name!r} (call {t}) takes spikes max-pooled over {tag.pool}, "
                                    f"at call 0 over {rec.pool}; the pooling must be the same every timestep")
            rec.pool = tag.pool
            avg = tag.avg or None
            if t and rec.avg != avg:
                raise ImporterError(f"module {name!r} (call {t}) takes spikes average-pooled as {avg}, at "
                                    f"call 0 as {rec.avg}; the pooling must be the same every timestep")
            rec.avg = avg
        rec.inputs.append(x.detach().clone())
        return ("layer", idx)

    def _neuron_call(self, module, name, spec, args, kwargs, tag):
        if tag.kind == "opaque":
            raise ImporterError(f"neuron module {name!r} is fed by {tag.what}: {missing_operator(tag.what)}")
        if tag.kind != "current":
            raise ImporterError(f"neuron module {name!r} is fed by {self.describe(tag)}; a neuron must take "
                                f"the output of one Linear/Conv2d layer or a channel slice of it")
        bn = self.layers[tag.layer].bn
        if bn is not None and not tag.bn:
            raise ImporterError(f"neuron module {name!r} takes the output of {self.layers[tag.layer].name!r} "
                                f"without its BatchNorm {self.layers[tag.layer].bn_name!r}; a folded "
                                f"BatchNorm must apply at every timestep")
        rec = self.layers[tag.layer]
        if (rec.skip is not None or rec.identity_from is not None) and not tag.res:
            raise ImporterError(f"neuron module {name!r} takes the output of {rec.name!r} without its "
                                f"residual shortcut; the shortcut must be added at every timestep")
        key = (tag.layer, tag.t, tag.c0, tag.c1)
        again = self.slice_calls.get(key, 0)
        self.slice_calls[key] = again + 1
        if again:
            # the same current fed to the neurons again: a layer computed once (direct input,
            # the authors' static_x = bn1(conv1(image))), its current reused every timestep
            if tag.layer != 0 or not (rec.static or len(rec.outputs) == 1) or rec.skip is not None:
                raise ImporterError(f"neuron module {name!r} takes the same output of {rec.name!r} "
                                    f"(timestep {tag.t}, channels {tag.c0}:{tag.c1}) a second time; only "
                                    f"the first layer may be computed once and reused every timestep")
            rec.static = True
            tag = replace(tag, t=again)
            while len(rec.outputs) <= again:
                rec.outputs.append(rec.outputs[0])
                rec.inputs.append(rec.inputs[0])
        x = self.adapter.current_in(args, kwargs)
        start = self.adapter.start_state(module, name, args, kwargs, x)
        pred, pred_what = None, "zero"
        if start is not None:
            hit = self.state_owner.get(id(start))
            if hit is not None and hit[0] is start:
                pred = hit[1]
                c = self.calls[pred]
                pred_what = self._call_what(c)
            elif bool((start.detach() == 0).all()):
                pred, pred_what = None, "zero"
            else:
                raise ImporterError(f"neuron module {name!r} starts from a non-zero membrane that no earlier "
                                    f"step of the traced run produced; reset the model's state first")
        self.calls.append(_Call(module, name, spec, tag.layer, tag.t, tag.c0, tag.c1, pred, pred_what))
        return len(self.calls) - 1

    def _call_what(self, c: _Call) -> str:
        return (f"the membrane {c.name!r} left on {self.layers[c.layer].name!r} at timestep {c.t}, "
                f"channels {c.c0}:{c.c1}")

    def _post(self, module, entry, args, output):
        kind, info = entry
        if kind in ("layer", "shortcut"):
            rec = (self.layers if kind == "layer" else self.skips)[info]
            out = _tensors(output)[0]
            rec.outputs.append(out.detach().clone())
            self.put(out, _Tag("current" if kind == "layer" else "shortcut", info, len(rec.outputs) - 1,
                               0, out.shape[1]))
        elif kind == "bn":
            tag = info
            rec = self.rec_of(tag)
            out = _tensors(output)[0]
            rec.outputs[tag.t] = out.detach().clone()          # the current the neurons see
            self.put(out, replace(tag, bn=True))
        elif kind == "avgpool":
            src = self.tag(args[0])
            self.put(_tensors(output)[0], replace(src, avg=info))
        elif kind == "pool":
            layer, t, k = info
            out = _tensors(output)[0]
            self.put(out, _Tag("spikes", layer, t, 0, self.layers[layer].outputs[t].shape[1], pool=k))
        elif kind == "neuron":
            c = self.calls[info]
            spk = self.adapter.spikes_out(output)
            c.spikes = spk.detach().clone()
            self.put(spk, _Tag("spikes", c.layer, c.t, c.c0, c.c1))
            mem = self.adapter.membrane_out(module, output)
            if mem is not None:
                c.membrane = mem.detach().clone()
            st = self.adapter.state_after(module, output)
            if isinstance(st, torch.Tensor):
                self.state_owner[id(st)] = (st, info)
                if self.tag(st) is None:
                    self.put(st, _Tag("membrane"))
        elif kind == "pass":
            outs = _tensors(output)
            src = args[0] if args else None
            tag = self.tag(src)
            if tag is not None and len(outs) == 1:
                o = outs[0]
                if isinstance(module, nn.Flatten):
                    full = self.layers[tag.layer].outputs[tag.t].shape[1] if tag.kind == "spikes" else -1
                    if (tag.kind == "spikes" and module.start_dim == 1 and module.end_dim == -1
                            and (tag.c0, tag.c1) == (0, full) and o.dim() == 2):
                        self.put(o, replace(tag, flat=tag.flat or src.dim() > 2))
                    else:
                        self.put(o, _Tag("opaque", what=f"module {self.name(module)!r} (Flatten) of "
                                                         f"{self.describe(tag)}"))
                else:
                    self.put(o, tag)
        elif kind == "opaque":
            what = f"module {self.name(module)!r} ({type(module).__name__})"
            for o in _tensors(output):
                self.put(o, _Tag("opaque", what=what))


def _prehook(tracer):
    def hook(module, args, kwargs):
        tracer.pre(module, args, kwargs)
    return hook


def _posthook(tracer):
    def hook(module, args, kwargs, output):
        tracer.post(module, args, kwargs, output)
    return hook


# ----------------------------------------------------------------- mapping
def _run(model: nn.Module, adapter: Adapter, example_input, timesteps: Optional[int]) -> _Tracer:
    names = {id(m): (n or type(m).__name__) for n, m in model.named_modules()}
    tracer = _Tracer(adapter, names)
    handles = []
    was_training = model.training
    for m in model.modules():
        handles.append(m.register_forward_pre_hook(_prehook(tracer), with_kwargs=True))
        handles.append(m.register_forward_hook(_posthook(tracer), with_kwargs=True))
    try:
        model.eval()
        adapter.reset(model)
        with torch.no_grad(), tracer:
            if timesteps is None:
                args = example_input if isinstance(example_input, tuple) else (example_input,)
                model(*args)
            else:
                if not isinstance(example_input, torch.Tensor) or example_input.dim() < 1 \
                        or example_input.shape[0] != timesteps:
                    raise ImporterError(f"timesteps={timesteps}: example_input must be a tensor "
                                        f"[T={timesteps}, ...] fed one step per call")
                for t in range(timesteps):
                    model(example_input[t])
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
        adapter.reset(model)
    return tracer


def _params_of(calls: list) -> NeuronSpec:
    first = calls[0]
    for c in calls[1:]:
        for fld in ("leak", "theta", "reset", "fire", "detach_reset"):
            a, b = getattr(first.spec, fld), getattr(c.spec, fld)
            if a != b:
                raise ImporterError(f"neuron module {c.name!r}: {fld}={b!r} differs from {fld}={a!r} of "
                                    f"{first.name!r}; the project has one set of neuron parameters per "
                                    f"network")
    return first.spec


def fold_avg(name: str, kind: str, avg: tuple, w: torch.Tensor, in_shape: tuple, k: int, st: int,
             pd: int) -> tuple:
    """Fold the average (or sum) pooling ``avg = (kh, kw, divisor, (C, H, W) before)`` of the
    input of layer ``name`` (``kind`` "linear" | "conv") into its weights, exactly.

    Linear after a ``kh×kw`` pooling of ``(C, H, W)`` spikes: ``W'[o, c, h, w] =
    W[o, c, h//kh, w//kw] / divisor`` on the unpooled map flattened (a dropped remainder row
    or column gets weight 0). Conv (kernel K, stride S, padding P) after a ``a×a`` pooling of a
    map whose sides ``a`` divides: kernel ``a·K``, stride ``a·S``, padding ``a·P``, ``W'[o, c,
    a·i + u, a·j + v] = W[o, c, i, j] / divisor``. Returns ``(W', in_shape, k, stride, padding)``;
    the division is the one float64 rounding (none when the divisor is a power of two).
    """
    kh, kw, div, (c, h, wd) = avg
    ho, wo = h // kh, wd // kw
    if kind == "linear":
        if w.shape[1] != c * ho * wo:
            raise ImporterError(f"{name}: takes {w.shape[1]} features, the average-pooled "
                                f"spikes are {c}x{ho}x{wo}")
        full = torch.zeros((w.shape[0], c, h, wd), dtype=w.dtype)
        rep = w.reshape(w.shape[0], c, ho, wo).repeat_interleave(kh, 2).repeat_interleave(kw, 3)
        full[:, :, :ho * kh, :wo * kw] = rep / div
        return full.reshape(w.shape[0], -1), (c * h * wd,), 1, 1, 0
    if kh != kw or h % kh or wd % kw:
        raise ImporterError(f"{name} (Conv2d) after a {kh}x{kw} average pooling of a {h}x{wd} "
                            f"map: folding into a conv needs a square window that divides the map")
    a = kh
    return (w.repeat_interleave(a, 2).repeat_interleave(a, 3) / div, (c, h, wd), a * k, a * st, a * pd)


def _shortcut_of(tr: _Tracer, rec: _LayerRec, li: int, T: int, n: int):
    """``(source layer, W_s, b_s, geometry kwargs)`` of layer ``li``'s residual shortcut, or None."""
    if rec.skip is None and rec.identity_from is None:
        return None
    if rec.res_steps != set(range(T)):
        missing = min(set(range(T)) - rec.res_steps)
        raise ImporterError(f"module {rec.name!r}: its residual shortcut is not added at timestep {missing}; "
                            f"it must be added at every timestep")
    if not n:
        raise ImporterError(f"module {rec.name!r}: a readout layer cannot take a residual shortcut")
    if rec.identity_from is not None:
        src = rec.identity_from
        shape = tuple(tr.layers[src].outputs[0].shape[1:])
        c = shape[0]
        if rec.kind == "linear":
            return src, torch.eye(c, dtype=torch.float64), None, {}
        return src, torch.eye(c, dtype=torch.float64).reshape(c, c, 1, 1), None, {}
    sk = tr.skips[rec.skip]
    if len(sk.outputs) != T:
        raise ImporterError(f"module {sk.name!r} (a shortcut) was called {len(sk.outputs)} times for {T} "
                            f"timesteps")
    if sk.bn is not None and sk.bn_steps != set(range(T)):
        raise ImporterError(f"module {sk.bn_name!r} is not applied to the shortcut {sk.name!r} at every "
                            f"timestep")
    if sk.kind != rec.kind:
        raise ImporterError(f"module {sk.name!r}: a {sk.kind} shortcut on the {rec.kind} layer {rec.name!r}; "
                            f"the shortcut must be of the layer's kind")
    m = sk.module
    w = m.weight.detach().to(torch.float64)
    b = None if m.bias is None else m.bias.detach().to(torch.float64)
    if sk.bn is not None:
        w, b = fold_batchnorm(w, b, sk.bn)
    geo = {}
    if sk.kind == "conv":
        k, st, pd = _conv_geometry(m, sk.name)
        geo = dict(skip_kernel=k, skip_stride=st, skip_padding=pd)
    return sk.source, w, b, geo


def trace_and_map(model: nn.Module, example_input, adapter: Adapter,
                  timesteps: Optional[int] = None) -> Imported:
    """Run ``model`` on ``example_input``, read its structure and map it (module docstring).

    ``timesteps=None``: one call ``model(example_input)`` runs every timestep
    (the model loops over time itself). ``timesteps=T``: ``example_input`` is
    [T, ...] and the model is called once per timestep on ``example_input[t]``
    (its neurons keep their state between the calls, as in the framework's
    own step-by-step use). The model is run in eval mode without gradients;
    its neuron state is reset before and after.
    """
    if not isinstance(model, nn.Module):
        raise ImporterError(f"expected a torch.nn.Module, got {type(model).__name__}")
    tr = _run(model, adapter, example_input, timesteps)
    layers, calls = tr.layers, tr.calls
    if not layers:
        raise ImporterError("the traced run called no nn.Linear or nn.Conv2d layer")
    T = len(layers[0].inputs)
    for rec in layers:
        if len(rec.outputs) != T:
            raise ImporterError(f"module {rec.name!r} was called {len(rec.outputs)} times, the first layer "
                                f"{layers[0].name!r} {T} times; every layer must run once per timestep")
    # neurons per layer and timestep
    per = {}
    for i, c in enumerate(calls):
        per.setdefault((c.layer, c.t), []).append(i)
    n_of = []
    for li, rec in enumerate(layers):
        have = [t for t in range(T) if (li, t) in per]
        if not have:
            if li != len(layers) - 1:
                raise ImporterError(f"module {rec.name!r}: no neuron takes its output, so it is a readout "
                                    f"layer, but it is not the last layer")
            n_of.append(0)
            continue
        if len(have) != T:
            missing = min(set(range(T)) - set(have))
            raise ImporterError(f"module {rec.name!r}: no neuron takes its output at timestep {missing}")
        c_out = rec.outputs[0].shape[1]
        ns = set()
        for t in range(T):
            cs = [calls[i] for i in per[(li, t)]]
            n = len(cs)
            size = c_out // n if c_out % n == 0 else None
            want = [(g * size, (g + 1) * size) for g in range(n)] if size else None
            got = [(c.c0, c.c1) for c in cs]
            if got != want:
                raise ImporterError(f"neuron module {cs[0].name!r} on {rec.name!r} at timestep {t} is called "
                                    f"on channels {', '.join(f'{a}:{b}' for a, b in got)}; C#N needs N equal "
                                    f"contiguous slices of the {c_out} channels in ascending order")
            ns.add(n)
        if len(ns) != 1:
            raise ImporterError(f"module {rec.name!r}: its neurons use different slice counts {sorted(ns)} "
                                f"at different timesteps")
        n_of.append(ns.pop())
    multi = sorted({n for n in n_of if n > 1})
    if len(multi) > 1:
        raise ImporterError(f"layers are split into {multi} channel groups; the project has one group "
                            f"count per network (C#N)")
    groups = multi[0] if multi else 1

    def first_call(li, t):
        return per[(li, t)][0]

    def last_call(li, t):
        return per[(li, t)][-1]

    # blocks: layer li joins li-1 when its first step at t=0 starts from li-1's last step
    lif_layers = [li for li, n in enumerate(n_of) if n]
    block_of = {}
    for li in lif_layers:
        prev = li - 1
        joins = (prev in block_of and calls[first_call(li, 0)].pred == last_call(prev, 0))
        block_of[li] = block_of[prev] if joins else li
    members: dict = {}
    for li in lif_layers:
        members.setdefault(block_of[li], []).append(li)
    for li in lif_layers:
        blk = members[block_of[li]]
        for t in range(T):
            ids = per[(li, t)]
            for g, ci in enumerate(ids):
                c = calls[ci]
                if g > 0:
                    want = ids[g - 1]
                elif li != blk[0]:
                    want = last_call(li - 1, t)
                elif t > 0:
                    want = last_call(blk[-1], t - 1)
                else:
                    want = None
                if c.pred != want:
                    exp = "zero" if want is None else tr._call_what(calls[want])
                    raise ImporterError(
                        f"neuron module {c.name!r} on {layers[li].name!r} at timestep {t}, channels "
                        f"{c.c0}:{c.c1}, starts from {c.pred_what}; the project's sharing (C#N groups in "
                        f"order, L blocks of consecutive layers) would start it from {exp}")
    spec = _params_of([calls[per[(li, 0)][0]] for li in lif_layers]) if lif_layers else None
    if spec is None:
        raise ImporterError("the traced run has no neuron (a network needs at least one LIF layer)")

    # layer specs and weights
    specs, weights, biases, modules, notes, skip_ws = [], [], [], [], [], []
    used = {r.skip for r in layers if r.skip is not None}
    for si, sk in enumerate(tr.skips):
        if si not in used:
            raise ImporterError(f"module {sk.name!r} takes the spikes of {layers[sk.source].name!r}, an "
                                f"earlier layer than the one before it, but its output is not added to "
                                f"a layer's current (a residual shortcut); a layer must take the spikes "
                                f"of the previous layer")
    for li, rec in enumerate(layers):
        x0 = rec.inputs[0]
        n = n_of[li]
        mode = "readout" if n == 0 else ("chained" if n > 1 else "independent")
        blk = members.get(block_of.get(li, -1), [])
        block = block_of[li] if n and len(blk) > 1 else None
        m = rec.module
        if rec.bn is not None and not rec.static and rec.bn_steps != set(range(T)):
            missing = min(set(range(T)) - rec.bn_steps)
            raise ImporterError(f"module {rec.bn_name!r} ({type(rec.bn).__name__}) is not applied to the "
                                f"output of {rec.name!r} at timestep {missing}; a folded BatchNorm must "
                                f"apply at every timestep")
        w_l = m.weight.detach().to(torch.float64)
        b_l = None if m.bias is None else m.bias.detach().to(torch.float64)
        if rec.bn is not None:
            w_l, b_l = fold_batchnorm(w_l, b_l, rec.bn)
        pool = rec.pool or 1
        skip = _shortcut_of(tr, rec, li, T, n)
        skw = {}
        w_s = None
        if skip is not None:
            src, w_s, b_s, skw = skip
            if b_s is not None:
                b_l = b_s if b_l is None else b_l + b_s
            skw = dict(skip=src, skip_in_shape=tuple(tr.layers[src].outputs[0].shape[1:]), **skw)
        if rec.kind == "linear":
            in_shape, k, st, pd = (m.in_features,), 1, 1, 0
        else:
            k, st, pd = _conv_geometry(m, rec.name)
            in_shape = tuple(x0.shape[1:])
        if rec.avg is not None:
            w_l, in_shape, k, st, pd = fold_avg(f"module {rec.name!r}", rec.kind, rec.avg, w_l, in_shape,
                                                k, st, pd)
            kh, kw, div, _ = rec.avg
            notes.append(f"average pooling {kh}x{kw} (divisor {div}) folded into the weights of "
                         f"{rec.name!r}")
        try:
            s = LayerSpec(rec.kind, in_shape, w_l.shape[0], kernel=k, stride=st, padding=pd, mode=mode,
                          block=block, name=rec.name, pool=pool, bias=b_l is not None, **skw)
        except ValueError as e:
            raise ImporterError(f"module {rec.name!r}: {e}") from None
        specs.append(s)
        skip_ws.append(None if w_s is None else w_s)
        gain = 1.0
        if n:
            lc = [calls[i] for t in range(T) for i in per[(li, t)]]
            gain = lc[0].spec.gain
            odd = next((c for c in lc if c.spec.gain != gain), None)
            if odd is not None:
                raise ImporterError(f"neuron modules {lc[0].name!r} and {odd.name!r} on {rec.name!r} have "
                                    f"different input gains ({gain!r}, {odd.spec.gain!r})")
        # The gain is folded here, in float64: W·gain (and b·gain) is rounded once to
        # float64; the fixed-point rounding to integers happens later, in golden.quantize.
        weights.append(w_l * gain)
        biases.append(None if b_l is None else b_l * gain)
        if w_s is not None:
            skip_ws[-1] = w_s * gain
        if rec.bn is not None:
            notes.append(f"{type(rec.bn).__name__} {rec.bn_name!r} folded into {rec.name!r} (scale into "
                         f"the weights, shift into the bias)")
        if pool > 1:
            notes.append(f"max pooling {pool}x{pool} of the spikes before {rec.name!r}")
        modules.append({"layer": rec.name,
                        "neurons": sorted({calls[i].name for t in range(T) for i in per.get((li, t), [])})})
    inp = torch.stack([r for r in layers[0].inputs])
    direct = not bool(((inp == 0) | (inp == 1)).all())
    if direct:
        notes.append(f"direct (analog) input: {layers[0].name!r} receives the input values themselves"
                     + (", computed once and reused every timestep" if layers[0].static else ""))
    try:
        net = EfficientLIFNet(specs, groups=groups, params=spec.lif_params(), dtype=torch.float64,
                              direct_input=direct)
    except ValueError as e:
        raise ImporterError(f"the traced network cannot be built: {e}") from None
    with torch.no_grad():
        for w, src in zip(net.weights, weights):
            if tuple(w.shape) != tuple(src.shape):
                raise ImporterError(f"internal: weight shape {tuple(src.shape)} != {tuple(w.shape)}")
            w.copy_(src)
        for i, w_s in enumerate(skip_ws):
            if w_s is not None:
                net.skip_weights[str(i)].copy_(w_s)
        for i, b in enumerate(biases):
            if b is not None:
                net.biases[str(i)].copy_(b)
    # the framework's own record
    currents, spikes, membranes = [], [], []
    for li, rec in enumerate(layers):
        currents.append(torch.stack(rec.outputs).to(torch.float64))
        if not n_of[li]:
            spikes.append(None)
            membranes.append(None)
            continue
        spikes.append(torch.stack([torch.cat([calls[i].spikes for i in per[(li, t)]], dim=1)
                                   for t in range(T)]).to(torch.float64))
        mems = [[calls[i].membrane for i in per[(li, t)]] for t in range(T)]
        membranes.append(None if any(m is None for row in mems for m in row) else
                         torch.stack([torch.cat(row, dim=1) for row in mems]).to(torch.float64))
    if spec.gain != 1.0:
        notes.append(f"input gain {spec.gain!r} folded into the weights of every LIF layer")
    return Imported(model=net, spikes=inp.to(torch.float64), trace=FrameworkTrace(currents, spikes, membranes),
                    modules=modules, notes=notes)
