"""Tasks: what the shared model_fn, the input pipeline, the trained folder and the exporter ask of
each kind of training.

A task knows its features (how an example becomes ids, their shapes and TFRecord spec, and what
about the task keys their cache), its head, loss, predictions and evaluation metric ops (`build`),
what the trained folder records about it (`model_info`, and `from_info` to rebuild it there), and its
**scorer**: the object that turns predictions and gold data into the task's metrics, so that no
script computes metrics itself. `model_fn.model_fn_builder(task, ...)` builds the encoder and hands
it to `task.build`; it never asks which task it is. Tasks register under their `name`, written once
here: the trained folder's model_info.json and the exporter registry use that name.

Adding a task (e.g. multiple choice):
  1. a Task subclass here, decorated with @register_task, with a unique `name`: feature_shapes,
     cache_key, convert (one example -> a feature dict, or a list of them with many_features=True),
     build (model, features, mode -> TaskOutputs), model_info / from_info, and scorer;
  2. its Scorer subclass (predictions + gold -> a JSON-able dict of metrics);
  3. a data processor in processors/ (files -> InputExamples), registered with @register_processor;
  4. to serve it, a TaskExporter subclass in bert/export/exporters.py whose `task_class` is the new
     task (it registers itself by that task's name).
model_fn.py, estimator.py, input_pipeline.py and the export machinery stay as they are.
"""
import dataclasses
import json
import os
import time
from typing import Optional

import numpy as np
import tensorflow as tf
from absl import logging

from bert import crf, heads, input_pipeline, modeling, ner, squad, tagging
from bert.errors import UserInputError

tf1 = tf.compat.v1


@dataclasses.dataclass
class TaskOutputs:
    loss: Optional[tf.Tensor]  # float32 scalar; None when predicting without labels
    predictions: dict  # name -> tensor [batch, ...]
    eval_metric_ops: dict  # name -> (value, update_op)


TASKS = {}


def register_task(task_class):
    """Class decorator: makes the task known by its name (model_info.json, the exporter registry)."""
    if not task_class.name or task_class.name in TASKS:
        raise ValueError(f"task name {task_class.name!r} is missing or taken")
    TASKS[task_class.name] = task_class
    return task_class


def task_class(name, where="model_info.json"):
    """The registered task class named `name`; an unknown name is an error naming `where`."""
    if name not in TASKS:
        raise UserInputError(f"{where}: unknown task {name!r} (known: {', '.join(sorted(TASKS))})")
    return TASKS[name]


class Task:
    name = None
    encoder_features = ("input_ids", "input_mask", "segment_ids")
    many_features = False  # True: convert returns a list of feature dicts per example (windows)

    def feature_shapes(self, training=True):
        """{feature name: shape of one example's feature}; `training` adds the gold features."""
        raise NotImplementedError

    def feature_spec(self, training=True):
        return input_pipeline.int_feature_spec(self.feature_shapes(training))

    def cache_key(self, training=False):
        """What about this task shapes its features (part of the TFRecord cache key)."""
        raise NotImplementedError

    def convert(self, example, training=False):
        """InputExample -> {feature name: int or list of ints} (a list of them with many_features)."""
        raise NotImplementedError

    def build(self, model, features, mode):
        """model: BertModel over features' encoder inputs -> TaskOutputs."""
        raise NotImplementedError

    def model_info(self):
        """What the trained folder's model_info.json records about this task, besides its name."""
        return {}

    @classmethod
    def from_info(cls, info, tokenizer=None):
        """The task again, from a trained folder's model_folder.ModelInfo (for export)."""
        raise NotImplementedError

    def scorer(self, **options):
        """The Scorer that turns this task's predictions and gold data into its metrics."""
        raise NotImplementedError

    def init_name_map(self, init_checkpoint):
        """How this task's variables are named in init_checkpoint when it is a run_multitask.py model with
        exactly one task of this kind and these labels: its head under that task's scope ("<task>/..."),
        the encoder as it is (graph name -> checkpoint name). None otherwise (names as they are)."""
        info = multitask_info(init_checkpoint)
        if info is None:
            return None
        entries = [e for e in info.get("tasks") or [] if e.get("task") == self.name
                   and e.get("labels") == getattr(self, "labels", None)]
        if len(entries) != 1:
            logging.warning("%s is a multi-task model without exactly one %s task with these labels: the head "
                            "starts fresh", init_checkpoint, self.name)
            return None
        scope = entries[0]["name"] + "/"
        logging.info("the %s head starts from task %r of the multi-task model %s", self.name, entries[0]["name"],
                     init_checkpoint)
        return lambda name: name if name.startswith("bert/") else scope + name


def multitask_info(init_checkpoint):
    """model_info.json (a dict) of the run_multitask.py folder holding init_checkpoint (the folder, a
    checkpoint prefix in it or in its best/), or None."""
    if not init_checkpoint:
        return None
    folder = init_checkpoint if os.path.isdir(init_checkpoint) else os.path.dirname(init_checkpoint)
    for candidate in (folder, os.path.dirname(folder) if os.path.basename(folder) == "best" else None):
        path = os.path.join(candidate or "", "model_info.json")
        if candidate and os.path.exists(path):
            try:
                with open(path, encoding="utf-8") as reader:
                    info = json.load(reader)
            except (OSError, ValueError):
                return None
            return info if isinstance(info, dict) and info.get("task") == "multitask" else None
    return None


class Scorer:
    """Predictions and gold data -> the task's metrics, a JSON-able dict (ELECTRA's scorer)."""

    def score(self, *args, **kwargs):
        raise NotImplementedError


def streaming_sum(values, name):
    """A metric that adds up `values` over the evaluation: (total, update_op)."""
    total = tf1.Variable(tf.zeros_like(values), trainable=False, name=name,
                         collections=[tf1.GraphKeys.LOCAL_VARIABLES, tf1.GraphKeys.METRIC_VARIABLES])
    return total.read_value(), total.assign_add(values)


@register_task
class ClassificationTask(Task):
    """Single-sentence or sentence-pair classification; softmax, or sigmoid when multi_label."""

    name = "classification"

    def __init__(self, labels, tokenizer, max_seq_length, multi_label=False, pooling="pooled",
                 dropout_prob=0.1, initializer_range=0.02, label_separator=","):
        self.labels = list(labels)
        self.label_to_id = {label: index for index, label in enumerate(self.labels)}
        self.tokenizer = tokenizer
        self.max_seq_length = max_seq_length
        self.multi_label = multi_label
        self.pooling = pooling
        self.dropout_prob = dropout_prob
        self.initializer_range = initializer_range
        self.label_separator = label_separator

    def feature_shapes(self, training=True):
        seq = [self.max_seq_length]
        return {"input_ids": seq, "input_mask": seq, "segment_ids": seq,
                "label_ids": [len(self.labels)] if self.multi_label else []}

    def cache_key(self, training=False):
        return {"task": self.name, "labels": self.labels, "multi_label": self.multi_label,
                "max_seq_length": self.max_seq_length}

    def convert(self, example, training=False):
        input_ids, input_mask, segment_ids = input_pipeline.encode_text_pair(
            self.tokenizer, example.text_a, example.text_b, self.max_seq_length)
        if self.multi_label:
            label_ids = [0] * len(self.labels)
            for label in example.label or []:
                label_ids[self.label_to_id[label]] = 1
        else:
            label_ids = self.label_to_id[example.label] if example.label is not None else 0
        return {"input_ids": input_ids, "input_mask": input_mask, "segment_ids": segment_ids,
                "label_ids": label_ids}

    def build(self, model, features, mode):
        is_training = mode == tf.estimator.ModeKeys.TRAIN
        embedding = heads.sentence_embedding(model, features["input_mask"], self.pooling)
        logits = heads.classification_logits(embedding, len(self.labels), is_training,
                                             self.dropout_prob, self.initializer_range)  # [batch, labels]
        if self.multi_label:
            probabilities = tf.sigmoid(logits)
            predicted = tf.cast(probabilities > 0.5, tf.int32)  # [batch, labels] multi-hot
        else:
            probabilities = tf.nn.softmax(logits, axis=-1)
            predicted = tf.argmax(logits, axis=-1, output_type=tf.int32)  # [batch]
        predictions = {"probabilities": probabilities, "label_ids": predicted}
        if mode == tf.estimator.ModeKeys.PREDICT:
            return TaskOutputs(None, predictions, {})

        labels = features["label_ids"]
        if self.multi_label:
            per_example = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
                labels=tf.cast(labels, tf.float32), logits=logits), axis=-1)
        else:
            per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
        loss = tf.reduce_mean(per_example)
        metrics = {}
        if mode == tf.estimator.ModeKeys.EVAL:
            metrics["eval_loss"] = tf1.metrics.mean(per_example)
            if self.multi_label:
                truth = tf.cast(labels, tf.bool)
                guess = tf.cast(predicted, tf.bool)
                metrics["exact_match"] = tf1.metrics.mean(tf.cast(tf.reduce_all(tf.equal(truth, guess), -1),
                                                                  tf.float32))
                counts = tf.stack([tf.logical_and(guess, truth), tf.logical_and(guess, ~truth),
                                   tf.logical_and(~guess, truth)], axis=-1)  # [batch, labels, 3]
                metrics["label_counts"] = streaming_sum(tf.reduce_sum(tf.cast(counts, tf.int64), 0),
                                                        "label_counts")
            else:
                metrics["accuracy"] = tf1.metrics.accuracy(labels, predicted)
                metrics["confusion_matrix"] = streaming_sum(
                    tf.math.confusion_matrix(labels, predicted, len(self.labels), dtype=tf.int64),
                    "confusion_matrix")
        return TaskOutputs(loss, predictions, metrics)

    def model_info(self):
        return {"labels": self.labels, "multi_label": self.multi_label, "label_separator": self.label_separator,
                "pooling": self.pooling}

    @classmethod
    def from_info(cls, info, tokenizer=None):
        return cls(info.labels, tokenizer, info.max_seq_length, multi_label=info.multi_label,
                   pooling=info.pooling or "pooled", label_separator=info.label_separator)

    def scorer(self):
        return ClassificationScorer(self.labels, self.multi_label)


class ClassificationScorer(Scorer):
    """Estimator.evaluate's streamed counts -> accuracy (or exact match), per-class precision, recall
    and F1, macro F1, the confusion matrix, and for two classes GLUE's F1 of the positive class."""

    LOSSES = ("loss", "eval_loss")  # lower is better; every other metric, higher
    METRICS = {False: ("accuracy", "eval_accuracy", "macro_f1", "f1") + LOSSES,  # f1: two labels only
               True: ("exact_match", "macro_f1") + LOSSES}

    def __init__(self, labels, multi_label=False):
        self.labels = list(labels)
        self.multi_label = multi_label

    @classmethod
    def check_metric(cls, metric, multi_label):
        """`metric` (None passes) when the scorer reports it; else a UserInputError naming the choices."""
        if metric is not None and metric not in cls.METRICS[multi_label]:
            raise UserInputError(f"--best_metric={metric} is not reported for {'multi' if multi_label else 'single'}"
                                 f"-label classification; choose one of {', '.join(cls.METRICS[multi_label])}")
        return metric

    def score(self, result):
        report = {"loss": float(result["eval_loss"]), "global_step": int(result["global_step"]),
                  "eval_loss": float(result["eval_loss"])}  # Google's eval_results.txt name, beside ours
        if self.multi_label:
            counts = np.asarray(result["label_counts"])  # [labels, (tp, fp, fn)]
            tp, fp, fn = counts[:, 0], counts[:, 1], counts[:, 2]
            report["exact_match"] = float(result["exact_match"])
            support = tp + fn
        else:
            confusion = np.asarray(result["confusion_matrix"])  # [truth, predicted]
            tp = np.diag(confusion)
            fp = confusion.sum(0) - tp
            fn = confusion.sum(1) - tp
            support = confusion.sum(1)
            report["accuracy"] = report["eval_accuracy"] = float(result["accuracy"])
            report["confusion_matrix"] = {"labels": self.labels, "rows_are": "true label",
                                          "matrix": confusion.tolist()}
        precision = np.divide(tp, tp + fp, out=np.zeros(len(tp)), where=(tp + fp) > 0)
        recall = np.divide(tp, tp + fn, out=np.zeros(len(tp)), where=(tp + fn) > 0)
        f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(len(tp)),
                       where=(precision + recall) > 0)
        report["macro_f1"] = float(f1.mean())
        report["per_class"] = {label: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                               for label, p, r, f, s in zip(self.labels, precision, recall, f1, support)}
        if len(self.labels) == 2 and not self.multi_label:
            report["f1"] = float(f1[1])  # the positive class, as GLUE reports MRPC
        return report


@register_task
class FewShotTask(Task):
    """Prototypical networks: each batch is an episode of support and query sentences.

    Features per sentence: the encoder inputs, `label_ids` (its class among all classes, used to
    group examples), and, in training/evaluation episodes, `episode_labels` (class index within the
    episode) and `is_query` (1 for a query, 0 for a support sentence). Prototypes are the support
    embeddings' class means; queries are classified by distance to them (heads.DISTANCES). Predicting
    returns the sentence embedding, so evaluation and prediction run on embeddings computed once, and
    with `hidden_layer` also the hidden states that feed support-set adaptation of the top layers
    (0: the embedding output, i: layer i's output; bert.adaptation).
    """

    name = "fewshot"

    def __init__(self, labels, tokenizer, max_seq_length, pooling="mean", distance="euclidean", hidden_layer=None):
        self.hidden_layer = hidden_layer
        self.labels = list(labels)
        self.label_to_id = {label: index for index, label in enumerate(self.labels)}
        self.tokenizer = tokenizer
        self.max_seq_length = max_seq_length
        self.pooling = pooling
        self.distance = heads.get_distance(distance)

    def feature_shapes(self, training=True):
        seq = [self.max_seq_length]
        return {"input_ids": seq, "input_mask": seq, "segment_ids": seq, "label_ids": []}

    def cache_key(self, training=False):
        return {"task": self.name, "labels": self.labels, "max_seq_length": self.max_seq_length}

    def convert(self, example, training=False):
        input_ids, input_mask, segment_ids = input_pipeline.encode_text_pair(
            self.tokenizer, example.text_a, example.text_b, self.max_seq_length)
        label_id = self.label_to_id[example.label] if example.label is not None else 0
        return {"input_ids": input_ids, "input_mask": input_mask, "segment_ids": segment_ids,
                "label_ids": label_id}

    def build(self, model, features, mode):
        embedding = heads.sentence_embedding(model, features["input_mask"], self.pooling)  # [batch, hidden]
        if mode == tf.estimator.ModeKeys.PREDICT:
            outputs = {"embedding": embedding}
            if self.hidden_layer is not None:
                outputs["hidden"] = ([model.get_embedding_output()] + model.get_all_encoder_layers())[self.hidden_layer]
            return TaskOutputs(None, outputs, {})
        labels = features["episode_labels"]
        is_query = tf.cast(features["is_query"], tf.bool)
        num_classes = tf.reduce_max(labels) + 1
        prototypes = heads.prototypes_from_support(tf.boolean_mask(embedding, ~is_query),
                                                   tf.boolean_mask(labels, ~is_query), num_classes)
        query_labels = tf.boolean_mask(labels, is_query)
        logits = self.distance.logits(tf.boolean_mask(embedding, is_query), prototypes)
        per_query = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=query_labels, logits=logits)
        loss = tf.reduce_mean(per_query)
        metrics = {}
        if mode == tf.estimator.ModeKeys.EVAL:
            predicted = tf.argmax(logits, -1, output_type=tf.int32)
            metrics = {"accuracy": tf1.metrics.accuracy(query_labels, predicted),
                       "eval_loss": tf1.metrics.mean(per_query)}
        return TaskOutputs(loss, {}, metrics)

    def model_info(self):
        return {"pooling": self.pooling, "distance": self.distance.name}

    @classmethod
    def from_info(cls, info, tokenizer=None, labels=()):
        return cls(labels, tokenizer, info.max_seq_length, info.pooling or "mean", info.distance)

    def scorer(self, n_way, k_shot, q_query, episodes, seed, params=None):
        return FewShotScorer(n_way, k_shot, q_query, episodes, seed, self.distance, params)


class FewShotScorer(Scorer):
    """Mean query accuracy over sampled N-way K-shot episodes on stored embeddings, with its 95%
    interval (1.96 standard errors). An episode costs microseconds in numpy, so 1000 take a second."""

    def __init__(self, n_way, k_shot, q_query, episodes, seed, distance, params=None):
        self.n_way, self.k_shot, self.q_query = n_way, k_shot, q_query
        self.episodes, self.seed = episodes, seed
        self.distance = heads.get_distance(distance) if isinstance(distance, str) else distance
        self.params = params  # the distance's trained variables (None: their initial values)

    def score(self, embeddings, rows):
        """embeddings [examples, hidden]; rows: {class id: row indices of its examples}."""
        def accuracy(chosen, labels, is_query):
            vectors = embeddings[chosen]
            support, query = vectors[is_query == 0], vectors[is_query == 1]
            prototypes = support.reshape(self.n_way, self.k_shot, -1).mean(1)
            predicted = self.distance.np_logits(query, prototypes, self.params).argmax(-1)
            return (predicted == labels[is_query == 1]).mean()
        return score_episodes(rows, self.n_way, self.k_shot, self.q_query, self.episodes, self.seed, accuracy)


def score_episodes(rows, n_way, k_shot, q_query, episodes, seed, accuracy):
    """summarize() of accuracy(chosen rows, episode labels, is_query) over `episodes` sampled N-way K-shot
    episodes (input_pipeline.EpisodeSampler with `seed`: every caller with one seed sees the same ones)."""
    sampler = input_pipeline.EpisodeSampler(rows, n_way, k_shot, q_query, seed)
    start = time.perf_counter()
    accuracies = [accuracy(*sampler.sample()[:3]) for _ in range(episodes)]
    return summarize(accuracies, time.perf_counter() - start)


def summarize(accuracies, seconds):
    """Per-episode accuracies -> mean, 95% interval (1.96 standard errors), count, episodes per second."""
    count = len(accuracies)
    return {"accuracy": float(np.mean(accuracies)),
            "ci95": float(1.96 * np.std(accuracies, ddof=1) / np.sqrt(count)) if count > 1 else 0.0,
            "episodes": count, "episodes_per_second": count / seconds if seconds > 0 else float("inf")}


@register_task
class TokenClassificationTask(Task):
    """Tags per word; labels[0] must be "O" (the id padding positions carry)."""

    name = "ner"
    many_features = True

    def __init__(self, labels, tokenizer, max_seq_length, use_crf=False, stride=None, dropout_prob=0.1,
                 initializer_range=0.02):
        self.labels = list(labels)
        if not self.labels or self.labels[0] != tagging.OUTSIDE:
            raise ValueError(f"the first tag must be {tagging.OUTSIDE!r}, got {self.labels[:1]}")
        self.label_to_id = {label: index for index, label in enumerate(self.labels)}
        self.tokenizer = tokenizer
        self.max_seq_length = max_seq_length
        self.use_crf = use_crf
        self.stride = stride or max(1, (max_seq_length - 2) // 2)
        self.dropout_prob, self.initializer_range = dropout_prob, initializer_range

    def feature_shapes(self, training=True):
        seq = [self.max_seq_length]
        shapes = {"input_ids": seq, "input_mask": seq, "segment_ids": seq, "word_positions": seq,
                  "word_count": [], "word_is_max_context": seq, "example_index": [], "first_word": []}
        if training:
            shapes["word_labels"] = seq
        return shapes

    def cache_key(self, training=False):
        return {"task": self.name, "labels": self.labels, "max_seq_length": self.max_seq_length,
                "stride": self.stride, "training": training}

    def convert(self, example, training=False):
        """A TaggedWords -> one feature dict per window (the cache adds example_index)."""
        words, tags = example.words, example.tags
        if training and tags is None:
            raise UserInputError("training needs tags for every sentence")
        room = self.max_seq_length - 2
        pieces = tagging.word_pieces(self.tokenizer, words, room)
        window_list = tagging.windows([len(p) for p in pieces], room, self.stride)
        features = []
        for index, window in enumerate(window_list):
            tokens, positions, owned, labels = ["[CLS]"], [], [], []
            for j in range(window.words):
                word = window.first_word + j
                positions.append(len(tokens))
                tokens.extend(pieces[word])
                owned.append(int(tagging.max_context(window_list, word) == index))
                if tags is not None:
                    labels.append(self.label_to_id[tags[word]])
            tokens.append("[SEP]")
            pad = self.max_seq_length - len(tokens)
            words_pad = self.max_seq_length - window.words
            feature = {"input_ids": self.tokenizer.convert_tokens_to_ids(tokens) + [0] * pad,
                       "input_mask": [1] * len(tokens) + [0] * pad, "segment_ids": [0] * self.max_seq_length,
                       "word_positions": positions + [0] * words_pad, "word_count": window.words,
                       "word_is_max_context": owned + [0] * words_pad, "first_word": window.first_word}
            if training:
                feature["word_labels"] = labels + [0] * words_pad
            features.append(feature)
        return features

    def build(self, model, features, mode):
        sequence = model.get_sequence_output()  # [batch, seq, hidden]
        if mode == tf.estimator.ModeKeys.TRAIN:
            sequence = modeling.dropout(sequence, self.dropout_prob)
        width = sequence.shape.as_list()[-1]
        with tf1.variable_scope(self.name):
            weights = tf1.get_variable("output_weights", [len(self.labels), width],
                                       initializer=modeling.create_initializer(self.initializer_range))
            bias = tf1.get_variable("output_bias", [len(self.labels)], initializer=tf1.zeros_initializer())
            words = tf.gather(sequence, features["word_positions"], batch_dims=1)  # [batch, seq, hidden]
            logits = tf.einsum("bwh,th->bwt", words, weights) + bias  # [batch, words, tags]
            lengths = features["word_count"]
            mask = tf.sequence_mask(lengths, self.max_seq_length, dtype=tf.float32)
            if self.use_crf:
                transitions = crf.crf_variables(len(self.labels))
                predicted, _ = crf.viterbi_decode(logits, lengths, *transitions)
            else:
                predicted = tf.argmax(logits, -1, output_type=tf.int32) * tf.cast(mask, tf.int32)
        predictions = {"word_tags": predicted, "word_count": lengths, "example_index": features["example_index"],
                       "first_word": features["first_word"], "word_is_max_context": features["word_is_max_context"]}
        if mode == tf.estimator.ModeKeys.PREDICT:
            return TaskOutputs(None, predictions, {})
        labels = features["word_labels"]
        if self.use_crf:
            loss = -tf.reduce_mean(crf.log_likelihood(logits, labels, lengths, *transitions))
        else:
            per_word = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
            loss = tf.reduce_sum(per_word * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)
        metrics = {}
        if mode == tf.estimator.ModeKeys.EVAL:
            metrics = {"word_accuracy": tf1.metrics.accuracy(labels, predicted, weights=mask)}
        return TaskOutputs(loss, predictions, metrics)

    def model_info(self):
        return {"use_crf": self.use_crf, "stride": self.stride}

    @classmethod
    def from_info(cls, info, tokenizer=None, labels=()):
        return cls(labels, tokenizer, info.max_seq_length, info.extra.get("use_crf", False),
                   info.extra.get("stride"))

    def scorer(self, scheme="BIO"):
        return EntityScorer(scheme)

    def merge(self, sentence_lengths, predictions):
        """Window predictions (arrays by name, as Estimator.predict gives them) -> one tag list per
        sentence: each word's tag from the window where it has the most context."""
        tags = [[tagging.OUTSIDE] * n for n in sentence_lengths]
        for window in range(len(predictions["example_index"])):
            sentence, first = int(predictions["example_index"][window]), int(predictions["first_word"][window])
            for j in range(int(predictions["word_count"][window])):
                if predictions["word_is_max_context"][window][j]:
                    tags[sentence][first + j] = self.labels[int(predictions["word_tags"][window][j])]
        return tags




class EntityScorer(Scorer):
    """Entity-level precision, recall and F1, micro and per type, as seqeval's default (conlleval) mode."""

    def __init__(self, scheme="BIO"):
        self.scheme = scheme

    def score(self, gold_tags, predicted_tags):
        """Per sentence, each word's gold and predicted tags (in `scheme`)."""
        return ner.entity_scores(gold_tags, predicted_tags, self.scheme)


@register_task
class PretrainingTask(Task):
    """Masked LM, plus next-sentence prediction when the data has next_sentence_labels.

    Heads use Google's names (cls/predictions/..., cls/seq_relationship/...), the masked-LM output
    weights tied to the word embeddings, so Google's checkpoints continue and the result fine-tunes.
    Features come ready-made from create_pretraining_data.py (bert/pretraining_data.py).
    """

    name = "pretraining"

    def __init__(self, max_seq_length, max_predictions_per_seq, next_sentence=True):
        self.max_seq_length = max_seq_length
        self.max_predictions_per_seq = max_predictions_per_seq
        self.next_sentence = next_sentence

    def feature_shapes(self, training=True):
        seq, predictions = [self.max_seq_length], [self.max_predictions_per_seq]
        shapes = {"input_ids": seq, "input_mask": seq, "segment_ids": seq, "masked_lm_positions": predictions,
                  "masked_lm_ids": predictions, "masked_lm_weights": predictions}
        if self.next_sentence:
            shapes["next_sentence_labels"] = [1]
        return shapes

    def feature_spec(self, training=True):
        spec = input_pipeline.int_feature_spec(self.feature_shapes(training))
        spec["masked_lm_weights"] = tf.io.FixedLenFeature([self.max_predictions_per_seq], tf.float32)
        return spec

    def cache_key(self, training=False):
        return {"task": self.name, "max_seq_length": self.max_seq_length,
                "max_predictions_per_seq": self.max_predictions_per_seq, "next_sentence": self.next_sentence}

    def convert(self, example, training=False):
        raise UserInputError("pretraining features are made by create_pretraining_data.py, not converted here")

    def build(self, model, features, mode):
        config = model.config
        weights = features["masked_lm_weights"]
        mlm_loss, mlm_per_example, mlm_log_probs = heads.masked_lm(
            config, model.get_sequence_output(), model.get_embedding_table(), features["masked_lm_positions"],
            features["masked_lm_ids"], weights)
        loss = mlm_loss
        if self.next_sentence:
            nsp_labels = tf.reshape(features["next_sentence_labels"], [-1])
            nsp_loss, nsp_per_example, nsp_log_probs = heads.next_sentence(config, model.get_pooled_output(),
                                                                           nsp_labels)
            loss += nsp_loss
        metrics = {}
        if mode == tf.estimator.ModeKeys.EVAL:
            flat_weights = tf.reshape(weights, [-1])
            predicted = tf.argmax(mlm_log_probs, -1, output_type=tf.int32)
            metrics = {"masked_lm_accuracy": tf1.metrics.accuracy(tf.reshape(features["masked_lm_ids"], [-1]),
                                                                  predicted, weights=flat_weights),
                       "masked_lm_loss": tf1.metrics.mean(mlm_per_example, weights=flat_weights)}
            if self.next_sentence:
                metrics["next_sentence_accuracy"] = tf1.metrics.accuracy(
                    nsp_labels, tf.argmax(nsp_log_probs, -1, output_type=tf.int32))
                metrics["next_sentence_loss"] = tf1.metrics.mean(nsp_per_example)
        return TaskOutputs(loss, {"masked_lm_log_probs": mlm_log_probs}, metrics)

    def model_info(self):
        return {"next_sentence": self.next_sentence, "max_predictions_per_seq": self.max_predictions_per_seq}

    @classmethod
    def from_info(cls, info, tokenizer=None):
        return cls(info.max_seq_length, info.extra.get("max_predictions_per_seq", 20),
                   info.extra.get("next_sentence", True))

    def scorer(self):
        return PretrainingScorer()


class PretrainingScorer(Scorer):
    """Estimator.evaluate's masked-LM (and next-sentence) accuracy and loss -> floats, global_step an int."""

    def score(self, result):
        report = {key: float(value) for key, value in result.items() if key != "global_step"}
        report["global_step"] = int(result["global_step"])
        return report


@register_task
class SpanTask(Task):
    """Extractive question answering: start and end logits over the [CLS] question [SEP] context [SEP]
    window; position 0 ([CLS]) stands for "no answer in this window". Each question becomes one
    feature per context window (squad.example_features), tagged with its example_index."""

    name = "squad"
    many_features = True

    def __init__(self, tokenizer, window_settings):
        self.tokenizer = tokenizer
        self.window = window_settings

    def feature_shapes(self, training=True):
        seq = [self.window.max_seq_length]
        shapes = {"input_ids": seq, "input_mask": seq, "segment_ids": seq, "example_index": [],
                  "token_start_chars": seq, "token_end_chars": seq, "token_is_max_context": seq}
        if training:
            shapes.update(start_positions=[], end_positions=[])
        return shapes

    def cache_key(self, training=False):
        return {"task": self.name, **dataclasses.asdict(self.window), "training": training}

    def convert(self, example, training=False):
        return squad.example_features(example, self.tokenizer, self.window, training)

    def build(self, model, features, mode):
        start_logits, end_logits = heads.span_logits(model.get_sequence_output())  # [batch, seq] each
        predictions = {"example_index": features["example_index"], "start_logits": start_logits,
                       "end_logits": end_logits}
        if mode == tf.estimator.ModeKeys.PREDICT:
            return TaskOutputs(None, predictions, {})
        loss = (tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                    labels=features["start_positions"], logits=start_logits)) +
                tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                    labels=features["end_positions"], logits=end_logits))) / 2.0
        return TaskOutputs(loss, predictions, {})

    def model_info(self):
        return {"doc_stride": self.window.doc_stride, "max_query_length": self.window.max_query_length}

    @classmethod
    def from_info(cls, info, tokenizer=None):
        return cls(tokenizer, squad.WindowSettings(info.max_seq_length, info.extra.get("doc_stride", 128),
                                                   info.extra.get("max_query_length", 64)))

    def scorer(self, version="auto", version_2_with_negative=False):
        return SpanScorer(version, version_2_with_negative)


class SpanScorer(Scorer):
    """The official metrics of predicted answers: SQuAD v1.1 / v2.0 EM and F1 (v2.0 with HasAns/NoAns
    and best thresholds from the null odds), or CMRC2018's character-level EM and F1. version "auto":
    2.0 with version_2_with_negative, else cmrc when most contexts are Chinese, else 1.1."""

    def __init__(self, version="auto", version_2_with_negative=False):
        self.version = version
        self.version_2_with_negative = version_2_with_negative

    def score(self, examples, predictions, null_odds=None):
        """examples: squad.SquadExample list (gold answers); predictions {qas_id: answer text}."""
        version = self.version
        if version == "auto":
            version = "2.0" if self.version_2_with_negative else squad.language_of(examples)
        result = squad.evaluate(examples, predictions, version, null_odds or None)
        result["eval_version"] = version
        return result
