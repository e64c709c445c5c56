"""Few-shot text classification with prototypical networks on BERT sentence embeddings.

Meta-train on episodes (N classes, K support + Q query sentences each) from the classes that have
data, then classify sentences into new classes from a handful of examples, without retraining.

  python run_fewshot.py --do_train --do_eval --data_file=intents.tsv --test_class_ratio=0.3 \
      --bert_config_file=M/bert_config.json --vocab_file=M/vocab.txt --init_checkpoint=M --output_dir=OUT
  python run_fewshot.py --do_predict --support_file=support.tsv --predict_file=texts.txt ... --output_dir=OUT

Data: `text<TAB>label` lines. --data_file with all classes is split into meta-train / (val) / test
*classes* (--test_class_ratio, --val_class_ratio, --split_seed, or --class_split_file naming them);
or --train_file / --eval_file (/ --val_file) with different classes; or --task_name/--data_dir for
any registered processor (its train and dev examples pooled, then split by class).
Outputs: class_split.json, fewshot_results.json (+ the table printed and in fewshot_results.md),
predictions.tsv (label, probability, distance to each prototype), checkpoints (best by validation
accuracy in OUT/best when there are validation classes).
"""
import dataclasses
import json
import os
import shutil
import tempfile
import time

import numpy as np
import tensorflow as tf
from absl import flags, logging

import common_flags
import processors
from bert import estimator, fewshot, files, input_pipeline, model_fn, tasks
from bert.errors import UserInputError, run_main
from bert.heads import DISTANCES

FLAGS = flags.FLAGS
flags.DEFINE_string("data_file", None, "text<TAB>label lines, all classes; split into class sets.")
flags.DEFINE_float("test_class_ratio", 0.3, "With --data_file: share of classes held out for evaluation.")
flags.DEFINE_float("val_class_ratio", 0.0, "With --data_file: share of classes for choosing the checkpoint.")
flags.DEFINE_integer("split_seed", 12345, "Seed of the class split.")
flags.DEFINE_string("class_split_file", None, "JSON with train_classes, val_classes, test_classes lists.")
flags.DEFINE_string("val_file", None, "text<TAB>label lines of validation classes (checkpoint choice).")
flags.DEFINE_string("eval_file", None, "text<TAB>label lines of the evaluation classes.")
flags.DEFINE_integer("n_way", 5, "Training episodes: classes per episode.")
flags.DEFINE_integer("k_shot", 5, "Training episodes: support sentences per class.")
flags.DEFINE_integer("q_query", 5, "Training episodes: query sentences per class.")
flags.DEFINE_integer("train_episodes", 1000, "Training steps; each step is one episode per replica.")
flags.DEFINE_enum("distance", "euclidean", list(DISTANCES), "Prototype distance; cosine has a learnable scale.")
flags.DEFINE_list("eval_settings", ["5w1s", "5w5s", "10w1s", "10w5s"], "Evaluation settings, <N>w<K>s.")
flags.DEFINE_integer("eval_episodes", 1000, "Episodes per evaluation setting.")
flags.DEFINE_integer("eval_q_query", 15, "Query sentences per class in evaluation episodes.")
flags.DEFINE_integer("eval_seed", 2024, "Seed of the evaluation episodes (the same for every row).")
flags.DEFINE_integer("val_episodes", 300, "Episodes per validation (first eval setting).")
flags.DEFINE_bool("eval_frozen", True, "Also evaluate the init checkpoint without meta-training.")
flags.DEFINE_enum("baseline", "none", ["none", "finetune"], "Also fine-tune BERT on each episode's support set.")
flags.DEFINE_integer("baseline_episodes", 50, "Episodes per setting for the fine-tuning baseline.")
flags.DEFINE_integer("baseline_steps", 30, "Fine-tuning steps on each support set.")
flags.DEFINE_float("baseline_learning_rate", 5e-5, "Fine-tuning baseline learning rate.")


def pooling():
    return FLAGS.pooling or "mean"  # the right sentence vector for sentence-transformers checkpoints


def load_splits():
    """{"train": [...], "val": [...], "test": [...]} examples with disjoint classes, and the split."""
    if FLAGS.train_file or FLAGS.eval_file:
        parts = {"train": FLAGS.train_file, "val": FLAGS.val_file, "test": FLAGS.eval_file}
        examples = {name: processors.read_text_label_file(path, name) if path else [] for name, path in parts.items()}
        classes = {name: sorted({e.label for e in items}) for name, items in examples.items()}
        for a, b in (("train", "test"), ("train", "val"), ("val", "test")):
            shared = sorted(set(classes[a]) & set(classes[b]))
            if shared:
                raise UserInputError(f"the {a} and {b} files share classes {shared[:10]}: few-shot evaluation "
                                     "needs classes never seen in training")
        return examples, {f"{name}_classes": classes[name] for name in parts}
    if FLAGS.data_file:
        pooled = processors.read_text_label_file(FLAGS.data_file)
    elif FLAGS.task_name:
        if FLAGS.processor_module:
            processors.import_processor_module(FLAGS.processor_module)
        processor = processors.get_processor(FLAGS.task_name)
        pooled = processor.get_train_examples(FLAGS.data_dir) + processor.get_dev_examples(FLAGS.data_dir)
    else:
        raise UserInputError("give the data: --data_file, or --train_file/--eval_file, or --task_name/--data_dir")
    present = sorted({e.label for e in pooled})
    if FLAGS.class_split_file:
        try:
            with open(FLAGS.class_split_file, encoding="utf-8") as reader:
                named = json.load(reader)
        except (OSError, ValueError) as error:
            raise UserInputError(f"{FLAGS.class_split_file}: cannot read the class split ({error})") from None
        if not isinstance(named, dict):
            raise UserInputError(f"{FLAGS.class_split_file}: expected a JSON object with train_classes, "
                                 "val_classes and test_classes")
        split = {k: sorted(map(str, named.get(k, []))) for k in ("train_classes", "val_classes", "test_classes")}
        unknown = sorted(set(sum(split.values(), [])) - set(present))
        if unknown:
            raise UserInputError(f"{FLAGS.class_split_file}: classes not in the data: {unknown[:10]}")
    else:
        split = fewshot.split_classes(present, FLAGS.test_class_ratio, FLAGS.val_class_ratio, FLAGS.split_seed)
    membership = {c: name for name in ("train", "val", "test") for c in split[f"{name}_classes"]}
    examples = {name: [e for e in pooled if membership.get(e.label) == name] for name in ("train", "val", "test")}
    return examples, split


def features(task, examples, name):
    """Numpy features of examples, through the TFRecord cache."""
    key = dict(task.cache_key(), vocab=common_flags.vocab_digest(), lower=FLAGS.do_lower_case,
               tokenizer=FLAGS.tokenizer)
    path, _ = input_pipeline.cached_tfrecord(common_flags.cache_dir(), f"fewshot-{name}", key, examples, task.convert)
    return input_pipeline.read_tfrecord_arrays(path, task.feature_spec())


def trained_checkpoint():
    best = os.path.join(FLAGS.output_dir, "best")
    return tf.train.latest_checkpoint(best) if os.path.isdir(best) else tf.train.latest_checkpoint(FLAGS.output_dir)


class Embedder:
    """Sentence embeddings through Estimator.predict, from a trained checkpoint or the init checkpoint."""

    def __init__(self, task, config):
        self.task, self.config = task, config

    def __call__(self, arrays, checkpoint=None):
        model_dir = FLAGS.output_dir if checkpoint else tempfile.mkdtemp(prefix="frozen-", dir=FLAGS.output_dir)
        try:
            settings = dataclasses.replace(common_flags.run_settings(), model_dir=model_dir, distribution="none")
            # Without a checkpoint in model_dir, Estimator initialises: the encoder from init_checkpoint.
            bert = estimator.build_estimator(
                model_fn.model_fn_builder(self.task, self.config, FLAGS.init_checkpoint, precision=FLAGS.precision),
                settings)
            inputs = {k: v for k, v in arrays.items() if k != "label_ids"}
            batches = bert.predict(input_pipeline.array_input_fn_builder(inputs, FLAGS.predict_batch_size),
                                   checkpoint_path=checkpoint, yield_single_examples=False)
            return np.concatenate([batch["embedding"] for batch in batches])
        finally:
            if not checkpoint:
                shutil.rmtree(model_dir, ignore_errors=True)


def meta_train(task, config, arrays, rows, val):
    """Episodic training; with validation classes and eval_every_steps, keeps the best checkpoint."""
    optimizer_config = common_flags.optimizer_config_for_steps(FLAGS.train_episodes)
    episode_size = FLAGS.n_way * (FLAGS.k_shot + FLAGS.q_query)
    total = optimizer_config.num_train_steps
    hooks = [lambda loss: estimator.ProgressHook(loss, total, episode_size, every=max(total // 20, 1))]
    bert = estimator.build_estimator(model_fn.model_fn_builder(task, config, FLAGS.init_checkpoint, optimizer_config,
                                                               FLAGS.precision, training_hooks=hooks),
                                     common_flags.run_settings())
    input_fn = input_pipeline.episodic_input_fn_builder(arrays, rows, FLAGS.n_way, FLAGS.k_shot, FLAGS.q_query,
                                                        FLAGS.seed)
    start, trained = time.time(), 0
    if not (val and FLAGS.eval_every_steps):
        bert.train(input_fn, max_steps=total)
        return {"episodes": total, "episodes_per_second": total / (time.time() - start)}
    embed = Embedder(task, config)
    n_way, k_shot = fewshot.parse_setting(FLAGS.eval_settings[0])
    best = None
    for target in range(FLAGS.eval_every_steps, total + FLAGS.eval_every_steps, FLAGS.eval_every_steps):
        step_start = time.time()
        bert.train(input_fn, max_steps=min(target, total))
        trained += time.time() - step_start
        checkpoint = bert.latest_checkpoint()
        val_arrays, val_rows = val
        result = fewshot.evaluate_on_embeddings(embed(val_arrays, checkpoint), val_rows, n_way, k_shot,
                                                FLAGS.eval_q_query, FLAGS.val_episodes, FLAGS.eval_seed, FLAGS.distance)
        logging.info("%s: validation %s accuracy %.4f", checkpoint, FLAGS.eval_settings[0], result["accuracy"])
        if best is None or result["accuracy"] > best:
            best = result["accuracy"]
            estimator.copy_checkpoint(checkpoint, os.path.join(FLAGS.output_dir, "best"),
                                      {"metric": f"validation {FLAGS.eval_settings[0]} accuracy", "value": best})
        if target >= total:
            break
    return {"episodes": total, "episodes_per_second": total / trained}


def evaluate(task, config, arrays, test_rows, labels):
    """The table: rows (meta-trained, frozen encoder, fine-tuning) x settings."""
    embed = Embedder(task, config)
    rows = {}
    checkpoint = trained_checkpoint()
    if checkpoint:
        rows["meta-trained"] = ("embeddings", embed(arrays, checkpoint))
    if FLAGS.eval_frozen or not checkpoint:
        rows["frozen encoder" if FLAGS.init_checkpoint else "random init"] = ("embeddings", embed(arrays))
    if FLAGS.baseline == "finetune":
        rows["fine-tuning"] = ("finetune", None)
    results = {name: {} for name in rows}
    for setting in FLAGS.eval_settings:
        n_way, k_shot = fewshot.parse_setting(setting)
        eligible, message = fewshot.keep_classes_with(test_rows, k_shot + FLAGS.eval_q_query, n_way, labels,
                                                      f"evaluation {setting}")
        if message:
            logging.warning(message)
        for name, (kind, embeddings) in rows.items():
            if kind == "embeddings":
                results[name][setting] = fewshot.evaluate_on_embeddings(
                    embeddings, eligible, n_way, k_shot, FLAGS.eval_q_query, FLAGS.eval_episodes, FLAGS.eval_seed,
                    FLAGS.distance)
            else:
                baseline = fewshot.FinetuneBaseline(config, FLAGS.init_checkpoint, n_way, FLAGS.max_seq_length,
                                                    pooling(), FLAGS.baseline_steps, FLAGS.baseline_learning_rate,
                                                    FLAGS.seed)
                results[name][setting] = baseline.evaluate(arrays, eligible, n_way, k_shot, FLAGS.eval_q_query,
                                                           FLAGS.baseline_episodes, FLAGS.eval_seed)
    return results


def table(results):
    settings = FLAGS.eval_settings
    lines = ["| model | " + " | ".join(settings) + " | episodes |", "| --- |" + " ---: |" * (len(settings) + 1)]
    for name, by_setting in results.items():
        cells = [f"{100 * r['accuracy']:.2f} ± {100 * r['ci95']:.2f}" for r in (by_setting[s] for s in settings)]
        episodes = sorted({by_setting[s]["episodes"] for s in settings})
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {', '.join(map(str, episodes))} |")
    return "\n".join(lines) + "\n"


def predict(tokenizer, config):
    support = processors.read_text_label_file(FLAGS.support_file, "support")
    queries = processors.read_text_lines(FLAGS.predict_file)
    classes = sorted({e.label for e in support})
    predict_task = tasks.FewShotTask(classes, tokenizer, FLAGS.max_seq_length, pooling(), FLAGS.distance)
    checkpoint = trained_checkpoint()
    embed = Embedder(predict_task, config)
    support_arrays = features(predict_task, support, "support")
    support_embeddings = embed(support_arrays, checkpoint)
    query_embeddings = embed(features(predict_task, queries, "predict"), checkpoint)
    prototypes = np.stack([support_embeddings[support_arrays["label_ids"] == c].mean(0) for c in range(len(classes))])
    scale = 10.0
    if FLAGS.distance == "cosine" and checkpoint:
        scale = float(tf.train.load_checkpoint(checkpoint).get_tensor("prototypical/cosine_scale"))
    logits = fewshot.prototype_logits(query_embeddings, prototypes, FLAGS.distance, scale)
    probabilities = fewshot.softmax(logits)
    distances = (fewshot.squared_distances(query_embeddings, prototypes) if FLAGS.distance == "euclidean"
                 else 1.0 - logits / scale)
    lines = ["\t".join(["text", "label", "probability"] + [f"distance:{c}" for c in classes])]
    for example, row, distance in zip(queries, probabilities, distances):
        best = int(row.argmax())
        lines.append("\t".join([example.text_a, classes[best], f"{row[best]:.4f}"] + [f"{d:.4f}" for d in distance]))
    path = os.path.join(FLAGS.output_dir, "predictions.tsv")
    files.write_text_atomic(path, "\n".join(lines) + "\n")
    source = checkpoint or f"{FLAGS.init_checkpoint or 'a random init'} (not meta-trained)"
    print(f"\n{len(queries)} texts into {len(classes)} classes from {len(support)} examples, using {source}:\n")
    for line in lines[1:]:
        text, label, probability = line.split("\t")[:3]
        print(f"  {label:<14} {float(probability):.2f}  {text}")
    print(f"\nwrote {path}")


def main(argv):
    del argv
    common_flags.quiet_tensorflow()
    common_flags.require("bert_config_file", "output_dir")
    if not (FLAGS.do_train or FLAGS.do_eval or FLAGS.do_predict):
        raise UserInputError("nothing to do: pass at least one of --do_train, --do_eval, --do_predict")
    if FLAGS.do_predict and not (FLAGS.support_file and FLAGS.predict_file):
        raise UserInputError("--do_predict needs --support_file and --predict_file")
    config = common_flags.bert_config()
    tokenizer = common_flags.tokenizer(config)
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    for setting in FLAGS.eval_settings:
        fewshot.parse_setting(setting)

    if FLAGS.do_train or FLAGS.do_eval:
        examples, split = load_splits()
        files.write_text_atomic(os.path.join(FLAGS.output_dir, "class_split.json"), json.dumps(split, indent=2) + "\n")
        labels = sorted(set(sum(split.values(), [])))
        task = tasks.FewShotTask(labels, tokenizer, FLAGS.max_seq_length, pooling(), FLAGS.distance)
        arrays = {name: features(task, items, name) for name, items in examples.items() if items}

        def class_rows(name):
            ids = [task.label_to_id[c] for c in split[f"{name}_classes"]]
            return fewshot.rows_by_class(arrays[name]["label_ids"], ids) if name in arrays else {}

        results = {}
        if FLAGS.do_train:
            common_flags.save_model_info("fewshot", pooling=pooling(), distance=FLAGS.distance)
            if "train" not in arrays:
                raise UserInputError("no meta-training classes: check the class split or --train_file")
            rows, message = fewshot.keep_classes_with(class_rows("train"), FLAGS.k_shot + FLAGS.q_query, FLAGS.n_way,
                                                      labels, "meta-training")
            if message:
                logging.warning(message)
            val = None
            if "val" in arrays:
                n_way, k_shot = fewshot.parse_setting(FLAGS.eval_settings[0])
                val_rows, _ = fewshot.keep_classes_with(class_rows("val"), k_shot + FLAGS.eval_q_query, n_way,
                                                        labels, "validation")
                val = (arrays["val"], val_rows)
            results["training"] = meta_train(task, config, arrays["train"], rows, val)
        if FLAGS.do_eval:
            if "test" not in arrays:
                raise UserInputError("no evaluation classes: check the class split or --eval_file")
            rows = evaluate(task, config, arrays["test"], class_rows("test"), labels)
            main_row = rows.get("meta-trained") or next(iter(rows.values()))
            results.update({setting: main_row[setting] for setting in FLAGS.eval_settings})
            results["rows"] = rows
            text = table(rows)
            files.write_text_atomic(os.path.join(FLAGS.output_dir, "fewshot_results.md"), text)
            print(f"\nfew-shot accuracy (%) on {len(split['test_classes'])} held-out classes, "
                  f"{FLAGS.eval_q_query} queries per class, mean ± 95% interval:\n\n{text}")
        files.write_text_atomic(os.path.join(FLAGS.output_dir, "fewshot_results.json"), json.dumps(results, indent=2) + "\n")

    if FLAGS.do_predict:
        predict(tokenizer, config)


if __name__ == "__main__":
    run_main(main)
