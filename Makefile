# Two commands, from a fresh clone with Python 3.11 and pip:
#   make sweep   set up .venv, then run the default sweep (search_spaces/vae_latent.yaml)
#   make test    set up .venv, then run the test suite
#   make test-fast  the tests not marked slow (no Ray, no real sweeps): for development
# .venv is reused when present (the torch wheels make it several GB); it is never deleted here.

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.gensweep-installed

.PHONY: setup sweep test test-fast bench clean constraints

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	@touch $(STAMP)

sweep: setup
	$(BIN)/gensweep run search_spaces/vae_latent.yaml

test: setup
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

bench: setup
	$(BIN)/python bench/run_all.py   # writes BENCHMARKS.md (about 10 minutes on 2 CPU cores)

# Rewrite constraints.txt from .venv after changing a dependency (cluster nodes install from it).
constraints: setup
	{ sed -n '1,2p' constraints.txt; $(BIN)/python -m pip freeze --exclude-editable; } > constraints.new && mv constraints.new constraints.txt

clean:
	rm -rf runs .pytest_cache build *.egg-info
