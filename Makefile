# `make demo` and `make test` do all set-up on a fresh machine: they create .venv
# when it is missing and (re)install the package when pyproject.toml changed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-all install clean chromium

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/lstmlab demo

test: $(STAMP) chromium
	$(BIN)/python -m pytest -q -m "not slow"

test-all: $(STAMP) chromium
	$(BIN)/python -m pytest -q

# The inspect report's test opens the page in a real headless browser (Debian's chromium).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium (needed by the browser test in tests/test_inspect_report.py)"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }

clean:
	rm -rf $(VENV) build src/*.egg-info
