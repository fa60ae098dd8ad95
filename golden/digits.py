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
  gradient; :class:`TrainConfig`); weights cached under a key derived from
  every hyperparameter, the layer list and the torch version;
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
           "predict", "cache_key"]

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


def build_model(scheme: str, tc: TrainConfig) -> EfficientLIFNet:
    """Untrained model of ``scheme`` (weights from ``tc.seed``)."""
    torch.manual_seed(tc.seed)
    model = EfficientLIFNet(scheme_layers(scheme, tc.channels), GROUPS,
                            LIFParams(leak=tc.leak, theta=tc.theta), init_gain=tc.init_gain)
    gen = torch.Generator().manual_seed(tc.seed)
    with torch.no_grad():
        for w, spec in zip(model.weights, model.layers):
            w.copy_(torch.randn(spec.weight_shape, generator=gen) * (tc.init_gain / math.sqrt(spec.fan_in)))
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


def train(scheme: str, tc: TrainConfig, spikes: np.ndarray, labels: np.ndarray,
          progress: Optional[Callable[[int, float], None]] = None) -> EfficientLIFNet:
    """Train one variant; ``progress(epoch, mean_loss)`` is called after each epoch."""
    model = build_model(scheme, tc)
    shadow = [w.detach().clone().requires_grad_(True) for w in model.weights]
    opt = torch.optim.Adam(shadow, lr=tc.lr, weight_decay=tc.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, tc.epochs))
    gen = torch.Generator().manual_seed(tc.seed + 1)
    x_all = _time_major(spikes)
    y_all = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    n = x_all.shape[1]
    for epoch in range(tc.epochs):
        order = torch.randperm(n, generator=gen)
        total, count = 0.0, 0
        for i in range(0, n, tc.batch):
            idx = order[i:i + tc.batch]
            _load_weights(model, shadow, tc)
            logits = model(x_all[:, idx])
            loss = torch.nn.functional.cross_entropy(logits, y_all[idx])
            model.zero_grad()
            loss.backward()
            for w, sw in zip(model.weights, shadow):  # straight-through estimator
                sw.grad = w.grad
            opt.step()
            with torch.no_grad():
                for sw in shadow:
                    sw.clamp_(-tc.weight_clip, tc.weight_clip)
            total += float(loss.detach()) * idx.numel()
            count += idx.numel()
        sched.step()
        if progress is not None:
            progress(epoch, total / max(1, count))
    _load_weights(model, shadow, tc)
    return model


def _load_weights(model: EfficientLIFNet, shadow: list, tc: TrainConfig) -> None:
    """Copy the shadow weights into the model, on the fixed-point grid when QAT is on."""
    with torch.no_grad():
        for w, sw in zip(model.weights, shadow):
            if tc.qat_frac_bits is None:
                w.copy_(sw)
            else:
                scale = 2.0 ** tc.qat_frac_bits
                w.copy_(torch.round(sw * scale) / scale)


def cache_key(scheme: str, tc: TrainConfig) -> str:
    """Short hash of the scheme, every hyperparameter and the torch version."""
    blob = json.dumps({"scheme": scheme, "tc": asdict(tc), "torch": torch.__version__,
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
