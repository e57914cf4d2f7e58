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

# The main job on synthetic footage, end to end: synth -> curate -> train -> sample (~5 min, 2 cores).
DEMO_ENV := HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 RAY_USAGE_STATS_ENABLED=0
demo: $(STAMP)
	$(DEMO_ENV) $(BIN)/clipmill synth --output demo_out/raw --videos 12 --seed 0
	$(DEMO_ENV) $(BIN)/clipmill curate demo_out/raw --output demo_out/curated --config configs/curate/default.yaml \
		--transcode.short_side 90
	rm -rf demo_out/runs
	$(DEMO_ENV) $(BIN)/clipmill train fit --config configs/train/tiny.yaml --config configs/train/demo.yaml \
		--data.shards 'demo_out/curated/shards/*.tar'
	$(DEMO_ENV) $(BIN)/clipmill sample --ckpt demo_out/runs/checkpoints/last.ckpt \
		--prompts-file configs/train/demo_prompts.txt --steps 20 --output demo_out/samples
	@echo "demo: clips in demo_out/curated (see summary.json), samples in demo_out/samples"

clean:
	rm -rf demo_out .pytest_cache
