import json

import numpy as np
import pytest
import tensorflow as tf

from bert import checkpoint, heads, modeling
from bert.errors import UserInputError
from conftest import run_in_graph, shared_path, tiny_config

tf1 = tf.compat.v1

IDS = np.array([[2, 7, 13, 40, 5, 0, 0, 0], [2, 31, 9, 4, 77, 18, 6, 5]], dtype=np.int32)
MASK = (IDS > 0).astype(np.int32)
SEGMENTS = np.array([[0, 0, 0, 1, 1, 0, 0, 0], [0, 0, 0, 0, 1, 1, 1, 1]], dtype=np.int32)


def build_tiny(config=None, ids=IDS, compute_type=tf.float32, is_training=False):
    return modeling.BertModel(config or tiny_config(), is_training, tf.constant(ids), tf.constant(MASK),
                              tf.constant(SEGMENTS), compute_type=compute_type)


def test_config_round_trip_keeps_every_key(tmp_path):
    config = tiny_config(hidden_act="gelu_exact", directionality="bidi", pooler_fc_size=32)
    path = tmp_path / "bert_config.json"
    config.to_json_file(str(path))
    again = modeling.BertConfig.from_json_file(str(path))
    assert again.to_dict() == config.to_dict()
    assert again.directionality == "bidi" and again.size_per_head == 8
    assert json.loads(again.to_json_string()) == config.to_dict()


@pytest.mark.parametrize("change, message", [
    (dict(hidden_size=30), "not a multiple of num_attention_heads"),
    (dict(hidden_dropout_prob=1.5), "hidden_dropout_prob must be in [0, 1)"),
    (dict(num_hidden_layers=0), "num_hidden_layers must be a positive integer"),
    (dict(hidden_act="gelux"), "unknown hidden_act"),
])
def test_impossible_config_is_refused(change, message):
    with pytest.raises(UserInputError, match=message.replace("[", r"\[").replace(")", r"\)")):
        tiny_config(**change)


def test_config_file_errors_name_file_and_line(tmp_path):
    path = tmp_path / "bert_config.json"
    path.write_text('{\n  "vocab_size": 10,\n  "hidden_size": 32,,\n}')
    with pytest.raises(UserInputError, match=r"bert_config.json, line 3"):
        modeling.BertConfig.from_json_file(str(path))
    path.write_text('{"vocab_size": 10, "hidden_size": 30}')
    with pytest.raises(UserInputError, match=r"bert_config.json: hidden_size 30 is not a multiple"):
        modeling.BertConfig.from_json_file(str(path))
    with pytest.raises(UserInputError, match="config file not found"):
        modeling.BertConfig.from_json_file(str(tmp_path / "missing.json"))


def test_variables_have_googles_names_and_shapes():
    with tf.Graph().as_default():
        build_tiny()
        shapes = {v.op.name: v.shape.as_list() for v in tf1.global_variables()}
    assert len(shapes) == 5 + 16 * 2 + 2
    assert shapes["bert/embeddings/word_embeddings"] == [99, 32]
    assert shapes["bert/embeddings/position_embeddings"] == [64, 32]
    assert shapes["bert/encoder/layer_1/attention/self/query/kernel"] == [32, 32]
    assert shapes["bert/encoder/layer_1/intermediate/dense/kernel"] == [32, 37]
    assert shapes["bert/encoder/layer_0/output/dense/kernel"] == [37, 32]
    assert shapes["bert/encoder/layer_0/attention/output/LayerNorm/gamma"] == [32]
    assert shapes["bert/pooler/dense/kernel"] == [32, 32]


def test_outputs_shapes_and_padding_is_ignored():
    changed = IDS.copy()
    changed[0, 6] = 55  # a padding position: the mask says 0, so real tokens must not notice
    with tf.Graph().as_default():
        ids = tf1.placeholder(tf.int32, [None, 8])
        model = modeling.BertModel(tiny_config(), False, ids, tf.constant(MASK), tf.constant(SEGMENTS))
        fetches = [model.get_sequence_output(), model.get_pooled_output(), model.get_embedding_output()]
        with tf1.Session() as session:
            session.run(tf1.global_variables_initializer())
            seq_a, pooled_a, embedding = session.run(fetches, {ids: IDS})
            seq_b, pooled_b, _ = session.run(fetches, {ids: changed})
            table = session.run(model.get_embedding_table())
    assert seq_a.shape == (2, 8, 32) and pooled_a.shape == (2, 32) and embedding.shape == (2, 8, 32)
    assert table.shape == (99, 32) and len(model.get_all_encoder_layers()) == 2
    np.testing.assert_allclose(seq_a[0, :5], seq_b[0, :5], atol=1e-6)
    np.testing.assert_allclose(pooled_a, pooled_b, atol=1e-6)
    assert not np.allclose(seq_a[0, 6], seq_b[0, 6])  # the changed padding token itself does change


@pytest.mark.parametrize("is_training", [True, False])
def test_dropout_only_when_training(is_training):
    with tf.Graph().as_default():
        output = build_tiny(is_training=is_training).get_sequence_output()
        with tf1.Session() as session:
            session.run(tf1.global_variables_initializer())
            first, second = session.run(output), session.run(output)
    assert np.allclose(first, second) != is_training


@pytest.mark.parametrize("compute_type, atol", [("float16", 0.05), ("bfloat16", 0.3)])
def test_compute_types_keep_float32_variables_and_outputs(compute_type, atol):
    def build(dtype):
        def inner():
            model = build_tiny(compute_type=dtype)
            graph = tf1.get_default_graph()
            matmul_types = {op.get_attr("T") for op in graph.get_operations()
                            if op.type in ("MatMul", "BatchMatMulV2")}
            softmax_types = {op.get_attr("T") for op in graph.get_operations() if op.type == "Softmax"}
            variable_types = {v.dtype.base_dtype for v in tf1.global_variables()}
            assert model.compute_type == tf.as_dtype(dtype)
            assert tf.as_dtype(dtype) in matmul_types
            assert softmax_types == {tf.float32}
            assert variable_types == {tf.float32}
            return model.get_sequence_output(), model.get_pooled_output(), model.get_all_encoder_layers()
        return inner

    reference = run_in_graph(build(tf.float32))
    low = run_in_graph(build(compute_type))
    for ref_out, low_out in zip(reference[:2], low[:2]):
        assert low_out.dtype == np.float32
        np.testing.assert_allclose(low_out, ref_out, atol=atol)
    assert all(layer.dtype == np.float32 for layer in low[2])


def test_sequence_longer_than_positions_is_refused():
    with tf.Graph().as_default():
        with pytest.raises(UserInputError, match="exceeds max_position_embeddings 64"):
            modeling.BertModel(tiny_config(), False, tf.zeros([1, 65], tf.int32))


def test_google_reference_outputs():
    folder = shared_path("bert_reference")
    reference = np.load(f"{folder}/reference_outputs.npz")
    config = modeling.BertConfig.from_json_file(f"{folder}/bert_config.json")

    def build():
        model = modeling.BertModel(config, False, tf.constant(reference["input_ids"]),
                                   tf.constant(reference["input_mask"]), tf.constant(reference["segment_ids"]))
        logits = heads.classification_logits(model.get_pooled_output(), 3, is_training=False)
        report = checkpoint.init_from_checkpoint(folder, tvars=tf1.global_variables())
        assert not report.not_in_checkpoint and not report.unused_in_checkpoint
        return (model.get_sequence_output(), model.get_pooled_output(), model.get_all_encoder_layers(),
                logits)

    sequence, pooled, layers, logits = run_in_graph(build)
    np.testing.assert_allclose(sequence, reference["sequence_output"], atol=1e-5)
    np.testing.assert_allclose(pooled, reference["pooled_output"], atol=1e-5)
    np.testing.assert_allclose(np.stack(layers), reference["all_encoder_layers"], atol=1e-5)
    np.testing.assert_allclose(logits, reference["classifier_logits"], atol=1e-5)


def test_chinese_base_builds_exactly_googles_206_variables():
    folder = shared_path("bert_chinese")
    expected = set()
    with open(f"{folder}/variables.txt", encoding="utf-8") as reader:
        for line in reader:
            name, _dtype, shape = line.split(" ", 2)
            expected.add((name, tuple(json.loads(shape))))
    config = modeling.BertConfig.from_json_file(f"{folder}/bert_config.json")
    with tf.Graph().as_default():
        ids = tf.zeros([1, 8], tf.int32)
        model = modeling.BertModel(config, True, ids)
        heads.masked_lm(config, model.get_sequence_output(), model.get_embedding_table(),
                        tf.zeros([1, 2], tf.int32), tf.zeros([1, 2], tf.int32), tf.ones([1, 2]))
        heads.next_sentence(config, model.get_pooled_output(), tf.zeros([1], tf.int32))
        built = {(v.op.name, tuple(v.shape.as_list())) for v in tf1.global_variables()}
    assert len(expected) == 206
    assert built == expected
