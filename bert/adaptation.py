"""Support-set adaptation for few-shot classification: Proto-MAML's initialisation, then a few steps.

A linear head starts as the prototypes' own classifier (heads.Distance.linear_head: for squared
Euclidean weights 2c and bias -|c|^2, for cosine the normalised prototypes times the learned scale), so
with no steps it classifies exactly as the prototypes do. Then `steps` Adam steps on the support set's
cross-entropy, full batch, train the head alone (layers=0) or the head and the top `layers` encoder
layers (with BERT's pooler when the pooling is "pooled"). Queries are never seen while adapting.

The encoder below the adapted layers runs once, outside: callers hand in the hidden states that enter
the adapted layers (tasks.FewShotTask(hidden_layer=AdaptConfig.hidden_layer(...))) or, for the head
alone, the sentence embeddings. An episode then costs the adapted layers' forward and backward passes on
its support texts and one forward pass on its queries, with padding beyond the longest text cut off.
Every episode starts again from the checkpoint's values. Dropout is off: adaptation is deterministic.
"""
import copy
import dataclasses
from typing import Dict, Optional

import numpy as np
import tensorflow as tf

from bert import checkpoint as checkpoint_lib
from bert import heads, modeling, tasks
from bert.errors import UserInputError

tf1 = tf.compat.v1
HEAD_SCOPE = "adapted_head"


@dataclasses.dataclass
class AdaptConfig:
    """steps 0: no adaptation (the prototypes as they are)."""
    steps: int = 0
    learning_rate: float = 1e-2
    layers: int = 0  # encoder layers adapted with the head, from the top
    layer_learning_rate: Optional[float] = None  # the adapted layers' Adam learning rate; None: learning_rate

    @property
    def enabled(self):
        return self.steps > 0

    def check(self, bert_config):
        if self.steps < 0 or self.layers < 0 or not self.learning_rate > 0 or not self.layers_rate > 0:
            raise UserInputError(f"adaptation needs steps >= 0, layers >= 0 and positive learning rates, got "
                                 f"steps={self.steps}, layers={self.layers}, learning_rate={self.learning_rate}, "
                                 f"layer_learning_rate={self.layer_learning_rate}")
        if self.layers > bert_config.num_hidden_layers:
            raise UserInputError(f"adapt_layers={self.layers} is more than the model's "
                                 f"{bert_config.num_hidden_layers} layers")
        return self

    @property
    def layers_rate(self):
        return self.learning_rate if self.layer_learning_rate is None else self.layer_learning_rate

    def hidden_layer(self, bert_config):
        """Which hidden states feed the adapted layers (tasks.FewShotTask's hidden_layer), None for the head."""
        if not self.layers:
            return None
        return bert_config.num_hidden_layers - self.layers

    def describe(self):
        if not self.layers:
            return f"{self.steps} Adam steps at {self.learning_rate:g} on the head"
        return (f"{self.steps} Adam steps on the head at {self.learning_rate:g} and the top {self.layers} "
                f"layer(s) at {self.layers_rate:g}")


@dataclasses.dataclass
class Adapted:
    """One support set's adapted classifier applied to queries."""
    probabilities: np.ndarray  # [queries, classes]
    query_embeddings: np.ndarray  # [queries, hidden], through the adapted layers
    prototypes: np.ndarray  # [classes, hidden], class means of the support through the adapted layers
    variables: Optional[Dict[str, np.ndarray]] = None  # adapted values by variable name (with_variables=True)


def take(inputs, rows):
    """The inputs of some texts: {name: array [texts, ...]} -> the same names at rows."""
    return {name: value[rows] for name, value in inputs.items()}


class _EpisodeGraph:
    """The adapted layers, the pooling and a linear head for `num_classes` classes, in their own graph."""

    def __init__(self, adapter, num_classes):
        config, width = adapter.config, adapter.config.hidden_size
        self.graph = tf.Graph()
        with self.graph.as_default():
            if adapter.first_layer is None:
                self.embedding = tf1.placeholder(tf.float32, [None, width], "embedding")
                self.inputs = {"embedding": self.embedding}
            else:
                hidden = tf1.placeholder(tf.float32, [None, None, width], "hidden")
                mask = tf1.placeholder(tf.int32, [None, None], "input_mask")
                self.inputs = {"hidden": hidden, "input_mask": mask}
                with tf1.variable_scope("bert", custom_getter=adapter.checkpoint_value):
                    with tf1.variable_scope("encoder"):
                        sequence = modeling.transformer_stack(hidden, modeling.attention_bias_from_mask(mask),
                                                              config, tf.float32, adapter.first_layer)[-1]
                    if adapter.pooling == "pooled":
                        self.embedding = modeling.pooler(sequence, config)
                    else:
                        self.embedding = heads.pool_tokens(sequence, mask, adapter.pooling)
            self.initial_weights = tf1.placeholder(tf.float32, [num_classes, width], "initial_weights")
            self.initial_bias = tf1.placeholder(tf.float32, [num_classes], "initial_bias")
            with tf1.variable_scope(HEAD_SCOPE):
                self.weights = tf1.Variable(self.initial_weights, name="weights")
                self.bias = tf1.Variable(self.initial_bias, name="bias")
            logits = tf.matmul(adapter.distance.head_inputs(self.embedding), self.weights, transpose_b=True) + self.bias
            self.probabilities = tf.nn.softmax(logits, -1)
            self.labels = tf1.placeholder(tf.int32, [None], "labels")
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=self.labels, logits=logits))
            head = [self.weights, self.bias]
            layers = [v for v in tf1.trainable_variables() if v not in head]
            gradients = tf.gradients(loss, head + layers)
            updates = [tf1.train.AdamOptimizer(adapter.adapt.learning_rate, name="head_adam").apply_gradients(
                zip(gradients[:2], head))]
            if layers:
                updates.append(tf1.train.AdamOptimizer(adapter.adapt.layers_rate, name="layers_adam")
                               .apply_gradients(zip(gradients[2:], layers)))
            self.train_op = tf.group(updates)
            self.trained = {v.op.name: v for v in tf1.trainable_variables()}
            self.reset = tf1.variables_initializer([v for v in tf1.global_variables() if v not in head])
            self.init_head = tf1.variables_initializer(head)
        self.graph.finalize()
        self.session = tf1.Session(graph=self.graph)

    def feed(self, inputs, labels=None):
        if "embedding" in self.inputs:
            feed = {self.inputs["embedding"]: inputs["embedding"]}
        else:  # padding past the longest text changes nothing: cut it off
            length = max(int(inputs["input_mask"].sum(-1).max()), 1)
            feed = {self.inputs["hidden"]: inputs["hidden"][:, :length],
                    self.inputs["input_mask"]: inputs["input_mask"][:, :length]}
        if labels is not None:
            feed[self.labels] = labels
        return feed

    def run(self, fetches, inputs, batch_size=256):
        """{name: tensor} fetched for every text, in batches -> {name: array [texts, ...]}."""
        count = len(next(iter(inputs.values())))
        batches = [self.session.run(fetches, self.feed(take(inputs, slice(s, s + batch_size))))
                   for s in range(0, count, batch_size)]
        return {name: np.concatenate([batch[name] for batch in batches]) for name in fetches}


class Adapter:
    """Fits AdaptConfig's adaptation to support sets, one at a time, from a checkpoint's values.

    checkpoint: the encoder's (a trained or an init checkpoint; None for a random init, head alone);
    params: the distance's trained parameters (heads.Distance.params_from).
    """

    def __init__(self, bert_config, checkpoint, pooling, distance, adapt, params=None):
        self.adapt = adapt.check(bert_config)
        self.config = copy.deepcopy(bert_config)
        self.config.hidden_dropout_prob = self.config.attention_probs_dropout_prob = 0.0
        self.pooling = pooling
        self.distance = heads.get_distance(distance) if isinstance(distance, str) else distance
        self.params = params
        self.first_layer = adapt.hidden_layer(bert_config)
        self.values = {}
        if self.first_layer is not None:
            if not checkpoint:
                raise UserInputError("adapting encoder layers needs a checkpoint (--init_checkpoint or a trained "
                                     "model); a random init can adapt the head alone (adapt_layers=0)")
            prefix, reader = checkpoint_lib.open_checkpoint(checkpoint)
            scopes = tuple(f"bert/encoder/layer_{i}/" for i in range(self.first_layer, bert_config.num_hidden_layers))
            scopes += ("bert/pooler/",) if pooling == "pooled" else ()
            self.values = {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
                           if name.startswith(scopes) and not checkpoint_lib.is_bookkeeping(name)}
            self.source = prefix
        self.graphs = {}

    @classmethod
    def for_task(cls, bert_config, task, adapt, checkpoint, init_checkpoint=None):
        """The Adapter of a tasks.FewShotTask: its pooling and distance, the distance's parameters from
        `checkpoint` (a trained one, or None), the encoder's values from it or else init_checkpoint."""
        return cls(bert_config, checkpoint or init_checkpoint, task.pooling, task.distance, adapt,
                   task.distance.params_from(checkpoint))

    def checkpoint_value(self, getter, name, *args, **kwargs):
        """A custom getter: every adapted encoder variable starts at the checkpoint's value."""
        if name not in self.values:
            raise UserInputError(f"{self.source}: no variable {name}, which adapting the top "
                                 f"{self.adapt.layers} layer(s) needs")
        kwargs["initializer"] = tf1.constant_initializer(self.values[name])
        return getter(name, *args, **kwargs)

    def inputs(self, outputs):
        """Embedder outputs (embedding, hidden) and the texts' input_mask -> what fit reads."""
        if self.first_layer is None:
            return {"embedding": outputs["embedding"]}
        return {"hidden": outputs["hidden"], "input_mask": outputs["input_mask"]}

    def fit(self, support, labels, queries, num_classes=None, with_variables=False):
        """support / queries: inputs (see `inputs`) of the support and query texts; labels int [support]
        in [0, num_classes). Returns Adapted."""
        labels = np.asarray(labels, np.int32)
        num_classes = num_classes or int(labels.max()) + 1
        if num_classes not in self.graphs:
            self.graphs[num_classes] = _EpisodeGraph(self, num_classes)
        graph = self.graphs[num_classes]
        session = graph.session
        session.run(graph.reset)
        embedding = {"embedding": graph.embedding}
        prototypes = heads.class_means(graph.run(embedding, support)["embedding"], labels, range(num_classes))
        weights, bias = self.distance.linear_head(prototypes, self.params)
        session.run(graph.init_head, {graph.initial_weights: weights, graph.initial_bias: bias})
        feed = graph.feed(support, labels)
        for _ in range(self.adapt.steps):
            session.run(graph.train_op, feed)
        if self.first_layer is not None:  # the support through the adapted layers
            prototypes = heads.class_means(graph.run(embedding, support)["embedding"], labels, range(num_classes))
        answers = graph.run(dict(embedding, probabilities=graph.probabilities), queries)
        return Adapted(answers["probabilities"], answers["embedding"], prototypes,
                       session.run(graph.trained) if with_variables else None)


class AdaptedScorer(tasks.Scorer):
    """FewShotScorer's episodes (the same seed draws the same ones), each classified after adapting to
    its support set."""

    def __init__(self, adapter, n_way, k_shot, q_query, episodes, seed):
        self.adapter = adapter
        self.n_way, self.k_shot, self.q_query, self.episodes, self.seed = n_way, k_shot, q_query, episodes, seed

    def score(self, inputs, rows):
        """inputs: Adapter.inputs of every text; rows: {class id: row indices of its examples}."""
        def accuracy(chosen, labels, is_query):
            support, query = is_query == 0, is_query == 1
            adapted = self.adapter.fit(take(inputs, chosen[support]), labels[support], take(inputs, chosen[query]),
                                       self.n_way)
            return (adapted.probabilities.argmax(-1) == labels[query]).mean()
        return tasks.score_episodes(rows, self.n_way, self.k_shot, self.q_query, self.episodes, self.seed, accuracy)
