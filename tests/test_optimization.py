import numpy as np
import pytest
import tensorflow as tf

from bert import optimization
from conftest import run_in_graph

tf1 = tf.compat.v1


def test_schedule_warmup_then_linear_decay():
    config = optimization.OptimizerConfig(learning_rate=1.0, num_train_steps=100, num_warmup_steps=10)
    steps = [0, 5, 9, 10, 55, 100, 150]
    values = run_in_graph(lambda: [optimization.learning_rate_schedule(tf.constant(s), config) for s in steps])
    np.testing.assert_allclose(values, [0.0, 0.5, 0.9, 0.9, 0.45, 0.0, 0.0], atol=1e-6)


def test_weight_decay_exclusions():
    optimizer = optimization.AdamWeightDecayOptimizer(0.1, weight_decay_rate=0.01,
                                                      exclude_from_weight_decay=["LayerNorm", "layer_norm", "bias"])
    assert optimizer.decays("bert/encoder/layer_0/attention/self/query/kernel")
    assert optimizer.decays("output_weights")
    assert not optimizer.decays("bert/encoder/layer_0/output/LayerNorm/gamma")
    assert not optimizer.decays("bert/pooler/dense/bias")


def numpy_adamw(params, grads_per_step, lrs, wd, decays, clip, b1=0.9, b2=0.999, eps=1e-6):
    """The update rule written out in numpy: clip by global norm, Adam without bias correction, decay."""
    params = {k: v.copy() for k, v in params.items()}
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v = {k: np.zeros_like(x) for k, x in params.items()}
    for grads, lr in zip(grads_per_step, lrs):
        norm = np.sqrt(sum(np.sum(g ** 2) for g in grads.values()))
        scale = clip / max(norm, clip)
        for k in params:
            g = grads[k] * scale
            m[k] = b1 * m[k] + (1 - b1) * g
            v[k] = b2 * v[k] + (1 - b2) * g * g
            update = m[k] / (np.sqrt(v[k]) + eps)
            if decays[k]:
                update = update + wd * params[k]
            params[k] = params[k] - lr * update
    return params


def test_updates_match_the_rule_written_in_numpy():
    start = {"kernel": np.array([[0.5, -1.0], [2.0, 0.25]], np.float32), "bias": np.array([0.1, -0.2], np.float32)}
    # loss = sum(coef * param) makes the gradient equal coef; the first step's norm is over the clip.
    coefs = [{"kernel": np.array([[3.0, -4.0], [1.0, 2.0]], np.float32), "bias": np.array([5.0, 0.0], np.float32)},
             {"kernel": np.array([[0.1, 0.2], [-0.3, 0.0]], np.float32), "bias": np.array([0.0, 0.4], np.float32)},
             {"kernel": np.array([[0.0, 0.5], [0.5, 0.0]], np.float32), "bias": np.array([-0.1, 0.1], np.float32)}]
    config = optimization.OptimizerConfig(learning_rate=0.1, num_train_steps=4, num_warmup_steps=1,
                                          weight_decay_rate=0.05, clip_norm=1.0)
    with tf.Graph().as_default():
        params = {k: tf1.get_variable(k, initializer=tf.constant(v)) for k, v in start.items()}
        feeds = {k: tf1.placeholder(tf.float32, v.shape) for k, v in start.items()}
        loss = tf.add_n([tf.reduce_sum(feeds[k] * params[k]) for k in params])
        train_op = optimization.create_train_op(loss, config)
        with tf1.Session() as session:
            session.run(tf1.global_variables_initializer())
            for coef in coefs:
                session.run(train_op, {feeds[k]: coef[k] for k in feeds})
            got = session.run(params)
            step = session.run(tf1.train.get_global_step())
    # lr at steps 0, 1, 2: warmup gives 0 at step 0, then linear decay over 4 steps.
    lrs = [0.0, 0.1 * (1 - 1 / 4), 0.1 * (1 - 2 / 4)]
    expected = numpy_adamw(start, coefs, lrs, 0.05, {"kernel": True, "bias": False}, clip=1.0)
    assert step == 3
    for k in start:
        np.testing.assert_allclose(got[k], expected[k], rtol=1e-5, atol=1e-6)


def build_loss_scaled(growth_interval):
    weights = tf1.get_variable("w", initializer=tf.constant([1.0, 2.0]))
    x = tf1.placeholder(tf.float32, [2])
    config = optimization.OptimizerConfig(learning_rate=0.1, num_train_steps=100, dynamic_loss_scale=True,
                                          initial_loss_scale=8.0, loss_scale_growth_interval=growth_interval)
    train_op = optimization.create_train_op(tf.reduce_sum(weights * x), config)
    scale = [v for v in tf1.global_variables() if v.op.name == "optimizer_state/loss_scale"][0]
    return weights, x, train_op, scale


def test_non_finite_step_is_skipped_and_halves_the_scale():
    with tf.Graph().as_default():
        weights, x, train_op, scale = build_loss_scaled(growth_interval=2)
        global_step = tf1.train.get_global_step()
        with tf1.Session() as session:
            session.run(tf1.global_variables_initializer())
            session.run(train_op, {x: [1.0, 1.0]})
            before = session.run([weights, global_step, scale])
            for bad in ([np.inf, 1.0], [np.nan, 0.0]):
                session.run(train_op, {x: bad})
            after = session.run([weights, global_step, scale])
            session.run(train_op, {x: [1.0, 1.0]})
            one_good = session.run([global_step, scale])
            session.run(train_op, {x: [1.0, 1.0]})
            two_good = session.run([global_step, scale])
    assert before[1] == 1 and before[2] == 8.0
    np.testing.assert_array_equal(after[0], before[0])  # weights untouched
    assert after[1] == 1  # global_step did not advance
    assert after[2] == 2.0  # halved twice
    assert list(one_good) == [2, 2.0]
    assert list(two_good) == [3, 4.0]  # doubled after 2 good updates in a row


def test_loss_scale_never_drops_below_one():
    with tf.Graph().as_default():
        _, x, train_op, scale = build_loss_scaled(growth_interval=100)
        with tf1.Session() as session:
            session.run(tf1.global_variables_initializer())
            for _ in range(6):
                session.run(train_op, {x: [np.inf, 1.0]})
            assert session.run(scale) == 1.0


@pytest.mark.parametrize("dynamic_loss_scale", [False, True])
def test_accumulation_equals_one_large_batch(dynamic_loss_scale):
    rng = np.random.RandomState(0)
    features = rng.randn(8, 3).astype(np.float32)
    targets = rng.randn(8).astype(np.float32)

    def train(accumulation, batches):
        with tf.Graph().as_default():
            weights = tf1.get_variable("w", initializer=tf.constant([0.3, -0.2, 0.5]))
            x, y = tf1.placeholder(tf.float32, [None, 3]), tf1.placeholder(tf.float32, [None])
            loss = tf.reduce_mean(tf.square(tf.linalg.matvec(x, weights) - y))
            config = optimization.OptimizerConfig(
                learning_rate=0.05, num_train_steps=10, weight_decay_rate=0.01, clip_norm=1.0,
                gradient_accumulation_steps=accumulation, dynamic_loss_scale=dynamic_loss_scale)
            train_op = optimization.create_train_op(loss, config)
            with tf1.Session() as session:
                session.run(tf1.global_variables_initializer())
                steps = []
                for rows in batches:
                    session.run(train_op, {x: features[rows], y: targets[rows]})
                    steps.append(session.run(tf1.train.get_global_step()))
                return session.run(weights), steps

    halves = [slice(0, 4), slice(4, 8)]
    accumulated, accumulated_steps = train(2, halves * 2)
    large, large_steps = train(1, [slice(0, 8)] * 2)
    assert accumulated_steps == [0, 1, 1, 2] and large_steps == [1, 2]
    np.testing.assert_allclose(accumulated, large, rtol=1e-5, atol=1e-7)
