"""Membrane-memory calculator (golden/memory.py) against hand counts and the paper's Table 1."""

import pickle
import subprocess
import sys
from pathlib import Path

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
    assert main(["--arch", "vgg16", "--input", "32", "--schemes", "C#3"]) == 2  # ProjectError
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "3 groups do not divide the 128 channels" in err
    with pytest.raises(SystemExit) as e:
        main(["--input", "abc"])
    assert e.value.code == 2
    assert main(["--network", "/nonexistent.npz"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_vgg16_l_rows_carry_the_vgg16_ls_note(capsys):
    """The paper's L figures belong to vgg16-ls: a vgg16 L row beside one is marked."""
    assert main(["--arch", "vgg16", "--input", "32", "--schemes", "baseline,L,L+C#2"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    l_row = next(l for l in lines if l.startswith("| vgg16 | 32 | 5 | L |"))
    base_row = next(l for l in lines if l.startswith("| vgg16 | 32 | 5 | baseline |"))
    assert l_row.endswith("1.23 / 1.23 † |") and base_row.endswith("1.8 / 9.0 |")
    note = [l for l in lines if l.startswith("† ")]
    assert len(note) == 1 and "vgg16-ls" in note[0] and "128" in note[0]
    assert main(["--arch", "vgg16-ls", "--input", "32", "--schemes", "L"]) == 0
    assert "†" not in capsys.readouterr().out      # the right VGG16: no note


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


# ------------------------------------------------------------ CLI contract (subprocess)

CLI = [sys.executable, "-m", "golden.memory"]
REPO = Path(__file__).resolve().parent.parent


def _cli(args, **kw):
    return subprocess.run(CLI + args, capture_output=True, text=True, cwd=REPO, timeout=120, **kw)


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    import numpy as np
    d = tmp_path_factory.mktemp("bad")
    (d / "text.npz").write_text("not a network\n")
    np.save(d / "array.npy", np.zeros(3))
    with open(d / "pickled.npz", "wb") as fh:       # a pickle: numpy would advise allow_pickle
        pickle.dump({"a": 1}, fh)
    return d


@pytest.mark.parametrize("args,message", [
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--arch", "vgg17"], "invalid choice: 'vgg17'"),
    (["--input", "abc"], "--input must be comma-separated integers"),
    (["--input", "30"], "input size 30"),
    (["-T", "0"], "--timesteps must be a positive integer"),
    (["--batch", "x"], "--batch must be a positive integer"),
    (["--mem-width", "-1"], "--mem-width must be a positive integer"),
    (["--schemes", "X#2"], "scheme 'X#2'"),
    (["--network", "{d}"], "is a directory"),
    (["--network", "{d}/missing.npz"], "no such file"),
    (["--network", "{d}/text.npz"], "not a readable .npz archive"),
    (["--network", "{d}/array.npy"], "not a readable .npz archive"),
    (["--network", "{d}/pickled.npz"], "not a readable .npz archive"),
])
def test_cli_bad_input_is_one_line_exit_2(bad_files, args, message):
    r = _cli([a.format(d=bad_files) for a in args])
    assert r.returncode == 2, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("python -m golden.memory: error: ") and message in lines[0]
    assert "allow_pickle" not in r.stderr and "Traceback" not in r.stderr and r.stdout == ""


def test_cli_piped_into_head_ends_quietly():
    # ~3,000 rows (several hundred kB): more than a pipe buffer, so the writer
    # really meets the closed pipe
    sizes = ",".join(str(32 * k) for k in range(1, 121))
    r = subprocess.run(" ".join(CLI) + f" --input {sizes} | head -1", shell=True, cwd=REPO,
                       capture_output=True, text=True, timeout=300,
                       executable="/bin/bash")
    assert r.returncode == 0
    assert r.stdout.startswith("| arch |") and r.stdout.count("\n") == 1
    assert r.stderr == "", r.stderr
    status = subprocess.run(["/bin/bash", "-c", " ".join(CLI) + f" --input {sizes} | head -1 "
                             ">/dev/null; echo ${PIPESTATUS[0]}"], cwd=REPO, capture_output=True,
                            text=True, timeout=300)
    assert status.stdout.strip() == "0" and status.stderr == ""


def test_cli_help_describes_every_option():
    r = _cli(["--help"])
    assert r.returncode == 0 and r.stderr == ""
    # argparse's help: one entry per option, its help text after the option name(s)
    import re
    entries = re.split(r"\n  (?=-)", r.stdout.split("options:", 1)[1])
    options = {}
    for e in entries:
        e = e.strip()
        if not e:
            continue
        names = re.findall(r"(?:^|, )(--?[\w-]+)", e.split("  ")[0])
        text = e[len(e.split("  ")[0]):].strip() if "  " in e else e.split("\n", 1)[-1].strip()
        options[names[0]] = text
    want = {"-h", "--arch", "--input", "--network", "--timesteps", "--schemes", "--mem-width",
            "--batch"}
    assert want <= set(options), options
    for name, text in options.items():
        assert len(text) > 10, f"{name} has no help text: {text!r}"
    for name in ("--timesteps", "--batch", "--mem-width", "--input"):
        assert "(default:" in options[name], name
