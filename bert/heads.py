"""Task heads on top of BertModel, with google-research/bert's variable names.

- classification: `output_weights` [labels, hidden] and `output_bias` [labels] (run_classifier's names);
- masked LM: `cls/predictions/...`, output weights tied to the word embedding table;
- next sentence: `cls/seq_relationship/...`;
- span (SQuAD): `cls/squad/...`;
- prototypical: the prototype distances, each defined once in DISTANCES.
"""
import numpy as np
import tensorflow as tf

from bert import modeling
from bert.errors import UserInputError

tf1 = tf.compat.v1


def classification_logits(pooled_output, num_labels, is_training, dropout_prob=0.1, initializer_range=0.02):
    """pooled_output float32 [batch, hidden] -> logits float32 [batch, num_labels]."""
    width = pooled_output.shape.as_list()[-1]
    weights = tf1.get_variable("output_weights", [num_labels, width],
                               initializer=modeling.create_initializer(initializer_range))
    bias = tf1.get_variable("output_bias", [num_labels], initializer=tf1.zeros_initializer())
    if is_training:
        pooled_output = modeling.dropout(pooled_output, dropout_prob)
    return tf.matmul(pooled_output, weights, transpose_b=True) + bias


def gather_positions(sequence_output, positions):
    """sequence_output [batch, seq, hidden], positions int [batch, n] -> [batch * n, hidden]."""
    batch_size, seq_length, width = modeling.get_shape_list(sequence_output, expected_rank=3)
    offsets = tf.reshape(tf.range(batch_size, dtype=tf.int32) * seq_length, [-1, 1])
    flat_positions = tf.reshape(tf.cast(positions, tf.int32) + offsets, [-1])
    return tf.gather(tf.reshape(sequence_output, [-1, width]), flat_positions)


def masked_lm(config, sequence_output, embedding_table, positions, label_ids=None, label_weights=None):
    """The masked-LM head and, when labels are given, its loss.

    Args:
      sequence_output: float32 [batch, seq, hidden].
      embedding_table: float32 [vocab, hidden], shared as the output projection.
      positions: int [batch, n] masked positions.
      label_ids: int [batch, n] original token ids at those positions.
      label_weights: float [batch, n], 1 for a real prediction and 0 for padding.
    Returns:
      (loss scalar or None, per_example_loss [batch * n] or None, log_probs [batch * n, vocab]).
    """
    hidden = gather_positions(sequence_output, positions)  # [batch*n, hidden]
    with tf1.variable_scope("cls/predictions"):
        with tf1.variable_scope("transform"):
            hidden = modeling.dense(hidden, config.hidden_size, "dense", config.initializer_range,
                                    tf.float32, activation=modeling.get_activation(config.hidden_act))
            hidden = modeling.layer_norm(hidden, config.layer_norm_eps)
        bias = tf1.get_variable("output_bias", [config.vocab_size], initializer=tf1.zeros_initializer())
    logits = tf.matmul(hidden, embedding_table, transpose_b=True) + bias
    log_probs = tf.nn.log_softmax(logits, axis=-1)  # [batch*n, vocab]
    if label_ids is None:
        return None, None, log_probs
    labels = tf.reshape(label_ids, [-1])
    weights = tf.cast(tf.reshape(label_weights, [-1]), tf.float32)
    per_example_loss = -tf.reduce_sum(log_probs * tf.one_hot(labels, config.vocab_size), axis=-1)
    loss = tf.reduce_sum(weights * per_example_loss) / (tf.reduce_sum(weights) + 1e-5)
    return loss, per_example_loss, log_probs


def next_sentence(config, pooled_output, labels=None):
    """The next-sentence head: pooled_output [batch, hidden] -> (loss, per_example_loss, log_probs [batch, 2])."""
    with tf1.variable_scope("cls/seq_relationship"):
        weights = tf1.get_variable("output_weights", [2, config.hidden_size],
                                   initializer=modeling.create_initializer(config.initializer_range))
        bias = tf1.get_variable("output_bias", [2], initializer=tf1.zeros_initializer())
    log_probs = tf.nn.log_softmax(tf.matmul(pooled_output, weights, transpose_b=True) + bias, axis=-1)
    if labels is None:
        return None, None, log_probs
    per_example_loss = -tf.reduce_sum(log_probs * tf.one_hot(tf.reshape(labels, [-1]), 2), axis=-1)
    return tf.reduce_mean(per_example_loss), per_example_loss, log_probs


POOLINGS = ("pooled", "cls", "mean")


def sentence_embedding(model, input_mask, pooling="pooled"):
    """One float32 [batch, hidden] vector per sentence.

    pooling: "pooled" (BERT's tanh pooler, what Google's classifier uses), "cls" (the first token's
    final hidden state) or "mean" (mean over real tokens: right for sentence-transformers models).
    """
    if pooling == "pooled":
        return model.get_pooled_output()
    return pool_tokens(model.get_sequence_output(), input_mask, pooling)


def pool_tokens(sequence, input_mask, pooling):
    """sequence float32 [batch, seq, hidden] -> [batch, hidden] by "cls" or "mean" pooling."""
    if pooling == "cls":
        return sequence[:, 0, :]
    if pooling == "mean":
        weights = tf.cast(input_mask, tf.float32)[:, :, tf.newaxis]  # [batch, seq, 1]
        return tf.reduce_sum(sequence * weights, axis=1) / tf.maximum(tf.reduce_sum(weights, axis=1), 1.0)
    raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")


class Distance:
    """One prototype distance, defined once: the training head, evaluation on stored embeddings, the
    exporter, prediction and the benchmarks all take it from DISTANCES.

    logits / distances build TF ops (queries [q, hidden], prototypes [n, hidden] -> [q, n]);
    np_logits / np_distances are their numpy twins, given `params` (the values of the variables
    `logits` creates, read from a checkpoint by `params_from`). `distances` is what users are shown.
    """

    name = None
    shown = None  # how the distances users see are described

    def logits(self, queries, prototypes):
        raise NotImplementedError

    def distances(self, queries, prototypes):
        raise NotImplementedError

    def np_logits(self, queries, prototypes, params):
        raise NotImplementedError

    def np_distances(self, queries, prototypes):
        raise NotImplementedError

    def params_from(self, checkpoint=None):
        """The numpy values of this distance's variables in `checkpoint`; their initial values
        without one (a model that was not meta-trained)."""
        return {}

    def head_inputs(self, embeddings):
        """TF: what a linear head on these embeddings reads (see linear_head)."""
        return embeddings

    def linear_head(self, prototypes, params=None):
        """numpy (weights [n, hidden], bias [n]) of the linear head equivalent to these prototypes:
        softmax(head_inputs(q) @ weights.T + bias) equals the prototype softmax of q. Support-set
        adaptation starts from it (Proto-MAML's initialisation)."""
        raise NotImplementedError


class SquaredEuclidean(Distance):
    """Prototypical networks: logits are minus the squared Euclidean distance."""

    name = "euclidean"
    shown = "squared Euclidean distance"

    def logits(self, queries, prototypes):
        return -self.distances(queries, prototypes)

    def distances(self, queries, prototypes):
        a2 = tf.reduce_sum(tf.square(queries), -1)[:, tf.newaxis]
        b2 = tf.reduce_sum(tf.square(prototypes), -1)[tf.newaxis, :]
        return tf.maximum(a2 - 2.0 * tf.matmul(queries, prototypes, transpose_b=True) + b2, 0.0)

    def np_logits(self, queries, prototypes, params=None):
        return -self.np_distances(queries, prototypes)

    def linear_head(self, prototypes, params=None):
        # -|q - c|^2 = 2 q.c - |c|^2 - |q|^2; the last term is the same for every class.
        return 2.0 * prototypes, -(prototypes * prototypes).sum(-1)

    def np_distances(self, queries, prototypes):
        a, b = queries, prototypes
        return np.maximum((a * a).sum(-1)[:, None] - 2.0 * a @ b.T + (b * b).sum(-1)[None, :], 0.0)


class Cosine(Distance):
    """A learnable scale (variable prototypical/cosine_scale, starting at 10) times the cosine;
    users are shown 1 - cosine."""

    name = "cosine"
    shown = "1 - cosine similarity"
    SCALE = "prototypical/cosine_scale"
    INITIAL_SCALE = 10.0

    def logits(self, queries, prototypes):
        with tf1.variable_scope("prototypical"):
            scale = tf1.get_variable("cosine_scale", [], initializer=tf1.constant_initializer(self.INITIAL_SCALE))
        return scale * self._cosine(queries, prototypes)

    def distances(self, queries, prototypes):
        return 1.0 - self._cosine(queries, prototypes)

    def head_inputs(self, embeddings):
        return tf.math.l2_normalize(embeddings, -1)

    def linear_head(self, prototypes, params=None):
        scale = (params or {}).get("scale", self.INITIAL_SCALE)
        normalised = prototypes / np.maximum(np.linalg.norm(prototypes, axis=-1, keepdims=True), 1e-12)
        return scale * normalised, np.zeros(len(prototypes), prototypes.dtype)

    @staticmethod
    def _cosine(queries, prototypes):
        return tf.matmul(tf.math.l2_normalize(queries, -1), tf.math.l2_normalize(prototypes, -1), transpose_b=True)

    def np_logits(self, queries, prototypes, params=None):
        scale = (params or {}).get("scale", self.INITIAL_SCALE)
        return scale * self._np_cosine(queries, prototypes)

    def np_distances(self, queries, prototypes):
        return 1.0 - self._np_cosine(queries, prototypes)

    @staticmethod
    def _np_cosine(queries, prototypes):
        q = queries / np.maximum(np.linalg.norm(queries, axis=-1, keepdims=True), 1e-12)
        p = prototypes / np.maximum(np.linalg.norm(prototypes, axis=-1, keepdims=True), 1e-12)
        return q @ p.T

    def params_from(self, checkpoint=None):
        if not checkpoint:
            return {"scale": self.INITIAL_SCALE}
        return {"scale": float(tf.train.load_checkpoint(checkpoint).get_tensor(self.SCALE))}


DISTANCES = {distance.name: distance for distance in (SquaredEuclidean(), Cosine())}


def get_distance(name):
    """The Distance named `name`; an unknown name is an error, never a default."""
    if name not in DISTANCES:
        raise UserInputError(f"unknown prototype distance {name!r}; choose one of {', '.join(DISTANCES)}")
    return DISTANCES[name]


def class_means(embeddings, labels, classes):
    """numpy prototypes: the mean embedding of each class, in the order of `classes` -> [classes, hidden]."""
    labels = np.asarray(labels)
    return np.stack([embeddings[labels == c].mean(0) for c in classes])


def prototypes_from_support(embeddings, labels, num_classes):
    """Class means: embeddings [n, hidden], labels int [n] in [0, num_classes) -> [num_classes, hidden]."""
    sums = tf.math.unsorted_segment_sum(embeddings, labels, num_classes)
    counts = tf.math.unsorted_segment_sum(tf.ones_like(labels, tf.float32), labels, num_classes)
    return sums / tf.maximum(counts, 1.0)[:, tf.newaxis]


def span_logits(sequence_output, initializer_range=0.02):
    """Start and end logits for answer spans: sequence_output [batch, seq, hidden] ->
    ([batch, seq], [batch, seq]). Variables cls/squad/output_weights [2, hidden] and output_bias [2]."""
    batch_size, seq_length, width = modeling.get_shape_list(sequence_output, expected_rank=3)
    with tf1.variable_scope("cls/squad"):
        weights = tf1.get_variable("output_weights", [2, width],
                                   initializer=modeling.create_initializer(initializer_range))
        bias = tf1.get_variable("output_bias", [2], initializer=tf1.zeros_initializer())
    logits = tf.matmul(tf.reshape(sequence_output, [-1, width]), weights, transpose_b=True) + bias
    logits = tf.reshape(logits, [batch_size, seq_length, 2])
    return logits[:, :, 0], logits[:, :, 1]
