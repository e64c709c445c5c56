"""What export asks of each task: `TaskExporter` and one subclass per exportable task.

An exporter builds the task's serving outputs on the in-graph features (through the shared
model_fn in PREDICT mode, so every variable has its checkpoint name) and names its extra
signatures, assets, label map and the variables it fills itself. A subclass names its task class
(`task_class`, a registered tasks.Task) and so registers itself in `EXPORTERS` under that task's name,
the name model_info.json records; adding a task's export is one such subclass ("squad" plugs in here).
"""
import dataclasses
from typing import List, Optional

import numpy as np
import tensorflow as tf
from absl import logging

from bert import adaptation, heads, model_fn, modeling, multitask, tasks
from bert.errors import UserInputError
from bert.export import tagging_graph
from bert.model_folder import MODEL_INFO_FILE, load_label_map

tf1 = tf.compat.v1

SIGNATURE_TEXT = "serving_default"
SIGNATURE_IDS = "predict_ids"
SIGNATURE_TOKENIZE = "tokenize"
SIGNATURE_EMBED = "embed"  # the few-shot exporter's extra signature: text_a -> embedding
# Few-shot with the classes in the request: support texts (or their embeddings) and labels with the queries.
SIGNATURE_WITH_SUPPORT = "classify_with_support"
SIGNATURE_WITH_SUPPORT_EMBEDDINGS = "classify_with_support_embeddings"
DEFAULT_MAX_SUPPORT = 1000


EXPORTERS = {}  # task name -> TaskExporter subclass


class TaskExporter:
    """What export asks of a task: its serving outputs, extra signatures, assets and variables."""
    task_class = None  # the tasks.Task subclass this exports
    text_pair = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        EXPORTERS[cls.task_class.name] = cls

    def __init__(self, trained, support=None):
        self.trained = trained
        self.info = trained.info

    def build(self, encoder):
        """Builds the model on encoder.features; returns {output name: tensor} for serving_default."""
        raise NotImplementedError

    def signatures(self, encoder, outputs):
        """{signature name: (inputs, outputs)}: serving_default (text in, `outputs` out), predict_ids (the
        encoder's features in), tokenize (text in, the encoder's features out) and extra_signatures."""
        signatures = {SIGNATURE_TEXT: (encoder.text_inputs(), outputs), SIGNATURE_IDS: (encoder.features, outputs),
                      SIGNATURE_TOKENIZE: (encoder.text_inputs(), dict(zip(tasks.Task.encoder_features,
                                                                           encoder.tokenized)))}
        signatures.update(self.extra_signatures(encoder))
        return signatures

    def extra_signatures(self, encoder):
        return {}

    def own_variables(self):
        """Variables this exporter fills itself (not restored from the checkpoint)."""
        return []

    def after_restore(self, session, encoder):
        """Runs once the checkpoint is restored and the tables initialised."""

    def label_map(self):
        return None

    def assets(self):
        """{asset file name: text} written beside the vocab (e.g. the label map)."""
        return {}

    def predictions(self, features):
        """The shared model_fn in PREDICT mode on `features`: the task head's predictions."""
        build = model_fn.model_fn_builder(self.model_task(), self.trained.config)
        return build(features, None, tf.estimator.ModeKeys.PREDICT, None).predictions

    def model_task(self):
        """The task rebuilt from model_info.json (no tokenizer: the graph tokenizes)."""
        return self.task_class.from_info(self.info)


def label_strings(labels, label_ids, multi_label, separator):
    """label_ids int32 [batch] (or multi-hot [batch, labels]) -> string [batch]."""
    names = tf.constant(labels, tf.string)
    if not multi_label:
        return tf.gather(names, label_ids)
    on = label_ids > 0  # [batch, labels]
    chosen = tf.ragged.boolean_mask(tf.broadcast_to(names, tf.shape(on)), on)
    return tf.strings.reduce_join(chosen, axis=-1, separator=separator)


class ClassificationExporter(TaskExporter):
    task_class = tasks.ClassificationTask

    def __init__(self, trained, support=None):
        super().__init__(trained)
        if support is not None:
            raise UserInputError("--support_file is for few-shot models; this one is a classifier with "
                                 "fixed labels")
        if not self.info.labels:
            raise UserInputError(f"{trained.model_dir}/{MODEL_INFO_FILE}: a classifier needs its \"labels\"")
        self.text_pair = bool(self.info.text_pair)

    def build(self, encoder):
        predictions = self.predictions(encoder.features)
        label_ids = predictions["label_ids"]
        return {"probabilities": predictions["probabilities"], "label_id": label_ids,
                "label": label_strings(self.info.labels, label_ids, self.info.multi_label,
                                       self.info.label_separator)}

    def label_map(self):
        return {"labels": self.info.labels, "multi_label": bool(self.info.multi_label)}


@dataclasses.dataclass
class SupportSet:
    """A few labelled texts per class: the classes a few-shot model's serving_default chooses from."""
    texts: List[str]
    labels: List[str]
    source: str = "support set"
    adapt: Optional[adaptation.AdaptConfig] = None  # adapt to it at export time (steps > 0)
    max_support: int = DEFAULT_MAX_SUPPORT  # the most support texts a classify_with_support request may carry


class FewShotExporter(TaskExporter):
    """Prototypes (class means of the support set's embeddings) are computed at export time and kept
    as the variable `prototypes`; the query is classified by distance to them, as run_fewshot.py does.
    With the support set's AdaptConfig (steps > 0) the model is first adapted to the support set as
    run_fewshot.py --do_predict adapts it: the adapted top layers replace the checkpoint's, and the
    adapted linear head (variables adapted_head/weights and bias) gives the probabilities; distances
    are to the prototypes through the adapted layers."""
    task_class = tasks.FewShotTask

    def __init__(self, trained, support=None):
        super().__init__(trained)
        if support is None:
            raise UserInputError("a few-shot model classifies into the classes of a support set: pass "
                                 "--support_file=SUPPORT.tsv (text<TAB>label lines, a few per class)")
        self.support = support
        self.classes = sorted(set(support.labels))
        self.adapt = support.adapt if support.adapt is not None and support.adapt.enabled else None
        if self.adapt:
            self.adapt.check(trained.config)

    def model_task(self):
        task = tasks.FewShotTask.from_info(self.info, labels=self.classes)
        task.hidden_layer = self.adapt.hidden_layer(self.trained.config) if self.adapt else None
        return task

    def build(self, encoder):
        task = self.task = self.model_task()
        self.outputs = self.predictions(encoder.features)
        self.embedding = self.outputs["embedding"]  # [batch, hidden]
        shape = [len(self.classes), self.trained.config.hidden_size]
        self.prototypes = tf1.get_variable("prototypes", shape, tf.float32, initializer=tf1.zeros_initializer(),
                                           trainable=False)
        self.own = [self.prototypes]
        logits = task.distance.logits(self.embedding, self.prototypes)  # [batch, classes]
        if self.adapt:
            with tf1.variable_scope(adaptation.HEAD_SCOPE):
                self.head = [tf1.get_variable(name, shape[:rank], tf.float32, initializer=tf1.zeros_initializer(),
                                              trainable=False) for name, rank in (("weights", 2), ("bias", 1))]
            self.own += self.head
            weights, bias = self.head
            logits = tf.matmul(task.distance.head_inputs(self.embedding), weights, transpose_b=True) + bias
        distances = task.distance.distances(self.embedding, self.prototypes)
        label_ids = tf.argmax(logits, -1, output_type=tf.int32)
        return {"probabilities": tf.nn.softmax(logits, -1), "label_id": label_ids,
                "label": label_strings(self.classes, label_ids, False, ","), "distances": distances}

    def extra_signatures(self, encoder):
        signatures = {SIGNATURE_EMBED: ({"text_a": encoder.text_a}, {"embedding": self.embedding})}
        if self.adapt:  # the adapted layers fit the export's support set, not a request's
            logging.warning("an adapted export has no %s signatures: their classes come with the request, and "
                            "this encoder was adapted to %s", SIGNATURE_WITH_SUPPORT, self.support.source)
            return signatures
        support_text = tf1.placeholder(tf.string, [None], name="support_text")
        support_label = tf1.placeholder(tf.string, [None], name="support_label")
        support_embedding = tf1.placeholder(tf.float32, [None, self.trained.config.hidden_size],
                                            name="support_embedding")
        with tf.control_dependencies(self._support_checks(support_text, support_label)):
            texts = tf.identity(support_text)
        with tf1.variable_scope(tf1.get_variable_scope(), reuse=True):  # the encoder serving_default runs
            embedded = self.predictions(dict(zip(tasks.Task.encoder_features, encoder.encode(texts))))["embedding"]
            signatures[SIGNATURE_WITH_SUPPORT] = (
                {"support_text": support_text, "support_label": support_label, "text_a": encoder.text_a},
                self._classify(embedded, support_label))
            with tf.control_dependencies(self._support_checks(support_embedding, support_label)):
                given = tf.identity(support_embedding)
            signatures[SIGNATURE_WITH_SUPPORT_EMBEDDINGS] = (
                {"support_embedding": support_embedding, "support_label": support_label, "text_a": encoder.text_a},
                self._classify(given, support_label))
        return signatures

    def _support_checks(self, support, labels):
        """Assertions on a request's support set: they fail the request with their message, not the server."""
        count, limit = tf.shape(support)[0], self.support.max_support
        return [
            tf1.assert_positive(count, message="the support set is empty: send at least one support text per class"),
            tf1.assert_less_equal(count, limit, message=f"more than {limit} support texts (the export's --max_support)"),
            tf1.assert_equal(count, tf.shape(labels)[0], message="support_label must have one label per support text"),
            tf1.Assert(tf.reduce_all(tf.strings.length(labels) > 0), ["a support label is empty"]),
        ]

    def _classify(self, support_embeddings, support_labels):
        """The queries (serving_default's embeddings) against the prototypes of a request's support set:
        classes in order of first appearance in support_label."""
        classes, index = tf.unique(support_labels)
        prototypes = tf.math.unsorted_segment_mean(support_embeddings, index, tf.size(classes))
        logits = self.task.distance.logits(self.embedding, prototypes)
        label_ids = tf.argmax(logits, -1, output_type=tf.int32)
        return {"probabilities": tf.nn.softmax(logits, -1), "distances": self.task.distance.distances(
            self.embedding, prototypes), "label_id": label_ids, "label": tf.gather(classes, label_ids), "labels": classes}

    def own_variables(self):
        return self.own

    def _support_outputs(self, session, encoder, batch_size=64):
        fetches = {"embedding": self.embedding}
        if "hidden" in self.outputs:
            fetches.update(hidden=self.outputs["hidden"], input_mask=encoder.features["input_mask"])
        texts = self.support.texts
        batches = [session.run(fetches, encoder.feed(texts[start:start + batch_size]))
                   for start in range(0, len(texts), batch_size)]  # padded to max_seq_length
        return {name: np.concatenate([batch[name] for batch in batches]) for name in fetches}

    def after_restore(self, session, encoder):
        labels = np.array([self.classes.index(label) for label in self.support.labels])
        if self.adapt:
            adapter = adaptation.Adapter.for_task(self.trained.config, self.task, self.adapt, self.trained.checkpoint)
            inputs = adapter.inputs(self._support_outputs(session, encoder))
            adapted = adapter.fit(inputs, labels, inputs, len(self.classes), with_variables=True)
            by_name = {v.op.name: v for v in tf1.global_variables()}
            for name, value in adapted.variables.items():
                by_name[name].load(value, session)
        embeddings = self._support_outputs(session, encoder)["embedding"]
        self.prototypes.load(heads.class_means(embeddings, labels, range(len(self.classes))), session)

    def label_map(self):
        return {"labels": self.classes, "multi_label": False}

    def assets(self):
        lines = [f"{t}\t{l}" for t, l in zip(self.support.texts, self.support.labels)]
        return {"support.tsv": "\n".join(lines) + "\n"}


def ner_outputs(trained, encoder, task, data_format, scheme, predict):
    """An NER task's serving outputs and window features on encoder.text_a (tagging_graph); predict:
    window features -> the task head's predictions."""
    return tagging_graph.tagging_outputs(
        predict, encoder.tokenizer, encoder.text_a, tagging_graph.word_split_for(data_format), task.labels, scheme,
        trained.info.max_seq_length, task.stride, *(trained.special_id(t) for t in ("[CLS]", "[SEP]", "[UNK]")))


class TokenClassificationExporter(TaskExporter):
    """NER: raw text in; per word its tag and character span, and the entities, decoded in the graph
    (tagging_graph), as run_ner.py --do_predict tags the same text. Words are split as the training
    data's format had them (tagging_graph.word_split_for); long texts become windows and are merged back.

    serving_default  text_a string [batch] -> tokens, tags string [batch, words] ("" beyond a text's words),
                     token_start, token_end int32 [batch, words] (character offsets, end exclusive; -1
                     beyond), token_count int32 [batch]; entity_type, entity_text string [batch, entities],
                     entity_start, entity_end int32 [batch, entities] (-1 beyond), entity_count int32 [batch]
    tokenize         text_a -> the windows the model reads: input_ids, input_mask, segment_ids,
                     word_positions int32 [windows, max_seq_length], example_index (the text of each window)
    """
    task_class = tasks.TokenClassificationTask

    def __init__(self, trained, support=None):
        super().__init__(trained)
        if support is not None:
            raise UserInputError("--support_file is for few-shot models; this one tags entities")
        self.labels, _ = load_label_map(trained.model_dir)

    def model_task(self):
        return self.task_class.from_info(self.info, labels=self.labels)

    def build(self, encoder):
        outputs, self.windows = ner_outputs(self.trained, encoder, self.model_task(), self.info.extra.get("data_format"),
                                            self.info.extra.get("model_scheme", "BIO"), self.predictions)
        return outputs

    def signatures(self, encoder, outputs):
        names = list(tasks.Task.encoder_features) + ["word_positions", "example_index"]
        return {SIGNATURE_TEXT: (encoder.text_inputs(), outputs),
                SIGNATURE_TOKENIZE: (encoder.text_inputs(), {name: self.windows[name] for name in names})}

    def label_map(self):
        return {"labels": self.labels, "multi_label": False}


class MultiTaskExporter(TaskExporter):
    """One SavedModel for a run_multitask.py model: one signature per task, named by the task, with that task's
    own raw-text inputs and outputs (as ClassificationExporter and TokenClassificationExporter give them);
    serving_default is the first task's. Every signature reads the same encoder variables (one copy)."""
    task_class = multitask.MultiTask

    def __init__(self, trained, support=None):
        super().__init__(trained)
        if support is not None:
            raise UserInputError("--support_file is for few-shot models; this one is a multi-task model")
        self.joint = multitask.MultiTask.from_info(self.info)
        self.entries = {entry["name"]: entry for entry in self.info.extra["tasks"]}
        self.per_task = {}

    def _predictions(self, name, features):
        """Task `name`'s head on BertModel over `features`; the encoder's variables are shared by every task."""
        with tf1.variable_scope(tf1.get_variable_scope(), reuse=tf1.AUTO_REUSE):
            model = modeling.BertModel(self.trained.config, is_training=False, input_ids=features["input_ids"],
                                       input_mask=features["input_mask"], token_type_ids=features["segment_ids"])
            with tf1.variable_scope(name):
                return self.joint.tasks[name].build(model, features, tf.estimator.ModeKeys.PREDICT).predictions

    def build(self, encoder):
        pair = any(entry.get("text_pair") for entry in self.entries.values())
        text_b = tf1.placeholder(tf.string, [None], name="text_b") if pair else None
        for name, task in self.joint.tasks.items():
            entry, inputs = self.entries[name], {"text_a": encoder.text_a}
            if isinstance(task, tasks.TokenClassificationTask):
                outputs, _ = ner_outputs(self.trained, encoder, task, entry.get("data_format"),
                                         entry.get("model_scheme", "BIO"),
                                         lambda features, name=name: self._predictions(name, features))
            else:
                if entry.get("text_pair"):
                    inputs["text_b"] = text_b
                features = dict(zip(tasks.Task.encoder_features, encoder.encode(encoder.text_a, inputs.get("text_b"))))
                predictions = self._predictions(name, features)
                outputs = {"probabilities": predictions["probabilities"], "label_id": predictions["label_ids"],
                           "label": label_strings(task.labels, predictions["label_ids"], task.multi_label,
                                                  task.label_separator)}
            self.per_task[name] = (inputs, outputs)
        return self.per_task[next(iter(self.per_task))][1]

    def signatures(self, encoder, outputs):
        return dict(self.per_task, **{SIGNATURE_TEXT: self.per_task[next(iter(self.per_task))]})

    def label_map(self):
        first = next(iter(self.joint.tasks.values()))
        return {"labels": first.labels, "multi_label": bool(getattr(first, "multi_label", False)),
                "tasks": {name: task.labels for name, task in self.joint.tasks.items()}}
