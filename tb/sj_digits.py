"""``python -m tb.sj_digits`` (``make demo-sj``): a SpikingJelly-trained network, end to end on the RTL.

The example a user copies: train a small conv SNN **in SpikingJelly**
(0.0.0.0.14, ``clock_driven``) on scikit-learn's 8x8 digits, hand the trained
``nn.Module`` to the project, quantize, run every test sample on the
generated RTL, and report the accuracy of each stage. Two routes
(docs/demo.md, "SpikingJelly-trained digits"):

* **sj** — :class:`PoolNet`: conv 3x3 1->C + BatchNorm, one ``LIFNode`` on N
  channel slices (C#N), max pool 2 -> two conv 3x3 C->C + BatchNorm that
  reuse one ``LIFNode`` (L+C#N), max pool 2 -> linear 4C->10 read-out (bias).
  Imported with :func:`golden.importers.from_spikingjelly` (BatchNorm folded,
  input gain 1/τ folded, pooling and sharing read from the model),
  quantized with :func:`golden.quantize.quantize`, written as a network file
  and run with ``python -m tb.run``;
* **nir** — :class:`StridedNet`: the same without max pooling (NIR 1.0 has
  no max-pooling node; the first conv has stride 2), trained the same way,
  converted to an snnTorch ``nn.Sequential`` (BatchNorm and 1/τ folded with
  :func:`golden.importers.common.fold_batchnorm`, ``Leaky(β = 1 − 1/τ)``)
  and exported with **snnTorch's** ``export_to_nir`` (SpikingJelly 0.0.0.0.14
  has no NIR exporter), then ``python -m golden.convert`` (``--reset soft
  --fire ge --share``: what NIR cannot say) and ``python -m tb.run``.

For each route the report gives the accuracy of SpikingJelly's own forward
(float64, eval mode; float32 as trained too), the project's float reference,
the fixed-point model (:func:`golden.fixed_model.run_fixed`) and the RTL
(classes from the read-out values the RTL put on its output stream), the
RTL's mismatch count (every beat and membrane row checked by ``tb.run``) and
the spikes on which the float reference and SpikingJelly differ (0 expected:
the import is exact in float64). Exit status 0 when every route has 0
mismatches, RTL == fixed point on every sample and the float reference
reproduces SpikingJelly spike for spike; 1 otherwise; 2 bad option.

Trained weights are cached in ``build/sj_digits/cache/`` under a SHA-256 of
the hyperparameters, the torch and SpikingJelly versions and the source of
the models and the training loop. Training is seeded (torch's generator, one thread): the same weights
on one machine; another CPU or torch build may give other float32 roundings.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import shlex
import subprocess
import sys
import time
import warnings
from collections import OrderedDict
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from golden.cli import OneLineParser, posint, run_main
from golden.errors import ProjectError
from golden.files import atomic_write, check_writable_dir
from golden.paths import build_path

__all__ = ["TrainSpec", "PoolNet", "StridedNet", "build_model", "train", "to_snntorch", "export_nir", "main",
           "PROG", "ROUTES"]

PROG = "python -m tb.sj_digits"
ROUTES = ("sj", "nir")
#: the EfficientLIF-Net authors' τ (λ = 1 − 1/τ = 0.25, input gain 1/τ = 0.75)
TAU = 4.0 / 3.0
#: snnTorch's export_to_nir writes τ = dt/(1 − β), r = τ/dt with this dt
NIR_DT = 1e-4
#: buffer rows of the build for both routes (one Verilator build): every weight of either network
#: fits at once (464 / 659 rows with biases at ARRAY=32), and the membranes of several samples
#: (a mini-batch per loaded weight block)
WEIGHT_ROWS, MEM_ROWS = 1024, 128


class SjDigitsError(ProjectError, ValueError):
    """A bad option of the example; the message names it."""


@dataclass(frozen=True)
class TrainSpec:
    """Hyperparameters of the SpikingJelly training (the cache key)."""

    route: str
    channels: int = 16
    groups: int = 4
    timesteps: int = 4
    epochs: int = 20
    batch: int = 64
    lr: float = 5e-3
    seed: int = 0
    split_seed: int = 0
    train_samples: int = 0        # 0: the whole training split


# ------------------------------------------------------------------ models
def _sj():
    try:
        from spikingjelly.clock_driven import functional, neuron, surrogate
    except ImportError as e:      # pragma: no cover - optional extra
        raise SjDigitsError(f"SpikingJelly is not installed ({e}); install the 'import' extra") from None
    return functional, neuron, surrogate


def lif():
    """The LIF neuron of both models: the authors' τ, soft reset (``v_reset=None``), θ = 1, ATan."""
    _, neuron, surrogate = _sj()
    return neuron.LIFNode(tau=TAU, v_threshold=1.0, v_reset=None, detach_reset=True,
                          surrogate_function=surrogate.ATan())


def divlif(x, node, n):
    """The authors' ``channel_divlif``: one neuron module on n consecutive channel slices (C#n)."""
    c = x.size(1) // n
    return torch.cat([node(x[:, c * i:c * (i + 1)]) for i in range(n)], dim=1)


class PoolNet(nn.Module):
    """conv1+bn1 (C#N) -> maxpool 2 -> conv2+bn2, conv3+bn3 sharing lif2 (L+C#N) -> maxpool 2 -> fc.

    ``forward(x)``: x [T, B, 1, 8, 8] 0/1 spikes; returns the read-out current of every timestep.
    """

    def __init__(self, channels=16, groups=4):
        super().__init__()
        c, self.groups = channels, groups
        self.conv1, self.bn1 = nn.Conv2d(1, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.lif1 = lif()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.conv3, self.bn3 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.lif2 = lif()                       # one LIFNode for conv2 and conv3: L sharing
        self.pool2 = nn.MaxPool2d(2)
        self.fc = nn.Linear(c * 2 * 2, 10)

    def forward(self, x):
        n, outs = self.groups, []
        for t in range(x.shape[0]):
            o = self.pool1(divlif(self.bn1(self.conv1(x[t])), self.lif1, n))
            o = divlif(self.bn2(self.conv2(o)), self.lif2, n)
            o = self.pool2(divlif(self.bn3(self.conv3(o)), self.lif2, n))
            outs.append(self.fc(torch.flatten(o, 1)))
        return outs


class StridedNet(nn.Module):
    """conv1 (stride 2) + bn1 (C#N) -> conv2+bn2, conv3+bn3 sharing lif2 (L+C#N) -> fc: no pooling (NIR)."""

    def __init__(self, channels=16, groups=4):
        super().__init__()
        c, self.groups = channels, groups
        self.conv1, self.bn1 = nn.Conv2d(1, c, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c)
        self.lif1 = lif()
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.conv3, self.bn3 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.lif2 = lif()
        self.fc = nn.Linear(c * 4 * 4, 10)

    def forward(self, x):
        n, outs = self.groups, []
        for t in range(x.shape[0]):
            o = divlif(self.bn1(self.conv1(x[t])), self.lif1, n)
            o = divlif(self.bn2(self.conv2(o)), self.lif2, n)
            o = divlif(self.bn3(self.conv3(o)), self.lif2, n)
            outs.append(self.fc(torch.flatten(o, 1)))
        return outs


def build_model(spec: TrainSpec) -> nn.Module:
    return (PoolNet if spec.route == "sj" else StridedNet)(spec.channels, spec.groups)


# ---------------------------------------------------------------- training
def cache_key(spec: TrainSpec) -> str:
    import spikingjelly
    h = hashlib.sha256()
    h.update(json.dumps(asdict(spec), sort_keys=True).encode())
    h.update(f"torch {torch.__version__} spikingjelly {getattr(spikingjelly, '__version__', '?')}".encode())
    import inspect
    for f in (lif, divlif, PoolNet, StridedNet, build_model, train):   # what the weights depend on
        h.update(inspect.getsource(f).encode())
    return h.hexdigest()[:16]


def _accuracy(model, x, y) -> float:
    functional, _, _ = _sj()
    model.eval()
    functional.reset_net(model)
    with torch.no_grad():
        pred = torch.stack(model(x)).sum(0).argmax(1).cpu().numpy()
    functional.reset_net(model)
    return float(np.mean(pred == y)), pred


def train(spec: TrainSpec, x_train, y_train, say=print):
    """Train :func:`build_model` (float32) with BPTT in SpikingJelly: Adam, cosine learning rate,
    cross-entropy on the read-out summed over T. ``x_train`` [T, N, 1, 8, 8] float 0/1."""
    functional, _, _ = _sj()
    torch.manual_seed(spec.seed)
    model = build_model(spec)
    opt = torch.optim.Adam(model.parameters(), lr=spec.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, spec.epochs)
    gen = torch.Generator().manual_seed(spec.seed + 1)
    y = torch.from_numpy(y_train)
    n = x_train.shape[1]
    for epoch in range(spec.epochs):
        model.train()
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        for i in range(0, n, spec.batch):
            idx = perm[i:i + spec.batch]
            functional.reset_net(model)
            logits = torch.stack(model(x_train[:, idx])).sum(0)
            loss = nn.functional.cross_entropy(logits, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        sched.step()
        say(f"train {spec.route}: epoch {epoch + 1}/{spec.epochs} loss {total / n:.4f}")
    functional.reset_net(model)
    return model.eval()


def train_cached(spec: TrainSpec, x_train, y_train, cache: Path, say=print):
    path = cache / f"{spec.route}-{cache_key(spec)}.pt"
    model = build_model(spec)
    if path.is_file():
        try:
            model.load_state_dict(torch.load(path, weights_only=True))
            say(f"train {spec.route}: cached weights {path}")
            return model.eval(), True
        except Exception as e:    # unreadable or stale file: train again
            say(f"train {spec.route}: cache {path} unusable ({type(e).__name__}); training")
    model = train(spec, x_train, y_train, say)
    buf = __import__("io").BytesIO()
    torch.save(model.state_dict(), buf)
    atomic_write({path: buf.getvalue()})
    return model, False


# ------------------------------------------------------------ NIR export
def to_snntorch(model):
    """:class:`StridedNet` -> the snnTorch ``nn.Sequential`` whose NIR export is the same network.

    Each conv/linear gets its BatchNorm folded (:func:`fold_batchnorm`, float64)
    and the input gain 1/τ of the ``LIFNode`` after it multiplied in (the same
    products the SpikingJelly importer forms); each ``LIFNode`` becomes a
    ``Leaky`` with β = 1 − 1/τ and θ = ``v_threshold`` per neuron (snnTorch 1.0.0
    exports a scalar β as a 0-d τ, which nir 1.0.8 rejects). snnTorch's own
    forward of this model is not used (its subtractive reset differs for β ≠ 1,
    docs/importing.md): it only carries the parameters into ``export_to_nir``.
    """
    import snntorch as snn

    from golden.importers.common import fold_batchnorm

    gain = 1.0 / float(model.lif1.tau)
    beta = 1.0 - gain
    theta = float(model.lif1.v_threshold)
    c = model.conv1.out_channels

    def conv(src, bn, stride):
        w, b = fold_batchnorm(src.weight, src.bias, bn)
        m = nn.Conv2d(src.in_channels, src.out_channels, 3, stride=stride, padding=1).double()
        with torch.no_grad():
            m.weight.copy_(w * gain)
            m.bias.copy_(b * gain)
        return m

    def leaky(shape):
        return snn.Leaky(beta=torch.full(shape, beta, dtype=torch.float64),
                         threshold=torch.full(shape, theta, dtype=torch.float64), init_hidden=True,
                         reset_mechanism="subtract", spike_grad=lambda u: (u >= 0).to(u.dtype))

    fc = nn.Linear(model.fc.in_features, model.fc.out_features).double()
    with torch.no_grad():
        fc.weight.copy_(model.fc.weight.double())
        fc.bias.copy_(model.fc.bias.double())
    shape = (c, 4, 4)
    return nn.Sequential(OrderedDict(
        conv1=conv(model.conv1, model.bn1, 2), lif1=leaky(shape),
        conv2=conv(model.conv2, model.bn2, 1), lif2=leaky(shape),
        conv3=conv(model.conv3, model.bn3, 1), lif3=leaky(shape),
        flat=nn.Flatten(), fc=fc))


def export_nir(model, path: Path) -> None:
    import nir
    from snntorch.export_nir import export_to_nir
    seq = to_snntorch(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = export_to_nir(seq, torch.zeros(1, 1, 8, 8, dtype=torch.float64), ignore_dims=[0])
    nir.write(str(path), graph)


# ------------------------------------------------------------------ stages
def _spike_diff(ref_spikes: list, fw_spikes: list, layers) -> tuple[int, int]:
    """(differing spikes, compared spikes) over the LIF layers."""
    diff = total = 0
    for i, s in enumerate(layers):
        if s.mode == "readout":
            continue
        diff += int((ref_spikes[i] != fw_spikes[i]).sum())
        total += ref_spikes[i].numel()
        if not bool(torch.any(ref_spikes[i] > 0)):
            raise SjDigitsError(f"layer {s.name!r} never fires: the example would check nothing")
    return diff, total


def _cmd(args: list, say) -> subprocess.CompletedProcess:
    say("$ " + " ".join(shlex.quote(str(a)) for a in args))
    return subprocess.run([str(a) for a in args], stdout=subprocess.PIPE, text=True)


def _run_rtl(net: Path, cfg: Path, x: Path, out: Path, a, say) -> dict:
    """``python -m tb.run`` on the network file; returns results.json (plus the summary text)."""
    args = [sys.executable, "-m", "tb.run", "--network", net, "--config", cfg, "--inputs", x,
            "--sim", a.sim, "--out", out]
    if a.workers:
        args += ["--workers", a.workers]
    p = _cmd(args, say)
    summary = p.stdout.split("\noutputs")[0]
    say(summary)
    res_file = out / "results.json"
    if p.returncode not in (0, 1) or not res_file.is_file():
        raise SjDigitsError(f"python -m tb.run failed (exit {p.returncode}): {p.stdout[-2000:]}")
    res = json.loads(res_file.read_text())
    res["summary"] = summary
    res["exit"] = p.returncode
    res["command"] = "python -m tb.run " + " ".join(shlex.quote(str(v)) for v in args[3:])
    return res


def _route(route: str, model, spec: TrainSpec, xs, y, folder: Path, a, say) -> dict:
    """Import (directly or via NIR), quantize, fixed point, RTL for one trained model."""

    from golden.config import HwConfig
    from golden.fixed_model import run_fixed
    from golden.importers import from_nir, from_spikingjelly
    from golden.network import load_network, save_network
    from golden.quantize import Quantized, agreement_report, quantize, report_markdown

    folder.mkdir(parents=True, exist_ok=True)
    x_t = torch.from_numpy(xs).transpose(0, 1)          # [T, B, 1, 8, 8]
    acc32, _ = _accuracy(model.float(), x_t.float(), y)
    m64 = model.double().eval()
    fw_acc, fw_pred = _accuracy(m64, x_t.double(), y)
    t0 = time.monotonic()
    imp = from_spikingjelly(m64, x_t.double())          # the framework's own trace comes with it
    row = {"route": route, "model": type(model).__name__, "framework_acc_float32": acc32,
           "framework_acc": fw_acc, "layers": [
               {"name": s.name, "kind": s.kind, "mode": s.mode, "block": s.block, "pool": s.pool,
                "bias": s.bias, "in_shape": list(s.in_shape), "out_channels": s.out_channels}
               for s in imp.model.layers], "groups": imp.groups}
    net_file, cfg_file, x_file = folder / "net.npz", folder / "cfg.json", folder / "x.npy"
    np.save(x_file, xs)
    if route == "sj":
        ref_model = imp.model
        q = quantize(ref_model, array=a.array, weight_rows=WEIGHT_ROWS, mem_rows=MEM_ROWS)
        save_network(q.network, net_file)
        cfg_file.write_text(json.dumps(q.cfg.to_dict(), indent=2, sort_keys=True) + "\n")
        row["commands"] = [f"imp = from_spikingjelly(model, x); q = quantize(imp.model, array={a.array}, "
                           f"weight_rows={WEIGHT_ROWS}, mem_rows={MEM_ROWS}) -> {net_file}, {cfg_file}"]
    else:
        graph = folder / "digits.nir"
        export_nir(m64, graph)
        share = [f"lif1:{spec.groups}", f"lif2,lif3:{spec.groups}"]
        args = [sys.executable, "-m", "golden.convert", graph, "-o", net_file, "--reset", "soft",
                "--fire", "ge", "--dt", NIR_DT, "--array", a.array, "--weight-rows", WEIGHT_ROWS,
                "--mem-rows", MEM_ROWS, "--config", cfg_file]
        for s in share:
            args += ["--share", s]
        p = _cmd(args, say)
        say(p.stdout.strip())
        if p.returncode != 0:
            raise SjDigitsError(f"python -m golden.convert failed (exit {p.returncode})")
        ref_model = from_nir(graph, reset="soft", fire="ge", dt=NIR_DT, share=share)
        cfg = HwConfig.from_dict(json.loads(cfg_file.read_text()))
        q = Quantized(cfg=cfg, network=load_network(net_file), choices={})
        # the direct import of the same model quantizes to the same integers
        qd = quantize(imp.model, array=a.array, weight_rows=WEIGHT_ROWS, mem_rows=MEM_ROWS)
        row["nir_equals_direct_import"] = bool(
            qd.cfg == cfg and all(np.array_equal(l1.weight, l2.weight) and
                                  ((l1.bias is None and l2.bias is None) or np.array_equal(l1.bias, l2.bias))
                                  for l1, l2 in zip(qd.network.layers, q.network.layers)))
        row["commands"] = ["python -m golden.convert " + " ".join(shlex.quote(str(v)) for v in args[3:])]
    with torch.no_grad():
        tr = ref_model.run(imp.spikes)
    row["ref_acc"] = float(np.mean(tr.output.argmax(1).numpy() == y))
    row["ref_pred_equals_framework"] = bool(np.array_equal(tr.output.argmax(1).numpy(), fw_pred))
    row["spike_diff"], row["spikes_compared"] = _spike_diff(tr.spikes, imp.trace.spikes, ref_model.layers)
    row["readout_max_abs_diff"] = float((tr.per_step - imp.trace.currents[-1]).abs().max())
    fx = run_fixed(q.cfg, q.network, imp.spikes.numpy().astype(np.uint8))
    fixed_pred = fx.output.sum(axis=0).argmax(1)
    row["fixed_acc"] = float(np.mean(fixed_pred == y))
    row["cfg"] = q.cfg.to_dict()
    row["config_name"] = q.cfg.name
    rep = agreement_report(ref_model, q if q.choices else quantize(
        ref_model, array=a.array, weight_rows=WEIGHT_ROWS, mem_rows=MEM_ROWS), imp.spikes)
    row["agreement_md"] = report_markdown(rep)
    row["import_seconds"] = time.monotonic() - t0
    if a.no_rtl:
        row.update(rtl_acc=None, rtl_mismatches=None, rtl_equals_fixed=None)
        return row
    t0 = time.monotonic()
    res = _run_rtl(net_file, cfg_file, x_file, folder / "rtl", a, say)
    row["commands"].append(res["command"])
    rtl_pred = np.array(res["predictions"], dtype=np.int64)
    row.update(rtl_acc=float(np.mean(rtl_pred == y)), rtl_mismatches=int(res["checked"]["mismatches"]),
               rtl_ok=bool(res["ok"]), rtl_golden_equal=bool(res["golden_equal"]),
               rtl_equals_fixed=bool(np.array_equal(rtl_pred, fixed_pred)),
               rtl_cycles=int(res["cycles"]["cycles"]), rtl_checked=res["checked"],
               rtl_wall=res["wall_seconds"], rtl_cpu=res["cpu_seconds"], rtl_summary=res["summary"],
               rtl_seconds=time.monotonic() - t0)
    return row


# ------------------------------------------------------------------ report
def _pct(v) -> str:
    return "–" if v is None else f"{100 * v:.2f} %"


def table(rows: list, n: int) -> str:
    lines = ["| route | network | SpikingJelly forward | float reference | fixed point | RTL | RTL mismatches "
             "| reference ≠ SpikingJelly (spikes) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        mm = "–" if r.get("rtl_mismatches") is None else str(r["rtl_mismatches"])
        lines.append(f"| {r['route']} | {r['model']} | {_pct(r['framework_acc'])} | {_pct(r['ref_acc'])} | "
                     f"{_pct(r['fixed_acc'])} | {_pct(r.get('rtl_acc'))} | {mm} | "
                     f"{r['spike_diff']} of {r['spikes_compared']:,} |")
    return "\n".join(lines) + f"\n\n{n} test samples; one sample = {100 / max(1, n):.2f} %."


def _failures(rows: list) -> list:
    bad = []
    for r in rows:
        if r["spike_diff"]:
            bad.append(f"{r['route']}: the float reference differs from SpikingJelly on {r['spike_diff']} spikes")
        if r.get("nir_equals_direct_import") is False:
            bad.append(f"{r['route']}: the NIR route's integer network differs from the direct import")
        if r.get("rtl_acc") is not None:
            if not (r["rtl_ok"] and r["rtl_golden_equal"] and r["rtl_mismatches"] == 0):
                bad.append(f"{r['route']}: RTL run failed ({r['rtl_mismatches']} mismatches)")
            if not r["rtl_equals_fixed"]:
                bad.append(f"{r['route']}: RTL classes differ from the fixed-point model's")
    return bad


def _cpu() -> float:
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Defaults in --help, except the "not given" ones (None, False): their help says it."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def parse_args(argv):
    p = OneLineParser(prog=PROG, formatter_class=_Help, description="Train a conv SNN in SpikingJelly on 8x8 digits, import it "
                      "(directly and through NIR), quantize it and run the whole test set on the RTL.")
    p.add_argument("--routes", default=",".join(ROUTES), help="comma-separated: sj (direct import), nir")
    p.add_argument("--epochs", type=posint("--epochs"), default=TrainSpec.epochs, help="training epochs")
    p.add_argument("-T", "--timesteps", type=posint("-T"), default=TrainSpec.timesteps,
                   help="timesteps per sample")
    p.add_argument("--channels", type=posint("--channels"), default=TrainSpec.channels,
                   help="conv channels (a multiple of --groups)")
    p.add_argument("--groups", type=posint("--groups"), default=TrainSpec.groups, help="C#N group count")
    p.add_argument("--train-samples", type=posint("--train-samples"), default=None,
                   help="train on the first N training images (default: all 1,437)")
    p.add_argument("--samples", type=posint("--samples"), default=None,
                   help="run the first N test images (default: all 360)")
    p.add_argument("--array", type=posint("--array"), default=32, help="PE array of the build")
    p.add_argument("--sim", choices=("verilator", "icarus"), default="verilator", help="simulator")
    p.add_argument("--workers", type=posint("--workers"), default=1,
                   help="tb.run --workers (1: one process, no Dask)")
    p.add_argument("--no-rtl", action="store_true", help="stop after the fixed-point model")
    p.add_argument("--out", default=str(build_path("build", "sj_digits")),
                   help="run folder (network files, NIR graph, tb.run results) and weight cache")
    p.add_argument("--report", default=str(build_path("reports", "sj_digits.md")),
                   help="report file (Markdown; the same numbers as .json beside it)")
    a = p.parse_args(argv)
    routes = [r.strip() for r in a.routes.split(",") if r.strip()]
    bad = [r for r in routes if r not in ROUTES]
    if bad or not routes:
        p.error(f"--routes: {','.join(bad) or a.routes!r} unknown; choose from {','.join(ROUTES)}")
    a.routes = routes
    if a.channels % a.groups:
        p.error(f"--channels {a.channels} is not a multiple of --groups {a.groups}")
    if a.array % a.groups:
        p.error(f"--array {a.array} is not a multiple of --groups {a.groups}")
    return a


def main(argv=None) -> int:
    a = parse_args(sys.argv[1:] if argv is None else argv)
    out = check_writable_dir(a.out, "--out folder")
    report = Path(a.report)
    check_writable_dir(report.parent, "--report folder")
    t_start, cpu_start = time.monotonic(), _cpu()

    def say(text):
        print(text, file=sys.stderr, flush=True)

    torch.set_num_threads(1)
    from golden.digits import encode, load_split

    base = TrainSpec(route="sj", channels=a.channels, groups=a.groups, timesteps=a.timesteps,
                     epochs=a.epochs, train_samples=a.train_samples or 0)
    split = load_split(base.split_seed)
    n_tr = a.train_samples or len(split.y_train)
    x_train = torch.from_numpy(encode(split.x_train[:n_tr], base.timesteps)).float().transpose(0, 1)
    y_train = split.y_train[:n_tr]
    n_te = min(a.samples or len(split.y_test), len(split.y_test))
    xs, y = encode(split.x_test[:n_te], base.timesteps), split.y_test[:n_te]
    say(f"digits: {len(y_train)} training / {n_te} test images, T = {base.timesteps}")

    rows, times = [], {}
    for route in a.routes:
        spec = replace(base, route=route)
        t0 = time.monotonic()
        model, cached = train_cached(spec, x_train, y_train, out / "cache", say)
        times[f"train_{route}"] = time.monotonic() - t0
        t0 = time.monotonic()
        row = _route(route, model, spec, xs, y, out / route, a, say)
        row["train"] = asdict(spec)
        row["train_cached"] = cached
        times[f"run_{route}"] = time.monotonic() - t0
        rows.append(row)
    wall, cpu = time.monotonic() - t_start, _cpu() - cpu_start
    failures = _failures(rows)
    tab = table(rows, n_te)
    md = ["# SpikingJelly-trained digits, end to end on the RTL", "",
          f"Generated by `{PROG} {' '.join(shlex.quote(v) for v in (sys.argv[1:] if argv is None else argv))}`"
          f" (docs/demo.md). scikit-learn digits, {len(y_train)} training / {n_te} test images, "
          f"deterministic rate coding, T = {base.timesteps}, C#{a.groups}, L sharing, BatchNorm; "
          f"ARRAY = {a.array}, {a.sim}.", "", tab, ""]
    for r in rows:
        md += [f"## Route {r['route']} ({r['model']})", "",
               "* layers: " + "; ".join(f"{l['name']} {l['kind']} {l['mode']}"
                                        f"{' block ' + str(l['block']) if l['block'] is not None else ''}"
                                        f"{' (input max-pooled ' + str(l['pool']) + 'x' + str(l['pool']) + ')' if l['pool'] > 1 else ''}"
                                        f"{' +bias' if l['bias'] else ''}" for l in r["layers"]),
               f"* SpikingJelly forward in float32 (as trained): {_pct(r['framework_acc_float32'])}",
               f"* build: `{r['config_name']}`",
               f"* read-out max |reference − SpikingJelly|: {r['readout_max_abs_diff']:.3g}"]
        if "nir_equals_direct_import" in r:
            md.append(f"* NIR route's integer network == direct import's: "
                      f"{'yes' if r['nir_equals_direct_import'] else 'NO'}")
        if r.get("rtl_acc") is not None:
            md += [f"* RTL: {r['rtl_cycles']:,} cycles, tb.run wall {r['rtl_wall']:.1f} s; "
                   f"RTL classes == fixed point: {'yes' if r['rtl_equals_fixed'] else 'NO'}", "",
                   "```", r["rtl_summary"], "```"]
        md += ["", "Commands:", "", "```"] + r["commands"] + ["```", "", r["agreement_md"], ""]
    md += ["## Run", "", f"wall {wall:.1f} s, CPU {cpu:.1f} s (this process and its children); "
           + ", ".join(f"{k} {v:.1f} s" for k, v in times.items()), ""]
    if failures:
        md += ["## FAILURES", ""] + [f"* {f}" for f in failures] + [""]
    atomic_write({report: "\n".join(md),
                  report.with_suffix(".json"): json.dumps(
                      {"rows": [{k: v for k, v in r.items() if k not in ("agreement_md",)} for r in rows],
                       "seconds": times, "wall": wall, "cpu": cpu, "ok": not failures}, indent=1) + "\n"})
    print(tab)
    print(f"\nreport: {report}; wall {wall:.1f} s, CPU {cpu:.1f} s")
    if failures:
        print("FAILED:\n" + "\n".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, PROG))
