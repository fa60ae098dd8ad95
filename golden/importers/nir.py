"""NIR (``nir`` 1.0.x) graph -> the project's float reference.

The graph must be one chain ``Input -> ... -> Output`` of

* ``Linear``, ``Affine``, ``Conv2d`` (no dilation, no groups, square kernel,
  equal stride/padding): the synaptic layers. An ``Affine`` / ``Conv2d``
  bias (one value per output channel) becomes the layer's bias current
  (docs/fixed-point.md F2b);
* ``Scale`` between a layer and its neurons: folded into that layer's
  weights and bias (per output channel);
* ``Flatten`` between a conv layer's neurons and a Linear layer (C, H, W order);
* ``LIF`` / ``IF`` after a layer (an LIF layer), or ``Output`` directly after a
  layer (the readout layer).

Discretization with the step ``dt`` (``--dt``, else ``graph.metadata["dt"]``),
forward Euler of NIR's equations:

* ``LIF``: τ·dv/dt = (v_leak − v) + r·I  ->  λ = 1 − dt/τ, input gain r·dt/τ;
* ``IF``: dv/dt = r·I  ->  λ = 1, input gain r·dt;
* θ = ``v_threshold``; NIR fires on v > θ (``fire="gt"``, override with
  ``fire``). NIR has no subtractive reset and the exporters write
  ``v_reset = 0`` for soft-reset models too, so ``reset`` ("soft"|"hard") is a
  required argument; ``v_reset`` must be 0 either way.

Refused, naming the node: ``v_leak ≠ 0``, ``v_reset ≠ 0``, τ, θ or gain
differing between neurons of a layer where they cannot be folded (τ and θ
must be one value for the whole network; the gain one value per output
channel), non-finite τ, ``CubaLIF``/``CubaLI``/``LI``/``I``, a ``SumPool2d`` /
``AvgPool2d`` that cannot be folded (overlapping or padded windows, not after
neurons, before a conv whose map the window does not divide), ``Conv1d``, any
other node, branches (residual sums) and recurrent edges.

``SumPool2d`` / ``AvgPool2d`` of a layer's spikes is folded exactly into the
next layer's weights (divisor 1 / ``k·k``; docs/fixed-point.md, "Average pooling").

Sharing: NIR has none. ``share`` is a list of ``(nodes, N)``: the named LIF
nodes (consecutive LIF layers) form one L block (a single node: no block) and
their layers use C#N with N groups (N = 1: independent). LIF layers not named
are independent. All N > 1 must be equal (one group count per network).
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
import torch

from ..config import FIRE_MODES, RESET_MODES
from ..lif import LIFParams
from ..reference import EfficientLIFNet, LayerSpec
from .common import ImporterError, fold_avg

__all__ = ["from_nir", "read_graph", "parse_share"]


def _nir():
    try:
        import nir
    except ImportError as e:   # pragma: no cover - depends on the optional extra
        raise ImporterError(f"nir is not installed ({e}); install the 'import' extra: "
                            f"pip install -c constraints.txt -e '.[import]'") from None
    return nir


def read_graph(path) -> object:
    """``nir.read(path)``; a missing or unreadable file raises :class:`ImporterError`."""
    nir = _nir()
    import os
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ImporterError(f"NIR graph {path!r}: no such file")
    try:
        return nir.read(path)
    except Exception as e:      # h5py / nir raise many kinds for a bad file
        raise ImporterError(f"NIR graph {path!r}: not a readable NIR file ({type(e).__name__}: {e})") from None


def parse_share(text: str) -> tuple:
    """``'lif2,lif3:2'`` -> ``(('lif2', 'lif3'), 2)``; ``'lif1'`` -> ``(('lif1',), 1)``."""
    nodes, _, n = text.partition(":")
    names = tuple(s.strip() for s in nodes.split(",") if s.strip())
    if not names:
        raise ImporterError(f"--share {text!r}: expected NODE[,NODE...][:N]")
    try:
        groups = int(n) if n else 1
    except ValueError:
        raise ImporterError(f"--share {text!r}: the group count {n!r} is not an integer") from None
    if groups < 1:
        raise ImporterError(f"--share {text!r}: the group count must be >= 1")
    return names, groups


def _arr(v) -> np.ndarray:
    return np.asarray(v, dtype=np.float64)


def _uniform(v, what: str, node: str) -> float:
    a = _arr(v).ravel()
    if a.size == 0:
        raise ImporterError(f"node {node!r}: {what} is empty")
    if not np.all(a == a[0]):
        raise ImporterError(f"node {node!r}: {what} differs between neurons; the project has one value "
                            f"per network")
    return float(a[0])


def _per_channel(v, out_shape: tuple, what: str, node: str) -> np.ndarray:
    """A per-output-channel vector [C] from a scalar / [C] / [C,1,1] / [C,H,W] constant over H, W."""
    a = _arr(v)
    c = out_shape[0]
    if a.ndim == 1 and a.size == c and len(out_shape) > 1:
        a = a.reshape((c,) + (1,) * (len(out_shape) - 1))
    try:
        full = np.broadcast_to(a, out_shape)
    except ValueError:
        raise ImporterError(f"node {node!r}: {what} of shape {a.shape} does not match the layer's output "
                            f"shape {out_shape}") from None
    flat = full.reshape(c, -1)
    if not np.all(flat == flat[:, :1]):
        raise ImporterError(f"node {node!r}: {what} differs across the positions of one channel; only one "
                            f"value per output channel can be folded into the weights")
    return flat[:, 0].copy()


def _chain(graph) -> list:
    nir = _nir()
    nodes = dict(graph.nodes)
    succ, pred = {}, {}
    for a, b in graph.edges:
        succ.setdefault(a, []).append(b)
        pred.setdefault(b, []).append(a)
    for name, n in nodes.items():
        if isinstance(n, nir.NIRGraph):
            raise ImporterError(f"node {name!r}: nested graphs (recurrent layers) are not supported")
        if len(succ.get(name, [])) > 1:
            raise ImporterError(f"node {name!r} feeds {len(succ[name])} nodes ({', '.join(succ[name])}); "
                                f"only a chain is supported (residual branches are not supported yet)")
        if len(pred.get(name, [])) > 1:
            raise ImporterError(f"node {name!r} sums {len(pred[name])} inputs ({', '.join(pred[name])}); "
                                f"residual sums are not supported yet")
    inputs = [k for k, n in nodes.items() if isinstance(n, nir.Input)]
    if len(inputs) != 1:
        raise ImporterError(f"the graph needs exactly one Input node, found {len(inputs)}")
    order, cur, seen = [], inputs[0], set()
    while True:
        if cur in seen:
            raise ImporterError(f"node {cur!r}: the graph has a cycle (recurrence is not supported)")
        seen.add(cur)
        order.append(cur)
        nxt = succ.get(cur, [])
        if not nxt:
            break
        cur = nxt[0]
    if not isinstance(nodes[order[-1]], nir.Output):
        raise ImporterError(f"node {order[-1]!r}: the chain from the Input ends here, not at an Output node")
    left = set(nodes) - seen
    if left:
        raise ImporterError(f"node {sorted(left)[0]!r} is not on the chain from the Input to the Output")
    return [(k, nodes[k]) for k in order]


def _conv_spec(name, node, in_shape):
    w = _arr(node.weight)
    if w.ndim != 4:
        raise ImporterError(f"node {name!r} (Conv2d): weight must be [out, in, k, k], got shape {w.shape}")
    if int(node.groups) != 1:
        raise ImporterError(f"node {name!r} (Conv2d): grouped convolution (groups={node.groups}) is not supported")
    dil = tuple(np.broadcast_to(np.asarray(node.dilation), (2,)).tolist())
    if dil != (1, 1):
        raise ImporterError(f"node {name!r} (Conv2d): dilation {dil} is not supported")
    kh, kw = w.shape[2:]
    stride = tuple(np.broadcast_to(np.asarray(node.stride), (2,)).tolist())
    pad = node.padding
    if isinstance(pad, str):
        if pad == "valid":
            pad = (0, 0)
        elif pad == "same" and kh % 2 and kw % 2 and stride == (1, 1):
            pad = ((kh - 1) // 2, (kw - 1) // 2)
        else:
            raise ImporterError(f"node {name!r} (Conv2d): padding={pad!r} is not supported here")
    pad = tuple(np.broadcast_to(np.asarray(pad), (2,)).tolist())
    if kh != kw or stride[0] != stride[1] or pad[0] != pad[1]:
        raise ImporterError(f"node {name!r} (Conv2d): kernel {(kh, kw)}, stride {stride}, padding {pad}: only "
                            f"square kernels with equal stride and padding on both axes")
    if in_shape is None or len(in_shape) != 3:
        raise ImporterError(f"node {name!r} (Conv2d): its input shape {in_shape} is not (C, H, W)")
    if in_shape[0] != w.shape[1]:
        raise ImporterError(f"node {name!r} (Conv2d): weight takes {w.shape[1]} channels, the input has "
                            f"{in_shape[0]}")
    return w, int(kh), int(stride[0]), int(pad[0])


def from_nir(graph, *, reset: Optional[str] = None, fire: str = "gt", dt: Optional[float] = None,
             share: Sequence = ()) -> EfficientLIFNet:
    """Map a ``nir.NIRGraph`` (or a path to a .nir file) to a float64 EfficientLIFNet (module docstring).

    ``reset``: "soft" | "hard", required. ``fire``: "gt" (NIR's rule, default)
    | "ge". ``dt``: the discretization step (else ``graph.metadata["dt"]``).
    ``share``: ``[(lif node names, N), ...]`` or strings ``"a,b:N"``.
    Raises :class:`ImporterError` naming the node or option.
    """
    nir = _nir()
    if isinstance(graph, (str, bytes)) or hasattr(graph, "__fspath__"):
        graph = read_graph(graph)
    if not isinstance(graph, nir.NIRGraph):
        raise ImporterError(f"expected a nir.NIRGraph, got {type(graph).__name__}")
    if reset is None:
        raise ImporterError("the reset mode is required (--reset soft|hard): NIR cannot express a "
                            "subtractive reset and its exporters write v_reset=0 for soft-reset models too")
    if reset not in RESET_MODES:
        raise ImporterError(f"reset={reset!r}: must be one of {', '.join(RESET_MODES)}")
    if fire not in FIRE_MODES:
        raise ImporterError(f"fire={fire!r}: must be one of {', '.join(FIRE_MODES)}")
    meta = getattr(graph, "metadata", None) or {}
    if dt is None and "dt" in meta:
        dt = float(np.asarray(meta["dt"]).ravel()[0])
    if dt is None:
        raise ImporterError("the graph has no 'dt' in its metadata; give the discretization step "
                            "(--dt; snnTorch's exporter uses 1e-4)")
    if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
        raise ImporterError(f"dt={dt!r}: must be a positive number")
    shares = [parse_share(s) if isinstance(s, str) else (tuple(s[0]), int(s[1])) for s in share]

    chain = _chain(graph)
    in_shape = tuple(int(d) for d in np.asarray(chain[0][1].input_type["input"]).ravel())
    if not in_shape:
        raise ImporterError(f"node {chain[0][0]!r} (Input): empty input shape")
    # group the chain into layers: [flatten] synapse [scale...] (LIF|IF) | synapse Output
    layers = []       # dicts: name, kind, weight, conv geometry, in_shape, neuron (name, node) or None
    shape = in_shape
    i = 1
    flat_pending = False
    avg_pending = None
    while i < len(chain):
        name, node = chain[i]
        t = type(node).__name__
        if isinstance(node, nir.Output):
            break
        if isinstance(node, nir.Flatten):
            if len(shape) == 1:
                i += 1
                continue
            flat_pending = True
            i += 1
            continue
        if isinstance(node, (nir.SumPool2d, nir.AvgPool2d)):
            # folded into the next layer's weights (docs/fixed-point.md, "Average pooling")
            ks = tuple(int(v) for v in np.broadcast_to(np.asarray(node.kernel_size), (2,)))
            st = tuple(int(v) for v in np.broadcast_to(np.asarray(node.stride), (2,)))
            pd = tuple(int(v) for v in np.broadcast_to(np.asarray(node.padding), (2,)))
            if avg_pending is not None or flat_pending or len(shape) != 3 or not layers \
                    or layers[-1]["neuron"] is None:
                raise ImporterError(f"node {name!r} ({t}): pooling is supported once, on a layer's "
                                    f"[C, H, W] spikes, folded into the next layer")
            if st != ks or pd != (0, 0):
                raise ImporterError(f"node {name!r} ({t}): kernel {ks}, stride {st}, padding {pd}: only "
                                    f"non-overlapping windows (stride = kernel, no padding) fold exactly "
                                    f"into the next layer's weights")
            div = 1 if isinstance(node, nir.SumPool2d) else ks[0] * ks[1]
            avg_pending = (ks[0], ks[1], div, shape)
            shape = (shape[0], shape[1] // ks[0], shape[2] // ks[1])
            i += 1
            continue
        if isinstance(node, (nir.CubaLIF, nir.CubaLI, nir.LI, nir.I)):
            raise ImporterError(f"node {name!r} ({t}): only LIF and IF neurons are supported")
        if isinstance(node, (nir.LIF, nir.IF)):
            raise ImporterError(f"node {name!r} ({t}): a neuron node must follow a Linear/Affine/Conv2d node")
        if isinstance(node, nir.Scale):
            raise ImporterError(f"node {name!r} (Scale): a Scale node must sit between a layer and its neurons")
        if isinstance(node, (nir.Linear, nir.Affine)):
            w = _arr(node.weight)
            if w.ndim != 2:
                raise ImporterError(f"node {name!r} ({t}): weight must be [out, in], got shape {w.shape}")
            if w.shape[1] != math.prod(shape) or (len(shape) > 1 and not flat_pending):
                raise ImporterError(f"node {name!r} ({t}): takes {w.shape[1]} inputs, but receives shape "
                                    f"{shape}" + ("" if flat_pending or len(shape) == 1 else
                                                  " (a Flatten node is needed before it)"))
            lay = dict(name=name, kind="linear", weight=w, in_shape=(w.shape[1],), k=1, s=1, p=0)
            out = (w.shape[0],)
        elif isinstance(node, nir.Conv2d):
            if flat_pending:
                raise ImporterError(f"node {name!r} (Conv2d): follows a Flatten node")
            w, k, s, p = _conv_spec(name, node, shape)
            lay = dict(name=name, kind="conv", weight=w, in_shape=shape, k=k, s=s, p=p)
            _, h, wd = shape
            if h + 2 * p < k or wd + 2 * p < k:
                raise ImporterError(f"node {name!r} (Conv2d): kernel {k} is larger than the padded input")
            out = (w.shape[0], (h + 2 * p - k) // s + 1, (wd + 2 * p - k) // s + 1)
        else:
            raise ImporterError(f"node {name!r} ({t}) is not supported")
        if avg_pending is not None:
            wf, ins, k2, s2, p2 = fold_avg(f"node {name!r}", lay["kind"], avg_pending,
                                           torch.from_numpy(np.asarray(lay["weight"], np.float64)),
                                           lay["in_shape"], lay["k"], lay["s"], lay["p"])
            lay.update(weight=wf.numpy(), in_shape=ins, k=k2, s=s2, p=p2)
            avg_pending = None
        flat_pending = False
        lay["out"] = out
        b = getattr(node, "bias", None)
        lay["bias"] = None
        if b is not None and np.any(_arr(b) != 0):
            lay["bias"] = _per_channel(b, out, "bias", name)
        gain = np.ones(out[0])
        i += 1
        while i < len(chain) and isinstance(chain[i][1], nir.Scale):
            gain = gain * _per_channel(chain[i][1].scale, out, "scale", chain[i][0])
            i += 1
        if i >= len(chain):
            raise ImporterError(f"node {name!r}: the chain ends after it")
        nname, nnode = chain[i]
        if isinstance(nnode, nir.Output):
            lay["neuron"] = None
        elif isinstance(nnode, (nir.LIF, nir.IF)):
            lay["neuron"] = (nname, nnode)
            i += 1
        else:
            raise ImporterError(f"node {nname!r} ({type(nnode).__name__}) follows layer {name!r}; expected a "
                                f"LIF or IF node (or the Output for a readout layer)"
                                + (": a pooling of currents cannot be folded (only of spikes)"
                                   if isinstance(nnode, (nir.SumPool2d, nir.AvgPool2d)) else ""))
        lay["gain"] = gain
        layers.append(lay)
        shape = out
    if not layers:
        raise ImporterError("the graph has no Linear/Affine/Conv2d node")
    if any(l["neuron"] is None for l in layers[:-1]):
        bad = next(l for l in layers[:-1] if l["neuron"] is None)
        raise ImporterError(f"node {bad['name']!r}: a layer without neurons must be the last one")

    # neurons
    lam = theta = None
    first = None
    for lay in layers:
        if lay["neuron"] is None:
            continue
        nname, node = lay["neuron"]
        t = type(node).__name__
        th = _uniform(node.v_threshold, "v_threshold", nname)
        if not th > 0:
            raise ImporterError(f"node {nname!r} ({t}): v_threshold={th!r} must be > 0")
        if np.any(_arr(node.v_reset) != 0):
            raise ImporterError(f"node {nname!r} ({t}): v_reset != 0 is not supported")
        if isinstance(node, nir.LIF):
            if np.any(_arr(node.v_leak) != 0):
                raise ImporterError(f"node {nname!r} (LIF): v_leak != 0 is not supported")
            tau = _uniform(node.tau, "tau", nname)
            if not (math.isfinite(tau) and tau > 0):
                raise ImporterError(f"node {nname!r} (LIF): tau={tau!r} must be finite and > 0 (use an IF node "
                                    f"for no leak)")
            lm = 1.0 - dt / tau
            if not 0 < lm <= 1:
                raise ImporterError(f"node {nname!r} (LIF): λ = 1 - dt/τ = {lm!r} is not in (0, 1] "
                                    f"(dt={dt!r}, tau={tau!r})")
            g = _per_channel(_arr(node.r) * dt / tau, lay["out"], "r·dt/tau", nname)
        else:
            lm = 1.0
            g = _per_channel(_arr(node.r) * dt, lay["out"], "r·dt", nname)
        if lam is None:
            lam, theta, first = lm, th, nname
        elif lm != lam or th != theta:
            raise ImporterError(f"node {nname!r} ({t}): λ={lm!r}, θ={th!r} differ from λ={lam!r}, θ={theta!r} of "
                                f"{first!r}; the project has one λ and θ per network")
        lay["gain"] = lay["gain"] * g
    if lam is None:
        raise ImporterError("the graph has no LIF or IF node")

    # sharing
    pos = {lay["neuron"][0]: li for li, lay in enumerate(layers) if lay["neuron"] is not None}
    mode = {li: "independent" for li in pos.values()}
    block = {}
    groups = 1
    taken = set()
    for names, n in shares:
        for nm in names:
            if nm not in pos:
                raise ImporterError(f"--share: {nm!r} is not a LIF/IF node of the graph "
                                    f"(those are: {', '.join(pos) or 'none'})")
            if nm in taken:
                raise ImporterError(f"--share: node {nm!r} is named twice")
            taken.add(nm)
        idx = [pos[nm] for nm in names]
        if idx != list(range(idx[0], idx[0] + len(idx))):
            raise ImporterError(f"--share {','.join(names)}: the nodes must be consecutive LIF layers, in order")
        if n > 1:
            if groups not in (1, n):
                raise ImporterError(f"--share {','.join(names)}:{n}: the project has one group count per "
                                    f"network, another --share uses {groups}")
            groups = n
        for li in idx:
            mode[li] = "chained" if n > 1 else "independent"
            if len(idx) > 1:
                block[li] = idx[0]

    specs, weights, biases = [], [], []
    for li, lay in enumerate(layers):
        m = mode.get(li, "readout")
        s = LayerSpec(lay["kind"], lay["in_shape"], lay["out"][0], kernel=lay["k"], stride=lay["s"],
                      padding=lay["p"], mode=m, block=block.get(li), name=lay["name"],
                      bias=lay["bias"] is not None)
        specs.append(s)
        g = lay["gain"].reshape((-1,) + (1,) * (lay["weight"].ndim - 1))
        # Folding in float64: W·gain is rounded once to float64; the integer
        # rounding happens later, in golden.quantize.
        weights.append(torch.from_numpy(np.ascontiguousarray(lay["weight"] * g)))
        biases.append(None if lay["bias"] is None else torch.from_numpy(lay["bias"] * lay["gain"]))
    params = LIFParams(leak=lam, theta=theta, fire=fire, reset=reset)
    net = EfficientLIFNet(specs, groups=groups, params=params, dtype=torch.float64)
    with torch.no_grad():
        for w, src in zip(net.weights, weights):
            w.copy_(src)
        for i, b in enumerate(biases):
            if b is not None:
                net.biases[str(i)].copy_(b)
    return net
