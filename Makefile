# Two commands from a fresh clone: `make run` (the pipeline) and `make test` (the suite).
# Both create .venv from the lock when it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP_FLAGS := --no-deps --ignore-requires-python --disable-pip-version-check -q
STAMP := $(VENV)/.installed

.PHONY: run test venv report bench clean

venv: $(STAMP)

$(STAMP): requirements.lock setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_FLAGS) -r requirements.lock
	$(PY) -m pip install $(PIP_FLAGS) --no-build-isolation -e .
	touch $(STAMP)

run: $(STAMP)
	$(PY) local_runner.py $(ARGS)

test: $(STAMP)
	$(PY) -m pytest tests $(PYTEST_ARGS)

clean:
	rm -rf work
