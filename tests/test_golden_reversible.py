"""Reversible backward (golden/reversible.py): gradients equal plain autograd, less memory saved."""

import pytest
import torch

from golden.lif import LIFParams
from golden.reference import EfficientLIFNet, LayerSpec, with_scheme
from golden.reversible import ChainTape, SavedBytes, rev_layer_step, saved_bytes

torch.set_num_threads(1)

BASE = [LayerSpec("conv", (2, 5, 5), 4, kernel=3, padding=1, name="c0"),
        LayerSpec("conv", (4, 5, 5), 4, kernel=3, padding=1, name="c1"),
        LayerSpec("linear", (100,), 3, mode="readout", name="fc")]


def pair(scheme, params, dtype=torch.float64, checkpoint_every=None, layers=BASE):
    """The same network twice: plain autograd and reversible backward."""
    ls, groups = with_scheme(layers, scheme)
    a = EfficientLIFNet(ls, groups, params, dtype=dtype, init_gain=3.0)
    r = EfficientLIFNet(ls, groups, params, backward="reversible", dtype=dtype, init_gain=3.0,
                        checkpoint_every=checkpoint_every)
    r.load_state_dict(a.state_dict())
    return a, r


def grads(net, x):
    y = net(x.to(net.weights[0].dtype))
    loss = (y * torch.linspace(-1, 1, y.shape[-1], dtype=y.dtype)).sum() + (y ** 2).sum() * 0.01
    return [g.detach() for g in torch.autograd.grad(loss, list(net.parameters()))]


def rel_err(ga, gr):
    return max(float((a - b).norm() / a.norm()) for a, b in zip(ga, gr))


def spikes(T=4, B=3, shape=(2, 5, 5), seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand((T, B, *shape), generator=g) < 0.4).double()


@pytest.mark.parametrize("scheme", ["baseline", "L", "C#2", "L+C#2"])
@pytest.mark.parametrize("fire,detach", [("gt", True), ("ge", False)])
def test_float64_gradients_match_autograd(scheme, fire, detach):
    p = LIFParams(leak=0.5, fire=fire, detach_reset=detach)
    a, r = pair(scheme, p)
    x = spikes()
    ya, yr = a(x), r(x)
    assert torch.equal(ya, yr), "reversible forward must be the same computation"
    ga, gr = grads(a, x), grads(r, x)
    assert all(float(g.norm()) > 0 for g in ga), "gradients should be non-trivial"
    assert rel_err(ga, gr) <= 1e-9


def test_float32_short_chain_gradients_match():
    """T=4, two layers, two groups: chains of 8-16 reverse steps.

    Measured relative errors: λ=0.5: L 6e-6, C#2 1e-5, L+C#2 1e-3; λ=0.75: L+C#2 6e-6.
    """
    for scheme, leak in (("baseline", 0.5), ("L", 0.5), ("C#2", 0.5), ("L+C#2", 0.75)):
        a, r = pair(scheme, LIFParams(leak=leak), dtype=torch.float32)
        x = spikes().float()
        assert rel_err(grads(a, x), grads(r, x)) <= 1e-4, scheme


def test_checkpoint_interval_bounds_the_error():
    """λ=0.25 over a 48-step chain: pure reversal loses everything, K=4 keeps float64 accuracy."""
    p = LIFParams(leak=0.25)
    x = spikes(T=12)
    a, r_pure = pair("L+C#2", p)
    _, r_k4 = pair("L+C#2", p, checkpoint_every=4)
    ga = grads(a, x)
    err_pure = rel_err(ga, grads(r_pure, x))
    err_k4 = rel_err(ga, grads(r_k4, x))
    assert err_k4 <= 1e-9
    assert not err_pure <= 1e-3          # also true when the reversal overflowed to nan


def test_initial_membrane_is_reconstructed_to_zero():
    p = LIFParams(leak=0.5)
    _, r = pair("L+C#2", p)
    tapes = []
    orig = ChainTape.__init__

    def spy(self, *args, **kw):
        orig(self, *args, **kw)
        tapes.append(self)

    ChainTape.__init__ = spy
    try:
        grads(r, spikes())
    finally:
        ChainTape.__init__ = orig
    assert len(tapes) == 1 and tapes[0].initial_error is not None
    assert tapes[0].initial_error < 1e-10


def test_saved_bytes_only_last_membrane_per_chain():
    T, B = 4, 3
    x = spikes(T=T, B=B)
    neurons = 4 * 5 * 5                       # per LIF layer and sample
    for scheme, chains_state in (("baseline", 2 * neurons), ("L", neurons),
                                 ("C#2", 2 * neurons // 2), ("L+C#2", neurons // 2)):
        a, r = pair(scheme, LIFParams(leak=0.5))
        sa, sr = saved_bytes(a, x), saved_bytes(r, x)
        # plain autograd keeps U of every LIF step (8 bytes each in float64)
        assert sa.by_dtype["float64"] >= T * 2 * neurons * B * 8, scheme
        # reversible keeps one float membrane per chain; everything else is 1-byte spikes
        assert sr.by_dtype["float64"] == B * chains_state * 8, scheme
        assert set(sr.by_dtype) == {"float64", "bool"}
        assert sr.total < sa.total / 2, scheme


def test_saved_bytes_counter_counts_a_plain_save():
    t = torch.randn(100, dtype=torch.float64, requires_grad=True)
    with SavedBytes() as c:
        (t * t).sum()
    assert c.total == 800            # t saved twice (both operands): one storage, counted once
    w = torch.randn(10, requires_grad=True)
    with SavedBytes(exclude=[w]) as c:
        (w ** 2).sum()                # pow saves its input: the excluded parameter
    assert c.total == 0 and c.excluded_bytes == 40


def test_missing_chain_gradient_raises():
    """A loss that ignores the chain's later steps never runs their backward."""
    spec = LayerSpec("linear", (3,), 2)
    tape = ChainTape(2)
    w = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    x = torch.ones(1, 3, dtype=torch.float64)
    v = torch.zeros(1, 2, dtype=torch.float64)
    o0, v, _, _ = rev_layer_step(tape, 0, v, x, w, spec, 1, LIFParams())
    rev_layer_step(tape, 1, v, x, w, spec, 1, LIFParams())
    with pytest.raises(RuntimeError, match="whole chain"):
        torch.autograd.grad(o0.sum(), [w])


def test_chain_tape_checkpoint_positions():
    tape = ChainTape(10, checkpoint_every=4)
    assert [s for s in range(10) if tape.keep(s)] == [1, 5, 9]
    assert [s for s in range(10) if ChainTape(10).keep(s)] == [9]
