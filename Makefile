# Two entry points (see README): `make demo` and `make test`. Both create .venv when needed.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
# The edge runtime's own environment (LiteRT needs numpy 2; TensorFlow 2.16 needs numpy 1).
EDGE_VENV := .venv-edge
# Offline ImageNet weights for MobileNetV2 (never committed): copied into Keras' cache when present.
SHARED_WEIGHTS ?= ../shared/assets/keras-models
export KERAS_HOME ?= $(CURDIR)/.keras
export TF_CPP_MIN_LOG_LEVEL ?= 3

.PHONY: demo test test-fast venv edge-venv weights clean

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

venv: $(VENV)/.installed

$(EDGE_VENV)/.installed: requirements-edge.txt
	test -x $(EDGE_VENV)/bin/python || $(PYTHON) -m venv $(EDGE_VENV)
	$(EDGE_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(EDGE_VENV)/bin/python -m pip install --quiet -r requirements-edge.txt
	touch $@

edge-venv: $(EDGE_VENV)/.installed

weights:
	@mkdir -p $(KERAS_HOME)/models
	@if [ -d "$(SHARED_WEIGHTS)" ]; then cp -n $(SHARED_WEIGHTS)/*.h5 $(KERAS_HOME)/models/ 2>/dev/null || true; fi

demo: venv weights
	$(PY) cli.py demo

# Two workers (2 cores): whole modules per worker (their fitted fixtures run once), the heaviest first (conftest.py).
test: venv edge-venv weights
	$(PY) -m pytest -q -n 2 --dist loadscope tests

# The fast lane: every test that fits no model and renders no whole dataset (pytest.ini's `slow` marker), for the edit-run loop.
test-fast: venv weights
	$(PY) -m pytest -q -n 2 --dist loadscope -m "not slow" tests

clean:
	rm -rf $(VENV) $(EDGE_VENV) .pytest_cache results cache
