"""Pretraining data, vocab building, and run_pretraining (loss falls, continuation, kill and resume)."""
import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from absl import flags

import create_pretraining_data
import run_pretraining
from bert import checkpoint, pretraining_data, tokenization, vocab
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
