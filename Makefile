# Everything a fresh machine needs is installed by these targets.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
APT_TEST_PKGS := kcat chromium
APT_BENCH_PKGS := redis-server rabbitmq-server kcat

.PHONY: run test bench soak lint fmt clean apt-test apt-bench

# setup.py compiles the modules pyproject.toml lists under [tool.minikafka.build] (mypyc) into
# src/, where they shadow their source: reinstalling rebuilds them when any of them, or any module
# they import (mypyc compiled in what it knew of those), changes.
BUILD_INPUTS := $(shell PYTHONPATH=src $(PYTHON) -m minikafka.compiled $$($(PYTHON) -c 'import tomllib; \
	print(*tomllib.load(open("pyproject.toml", "rb"))["tool"]["minikafka"]["build"]["mypyc"])'))
$(STAMP): pyproject.toml setup.py $(BUILD_INPUTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[console,shop,registry,test,bench]'
	touch $(STAMP)

# Debian packages, installed only when missing (apt-get needs root, as on CI).
apt-test:
	@missing=""; for p in $(APT_TEST_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

apt-bench:
	@missing=""; for p in $(APT_BENCH_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

# `make run ARGS="--api-port 18000 --broker-port 19092"` passes settings to the demo; so do
# MINIKAFKA_PORT, MINIKAFKA_API_PORT and MINIKAFKA_UI_PORT (`minikafka demo --help`).
run: $(STAMP)
	$(VENV)/bin/minikafka demo $(ARGS)

test: $(STAMP) apt-test lint
	$(PY) -m pytest -q -n 2 --durations=15

bench: $(STAMP) apt-bench
	$(PY) -m bench

# The kill campaigns (the log's, and the transactional consume-transform-produce loop's) at 10x
# their `make test` size, then every test marked `soak`: the disk-fault campaign at 10x and the
# fuzzing campaign (200,000 frames times MINIKAFKA_SOAK_FACTOR, default 1); -s shows each
# campaign's figures.
soak: $(STAMP) apt-test
	MINIKAFKA_SOAK_FACTOR=10 $(PY) -m pytest -q -s -m "" -o timeout=3600 tests/log/test_crash.py \
		tests/broker/test_transactions_kill.py
	$(PY) -m pytest -q -s -m soak -o timeout=3600 tests

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy

fmt: $(STAMP)
	$(VENV)/bin/ruff format src tests bench

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache
	find src -name '*.so' -delete  # compiled modules, and any left by an earlier module list
