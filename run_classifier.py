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
import dataclasses
import os
from typing import Optional

from absl import flags, logging

import common_flags
import processors
from bert import estimator, files, input_pipeline, model_fn, model_folder, plots, tasks
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
                     "(0: never).", lower_bound=0)


@dataclasses.dataclass
class ClassifierConfig:
    """What run_classifier.py adds to the shared TrainingConfig."""
    task_name: str
    data_dir: str
    processor: processors.ProcessorOptions
    processor_module: Optional[str] = None
    best_metric: Optional[str] = None  # default accuracy, or macro_f1 for multi-label
    early_stopping_patience: int = 0
    overwrite_output_dir: bool = False


def make_processor(run):
    if run.processor_module:
        processors.import_processor_module(run.processor_module)
    return processors.get_processor(run.task_name, run.processor)


def validation(setup, run, task, bert_estimator, dev):
    """The dev set's evaluation while training: every eval_every_steps (0: never), keeping the best
    checkpoint by best_metric; under multi-worker training, train_and_evaluate's evaluation."""
    if dev is None:
        return None
    input_fn, steps, digest = dev
    metric = run.best_metric or ("macro_f1" if run.processor.multi_label else "accuracy")
    scorer = task.scorer()
    return estimator.Validation(
        setup.eval_every_steps,
        lambda checkpoint: scorer.score(bert_estimator.evaluate(input_fn, steps=steps, checkpoint_path=checkpoint)),
        metric, model_folder.best_dir(setup.output_dir), lower_is_better=metric in tasks.ClassificationScorer.LOSSES,
        patience=run.early_stopping_patience, data=digest, input_fn=input_fn, steps=steps)


def dev_input(setup, run, task, processor, cache):
    """(input_fn, steps, data digest) over the dev set, its labels checked against the task's."""
    dev_examples = processor.get_dev_examples(run.data_dir)
    processors.check_labels(dev_examples, task.labels)
    dev_path, dev_count = cache.features(task, dev_examples, "dev")
    input_fn = input_pipeline.tfrecord_input_fn_builder(dev_path, task.feature_spec(), setup.eval_batch_size,
                                                        is_training=False)
    return input_fn, -(-dev_count // setup.eval_batch_size), input_pipeline.data_digest(dev_examples)


def write_test_results(path, task, predictions):
    """Google's test_results.tsv (no header): one probability per class, then the predicted label(s),
    written by bert.files.write_tsv so that a label holding a tab or a line break stays one field."""

    def rows():
        for prediction in predictions:
            if task.multi_label:
                names = task.label_separator.join(l for l, on in zip(task.labels, prediction["label_ids"]) if on)
            else:
                names = task.labels[prediction["label_ids"]]
            yield [f"{p:.6f}" for p in prediction["probabilities"]] + [names]

    files.write_tsv(path, None, rows())
    logging.info("wrote %s", path)


def main(argv):
    del argv
    common_flags.reject_tpu()
    common_flags.quiet_tensorflow()
    common_flags.require("task_name", "data_dir", "bert_config_file", "output_dir")
    if not (FLAGS.do_train or FLAGS.do_eval or FLAGS.do_predict):
        raise UserInputError("nothing to do: pass at least one of --do_train, --do_eval, --do_predict")
    if not os.path.isdir(FLAGS.data_dir):
        raise UserInputError(f"{FLAGS.data_dir}: data folder not found")
    pooling = FLAGS.pooling or "pooled"  # Google's classifier reads the pooled output
    if pooling == "auto":
        pooling = model_folder.embedding_defaults(None if FLAGS.overwrite_output_dir else FLAGS.output_dir,
                                                  FLAGS.init_checkpoint)[0]["pooling"]
    setup = dataclasses.replace(common_flags.training_config(), pooling=pooling)
    run = ClassifierConfig(
        task_name=FLAGS.task_name, data_dir=FLAGS.data_dir, processor_module=FLAGS.processor_module,
        processor=processors.ProcessorOptions(
            text_a_column=FLAGS.text_a_column, text_b_column=FLAGS.text_b_column, label_column=FLAGS.label_column,
            has_header=FLAGS.has_header, multi_label=FLAGS.multi_label, label_separator=FLAGS.label_separator),
        best_metric=tasks.ClassificationScorer.check_metric(FLAGS.best_metric, FLAGS.multi_label),
        early_stopping_patience=FLAGS.early_stopping_patience,
        overwrite_output_dir=FLAGS.overwrite_output_dir)
    classify(setup, run, FLAGS.do_train, FLAGS.do_eval, FLAGS.do_predict)


def classify(setup, run, do_train, do_eval, do_predict):
    bert_config = setup.bert_config()
    tokenizer = setup.tokenizer(bert_config)
    processor = make_processor(run)
    model_folder.claim(setup.output_dir, run.overwrite_output_dir, exclusive=estimator.is_chief())
    multi_label = run.processor.multi_label

    train_examples = processor.get_train_examples(run.data_dir) if do_train else None
    identity = dict(setup.identity(bert_config), task=tasks.ClassificationTask.name, pooling=setup.pooling,
                    multi_label=multi_label)
    if do_train:
        identity["training_data"] = input_pipeline.data_digest(train_examples)
    model_folder.check_run(setup.output_dir, identity, record=False)
    labels = processors.resolve_labels(processor, train_examples, setup.output_dir, multi_label)
    model_folder.check_run(setup.output_dir, dict(identity, labels=labels), record=do_train and estimator.is_chief())
    task = tasks.ClassificationTask(labels, tokenizer, setup.max_seq_length, multi_label=multi_label,
                                    pooling=setup.pooling, label_separator=run.processor.label_separator)
    cache = setup.feature_cache(processor=run.task_name)
    if do_train:
        model_folder.save_model_info(setup, task, text_pair=any(e.text_b for e in train_examples))
    dev = dev_input(setup, run, task, processor, cache) if do_eval else None

    optimizer_config, hooks = None, ()
    if do_train:
        processors.check_labels(train_examples, labels)
        train_path, train_count = cache.features(task, train_examples, "train")
        optimizer_config = setup.optimizer_for_examples(train_count)
        total_steps = optimizer_config.num_train_steps
        hooks = [lambda loss: estimator.ProgressHook(loss, total_steps, setup.train_batch_size,
                                                     every=max(total_steps // 20, 1))]

    bert_estimator = estimator.build_estimator(
        model_fn.model_fn_builder(task, bert_config, setup.init_checkpoint, optimizer_config, setup.precision,
                                  training_hooks=hooks), setup.run)
    if do_train:
        replicas, micro_batch = setup.micro_batch(bert_estimator)
        logging.info("training on %d examples: %d steps of %d (%d replica(s) x %d micro-batch(es) of %d)",
                     train_count, total_steps, setup.train_batch_size, replicas,
                     setup.gradient_accumulation_steps, micro_batch)
        train_input_fn = input_pipeline.tfrecord_input_fn_builder(
            train_path, task.feature_spec(), micro_batch, is_training=True, drop_remainder=True, seed=setup.seed)
        estimator.train(bert_estimator, train_input_fn, total_steps,
                        validation(setup, run, task, bert_estimator, dev))
        if not estimator.is_chief():  # multi-worker: only the chief evaluates and predicts
            return

    checkpoint_path = model_folder.best_checkpoint(setup.output_dir)
    if do_eval:
        report = task.scorer().score(bert_estimator.evaluate(dev[0], steps=dev[1], checkpoint_path=checkpoint_path))
        model_folder.write_eval_results(setup.output_dir, report)
        if "confusion_matrix" in report:  # single-label only
            plots.write_confusion_matrix(os.path.join(setup.output_dir, "confusion_matrix.png"),
                                         report["confusion_matrix"])

    if do_predict:
        # Prediction needs no gold labels: a test file's labels are dropped, even ones training never saw.
        test_examples = [dataclasses.replace(e, label=None) for e in processor.get_test_examples(run.data_dir)]
        test_path, _ = cache.features(task, test_examples, "test")
        predict_input_fn = input_pipeline.tfrecord_input_fn_builder(test_path, task.feature_spec(),
                                                                    setup.predict_batch_size, is_training=False)
        predictions = bert_estimator.predict(predict_input_fn, checkpoint_path=checkpoint_path)
        write_test_results(os.path.join(setup.output_dir, "test_results.tsv"), task, predictions)


if __name__ == "__main__":
    run_main(main)
