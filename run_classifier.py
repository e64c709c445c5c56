"""Fine-tunes BERT for single-sentence or sentence-pair classification (google-research/bert's flags).

  python run_classifier.py --task_name=mrpc --do_train --do_eval --data_dir=DATA \
      --vocab_file=M/vocab.txt --bert_config_file=M/bert_config.json --init_checkpoint=M \
      --output_dir=OUT

Your own data: --task_name=tsv|csv|jsonl with column names, or --processor_module=my_module.py whose
processors register themselves with @processors.register_processor("name").
Outputs in output_dir: eval_results.json (+ Google's eval_results.txt), test_results.tsv (one
probability per class, then the predicted label), label_map.json, checkpoints, TensorBoard events;
with --eval_every_steps, the best checkpoint by --best_metric in output_dir/best.
"""
import os

import tensorflow as tf
from absl import flags, logging

import common_flags
import processors
from bert import estimator, input_pipeline, model_fn, tasks
from bert.errors import UserInputError, run_main

FLAGS = flags.FLAGS
flags.DEFINE_string("text_a_column", "text_a", "tsv/csv/jsonl: column or field with the first text.")
flags.DEFINE_string("text_b_column", "text_b", "tsv/csv/jsonl: column with the second text, if any.")
flags.DEFINE_string("label_column", "label", "tsv/csv/jsonl: column or field with the label.")
flags.DEFINE_bool("has_header", True, "csv: False for header-less label,text_a[,text_b] rows.")
flags.DEFINE_bool("multi_label", False, "One or more labels per example (sigmoid outputs).")
flags.DEFINE_string("label_separator", ",", "multi_label: separator between labels in the label field.")
flags.DEFINE_string("best_metric", None, "Metric that picks the best checkpoint (default accuracy, or "
                    "macro_f1 for multi-label); loss is minimised, others maximised.")
flags.DEFINE_integer("early_stopping_patience", 0, "Stop after this many evaluations without improvement "
                     "(0: never).")


def make_processor():
    if FLAGS.processor_module:
        processors.import_processor_module(FLAGS.processor_module)
    options = processors.ProcessorOptions(
        text_a_column=FLAGS.text_a_column, text_b_column=FLAGS.text_b_column, label_column=FLAGS.label_column,
        has_header=FLAGS.has_header, multi_label=FLAGS.multi_label, label_separator=FLAGS.label_separator)
    return processors.get_processor(FLAGS.task_name, options)


def features_file(task, examples, split):
    """Cached TFRecord features for examples: (path, count)."""
    key = dict(task.cache_key(), processor=FLAGS.task_name, vocab=common_flags.vocab_digest(),
               lower=FLAGS.do_lower_case, tokenizer=FLAGS.tokenizer)
    return input_pipeline.cached_tfrecord(common_flags.cache_dir(), split, key, examples, task.convert)


def is_better(value, best, metric):
    if best is None:
        return True
    return value < best if metric == "loss" else value > best


def train(bert_estimator, task, train_input_fn, total_steps, eval_input_fn, eval_steps):
    """Trains to total_steps; with eval_every_steps, evaluates on the way and keeps the best checkpoint."""
    if FLAGS.distribution == "multi_worker":
        # Estimator runs multi-worker training only through train_and_evaluate.
        tf.estimator.train_and_evaluate(
            bert_estimator, tf.estimator.TrainSpec(train_input_fn, max_steps=total_steps),
            tf.estimator.EvalSpec(eval_input_fn or train_input_fn, steps=eval_steps or 1, throttle_secs=0))
        return
    if not (FLAGS.eval_every_steps and eval_input_fn):
        bert_estimator.train(train_input_fn, max_steps=total_steps)
        return
    metric = FLAGS.best_metric or ("macro_f1" if FLAGS.multi_label else "accuracy")
    best, stale = None, 0
    for target in range(FLAGS.eval_every_steps, total_steps + FLAGS.eval_every_steps, FLAGS.eval_every_steps):
        bert_estimator.train(train_input_fn, max_steps=min(target, total_steps))
        report = task.report(bert_estimator.evaluate(eval_input_fn, steps=eval_steps))
        if metric not in report:
            raise UserInputError(f"--best_metric={metric} is not reported; choose from "
                                 + ", ".join(k for k, v in report.items() if isinstance(v, float)))
        logging.info("step %d: %s = %.4f", report["global_step"], metric, report[metric])
        if is_better(report[metric], best, metric):
            best, stale = report[metric], 0
            estimator.copy_checkpoint(bert_estimator.latest_checkpoint(), os.path.join(FLAGS.output_dir, "best"),
                                      {"metric": metric, "value": best, "report": report})
        else:
            stale += 1
            if FLAGS.early_stopping_patience and stale >= FLAGS.early_stopping_patience:
                logging.info("no improvement in %s for %d evaluations: stopping early", metric, stale)
                break
        if report["global_step"] >= total_steps:
            break


def main(argv):
    del argv
    common_flags.quiet_tensorflow()
    common_flags.require("task_name", "data_dir", "bert_config_file", "output_dir")
    if not (FLAGS.do_train or FLAGS.do_eval or FLAGS.do_predict):
        raise UserInputError("nothing to do: pass at least one of --do_train, --do_eval, --do_predict")
    if not os.path.isdir(FLAGS.data_dir):
        raise UserInputError(f"{FLAGS.data_dir}: data folder not found")
    config = common_flags.bert_config()
    tokenizer = common_flags.tokenizer(config)
    processor = make_processor()
    os.makedirs(FLAGS.output_dir, exist_ok=True)

    train_examples = processor.get_train_examples(FLAGS.data_dir) if FLAGS.do_train else None
    labels = processors.resolve_labels(processor, train_examples, FLAGS.output_dir, FLAGS.multi_label)
    task = tasks.ClassificationTask(labels, tokenizer, FLAGS.max_seq_length, multi_label=FLAGS.multi_label,
                                    pooling=FLAGS.pooling or "pooled")
    if FLAGS.do_train:
        common_flags.save_model_info(
            "classification", labels=labels, multi_label=FLAGS.multi_label, label_separator=FLAGS.label_separator,
            pooling=task.pooling, text_pair=any(e.text_b for e in train_examples))
    eval_input_fn = eval_steps = None
    if FLAGS.do_eval:
        dev_examples = processor.get_dev_examples(FLAGS.data_dir)
        processors.check_labels(dev_examples, labels)
        dev_path, dev_count = features_file(task, dev_examples, "dev")
        eval_input_fn = input_pipeline.tfrecord_input_fn_builder(dev_path, task.feature_spec(),
                                                                 FLAGS.eval_batch_size, is_training=False)
        eval_steps = -(-dev_count // FLAGS.eval_batch_size)

    optimizer_config, hooks = None, ()
    if FLAGS.do_train:
        processors.check_labels(train_examples, labels)
        train_path, train_count = features_file(task, train_examples, "train")
        optimizer_config = common_flags.optimizer_config(train_count)
        total_steps = optimizer_config.num_train_steps
        hooks = [lambda loss: estimator.ProgressHook(loss, total_steps, FLAGS.train_batch_size,
                                                     every=max(total_steps // 20, 1))]

    bert_estimator = estimator.build_estimator(
        model_fn.model_fn_builder(task, config, FLAGS.init_checkpoint, optimizer_config, FLAGS.precision,
                                  training_hooks=hooks), common_flags.run_settings())
    if FLAGS.do_train:
        replicas, micro_batch = common_flags.micro_batch(bert_estimator)
        logging.info("training on %d examples: %d steps of %d (%d replica(s) x %d micro-batch(es) of %d)",
                     train_count, total_steps, FLAGS.train_batch_size, replicas,
                     FLAGS.gradient_accumulation_steps, micro_batch)
        train_input_fn = input_pipeline.tfrecord_input_fn_builder(
            train_path, task.feature_spec(), micro_batch, is_training=True, drop_remainder=True, seed=FLAGS.seed)
        train(bert_estimator, task, train_input_fn, total_steps, eval_input_fn, eval_steps)
        if not estimator.is_chief():  # multi-worker: only the chief evaluates and predicts
            return

    best_dir = os.path.join(FLAGS.output_dir, "best")
    checkpoint_path = tf.train.latest_checkpoint(best_dir) if os.path.isdir(best_dir) else None
    if FLAGS.do_eval:
        report = task.report(bert_estimator.evaluate(eval_input_fn, steps=eval_steps,
                                                     checkpoint_path=checkpoint_path))
        common_flags.write_eval_results(report)

    if FLAGS.do_predict:
        test_examples = processor.get_test_examples(FLAGS.data_dir)
        test_path, _ = features_file(task, test_examples, "test")
        predict_input_fn = input_pipeline.tfrecord_input_fn_builder(test_path, task.feature_spec(),
                                                                    FLAGS.predict_batch_size, is_training=False)
        output = os.path.join(FLAGS.output_dir, "test_results.tsv")
        with open(output + ".tmp", "w", encoding="utf-8") as writer:
            for prediction in bert_estimator.predict(predict_input_fn, checkpoint_path=checkpoint_path):
                probabilities = "\t".join(f"{p:.6f}" for p in prediction["probabilities"])
                if FLAGS.multi_label:
                    names = FLAGS.label_separator.join(l for l, on in zip(labels, prediction["label_ids"]) if on)
                else:
                    names = labels[prediction["label_ids"]]
                writer.write(f"{probabilities}\t{names}\n")
        os.replace(output + ".tmp", output)
        logging.info("wrote %s", output)


if __name__ == "__main__":
    run_main(main)
