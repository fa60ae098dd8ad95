"""scikit-learn 8x8 digits for the end-to-end demo: data, spike encoding, network, training.

Everything here is deterministic for fixed arguments:

* :func:`load_split` — ``sklearn.datasets.load_digits`` (1,797 images 8x8,
  pixel values 0..16, shipped inside scikit-learn, no download), split
  stratified by ``train_test_split`` with a fixed seed;
* :func:`encode` — deterministic rate coding: pixel intensity ``p = x/16``
  fires at timestep ``t`` iff ``floor((t+1)·p + 1/2) > floor(t·p + 1/2)``
  (an integrate-and-fire encoder starting half full), so a pixel of 16
  fires every step, 8 fires every other step, 0 never. Output uint8
  ``[N, T, 1, 8, 8]`` of 0/1 — what both the fixed-point model and the RTL
  receive (after a transpose to ``[T, N, ...]`` for the float model);
* :func:`demo_layers` / :func:`scheme_layers` — the demo network and its four
  sharing variants, labelled so that every variant maps onto one
  ``GROUPS = 4`` build (see below);
* :func:`train` / :func:`train_cached` — Adam + cross-entropy on the
  read-out current summed over T, with the float reference
  (:mod:`golden.reference`, arctan surrogate), quantization-aware by default
  (forward pass on the 2^-qat_frac_bits weight grid, straight-through
  gradient; :class:`TrainConfig`). With QAT the training is bit-reproducible:
  the same weights for any torch thread count, CPU instruction set and
  machine load (float64, exact sums, gradients on a 2^-32 grid; see
  "Bit-reproducible training" below). Weights cached under a key derived
  from every hyperparameter, the layer list, the torch version and the
  source of this module and of the float reference;
* :func:`accuracy` — float accuracy of a model on encoded spikes.

Network (input 1x8x8):

=====  =========  =============================  ==========================
layer  name       kind                           L+C#4 labelling
=====  =========  =============================  ==========================
0      conv_in    conv 3x3, stride 2, pad 1,     chained (C#4)
                  1 -> C, out C x 4 x 4
1      blk_a      conv 3x3, pad 1, C -> C        chained, block 1 (L)
2      blk_b      conv 3x3, pad 1, C -> C        chained, block 1 (L)
3      readout    linear C·16 -> 10              readout (unshared)
=====  =========  =============================  ==========================

Variant labels on the hardware (``groups = 4`` in every model, so all four
quantize onto the same build): ``baseline`` = all LIF layers independent;
``L`` = independent layers with layers 1-2 in one block (an independent
block is the same arithmetic as a chained block with one group);
``C#4`` = chained, no block; ``L+C#4`` = chained, layers 1-2 in one block.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from .lif import LIFParams
from .reference import EfficientLIFNet, LayerSpec
from .errors import ProjectError

__all__ = ["DigitsError", "SCHEMES", "GROUPS", "Split", "TrainConfig", "load_split", "encode",
           "demo_layers", "scheme_layers", "build_model", "train", "train_cached", "accuracy",
           "predict", "cache_key", "init_weights", "GRAD_FRAC_BITS"]

#: The four variants of the paper's Table 1 that the demo trains, in table order.
SCHEMES = ("baseline", "L", "C#4", "L+C#4")
#: C#N group count of the demo build.
GROUPS = 4
IMAGE_SHAPE = (1, 8, 8)
N_CLASSES = 10
PIXEL_MAX = 16


class DigitsError(ProjectError, ValueError):
    """A bad demo argument; the message names it."""


@dataclass(frozen=True)
class Split:
    """Train/test split: images uint8 ``[N, 8, 8]`` (0..16), labels int64 ``[N]``."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def load_split(seed: int = 0, test_fraction: float = 0.2) -> Split:
    """scikit-learn digits, stratified train/test split with ``seed``."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if not (isinstance(test_fraction, float) and 0.0 < test_fraction < 1.0):
        raise DigitsError(f"test_fraction={test_fraction!r}: must be a float in (0, 1)")
    d = load_digits()
    x = d.images.astype(np.uint8)
    y = d.target.astype(np.int64)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=test_fraction, random_state=seed,
                                          stratify=y)
    return Split(xtr, ytr, xte, yte)


def encode(images: np.ndarray, timesteps: int) -> np.ndarray:
    """Deterministic rate coding (module docstring): ``[N, 8, 8]`` 0..16 -> uint8 ``[N, T, 1, 8, 8]``."""
    if isinstance(timesteps, bool) or not isinstance(timesteps, int) or timesteps < 1:
        raise DigitsError(f"timesteps={timesteps!r}: must be a positive integer")
    x = np.asarray(images)
    if x.ndim != 3 or x.shape[1:] != IMAGE_SHAPE[1:]:
        raise DigitsError(f"images: expected shape [N, 8, 8], got {x.shape}")
    if x.size and (x.min() < 0 or x.max() > PIXEL_MAX):
        raise DigitsError(f"images: pixel values must be in 0..{PIXEL_MAX}")
    x = x.astype(np.int64)
    # integer form of floor((t+1)·x/16 + 1/2) - floor(t·x/16 + 1/2): exact, no float rounding
    t = np.arange(timesteps + 1, dtype=np.int64)[None, :, None, None]
    level = (2 * t * x[:, None] + PIXEL_MAX) // (2 * PIXEL_MAX)
    spikes = (level[:, 1:] - level[:, :-1]).astype(np.uint8)
    return spikes[:, :, None]


def demo_layers(channels: int = 16) -> list:
    """The demo network with the L+C#4 labelling (layers 1-2 form block 1)."""
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < GROUPS \
            or channels % GROUPS:
        raise DigitsError(f"channels={channels!r}: must be a positive multiple of {GROUPS}")
    c = channels
    return [
        LayerSpec("conv", IMAGE_SHAPE, c, kernel=3, stride=2, padding=1, name="conv_in"),
        LayerSpec("conv", (c, 4, 4), c, kernel=3, padding=1, block=1, name="blk_a"),
        LayerSpec("conv", (c, 4, 4), c, kernel=3, padding=1, block=1, name="blk_b"),
        LayerSpec("linear", (c * 16,), N_CLASSES, mode="readout", name="readout"),
    ]


def scheme_layers(scheme: str, channels: int = 16) -> list:
    """Layer list of one variant, labelled for a GROUPS=4 build (module docstring).

    The L block is the one of :func:`demo_layers` (layers 1-2); ``conv_in``
    keeps its own membrane in every variant even though its output shape
    matches, as the first (input-encoding) layer of the paper's L-sharing VGG.
    """
    if scheme not in SCHEMES:
        raise DigitsError(f"unknown scheme {scheme!r}; expected one of {', '.join(SCHEMES)}")
    layer_sharing = scheme.startswith("L")
    mode = "chained" if scheme.endswith(f"C#{GROUPS}") else "independent"
    out = []
    for s in demo_layers(channels):
        if s.mode == "readout":
            out.append(s)
        else:
            out.append(replace(s, mode=mode, block=s.block if layer_sharing else None))
    return out


@dataclass(frozen=True)
class TrainConfig:
    """Every hyperparameter that changes the trained weights (the cache key)."""

    timesteps: int = 4
    channels: int = 16
    epochs: int = 30
    batch: int = 64
    lr: float = 5e-3
    weight_decay: float = 1e-3
    seed: int = 0
    split_seed: int = 0
    test_fraction: float = 0.2
    leak: float = 0.25
    theta: float = 1.0
    init_gain: float = 2.0
    #: weights are clamped to ±weight_clip after every step, so that one
    #: fixed-point scale (frac_bits) serves every layer with fine resolution
    weight_clip: float = 1.98
    #: quantization-aware training: the forward pass always uses weights
    #: rounded to multiples of 2**-qat_frac_bits (straight-through gradient to
    #: float shadow weights), so the trained weights lie on the fixed-point grid
    #: and only the leak rounding (F3) separates float and fixed point.
    #: None = plain float training.
    qat_frac_bits: Optional[int] = 6


def init_weights(scheme: str, tc: TrainConfig) -> list:
    """Initial weights of ``scheme``, float64 numpy arrays: N(0, 1)·init_gain/√fan_in.

    Drawn with numpy's ``default_rng(tc.seed)`` in layer order, not with
    ``torch.randn``, whose vectorized normal fill gives other numbers on a CPU
    without AVX2 (``ATEN_CPU_CAPABILITY=default``).
    """
    rng = np.random.default_rng(tc.seed)
    return [rng.standard_normal(s.weight_shape) * (tc.init_gain / math.sqrt(s.fan_in))
            for s in scheme_layers(scheme, tc.channels)]


def build_model(scheme: str, tc: TrainConfig, dtype: torch.dtype = torch.float32) -> EfficientLIFNet:
    """Untrained model of ``scheme`` with the weights of :func:`init_weights`."""
    model = EfficientLIFNet(scheme_layers(scheme, tc.channels), GROUPS,
                            LIFParams(leak=tc.leak, theta=tc.theta), init_gain=tc.init_gain,
                            dtype=dtype)
    with torch.no_grad():
        for w, w0 in zip(model.weights, init_weights(scheme, tc), strict=True):
            w.copy_(torch.from_numpy(w0))
    return model

def _time_major(spikes: np.ndarray) -> torch.Tensor:
    """uint8 [N, T, ...] -> float32 [T, N, ...]."""
    return torch.from_numpy(np.ascontiguousarray(np.swapaxes(spikes, 0, 1))).to(torch.float32)


def predict(model: EfficientLIFNet, spikes: np.ndarray, batch: int = 512) -> np.ndarray:
    """Float predictions (argmax of the summed read-out) for uint8 spikes ``[N, T, 1, 8, 8]``."""
    out = []
    with torch.no_grad():
        for i in range(0, spikes.shape[0], batch):
            out.append(model(_time_major(spikes[i:i + batch])).argmax(1).numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def accuracy(model: EfficientLIFNet, spikes: np.ndarray, labels: np.ndarray) -> float:
    """Float accuracy on encoded spikes ``[N, T, 1, 8, 8]``."""
    return float(np.mean(predict(model, spikes) == np.asarray(labels)))


# ----------------------------------------------------------------- training
#
# Bit-reproducible training (identical weights for any torch thread count,
# CPU instruction set, machine load): every floating-point result that feeds
# the weights is computed either elementwise (one IEEE-rounded operation per
# kernel: the same bits everywhere) or as a sum whose terms and partial sums
# are all exact, so that the summation order -- which oneDNN/MKL choose by
# thread count and instruction set -- cannot change the result. Training runs
# in float64, and with QAT (qat_frac_bits = q):
#
# * forward: weights on the 2^-q grid times 0/1 spikes, so every synapse sum
#   is a multiple of 2^-q far below 2^(53-q): exact;
# * loss gradient: softmax with the polynomial exponential :func:`_exp` and a
#   fixed left-to-right class sum (no library exp, no vectorized reduction);
# * backward: every gradient entering a synapse's backward node (conv2d, mm)
#   is first rounded to a multiple of 2^-GRAD_FRAC_BITS (an autograd node
#   pre-hook), so its weight gradient (sum of gradient x spike) and input
#   gradient (sum of gradient x grid weight) are exact; :func:`_audit_graph`
#   refuses any other node kind that could reduce, and :func:`_check_exact`
#   the magnitudes that would leave the exact range;
# * optimizer: Adam (torch.optim.Adam's update, L2 weight decay) and the cosine
#   learning rate written out with plain elementwise operations (no fused
#   addcmul/lerp kernels, whose vectorized forms may contract into FMAs; no
#   libm pow/cos, computed by products and a Taylor series).
#
# Without QAT (qat_frac_bits = None) the forward sums are rounded and the
# result can still depend on the machine.

#: gradients entering a synapse's backward are rounded to multiples of 2**-GRAD_FRAC_BITS
GRAD_FRAC_BITS = 32
#: float64 significand bits: integers of up to 2**53 are exact
_F64_BITS = 53
_ADAM_BETAS = (0.9, 0.999)
_ADAM_EPS = 1e-8
#: autograd nodes a training graph may contain besides the synapses: none of them
#: sums over an axis (elementwise, views, splits and concatenations, a sum over T of
#: exact read-out currents whose backward is a broadcast)
_SAFE_NODES = frozenset({
    "AccumulateGrad", "ATanSpikeBackward", "AddBackward0", "SubBackward0", "MulBackward0",
    "RsubBackward1", "CatBackward0", "SplitBackward0", "StackBackward0", "SumBackward1",
    "TBackward0", "ViewBackward0", "UnsafeViewBackward0", "ReshapeAliasBackward0",
    "CloneBackward0", "UnbindBackward0"})
_SYNAPSE_NODES = frozenset({"ConvolutionBackward0", "MmBackward0"})


def _exp(x: torch.Tensor) -> torch.Tensor:
    """exp(x) for float64 x <= 0 from elementwise operations only (same bits on every machine).

    x = k·ln2 + r, |r| <= ln2/2 (Cody-Waite split of ln2), Taylor polynomial
    of degree 13 in r (relative error < 1e-15), times 2^k built from its bits.
    Arguments below -700 are treated as -700 (exp(-700) ~ 1e-304).
    """
    x = x.clamp(min=-700.0)
    k = torch.round(x * (1.0 / math.log(2.0)))
    r = (x - k * 0.693145751953125) - k * 1.4286068203094173e-06  # ln2 = hi + lo, hi exact in 21 bits
    p = torch.full_like(r, 1.0 / math.factorial(13))
    for n in range(12, -1, -1):
        p = p * r + 1.0 / math.factorial(n)
    scale = ((k.to(torch.int64) + 1023) << 52).view(torch.float64)
    return p * scale


def _cross_entropy_grad(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, float]:
    """(d mean-cross-entropy / d logits, mean loss) for float64 logits [B, C].

    The gradient (softmax − one-hot)/B is bit-reproducible (:func:`_exp`, a
    left-to-right class sum); the loss value is only for progress display.
    """
    z = logits - logits.max(dim=1, keepdim=True).values
    e = _exp(z)
    s = e[:, 0]
    for c in range(1, e.shape[1]):
        s = s + e[:, c]
    prob = e / s[:, None]
    onehot = torch.zeros_like(prob).scatter_(1, labels[:, None], 1.0)
    loss = float(torch.log(s).sub(z.gather(1, labels[:, None])[:, 0]).mean())
    return (prob - onehot) / logits.shape[0], loss


def _cosine(x: float) -> float:
    """cos(x) for 0 <= x <= π by its Taylor series in Python floats (no libm: same bits everywhere)."""
    term, total, n = 1.0, 1.0, 0
    while abs(term) > 1e-18:
        n += 2
        term = -term * x * x / ((n - 1) * n)
        total = total + term
    return total


def _cosine_lr(tc: TrainConfig, epoch: int) -> float:
    """Learning rate of ``epoch``: lr·(1 + cos(π·epoch/epochs))/2 (torch's CosineAnnealingLR, η_min = 0)."""
    return tc.lr * (1.0 + _cosine(math.pi * epoch / max(1, tc.epochs))) / 2.0


def _graph_nodes(root) -> list:
    """Every autograd node reachable from ``root`` (a grad_fn), each once."""
    seen, stack, out = set(), [root], []
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        out.append(node)
        stack.extend(n for n, _ in node.next_functions)
    return out


def _audit_graph(root, hook) -> None:
    """Put ``hook`` before every synapse node; refuse a node kind that might sum inexactly."""
    for node in _graph_nodes(root):
        name = type(node).__name__
        if name in _SYNAPSE_NODES:
            node.register_prehook(hook)
        elif name not in _SAFE_NODES:
            raise RuntimeError(f"golden.digits: autograd node {name} is not known to be exact; "
                               f"training would no longer be bit-reproducible")


def _grad_rounder(tc: TrainConfig):
    """Pre-hook rounding a synapse's incoming gradient to the 2^-GRAD_FRAC_BITS grid.

    Exactness bound (:func:`_check_exact`): the weight gradient of one node sums
    gradient·spike terms, at most sum|g| in total, accumulated over T nodes; the
    input gradient sums gradient·weight terms (weights on the 2^-q grid, |w| <=
    weight_clip). Both stay exact while T·max(1, clip)·sum|g| < 2^(53 − G − q).
    """
    scale = 2.0 ** GRAD_FRAC_BITS
    limit = 2.0 ** (_F64_BITS - GRAD_FRAC_BITS - (tc.qat_frac_bits or 0)) / (
        tc.timesteps * max(1.0, tc.weight_clip))

    def hook(grad_outputs):
        out = []
        for g in grad_outputs:
            if g is not None:
                g = torch.round(g * scale) / scale
                if float(g.abs().sum()) >= limit:
                    raise DigitsError(f"gradient sum {float(g.abs().sum()):.3g} leaves the exact "
                                      f"float64 range (limit {limit:.3g}); lower lr or batch")
            out.append(g)
        return tuple(out)
    return hook


def train(scheme: str, tc: TrainConfig, spikes: np.ndarray, labels: np.ndarray,
          progress: Optional[Callable[[int, float], None]] = None) -> EfficientLIFNet:
    """Train one variant; ``progress(epoch, mean_loss)`` is called after each epoch.

    Bit-reproducible with QAT (see the comment above): the returned float32
    model's weights, and the float64 shadow weights left in its attribute
    ``shadow_weights``, are the same on every machine, thread count and load.
    Mini-batch order: ``numpy.random.default_rng(tc.seed + 1).permutation``
    once per epoch.
    """
    work = build_model(scheme, tc, dtype=torch.float64)
    shadow = [w.detach().clone() for w in work.weights]
    m1 = [torch.zeros_like(w) for w in shadow]
    m2 = [torch.zeros_like(w) for w in shadow]
    b1, b2 = _ADAM_BETAS
    b1_t, b2_t = 1.0, 1.0      # b1**step, b2**step as running products (no libm pow)
    hook = _grad_rounder(tc)
    rng = np.random.default_rng(tc.seed + 1)
    x_all = _time_major(spikes).to(torch.float64)
    y_all = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    n = x_all.shape[1]
    for epoch in range(tc.epochs):
        lr = _cosine_lr(tc, epoch)
        order = torch.from_numpy(rng.permutation(n))
        total, count = 0.0, 0
        for i in range(0, n, tc.batch):
            idx = order[i:i + tc.batch]
            _load_weights(work, shadow, tc)
            work.zero_grad()
            logits = work(x_all[:, idx])
            grad, loss = _cross_entropy_grad(logits.detach(), y_all[idx])
            _audit_graph(logits.grad_fn, hook)
            logits.backward(grad)
            b1_t, b2_t = b1_t * b1, b2_t * b2
            step = lr / (1.0 - b1_t)
            root_bc2 = math.sqrt(1.0 - b2_t)    # correctly rounded (IEEE sqrt)
            with torch.no_grad():
                for k, (w, sw) in enumerate(zip(work.weights, shadow, strict=True)):
                    g = w.grad + sw * tc.weight_decay        # straight-through estimator
                    m1[k] = m1[k] * b1 + g * (1.0 - b1)
                    m2[k] = m2[k] * b2 + (g * g) * (1.0 - b2)
                    denom = torch.sqrt(m2[k]) / root_bc2 + _ADAM_EPS
                    shadow[k] = (sw - (m1[k] / denom) * step).clamp(-tc.weight_clip, tc.weight_clip)
            total += loss * idx.numel()
            count += idx.numel()
        if progress is not None:
            progress(epoch, total / max(1, count))
    _load_weights(work, shadow, tc)
    model = build_model(scheme, tc)
    with torch.no_grad():
        for w, w64 in zip(model.weights, work.weights, strict=True):
            w.copy_(w64)       # grid values: exact in float32
    model.shadow_weights = shadow
    return model


def _load_weights(model: EfficientLIFNet, shadow: list, tc: TrainConfig) -> None:
    """Copy the shadow weights into the model, on the fixed-point grid when QAT is on."""
    with torch.no_grad():
        for w, sw in zip(model.weights, shadow, strict=True):
            if tc.qat_frac_bits is None:
                w.copy_(sw)
            else:
                scale = 2.0 ** tc.qat_frac_bits
                w.copy_(torch.round(sw * scale) / scale)

def cache_key(scheme: str, tc: TrainConfig) -> str:
    """Short hash of the scheme, every hyperparameter, the layer list, the torch version
    and the source of this module and of the float reference (any change to the
    training or the model retrains instead of loading stale weights)."""
    from . import reference
    code = hashlib.sha256()
    for mod in (__file__, reference.__file__):
        code.update(Path(mod).read_bytes())
    blob = json.dumps({"scheme": scheme, "tc": asdict(tc), "torch": torch.__version__,
                       "code": code.hexdigest(),
                       "layers": [repr(s) for s in scheme_layers(scheme, tc.channels)]},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def train_cached(scheme: str, tc: TrainConfig, spikes: np.ndarray, labels: np.ndarray,
                 cache_dir: Path, progress=None) -> tuple[EfficientLIFNet, bool]:
    """Load ``cache_dir/<scheme>-<key>.pt`` or train and save it; returns (model, was_cached)."""
    cache_dir = Path(cache_dir)
    safe = scheme.replace("+", "_").replace("#", "")
    path = cache_dir / f"{safe}-{cache_key(scheme, tc)}.pt"
    model = build_model(scheme, tc)
    if path.exists():
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            model.load_state_dict(state)
            return model, True
        except (RuntimeError, OSError, ValueError):
            pass  # corrupt or stale: retrain
    model = train(scheme, tc, spikes, labels, progress)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(model.state_dict(), tmp)
    tmp.replace(path)
    return model, False
