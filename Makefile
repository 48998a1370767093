# make setup      create .venv with everything, and make Fashion-MNIST available (idempotent)
# make test       the whole test suite (sets up first if needed)
# make reproduce  every method with the report's settings, then the figures and table
# make variants   SplitFed V1, V2 and U-shaped split learning, 10 epochs each, then the figures and table
# make study      the non-IID study (study.py's default grid), then the figures and table
# make privacy    split learning at every cut under each defence, attacked (privacy.py), then the figures and table
# make labels     U-shaped split learning under label-gradient noise: what the server reads of the labels
# make scale      10, 100 and 1,000 clients on 4 client ranks: split learning (cuts 1, 2), SplitFed V2, FedAvg
# make decision   which method reaches a target accuracy first, by clients and bandwidth (decision.py)
# make work       what a data holder pays: every method, 10 clients, for the models WORK_MODELS
# make bench      the speed benchmarks (ratios measured side by side)
# make mutate     mutation testing (mutmut) of the modules that need no MPI, with the score of each
# make hosts      each method across hosts made on this machine (namespaces, tc links; root): time measured vs modelled
# make bench-cores  split learning and FedAvg across CORES (default 2,4,8,16), with a per-batch trace at each

VENV   := .venv
PYTHON := $(VENV)/bin/python
DEBIAN_DATA := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
STARTED := $(shell date +%s)
CORES  ?= 2,4,8,16
comma  := ,

.PHONY: setup data test mutate reproduce variants study privacy labels scale decision work bench hosts bench-cores

setup: $(VENV)/.installed data

$(VENV)/.installed: requirements.txt pyproject.toml
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip setuptools
	$(PYTHON) -m pip install --quiet -r requirements.txt
	$(PYTHON) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

# Debian's package when we are on Debian/Ubuntu and may install; otherwise torchvision downloads into data/.
data: $(VENV)/.installed
	@if [ -n "$$FASHION_MNIST_DIR" ] || [ -e $(DEBIAN_DATA) ] || [ -e data/train-images-idx3-ubyte.gz ]; then \
		true; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; \
	else \
		$(PYTHON) -c 'import data; print("Fashion-MNIST in", data.find_data_dir())'; \
	fi

# Two tests at a time: most of a test is starting processes and waiting for them, which two can share.
# A test file goes to one worker (--dist loadfile), so that a run its tests share (a module fixture) is made once.
TEST_JOBS ?= 2
test: setup
	$(PYTHON) -m pytest -n $(TEST_JOBS) --dist loadfile -rs tests

# Mutation testing: mutmut plants one-line bugs in the modules [tool.mutmut] names (pyproject.toml) and runs their
# unit tests against each (SPLITLAB_UNIT_ONLY=1 leaves out the tests that train on the data set; one thread each,
# as two run at a time); then the share of mutants each module's tests caught. The last scores, and how long it takes: docs/tests.md, "Mutation testing".
mutate: setup
	$(VENV)/bin/pip install -q mutmut==3.8.1
	rm -rf mutants
	SPLITLAB_UNIT_ONLY=1 OMP_NUM_THREADS=1 $(VENV)/bin/mutmut run --max-children $(TEST_JOBS) > /dev/null || true
	$(VENV)/bin/mutmut results --all true | awk -F': ' '{m = $$1; sub(/^ +/, "", m); sub(/\.x[_\xc7].*/, "", m); \
		n[m]++; if ($$2 == "killed" || $$2 == "timeout") k[m]++} \
		END {for (m in n) printf "%-34s %5d mutants  %5.1f %% caught\n", m, n[m], 100 * k[m] / n[m]}' | sort

# The report's experiment, every method with its defaults, then the figures and the table.
reproduce: setup
	@echo "== [1/5] regular learning  -> results/regular.json"
	$(PYTHON) regular_learning.py --no-progress
	@echo "== [2/5] split learning, 11 ranks  -> results/split.json"
	$(VENV)/bin/mpirun -n 11 $(PYTHON) split_learning.py --no-progress
	@echo "== [3/5] federated learning  -> results/federated.json"
	$(PYTHON) federated_learning.py --no-progress
	@echo "== [4/5] synchronous SGD, 10 workers  -> results/sync_sgd.json"
	$(VENV)/bin/mpirun -n 11 $(PYTHON) sync_sgd.py --no-progress
	@echo "== [5/5] figures and table  -> results/figure1.png, comparison.png, bandwidth.png, summary.md, runs.csv"
	$(PYTHON) plot_results.py --bandwidth
	@echo "== make reproduce took $$(( $$(date +%s) - $(STARTED) )) s"

# U-shaped split learning, the report's 10 clients, under label-gradient noise: what the server reads of the labels.
LABEL_EPOCHS ?= 5
labels: setup
	for noise in 0 0.001 0.003 0.01; do \
		$(VENV)/bin/mpirun -n 11 $(PYTHON) split_learning.py --variant u-shaped --epochs $(LABEL_EPOCHS) --patience 0 \
			--grad-noise-std $$noise --leakage-images 0 --no-progress --results-dir results/labels \
			--run-name u-shaped-noise$$noise || exit 1; \
	done
	$(PYTHON) plot_results.py
	@echo "== make labels took $$(( $$(date +%s) - $(STARTED) )) s"

# Which method for my case: make scale's methods per model (IID), FedAvg for more rounds (it needs them at 100+
# clients), then decision.py's map. Resumable, as study.py is.
DECISION_MODELS ?= lenet5-report
DECISION_EPOCHS ?= 3
DECISION_ROUNDS ?= 20
# FedAvg stops once it reaches this test accuracy (--stop-at; empty: it runs every round): for vgg-small, whose
# every round costs about a split epoch, `make decision DECISION_MODELS=vgg-small DECISION_STOP_AT=0.8`.
DECISION_STOP_AT ?=
decision: setup
	for model in $(DECISION_MODELS); do \
		$(PYTHON) study.py --methods split,sflv2 --partitions iid --seeds 0 --clients 10,100,1000 --client-ranks 4 \
			--epochs $(DECISION_EPOCHS) --extra "--model $$model" --results-dir results/decision/$$model || exit 1; \
		$(PYTHON) study.py --methods federated --partitions iid --seeds 0 --clients 10,100,1000 \
			--epochs $(DECISION_ROUNDS) --extra "--model $$model$(if $(DECISION_STOP_AT), --stop-at $(DECISION_STOP_AT))" \
			--results-dir results/decision/$$model || exit 1; \
	done
	$(PYTHON) decision.py
	@echo "== make decision took $$(( $$(date +%s) - $(STARTED) )) s"

# Clients are not ranks (splitlab/net/placement.py): every K on the same 5 ranks; resumable, as study.py is.
SCALE_EPOCHS ?= 5
scale: setup
	$(PYTHON) study.py --methods split,split-cut2,sflv2,federated --partitions iid,0.5 --seeds 0 \
		--clients 10,100,1000 --client-ranks 4 --epochs $(SCALE_EPOCHS) --results-dir results/scale
	$(PYTHON) plot_results.py --bandwidth
	@echo "== make scale took $$(( $$(date +%s) - $(STARTED) )) s"

# What a data holder pays (splitlab/costs/work.py): every method with the report's 10 clients, the full data, WORK_EPOCHS epochs
# (the last is read: the first carries set-up), for each model; results/work/<model>/, then work.png and summary.md.
WORK_EPOCHS ?= 2
WORK_MODELS ?= lenet5 lenet5-report
work: setup
	@for model in $(WORK_MODELS); do \
		flags="--epochs $(WORK_EPOCHS) --patience 0 --model $$model --results-dir results/work/$$model --no-progress"; \
		echo "== $$model: regular learning, split learning and its variants, FedAvg, sync SGD"; \
		$(PYTHON) regular_learning.py $$flags || exit 1; \
		$(VENV)/bin/mpirun -n 11 $(PYTHON) split_learning.py $$flags || exit 1; \
		for variant in u-shaped sflv1 sflv2; do \
			$(VENV)/bin/mpirun -n 11 $(PYTHON) split_learning.py $$flags --variant $$variant \
				--run-name split-$$variant || exit 1; \
		done; \
		$(VENV)/bin/mpirun -n 11 $(PYTHON) federated_learning.py $$flags || exit 1; \
		$(VENV)/bin/mpirun -n 11 $(PYTHON) sync_sgd.py $$flags || exit 1; \
	done
	$(PYTHON) plot_results.py
	@echo "== make work took $$(( $$(date +%s) - $(STARTED) )) s"

variants: setup
	for variant in sflv1 sflv2 u-shaped; do \
		$(VENV)/bin/mpirun -n 11 $(PYTHON) split_learning.py --variant $$variant --epochs 10 --no-progress \
			--run-name split-$$variant || exit 1; \
	done
	$(PYTHON) plot_results.py
	@echo "== make variants took $$(( $$(date +%s) - $(STARTED) )) s"

study: setup
	$(PYTHON) study.py
	$(PYTHON) plot_results.py
	@echo "== make study took $$(( $$(date +%s) - $(STARTED) )) s"

# Privacy across depth (privacy.py, resumable): every cut of lenet5 and lenet5-report, undefended, under NoPeek
# and under noise, 2 clients, PRIVACY_EPOCHS epochs, each part attacked by both attacks, the decoder with 500 and
# with 5,000 auxiliary images. About 85 minutes on the 2-core machine (measured there: 84 s a training of 3
# epochs, 90 s an attack). vgg-small is left out: its 15 trainings and 30 attacks would add about 1.5 hours
# (docs/findings.md, "Across depth"; python privacy.py --models vgg-small runs them).
PRIVACY_EPOCHS ?= 3
privacy: setup
	$(PYTHON) privacy.py --models lenet5,lenet5-report --settings none,nopeek=0.5,nopeek=2,nopeek=8,noise=1 \
		--epochs $(PRIVACY_EPOCHS) --clients 2 --aux 500,5000
	$(PYTHON) plot_results.py
	@echo "== make privacy took $$(( $$(date +%s) - $(STARTED) )) s"

bench: setup
	$(PYTHON) benchmarks/bench_regular.py
	$(PYTHON) benchmarks/bench_split.py --variants --no-doorbells
	$(PYTHON) benchmarks/bench_split_compute.py
	$(PYTHON) benchmarks/bench_federated.py
	$(PYTHON) benchmarks/bench_sync_sgd.py

# Needs root (network namespaces, tc); writes results/hosts.md. RATES: the links, e.g. RATES=10mbit,100mbit,1gbit.
RATES ?= 10mbit,100mbit
hosts: setup
	$(PYTHON) benchmarks/bench_hosts.py --rates $(RATES)

bench-cores: setup
	$(PYTHON) benchmarks/bench_split.py --cores $(CORES) --all-cores --no-doorbells
	for n in $(subst $(comma), ,$(CORES)); do \
		if [ $$n -le $$(nproc) ]; then echo "== trace, $$n cores"; \
			taskset -c 0-$$((n - 1)) $(PYTHON) benchmarks/trace_split.py || exit 1; fi; \
	done
	$(PYTHON) benchmarks/bench_federated.py --cores $(CORES)
