# unigate — developer entry points. See README.md.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PROTO_FILES := $(wildcard protos/unigate/v1/*.proto)

.PHONY: install proto proto-check providers providers-check migrate dev test lint typecheck bench bench-rss bench-compare-setup bench-auth bench-floor bench-consumer bench-ttft bench-ledger clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# Regenerate the gRPC/protobuf stubs (committed; CI checks they match).
proto: install
	$(PY) -m grpc_tools.protoc -I protos \
	  --python_out=libs --grpc_python_out=libs \
	  --plugin=protoc-gen-mypy=$(VENV)/bin/protoc-gen-mypy --mypy_out=libs \
	  --plugin=protoc-gen-mypy_grpc=$(VENV)/bin/protoc-gen-mypy_grpc --mypy_grpc_out=only_async:libs \
	  $(PROTO_FILES)

proto-check: proto
	git diff --exit-code -- libs/unigate/v1 || { echo "generated stubs differ from protos: run 'make proto' and commit" >&2; exit 1; }
	test -z "$$(git status --porcelain -- libs/unigate/v1)" || { git status --porcelain -- libs/unigate/v1; echo "untracked generated stubs" >&2; exit 1; }

# Regenerate the provider catalog (libs/unigate/provider_catalog.json) from the relay's
# provider declarations (committed; CI checks it matches).
providers: install
	$(PY) -m unigate_relay.providers.catalog libs/unigate/provider_catalog.json

providers-check: providers
	git diff --exit-code -- libs/unigate/provider_catalog.json || { echo "provider catalog differs from the declarations: run 'make providers' and commit" >&2; exit 1; }
	test -z "$$(git status --porcelain -- libs/unigate/provider_catalog.json)" || { echo "provider catalog not committed" >&2; exit 1; }

migrate: install
	$(VENV)/bin/unigate migrate

# Set up everything and run the whole stack in the foreground (Ctrl-C stops it).
dev: install
	$(VENV)/bin/unigate dev

test: install
	$(VENV)/bin/pytest -q

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy

bench: install
	$(PY) bench/run.py

# memory: each service's RSS over 200,000 requests after a 20,000 warm-up (issue 22: flat ±10 %).
bench-rss: install
	$(PY) bench/run.py --rss-requests 200000

# LiteLLM's proxy and Portkey's gateway, which `make bench` runs beside unigate for scale,
# into bench/.work/compare/ (never into the project's venv).
bench-compare-setup:
	bench/compare/setup.sh

# the floor under the bars: edge -> multiplexed mTLS gRPC hop -> aiohttp -> nginx, no unigate work.
bench-floor: install
	$(PY) bench/floor.py

# auth's Authorize alone: calls/s and latency at 1 and 32 in flight.
bench-auth: install
	$(PY) bench/authorize.py

# billing's consumer alone: usage events applied per second at 1, 100 and 1000 messages per fetch.
bench-consumer: install
	$(PY) bench/consumer.py

# the ledger at scale: 100 million log rows by COPY, then the consumer, log pages, statistics,
# export, retention and migration 0017 on them (ARGS="--rows 1000000" for less; hours at 100M).
bench-ledger: install
	$(PY) bench/ledger.py $(ARGS)

# stream time-to-first-token, direct to the simulator vs through the gateway.
bench-ttft: install
	$(PY) bench/ttft.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
