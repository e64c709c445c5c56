"""Shared test helpers: tiny configs, graph running, and access to ../shared/data (skipped when absent)."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from bert import modeling  # noqa: E402

tf1 = tf.compat.v1
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.environ.get("BERT_SHARED_DATA", os.path.join(os.path.dirname(REPO), "shared", "data"))


def shared_path(*parts):
    """Path inside ../shared/data; skips the test with a message when it is not there."""
    path = os.path.join(SHARED_DATA, *parts)
    if not os.path.exists(path):
        pytest.skip(f"{path} is absent (the real reference data lives in ../shared/data)")
    return path


def tiny_config(**overrides):
    values = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                  intermediate_size=37, max_position_embeddings=64, type_vocab_size=2)
    values.update(overrides)
    return modeling.BertConfig(**values)


def run_in_graph(build, seed=1):
    """Builds `build()` in a fresh graph, initialises variables and returns the evaluated fetches."""
    with tf.Graph().as_default():
        tf1.set_random_seed(seed)
        fetches = build()
        with tf1.Session() as session:
            session.run(tf1.global_variables_initializer())
            return session.run(fetches)
