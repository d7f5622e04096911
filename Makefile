# The front door. `make setup` once, then `make test`; the rest are the jobs.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
SIM    ?= icarus
BUILD  ?= build

.PHONY: help setup test golden report activations verilog sim regress formal formal-full train bench synth clean

help:
	@echo "make setup      create $(VENV) and install everything from PyPI"
	@echo "make test       the test suite (model, RTL, short cocotb runs)"
	@echo "make golden     run the golden model on the shipped model and data -> $(BUILD)/golden.npz"
	@echo "make report     quantization report with plots -> $(BUILD)/report/"
	@echo "make verilog    export the default design -> $(BUILD)/lstm_cell.v"
	@echo "make sim        cocotb run of the Verilog vs the golden model (SIM=icarus|verilator)"
	@echo "make regress    long randomised RTL-vs-golden regression (SEED=, COUNT=)"
	@echo "make formal     stream and load properties proven with SymbiYosys, every mutant caught (~1-2 min)"
	@echo "make formal-full  the same on the default design too, every mutant on every configuration"
	@echo "make train      retrain the shipped digits model (data/)"
	@echo "make bench      benchmarks -> bench/results/"
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

regress:
	rm -f $(BUILD)/regress-$(SIM).jsonl
	SIM=$(SIM) $(PY) -m pytest -q -m slow tests/test_sim_regress.py

formal:
	$(PY) -m formal --build-dir $(BUILD)/formal

formal-full:
	$(PY) -m formal --full --build-dir $(BUILD)/formal-full

train:
	$(PY) -m model.train

bench:
	$(PY) -m bench

synth:
	$(PY) -m bench.synth --family $(or $(FAMILY),ecp5) --build-dir $(BUILD)/synth

clean:
	rm -rf $(BUILD) sim_build .pytest_cache
	find . -name __pycache__ -prune -exec rm -rf {} +
