"""golden.traffic: hand-computed toy cases, monotonicity, residency, CLI, plot.

The toy expectations are derived here from the loop order of docs/traffic.md,
not read from the code: a 2-layer network, layer 0 takes a 1×2×2 8-bit image,
both layers have 4 channels at 2×2 (16 neurons), 3×3 kernels, one L block.
"""

from __future__ import annotations

import os
import stat

import pytest

from golden.cli import run_main
from golden.traffic import (KINDS, Budget, ConvLayer, array_budget, block_budget, conv_layers, main,
                            sata_budget, sweep, traffic, traffic_markdown, transfers)

T, B = 3, 2
WB, MB = 8, 16                      # weight bits, membrane bits
BURST = 8                           # bytes -> 64-bit bursts
TOY = [ConvLayer("l0", (4, 2, 2), (4, 2, 2), fanin=9 * 1, in_elems=1 * 2 * 2, in_bits=8, block="b"),
       ConvLayer("l1", (4, 2, 2), (4, 2, 2), fanin=9 * 4, in_elems=4 * 2 * 2, in_bits=1, block="b")]
W0 = 4 * 9 * WB                      # 288 weight bits
W1 = 4 * 36 * WB                     # 1152
S = 16 * MB                          # 256 membrane bits per layer (and per L block), one sample


def run(scheme, weight_bits, membrane_bits, spike_bits=0, batch=B):
    return traffic(TOY, scheme, Budget("t", weight_bits, membrane_bits, spike_bits), batch, T,
                   weight_bits=WB, mem_bits=MB, burst_bytes=BURST)


def test_toy_baseline_weights_resident_membranes_spilled():
    t = run("baseline", 10_000, 0)
    l0, l1 = t.layers
    # weights fit (1440 <= 10000): loaded once per mini-batch
    assert t.bits("weight_rd") == W0 + W1 == 1440
    assert l0.accesses["weight_rd"] == 5 and l1.accesses["weight_rd"] == 18   # ceil(288/64), 1152/64
    # input: layer 0 reads 4 pixels x 8 b, layer 1 reads 16 spikes, every (t, sample)
    assert l0.bits["spike_rd"] == 32 * T * B and l1.bits["spike_rd"] == 16 * T * B
    assert l0.bits["spike_wr"] == l1.bits["spike_wr"] == 16 * T * B
    assert t.accesses("spike_rd") == t.accesses("spike_wr") == 2 * T * B       # 1 burst each
    # each layer: no fill at t = 0 (zero start), no spill at t = T-1 (final state unused)
    for ly in t.layers:
        assert ly.bits["mem_rd"] == ly.bits["mem_wr"] == (T - 1) * B * S == 1024
        assert ly.accesses["mem_rd"] == (T - 1) * B * (S // 64)
    assert t.bits() == 1440 + (32 + 16) * 6 + 2 * 16 * 6 + 4 * 1024


def test_toy_L_layer_major_when_block_does_not_fit():
    # membrane buffer 0: the block state cannot stay on chip between l0 and l1.
    t = run("L", 10_000, 0)
    l0, l1 = t.layers
    assert l0.mode == l1.mode == "layer-major"
    # l0 fills at t = 1..T-1 and spills at every t (l1 reads it); l1 the reverse
    assert l0.bits["mem_rd"] == (T - 1) * B * S and l0.bits["mem_wr"] == T * B * S
    assert l1.bits["mem_rd"] == T * B * S and l1.bits["mem_wr"] == (T - 1) * B * S
    # = baseline + 2 (m-1) S B: L does not pay off if the block must go off chip between layers
    base = run("baseline", 10_000, 0)
    assert (t.bits("mem_rd") + t.bits("mem_wr")) - (base.bits("mem_rd") + base.bits("mem_wr")) \
        == 2 * (2 - 1) * S * B


def test_toy_L_fused_block_travels_once_per_timestep():
    # one sample's block state fits (256 b), two samples' whole network does not
    t = run("L", 10_000, S)
    l0, l1 = t.layers
    assert l0.mode == l1.mode == "fused b=1"
    assert l0.bits["mem_rd"] == (T - 1) * B * S and l0.bits["mem_wr"] == 0
    assert l1.bits["mem_rd"] == 0 and l1.bits["mem_wr"] == (T - 1) * B * S
    base = run("baseline", 10_000, S)                    # 2 layers x 2 samples x 256 > 256
    assert base.bits("mem_rd") == 2 * (T - 1) * B * S
    assert t.bits("weight_rd") == base.bits("weight_rd") == 1440   # resident weights: no reload


def test_toy_chunks_and_fused_vs_layer_major_choice():
    # weight buffer 600 b: l0 (72 b/channel) is one chunk of 4; l1 (288 b/channel) two chunks of 2
    base = run("baseline", 600, S)
    l0, l1 = base.layers
    assert (l0.chunks, l1.chunks) == (1, 2)
    assert l0.bits["weight_rd"] == W0 * T and l1.bits["weight_rd"] == W1 * T   # once per t per batch
    assert l1.accesses["weight_rd"] == 2 * T * (576 // 64)
    assert l1.bits["spike_rd"] == 16 * T * B * 2         # no spike buffer: re-read per chunk
    assert l1.accesses["mem_rd"] == 2 * (T - 1) * B * (128 // 64)   # 2 ch x 4 words x 16 b / chunk
    # L fused at b=1 would reload both layers' weights twice per timestep:
    #   extra weights (W0 + W1) * T = 4320 b  >  membranes saved 2 (m-1)... = (5120 - 2048) = 3072 b
    lt = run("L", 600, S)
    assert {ly.mode for ly in lt.layers} == {"layer-major"}
    assert lt.bits("weight_rd") == (W0 + W1) * T
    # 2 samples' block state is the whole network's state under L: resident, no membrane traffic,
    # while the baseline (2 layers x 2 samples x 256 b) still spills
    lt2 = run("L", 600, 2 * S)
    assert {ly.mode for ly in lt2.layers} == {"resident"} and lt2.bits("mem_rd") == 0
    assert run("baseline", 600, 2 * S).bits("mem_rd") == 2 * (T - 1) * B * S


def test_toy_cross_channel_groups():
    # C#2: half the membrane words per chunk; chunks hold whole c' slices (multiples of 2 ch)
    t = run("C#2", 600, 0)
    l0, l1 = t.layers
    assert l0.bits["mem_rd"] == (T - 1) * B * (16 // 2) * MB
    assert l1.chunks == 2 and l1.accesses["mem_rd"] == 2 * (T - 1) * B * 1   # 64-b transfers
    with pytest.raises(Exception, match="weight buffer"):
        run("C#4", 600, 0)                                # 4 x 288 b do not fit 600 b


def test_toy_nothing_spills_with_a_big_budget():
    for scheme in ("baseline", "L", "C#2", "C#4", "L+C#4"):
        t = run(scheme, 10_000, 2 * 2 * S)                # B x whole-network state fits
        assert t.bits("mem_rd") == t.bits("mem_wr") == 0
        assert {ly.mode for ly in t.layers} == {"resident"}


def test_big_budget_zero_membrane_traffic_real_networks():
    big = Budget("big", 1 << 40, 1 << 40, 1 << 40)
    for arch in ("vgg16", "resnet19"):
        for scheme in ("baseline", "L", "C#4", "L+C#4"):
            t = traffic(arch, scheme, big, 64, 5, input_size=32)
            assert t.bits("mem_rd") == t.bits("mem_wr") == 0
            # weights resident: loaded once per mini-batch, whatever T
            geo = conv_layers(arch, 32)
            assert t.bits("weight_rd") == sum(ly.fanin * ly.lif_shape[0] * 8 for ly in geo)


def test_geometry_vgg16_and_resnet19():
    v = conv_layers("vgg16", 32)
    assert len(v) == 13 and v[0].fanin == 27 and v[0].in_bits == 8 and v[0].in_elems == 3 * 32 * 32
    assert v[1].out_shape == (128, 16, 16)                # pooled on the way out
    assert v[2].fanin == 9 * 128 and v[2].in_elems == 128 * 16 * 16
    r = conv_layers("resnet19", 32)
    assert len(r) == 17                                   # LIF layers: conv1 + 8 basic blocks
    s1 = r[1:7]
    assert s1[0].fanin == 9 * 128 and s1[0].in_elems == 128 * 32 * 32     # stride-2 conv
    assert s1[1].fanin == 9 * 256 + 128                  # + 1x1 shortcut conv 128 -> 256
    assert s1[1].in_elems == 256 * 16 * 16 + 128 * 32 * 32
    assert s1[3].fanin == 9 * 256 and s1[3].in_elems == 2 * 256 * 16 * 16   # identity shortcut


@pytest.mark.parametrize("arch", ["vgg16", "resnet19"])
@pytest.mark.parametrize("budget", ["array", "sata", "block"])
def test_bigger_batch_never_more_weight_traffic_per_sample(arch, budget):
    rows = sweep([arch], [32, 64], [1, 2, 8, 16, 64], ("baseline", "L", "C#4", "L+C#4"), [budget])
    per = {}
    for r in rows:
        per.setdefault((r.input_size, r.scheme), []).append(r.bits("weight_rd") / r.batch)
    for key, vals in per.items():
        assert all(b <= a for a, b in zip(vals, vals[1:])), (key, vals)


@pytest.mark.parametrize("arch", ["vgg16", "vgg16-ls", "resnet19"])
def test_L_never_more_membrane_traffic_when_blocks_fuse(arch):
    # the paper's premise: every block's shared state stays on chip between its layers
    for size in (32, 64, 224):
        layers = conv_layers(arch, size)
        for b in (1, 8, 64):
            bud = block_budget(layers, b)
            for base_s, shared_s in (("baseline", "L"), ("C#4", "L+C#4")):
                base = traffic(layers, base_s, bud, b)
                shared = traffic(layers, shared_s, bud, b)
                mem = lambda t: t.bits("mem_rd") + t.bits("mem_wr")
                assert mem(shared) < mem(base)
                assert all(not ly.mode.startswith("layer-major") for ly in shared.layers
                           if ly.name.startswith("stage"))


def test_L_reduction_close_to_paper_under_block_budget():
    # not a copy of the code's output: a band around the paper's 0.77 / 0.75
    for size in (32, 64):
        layers = conv_layers("vgg16", size)
        bud = block_budget(layers, 64)
        r = traffic(layers, "L", bud, 64).accesses() / traffic(layers, "baseline", bud, 64).accesses()
        assert 0.70 < r < 0.85


def test_budgets():
    a = array_budget()
    assert a.weight_bits == 256 * 128 * 8 and a.membrane_bits == 64 * 32 * 16 and a.spike_bits == 0
    s = sata_budget()
    assert s.weight_bits == 147456 * 8 and "assumption" in s.source


# ------------------------------------------------------------------- CLI
PROG = "python -m golden.traffic"


@pytest.mark.parametrize("argv", [
    ["--batch", "0"], ["--batch", "x"], ["--arch", "alexnet"], ["--input", "30"],
    ["--schemes", "C#3"], ["--budget", "huge"], ["--format", "html"], ["--plot", "out.txt"],
    ["--timesteps", "0"], ["--burst", "-1"]])
def test_cli_errors_one_line_exit_2(argv, capsys):
    try:
        status = run_main(main, PROG, argv)
    except SystemExit as e:
        status = e.code
    assert status == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"{PROG}: error:"), err


def test_cli_prints_table_and_comparison(capsys):
    assert run_main(main, PROG, ["--arch", "vgg16", "--input", "32", "--batch", "64",
                                 "--format", "text", "--budget", "array"]) == 0
    out = capsys.readouterr().out
    assert "vgg16" in out and "paper 0.77" in out and "paper 0.75" in out and "|" not in out


def test_cli_plot_png_mode_0644(tmp_path, capsys):
    png = tmp_path / "sub" / "traffic.png"
    assert run_main(main, PROG, ["--arch", "vgg16", "--input", "32,64", "--batch", "1,64",
                                 "--plot", str(png)]) == 0
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert stat.S_IMODE(os.stat(png).st_mode) == 0o644


def test_traffic_markdown_section():
    md = traffic_markdown("dram_traffic.png", archs=["vgg16"], sizes=[32], batches=[64])
    assert md.startswith("## Off-chip (DRAM) traffic")
    assert "| vgg16 | 32 | 64 | array |" in md and "| vgg16 | 32 | 64 | block |" in md
    assert "paper 0.77" in md and "![DRAM accesses per scheme](dram_traffic.png)" in md


def _sum_transfers(plan, burst_bits):
    bits = {k: 0 for k, _, _ in KINDS}
    acc = dict(bits)
    for x in transfers(plan):
        bits[x.kind] += x.bits
        acc[x.kind] += -(-x.bits // burst_bits)
    return bits, acc


@pytest.mark.parametrize("scheme", ["baseline", "L", "C#2", "C#4", "L+C#4"])
@pytest.mark.parametrize("case", [
    ("toy", "toy", 600, 0, 0), ("toy", "toy", 600, S, 0), ("toy", "toy", 10_000, S, 0),
    ("toy", "toy", 10_000, 4 * S, 0), ("vgg16", 16, None, None, None),
    ("vgg16", 16, 262_144, 16 * 8 * 8 * 16 * 3, 8 * 8 * 128 * 3),
    ("resnet19", 8, None, None, None), ("resnet19", 8, 10 ** 9, 10 ** 9, 0)])
def test_closed_form_equals_explicit_schedule(case, scheme):
    # the explicit loop nest (transfers) and the closed forms (traffic) count the same
    arch, size, wbud, mbud, sbud = case
    if arch == "toy":
        if scheme == "C#4" or scheme == "L+C#4":
            wbud = 10_000
        plan = run(scheme, wbud, mbud, sbud, batch=3)
    else:
        bud = array_budget() if wbud is None else Budget("t", wbud, mbud, sbud)
        plan = traffic(arch, scheme, bud, 3, 2, input_size=size, burst_bytes=BURST)
    bits, acc = _sum_transfers(plan, BURST * 8)
    for k, _, _ in KINDS:
        assert bits[k] == plan.bits(k), k
        assert acc[k] == plan.accesses(k), k


def test_cli_unwritable_plot_folder_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert run_main(main, PROG, ["--arch", "vgg16", "--input", "32", "--batch", "1",
                                 "--plot", str(blocker / "x.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--plot folder" in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
