"""Membrane-memory calculator (golden/memory.py) against hand counts and the paper's Table 1."""

import pytest

from golden.memory import (MemoryCalcError, main, markdown, memory_table, scheme_memory, lif_layers,
                           LIFLayer)
from golden.reference import LayerSpec

# Paper Table 1, T=5, 32-bit membranes, MB (= MiB): (arch, input) -> scheme -> (fwd, bwd)
PAPER = {
    ("vgg16", 32): {"baseline": (1.80, 9.0), "C#2": (0.90, 0.90)},
    ("vgg16", 64): {"baseline": (7.22, 36.1), "C#2": (3.61, 3.61)},
    ("vgg16", 224): {"baseline": (88.43, 442.15), "C#2": (44.21, 44.21)},
    ("vgg16-ls", 32): {"L": (1.23, 1.23), "L+C#2": (0.62, 0.62)},
    ("vgg16-ls", 64): {"L": (4.91, 4.91), "L+C#2": (2.46, 2.46)},
    ("vgg16-ls", 224): {"L": (60.10, 60.10), "L+C#2": (30.05, 30.05)},
    ("resnet19", 32): {"baseline": (2.88, 14.40), "C#2": (1.44, 1.44)},
    ("resnet19", 64): {"baseline": (11.5, 57.5), "C#2": (5.75, 5.75)},
    ("resnet19", 224): {"baseline": (140.88, 704.4), "C#2": (70.44, 70.44)},
}


def row(rows, scheme):
    return next(r for r in rows if r.scheme == scheme)


@pytest.mark.parametrize("arch,size", sorted(PAPER))
def test_matches_paper_table1(arch, size):
    rows = memory_table(arch, size, timesteps=5)
    for scheme, (fwd, bwd) in PAPER[(arch, size)].items():
        r = row(rows, scheme)
        # the paper rounds to 2 decimals (3 significant digits for 11.5 / 57.5)
        assert r.fwd_mib_32 == pytest.approx(fwd, abs=0.0075, rel=0.005), scheme
        assert r.bwd_mib_32 == pytest.approx(bwd, abs=0.0075, rel=0.005), scheme


def test_vgg16_hand_count_and_ratios():
    # 128·32² ·2 + 256·16²·2 + 256·8²·3 + 512·4²·3 + 512·2²·3
    base = 2 * 131072 + 2 * 65536 + 3 * 16384 + 3 * 8192 + 3 * 2048
    # L: conv1, conv2 own; one membrane per later stage
    shared = 2 * 131072 + 65536 + 16384 + 8192 + 2048
    rows = memory_table("vgg16", 32, timesteps=5)
    assert row(rows, "baseline").fwd_words == base
    assert row(rows, "L").fwd_words == shared
    assert row(rows, "L+C#2").fwd_words == shared // 2
    assert row(rows, "C#4").fwd_words == base // 4
    assert row(rows, "C#8").fwd_words == base // 8
    # paper: L+C#2 / L = 0.62 / 1.23 ≈ 0.5; C#2 / baseline = 0.90 / 1.80 = 0.5
    assert row(rows, "C#2").fwd_ratio == 0.5
    assert row(rows, "L+C#2").fwd_words / row(rows, "L").fwd_words == 0.5


def test_resnet19_l_counts_one_membrane_per_stage():
    rows = memory_table("resnet19", 32, timesteps=5)
    assert row(rows, "L").fwd_words == 128 * 32 * 32 + 256 * 16 * 16 + 512 * 8 * 8 + 512 * 4 * 4
    assert row(rows, "L+C#4").fwd_words == row(rows, "L").fwd_words // 4


def test_backward_rules_and_hw_width():
    rows = memory_table("resnet19", 64, timesteps=7, mem_width=12, batch=3)
    base = row(rows, "baseline")
    assert base.bwd_words == 7 * base.fwd_words
    for r in rows:
        assert r.bwd_bptt_words == base.bwd_words
        if r.scheme != "baseline":
            assert r.bwd_words == r.fwd_words
        assert r.fwd_mib_hw == pytest.approx(r.fwd_words * 12 / 8 / 2 ** 20)
    one = row(memory_table("resnet19", 64, timesteps=7), "baseline")
    assert base.fwd_words == 3 * one.fwd_words


def test_network_description_is_measured():
    layers = [LayerSpec("conv", (2, 8, 8), 8, kernel=3, padding=1, block=0),
              LayerSpec("conv", (8, 8, 8), 8, kernel=3, padding=1, block=0),
              LayerSpec("linear", (512,), 16),
              LayerSpec("linear", (16,), 4, mode="readout")]
    assert [layer.shape for layer in lif_layers(layers)] == [(8, 8, 8), (8, 8, 8), (16, 1, 1)]
    rows = memory_table(layers, timesteps=2, schemes=["baseline", "L", "C#4", "L+C#4"])
    assert [r.fwd_words for r in rows] == [512 + 512 + 16, 512 + 16, 128 + 128 + 4, 128 + 4]
    assert "| network |" in markdown(rows)


def test_golden_network_object_is_accepted():
    np = pytest.importorskip("numpy")
    from golden.network import Layer, Network
    net = Network((4,), (Layer.linear(np.zeros((6, 4), dtype=int), block=1),
                         Layer.linear(np.zeros((6, 6), dtype=int), block=1)))
    assert row(memory_table(net, schemes=["L"]), "L").fwd_words == 6


@pytest.mark.parametrize("kw,msg", [
    (dict(net="alexnet"), "unknown architecture"),
    (dict(input_size=30), "multiple of 16"),
    (dict(schemes=["C#3"]), "do not divide"),
    (dict(schemes=["X#2"]), "scheme"),
    (dict(schemes=[]), "no schemes"),
    (dict(timesteps=0), "timesteps"),
    (dict(mem_width="16"), "mem_width"),
])
def test_bad_arguments(kw, msg):
    with pytest.raises(MemoryCalcError, match=msg):
        memory_table(**{"net": "vgg16", **kw})


def test_block_with_mismatched_shapes_is_rejected():
    with pytest.raises(MemoryCalcError, match="differs"):
        scheme_memory([LIFLayer("a", (4, 2, 2), 0), LIFLayer("b", (4, 1, 1), 0)], "L")


def test_cli_prints_markdown_and_rejects_bad_input(capsys):
    assert main(["--arch", "vgg16", "--input", "32", "--schemes", "baseline,L+C#2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("| arch |") and "| vgg16 | 32 | 5 | L+C#2 |" in out
    assert "1.8 / 9.0" in out                      # the paper's figures are shown beside ours
    assert main(["--arch", "vgg17"]) == 2
    assert "unknown architecture 'vgg17'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["--input", "abc"])
    assert e.value.code == 2
    assert main(["--network", "/nonexistent.npz"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_cli_network_file(tmp_path, capsys):
    np = pytest.importorskip("numpy")
    from golden.network import Layer, Network, save_network
    net = Network((2, 4, 4), (Layer.conv((2, 4, 4), np.zeros((4, 2, 3, 3), int), padding=1, block=0),
                              Layer.conv((4, 4, 4), np.zeros((4, 4, 3, 3), int), padding=1, block=0),
                              Layer.linear(np.zeros((3, 64), int), mode="readout")))
    path = tmp_path / "net.npz"
    save_network(net, path)
    assert main(["--network", str(path), "--schemes", "baseline,L+C#4", "-T", "3"]) == 0
    out = capsys.readouterr().out
    assert "| network | - | 3 | baseline | 128 | 384 |" in out      # 2 layers x 64 neurons, x T
    assert "| network | - | 3 | L+C#4 | 16 | 16 |" in out           # one 64-neuron membrane / 4
