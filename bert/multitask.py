"""Several tasks on one encoder (run_multitask.py): one shared BERT, one head per task under the task's
own variable scope, and training batches drawn one task at a time.

Tasks are named by a spec a user writes by hand, `name:processor:data_dir` joined by commas, e.g.
`sentiment:tsv:DATA/sent,topic:jsonl:DATA/topic,entities:cluener:DATA/ner`: the processor is a
registered classification processor (tsv, csv, jsonl, mrpc, ...) or an NER format (conll, cluener,
char_bio, or ner_jsonl for bert.ner's JSONL; MSRA's sentences.txt + tags.txt pairs do not fit a data
folder); per-task options (columns, multi-label, the tag column and schemes, a CRF, a loss weight) come
from an optional JSON file {task name: {option: value}}.

`MultiTask` is a tasks.Task, so the shared model_fn trains it as any other: its features are the encoder
inputs, `task_id`, and every task's own features under "<task name>/<feature>" (zeros in other tasks'
batches); its head is each task's head built under tf.compat.v1.variable_scope(<task name>) on the
same encoder output, and its loss the weighted loss of the batch's task. `train_input_fn_builder`
interleaves the per-task cached TFRecord datasets: each step one task's batch, the task drawn with
probability proportional to size ** temperature (1: by size, 0: uniform), seeded.
"""
import dataclasses
import os
import re
from typing import Dict, List, Optional

import numpy as np
import tensorflow as tf

from bert import files, input_pipeline, ner, tasks
from bert.errors import UserInputError

tf1 = tf.compat.v1

NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
# spec processor name -> bert.ner format
NER_FORMATS = {"conll": "conll", "cluener": "cluener", "char_bio": "char_bio", "ner_jsonl": "jsonl"}
CLASSIFICATION_OPTIONS = ("text_a_column", "text_b_column", "label_column", "has_header", "multi_label",
                          "label_separator", "train_file", "dev_file", "test_file")
RESERVED = ("serving_default", "tokenize", "predict_ids", "embed")  # signature names of exports
NER_OPTIONS = ("tag_column", "tag_scheme", "model_scheme", "use_crf", "train_file", "dev_file", "test_file")


@dataclasses.dataclass
class TaskSpec:
    """One task of a multi-task run: its name, processor (or NER format) and data folder, and options."""
    name: str
    processor: str
    data_dir: str
    options: dict = dataclasses.field(default_factory=dict)
    loss_weight: float = 1.0

    @property
    def is_ner(self):
        return self.processor in NER_FORMATS


def parse_specs(text, options_file=None, known_processors=()) -> List[TaskSpec]:
    """--tasks (and the --task_options JSON file) -> TaskSpecs; every mistake is a one-line UserInputError."""
    specs = []
    for part in [p.strip() for p in (text or "").split(",") if p.strip()]:
        pieces = part.split(":", 2)
        if len(pieces) != 3 or not all(p.strip() for p in pieces):
            raise UserInputError(f"--tasks: {part!r} is not name:processor:data_dir")
        name, processor, data_dir = (p.strip() for p in pieces)
        if not NAME.fullmatch(name):
            raise UserInputError(f"--tasks: task name {name!r} must be a letter then letters, digits or _ "
                                 "(it names the task's variable scope and signature)")
        if name in RESERVED:
            raise UserInputError(f"--tasks: {name!r} names a signature of the exported model; choose another name")
        if name in [s.name for s in specs]:
            raise UserInputError(f"--tasks: two tasks are named {name!r}")
        processor = processor.lower()
        if processor not in NER_FORMATS and processor not in known_processors:
            raise UserInputError(f"--tasks: task {name}: unknown processor {processor!r} (classification: "
                                 f"{', '.join(known_processors)}; NER: {', '.join(NER_FORMATS)})")
        specs.append(TaskSpec(name, processor, data_dir))
    if not specs:
        raise UserInputError("--tasks: give at least one task, name:processor:data_dir")
    if options_file:
        options = _read_options(options_file)
        for name, values in options.items():
            matching = [s for s in specs if s.name == name]
            if not matching:
                raise UserInputError(f"{options_file}: options for {name!r}, which --tasks does not name")
            spec = matching[0]
            allowed = (NER_OPTIONS if spec.is_ner else CLASSIFICATION_OPTIONS) + ("loss_weight",)
            unknown = sorted(set(values) - set(allowed))
            if unknown:
                raise UserInputError(f"{options_file}: task {name}: unknown option(s) {', '.join(unknown)} "
                                     f"(known: {', '.join(allowed)})")
            spec.options = {k: v for k, v in values.items() if k != "loss_weight"}
            weight = values.get("loss_weight", 1.0)
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight >= 0:
                raise UserInputError(f"{options_file}: task {name}: loss_weight must be a number >= 0")
            spec.loss_weight = float(weight)
    return specs


def _read_options(path):
    value = files.read_json(path, "task options file", expect=dict)
    if not all(isinstance(v, dict) for v in value.values()):
        raise UserInputError(f"{path}: expected an object {{task name: {{option: value}}}}")
    return value


def sampling_weights(sizes, temperature):
    """Probabilities of drawing each task's batch: size ** temperature, normalised."""
    sizes = np.asarray(sizes, np.float64)
    if (sizes <= 0).any():
        raise ValueError("every task needs training data")
    weights = sizes ** float(temperature)
    return weights / weights.sum()


@tasks.register_task
class MultiTask(tasks.Task):
    """Tasks (name -> tasks.Task, in order) sharing the encoder; see the module docstring."""

    name = "multitask"
    many_features = True  # convert gives a list (an NER task's sentence can be several windows)

    def __init__(self, named_tasks: Dict[str, tasks.Task], loss_weights: Optional[Dict[str, float]] = None,
                 details: Optional[Dict[str, dict]] = None):
        """details: more that model_info.json records per task (e.g. an NER task's tag scheme)."""
        self.tasks = dict(named_tasks)
        self.loss_weights = {name: float((loss_weights or {}).get(name, 1.0)) for name in self.tasks}
        self.details = details or {}

    def own_shapes(self, name, training=True):
        """Task `name`'s features besides the encoder's: {feature: shape}."""
        return {k: v for k, v in self.tasks[name].feature_shapes(training).items() if k not in self.encoder_features}

    def feature_shapes(self, training=True):
        seq = self.tasks[next(iter(self.tasks))].feature_shapes(training)["input_ids"]
        shapes = {name: seq for name in self.encoder_features}
        shapes["task_id"] = []
        for name in self.tasks:
            shapes.update({f"{name}/{k}": v for k, v in self.own_shapes(name, training).items()})
        return shapes

    def cache_key(self, training=False):
        return {"task": self.name, "tasks": {name: task.cache_key(training) for name, task in self.tasks.items()}}

    def convert(self, example, training=False):
        """(task name, that task's example) -> this task's feature dicts: zeros for the other tasks' features,
        0 for a task's example_index (the feature cache adds it). Training converts and caches each task with
        its own convert instead and adds the rest in the graph (as_multitask), to the same effect."""
        name, own = example
        task = self.tasks[name]
        converted = task.convert(own, training)
        rows = []
        for features in (converted if task.many_features else [converted]):
            row = {k: features[k] for k in self.encoder_features}
            row["task_id"] = list(self.tasks).index(name)
            for other in self.tasks:
                for key, shape in self.own_shapes(other, training).items():
                    zero = [0] * int(np.prod(shape)) if shape else 0
                    row[f"{other}/{key}"] = features.get(key, zero) if other == name else zero
            rows.append(row)
        return rows

    def as_multitask(self, name, features, training):
        """A batch of task `name`'s own features -> this task's features (the others' zeros, task_id)."""
        batch = tf.shape(features["input_ids"])[0]
        out = {k: features[k] for k in self.encoder_features}
        out["task_id"] = tf.fill([batch], list(self.tasks).index(name))
        for other in self.tasks:
            for key, shape in self.own_shapes(other, training).items():
                out[f"{other}/{key}"] = features[key] if other == name else tf.zeros(
                    tf.concat([[batch], tf.constant(shape, tf.int32)], 0), tf.int32)
        return out

    def build(self, model, features, mode):
        training = mode != tf.estimator.ModeKeys.PREDICT
        loss, predictions, metrics = 0.0, {"task_id": features["task_id"]}, {}
        for index, (name, task) in enumerate(self.tasks.items()):
            view = {k: features[k] for k in self.encoder_features}
            view.update({k: features[f"{name}/{k}"] for k in self.own_shapes(name, training)})
            with tf1.variable_scope(name):
                outputs = task.build(model, view, mode)
            predictions.update({f"{name}/{k}": v for k, v in outputs.predictions.items()})
            metrics.update({f"{name}/{k}": v for k, v in outputs.eval_metric_ops.items()})
            if outputs.loss is not None:
                # Each batch holds one task: its loss counts, the others' (on zeros) are multiplied by 0.
                mine = tf.reduce_mean(tf.cast(tf.equal(features["task_id"], index), tf.float32))
                loss += self.loss_weights[name] * mine * outputs.loss
        return tasks.TaskOutputs(loss if mode != tf.estimator.ModeKeys.PREDICT else None, predictions, metrics)

    def model_info(self):
        return {"tasks": [dict(dict(task.model_info(), labels=task.labels), name=name, task=task.name,
                               loss_weight=self.loss_weights[name], **self.details.get(name, {}))
                          for name, task in self.tasks.items()]}

    @classmethod
    def from_info(cls, info, tokenizer=None):
        named, weights = {}, {}
        for entry in info.extra.get("tasks") or []:
            sub = dataclasses.replace(info, labels=entry.get("labels"), multi_label=entry.get("multi_label", False),
                                      label_separator=entry.get("label_separator", ","),
                                      pooling=entry.get("pooling"), extra=entry)
            task_class = tasks.task_class(entry.get("task"))
            named[entry["name"]] = (task_class.from_info(sub, tokenizer, labels=entry["labels"])
                                    if task_class is tasks.TokenClassificationTask else task_class.from_info(sub, tokenizer))
            weights[entry["name"]] = entry.get("loss_weight", 1.0)
        if not named:
            raise UserInputError("model_info.json: a multitask model lists no \"tasks\"")
        return cls(named, weights)

    def scorer(self):
        return None  # each task is scored by its own scorer (run_multitask.py)

    def init_name_map(self, init_checkpoint):
        return None  # a multi-task model starts from another one (or from BERT) with the names as they are


def train_input_fn_builder(multitask, paths, sizes, batch_size, temperature, seed):
    """The training input: per step one task's batch (drawn by sampling_weights), from that task's cached
    TFRecord file (paths[name]); each task's stream is shuffled and repeated with the shared builder."""
    names = list(multitask.tasks)
    weights = sampling_weights([sizes[name] for name in names], temperature)

    def input_fn(params=None, input_context=None):
        datasets = []
        for index, name in enumerate(names):
            single = input_pipeline.tfrecord_input_fn_builder(
                paths[name], multitask.tasks[name].feature_spec(True), batch_size, is_training=True,
                drop_remainder=True, seed=None if seed is None else seed + index)(params, input_context)
            datasets.append(single.map(lambda features, name=name: multitask.as_multitask(name, features, True)))
        return tf.data.Dataset.sample_from_datasets(datasets, weights=weights.tolist(), seed=seed,
                                                    stop_on_empty_dataset=False).prefetch(tf.data.AUTOTUNE)

    return input_fn, dict(zip(names, weights.tolist()))


def task_input_fn_builder(multitask, name, path, batch_size, training_features=True):
    """One task's cached TFRecord file (evaluation, prediction) as the multi-task model's input."""
    single = input_pipeline.tfrecord_input_fn_builder(path, multitask.tasks[name].feature_spec(training_features),
                                                      batch_size, is_training=False)

    def input_fn(params=None, input_context=None):
        return single(params, input_context).map(
            lambda features: multitask.as_multitask(name, features, training_features))

    return input_fn


def strip_prefix(name, values):
    """{"<name>/key": v} -> {"key": v} for task `name`'s entries (and global_step)."""
    prefix = name + "/"
    out = {k[len(prefix):]: v for k, v in values.items() if k.startswith(prefix)}
    if "global_step" in values:
        out["global_step"] = values["global_step"]
    return out


def main_metric(task):
    """The metric a task's report is compared by: accuracy (macro F1 multi-label), entity F1."""
    if isinstance(task, tasks.TokenClassificationTask):
        return "f1"
    return "macro_f1" if getattr(task, "multi_label", False) else "accuracy"


def summary(reports, multitask):
    """Per-task reports -> {"tasks": ..., "<name>": main metric, "mean": their mean}."""
    mains = {name: float(reports[name][main_metric(multitask.tasks[name])]) for name in reports}
    return dict({"tasks": reports, "mean": float(np.mean(list(mains.values())))}, **mains)


def data_path(spec, part, extension_options):
    """The file of `part` (train | dev | test) in spec.data_dir for an NER task."""
    name = spec.options.get(f"{part}_file", part)
    if os.path.splitext(name)[1]:
        return os.path.join(spec.data_dir, name)
    for extension in extension_options:
        path = os.path.join(spec.data_dir, name + extension)
        if os.path.exists(path):
            return path
    raise UserInputError(f"task {spec.name}: {spec.data_dir} has no {name}"
                         f"{' or '.join(extension_options)} (set \"{part}_file\" in the task options)")


def read_ner(spec, part):
    """An NER task's sentences of `part`, in its own format."""
    data_format = NER_FORMATS[spec.processor]
    path = data_path(spec, part, ner.DATA_EXTENSIONS[data_format])
    sentences, _ = ner.read_ner_file(path, data_format, spec.options.get("tag_column", -1),
                                     spec.options.get("tag_scheme", "BIO"))
    return path, sentences
