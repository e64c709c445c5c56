"""Several tasks, one encoder: sentence(-pair) classification and NER trained together (bert/multitask.py).

  python run_multitask.py --do_train --do_eval \
      --tasks=sentiment:tsv:DATA/sent,topic:jsonl:DATA/topic,entities:cluener:DATA/ner \
      [--task_options=options.json] [--sampling_temperature=1] \
      --vocab_file=M/vocab.txt --bert_config_file=M/bert_config.json --init_checkpoint=M --output_dir=OUT

--tasks: name:processor:data_dir, comma-separated. Classification processors are the registered ones
(tsv, csv, jsonl, mrpc, ...: train/dev files in data_dir as run_classifier.py reads them); NER formats are
conll, cluener, char_bio and ner_jsonl (train/dev files with the format's extension).
--task_options: a JSON file {task name: {option: value}}: text_a_column, text_b_column, label_column,
has_header, multi_label, label_separator (classification); tag_column, tag_scheme, model_scheme, use_crf
(NER); train_file, dev_file; loss_weight (default 1).
Each training step is one task's batch, the task drawn with probability proportional to its number of
training examples ** --sampling_temperature (1: by size, 0: uniform), seeded by --seed; one epoch is the
sum of the tasks' examples. Precision, distribution, XLA and accumulation flags work as in run_classifier.py.
Outputs: eval_results.json with each task's metrics (its own scorer: accuracy and per-class figures,
entity F1), each task's main figure (accuracy, macro F1 for multi-label, entity F1) and their "mean";
with --eval_every_steps, the best checkpoint by the mean (or by --best_task's figure) in OUT/best.
"""
import dataclasses
import os

from absl import flags, logging

import common_flags
import processors
from bert import estimator, input_pipeline, model_fn, model_folder, multitask, ner, tagging, tasks
from bert.errors import UserInputError, run_main

FLAGS = flags.FLAGS
flags.DEFINE_string("tasks", None, "name:processor:data_dir, comma-separated (see the module docstring).")
flags.DEFINE_string("task_options", None, "JSON file {task name: {option: value}} of per-task options.")
flags.DEFINE_float("sampling_temperature", 1.0, "Draw a task's batch with probability ~ size ** this (0: uniform).",
                   lower_bound=0.0)
flags.DEFINE_string("best_task", None, "With --eval_every_steps: keep the best checkpoint by this task's main "
                    "figure instead of the mean over tasks.")


@dataclasses.dataclass
class TaskData:
    """One task of the run: its spec, its tasks.Task, and its training and evaluation data."""
    spec: multitask.TaskSpec
    task: tasks.Task
    train: list
    dev: list
    dev_path: str = ""
    scheme: str = "BIO"


def load_task(spec, tokenizer, max_seq_length, pooling, recorded, do_train, do_eval):
    """spec -> TaskData: examples read (and checked), labels from the training data or the trained folder."""
    options = spec.options
    if spec.is_ner:
        scheme = options.get("model_scheme", "BIO")

        def tagged(part):
            path, sentences = multitask.read_ner(spec, part)
            tags = [ner.sentence_tags(s, scheme) for s in sentences]
            return path, [tagging.TaggedWords(list(s.words), t) for s, t in zip(sentences, tags)]

        train = tagged("train")[1] if do_train else []
        dev_path, dev = tagged("dev") if do_eval else ("", [])
        if do_eval and not dev:
            raise UserInputError(f"task {spec.name}: {dev_path} has no sentences to evaluate on")
        labels = tagging.tag_list(e.tags for e in train) if do_train else recorded["labels"]
        unknown = sorted({t for e in dev for t in e.tags} - set(labels))
        if unknown:
            logging.warning("%s: tags the training data never had (counted as misses): %s", dev_path, unknown[:10])
        use_crf = options.get("use_crf", False) if do_train else recorded.get("use_crf", False)
        task = tasks.TokenClassificationTask(labels, tokenizer, max_seq_length, use_crf,
                                             None if do_train else recorded.get("stride"))
        return TaskData(spec, task, train, dev, dev_path, scheme)
    try:
        processor = processors.get_processor(spec.processor, processors.ProcessorOptions(**{
            k: v for k, v in options.items() if k in multitask.CLASSIFICATION_OPTIONS}))
    except TypeError as error:
        raise UserInputError(f"task {spec.name}: bad options: {error}") from None
    if not os.path.isdir(spec.data_dir):
        raise UserInputError(f"task {spec.name}: {spec.data_dir}: data folder not found")
    train = processor.get_train_examples(spec.data_dir) if do_train else []
    if do_train and not train:
        raise UserInputError(f"task {spec.name}: no training examples in {spec.data_dir}")
    multi_label = options.get("multi_label", False)
    labels = processors.labels_from_examples(train) if do_train else recorded["labels"]
    dev = processor.get_dev_examples(spec.data_dir) if do_eval else []
    if do_eval and not dev:
        raise UserInputError(f"task {spec.name}: no evaluation examples in {spec.data_dir}")
    processors.check_labels(train + dev, labels)
    task = tasks.ClassificationTask(labels, tokenizer, max_seq_length, multi_label=multi_label, pooling=pooling,
                                    label_separator=options.get("label_separator", ","))
    return TaskData(spec, task, train, dev)


def score_task(bert_estimator, joint, data, cache, setup, checkpoint=None):
    """One task's report from the multi-task model, by the task's own scorer."""
    name, task = data.spec.name, data.task
    if isinstance(task, tasks.TokenClassificationTask):  # tagged without the gold tags (they may hold new ones)
        path, _ = cache.features(task, [tagging.TaggedWords(e.words) for e in data.dev], f"{name}-dev")
        input_fn = multitask.task_input_fn_builder(joint, name, path, setup.predict_batch_size, training_features=False)
        batches = list(bert_estimator.predict(input_fn, checkpoint_path=checkpoint, yield_single_examples=False))
        own = [multitask.strip_prefix(name, batch) for batch in batches]
        merged = {key: [row for batch in own for row in batch[key]] for key in own[0]}
        predicted = task.merge([len(e.words) for e in data.dev], merged)
        return task.scorer(data.scheme).score([e.tags for e in data.dev], predicted)
    path, _ = cache.features(task, data.dev, f"{name}-dev", training=True)
    input_fn = multitask.task_input_fn_builder(joint, name, path, setup.predict_batch_size)
    result = bert_estimator.evaluate(input_fn, checkpoint_path=checkpoint, name=name)
    return task.scorer().score(multitask.strip_prefix(name, result))


def evaluate(bert_estimator, joint, task_data, cache, setup, checkpoint=None):
    reports = {d.spec.name: score_task(bert_estimator, joint, d, cache, setup, checkpoint) for d in task_data}
    return multitask.summary(reports, joint)


def main(argv):
    del argv
    common_flags.reject_tpu()
    common_flags.quiet_tensorflow()
    common_flags.require("tasks", "bert_config_file", "output_dir")
    if not (FLAGS.do_train or FLAGS.do_eval):
        raise UserInputError("nothing to do: pass --do_train and/or --do_eval")
    setup = common_flags.training_config()
    pooling = FLAGS.pooling if FLAGS.pooling not in (None, "auto") else "pooled"
    specs = multitask.parse_specs(FLAGS.tasks, FLAGS.task_options, processors.registered_processors())
    if FLAGS.best_task is not None and FLAGS.best_task not in [s.name for s in specs]:
        raise UserInputError(f"--best_task={FLAGS.best_task}: no such task in --tasks")
    train_tasks(setup, specs, pooling, FLAGS.sampling_temperature, FLAGS.best_task, FLAGS.do_train, FLAGS.do_eval,
                FLAGS.overwrite_output_dir)


def train_tasks(setup, specs, pooling, temperature, best_task, do_train, do_eval, overwrite=False):
    bert_config = setup.bert_config()
    tokenizer = setup.tokenizer(bert_config)
    model_folder.claim(setup.output_dir, overwrite, exclusive=estimator.is_chief())
    recorded = {}
    if not do_train:  # labels, CRF and stride as the trained folder recorded them
        info = model_folder.ModelInfo.from_dir(setup.output_dir)
        recorded = {entry["name"]: entry for entry in info.extra.get("tasks") or []}
        missing = [s.name for s in specs if s.name not in recorded]
        if missing:
            raise UserInputError(f"{setup.output_dir}: the trained model has no task(s) {', '.join(missing)}")
    task_data = [load_task(spec, tokenizer, setup.max_seq_length, pooling, recorded.get(spec.name, {}), do_train,
                           do_eval) for spec in specs]
    details = {d.spec.name: {"model_scheme": d.scheme, "data_format": multitask.NER_FORMATS[d.spec.processor]}
               if d.spec.is_ner else {"text_pair": any(e.text_b for e in d.train)} for d in task_data}
    joint = multitask.MultiTask({d.spec.name: d.task for d in task_data}, {s.name: s.loss_weight for s in specs},
                                details)
    identity = dict(setup.identity(bert_config), task=joint.name,
                    tasks={d.spec.name: {"labels": d.task.labels, "kind": d.task.name} for d in task_data})
    if do_train:
        identity["training_data"] = {d.spec.name: input_pipeline.data_digest(d.train) for d in task_data}
    model_folder.check_run(setup.output_dir, identity, record=do_train and estimator.is_chief())
    cache = setup.feature_cache(processor="multitask")

    optimizer_config, hooks = None, ()
    if do_train:
        model_folder.save_model_info(setup, joint)
        paths, sizes = {}, {}
        for d in task_data:
            paths[d.spec.name], sizes[d.spec.name] = cache.features(d.task, d.train, f"{d.spec.name}-train",
                                                                    training=True)
        optimizer_config = setup.optimizer_for_examples(sum(sizes.values()))
        total = optimizer_config.num_train_steps
        hooks = [lambda loss: estimator.ProgressHook(loss, total, setup.train_batch_size, every=max(total // 20, 1))]
    bert_estimator = estimator.build_estimator(
        model_fn.model_fn_builder(joint, bert_config, setup.init_checkpoint, optimizer_config, setup.precision,
                                  training_hooks=hooks), setup.run)
    if do_train:
        _, micro_batch = setup.micro_batch(bert_estimator)
        input_fn, weights = multitask.train_input_fn_builder(joint, paths, sizes, micro_batch, temperature, setup.seed)
        logging.info("training %d steps on %s", total, ", ".join(
            f"{name} ({sizes[name]} examples, drawn {100 * weights[name]:.1f}%)" for name in sizes))
        validation = None
        if do_eval and setup.eval_every_steps:
            metric = best_task or "mean"
            validation = estimator.Validation(
                setup.eval_every_steps, lambda checkpoint: evaluate(bert_estimator, joint, task_data, cache, setup,
                                                                    checkpoint),
                metric, model_folder.best_dir(setup.output_dir), label=f"dev {metric}",
                data=input_pipeline.data_digest([e for d in task_data for e in d.dev]))
        estimator.train(bert_estimator, input_fn, total, validation)
        if not estimator.is_chief():
            return
    if do_eval:
        report = evaluate(bert_estimator, joint, task_data, cache, setup, model_folder.best_checkpoint(setup.output_dir))
        model_folder.write_eval_results(setup.output_dir, report)
        print("\n" + ", ".join(f"{name} {report[name]:.4f}" for name in report["tasks"]) + f"; mean {report['mean']:.4f}")


if __name__ == "__main__":
    run_main(main)
