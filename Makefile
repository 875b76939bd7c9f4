# HAAN companion. `make test` runs the tests, `make demo` trains HAAN on the embedded data.
# Everything installs into ./.venv on first use (Python 3.11, pinned requirements.txt).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup test demo clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

test: setup
	$(PY) -m pytest

demo: setup
	$(PY) -m haan_core demo

clean:
	rm -rf $(VENV) .pytest_cache
