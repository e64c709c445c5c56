"""Few-shot serving with the classes in the request: latency and throughput of classify_with_support (support
texts in) and classify_with_support_embeddings (support embeddings in) against the baked-in serving_default,
with 5, 20 and 50 classes of 5 support texts each, in one run.

  make bench-fewshot-serving     (after make model; ~10 min on 2 cores)

The model: all-MiniLM-L6-v2 (make model) as a frozen few-shot model -- mean pooling, cosine distance with
the initial scale -- written as a minimal trained folder (model_info.json, bert_config.json, vocab.txt,
model.ckpt-0) and exported once per class count with that count's support set baked in
(export_savedmodel's code, in process). Texts: CLINC150 (../shared/data/clinc150/data_full.json): the
first C intents in sorted order, their first 5 training utterances as the support set; queries are test
utterances of those intents. Every call goes through the SavedModel's signature in this process, tokenization
in the graph included. Batch 1: p50 / p99 latency over --requests calls after --warmup; batch 32: texts/s over
--batches calls. The three signatures take turns call by call, so a change in the machine's load (it is
shared) falls on all three alike. The text-in rows embed the C x 5 support texts in every request (that is
what they cost); the embedding-in rows send embeddings computed once beforehand with `embed` (not timed).
Before timing, the three signatures are checked to give the same probabilities for the same support set.
"""
import argparse
import json
import os
import sys
import tempfile
import time

import bench_common
from bench_common import SHARED_DATA, cpu_snapshot, other_cores

REPO = bench_common.REPO
sys.path.insert(0, REPO)
CLINC = os.path.join(SHARED_DATA, "clinc150", "data_full.json")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model_dir", default=bench_common.MINILM_DIR)
    parser.add_argument("--classes", default="5,20,50")
    parser.add_argument("--shots", type=int, default=5)
    parser.add_argument("--seq_length", type=int, default=64)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--requests", type=int, default=40, help="timed batch-1 calls per row")
    parser.add_argument("--batches", type=int, default=8, help="timed batch-32 calls per row")
    parser.add_argument("--output", default=os.path.join(REPO, "output", "bench-fewshot-serving.md"))
    return parser.parse_args()


def frozen_folder(folder, model_dir, seq_length):
    """A minimal trained few-shot folder: the converted checkpoint, the cosine head's initial scale."""
    import numpy as np
    from bert import checkpoint, heads
    arrays = {name: value for name, value in checkpoint.read_checkpoint(model_dir).items() if name.startswith("bert/")}
    arrays.update({heads.Cosine.SCALE: np.array(heads.Cosine.INITIAL_SCALE, np.float32),
                   "global_step": np.array(0, np.int64)})
    checkpoint.write_checkpoint(arrays, os.path.join(folder, "model.ckpt-0"))
    for name in ("bert_config.json", "vocab.txt"):
        with open(os.path.join(model_dir, name), "rb") as reader, open(os.path.join(folder, name), "wb") as writer:
            writer.write(reader.read())
    info = dict(task="fewshot", bert_config_file="bert_config.json", vocab_file="vocab.txt", tokenizer="wordpiece",
                do_lower_case=True, max_seq_length=seq_length, pooling="mean", distance="cosine")
    with open(os.path.join(folder, "model_info.json"), "w", encoding="utf-8") as writer:
        json.dump(info, writer, indent=2)


def measure_in_turns(calls, one, many, warmup):
    """{name: {p50_ms, p99_ms, texts_per_s, other_cores}} for calls {name: call(batch)} taking turns: batch-1
    latencies over `one` (after `warmup` untimed rounds), then texts/s over the batches of `many`."""
    import numpy as np
    for batch in one[:warmup]:
        for call in calls.values():
            call(batch)
    start = cpu_snapshot()
    latencies, seconds = {name: [] for name in calls}, {name: 0.0 for name in calls}
    for batch in one[warmup:]:
        for name, call in calls.items():
            begin = time.perf_counter()
            call(batch)
            latencies[name].append(time.perf_counter() - begin)
    for batch in many:
        for name, call in calls.items():
            begin = time.perf_counter()
            call(batch)
            seconds[name] += time.perf_counter() - begin
    busy = other_cores(start, cpu_snapshot())
    texts = sum(len(batch["text_a"]) for batch in many)
    return {name: {"p50_ms": 1000 * float(np.median(latencies[name])), "p99_ms": 1000 * float(
        np.percentile(latencies[name], 99)), "texts_per_s": texts / seconds[name], "other_cores": busy}
            for name in calls}


def main():
    args = parse_args()
    if not os.path.exists(os.path.join(args.model_dir, "bert_config.json")):
        sys.exit(f"{args.model_dir} has no converted checkpoint: run `make model` first")
    if not os.path.exists(CLINC):
        sys.exit(f"{CLINC} is absent: the texts are read from ../shared/data (or $BERT_SHARED_DATA)")
    import numpy as np
    import tensorflow as tf
    import tensorflow_text  # noqa: F401
    from absl import logging

    from bert import export
    logging.set_verbosity(logging.WARNING)
    with open(CLINC, encoding="utf-8") as reader:
        data = json.load(reader)
    intents = sorted({intent for _, intent in data["train"]})
    rows, checks = [], []
    with tempfile.TemporaryDirectory(prefix="fewshot-serving-") as folder:
        frozen_folder(folder, args.model_dir, args.seq_length)
        for count in [int(c) for c in args.classes.split(",")]:
            chosen = intents[:count]
            support = [(text, intent) for intent in chosen
                       for text in [t for t, i in data["train"] if i == intent][:args.shots]]
            queries = [text for text, intent in data["test"] if intent in set(chosen)]
            texts, labels = [t for t, _ in support], [label for _, label in support]
            path = export.export_saved_model(folder, os.path.join(folder, f"export{count}"),
                                             support=export.SupportSet(texts, labels, "CLINC150 train"))
            signatures = tf.saved_model.load(path).signatures
            support_text, support_label = tf.constant(texts), tf.constant(labels)
            embeddings = signatures["embed"](text_a=support_text)["embedding"]
            calls = {
                "serving_default (baked in)": lambda b: signatures["serving_default"](text_a=tf.constant(b["text_a"])),
                "classify_with_support (texts in)": lambda b: signatures["classify_with_support"](
                    support_text=support_text, support_label=support_label, text_a=tf.constant(b["text_a"])),
                "classify_with_support_embeddings": lambda b: signatures["classify_with_support_embeddings"](
                    support_embedding=embeddings, support_label=support_label, text_a=tf.constant(b["text_a"])),
            }
            probe = {"text_a": queries[:16]}
            baked = calls["serving_default (baked in)"](probe)["probabilities"].numpy()  # columns: sorted classes
            for name in list(calls)[1:]:
                out = calls[name](probe)
                order = [sorted(chosen).index(label.decode("utf-8")) for label in out["labels"].numpy()]
                checks.append(float(np.abs(out["probabilities"].numpy() - baked[:, order]).max()))
            one = [{"text_a": [queries[i % len(queries)]]} for i in range(args.requests + args.warmup)]
            many = [{"text_a": [queries[(i * args.batch_size + j) % len(queries)] for j in range(args.batch_size)]}
                    for i in range(args.batches)]
            for name, figures in measure_in_turns(calls, one, many, args.warmup).items():
                rows.append((count, name, figures))
                print(f"{count} classes, {name}: p50 {figures['p50_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms, "
                      f"{figures['texts_per_s']:.1f} texts/s at batch {args.batch_size} (other processes: "
                      f"{figures['other_cores']:.1f} cores)", flush=True)
    baseline = {count: figures for count, name, figures in rows if name.startswith("serving_default")}
    table = ["| classes (x support texts) | signature | p50 ms, batch 1 | p99 ms, batch 1 | texts/s, batch 32 | "
             "p50 / baked-in | texts/s / baked-in | other cores busy |", "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for count, name, f in rows:
        base = baseline[count]
        table.append(f"| {count} (x{args.shots}) | {name} | {f['p50_ms']:.1f} | {f['p99_ms']:.1f} | "
                     f"{f['texts_per_s']:.1f} | {f['p50_ms'] / base['p50_ms']:.2f} | "
                     f"{f['texts_per_s'] / base['texts_per_s']:.2f} | {f['other_cores']:.1f} |")
    text = (f"### Few-shot serving, classes in the request (all-MiniLM-L6-v2, length {args.seq_length}, "
            f"{os.cpu_count()} cores)\n\n" + "\n".join(table) +
            f"\n\nLargest probability difference between the request signatures and serving_default on the same "
            f"support set: {max(checks):.1e}. Batch 1: {args.requests} calls after {args.warmup} warm-up; batch "
            f"{args.batch_size}: {args.batches} calls. CLINC150 intents, {args.shots} support texts each.\n")
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as writer:
        writer.write(text)
    print("\n" + text + f"\n(written to {os.path.relpath(args.output, REPO)})")


if __name__ == "__main__":
    main()
