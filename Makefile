# EfficientLIF-Net shared-LIF PE array: generator, golden model, co-simulation.
#
#   make sim ARRAY=128 GROUPS=4   set up .venv if needed, emit, build, co-simulate
#   make test                     set up .venv if needed, run the pytest regression
#
# Set-up is automatic: the first target that needs Python creates .venv and
# installs the project with all its extras (dev, demo, report) and the pins in
# constraints.txt; system simulators
# (iverilog, yosys) are installed with apt-get when missing and running as root.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

ARRAY ?= 128
GROUPS ?= 4

.PHONY: setup sysdeps test emit clean sim report

setup: $(STAMP) sysdeps

$(STAMP): pyproject.toml constraints.txt
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -c constraints.txt -e '.[dev,demo,report]'
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

test: setup
	$(VPY) -m pytest

# Co-simulation of one configuration (owned by tb/; see tb/README.md):
#   make sim ARRAY=128 GROUPS=4 [SIM=verilator|icarus] [SEED=n] [WAVES=1]
#            [LAYER_SHARE=0|1] [RESET=soft|hard] [T=n] [STRESS=0|1] [SIMPATH=bulk|bfm]
# STRESS=0 drops the random command gaps and output backpressure (clean cycle counts).
# Verilog goes to sim_build/rtl/<config>/, the build to sim_build/<sim>/<config>/.
SIM ?= verilator
SEED ?= 1
WAVES ?= 0
LAYER_SHARE ?= 1
RESET ?= soft
T ?= 3
STRESS ?= 1
# SIMPATH=bulk (default): stimulus/captures in blocks via tb_bulk_top (tb/bulk.py); bfm: per-cycle BFM
SIMPATH ?= bulk

sim: setup
	@$(VPY) -m tb.sim --array '$(ARRAY)' --groups '$(GROUPS)' --sim '$(SIM)' --seed '$(SEED)' \
	  --waves '$(WAVES)' --layer-share '$(LAYER_SHARE)' --reset '$(RESET)' -T '$(T)' \
	  --stress '$(STRESS)' --path '$(SIMPATH)'

emit: setup
	$(VPY) -m gen.emit --verilog --array $(ARRAY) --groups $(GROUPS)

clean:
	rm -rf rtl sim_build build reports .pytest_cache

# Hardware cost report (owned by gen/report.py; method in docs/report.md):
#   make report [REPORT_ARGS='--array 128 --groups 1,2,4,8 --no-sim']
# Yosys area by block, LIF share, buffer bits, logic depth, measured throughput,
# LIF memory table -> reports/hardware_report.md + PNGs; synthesis cache in build/report_cache/.
REPORT_ARGS ?=

report: setup
	$(VPY) -m gen.report $(REPORT_ARGS)

# End-to-end demo (owned by tb/demo.py; see docs/demo.md): train four EfficientLIF-Net
# variants on scikit-learn's 8x8 digits, quantize, run every test sample bit-exact on the
# generated RTL (ARRAY=128, GROUPS=4, Verilator); writes reports/demo.md and reports/demo.png.
.PHONY: demo report
demo: setup
	$(VPY) -m tb.demo

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
