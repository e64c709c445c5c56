"""The CRF (bert/crf.py) against enumerating every tag sequence on tiny inputs."""
import itertools

import numpy as np
import pytest
import tensorflow as tf

from bert import crf

TAGS, TIME = 3, 4


def brute_force(unary, length, transitions, start, end):
    """{sequence: score} over every tag sequence of the given length."""
    scores = {}
    for tags in itertools.product(range(TAGS), repeat=length):
        score = 0.0
        if length:
            score = start[tags[0]] + end[tags[-1]] + sum(unary[t, tags[t]] for t in range(length))
            score += sum(transitions[tags[t - 1], tags[t]] for t in range(1, length))
        scores[tags] = score
    return scores


@pytest.mark.parametrize("time", [1, TIME])
def test_likelihood_and_decoding_match_enumeration(time):
    rng = np.random.RandomState(time)
    lengths = np.array([time, max(time - 1, 0), 0, 1][:4], np.int32) if time > 1 else np.array([1, 0], np.int32)
    batch = len(lengths)
    unary = rng.randn(batch, time, TAGS).astype(np.float32)
    transitions, start, end = (rng.randn(TAGS, TAGS).astype(np.float32), rng.randn(TAGS).astype(np.float32),
                               rng.randn(TAGS).astype(np.float32))
    tags = rng.randint(0, TAGS, size=(batch, time)).astype(np.int32)
    args = [tf.constant(x) for x in (transitions, start, end)]
    likelihood = crf.log_likelihood(tf.constant(unary), tf.constant(tags), tf.constant(lengths), *args).numpy()
    path, best = crf.viterbi_decode(tf.constant(unary), tf.constant(lengths), *args)
    path, best = path.numpy(), best.numpy()
    for b, length in enumerate(lengths):
        scores = brute_force(unary[b], length, transitions, start, end)
        log_z = np.logaddexp.reduce(list(scores.values())) if length else 0.0
        expected = scores[tuple(tags[b, :length])] - log_z if length else 0.0
        assert likelihood[b] == pytest.approx(expected, abs=1e-4)
        winner = max(scores, key=scores.get)
        assert tuple(path[b, :length]) == winner and (path[b, length:] == 0).all()
        assert best[b] == pytest.approx(scores[winner] if length else 0.0, abs=1e-4)


def test_training_the_transitions_learns_a_constraint():
    # Tag 2 may only follow tag 1; the unary scores alone prefer 0 -> 2 at the second position.
    unary = np.array([[[2.0, 1.5, 0.0], [0.0, 0.0, 1.0]]], np.float32)
    gold = np.array([[1, 2]], np.int32)
    transitions, start, end = (tf.Variable(tf.zeros([TAGS, TAGS])), tf.Variable(tf.zeros([TAGS])),
                               tf.Variable(tf.zeros([TAGS])))
    lengths = tf.constant([2])
    assert crf.viterbi_decode(tf.constant(unary), lengths, transitions, start, end)[0].numpy().tolist() == [[0, 2]]
    optimizer = tf.keras.optimizers.SGD(0.5)
    for _ in range(50):
        with tf.GradientTape() as tape:
            loss = -tf.reduce_mean(crf.log_likelihood(tf.constant(unary), tf.constant(gold), lengths, transitions,
                                                      start, end))
        optimizer.apply_gradients(zip(tape.gradient(loss, [transitions, start, end]), [transitions, start, end]))
    assert crf.viterbi_decode(tf.constant(unary), lengths, transitions, start, end)[0].numpy().tolist() == [[1, 2]]
