# make test / make demo work on a fresh machine with Python 3.11 and pip only.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint demo clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip setuptools wheel
	# torch/torchvision are pinned in pyproject (the pair that lies on this machine's disk).
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 RAY_USAGE_STATS_ENABLED=0 \
		$(BIN)/python -m pytest -q tests

lint: $(STAMP)
	$(BIN)/ruff check pipeline train schemas tests benchmarks
	$(BIN)/ruff format --check pipeline train schemas tests benchmarks

# The main job on synthetic footage: synth -> curate (-> train/sample once the trainer lands).
demo: $(STAMP)
	HF_HUB_OFFLINE=1 RAY_USAGE_STATS_ENABLED=0 $(BIN)/clipmill synth --output demo_out/raw --videos 6 --seed 0
	HF_HUB_OFFLINE=1 RAY_USAGE_STATS_ENABLED=0 $(BIN)/clipmill curate demo_out/raw --output demo_out/curated --config configs/curate/default.yaml

clean:
	rm -rf demo_out .pytest_cache
