# make test / make demo work on a fresh machine with Python 3.11 and pip only.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install browser test lint demo clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip setuptools wheel
	# torch/torchvision are pinned in pyproject (the pair that lies on this machine's disk).
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The report's page tests drive Debian's headless Chromium (tests/pipeline/report). Idempotent:
# installs only when chromedriver is missing, as root with apt; if that fails, those tests skip.
browser:
	@if [ ! -x /usr/bin/chromedriver ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver || \
			echo "note: could not install chromium; browser tests will skip"; \
		else echo "note: no /usr/bin/chromedriver; browser tests will skip (apt-get install chromium chromium-driver)"; fi; \
	fi

test: $(STAMP) browser
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 RAY_USAGE_STATS_ENABLED=0 \
		$(BIN)/python -m pytest -q tests

lint: $(STAMP)
	$(BIN)/ruff check pipeline train schemas tests benchmarks
	$(BIN)/ruff format --check pipeline train schemas tests benchmarks

# The main job on synthetic footage, end to end (pipeline/demo/demo.py): synth -> curate -> train ->
# sample one video per (colour, shape, direction) -> score them -> demo_out/report.md (~7 min after install, 2 cores: 428 s measured).
# `clipmill demo --preset bench --ablate naive` is the benchmark with the curated-vs-naive ablation.
DEMO_ENV := HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 RAY_USAGE_STATS_ENABLED=0
demo: $(STAMP)
	rm -rf demo_out
	$(DEMO_ENV) $(BIN)/clipmill demo --output demo_out --preset default
	@echo "demo: report in demo_out/report.md, samples in demo_out/samples_curated"

clean:
	rm -rf demo_out .pytest_cache
