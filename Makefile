# kanplatform: two commands do all the set-up on a fresh machine.
#   make demo   small KAN-vs-MLP study end to end (creates/reuses .venv)
#   make test   the whole test suite (creates/reuses .venv; tests run in a loopback-only netns)
#
# GPU users: make demo TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cu124"
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
PYTEST_ARGS ?= --durations=30

.PHONY: setup demo test lint bench browser clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e '.[dev,optuna,gpu]'
	touch $@

demo: setup
	$(VENV)/bin/kanplatform demo

# Headless Chromium for the HTML-report browser test (Debian package; root on CI).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null \
	  || echo "warning: could not install chromium"; }

# Every test runs inside a network namespace whose only interface is loopback, so Ray and
# W&B can address nothing but 127.0.0.1 (needs root, as on CI; NETNS= to run without).
NETNS ?= unshare -n sh -c 'ip link set lo up && exec "$$0" "$$@"'
test: setup browser
	$(VENV)/bin/ruff check kanplatform tests benchmarks
	$(NETNS) $(PY) -m pytest -q $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check kanplatform tests benchmarks

bench: setup
	$(PY) benchmarks/bench_layers.py

clean:
	rm -rf $(VENV) runs outputs .pytest_cache
