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

# Two test processes, a file each at a time (its module fixtures stay in one process): a sweep
# spends much of its fixed start waiting on processes that start, which the other can use.
test: setup
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

bench: setup
	$(BIN)/python bench/run_all.py   # writes BENCHMARKS.md (about 10 minutes on 2 CPU cores)

# Rewrite constraints.txt from .venv after changing a dependency (cluster nodes install from it).
constraints: setup
	{ sed -n '1,2p' constraints.txt; $(BIN)/python -m pip freeze --exclude-editable; } > constraints.new && mv constraints.new constraints.txt

clean:
	rm -rf runs .pytest_cache build *.egg-info

# Reference results (RESULTS.md), one target a table: the real MNIST test set (the t10k IDX files,
# read from ../shared/data/mnist unless MNIST=DIR) and drawn data sets in CIFAR-10's binary
# format and CelebA's layout. Each target starts its run afresh (its own directory under
# runs/reference is replaced) and prints the table RESULTS.md shows. `make results` runs all of
# them, one after another: about 50 minutes of wall time on 2 CPU cores shared with other jobs
# (RESULTS.md gives each one's).
MNIST ?= ../shared/data/mnist
REFERENCE := runs/reference
REFERENCE_RUN = rm -rf $(REFERENCE)/$(1) && $(BIN)/gensweep run search_spaces/reference/$(1).yaml --storage-path $(REFERENCE)

.PHONY: results results-vae results-dcgan results-wgan-gp results-gan results-sr results-cifar10 results-celeba

results: results-vae results-gan results-sr results-cifar10 results-celeba

results-vae: setup
	$(call REFERENCE_RUN,vae_mnist) --set data.path=$(MNIST)
	$(BIN)/python bench/reference_vae.py --run $(REFERENCE)/vae_mnist --mnist $(MNIST)

results-dcgan: setup
	$(call REFERENCE_RUN,dcgan_mnist) --set data.path=$(MNIST)

results-wgan-gp: setup
	$(call REFERENCE_RUN,wgan_gp_mnist) --set data.path=$(MNIST)

results-gan: results-dcgan results-wgan-gp
	$(BIN)/python bench/reference_gan.py $(REFERENCE)/dcgan_mnist $(REFERENCE)/wgan_gp_mnist

results-sr: setup
	$(BIN)/python bench/reference_sr.py export --mnist $(MNIST) --out $(REFERENCE)/data/mnist_t10k_png
	$(call REFERENCE_RUN,unet_sr_mnist)
	$(BIN)/python bench/reference_sr.py evaluate --run $(REFERENCE)/unet_sr_mnist

results-cifar10: setup
	$(BIN)/python bench/reference_formats.py cifar10 --out $(REFERENCE)/data/cifar10
	$(call REFERENCE_RUN,cifar10_format)
	$(BIN)/python bench/reference_gan.py $(REFERENCE)/cifar10_format

# The faces are decoded once into the decoded cache (gensweep prepare), which the run then maps.
results-celeba: setup
	$(BIN)/python bench/reference_formats.py celeba --out $(REFERENCE)/data/celeba
	$(BIN)/gensweep prepare search_spaces/reference/celeba_format.yaml
	$(call REFERENCE_RUN,celeba_format)
	$(BIN)/python bench/reference_gan.py $(REFERENCE)/celeba_format
