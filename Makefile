# The front door. `make setup` once, then `make test`; the rest are the jobs.
# Every job writes under $(BUILD)/ only; the committed reference results (data/, bench/results/)
# change only through the *-record targets.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
SIM    ?= verilator
BUILD  ?= build
FAMILY ?= ecp5

.PHONY: help setup test golden report activations explain verilog sim sim-axis regress train bench synth bitstream \
        train-record bench-record synth-record regress-record sweep vectors regress-batch sim-netlist train-notebook train-notebook-record formal formal-full deploy-sim clean

help:
	@echo "make setup          create $(VENV) and install everything from PyPI; then: . $(VENV)/bin/activate"
	@echo "make test           the test suite (model, RTL, short cocotb runs on both simulators; JOBS=N in parallel)"
	@echo "make golden         golden model on the shipped model and held-out data -> $(BUILD)/golden.npz"
	@echo "make report         quantization report with plots -> $(BUILD)/report/"
	@echo "make activations    activation tables: errors, plot -> $(BUILD)/activations.png"
	@echo "make explain        one step of the cell, unit by unit (python -m model explain)"
	@echo "make verilog        export the default design -> $(BUILD)/lstm_cell.v"
	@echo "make vectors        test vectors + design for sim/verilog/tb_vectors.v -> $(BUILD)/vectors/"
	@echo "make sim            whole held-out set through the Verilog vs the golden model (SIM=$(SIM); or SIM=icarus)"
	@echo "make sim-axis       the AXI4-Stream wrapper (cocotbext-axi) on the whole held-out set (Verilator), shorter on Icarus, a stack"
	@echo "make regress        long randomised RTL-vs-golden regression on every core -> $(BUILD)/regress-<sim>.jsonl (SIM=, SEED=, COUNT=, STEPS=, SHARD=k/N, JOBS=)"
	@echo "make regress-batch  the same configurations in batch mode (SIM=verilator unless given)"
	@echo "make sim-netlist    the ECP5 netlist Yosys maps (synth_ecp5), simulated on the held-out set vs the golden model (SIM=$(SIM); minutes)"
	@echo "make formal         protocol proofs on two small designs, datapath equivalence on one, with mutants (~3 min)"
	@echo "make formal-full    every design: serial output, a stack, four datapath designs, the default design (~40 min)"
	@echo "make train          retrain the digits model -> $(BUILD)/train/ (needs scikit-learn)"
	@echo "make train-notebook retrain the notebook's network -> $(BUILD)/train/ (28x28 digits, H=128, TensorFlow layout)"
	@echo "make bench          speed figures (golden model, RTL cycles, checked simulation) -> $(BUILD)/bench/"
	@echo "make bitstream      bitstream + JSON report for a board -> $(BUILD)/deploy-<board>/ (BOARD=ulx3s-25f, WEIGHTS=, CLOCK=MHz, BAUD=)"
	@echo "make synth          FPGA cost of the default design (Yosys + nextpnr) -> $(BUILD)/synth/ (FAMILY=ecp5|ice40)"
	@echo "make sweep          precision sweep of the shipped model -> $(BUILD)/narrow.toml, $(BUILD)/sweep/"
	@echo "make train-record   retrain into data/ (rewrites the shipped model: tracked files)"
	@echo "make train-notebook-record  retrain the notebook's network into data/ (tracked files)"
	@echo "make bench-record   golden, rtl, sim, synth and mapped-netlist figures into bench/results/ (tracked; synth and the netlist take minutes)"
	@echo "make synth-record   FPGA cost into bench/results/synth-<family>.json (tracked)"
	@echo "make regress-record regression, then its log into bench/results/regress-<sim>.jsonl (tracked)"
	@echo "make deploy-sim     the host driver on the simulated board (Verilator, bit-level UART on a TCP socket): held-out digits vs the golden model -> $(BUILD)/deploy-sim.json (BOARD=$(BOARD))"
	@echo "make clean          remove $(BUILD)/ (simulator build cache, waves, results) and caches"

setup:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[dev]'

# pytest prints each test file as it runs it; JOBS=N (or auto) spreads the files over N workers
test:
	@echo "make test: every test but the slow ones (make regress, make regress-batch); one line per test file"
	$(PY) -m pytest $(if $(JOBS),-n $(JOBS) --dist loadfile)

golden:
	@mkdir -p $(BUILD)
	$(PY) -m model run --out $(BUILD)/golden.npz

report:
	$(PY) -m model report --plots $(BUILD)/report

sweep:
	@mkdir -p $(BUILD)
	$(PY) -m model sweep --h-error-budget 0.05 --out $(BUILD)/narrow.toml --plots $(BUILD)/sweep

activations:
	@mkdir -p $(BUILD)
	$(PY) -m model activations --plot $(BUILD)/activations.png

explain:
	$(PY) -m model explain

verilog:
	@mkdir -p $(BUILD)
	$(PY) -m rtl --out $(BUILD)/lstm_cell.v

vectors:
	@mkdir -p $(BUILD)
	$(PY) -m model vectors --out $(BUILD)/vectors
	$(PY) -m rtl --out $(BUILD)/vectors/lstm_cell.v

sim:
	$(PY) -m sim --sim $(SIM)

# the AXI4-Stream wrapper under cocotbext-axi: the digits held-out set on Verilator, a shorter
# run on Icarus, a two-layer stack (tests/test_axis.py, the tests marked slow)
sim-axis:
	$(PY) -m pytest -q -m slow tests/test_axis.py

# one pytest-xdist worker per core (JOBS=1 for a serial run); SHARD=k/N runs configurations
# i with i mod N == k into $(BUILD)/regress-$(SIM)-shard<k>of<N>.jsonl (python -m bench.merge_regress)
REGRESS_LOG := $(BUILD)/regress-$(SIM)$(if $(SHARD),-shard$(subst /,of,$(SHARD))).jsonl
regress:
	rm -f $(REGRESS_LOG)
	SIM=$(SIM) SHARD=$(SHARD) $(PY) -m pytest -q -m slow -n $(or $(JOBS),auto) tests/test_sim_regress.py

# the regression's configurations through sim/verilog/tb_vectors.v (Verilator unless SIM= is given)
BATCH_SIM := $(if $(filter command line environment,$(origin SIM)),$(SIM),verilator)
regress-batch:
	rm -f $(BUILD)/regress-batch-$(BATCH_SIM).jsonl
	SIM=$(BATCH_SIM) $(PY) -m pytest -q -m slow tests/test_sim_batch.py

# the mapped netlist (LUT4, TRELLIS_FF, CCU2C, LUT RAM, DP16KD, MULT18X18D cells) in batch mode
sim-netlist:
	@mkdir -p $(BUILD)
	$(PY) -m bench.netlist --sim $(SIM) --build-dir $(BUILD)/netlist --out $(BUILD)/netlist.json

formal:
	$(PY) -m formal --build-dir $(BUILD)/formal

formal-full:
	$(PY) -m formal --full --build-dir $(BUILD)/formal-full

train:
	$(PY) -m model.train --out-dir $(BUILD)/train

train-notebook:
	$(PY) -m model.train --notebook --out-dir $(BUILD)/train

bench:
	@mkdir -p $(BUILD)/bench
	$(PY) -m bench golden --out $(BUILD)/bench/golden.json
	$(PY) -m bench rtl --out $(BUILD)/bench/rtl.json
	$(PY) -m bench sim --out $(BUILD)/bench/sim.json --cocotb 20

bench-record:
	$(PY) -m bench golden --out bench/results/golden.json
	$(PY) -m bench rtl --out bench/results/rtl.json
	$(PY) -m bench sim --out bench/results/sim.json --cocotb 20
	$(PY) -m bench synth --out bench/results/synth.json --details-dir bench/results
	$(PY) -m bench.synth --no-head --build-dir $(BUILD)/synth-nohead --out bench/results/synth-ecp5-nohead.json
	$(PY) -m bench.netlist --sim $(SIM) --build-dir $(BUILD)/netlist --out bench/results/netlist.json

synth:
	@mkdir -p $(BUILD)/synth
	$(PY) -m bench.synth --family $(FAMILY) --build-dir $(BUILD)/synth --out $(BUILD)/synth/synth-$(FAMILY).json

# one board at a time, niced: place and route takes minutes (the 85F with the notebook model, longer)
BOARD ?= ulx3s-25f
bitstream:
	nice $(PY) -m deploy build --board $(BOARD) --out $(BUILD)/deploy-$(BOARD) \
	    $(if $(WEIGHTS),--weights $(WEIGHTS)) $(if $(CLOCK),--clock $(CLOCK)) $(if $(BAUD),--baud $(BAUD))

train-record:
	$(PY) -m model.train --out-dir data

train-notebook-record:
	$(PY) -m model.train --notebook --out-dir data

synth-record:
	$(PY) -m bench.synth --family $(FAMILY) --build-dir $(BUILD)/synth --out bench/results/synth-$(FAMILY).json

regress-record: regress
	cp $(REGRESS_LOG) bench/results/regress-$(SIM).jsonl

deploy-sim:
	@mkdir -p $(BUILD)
	$(PY) -m deploy run --port sim --board $(BOARD) --out $(BUILD)/deploy-sim.json

clean:
	rm -rf $(BUILD) sim_build .pytest_cache
	find . -name __pycache__ -prune -exec rm -rf {} +
