# The front door. `make setup` once, then `make test`; the rest are the jobs.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
SIM    ?= icarus
BUILD  ?= build

.PHONY: help setup test golden report activations verilog sim regress train bench bench-record synth clean

help:
	@echo "make setup      create $(VENV) and install everything from PyPI"
	@echo "make test       the test suite (model, RTL, short cocotb runs)"
	@echo "make golden     run the golden model on the shipped model and data -> $(BUILD)/golden.npz"
	@echo "make report     quantization report with plots -> $(BUILD)/report/"
	@echo "make verilog    export the default design -> $(BUILD)/lstm_cell.v"
	@echo "make sim        cocotb run of the Verilog vs the golden model (SIM=icarus|verilator)"
	@echo "make regress    long randomised RTL-vs-golden regression on every core (SEED=, COUNT=, SHARD=k/N)"
	@echo "make train      retrain the shipped digits model (data/)"
	@echo "make bench      benchmarks (golden model, RTL cycles) -> $(BUILD)/bench/"
	@echo "make bench-record  refresh the committed figures in bench/results/ (synth takes minutes)"
	@echo "make synth      FPGA cost of the default design (Yosys + nextpnr, ECP5) -> bench/results/"

setup:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[dev]'

test:
	$(PY) -m pytest -q

golden:
	@mkdir -p $(BUILD)
	$(PY) -m model run --out $(BUILD)/golden.npz

report:
	$(PY) -m model report --plots $(BUILD)/report

activations:
	@mkdir -p $(BUILD)
	$(PY) -m model activations --plot $(BUILD)/activations.png

verilog:
	@mkdir -p $(BUILD)
	$(PY) -m rtl --out $(BUILD)/lstm_cell.v

sim:
	$(PY) -m sim --sim $(SIM)

# one pytest-xdist worker per core (JOBS=1 for a serial run); SHARD=k/N runs configurations
# i with i mod N == k into $(BUILD)/regress-$(SIM)-shard<k>of<N>.jsonl (python -m bench.merge_regress)
REGRESS_LOG := $(BUILD)/regress-$(SIM)$(if $(SHARD),-shard$(subst /,of,$(SHARD))).jsonl
regress:
	rm -f $(REGRESS_LOG)
	SIM=$(SIM) SHARD=$(SHARD) $(PY) -m pytest -q -m slow -n $(or $(JOBS),auto) tests/test_sim_regress.py

train:
	$(PY) -m model.train

bench:
	$(PY) -m bench

bench-record:
	$(PY) -m bench golden --out bench/results/golden.json
	$(PY) -m bench rtl --out bench/results/rtl.json
	$(PY) -m bench synth --out bench/results/synth.json --details-dir bench/results

synth:
	$(PY) -m bench.synth --family $(or $(FAMILY),ecp5) --build-dir $(BUILD)/synth

clean:
	rm -rf $(BUILD) sim_build .pytest_cache
	find . -name __pycache__ -prune -exec rm -rf {} +
