"""The EfficientLIF-Net authors' two shared-LIF architectures, rewritten for the tests.

Source (read, not copied): github Intelligent-Computing-Lab-Yale/EfficientLIF-Net,
``archs/vgg/vgg_layerchannelshare.py`` (``VGG16_layerchannelshare``) and
``archs/resnet/resnet_snn_layerchannelshare.py`` (``ResNet19_layerchannelshare``),
SpikingJelly 0.0.0.0.14 ``clock_driven`` API. Kept faithful: the same layer
order, channel counts, BatchNorm placement, pooling, the directly encoded first
layer (``bn1(conv1(image))`` computed once, the same current every timestep),
the residual sums, and the sharing pattern — one LIFNode called on the two
channel halves of a layer (C#2), and one LIFNode reused by consecutive layers
(VGG: lif3 for conv3-4, lif5 for conv5-7, lif8 for conv8-10, lif11 for
conv11-13; ResNet: one LIFNode per stage for every conv of the stage).
The forward returns the list of per-timestep classifier outputs, as theirs.

They use every operator of issue 11: BatchNorm (bias), max pooling, average
pooling (folded into the classifier), residual sums and direct analog input;
tests/test_importers_spikingjelly.py checks that the importer reproduces
SpikingJelly's forward exactly.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from spikingjelly.clock_driven import neuron, surrogate

TAU = 1.0 / (1.0 - 0.25)


def shared_lif() -> neuron.LIFNode:
    return neuron.LIFNode(v_threshold=1.0, v_reset=None, tau=TAU, surrogate_function=surrogate.ATan(),
                          detach_reset=True)


def halves(x: torch.Tensor, lif: nn.Module, groups: int = 2) -> torch.Tensor:
    """One LIF module on ``groups`` consecutive channel slices, in order (the authors' channel_divlif)."""
    c = x.size(1) // groups
    return torch.cat([lif(x[:, c * i:c * (i + 1), ...]) for i in range(groups)], dim=1)


def _conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1, padding: int = 1) -> tuple:
    return (nn.Conv2d(cin, cout, kernel_size=k, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(cout))


class VGG16LayerChannelShare(nn.Module):
    #: (conv index, out channels, LIF that serves it, max-pool after it)
    PLAN = [(1, 128, "lif1", False), (2, 128, "lif2", True),
            (3, 128, "lif3", False), (4, 128, "lif3", True),
            (5, 256, "lif5", False), (6, 256, "lif5", False), (7, 256, "lif5", True),
            (8, 512, "lif8", False), (9, 512, "lif8", False), (10, 512, "lif8", True),
            (11, 512, "lif11", False), (12, 512, "lif11", False), (13, 512, "lif11", False)]

    def __init__(self, num_classes: int = 10, total_timestep: int = 5, num_chgroup: int = 2):
        super().__init__()
        self.total_timestep, self.num_chgroup = total_timestep, num_chgroup
        cin = 3
        for i, cout, lif, _ in self.PLAN:
            conv, bn = _conv_bn(cin, cout)
            setattr(self, f"conv{i}", conv)
            setattr(self, f"bn{i}", bn)
            if not hasattr(self, lif):
                setattr(self, lif, shared_lif())
            cin = cout
        self.pool = nn.ModuleList(nn.MaxPool2d(kernel_size=2, stride=2) for _ in range(4))
        self.lastpool = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = nn.Linear(512, num_classes)

    def forward(self, x):
        outs = []
        static_x = self.bn1(self.conv1(x))
        for _ in range(self.total_timestep):
            out, p = None, 0
            for i, _, lif, pool in self.PLAN:
                cur = static_x if i == 1 else getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(out))
                out = halves(cur, getattr(self, lif), self.num_chgroup)
                if pool:
                    out = self.pool[p](out)
                    p += 1
            out = torch.flatten(self.lastpool(out), 1)
            outs.append(self.classifier(out))
        return outs


class BasicBlock(nn.Module):
    def __init__(self, cin: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1, self.bn1 = _conv_bn(cin, planes, stride=stride)
        self.conv2, self.bn2 = _conv_bn(planes, planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != planes:
            self.shortcut = nn.Sequential(*_conv_bn(cin, planes, k=1, stride=stride, padding=0))

    def forward(self, pair):
        x, lif = pair
        out = halves(self.bn1(self.conv1(x)), lif)
        out = self.bn2(self.conv2(out))
        out = out + self.shortcut(x)
        return [halves(out, lif), lif]


class ResNet19LayerChannelShare(nn.Module):
    STAGES = [(256, 3, 2), (512, 3, 2), (512, 2, 2)]      # (planes, blocks, first stride)

    def __init__(self, num_classes: int = 10, total_timestep: int = 5):
        super().__init__()
        self.total_timestep = total_timestep
        self.conv1, self.bn1 = _conv_bn(3, 128)
        self.lif_input = shared_lif()
        cin = 128
        for s, (planes, n, stride) in enumerate(self.STAGES, 1):
            setattr(self, f"layer{s}_lif", shared_lif())
            blocks = []
            for st in [stride] + [1] * (n - 1):
                blocks.append(BasicBlock(cin, planes, st))
                cin = planes
            setattr(self, f"layer{s}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc1 = nn.Linear(512, num_classes)

    def forward(self, img):
        outs = []
        static_x = self.bn1(self.conv1(img))
        for _ in range(self.total_timestep):
            out = halves(static_x, self.lif_input)
            for s in range(1, len(self.STAGES) + 1):
                out, _ = getattr(self, f"layer{s}")([out, getattr(self, f"layer{s}_lif")])
            out = self.avgpool(out)
            outs.append(self.fc1(out.view(out.size(0), -1)))
        return outs


def randomize_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random eval-mode BatchNorm statistics and affine parameters (so BN is not the identity)."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            with torch.no_grad():
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.1)
    return model.eval()


def excite(model: nn.Module, gain: float = 5.0, seed: int = 1) -> nn.Module:
    """Random weights large enough that every LIF layer spikes at a moderate rate.

    PyTorch's default init with θ = 1 leaves the deep layers silent (a conformance test on
    silent layers could not fail): every Conv2d/Linear weight is redrawn N(0, (gain/√fan_in)²),
    1×1 shortcuts three times that.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                w = m.weight
                k = 3.0 if w.dim() == 4 and w.shape[-1] == 1 else 1.0
                w.copy_(torch.randn(w.shape, generator=g, dtype=w.dtype) * (k * gain / math.sqrt(w[0].numel())))
    return model
