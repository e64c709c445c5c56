"""Few-shot evaluation and prediction on sentence embeddings, and the fine-tuning baseline.

Evaluation embeds every example once, then samples episodes on those embeddings in numpy: an episode
costs microseconds, so the table's 1000 episodes per setting take about a second.
"""
import re
import time

import numpy as np
import tensorflow as tf

from bert import input_pipeline, model_fn, optimization, tasks
from bert.errors import UserInputError

tf1 = tf.compat.v1


def parse_setting(text):
    """"5w1s" -> (5, 1)."""
    match = re.fullmatch(r"\s*(\d+)\s*w\s*(\d+)\s*s\s*", text.lower())
    if not match or int(match.group(1)) < 2 or int(match.group(2)) < 1:
        raise UserInputError(f"evaluation setting {text!r} is not of the form <N>w<K>s with N >= 2, K >= 1 "
                             "(e.g. 5w1s)")
    return int(match.group(1)), int(match.group(2))


def split_classes(classes, test_ratio, val_ratio=0.0, seed=12345):
    """Disjoint {"train_classes", "val_classes", "test_classes"} from a shuffled, sorted class list."""
    shuffled = sorted(classes)
    np.random.RandomState(seed).shuffle(shuffled)
    n_test = int(round(len(shuffled) * test_ratio))
    n_val = int(round(len(shuffled) * val_ratio))
    if n_test < 1 or len(shuffled) - n_test - n_val < 1:
        raise UserInputError(f"cannot split {len(shuffled)} classes with test_class_ratio={test_ratio} and "
                             f"val_class_ratio={val_ratio}: each part needs at least one class")
    return {"test_classes": sorted(shuffled[:n_test]), "val_classes": sorted(shuffled[n_test:n_test + n_val]),
            "train_classes": sorted(shuffled[n_test + n_val:])}


def rows_by_class(label_ids, class_ids):
    """{class id: rows of label_ids with that class} for the given class ids."""
    label_ids = np.asarray(label_ids)
    return {c: np.flatnonzero(label_ids == c) for c in class_ids}


def keep_classes_with(rows, needed, n_way, labels, purpose):
    """Drops classes with fewer than `needed` rows, saying which; an error if fewer than n_way remain.

    Returns (kept rows_by_class, message or None).
    """
    short = {c: len(r) for c, r in rows.items() if len(r) < needed}
    kept = {c: r for c, r in rows.items() if len(r) >= needed}
    message = None
    if short:
        listed = ", ".join(f"{labels[c]} ({n})" for c, n in sorted(short.items(), key=lambda item: labels[item[0]]))
        message = f"{purpose}: {len(short)} class(es) have fewer than {needed} examples and are left out: {listed}"
    if len(kept) < n_way:
        raise UserInputError(f"{purpose}: {n_way}-way episodes need {n_way} classes with at least {needed} "
                             f"examples each, but only {len(kept)} have that many"
                             + (f" ({message})" if message else ""))
    return kept, message


def prototype_logits(queries, prototypes, distance, scale=10.0):
    """numpy twin of heads.prototypical_logits: [q, hidden], [n, hidden] -> [q, n]."""
    if distance == "cosine":
        q = queries / np.maximum(np.linalg.norm(queries, axis=-1, keepdims=True), 1e-12)
        p = prototypes / np.maximum(np.linalg.norm(prototypes, axis=-1, keepdims=True), 1e-12)
        return scale * q @ p.T
    return -squared_distances(queries, prototypes)


def squared_distances(a, b):
    return np.maximum((a * a).sum(-1)[:, None] - 2.0 * a @ b.T + (b * b).sum(-1)[None, :], 0.0)


def softmax(logits):
    shifted = np.exp(logits - logits.max(-1, keepdims=True))
    return shifted / shifted.sum(-1, keepdims=True)


def evaluate_on_embeddings(embeddings, rows, n_way, k_shot, q_query, episodes, seed, distance="euclidean"):
    """Mean query accuracy over sampled episodes, with its 95% interval (1.96 standard errors)."""
    sampler = input_pipeline.EpisodeSampler(rows, n_way, k_shot, q_query, seed)
    accuracies = np.empty(episodes)
    start = time.perf_counter()
    for episode in range(episodes):
        chosen, labels, is_query, _ = sampler.sample()
        vectors = embeddings[chosen]
        support, query = vectors[is_query == 0], vectors[is_query == 1]
        prototypes = support.reshape(n_way, k_shot, -1).mean(1)
        predicted = prototype_logits(query, prototypes, distance).argmax(-1)
        accuracies[episode] = (predicted == labels[is_query == 1]).mean()
    return summarize(accuracies, time.perf_counter() - start)


def summarize(accuracies, seconds):
    """Per-episode accuracies -> mean, 95% interval (1.96 standard errors), count, episodes per second."""
    count = len(accuracies)
    return {"accuracy": float(np.mean(accuracies)),
            "ci95": float(1.96 * np.std(accuracies, ddof=1) / np.sqrt(count)) if count > 1 else 0.0,
            "episodes": count, "episodes_per_second": count / seconds if seconds > 0 else float("inf")}


class FinetuneBaseline:
    """The reference's baseline: fine-tune the encoder plus a new N-way classifier on each episode's
    support set, then classify its queries. Built once through the shared model_fn builder;
    every episode starts again from the init checkpoint and a fresh classifier.
    """

    def __init__(self, bert_config, init_checkpoint, n_way, max_seq_length, pooling, steps, learning_rate, seed):
        task = tasks.ClassificationTask([str(i) for i in range(n_way)], None, max_seq_length, pooling=pooling)
        self.steps = steps
        self.graph = tf.Graph()
        with self.graph.as_default():
            tf1.set_random_seed(seed)
            self.features = {name: tf1.placeholder(tf.int32, [None, max_seq_length], name)
                             for name in ("input_ids", "input_mask", "segment_ids")}
            self.features["label_ids"] = tf1.placeholder(tf.int32, [None], "label_ids")
            config = optimization.OptimizerConfig(learning_rate=learning_rate, num_train_steps=steps,
                                                  num_warmup_steps=max(steps // 10, 1))
            build = model_fn.model_fn_builder(task, bert_config, init_checkpoint, config)
            self.train_op = build(self.features, None, tf.estimator.ModeKeys.TRAIN, None).train_op
            with tf1.variable_scope(tf1.get_variable_scope(), reuse=True):
                spec = build(self.features, None, tf.estimator.ModeKeys.PREDICT, None)
            self.probabilities = spec.predictions["probabilities"]
            self.initialize = tf.group(tf1.global_variables_initializer(), tf1.local_variables_initializer())
        self.session = tf1.Session(graph=self.graph)

    def episode_accuracy(self, arrays, chosen, labels, is_query):
        support = {name: arrays[name][chosen[is_query == 0]] for name in ("input_ids", "input_mask", "segment_ids")}
        query = {name: arrays[name][chosen[is_query == 1]] for name in support}
        self.session.run(self.initialize)
        feed = {self.features[name]: value for name, value in support.items()}
        feed[self.features["label_ids"]] = labels[is_query == 0]
        for _ in range(self.steps):
            self.session.run(self.train_op, feed)
        probabilities = self.session.run(self.probabilities, {self.features[n]: v for n, v in query.items()})
        return float((probabilities.argmax(-1) == labels[is_query == 1]).mean())

    def evaluate(self, arrays, rows, n_way, k_shot, q_query, episodes, seed):
        sampler = input_pipeline.EpisodeSampler(rows, n_way, k_shot, q_query, seed)
        start = time.perf_counter()
        accuracies = [self.episode_accuracy(arrays, *sampler.sample()[:3]) for _ in range(episodes)]
        return summarize(accuracies, time.perf_counter() - start)
