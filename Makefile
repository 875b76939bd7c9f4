# HAAN companion.
#   make book   set up, execute every notebook (papermill), build the HTML book
#   make test   the test suite: unit tests, nbval over the executed notebooks,
#               a re-execution with new parameters, and a headless-browser check
#   make lab    Jupyter Lab on the notebooks: double-click a page in notebooks/ to run it
#   make demo   train HAAN, HAAN-GCM and HAAN-LCM on the embedded data; print the table
#   make mutants mutation testing of the equations and the metric (mutmut; see tests/README.md)
# Everything installs into ./.venv on first use (Python 3.11, pinned requirements.txt).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
MATHJAX_VERSION := 3.2.2
MATHJAX := .tools/node_modules/mathjax/es5/tex-chtml.js

MUTMUT_VERSION := 3.8.1

.PHONY: setup book test lab demo mutants clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

$(MATHJAX):
	npm install --prefix .tools --no-audit --no-fund --silent mathjax@$(MATHJAX_VERSION)

book: setup $(MATHJAX)
	$(PY) -m haan_core.book run
	$(PY) -m haan_core.book build
	@echo "The book is at $(CURDIR)/_build/html/index.html"

test: book
	$(PY) -m pytest tests book/notebooks --nbval --nbval-current-env \
	    --nbval-sanitize-with tests/nbval_sanitize.cfg

lab: setup
	$(PY) -m haan_core.book lab

demo: setup
	$(PY) -m haan_core demo

# mutmut edits haan_core/{similarity,losses,metrics}.py one change at a time in ./mutants/
# and runs their tests against each ([tool.mutmut] in pyproject.toml); it prints the
# (one thread per child: a forked PyTorch with a started OpenMP pool can hang)
# mutants no test killed. tests/MUTANTS.md says why each survivor changes no result.
mutants: setup
	$(PY) -m pip install --quiet mutmut==$(MUTMUT_VERSION)
	rm -rf mutants
	OMP_NUM_THREADS=1 $(VENV)/bin/mutmut run --max-children 2
	$(VENV)/bin/mutmut results

clean:
	rm -rf $(VENV) .tools .pytest_cache _build book/notebooks book/_static/mathjax runs mutants
