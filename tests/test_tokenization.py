import json

import pytest

from bert import tokenization
from bert.errors import UserInputError
from conftest import shared_path

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "un", "##want", "##ed", "want", "runn",
         "##ing", ",", ".", "!", "cafe", "caf", "##é", "hello", "中", "国", "人", "a", "##a", "x"]


@pytest.fixture
def vocab_file(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    return str(path)


def test_vocab_ids_follow_line_numbers(vocab_file):
    vocab = tokenization.load_vocab(vocab_file)
    assert vocab["[PAD]"] == 0 and vocab["x"] == len(VOCAB) - 1 and len(vocab) == len(VOCAB)


def test_basic_tokenizer_cleans_splits_and_lowercases():
    basic = tokenization.BasicTokenizer(do_lower_case=True)
    # control characters and NUL are dropped; tabs, newlines and no-break spaces separate words
    assert basic.tokenize("  HeLLo!\tWorld\x00\u200b?\u00a0ok\r\n") == ["hello", "!", "world", "?", "ok"]
    assert basic.tokenize("Café RÉSUMÉ naïve") == ["cafe", "resume", "naive"]
    assert basic.tokenize("我爱ab中国") == ["我", "爱", "ab", "中", "国"]
    assert basic.tokenize("日本語かな") == ["日", "本", "語", "かな"]  # kana are not split
    assert basic.tokenize("$5.00^`x`") == ["$", "5", ".", "00", "^", "`", "x", "`"]
    assert basic.tokenize(b"bytes \xe4\xb8\xad") == ["bytes", "中"]
    assert basic.tokenize("") == [] and basic.tokenize(" \t\n") == []


def test_basic_tokenizer_keeps_case_and_accents_when_cased():
    basic = tokenization.BasicTokenizer(do_lower_case=False)
    assert basic.tokenize("Café, RÉSUMÉ.") == ["Café", ",", "RÉSUMÉ", "."]


def test_wordpiece_greedy_longest_match_first(vocab_file):
    wordpiece = tokenization.WordpieceTokenizer(tokenization.load_vocab(vocab_file))
    assert wordpiece.tokenize("unwanted running") == ["un", "##want", "##ed", "runn", "##ing"]
    assert wordpiece.tokenize("unwantedX") == ["[UNK]"]  # a word that cannot be covered is one [UNK]
    assert wordpiece.tokenize("a" * 200) == ["a"] + ["##a"] * 199
    assert wordpiece.tokenize("a" * 201) == ["[UNK]"]  # over 200 characters


def test_full_tokenizer_round_trip(vocab_file):
    tokenizer = tokenization.FullTokenizer(vocab_file, do_lower_case=True)
    tokens = tokenizer.tokenize("UNwanted, running! 中国人 Café")
    assert tokens == ["un", "##want", "##ed", ",", "runn", "##ing", "!", "中", "国", "人", "cafe"]
    ids = tokenizer.convert_tokens_to_ids(tokens)
    assert ids[:3] == [6, 7, 8]
    assert tokenizer.convert_ids_to_tokens(ids) == tokens
    # the cache must not change the answer the second time
    assert tokenizer.tokenize("UNwanted, running! 中国人 Café") == tokens
    cased = tokenization.FullTokenizer(vocab_file, do_lower_case=False)
    assert cased.tokenize("café") == ["caf", "##é"] and cased.tokenize("Café") == ["[UNK]"]
    with pytest.raises(KeyError, match="not in the vocab"):
        tokenizer.convert_tokens_to_ids(["nope"])


def test_vocab_errors_name_the_file_and_line(tmp_path):
    with pytest.raises(UserInputError, match="vocab file not found"):
        tokenization.load_vocab(str(tmp_path / "none.txt"))
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"[PAD]\n[UNK]\nok\n\xff\xfe\n")
    with pytest.raises(UserInputError, match=r"bad.txt, line 4: not UTF-8"):
        tokenization.load_vocab(str(bad))


def test_whitespace_tokenizer_maps_unknown_to_unk(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n17\n42\nfoo\n", encoding="utf-8")
    tokenizer = tokenization.WhitespaceTokenizer(str(vocab))
    tokens = tokenizer.tokenize("17 42 99 foo\tFOO")
    assert tokens == ["17", "42", "[UNK]", "foo", "[UNK]"]
    assert tokenizer.convert_tokens_to_ids(tokens) == [4, 5, 1, 6, 1]
    assert tokenization.WhitespaceTokenizer(str(vocab), do_lower_case=True).tokenize("FOO") == ["foo"]


def test_sentencepiece_tokenizer_with_a_model_trained_here(tmp_path):
    import sentencepiece

    corpus = tmp_path / "corpus.txt"
    lines = [f"the quick brown fox number {i} jumps over the lazy dog" for i in range(200)]
    lines += ["自然语言处理很有意思", "我们今天学习分词"] * 20
    corpus.write_text("\n".join(lines), encoding="utf-8")
    prefix = str(tmp_path / "spm")
    sentencepiece.SentencePieceTrainer.Train(
        input=str(corpus), model_prefix=prefix, vocab_size=80, character_coverage=1.0,
        user_defined_symbols=["[CLS]", "[SEP]", "[MASK]"], pad_id=0, unk_id=1, bos_id=-1, eos_id=-1,
        pad_piece="[PAD]", unk_piece="[UNK]", minloglevel=2)
    tokenizer = tokenization.SentencePieceTokenizer(prefix + ".model", do_lower_case=True)
    tokens = tokenizer.tokenize("The lazy fox 分词")
    assert "".join(tokens).replace("\u2581", " ").strip() == "the lazy fox 分词"
    ids = tokenizer.convert_tokens_to_ids(tokens)
    assert tokenizer.convert_ids_to_tokens(ids) == tokens
    assert tokenizer.convert_tokens_to_ids(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]) == [0, 1, 2, 3, 4]
    with pytest.raises(UserInputError, match="SentencePiece model file not found"):
        tokenization.SentencePieceTokenizer(str(tmp_path / "none.model"))


@pytest.mark.parametrize("lower, checkpoint, warns", [
    (False, "/m/uncased_L-12_H-768_A-12/bert_model.ckpt", True),
    (True, "/m/uncased_L-12_H-768_A-12/bert_model.ckpt", False),
    (True, "/m/cased_L-12_H-768_A-12/bert_model.ckpt", True),
    (True, "/m/multi_cased_L-12_H-768_A-12/bert_model.ckpt", True),
    (False, "/m/chinese_L-12_H-768_A-12/bert_model.ckpt", True),
    (False, "/m/my_model/bert_model.ckpt", False),
])
def test_case_warning_from_checkpoint_name(lower, checkpoint, warns):
    message = tokenization.validate_case_matches_checkpoint(lower, checkpoint)
    assert (message is not None) == warns
    if warns:
        assert f"do_lower_case={lower}" in message


@pytest.mark.parametrize("vocab_name", ["uncased", "chinese"])
@pytest.mark.parametrize("lower", [True, False])
def test_google_reference_token_for_token(vocab_name, lower):
    cases_path = shared_path("tokenization_reference", "google_tokenizer_cases.jsonl")
    vocab = (shared_path("tokenization_reference", "vocab_uncased.txt") if vocab_name == "uncased"
             else shared_path("bert_chinese", "vocab.txt"))
    tokenizer = tokenization.FullTokenizer(vocab, do_lower_case=lower)
    key = f"{vocab_name}_lower={lower}"
    with open(cases_path, encoding="utf-8") as reader:
        cases = [json.loads(line) for line in reader]
    mismatches = [case["text"][:60] for case in cases if tokenizer.tokenize(case["text"]) != case[key]]
    assert len(cases) == 2530
    assert mismatches == []
