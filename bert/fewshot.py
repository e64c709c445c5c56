"""Few-shot learning with prototypical networks: class splits, meta-training with validation,
the evaluation table, prediction into new classes, and the fine-tuning baseline.

Evaluation embeds every example once, then samples episodes on those embeddings in numpy
(tasks.FewShotScorer): an episode costs microseconds, so the table's 1000 episodes per setting take
about a second.
"""
import copy
import dataclasses
import hashlib
import os
import re
import shutil
from typing import List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
from absl import logging

from bert import adaptation, estimator, files, heads, input_pipeline, model_fn, model_folder, optimization, tasks
from bert.errors import UserInputError

tf1 = tf.compat.v1


def parse_setting(text):
    """"5w1s" -> (5, 1)."""
    match = re.fullmatch(r"\s*(\d+)\s*w\s*(\d+)\s*s\s*", text.lower())
    if not match or int(match.group(1)) < 2 or int(match.group(2)) < 1:
        raise UserInputError(f"evaluation setting {text!r} is not of the form <N>w<K>s with N >= 2, K >= 1 "
                             "(e.g. 5w1s)")
    return int(match.group(1)), int(match.group(2))


def parse_range(text, low, what):
    """"5" -> (5, 5), "5:20" -> (5, 20): a training episode size, or the range each episode draws it from."""
    match = re.fullmatch(r"\s*(\d+)\s*(?::\s*(\d+)\s*)?", str(text))
    if not match:
        raise UserInputError(f"{what} {text!r} is not a number or a range LOW:HIGH (e.g. 5 or 5:20)")
    first, last = int(match.group(1)), int(match.group(2) or match.group(1))
    if first < low or last < first:
        raise UserInputError(f"{what} {text!r}: needs {low} <= LOW <= HIGH")
    return first, last


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


def fit_episode_shapes(episodes, rows_by_class):
    """The default way and shot ranges (fit_n_way, fit_k_shot) narrowed to the meta-training classes, so
    that no class is left out for them: at most as many shots as the smallest class that has room for
    the fewest shots plus the queries, at most as many classes as have that room. Logged when narrowed."""
    counts = sorted(len(rows) for rows in rows_by_class.values())
    usable = [count for count in counts if count >= episodes.k_shot[0] + episodes.q_query]
    if not usable:
        return episodes  # keep_classes_with says what is missing
    fitted = episodes
    if episodes.fit_k_shot:
        high = max(episodes.k_shot[0], min(episodes.k_shot[1], usable[0] - episodes.q_query))
        fitted = dataclasses.replace(fitted, k_shot=(episodes.k_shot[0], high))
    if episodes.fit_n_way:
        high = max(episodes.n_way[0], min(episodes.n_way[1], len(usable)))
        fitted = dataclasses.replace(fitted, n_way=(episodes.n_way[0], high))
    if (fitted.n_way, fitted.k_shot) != (episodes.n_way, episodes.k_shot):
        logging.info("training episodes: %s-way %s-shot (the default %s-way %s-shot fitted to %d meta-training "
                     "classes, the smallest usable with %d examples)", _shown(fitted.n_way), _shown(fitted.k_shot),
                     _shown(episodes.n_way), _shown(episodes.k_shot), len(usable), usable[0])
    return fitted


def _shown(size_range):
    low, high = size_range
    return str(low) if low == high else f"{low}:{high}"


def softmax(logits):
    shifted = np.exp(logits - logits.max(-1, keepdims=True))
    return shifted / shifted.sum(-1, keepdims=True)


@dataclasses.dataclass
class FewShotConfig:
    """Episodes for meta-training, evaluation and validation, and the fine-tuning baseline."""
    n_way: Tuple[int, int] = (5, 5)  # training episodes: classes per episode (each draws from low..high)
    k_shot: Tuple[int, int] = (5, 5)  # support sentences per class (each episode draws from low..high)
    q_query: int = 5  # query sentences per class
    train_episodes: int = 1000  # training steps; each is one episode per replica
    distance: str = "euclidean"  # a name in heads.DISTANCES
    eval_settings: Sequence[str] = ("5w1s", "5w5s", "10w1s", "10w5s")
    eval_episodes: int = 1000
    eval_q_query: int = 15
    eval_seed: int = 2024
    val_episodes: int = 300  # episodes per validation (first eval setting)
    eval_frozen: bool = True  # also evaluate the init checkpoint without meta-training
    baseline: str = "none"  # none | finetune
    baseline_episodes: int = 50
    baseline_steps: int = 30
    baseline_learning_rate: float = 5e-5
    adapt: adaptation.AdaptConfig = dataclasses.field(default_factory=adaptation.AdaptConfig)
    # n_way / k_shot are the defaults, not a user's choice: fit_episode_shapes narrows them to the data.
    fit_n_way: bool = False
    fit_k_shot: bool = False

    def __post_init__(self):
        self.n_way, self.k_shot = input_pipeline.as_range(self.n_way), input_pipeline.as_range(self.k_shot)
        heads.get_distance(self.distance)
        for setting in self.eval_settings:
            parse_setting(setting)


class Embedder:
    """Sentence embeddings through Estimator.predict, from a trained checkpoint or (checkpoint None)
    the init checkpoint. setup: config.TrainingConfig."""

    def __init__(self, task, setup, bert_config):
        self.task, self.setup, self.bert_config = task, setup, bert_config

    def __call__(self, arrays, checkpoint=None):
        return self.outputs(arrays, checkpoint)["embedding"]

    def outputs(self, arrays, checkpoint=None):
        """{"embedding": [texts, hidden]} and, when the task has a hidden_layer, "hidden" [texts, seq, hidden]
        with the texts' "input_mask"."""
        output_dir = self.setup.output_dir
        model_dir = output_dir
        if not checkpoint:  # an empty model_dir: Estimator starts from init_checkpoint (a killed run's is cleaned)
            model_dir = files.temporary_name(os.path.join(output_dir, "frozen"))
            os.makedirs(model_dir)
        try:
            settings = dataclasses.replace(self.setup.run, model_dir=model_dir, distribution="none")
            # Without a checkpoint in model_dir, Estimator initialises: the encoder from init_checkpoint.
            bert = estimator.build_estimator(
                model_fn.model_fn_builder(self.task, self.bert_config, self.setup.init_checkpoint,
                                          precision=self.setup.precision), settings)
            inputs = {k: v for k, v in arrays.items() if k != "label_ids"}
            batches = list(bert.predict(input_pipeline.array_input_fn_builder(inputs, self.setup.predict_batch_size),
                                        checkpoint_path=checkpoint, yield_single_examples=False))
            outputs = {name: np.concatenate([batch[name] for batch in batches]) for name in batches[0]}
            if "hidden" in outputs:
                outputs["input_mask"] = arrays["input_mask"]
            return outputs
        finally:
            if not checkpoint:
                shutil.rmtree(model_dir, ignore_errors=True)


def meta_train(task, setup, bert_config, episodes, arrays, rows, val=None):
    """Episodic training on arrays' classes `rows`; with validation (arrays, rows) and
    setup.eval_every_steps, keeps the best checkpoint by validation accuracy in output_dir/best.
    episodes: FewShotConfig. Returns {"episodes", "episodes_per_second"}."""
    optimizer_config = setup.optimizer_for_steps(episodes.train_episodes)
    episode_size = np.mean(episodes.n_way) * (np.mean(episodes.k_shot) + episodes.q_query)  # on average
    total = optimizer_config.num_train_steps
    hooks = [lambda loss: estimator.ProgressHook(loss, total, episode_size, every=max(total // 20, 1))]
    bert = estimator.build_estimator(
        model_fn.model_fn_builder(task, bert_config, setup.init_checkpoint, optimizer_config, setup.precision,
                                  training_hooks=hooks), setup.run)
    input_fn = input_pipeline.episodic_input_fn_builder(arrays, rows, episodes.n_way, episodes.k_shot,
                                                        episodes.q_query, setup.seed)
    validation = None
    if val and setup.eval_every_steps:
        embed = Embedder(task, setup, bert_config)
        val_arrays, val_rows = val
        setting = episodes.eval_settings[0]
        n_way, k_shot = parse_setting(setting)
        scorer = task.scorer(n_way, k_shot, episodes.eval_q_query, episodes.val_episodes, episodes.eval_seed)
        validation = estimator.Validation(
            setup.eval_every_steps, lambda checkpoint: scorer.score(embed(val_arrays, checkpoint), val_rows),
            "accuracy", model_folder.best_dir(setup.output_dir), label=f"validation {setting} accuracy",
            data=hashlib.sha256(b"".join(val_arrays[name].tobytes() for name in sorted(val_arrays))).hexdigest())
    seconds = estimator.train(bert, input_fn, total, validation)
    return {"episodes": total, "episodes_per_second": total / seconds if seconds > 0 else float("inf")}


def evaluate(task, setup, bert_config, episodes, arrays, test_rows, labels):
    """The table: rows (meta-trained, frozen encoder, + adaptation, fine-tuning) x settings ->
    {row name: {setting: FewShotScorer / AdaptedScorer result}}."""
    adapt = episodes.adapt
    checkpoint = model_folder.trained_checkpoint(setup.output_dir)
    untrained = "frozen encoder" if setup.init_checkpoint else "random init"
    adapted_task = copy.copy(task)  # with the hidden states that feed the adapted layers
    adapted_task.hidden_layer = adapt.hidden_layer(bert_config) if adapt.enabled else None
    rows, outputs = {}, {}
    if checkpoint:
        outputs["meta-trained"] = Embedder(adapted_task, setup, bert_config).outputs(arrays, checkpoint)
    if episodes.eval_frozen or not checkpoint:
        outputs[untrained] = Embedder(task if checkpoint else adapted_task, setup, bert_config).outputs(arrays)
    for name, output in outputs.items():
        rows[name] = ("embeddings", output["embedding"])
    if adapt.enabled:
        main = "meta-trained" if checkpoint else untrained
        adapter = adaptation.Adapter.for_task(bert_config, task, adapt, checkpoint, setup.init_checkpoint)
        rows[f"{main} + adaptation"] = ("adapted", (adapter, adapter.inputs(outputs[main])))
        logging.info("adaptation: %s", adapt.describe())
    if episodes.baseline == "finetune":
        rows["fine-tuning"] = ("finetune", None)
    results = {name: {} for name in rows}
    for setting in episodes.eval_settings:
        n_way, k_shot = parse_setting(setting)
        q_query = episodes.eval_q_query
        eligible, message = keep_classes_with(test_rows, k_shot + q_query, n_way, labels, f"evaluation {setting}")
        if message:
            logging.warning(message)
        for name, (kind, value) in rows.items():
            if kind == "embeddings":
                scorer = task.scorer(n_way, k_shot, q_query, episodes.eval_episodes, episodes.eval_seed)
                results[name][setting] = scorer.score(value, eligible)
            elif kind == "adapted":
                adapter, inputs = value
                scorer = adaptation.AdaptedScorer(adapter, n_way, k_shot, q_query, episodes.eval_episodes,
                                                  episodes.eval_seed)
                results[name][setting] = scorer.score(inputs, eligible)
            else:
                baseline = FinetuneBaseline(bert_config, setup.init_checkpoint, n_way, setup.max_seq_length,
                                            task.pooling, episodes.baseline_steps, episodes.baseline_learning_rate,
                                            setup.seed)
                results[name][setting] = baseline.evaluate(arrays, eligible, n_way, k_shot, q_query,
                                                           episodes.baseline_episodes, episodes.eval_seed)
            logging.info("%s %s: %.2f%%", name, setting, 100 * results[name][setting]["accuracy"])
    return results


def table(results, settings):
    """{row: {setting: result}} -> a markdown table of accuracy (%) ± 95% interval."""
    lines = ["| model | " + " | ".join(settings) + " | episodes |", "| --- |" + " ---: |" * (len(settings) + 1)]
    for name, by_setting in results.items():
        cells = [f"{100 * r['accuracy']:.2f} ± {100 * r['ci95']:.2f}" for r in (by_setting[s] for s in settings)]
        episodes = sorted({by_setting[s]["episodes"] for s in settings})
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {', '.join(map(str, episodes))} |")
    return "\n".join(lines) + "\n"


@dataclasses.dataclass
class Classified:
    """Queries classified by distance to the support set's prototypes."""
    classes: List[str]  # column order
    probabilities: np.ndarray  # [queries, classes]
    distances: np.ndarray  # [queries, classes], heads.Distance.np_distances
    checkpoint: Optional[str]  # the meta-trained checkpoint used (None: the init checkpoint)


def classify(task_for, setup, bert_config, cache, support, queries, adapt=None):
    """Classifies `queries` into the classes of `support` (InputExamples with labels), without training
    the encoder; with `adapt` (adaptation.AdaptConfig, enabled), after adapting to the support set.

    task_for(classes) -> the FewShotTask to embed with; cache: input_pipeline.FeatureCache.
    """
    classes = sorted({e.label for e in support})
    task = copy.copy(task_for(classes))
    checkpoint = model_folder.trained_checkpoint(setup.output_dir)
    adapt = adapt if adapt is not None and adapt.enabled else None
    task.hidden_layer = adapt.hidden_layer(bert_config) if adapt else None
    embed = Embedder(task, setup, bert_config)
    support_arrays = cache.arrays(task, support, "fewshot-support")
    support_outputs = embed.outputs(support_arrays, checkpoint)
    query_outputs = embed.outputs(cache.arrays(task, queries, "fewshot-predict"), checkpoint)
    if adapt:
        adapter = adaptation.Adapter.for_task(bert_config, task, adapt, checkpoint, setup.init_checkpoint)
        adapted = adapter.fit(adapter.inputs(support_outputs), support_arrays["label_ids"],
                              adapter.inputs(query_outputs), len(classes))
        probabilities, query_embeddings = adapted.probabilities, adapted.query_embeddings
        prototypes = adapted.prototypes
    else:
        query_embeddings = query_outputs["embedding"]
        prototypes = heads.class_means(support_outputs["embedding"], support_arrays["label_ids"], range(len(classes)))
        probabilities = softmax(task.distance.np_logits(query_embeddings, prototypes,
                                                        task.distance.params_from(checkpoint)))
    return Classified(classes, probabilities, task.distance.np_distances(query_embeddings, prototypes), checkpoint)


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
        return tasks.score_episodes(rows, n_way, k_shot, q_query, episodes, seed,
                                    lambda *episode: self.episode_accuracy(arrays, *episode))
