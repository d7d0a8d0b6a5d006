# Two commands on a fresh machine with Python 3.11+: `make demo` and `make test`.
# Each sets up .venv from the pinned requirements.lock (uv when present or installable, plain pip otherwise).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

export LITELLM_LOCAL_MODEL_COST_MAP ?= True
export HF_HUB_OFFLINE ?= 1
export RAY_USAGE_STATS_ENABLED ?= 0

.PHONY: demo test test-docker-demo lock clean

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@if command -v uv >/dev/null 2>&1; then UV=uv; \
	 elif $(BIN)/python -m pip install -q uv >/dev/null 2>&1; then UV=$(BIN)/uv; else UV=; fi; \
	 if [ -n "$$UV" ]; then \
	   $$UV pip install -q -p $(BIN)/python -r requirements.lock && $$UV pip install -q -p $(BIN)/python --no-deps -e .; \
	 else \
	   $(BIN)/python -m pip install -q -r requirements.lock && $(BIN)/python -m pip install -q --no-deps -e .; \
	 fi
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/isobench demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not docker_e2e"

# the demo's tasks with the local sandbox and in containers: the same outcomes (about 15 minutes; CI runs it)
test-docker-demo: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -m docker_e2e

lock:
	$(BIN)/uv pip compile pyproject.toml --extra test -o requirements.lock -p $(BIN)/python -q

clean:
	rm -rf $(VENV) tasks/demo/.build results/demo
