# The front door. `make setup` once, then `make test`; the rest are the jobs.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
SIM    ?= icarus
BUILD  ?= build

.PHONY: help setup test golden report activations verilog vectors sim regress regress-batch train bench synth clean

help:
	@echo "make setup      create $(VENV) and install everything from PyPI"
	@echo "make test       the test suite (model, RTL, short cocotb runs)"
	@echo "make golden     run the golden model on the shipped model and data -> $(BUILD)/golden.npz"
	@echo "make report     quantization report with plots -> $(BUILD)/report/"
	@echo "make verilog    export the default design -> $(BUILD)/lstm_cell.v"
	@echo "make vectors    test vectors + design for sim/verilog/tb_vectors.v -> $(BUILD)/vectors/"
	@echo "make sim        cocotb run of the Verilog vs the golden model (SIM=icarus|verilator)"
	@echo "make regress    long randomised RTL-vs-golden regression (SEED=, COUNT=)"
	@echo "make regress-batch  the same configurations in batch mode (SIM=verilator unless given)"
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

vectors:
	@mkdir -p $(BUILD)
	$(PY) -m model vectors --out $(BUILD)/vectors
	$(PY) -m rtl --out $(BUILD)/vectors/lstm_cell.v

sim:
	$(PY) -m sim --sim $(SIM)

regress:
	rm -f $(BUILD)/regress-$(SIM).jsonl
	SIM=$(SIM) $(PY) -m pytest -q -m slow tests/test_sim_regress.py

# the regression's configurations through sim/verilog/tb_vectors.v (Verilator unless SIM= is given)
BATCH_SIM := $(if $(filter command line environment,$(origin SIM)),$(SIM),verilator)
regress-batch:
	rm -f $(BUILD)/regress-batch-$(BATCH_SIM).jsonl
	SIM=$(BATCH_SIM) $(PY) -m pytest -q -m slow tests/test_sim_batch.py

train:
	$(PY) -m model.train

bench:
	$(PY) -m bench

synth:
	$(PY) -m bench.synth --family $(or $(FAMILY),ecp5) --build-dir $(BUILD)/synth

clean:
	rm -rf $(BUILD) sim_build .pytest_cache
	find . -name __pycache__ -prune -exec rm -rf {} +
