"""m3e-small, converted by `make chinese-model`, against outputs of its own libraries (../shared/data/m3e_reference).

The reference (see its SOURCE.txt) was made with Hugging Face transformers (BertModel) and sentence-transformers
(mean pooling) on 20 texts: ids and mask from the model's own tokenizer.json padded to 32, the last hidden
states, the pooler output, and the mean of the real tokens' hidden states. m3e-small is for research use only,
not commercial use (M3E model card). Skipped when models/m3e-small (opt-in: `make chinese-model`) or the shared
data is absent; CI does neither.
"""
import os

import numpy as np
import pytest
import tensorflow as tf

from bert import checkpoint, modeling, tokenization
from conftest import REPO, run_in_graph, shared_path

MODEL_DIR = os.path.join(REPO, "models", "m3e-small")
SEQ_LENGTH = 32


@pytest.fixture(scope="module")
def reference():
    path = shared_path("m3e_reference", "m3e_small_reference.npz")
    if not os.path.exists(os.path.join(MODEL_DIR, "bert_config.json")):
        pytest.skip(f"{MODEL_DIR} is absent: `make chinese-model` converts m3e-small (research use only) into it")
    return np.load(path, allow_pickle=False)


def test_tokenizer_gives_the_models_own_ids(reference):
    do_lower_case = checkpoint.read_lower_case(MODEL_DIR)
    assert do_lower_case is False  # recorded from tokenizer.json's BertNormalizer ("lowercase": false)
    tokenizer = tokenization.FullTokenizer(os.path.join(MODEL_DIR, "vocab.txt"), do_lower_case=do_lower_case)
    mismatches = []
    for text, expected, mask in zip(reference["texts"], reference["input_ids"], reference["attention_mask"]):
        tokens = ["[CLS]"] + tokenizer.tokenize(str(text)) + ["[SEP]"]
        assert len(tokens) <= SEQ_LENGTH, text  # the reference was padded, never truncated
        ids = tokenizer.convert_tokens_to_ids(tokens)
        if ids + [0] * (SEQ_LENGTH - len(ids)) != expected.tolist() or len(ids) != mask.sum():
            mismatches.append((str(text), tokens, expected[:mask.sum()].tolist()))
    assert len(reference["texts"]) == 20 and not mismatches


def test_vocab_is_googles_chinese_vocab(reference):
    google = shared_path("bert_chinese", "vocab.txt")
    with open(os.path.join(MODEL_DIR, "vocab.txt"), "rb") as ours, open(google, "rb") as theirs:
        assert ours.read() == theirs.read()  # written from tokenizer.json in id order: byte for byte the same


def test_hidden_states_and_mean_pooled_embeddings_match(reference):
    config = modeling.BertConfig.from_json_file(os.path.join(MODEL_DIR, "bert_config.json"))
    assert config.hidden_act == "gelu_exact"  # Hugging Face's "gelu" is the erf form
    input_ids = reference["input_ids"]  # [20, 32]

    def build():
        model = modeling.BertModel(config, False, tf.constant(input_ids), tf.constant(reference["attention_mask"]),
                                   tf.zeros_like(input_ids))
        report = checkpoint.init_from_checkpoint(MODEL_DIR)
        assert not report.not_in_checkpoint and not report.unused_in_checkpoint
        return model.get_sequence_output(), model.get_pooled_output()

    sequence, pooled = run_in_graph(build)  # [20, 32, 512], [20, 512]
    mask = reference["attention_mask"].astype(bool)
    # Padding positions are excluded: their values are never used and differ between implementations.
    np.testing.assert_allclose(sequence[mask], reference["last_hidden_state"][mask], rtol=0, atol=1e-4)
    weights = mask[..., None].astype(np.float32)
    embedding = (sequence * weights).sum(1) / weights.sum(1)  # sentence-transformers' mean pooling, not normalised
    np.testing.assert_allclose(embedding, reference["sentence_embedding"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(pooled, reference["pooler_output"], rtol=0, atol=1e-4)
