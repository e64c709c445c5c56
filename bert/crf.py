"""A linear-chain conditional random field in TensorFlow ops: log-likelihood and Viterbi decoding.

Scores of a tag sequence y_1..y_n over unary scores u (the tagger's logits) with a transition matrix A
[tags, tags] and start / end scores s, e [tags]:

    score(y) = s[y_1] + sum_t u[t, y_t] + sum_{t>1} A[y_{t-1}, y_t] + e[y_n]

The log-likelihood is score(y) - log sum over every sequence of exp(score), by the forward algorithm;
decoding takes the best sequence by max-product with back-pointers. Sequences are padded to one length:
`lengths` says how many positions are real (0 allowed: an empty sequence has score and likelihood 0).
tests/test_crf.py checks both against enumerating every tag sequence.
"""
import tensorflow as tf

tf1 = tf.compat.v1


def crf_variables(num_tags, scope="crf"):
    """transitions [tags, tags], start [tags], end [tags], zero-initialised, in `scope`."""
    with tf1.variable_scope(scope):
        return tuple(tf1.get_variable(name, shape, initializer=tf1.zeros_initializer())
                     for name, shape in (("transitions", [num_tags, num_tags]), ("start", [num_tags]),
                                         ("end", [num_tags])))


def _mask(lengths, max_length):
    return tf.sequence_mask(lengths, max_length, dtype=tf.float32)  # [batch, time]


def sequence_score(unary, tags, lengths, transitions, start, end):
    """score(tags): unary [batch, time, tags] float32, tags [batch, time] int32, lengths [batch] -> [batch]."""
    max_length = tf.shape(unary)[1]
    mask = _mask(lengths, max_length)
    picked = tf.gather(unary, tags, batch_dims=2)  # [batch, time]
    score = tf.reduce_sum(picked * mask, 1)
    pairs = tf.gather(tf.gather(transitions, tags[:, :-1]), tags[:, 1:], batch_dims=2)  # [batch, time-1]
    score += tf.reduce_sum(pairs * mask[:, 1:], 1)
    has_any = tf.cast(lengths > 0, tf.float32)
    last = tf.gather(tags, tf.maximum(lengths - 1, 0), batch_dims=1)
    return score + has_any * (tf.gather(start, tags[:, 0]) + tf.gather(end, last))


def log_partition(unary, lengths, transitions, start, end):
    """log sum over all tag sequences of exp(score): [batch]."""
    max_length = tf.shape(unary)[1]
    mask = _mask(lengths, max_length)
    first = start[tf.newaxis, :] + unary[:, 0, :]  # [batch, tags]

    def step(alpha, inputs):
        scores, keep = inputs  # [batch, tags], [batch]
        moved = tf.reduce_logsumexp(alpha[:, :, tf.newaxis] + transitions[tf.newaxis], axis=1) + scores
        return tf.where(keep[:, tf.newaxis] > 0, moved, alpha)

    rest = (tf.transpose(unary[:, 1:], [1, 0, 2]), tf.transpose(mask[:, 1:]))
    alpha = tf.foldl(step, rest, initializer=first)
    total = tf.reduce_logsumexp(alpha + end[tf.newaxis, :], axis=1)
    return tf.where(lengths > 0, total, tf.zeros_like(total))


def log_likelihood(unary, tags, lengths, transitions, start, end):
    """log p(tags | unary): [batch]."""
    return (sequence_score(unary, tags, lengths, transitions, start, end)
            - log_partition(unary, lengths, transitions, start, end))


def viterbi_decode(unary, lengths, transitions, start, end):
    """The best tag sequence: ([batch, time] int32, zeros past each length; its score [batch])."""
    batch, max_length, num_tags = tf.shape(unary)[0], tf.shape(unary)[1], tf.shape(unary)[2]
    mask = _mask(lengths, max_length)
    first = start[tf.newaxis, :] + unary[:, 0, :]
    identity = tf.tile(tf.range(num_tags)[tf.newaxis, :], [batch, 1])

    def step(carry, inputs):
        best, _ = carry
        scores, keep = inputs
        candidates = best[:, :, tf.newaxis] + transitions[tf.newaxis]  # [batch, from, to]
        pointers = tf.argmax(candidates, axis=1, output_type=tf.int32)
        moved = tf.reduce_max(candidates, axis=1) + scores
        keep = keep[:, tf.newaxis] > 0
        return tf.where(keep, moved, best), tf.where(keep, pointers, identity)  # past the end: stay put

    rest = (tf.transpose(unary[:, 1:], [1, 0, 2]), tf.transpose(mask[:, 1:]))
    bests, pointers = tf.scan(step, rest, initializer=(first, identity))  # [time-1, batch, tags] each
    final = tf.concat([first[tf.newaxis], bests], 0)[-1] + end[tf.newaxis, :]
    last_tag = tf.argmax(final, axis=1, output_type=tf.int32)  # [batch]

    def back(tag, pointer):
        return tf.gather(pointer, tag, batch_dims=1)

    earlier = tf.scan(back, pointers, initializer=last_tag, reverse=True)  # [time-1, batch]: tags at 0..time-2
    path = tf.transpose(tf.concat([earlier, last_tag[tf.newaxis]], 0))  # [batch, time]
    path = path * tf.cast(mask, tf.int32)
    score = tf.reduce_max(final, axis=1)
    return path, tf.where(lengths > 0, score, tf.zeros_like(score))
