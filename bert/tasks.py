"""Tasks: what the shared model_fn asks of each kind of training.

A task knows its features (how an example becomes ids, and their TFRecord spec), its head and loss,
its predictions and its evaluation metrics. `model_fn.model_fn_builder(task, ...)` builds the encoder
and hands it to `task.build`; it never asks which task it is.
"""
import dataclasses
from typing import Optional

import numpy as np
import tensorflow as tf

from bert import heads, input_pipeline

tf1 = tf.compat.v1


@dataclasses.dataclass
class TaskOutputs:
    loss: Optional[tf.Tensor]  # float32 scalar; None when predicting without labels
    predictions: dict  # name -> tensor [batch, ...]
    eval_metric_ops: dict  # name -> (value, update_op)


class Task:
    name = None
    encoder_features = ("input_ids", "input_mask", "segment_ids")

    def feature_shapes(self):
        """{feature name: shape of one example's feature}."""
        raise NotImplementedError

    def feature_spec(self):
        return input_pipeline.int_feature_spec(self.feature_shapes())

    def cache_key(self):
        """What about this task shapes its features (part of the TFRecord cache key)."""
        raise NotImplementedError

    def convert(self, example):
        """InputExample -> {feature name: int or list of ints}."""
        raise NotImplementedError

    def build(self, model, features, mode):
        """model: BertModel over features' encoder inputs -> TaskOutputs."""
        raise NotImplementedError


def streaming_sum(values, name):
    """A metric that adds up `values` over the evaluation: (total, update_op)."""
    total = tf1.Variable(tf.zeros_like(values), trainable=False, name=name,
                         collections=[tf1.GraphKeys.LOCAL_VARIABLES, tf1.GraphKeys.METRIC_VARIABLES])
    return total.read_value(), total.assign_add(values)


class ClassificationTask(Task):
    """Single-sentence or sentence-pair classification; softmax, or sigmoid when multi_label."""

    name = "classification"

    def __init__(self, labels, tokenizer, max_seq_length, multi_label=False, pooling="pooled",
                 dropout_prob=0.1, initializer_range=0.02):
        self.labels = list(labels)
        self.label_to_id = {label: index for index, label in enumerate(self.labels)}
        self.tokenizer = tokenizer
        self.max_seq_length = max_seq_length
        self.multi_label = multi_label
        self.pooling = pooling
        self.dropout_prob = dropout_prob
        self.initializer_range = initializer_range

    def feature_shapes(self):
        seq = [self.max_seq_length]
        return {"input_ids": seq, "input_mask": seq, "segment_ids": seq,
                "label_ids": [len(self.labels)] if self.multi_label else []}

    def cache_key(self):
        return {"task": self.name, "labels": self.labels, "multi_label": self.multi_label,
                "max_seq_length": self.max_seq_length}

    def convert(self, example):
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

    def report(self, result):
        """Estimator.evaluate's result -> a JSON-able dict with per-class precision, recall and F1."""
        report = {"loss": float(result["eval_loss"]), "global_step": int(result["global_step"])}
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
            report["accuracy"] = float(result["accuracy"])
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


class FewShotTask(Task):
    """Prototypical networks: each batch is an episode of support and query sentences.

    Features per sentence: the encoder inputs, `label_ids` (its class among all classes, used to
    group examples), and, in training/evaluation episodes, `episode_labels` (class index within the
    episode) and `is_query` (1 for a query, 0 for a support sentence). Prototypes are the support
    embeddings' class means; queries are classified by distance to them. Predicting returns the
    sentence embedding, so evaluation and prediction run on embeddings computed once.
    """

    name = "fewshot"

    def __init__(self, labels, tokenizer, max_seq_length, pooling="mean", distance="euclidean"):
        self.labels = list(labels)
        self.label_to_id = {label: index for index, label in enumerate(self.labels)}
        self.tokenizer = tokenizer
        self.max_seq_length = max_seq_length
        self.pooling = pooling
        self.distance = distance

    def feature_shapes(self):
        seq = [self.max_seq_length]
        return {"input_ids": seq, "input_mask": seq, "segment_ids": seq, "label_ids": []}

    def cache_key(self):
        return {"task": self.name, "labels": self.labels, "max_seq_length": self.max_seq_length}

    def convert(self, example):
        input_ids, input_mask, segment_ids = input_pipeline.encode_text_pair(
            self.tokenizer, example.text_a, example.text_b, self.max_seq_length)
        label_id = self.label_to_id[example.label] if example.label is not None else 0
        return {"input_ids": input_ids, "input_mask": input_mask, "segment_ids": segment_ids,
                "label_ids": label_id}

    def build(self, model, features, mode):
        embedding = heads.sentence_embedding(model, features["input_mask"], self.pooling)  # [batch, hidden]
        if mode == tf.estimator.ModeKeys.PREDICT:
            return TaskOutputs(None, {"embedding": embedding}, {})
        labels = features["episode_labels"]
        is_query = tf.cast(features["is_query"], tf.bool)
        num_classes = tf.reduce_max(labels) + 1
        prototypes = heads.prototypes_from_support(tf.boolean_mask(embedding, ~is_query),
                                                   tf.boolean_mask(labels, ~is_query), num_classes)
        query_labels = tf.boolean_mask(labels, is_query)
        logits = heads.prototypical_logits(tf.boolean_mask(embedding, is_query), prototypes, self.distance)
        per_query = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=query_labels, logits=logits)
        loss = tf.reduce_mean(per_query)
        metrics = {}
        if mode == tf.estimator.ModeKeys.EVAL:
            predicted = tf.argmax(logits, -1, output_type=tf.int32)
            metrics = {"accuracy": tf1.metrics.accuracy(query_labels, predicted),
                       "eval_loss": tf1.metrics.mean(per_query)}
        return TaskOutputs(loss, {}, metrics)


class PretrainingTask(Task):
    """Masked LM, plus next-sentence prediction when the data has next_sentence_labels.

    Heads use Google's names (cls/predictions/..., cls/seq_relationship/...), the masked-LM output
    weights tied to the word embeddings, so Google's checkpoints continue and the result fine-tunes.
    """

    name = "pretraining"

    def __init__(self, max_seq_length, max_predictions_per_seq, next_sentence=True):
        self.max_seq_length = max_seq_length
        self.max_predictions_per_seq = max_predictions_per_seq
        self.next_sentence = next_sentence

    def feature_spec(self):
        seq, predictions = [self.max_seq_length], [self.max_predictions_per_seq]
        spec = input_pipeline.int_feature_spec({"input_ids": seq, "input_mask": seq, "segment_ids": seq,
                                                "masked_lm_positions": predictions, "masked_lm_ids": predictions})
        spec["masked_lm_weights"] = tf.io.FixedLenFeature(predictions, tf.float32)
        if self.next_sentence:
            spec["next_sentence_labels"] = tf.io.FixedLenFeature([1], tf.int64)
        return spec

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


class SpanTask(Task):
    """Extractive question answering: start and end logits over the [CLS] question [SEP] context [SEP]
    window; position 0 ([CLS]) stands for "no answer in this window"."""

    name = "squad"

    def __init__(self, tokenizer, window_settings):
        self.tokenizer = tokenizer
        self.window = window_settings

    def feature_shapes(self, is_training=True):
        seq = [self.window.max_seq_length]
        shapes = {"input_ids": seq, "input_mask": seq, "segment_ids": seq, "example_index": [],
                  "token_start_chars": seq, "token_end_chars": seq, "token_is_max_context": seq}
        if is_training:
            shapes.update(start_positions=[], end_positions=[])
        return shapes

    def feature_spec(self, is_training=True):
        return input_pipeline.int_feature_spec(self.feature_shapes(is_training))

    def cache_key(self):
        return {"task": self.name, **dataclasses.asdict(self.window)}

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
