"""Token classification (bert/tagging.py): whole-word windows, features, training with softmax and CRF."""
import random

import numpy as np
import pytest
import tensorflow as tf

from bert import estimator, input_pipeline, model_fn, optimization, tagging, tasks, tokenization
from conftest import tiny_config

WORDS = ["alpha", "beta", "gamma", "delta", "x", "y", "z", "北", "京"]


@pytest.fixture
def tokenizer(tmp_path):
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "alpha", "beta", "gam", "##ma", "del", "##ta", "x", "y",
             "z", "北", "京"]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    return tokenization.FullTokenizer(str(tmp_path / "vocab.txt"))


def test_windows_cover_every_word_once_with_most_context():
    counts = [1, 2, 1, 3, 1, 1, 2, 1, 1]
    found = tagging.windows(counts, room=5, stride=2)
    starts = np.concatenate([[0], np.cumsum(counts)])
    assert found[0].first_word == 0 and found[-1].first_word + found[-1].words == len(counts)
    for window in found:
        assert window.words >= 1 and starts[window.first_word + window.words] - starts[window.first_word] <= 5
    assert [w.first_word for w in found] == sorted({w.first_word for w in found})  # strictly forward
    for word in range(len(counts)):
        owner = found[tagging.max_context(found, word)]
        assert owner.first_word <= word < owner.first_word + owner.words
    assert tagging.windows([7], room=5, stride=2) == [tagging.Window(0, 1)]  # one word too long: alone
    assert tagging.windows([], room=5, stride=2) == [tagging.Window(0, 0)]


def test_features_point_at_each_words_first_piece(tokenizer):
    task = tasks.TokenClassificationTask(["O", "B-X", "I-X"], tokenizer, max_seq_length=8, stride=3)
    words = ["gamma", "alpha", "delta", "北", "\x00", "京", "beta"]
    tags = ["B-X", "I-X", "O", "O", "O", "B-X", "O"]
    features = task.convert(tagging.TaggedWords(words, tags), training=True)
    assert len(features) > 1
    owners = []
    for feature in features:
        ids = feature["input_ids"]
        tokens = tokenizer.convert_ids_to_tokens(ids[:sum(feature["input_mask"])])
        assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]" and len(ids) == 8
        for j in range(feature["word_count"]):
            word = words[feature["first_word"] + j]
            assert tokens[feature["word_positions"][j]] == (tokenizer.tokenize(word) or ["[UNK]"])[0]
            assert task.labels[feature["word_labels"][j]] == tags[feature["first_word"] + j]
            if feature["word_is_max_context"][j]:
                owners.append(feature["first_word"] + j)
    assert sorted(owners) == list(range(len(words)))  # every word tagged by exactly one window
    empty, = task.convert(tagging.TaggedWords([], []), training=True)
    assert empty["word_count"] == 0 and sum(empty["input_mask"]) == 2


@pytest.mark.parametrize("use_crf", [False, True])
def test_learns_to_tag_and_merges_windows(tmp_path, tokenizer, use_crf):
    # Tag rule: "alpha" starts an X entity and the words after it up to "z" continue it; "北" is a Y.
    rng = random.Random(0)

    def tagged():
        words = [rng.choice(WORDS) for _ in range(rng.randint(3, 12))]
        tags, inside = [], False
        for word in words:
            if word == "alpha":
                tags.append("B-X")
                inside = True
            elif word == "北":
                tags.append("B-Y")
                inside = False
            elif inside and word != "z":
                tags.append("I-X")
            else:
                tags.append("O")
                inside = False
        return tagging.TaggedWords(words, tags)

    sentences = [tagged() for _ in range(64)]
    labels = tagging.tag_list(s.tags for s in sentences)
    task = tasks.TokenClassificationTask(labels, tokenizer, max_seq_length=10, use_crf=use_crf, stride=4)
    cache = input_pipeline.FeatureCache(str(tmp_path / "cache"), {})
    path, count = cache.features(task, sentences, "train", training=True)
    assert count > len(sentences)  # long sentences became several windows
    config = tiny_config(vocab_size=16, max_position_embeddings=10)
    settings = estimator.RunSettings(str(tmp_path / "model"), save_checkpoints_steps=1000)
    optimizer = optimization.OptimizerConfig(learning_rate=3e-3, num_train_steps=300, num_warmup_steps=20)
    bert = estimator.build_estimator(model_fn.model_fn_builder(task, config, None, optimizer), settings)
    bert.train(input_pipeline.tfrecord_input_fn_builder(path, task.feature_spec(True), 16, True, seed=1),
               max_steps=300)
    arrays = cache.arrays(task, [tagging.TaggedWords(s.words) for s in sentences], "predict")
    batches = list(bert.predict(input_pipeline.array_input_fn_builder(arrays, 32), yield_single_examples=False))
    predictions = {name: np.concatenate([b[name] for b in batches]) for name in batches[0]}
    merged = task.merge([len(s.words) for s in sentences], predictions)
    right = sum(p == g for s, tags in zip(sentences, merged) for p, g in zip(tags, s.tags))
    total = sum(len(s.words) for s in sentences)
    assert right / total > 0.95, (right, total)
