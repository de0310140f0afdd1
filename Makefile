# The two commands of the README: `make demo` and `make test`. Everything they need is set up here.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
LOGDIR ?= runs/demo
PORT ?= 6006

.PHONY: demo test test-quick bench chromium venv demo-venv clean

venv: $(VENV)/.installed

# The demo needs the package alone, not the test extras (playwright, captum, timm, lightning, moto...).
demo-venv: $(VENV)/.demo-installed

$(VENV)/.demo-installed: setup.py pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e .
	touch $@

$(VENV)/.installed: setup.py pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

# Debian's chromium for the browser tests; never a browser download. CI runs as root.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; }

# LOGDIR= and PORT= change where the runs go and where TensorBoard serves them.
demo: demo-venv
	$(VENV)/bin/tb-cnnviz demo --logdir $(LOGDIR) --served-at http://127.0.0.1:$(PORT)
	$(VENV)/bin/tensorboard --logdir $(LOGDIR) --host 127.0.0.1 --port $(PORT)

test: venv chromium
	$(PY) -m pytest

test-quick: venv
	$(PY) -m pytest -m "not slow and not browser"

bench: venv
	$(PY) benchmarks/overhead.py
	$(PY) benchmarks/storage.py
	$(PY) benchmarks/attribution.py
	$(PY) benchmarks/performance_views.py
	$(PY) benchmarks/topk.py
	$(PY) benchmarks/embedding.py
	$(PY) benchmarks/image_synthesis.py
	$(PY) benchmarks/recognisability.py
	$(PY) benchmarks/correspondence.py
	$(PY) benchmarks/occlusion.py
	$(PY) benchmarks/map_checks.py
	$(PY) benchmarks/map_stability.py
	$(PY) benchmarks/huge_inputs.py
	$(PY) benchmarks/concurrency.py
	$(PY) benchmarks/startup.py
	$(PY) benchmarks/long_run.py
	$(PY) benchmarks/autolog.py

clean:
	rm -rf $(VENV) build dist *.egg-info runs
