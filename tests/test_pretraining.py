"""Pretraining data, vocab building, and run_pretraining (loss falls, continuation, kill and resume)."""
import json
import os
import random
import signal
import string
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from absl import flags

import create_pretraining_data
import run_pretraining
from bert import checkpoint, model_folder, modeling, pretraining_data, tokenization, vocab
from bert.errors import UserInputError
from conftest import REPO, tiny_config

FLAGS = flags.FLAGS
WORDS = ["the", "cat", "dog", "sat", "on", "mat", "ran", "far", "away", "big", "small", "red"]
PIECES = ["un", "##want", "##ed", "re", "##run", "##ning"]  # "unwanted" and "rerunning" split into pieces
CHINESE = list(dict.fromkeys("我们喜欢自然语言处理今天天气很好"))


@pytest.fixture
def vocab_file(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(list(tokenization.SPECIAL_TOKENS) + WORDS + PIECES + [".", ","] + CHINESE) + "\n")
    return path


def corpus(path, documents=6, sentences=8, seed=0):
    rng = random.Random(seed)
    lines = []
    for _ in range(documents):
        for _ in range(sentences):
            lines.append(" ".join(rng.choice(WORDS + ["unwanted", "rerunning"]) for _ in range(rng.randint(4, 9))) + " .")
        lines.append("")
    path.write_text("\n".join(lines))
    return path


def make_instances(vocab_file, text_file, **settings):
    tokenizer = tokenization.FullTokenizer(str(vocab_file))
    config = pretraining_data.MaskingConfig(**dict(dict(max_seq_length=32, max_predictions_per_seq=5,
                                                        dupe_factor=2), **settings))
    split = pretraining_data.SentenceTokenizer(tokenizer, config.word_boundaries)
    documents = [[split(s) for s in doc] for doc in pretraining_data.read_documents([str(text_file)])]
    vocab_tokens = [t for t in tokenizer.vocab if not t.startswith("[")]
    chunks = range(-(-len(documents) // pretraining_data.CHUNK_DOCUMENTS))
    instances = [i for c in chunks for i in pretraining_data.instances_for_chunk(documents, c, config, vocab_tokens)]
    return instances, config, tokenizer, documents


def test_nsp_instances_shapes_masks_and_labels(tmp_path, vocab_file):
    instances, config, tokenizer, _ = make_instances(vocab_file, corpus(tmp_path / "c.txt"))
    assert len(instances) > 10
    assert {i.is_random_next for i in instances} == {True, False}
    for instance in instances:
        assert len(instance.tokens) <= 32 and instance.tokens[0] == "[CLS]" and instance.tokens[-1] == "[SEP]"
        first_sep = instance.tokens.index("[SEP]")
        assert instance.segment_ids == [0] * (first_sep + 1) + [1] * (len(instance.tokens) - first_sep - 1)
        expected = min(5, max(1, round(len(instance.tokens) * 0.15)))
        assert 1 <= len(instance.masked_lm_positions) <= expected  # whole words can leave the budget short
        assert instance.masked_lm_positions == sorted(set(instance.masked_lm_positions))
        assert all(instance.tokens[p] not in ("[CLS]", "[SEP]") or instance.masked_lm_labels[k] not in ("[CLS]", "[SEP]")
                   for k, p in enumerate(instance.masked_lm_positions))
        assert "[CLS]" not in instance.masked_lm_labels and "[SEP]" not in instance.masked_lm_labels
        features = pretraining_data.instance_features(instance, tokenizer, config)
        assert {name: len(v) for name, v in features.items()} == {
            "input_ids": 32, "input_mask": 32, "segment_ids": 32, "masked_lm_positions": 5, "masked_lm_ids": 5,
            "masked_lm_weights": 5, "next_sentence_labels": 1}
        assert features["next_sentence_labels"] == [int(instance.is_random_next)]
        count = len(instance.masked_lm_positions)
        assert features["masked_lm_weights"] == [1.0] * count + [0.0] * (5 - count)
        assert features["masked_lm_ids"][:count] == tokenizer.convert_tokens_to_ids(instance.masked_lm_labels)


def test_mlm_only_segments_and_recorded_ids(tmp_path, vocab_file):
    text = corpus(tmp_path / "c.txt", documents=1, sentences=30)
    instances, config, tokenizer, documents = make_instances(vocab_file, text, nsp=False, dupe_factor=1)
    pieces = [t for s in documents[0] for t in s.tokens]
    size = 30
    full, tail = divmod(len(pieces), size)
    assert len(instances) == full + (1 if tail >= size / 2 else 0)  # a short final segment is dropped
    for index, instance in enumerate(instances):
        original = ["[CLS]"] + pieces[index * size:(index + 1) * size] + ["[SEP]"]
        assert len(instance.tokens) == len(original) and set(instance.segment_ids) == {0}
        # every masked position records the original token; every other position is untouched
        assert instance.masked_lm_labels == [original[p] for p in instance.masked_lm_positions]
        untouched = set(range(len(original))) - set(instance.masked_lm_positions)
        assert all(instance.tokens[p] == original[p] for p in untouched)
    assert "next_sentence_labels" not in pretraining_data.instance_features(instances[0], tokenizer, config)


def test_80_10_10_replacement(tmp_path, vocab_file):
    instances, *_ = make_instances(vocab_file, corpus(tmp_path / "c.txt", documents=8, sentences=20),
                                   nsp=False, dupe_factor=20, word_boundaries="none")
    outcomes = {"mask": 0, "same": 0, "other": 0}
    for instance in instances:
        for position, label in zip(instance.masked_lm_positions, instance.masked_lm_labels):
            token = instance.tokens[position]
            outcomes["mask" if token == "[MASK]" else "same" if token == label else "other"] += 1
    total = sum(outcomes.values())
    assert total > 2000
    # a random replacement can draw the original token, so "same" is slightly above 10%
    assert abs(outcomes["mask"] / total - 0.8) < 0.03
    assert abs(outcomes["same"] / total - 0.1) < 0.03 and abs(outcomes["other"] / total - 0.1) < 0.03


def units_of(split_pieces):
    """Word units of an instance's original tokens: runs of pieces where '##' continues a word
    ([CLS] and [SEP] belong to none; a segment may start inside a word)."""
    units, current = [], []
    for position, token in enumerate(split_pieces):
        if token.startswith("##") and current:
            current.append(position)
        else:
            if current:
                units.append(current)
            current = [] if token in ("[CLS]", "[SEP]") else [position]
    if current:
        units.append(current)
    return units


def test_whole_word_masking_never_splits_a_word(tmp_path, vocab_file):
    text = corpus(tmp_path / "c.txt", documents=4, sentences=30)
    instances, _, _, documents = make_instances(vocab_file, text, nsp=False, dupe_factor=10)
    pieces = [t for s in documents[0] for t in s.tokens]
    checked = 0
    for index, instance in enumerate(instances[:len(pieces) // 30]):
        original = ["[CLS]"] + pieces[index * 30:(index + 1) * 30] + ["[SEP]"]
        masked = set(instance.masked_lm_positions)
        for unit in units_of(original):
            if len(unit) > 1 and masked & set(unit):
                assert set(unit) <= masked, (original, instance.tokens)
                checked += 1
    assert checked > 0


def test_chinese_word_and_phrase_masking(tmp_path, vocab_file):
    text = tmp_path / "zh.txt"
    text.write_text("\n".join(["我们 喜欢 自然 语言 处理", "今天 天气 很 好", "我们 喜欢 今天"] * 20))
    tokenizer = tokenization.FullTokenizer(str(vocab_file))
    split = pretraining_data.SentenceTokenizer(tokenizer, "spaces")
    sentence = split("我们 喜欢 自然 语言")
    assert sentence.tokens == list("我们喜欢自然语言") and sentence.word_ids == [0, 0, 1, 1, 2, 2, 3, 3]
    phrases = pretraining_data.phrase_pieces(tokenizer, ["自然语言", "x"])
    assert phrases == [tuple("自然语言")]
    tokens = ["[CLS]"] + list("我们喜欢自然语言处理") + ["[SEP]"]
    word_ids = [None, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, None]
    assert pretraining_data.masking_units(tokens, word_ids) == [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10]]
    assert sorted(pretraining_data.masking_units(tokens, word_ids, phrases)) == [[1, 2], [3, 4], [5, 6, 7, 8], [9, 10]]

    documents = [[split(line) for line in pretraining_data.read_documents([str(text)])[0]]]
    config = pretraining_data.MaskingConfig(max_seq_length=24, max_predictions_per_seq=6, nsp=False, dupe_factor=30,
                                            word_boundaries="spaces")
    instances = pretraining_data.instances_for_chunk(documents, 0, config, CHINESE, phrases)
    seen_phrase = 0
    for instance in instances:
        labels = dict(zip(instance.masked_lm_positions, instance.masked_lm_labels))
        for position, label in labels.items():
            if label == "自":  # the phrase 自然语言 is masked whole
                assert all(p in labels for p in range(position, position + 4))
                seen_phrase += 1
            if label == "喜":
                assert position + 1 in labels and labels[position + 1] == "欢"
    assert seen_phrase > 0


def test_same_seed_same_data_whatever_the_workers(tmp_path, vocab_file):
    text = corpus(tmp_path / "c.txt", documents=150, sentences=4)  # several chunks of documents

    def create(output, seed, workers):
        FLAGS.unparse_flags()
        FLAGS(["create_pretraining_data", f"--input_file={text}", f"--output_dir={output}", f"--vocab_file={vocab_file}",
               "--max_seq_length=32", "--max_predictions_per_seq=5", "--dupe_factor=2", f"--random_seed={seed}",
               f"--num_workers={workers}", "--num_shards=2"])
        create_pretraining_data.main([])
        return [open(os.path.join(output, f"pretrain-0000{i}-of-00002.tfrecord"), "rb").read() for i in range(2)]

    one = create(tmp_path / "a", 7, 1)
    assert create(tmp_path / "b", 7, 2) == one
    assert create(tmp_path / "c", 8, 1) != one
    meta = json.loads((tmp_path / "a" / "pretrain_meta.json").read_text())
    assert meta["next_sentence"] is True and meta["summary"]["instances"] > 0


def test_vocab_building(tmp_path):
    text = tmp_path / "ids.txt"
    text.write_text("17 17 17 4 4 9\n4 17 23\n")
    path = tmp_path / "vocab.txt"
    assert vocab.build_whitespace_vocab([str(text)], str(path), min_count=2) == 5 + 2
    assert path.read_text().split("\n")[:7] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "17", "4"]
    vocab.build_whitespace_vocab([str(text)], str(path), max_size=6)
    assert path.read_text().split() == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "17"]
    assert tokenization.WhitespaceTokenizer(str(path)).tokenize("17 9") == ["17", "[UNK]"]

    corpus_file = tmp_path / "text.txt"
    corpus_file.write_text("\n".join(f"the quick brown fox jumps over the lazy dog {i}" for i in range(300)))
    model = vocab.train_sentencepiece([str(corpus_file)], str(tmp_path / "spm" / "m"), vocab_size=60)
    tokenizer = tokenization.SentencePieceTokenizer(model)
    assert tokenizer.convert_tokens_to_ids(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]) == [0, 1, 2, 3, 4]
    assert "".join(tokenizer.tokenize("lazy fox")).replace("\u2581", " ").strip() == "lazy fox"
    with pytest.raises(UserInputError, match="no such file"):
        vocab.build_whitespace_vocab([str(tmp_path / "missing.txt")], str(path))


# --- run_pretraining ------------------------------------------------------------------------------
@pytest.fixture
def pretrain_setup(tmp_path, vocab_file):
    data = tmp_path / "data"
    FLAGS.unparse_flags()
    FLAGS(["create_pretraining_data", f"--input_file={corpus(tmp_path / 'c.txt', documents=10, sentences=10)}",
           f"--output_dir={data}", f"--vocab_file={vocab_file}", "--max_seq_length=32",
           "--max_predictions_per_seq=5", "--dupe_factor=3", "--num_workers=1"])
    create_pretraining_data.main([])
    size = len(tokenization.load_vocab(str(vocab_file)))
    tiny_config(vocab_size=size, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0).to_json_file(
        str(tmp_path / "bert_config.json"))
    return tmp_path, data


def pretrain_args(root, data, output, **overrides):
    args = dict(input_file=data, output_dir=output, bert_config_file=root / "bert_config.json",
                vocab_file=root / "vocab.txt", train_batch_size=8, eval_batch_size=8, learning_rate=2e-3,
                num_train_steps=60, num_warmup_steps=5, max_eval_steps=4, save_checkpoints_steps=20)
    args.update(overrides)
    return [f"--{k}={v}" for k, v in args.items()]


def pretrain(root, data, output, **overrides):
    FLAGS.unparse_flags()
    FLAGS(["run_pretraining", "--do_train", "--do_eval"] + pretrain_args(root, data, output, **overrides))
    run_pretraining.main([])
    return json.loads((output / "eval_results.json").read_text())


def test_masked_lm_loss_falls_and_continuation(pretrain_setup):
    root, data = pretrain_setup
    start = pretrain(root, data, root / "run", num_train_steps=1)
    end = pretrain(root, data, root / "run", num_train_steps=60)
    assert end["global_step"] == 60
    # Random words: the floor is their unigram entropy (about 2.6 nats) against ln 37 = 3.6 at the start.
    assert end["masked_lm_loss"] < start["masked_lm_loss"] - 0.5
    assert end["masked_lm_accuracy"] > start["masked_lm_accuracy"]
    assert "next_sentence_accuracy" in end

    # Continue from that checkpoint: everything loads, heads included.
    trained = checkpoint.read_checkpoint(str(root / "run"))
    pretrain(root, data, root / "cont", num_train_steps=2, init_checkpoint=root / "run")
    first = tf.train.load_checkpoint(str(root / "cont" / "model.ckpt-0"))
    for name in ("bert/embeddings/word_embeddings", "cls/predictions/output_bias",
                 "cls/seq_relationship/output_weights"):
        np.testing.assert_array_equal(first.get_tensor(name), trained[name])

    # From an encoder without heads (as all-MiniLM-L6-v2): heads start fresh, the encoder loads.
    encoder_only = root / "encoder"
    encoder_only.mkdir()
    checkpoint.write_checkpoint({k: v for k, v in trained.items() if k.startswith("bert/")},
                                str(encoder_only / "bert_model.ckpt"))
    pretrain(root, data, root / "fresh_heads", num_train_steps=2, init_checkpoint=encoder_only)
    first = tf.train.load_checkpoint(str(root / "fresh_heads" / "model.ckpt-0"))
    np.testing.assert_array_equal(first.get_tensor("bert/encoder/layer_1/output/dense/kernel"),
                                  trained["bert/encoder/layer_1/output/dense/kernel"])
    np.testing.assert_array_equal(first.get_tensor("cls/predictions/output_bias"), 0.0)


def test_killed_run_resumes_with_the_same_data_and_result(pretrain_setup):
    root, data = pretrain_setup
    args = pretrain_args(root, data, root / "killed", num_train_steps=400, save_checkpoints_steps=50)
    command = [sys.executable, os.path.join(REPO, "run_pretraining.py"), "--do_train"] + args
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 180
    while not (root / "killed" / "model.ckpt-50.index").exists() and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    latest = tf.train.latest_checkpoint(str(root / "killed"))
    assert latest and not latest.endswith("-400")  # it really stopped part-way
    subprocess.run(command, cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)

    FLAGS.unparse_flags()
    FLAGS(["run_pretraining", "--do_train"] + pretrain_args(root, data, root / "whole", num_train_steps=400,
                                                            save_checkpoints_steps=50))
    run_pretraining.main([])
    resumed = tf.train.load_checkpoint(str(root / "killed"))
    whole = tf.train.load_checkpoint(str(root / "whole"))
    assert resumed.get_tensor("global_step") == whole.get_tensor("global_step") == 400
    for name in ("bert/embeddings/word_embeddings", "cls/predictions/output_bias", "bert/pooler/dense/kernel"):
        np.testing.assert_allclose(resumed.get_tensor(name), whole.get_tensor(name), atol=1e-5)


def test_bad_inputs(tmp_path, vocab_file):
    FLAGS.unparse_flags()
    FLAGS(["create_pretraining_data", f"--input_file={tmp_path / 'none*.txt'}", f"--output_dir={tmp_path / 'o'}",
           f"--vocab_file={vocab_file}"])
    with pytest.raises(UserInputError, match="no such file"):
        create_pretraining_data.main([])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserInputError, match="no pretrain_meta.json"):
        run_pretraining.pretraining_data(str(tmp_path / "empty"))


# --- Google's command lines (google-research/bert README), Google's flags ----------------------------------
# As in the README, but for the paths: $BERT_BASE_DIR is a tiny model folder laid out as Google's releases.
GOOGLE_CREATE = """create_pretraining_data.py --input_file=./sample_text.txt --output_file=$DATA/tf_examples.tfrecord
  --vocab_file=$BERT_BASE_DIR/vocab.txt --do_lower_case=True --max_seq_length=128 --max_predictions_per_seq=20
  --masked_lm_prob=0.15 --random_seed=12345 --dupe_factor=5"""
GOOGLE_PRETRAIN = """run_pretraining.py --input_file=$DATA/tf_examples.tfrecord --output_dir=$OUT/pretraining_output
  --do_train=True --do_eval=True --bert_config_file=$BERT_BASE_DIR/bert_config.json
  --init_checkpoint=$BERT_BASE_DIR/bert_model.ckpt --train_batch_size=32 --max_seq_length=128
  --max_predictions_per_seq=20 --num_train_steps=20 --num_warmup_steps=10 --learning_rate=2e-5"""
# Every flag of Google's two scripts, with Google's default; TPU flags are in common_flags.py (shared).
GOOGLE_FLAGS = {
    "create_pretraining_data": dict(input_file=None, output_file=None, vocab_file=None, do_lower_case=True,
                                    max_seq_length=128, max_predictions_per_seq=20, random_seed=12345, dupe_factor=10,
                                    masked_lm_prob=0.15, short_seq_prob=0.1,
                                    do_whole_word_mask=None),  # Google: False; absent here: --word_boundaries
    "run_pretraining": dict(bert_config_file=None, input_file=None, output_dir=None, init_checkpoint=None,
                            max_seq_length=128, max_predictions_per_seq=20, do_train=False, do_eval=False,
                            train_batch_size=32, eval_batch_size=8, learning_rate=5e-5, num_train_steps=100000,
                            num_warmup_steps=10000, save_checkpoints_steps=1000, max_eval_steps=100)}
GOOGLE_TPU_FLAGS = dict(use_tpu=False, tpu_name=None, tpu_zone=None, gcp_project=None, master=None, num_tpu_cores=8,
                        iterations_per_loop=1000)  # run_pretraining's


def google_model(folder, vocab_file, max_position_embeddings=128):
    """A tiny model as Google releases one: vocab.txt, bert_config.json, bert_model.ckpt (hidden 32, 2 layers)."""
    folder.mkdir()
    (folder / "vocab.txt").write_text(vocab_file.read_text())
    config = tiny_config(vocab_size=len(tokenization.load_vocab(str(vocab_file))),
                         max_position_embeddings=max_position_embeddings)
    config.to_json_file(str(folder / "bert_config.json"))
    with tf.Graph().as_default():
        modeling.BertModel(config, is_training=False, input_ids=tf.compat.v1.placeholder(tf.int32, [None, 8]))
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            tf.compat.v1.train.Saver().save(session, str(folder / "bert_model.ckpt"), write_meta_graph=False)
            trained = {v.op.name: session.run(v) for v in tf.compat.v1.global_variables()}
    return folder, trained


def command(line, cwd, **variables):
    """A README command line, $VARIABLES filled in, run as a script; -> CompletedProcess."""
    words = [string.Template(word).substitute({k: str(v) for k, v in variables.items()})
             for word in line.split()]
    return subprocess.run([sys.executable, os.path.join(REPO, words[0])] + words[1:], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def records(path):
    """[{feature: list}] of a TFRecord file of tf.train.Examples."""
    rows = []
    for raw in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
        feature = tf.train.Example.FromString(raw).features.feature
        rows.append({k: list(v.int64_list.value or v.float_list.value) for k, v in feature.items()})
    return rows


def test_google_readme_command_lines_run_as_they_are(tmp_path, vocab_file):
    """Issue 12 items 1 and 2: Google's create_pretraining_data.py (--output_file) and run_pretraining.py
    (no --vocab_file) README command lines finish; the model folder records the vocab as unknown and
    loading it for export asks for the vocab."""
    model, trained = google_model(tmp_path / "uncased_L-2_H-32_A-4", vocab_file)
    corpus(tmp_path / "sample_text.txt", documents=8, sentences=10)
    data, out = tmp_path / "data", tmp_path / "out"
    created = command(GOOGLE_CREATE, tmp_path, DATA=data, BERT_BASE_DIR=model)
    assert created.returncode == 0, created.stderr[-2000:]
    assert sorted(os.listdir(data)) == ["pretrain_meta.json", "tf_examples.tfrecord"]
    rows = records(data / "tf_examples.tfrecord")
    meta = json.loads((data / "pretrain_meta.json").read_text())
    assert meta["complete"] and meta["shards"] == ["tf_examples.tfrecord"] and meta["summary"]["instances"] == len(rows)
    assert meta["settings"]["dupe_factor"] == 5 and meta["settings"]["masked_lm_prob"] == 0.15
    assert {len(row["input_ids"]) for row in rows} == {128} and {len(row["masked_lm_ids"]) for row in rows} == {20}
    assert {row["next_sentence_labels"][0] for row in rows} == {0, 1}

    trained_run = command(GOOGLE_PRETRAIN, tmp_path, DATA=data, BERT_BASE_DIR=model, OUT=out)
    assert trained_run.returncode == 0, trained_run.stderr[-2000:]
    folder = out / "pretraining_output"
    results = dict(line.split(" = ") for line in (folder / "eval_results.txt").read_text().splitlines())
    assert int(results["global_step"]) == 20 and 0 <= float(results["masked_lm_accuracy"]) <= 1
    assert float(results["next_sentence_loss"]) > 0
    first = tf.train.load_checkpoint(str(folder / "model.ckpt-0"))  # it started from $BERT_BASE_DIR/bert_model.ckpt
    np.testing.assert_array_equal(first.get_tensor("bert/encoder/layer_1/output/dense/kernel"),
                                  trained["bert/encoder/layer_1/output/dense/kernel"])
    info = json.loads((folder / "model_info.json").read_text())
    assert info["vocab_file"] is None and info["task"] == "pretraining"
    assert not (folder / "vocab.txt").exists()
    with pytest.raises(UserInputError, match="the vocab is unknown .*vocab.txt"):
        model_folder.TrainedModel.load(str(folder))


def test_google_flags_of_the_pretraining_scripts():
    """Every flag of Google's create_pretraining_data.py and run_pretraining.py is defined, with Google's
    default (--do_whole_word_mask: absent keeps this project's --word_boundaries)."""
    for script, defaults in GOOGLE_FLAGS.items():
        for name, default in defaults.items():
            assert name in FLAGS, f"{script}: --{name} is not defined"
            assert FLAGS[name].default == default, f"{script}: --{name} defaults to {FLAGS[name].default!r}"
    for name, default in GOOGLE_TPU_FLAGS.items():
        assert name in FLAGS, f"run_pretraining: --{name} is not defined"
        assert FLAGS[name].default == default, f"--{name} defaults to {FLAGS[name].default!r}"


def create(argv):
    FLAGS.unparse_flags()
    FLAGS(["create_pretraining_data"] + [str(arg) for arg in argv])
    create_pretraining_data.main([])


def test_output_file_list_whole_word_mask_and_training_on_a_glob(tmp_path, vocab_file):
    """Google's --output_file=a,b (records spread over the files, the meta file beside them), its
    --do_whole_word_mask both ways, and run_pretraining reading the files by a glob or a list."""
    text = corpus(tmp_path / "c.txt", documents=12, sentences=12, seed=3)
    common = [f"--input_file={text}", f"--vocab_file={vocab_file}", "--max_seq_length=32",
              "--max_predictions_per_seq=5", "--dupe_factor=4", "--short_seq_prob=0.2", "--num_workers=1"]
    units_split = {}
    for whole in ("true", "false"):
        folder = tmp_path / whole
        create(common + [f"--output_file={folder / 'a.tfrecord'},{folder / 'b.tfrecord'}",
                         f"--do_whole_word_mask={whole}"])
        assert sorted(os.listdir(folder)) == ["a.tfrecord", "b.tfrecord", "pretrain_meta.json"]
        meta = json.loads((folder / "pretrain_meta.json").read_text())
        a, b = records(folder / "a.tfrecord"), records(folder / "b.tfrecord")
        assert abs(len(a) - len(b)) <= 1 and len(a) + len(b) == meta["summary"]["instances"] > 20
        assert meta["settings"]["word_boundaries"] == ("wordpiece" if whole == "true" else "none")
        assert meta["settings"]["short_seq_prob"] == 0.2
        # A word split into pieces ("un ##want ##ed"), masked in part?
        tokenizer = tokenization.FullTokenizer(str(vocab_file))
        split = 0
        for row in a + b:
            ids = list(row["input_ids"])
            count = int(sum(row["masked_lm_weights"]))
            positions = row["masked_lm_positions"][:count]
            for position, original in zip(positions, row["masked_lm_ids"][:count]):
                ids[position] = original
            tokens = tokenizer.convert_ids_to_tokens([i for i in ids if i])
            for unit in units_of(tokens):
                if len(unit) > 1 and 0 < len(set(unit) & set(positions)) < len(unit):
                    split += 1
        units_split[whole] = split
        for spec in (f"{folder}/*.tfrecord", f"{folder / 'b.tfrecord'},{folder / 'a.tfrecord'}"):
            data = run_pretraining.pretraining_data(spec, max_seq_length=32)
            assert data.paths == [str(folder / "a.tfrecord"), str(folder / "b.tfrecord")]
            assert (data.max_seq_length, data.max_predictions_per_seq, data.next_sentence) == (32, 5, True)
    assert units_split == {"true": 0, "false": units_split["false"]} and units_split["false"] > 5

    # Google's --max_seq_length / --max_predictions_per_seq must match the data, as in its run_pretraining.
    with pytest.raises(UserInputError, match=r"^--max_predictions_per_seq=20 but the data has 5 "):
        run_pretraining.pretraining_data(str(tmp_path / "true" / "a.tfrecord"), 32, 20)
    # Files made elsewhere (no pretrain_meta.json beside them, as Google's) are read as they are.
    os.remove(tmp_path / "false" / "pretrain_meta.json")
    assert run_pretraining.pretraining_data(str(tmp_path / "false" / "a.tfrecord")).max_seq_length == 32
    with pytest.raises(UserInputError, match="no pretrain_meta.json"):
        run_pretraining.pretraining_data(str(tmp_path / "false"))


@pytest.mark.parametrize("extra, message", [
    (["--output_dir={tmp}/d", "--output_file={tmp}/d/x.tfrecord"], r"^give --output_dir or --output_file, not both$"),
    (["--output_file={tmp}/d/x.tfrecord,{tmp}/e/y.tfrecord"], r"^the output files are in 2 folders "),
    (["--output_file={tmp}/d/x.tfrecord", "--num_shards=3"], r"^--num_shards=3 but --output_file names 1 file"),
    (["--output_dir={tmp}/d", "--do_whole_word_mask=false", "--word_boundaries=spaces"],
     r"^--do_whole_word_mask=false means --word_boundaries=none, but --word_boundaries=spaces is given"),
    ([], r"^missing required flag: --output_dir \(or Google's --output_file\)$"),
])
def test_output_flag_errors(tmp_path, vocab_file, extra, message):
    text = corpus(tmp_path / "c.txt", documents=2)
    with pytest.raises(UserInputError, match=message):
        create([f"--input_file={text}", f"--vocab_file={vocab_file}"] + [e.format(tmp=tmp_path) for e in extra])
    assert not (tmp_path / "d").exists() and not (tmp_path / "e").exists()


# A create_pretraining_data.py run killed (SIGKILL, no clean-up) part-way through writing its second shard.
KILLED_CREATE = """
import os, signal, sys
sys.path.insert(0, {repo!r})
from bert import input_pipeline
import create_pretraining_data
from bert.errors import run_main
write = input_pipeline.write_tfrecord
calls = []
def write_then_die(path, rows):
    calls.append(path)
    if len(calls) < 2:
        return write(path, rows)
    def rows_then_die():
        for index, row in enumerate(rows):
            if index == 3:
                os.kill(os.getpid(), signal.SIGKILL)
            yield row
    return write(path, rows_then_die())
input_pipeline.write_tfrecord = write_then_die
sys.argv = ["create_pretraining_data.py"] + sys.argv[1:]
run_main(create_pretraining_data.main)
"""


def test_interrupted_data_over_an_old_folder_is_never_trusted(tmp_path, vocab_file):
    """Issue 12 item 7: a run killed while writing over an earlier run's folder leaves a folder that
    run_pretraining refuses (never a mix of old and new shards); a finished run's meta file lists its
    shards with their sizes and digests, and nothing else is picked up."""
    text = corpus(tmp_path / "c.txt", documents=10, sentences=10)
    data = tmp_path / "data"
    common = [f"--input_file={text}", f"--vocab_file={vocab_file}", "--max_seq_length=32",
              "--max_predictions_per_seq=5", "--dupe_factor=2", "--num_workers=1"]
    create(common + [f"--output_dir={data}", "--num_shards=2", "--random_seed=1"])
    old = {name: (data / name).read_bytes() for name in os.listdir(data) if name.endswith(".tfrecord")}
    assert len(old) == 2
    run_pretraining.pretraining_data(str(data))  # a finished folder is read

    # Killed while writing shard 2 of 2 with another seed: shard 1 is new, shard 2 still the old run's.
    killed = subprocess.run([sys.executable, "-c", KILLED_CREATE.format(repo=REPO)] + common
                            + [f"--output_dir={data}", "--num_shards=2", "--random_seed=2"],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    first, second = sorted(old)
    assert (data / first).read_bytes() != old[first] and (data / second).read_bytes() == old[second]
    assert any(".tmp-" in name for name in os.listdir(data))  # the half-written second shard
    for spec in (str(data), f"{data}/*.tfrecord", str(data / first)):
        with pytest.raises(UserInputError, match="did not finish"):
            run_pretraining.pretraining_data(spec)
    FLAGS.unparse_flags()
    FLAGS(["run_pretraining", "--do_train"] + pretrain_args(tmp_path, data, tmp_path / "run"))
    with pytest.raises(UserInputError, match="did not finish"):
        run_pretraining.main([])
    assert not (tmp_path / "run").exists()

    # Rerun with fewer shards over a folder that has four: only the new run's two are listed and left.
    create(common + [f"--output_dir={data}", "--num_shards=4", "--random_seed=3"])
    create(common + [f"--output_dir={data}", "--num_shards=2", "--random_seed=4"])
    assert sorted(os.listdir(data)) == [".lock", "pretrain-00000-of-00002.tfrecord", "pretrain-00001-of-00002.tfrecord",
                                        "pretrain_meta.json"]
    meta = json.loads((data / "pretrain_meta.json").read_text())
    assert meta["complete"] is True and sorted(meta["shard_files"]) == meta["shards"]
    for name, entry in meta["shard_files"].items():
        assert entry["bytes"] == os.path.getsize(data / name) and entry["records"] == len(records(data / name))
        assert entry["sha256"] == pretraining_data.sha256_of(data / name)
    assert run_pretraining.pretraining_data(str(data)).paths == [str(data / name) for name in meta["shards"]]

    # A shard left from another run beside them is never picked up by a pattern.
    stale = data / "pretrain-00003-of-00004.tfrecord"
    stale.write_bytes(old[first])
    assert len(run_pretraining.pretraining_data(str(data)).paths) == 2
    with pytest.raises(UserInputError, match=r"pretrain-00003-of-00004.tfrecord: not a shard .*_meta.json lists"):
        run_pretraining.pretraining_data(f"{data}/*.tfrecord")
    stale.unlink()

    # A shard that is not the one the meta file describes: another size, or the same size and other bytes.
    shard = data / "pretrain-00001-of-00002.tfrecord"
    content = shard.read_bytes()
    shard.write_bytes(content[:-10])
    with pytest.raises(UserInputError, match=r"pretrain-00001-of-00002.tfrecord: \d+ bytes where .* records \d+"):
        run_pretraining.pretraining_data(str(data))
    shard.write_bytes(content[:-1] + bytes([content[-1] ^ 1]))
    with pytest.raises(UserInputError, match="sha256 differs"):
        run_pretraining.pretraining_data(f"{data}/pretrain-*.tfrecord")
    shard.write_bytes(content)
    assert len(run_pretraining.pretraining_data(str(data)).paths) == 2

    # A meta file without sizes and digests (as the earlier create_pretraining_data.py wrote) vouches for nothing.
    old_style = {k: v for k, v in meta.items() if k not in ("format", "complete", "shard_files")}
    (data / "pretrain_meta.json").write_text(json.dumps(old_style))
    with pytest.raises(UserInputError, match="no shard sizes and digests"):
        run_pretraining.pretraining_data(str(data))
