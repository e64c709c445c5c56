"""Support-set adaptation (bert/adaptation.py): the prototype start, the adapted top layers, the episodes."""
import numpy as np
import pytest
import tensorflow as tf

from bert import adaptation, heads, modeling
from bert.errors import UserInputError
from conftest import tiny_config

tf1 = tf.compat.v1
SEQ = 10


@pytest.fixture(scope="module")
def encoded(tmp_path_factory):
    """A tiny BERT saved as a checkpoint, and what it gives for 24 random texts of varying length:
    every layer's hidden states, the mean / pooled embeddings, the input mask."""
    config = tiny_config()
    rng = np.random.RandomState(0)
    ids = rng.randint(5, config.vocab_size, size=(24, SEQ)).astype(np.int32)
    mask = (np.arange(SEQ)[None, :] < rng.randint(3, SEQ + 1, size=(24, 1))).astype(np.int32)
    prefix = str(tmp_path_factory.mktemp("tiny") / "model.ckpt")
    with tf.Graph().as_default():
        tf1.set_random_seed(3)
        model = modeling.BertModel(config, False, tf.constant(ids * mask), tf.constant(mask))
        fetches = {"layers": [model.get_embedding_output()] + model.get_all_encoder_layers(),
                   "mean": heads.sentence_embedding(model, mask, "mean"), "pooled": model.get_pooled_output()}
        with tf1.Session() as session:
            session.run(tf1.global_variables_initializer())
            values = session.run(fetches)
            tf1.train.Saver().save(session, prefix)
    return dict(values, config=config, mask=mask, checkpoint=prefix)


def inputs_for(encoded, adapter, pooling):
    outputs = {"embedding": encoded[pooling], "input_mask": encoded["mask"]}
    if adapter.first_layer is not None:
        outputs["hidden"] = encoded["layers"][adapter.first_layer]
    return adapter.inputs(outputs)


LABELS = np.array([0, 0, 1, 1, 2, 2], np.int32)  # rows 0-5 support, 6-23 queries


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
@pytest.mark.parametrize("pooling,layers", [("mean", 0), ("mean", 1), ("pooled", 1), ("mean", 2)])
def test_no_steps_is_exactly_the_prototype_classifier(encoded, distance, pooling, layers):
    adapt = adaptation.AdaptConfig(steps=0, layers=layers)
    adapter = adaptation.Adapter(encoded["config"], encoded["checkpoint"], pooling, distance, adapt,
                                 params={"scale": 7.0} if distance == "cosine" else None)
    inputs = inputs_for(encoded, adapter, pooling)
    adapted = adapter.fit(adaptation.take(inputs, slice(0, 6)), LABELS, adaptation.take(inputs, slice(6, 24)))
    embeddings = encoded[pooling]
    # The top layers rebuilt from the hidden states below them (padding cut off) give the model's embeddings.
    np.testing.assert_allclose(adapted.query_embeddings, embeddings[6:], atol=2e-5)
    prototypes = heads.class_means(embeddings[:6], LABELS, range(3))
    np.testing.assert_allclose(adapted.prototypes, prototypes, atol=2e-5)
    distance_object = heads.get_distance(distance)
    logits = distance_object.np_logits(embeddings[6:], prototypes, {"scale": 7.0})
    expected = np.exp(logits - logits.max(-1, keepdims=True))
    np.testing.assert_allclose(adapted.probabilities, expected / expected.sum(-1, keepdims=True), atol=1e-5)


@pytest.mark.parametrize("layers", [0, 1])
def test_steps_fit_the_support_set_and_never_read_the_queries(encoded, layers):
    adapt = adaptation.AdaptConfig(steps=30, learning_rate=1e-2, layers=layers)
    adapter = adaptation.Adapter(encoded["config"], encoded["checkpoint"], "mean", "euclidean", adapt)
    inputs = inputs_for(encoded, adapter, "mean")
    support = adaptation.take(inputs, slice(0, 6))
    before = adaptation.Adapter(encoded["config"], encoded["checkpoint"], "mean", "euclidean",
                                adaptation.AdaptConfig(steps=0, layers=layers)).fit(support, LABELS, support)
    after = adapter.fit(support, LABELS, support, with_variables=True)

    def support_loss(adapted):
        return -np.log(adapted.probabilities[np.arange(6), LABELS]).mean()
    assert support_loss(after) < 0.5 * support_loss(before)
    changed = {name for name, value in after.variables.items()
               if not np.allclose(value, tf.train.load_checkpoint(encoded["checkpoint"]).get_tensor(name)
                                  if name.startswith("bert/") else 0)}
    assert {"adapted_head/weights", "adapted_head/bias"} <= set(after.variables)
    expected_layers = {name for name in after.variables if name.startswith("bert/")}
    assert all(name.startswith("bert/encoder/layer_1/") for name in expected_layers)
    assert bool(expected_layers) == bool(layers) and expected_layers <= changed
    # Queries: classified one at a time or all together, the same (nothing is learnt from them), and
    # every episode starts afresh from the checkpoint.
    together = adapter.fit(support, LABELS, adaptation.take(inputs, slice(6, 24))).probabilities
    alone = adapter.fit(support, LABELS, adaptation.take(inputs, slice(6, 9))).probabilities
    np.testing.assert_allclose(alone, together[:3], atol=1e-5)


def test_the_layers_have_their_own_learning_rate(encoded):
    """Adam moves a variable by a few times its learning rate a step at most ((1 - beta1) / sqrt(1 - beta2)
    = 3.2): 30 steps at 1e-6 leave the layer within 1e-4 of the checkpoint, while the same layer at the
    head's 1e-2 moves more than 100 times as far."""
    reader = tf.train.load_checkpoint(encoded["checkpoint"])

    def moved(layer_learning_rate):
        adapt = adaptation.AdaptConfig(steps=30, learning_rate=1e-2, layers=1, layer_learning_rate=layer_learning_rate)
        adapter = adaptation.Adapter(encoded["config"], encoded["checkpoint"], "mean", "euclidean", adapt)
        support = adaptation.take(inputs_for(encoded, adapter, "mean"), slice(0, 6))
        variables = adapter.fit(support, LABELS, support, with_variables=True).variables
        layers = max(np.abs(value - reader.get_tensor(name)).max() for name, value in variables.items()
                     if name.startswith("bert/"))
        return layers, variables["adapted_head/weights"]
    slow_layers, slow_head = moved(1e-6)
    same_layers, same_head = moved(None)
    assert 0 < slow_layers <= 30 * 1e-6 * 3.2 and same_layers > 100 * slow_layers
    frozen_head = moved(1e-30)[1]  # the head trained with the layer frozen in effect
    assert np.abs(slow_head - frozen_head).max() < 0.05 * np.abs(same_head - frozen_head).max() + 1e-4


def test_episodes_are_the_prototype_scorers(encoded):
    rows = {c: np.arange(c * 6, c * 6 + 6) for c in range(4)}
    from bert import tasks
    prototype = tasks.FewShotScorer(3, 2, 3, 20, 7, "euclidean").score(encoded["mean"], rows)
    adapter = adaptation.Adapter(encoded["config"], encoded["checkpoint"], "mean", "euclidean",
                                 adaptation.AdaptConfig(steps=0))
    unadapted = adaptation.AdaptedScorer(adapter, 3, 2, 3, 20, 7).score({"embedding": encoded["mean"]}, rows)
    assert unadapted["accuracy"] == pytest.approx(prototype["accuracy"]) and unadapted["episodes"] == 20


def test_bad_settings(encoded):
    config = encoded["config"]
    with pytest.raises(UserInputError, match="adapt_layers=3 is more than the model's 2 layers"):
        adaptation.AdaptConfig(steps=1, layers=3).check(config)
    with pytest.raises(UserInputError, match="positive learning rates"):
        adaptation.AdaptConfig(steps=1, learning_rate=0).check(config)
    with pytest.raises(UserInputError, match="layer_learning_rate=-1"):
        adaptation.AdaptConfig(steps=1, layers=1, layer_learning_rate=-1.0).check(config)
    with pytest.raises(UserInputError, match="needs a checkpoint"):
        adaptation.Adapter(config, None, "mean", "euclidean", adaptation.AdaptConfig(steps=1, layers=1))
