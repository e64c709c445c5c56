"""bert/ner.py: tag schemes, the NER file readers and writers, and entity scores (checked against seqeval)."""
import collections
import json
import os
import warnings

import numpy as np
import pytest

from bert import ner
from bert.errors import UserInputError
from tests.conftest import shared_path

TYPES = ("PER", "LOC", "ORG")


def write(tmp_path, name, content, newline="\n"):
    path = tmp_path / name
    path.write_bytes(content.replace("\n", newline).encode("utf-8") if isinstance(content, str) else content)
    return str(path)


def error_of(call, *args, **kwargs):
    with pytest.raises(UserInputError) as caught:
        call(*args, **kwargs)
    return str(caught.value)


def random_entities(rng, n_words, types=TYPES):
    """Non-overlapping (type, first, last) entities, adjacent ones of one type included."""
    entities, index = [], 0
    while index < n_words:
        if rng.rand() < 0.45:
            last = min(n_words - 1, index + rng.randint(0, 3))
            entities.append((types[rng.randint(len(types))], index, last))
            index = last + 1
        else:
            index += 1
    return entities


def random_bio(rng, n_words, types=TYPES):
    """Free-form B/I/O tags: I- after O and type switches are frequent."""
    choices = ["O"] + [f"{prefix}-{kind}" for prefix in "BI" for kind in types]
    weights = np.array([4.0] + [1.0] * (len(choices) - 1))
    return [choices[i] for i in rng.choice(len(choices), size=n_words, p=weights / weights.sum())]


def perturb(rng, tags, types=TYPES):
    """A 'prediction': gold tags with some changed, so that some entities match and some do not."""
    result = list(tags)
    for index in range(len(result)):
        if rng.rand() < 0.2:
            result[index] = random_bio(rng, 1, types)[0]
    return result


# --- Tag schemes ----------------------------------------------------------------------------------

def test_tags_that_do_not_fit_the_scheme_are_named():
    for tag, scheme in (("X-PER", "BIO"), ("E-LOC", "BIO"), ("S-LOC", "IOB1"), ("M-LOC", "BIOES"),
                        ("I-LOC", "BMES"), ("b-PER", "BIO"), ("PER", "BIO"), ("", "BIO")):
        message = error_of(ner.tags_to_entities, ["O", tag], scheme)
        assert repr(tag) in message and scheme in message
    assert "no entity type" in error_of(ner.tags_to_entities, ["B-"], "BIO")
    assert "IOBES" in error_of(ner.tags_to_entities, ["O"], "IOBES")
    assert "BMES" in error_of(ner.entities_to_tags, 3, [], "IOBES")  # the message lists the schemes


def test_lenient_chunking_and_implicit_starts():
    tags = ["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-ORG", "I-ORG", "B-ORG", "I-ORG"]
    expected = [("PER", 0, 1), ("LOC", 3, 3), ("LOC", 4, 4), ("ORG", 5, 6), ("ORG", 7, 8)]
    assert ner.tags_to_entities(tags, "BIO") == expected
    assert ner.count_implicit_starts(tags, "BIO") == 3  # I-PER first, I-LOC after O, I-ORG after B-LOC
    assert ner.tags_to_entities(tags, "IOB1") == expected
    assert ner.count_implicit_starts(tags, "IOB1") == 0  # I- is IOB1's ordinary start
    bioes = ["B-PER", "E-PER", "S-LOC", "I-LOC", "E-LOC", "E-LOC", "B-ORG", "O", "B-PER", "I-PER"]
    assert ner.tags_to_entities(bioes, "BIOES") == [("PER", 0, 1), ("LOC", 2, 2), ("LOC", 3, 4), ("LOC", 5, 5),
                                                    ("ORG", 6, 6), ("PER", 8, 9)]
    assert ner.count_implicit_starts(bioes, "BIOES") == 2  # I-LOC after S-, E-LOC after E-
    bmes = [tag.replace("I-", "M-") for tag in bioes]
    assert ner.tags_to_entities(bmes, "BMES") == ner.tags_to_entities(bioes, "BIOES")
    assert ner.tags_to_entities([], "BIO") == []


def test_entities_to_tags_in_every_scheme():
    entities = [("PER", 0, 1), ("PER", 2, 2), ("LOC", 3, 5), ("ORG", 7, 7)]
    assert ner.entities_to_tags(8, entities, "BIO") == [
        "B-PER", "I-PER", "B-PER", "B-LOC", "I-LOC", "I-LOC", "O", "B-ORG"]
    assert ner.entities_to_tags(8, entities, "IOB1") == [
        "I-PER", "I-PER", "B-PER", "I-LOC", "I-LOC", "I-LOC", "O", "I-ORG"]
    assert ner.entities_to_tags(8, entities, "BIOES") == [
        "B-PER", "E-PER", "S-PER", "B-LOC", "I-LOC", "E-LOC", "O", "S-ORG"]
    assert ner.entities_to_tags(8, entities[::-1], "BMES") == [
        "B-PER", "E-PER", "S-PER", "B-LOC", "M-LOC", "E-LOC", "O", "S-ORG"]
    assert "overlap" in error_of(ner.entities_to_tags, 5, [("PER", 0, 2), ("LOC", 2, 3)], "BIO")
    assert "outside" in error_of(ner.entities_to_tags, 3, [("PER", 2, 3)], "BIO")
    assert "type" in error_of(ner.entities_to_tags, 3, [("", 0, 0)], "BIO")


@pytest.mark.parametrize("scheme", ner.SCHEMES)
def test_round_trip_entities_tags_entities(scheme):
    rng = np.random.RandomState(7)
    for _ in range(300):
        n_words = rng.randint(0, 14)
        entities = random_entities(rng, n_words)
        tags = ner.entities_to_tags(n_words, entities, scheme)
        assert ner.tags_to_entities(tags, scheme) == entities
        assert ner.count_implicit_starts(tags, scheme) == 0


def test_conversion_between_schemes_keeps_entities():
    rng = np.random.RandomState(3)
    for _ in range(100):
        tags = random_bio(rng, rng.randint(1, 12))  # with I- after O: conversion makes the starts explicit
        entities = ner.tags_to_entities(tags, "BIO")
        for target in ner.SCHEMES:
            converted = ner.convert_tags(tags, "BIO", target)
            assert ner.tags_to_entities(converted, target) == entities
            for back in ner.SCHEMES:
                assert ner.convert_tags(converted, target, back) == ner.entities_to_tags(len(tags), entities, back)
    assert ner.convert_tags(["I-PER", "I-PER", "O"], "BIO", "BIOES") == ["B-PER", "E-PER", "O"]
    assert ner.convert_tags(["I-PER", "B-PER"], "IOB1", "BIO") == ["B-PER", "B-PER"]


@pytest.mark.parametrize("scheme", ner.SCHEMES)
def test_chunking_equals_seqeval_get_entities(scheme):
    sequence_labeling = pytest.importorskip(
        "seqeval.metrics.sequence_labeling", reason="seqeval is a test requirement (requirements-test.txt)")
    rng = np.random.RandomState(11)
    prefixes = {"BIO": "BI", "IOB1": "BI", "BIOES": "BIES", "BMES": "BMES"}[scheme]
    choices = ["O"] + [f"{prefix}-{kind}" for prefix in prefixes for kind in TYPES]
    for _ in range(400):
        tags = [choices[i] for i in rng.randint(0, len(choices), size=rng.randint(0, 12))]
        for_seqeval = [tag.replace("M-", "I-") for tag in tags]
        assert ner.tags_to_entities(tags, scheme) == sequence_labeling.get_entities(for_seqeval)


def test_drop_overlapping_keeps_the_longest():
    kept, dropped = ner.drop_overlapping([("company", 1, 4), ("book", 0, 19), ("company", 8, 11), ("name", 21, 22)])
    assert kept == [("book", 0, 19), ("name", 21, 22)]
    assert sorted(dropped) == [("company", 1, 4), ("company", 8, 11)]


# --- Readers --------------------------------------------------------------------------------------

CONLL = ("-DOCSTART- -X- -X- O\n"
         "\n"
         "EU\tNNP\tB-NP\tB-ORG\n"
         "rejects\tVBZ\tB-VP\tO\n"
         "German\tJJ\tB-NP\tB-MISC\n"
         "call\tNN\tI-NP\tO\n"
         "\n"
         "\n"
         "Peter NNP B-NP I-PER\n"
         "Blackburn NNP I-NP I-PER\n"
         "in IN B-PP O\n"
         "New NNP B-NP I-LOC\n"
         "York NNP I-NP I-LOC")  # no newline at the end


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_read_conll(tmp_path, newline):
    path = write(tmp_path, "train.txt", CONLL, newline)
    first, second = ner.read_conll(path)
    assert first.text == "EU rejects German call"
    assert first.words == ["EU", "rejects", "German", "call"]
    assert first.spans == [(0, 2), (3, 10), (11, 17), (18, 22)]
    assert first.entities == [ner.Entity(0, 2, "ORG"), ner.Entity(11, 17, "MISC")]
    assert first.tags == ["B-ORG", "O", "B-MISC", "O"]
    assert first.source == f"{path}:3"
    assert first.extra["columns"][0] == ["EU", "NNP", "B-NP", "B-ORG"] and first.extra["separator"] == "\t"
    assert second.source == f"{path}:9" and second.text == "Peter Blackburn in New York"
    assert [second.text[e.start:e.end] for e in second.entities] == ["Peter Blackburn", "New York"]
    assert ner.count_implicit_starts(second.tags) == 2
    # The chunk column read as the tags.
    chunks = ner.read_conll(path, tag_column=2)
    assert [(e.type, chunks[0].text[e.start:e.end]) for e in chunks[0].entities] == [
        ("NP", "EU"), ("VP", "rejects"), ("NP", "German call")]
    assert ner.read_conll(path, tag_column=-2) == chunks


def test_read_conll_bad_input(tmp_path):
    path = write(tmp_path, "a.txt", "EU B-ORG\nrejects O\n\nPeter NNP B-PER\nBlackburn I-PER\n")
    message = error_of(ner.read_conll, path)
    assert message.startswith(f"{path}:5:") and "line 4" in message and "3" in message
    path = write(tmp_path, "b.txt", "EU B-ORG\n\nrejects\n")
    assert error_of(ner.read_conll, path).startswith(f"{path}:3: expected a word and a tag")
    path = write(tmp_path, "c.txt", "EU NNP B-ORG\nrejects VBZ O\n")
    assert error_of(ner.read_conll, path, tag_column=3).startswith(f"{path}:1: tag column 3 does not exist")
    assert "word column" in error_of(ner.read_conll, path, tag_column=-3)
    path = write(tmp_path, "d.txt", "EU B-ORG\nrejects O\n\nEU X-ORG\n")
    message = error_of(ner.read_conll, path)
    assert message.startswith(f"{path}:4:") and "'X-ORG'" in message
    path = write(tmp_path, "e.txt", "EU S-ORG\n")
    assert error_of(ner.read_conll, path, scheme="BIO").startswith(f"{path}:1: tag 'S-ORG'")
    assert ner.read_conll(path, scheme="BIOES")[0].entities == [ner.Entity(0, 2, "ORG")]
    path = write(tmp_path, "f.txt", b"EU B-ORG\nM\xfcnchen B-LOC\n")
    assert error_of(ner.read_conll, path).startswith(f"{path}:2: byte 0xfc is not valid UTF-8")
    missing = str(tmp_path / "missing.txt")
    assert error_of(ner.read_conll, missing) == f"{missing}: no such file"


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_read_char_bio(tmp_path, newline):
    content = "北\tB-LOC\n京\tI-LOC\n\u3000\tO\n欢\tO\n\n\n张 B-PER\n三 I-PER\n  O\n好 O"
    path = write(tmp_path, "msra.txt", content, newline)
    first, second = ner.read_char_bio(path)
    assert first.text == "北京\u3000欢" and first.words == ["北", "京", "\u3000", "欢"]
    assert first.spans == [(0, 1), (1, 2), (2, 3), (3, 4)]
    assert first.entities == [ner.Entity(0, 2, "LOC")] and first.source == f"{path}:1"
    assert second.text == "张三 好" and second.words == ["张", "三", " ", "好"]  # a space character is a word
    assert second.entities == [ner.Entity(0, 2, "PER")] and second.source == f"{path}:7"
    assert second.tags == ["B-PER", "I-PER", "O", "O"]


def test_read_char_bio_weibo_position_numbers(tmp_path):
    path = write(tmp_path, "weibo.txt", "李0\tB-PER.NAM\n开1\tI-PER.NAM\n复2\tI-PER.NAM\n\n"
                                        "310\tO\n\ufffd\ufffd0\tO\ne12\tO\n")
    first, second = ner.read_char_bio(path)
    assert first.text == "李开复" and first.entities == [ner.Entity(0, 3, "PER.NAM")]
    assert second.words == ["3", "\ufffd\ufffd", "e"]  # the first digit is the character, the rest its position
    kept = ner.read_char_bio(path, position_suffix=False)
    assert kept[0].words == ["李0", "开1", "复2"]
    mixed = write(tmp_path, "mixed.txt", "李0\tB-PER\n开\tI-PER\n")
    assert ner.read_char_bio(mixed)[0].words == ["李0", "开"]  # not every token has a number: kept
    assert error_of(ner.read_char_bio, mixed, position_suffix=True).startswith(f"{mixed}:2: '开'")


def test_read_char_bio_bad_input(tmp_path):
    path = write(tmp_path, "a.txt", "北\tB-LOC\n京\tI\tLOC\n")
    assert error_of(ner.read_char_bio, path).startswith(f"{path}:2: expected a character, a tab and a tag")
    path = write(tmp_path, "b.txt", "北 B-LOC\n\n京\n")
    assert error_of(ner.read_char_bio, path).startswith(f"{path}:3: expected a character and a tag")
    path = write(tmp_path, "c.txt", "北 B-LOC\n京 E-LOC\n")
    assert error_of(ner.read_char_bio, path).startswith(f"{path}:2: tag 'E-LOC' does not fit the BIO scheme")
    assert ner.read_char_bio(path, scheme="BIOES")[0].entities == [ner.Entity(0, 2, "LOC")]
    path = write(tmp_path, "d.txt", "\tO\n")
    assert error_of(ner.read_char_bio, path).startswith(f"{path}:1:")


def test_read_sentences_tags(tmp_path):
    folder = tmp_path / "val"
    folder.mkdir()
    write(folder, "sentences.txt", "在 江 苏 如 皋\n\n张 三\n")
    write(folder, "tags.txt", "O B-LOC I-LOC B-LOC I-LOC\n\nB-PER I-PER")
    first, second = ner.read_sentences_tags(str(folder))
    assert first.text == "在江苏如皋" and first.entities == [ner.Entity(1, 3, "LOC"), ner.Entity(3, 5, "LOC")]
    assert second.source == f"{folder / 'sentences.txt'}:3" and second.entities == [ner.Entity(0, 2, "PER")]
    assert ner.read_sentences_tags(str(folder / "sentences.txt")) == [first, second]
    write(folder, "tags.txt", "O B-LOC I-LOC B-LOC\n\nB-PER I-PER\n")
    message = error_of(ner.read_sentences_tags, str(folder))
    assert message.startswith(f"{folder / 'tags.txt'}:1: 4 tags for the 5 characters")
    write(folder, "tags.txt", "O B-LOC I-LOC B-LOC I-LOC\n\nB-PER X-PER\n")
    assert error_of(ner.read_sentences_tags, str(folder)).startswith(f"{folder / 'tags.txt'}:3: tag 'X-PER'")
    write(folder, "tags.txt", "O B-LOC I-LOC B-LOC I-LOC\n")
    assert "1 lines" in error_of(ner.read_sentences_tags, str(folder))


CLUENER_OBJECTS = [
    {"text": "浙商银行企业信贷部叶老桂博士", "label": {"company": {"浙商银行": [[0, 3]]}, "name": {"叶老桂": [[9, 11]]}}},
    {"text": "在 巴厘岛 度假", "label": {"scene": {"巴厘岛": [[2, 4]]}}},
    {"id": 7, "text": "尼日利亚海军"},
]


@pytest.mark.parametrize("layout", ["lines", "pretty", "array"])
def test_read_cluener(tmp_path, layout):
    if layout == "lines":
        content = "".join(json.dumps(value, ensure_ascii=False) + "\n" for value in CLUENER_OBJECTS)
    elif layout == "pretty":  # as the real files are: indented objects one after another
        content = "".join(json.dumps(value, ensure_ascii=False, indent=2) + "\n" for value in CLUENER_OBJECTS)
    else:
        content = json.dumps(CLUENER_OBJECTS, ensure_ascii=False, indent=1)
    path = write(tmp_path, "dev.json", content, "\r\n" if layout == "pretty" else "\n")
    first, second, third = ner.read_cluener(path)
    assert first.entities == [ner.Entity(0, 4, "company"), ner.Entity(9, 12, "name")]
    assert first.words == list(first.text) and first.spans[3] == (3, 4)
    assert second.text == "在 巴厘岛 度假" and second.words == ["在", "巴", "厘", "岛", "度", "假"]
    assert second.spans[1] == (2, 3) and second.entities == [ner.Entity(2, 5, "scene")]
    assert third.entities == [] and third.extra == {"id": 7}
    lines = {"lines": (1, 2, 3), "pretty": (1, 22, 35), "array": (2, 23, 36)}[layout]
    assert [sentence.source for sentence in (first, second, third)] == [f"{path}:{line}" for line in lines]


def test_read_cluener_bad_input(tmp_path):
    wrong = {"text": "彭小军认为", "label": {"name": {"彭小军": [[0, 3]]}}}  # the end is inclusive: 2
    path = write(tmp_path, "a.json", json.dumps(CLUENER_OBJECTS[2], indent=2) + "\n" +
                 json.dumps(wrong, ensure_ascii=False, indent=2))
    message = error_of(ner.read_cluener, path)
    assert message.startswith(f"{path}:5: name '彭小军'") and "'彭小军认'" in message and "inclusive" in message
    wrong["label"]["name"]["彭小军"] = [[3, 5]]
    path = write(tmp_path, "b.json", json.dumps(wrong, ensure_ascii=False))
    assert "outside the text" in error_of(ner.read_cluener, path)
    wrong["label"]["name"]["彭小军"] = [0, 2]
    path = write(tmp_path, "c.json", json.dumps(wrong, ensure_ascii=False))
    assert "is not [start, end]" in error_of(ner.read_cluener, path)
    path = write(tmp_path, "d.json", '{"text": "a"}\n{"text": "b",\n "label": }\n')
    assert error_of(ner.read_cluener, path).startswith(f"{path}:3: invalid JSON")
    path = write(tmp_path, "e.json", '[{"text": "a"},\n {"text": "b"}\n')
    assert "never closed" in error_of(ner.read_cluener, path)
    path = write(tmp_path, "f.json", '{"text": "a"}\n{"label": {}}\n')
    assert error_of(ner.read_cluener, path).startswith(f"{path}:2: the object has no \"text\"")


def test_read_jsonl(tmp_path):
    rows = [{"text": "Obama's visit to Berlin-Mitte", "entities": [{"start": 0, "end": 5, "type": "PER"},
                                                                 {"start": 17, "end": 23, "type": "LOC"}]},
            {"text": "在北京欢迎你", "entities": [{"start": 1, "end": 3, "type": "LOC", "text": "北京"}], "id": "x1"},
            {"text": "BerlinMitte", "entities": [{"start": 0, "end": 6, "type": "LOC"}]}]
    path = write(tmp_path, "a.jsonl", "\n".join(json.dumps(row, ensure_ascii=False) for row in rows) + "\n\n", "\r\n")
    first, second, third = ner.read_jsonl(path)
    assert first.words == ["Obama", "'", "s", "visit", "to", "Berlin", "-", "Mitte"]
    assert ner.word_entities(first) == [("PER", 0, 0), ("LOC", 5, 5)]
    assert second.words == list("在北京欢迎你") and second.extra == {"id": "x1"} and second.source == f"{path}:2"
    assert third.words == ["Berlin", "Mitte"]  # cut at the entity's end
    assert ner.sentence_tags(third, "BIOES") == ["S-LOC", "O"]


def test_read_jsonl_bad_input(tmp_path):
    good = json.dumps({"text": "ab", "entities": []})
    for row, expected in (('{"text": "abc", "entities": [{"start": 1, "end": 4, "type": "X"}]}', "outside the text"),
                          ('{"text": "abc", "entities": [{"start": 1, "end": 1, "type": "X"}]}', "or empty"),
                          ('{"text": "abc", "entities": [{"start": 0, "type": "X"}]}', "needs integer"),
                          ('{"text": "abc", "entities": [{"start": 0, "end": 2, "type": "X", "text": "bc"}]}',
                           "the text there is 'ab'"),
                          ('{"text": "a bc", "entities": [{"start": 1, "end": 2, "type": "X"}]}', "covers no word"),
                          ('{"text": "abc", "entities": [}', "invalid JSON"),
                          ('["abc"]', "expected a JSON object")):
        path = write(tmp_path, "bad.jsonl", good + "\n\n" + row + "\n")
        message = error_of(ner.read_jsonl, path)
        assert message.startswith(f"{path}:3:") and expected in message, message


def test_word_entities_and_sentence_tags(tmp_path):
    path = write(tmp_path, "a.jsonl", json.dumps({"text": "New Yorker"}) + "\n")
    sentence = ner.read_jsonl(path)[0]
    assert "inside a word" in error_of(ner.word_entities, sentence, [ner.Entity(0, 7, "LOC")])
    text = "《招商银行：投资永隆银行》"
    nested = {"text": text, "label": {"book": {text: [[0, 12]]}, "company": {"招商银行": [[1, 4]]}}}
    path = write(tmp_path, "nested.json", json.dumps(nested, ensure_ascii=False))
    sentence = ner.read_cluener(path)[0]
    assert len(sentence.entities) == 2  # both kept as read
    assert ner.sentence_tags(sentence) == ["B-book"] + ["I-book"] * 12
    assert ner.tags_to_char_entities(sentence, ner.sentence_tags(sentence)) == [ner.Entity(0, 13, "book")]


def test_guess_format_and_read_ner_file(tmp_path):
    cases = {
        "conll.txt": (CONLL, "conll"),
        "char.txt": ("北\tB-LOC\n京\tI-LOC\n\n好\tO\n", "char_bio"),
        "weibo.txt": ("李0\tB-PER.NAM\n开1\tI-PER.NAM\n", "char_bio"),
        "pretty.json": (json.dumps(CLUENER_OBJECTS[0], ensure_ascii=False, indent=2), "cluener"),
        # Texts alone (CLUENER's test set, a file to tag): JSONL, whose words are split properly; run_ner.py
        # reads a trained model's files in its training data's format instead of guessing.
        "test.json": (json.dumps(CLUENER_OBJECTS[2]), "jsonl"),
        "later_labels.json": (json.dumps({"text": "ab"}) + "\n" + json.dumps(CLUENER_OBJECTS[0], ensure_ascii=False)
                              + "\n", "cluener"),
        "later_entities.jsonl": (json.dumps({"text": "no entities"}) + "\n"
                                 + json.dumps({"text": "ab", "entities": [{"start": 0, "end": 1, "type": "X"}]})
                                 + "\n", "jsonl"),
        "array.json": (json.dumps(CLUENER_OBJECTS, ensure_ascii=False), "cluener"),
        "a.jsonl": (json.dumps({"text": "ab", "entities": []}) + "\n", "jsonl"),
        "two_words.txt": ("EU B-ORG\nrejects O\n", "conll"),
    }
    for name, (content, expected) in cases.items():
        path = write(tmp_path, name, content)
        assert ner.guess_format(path) == expected, name
        sentences, data_format = ner.read_ner_file(path)
        assert data_format == expected and sentences
    folder = tmp_path / "msra"
    folder.mkdir()
    write(folder, "sentences.txt", "张 三\n")
    write(folder, "tags.txt", "B-PER I-PER\n")
    assert ner.guess_format(str(folder)) == ner.guess_format(str(folder / "sentences.txt")) == "sentences_tags"
    assert ner.read_ner_file(str(folder))[0][0].entities == [ner.Entity(0, 2, "PER")]
    path = write(tmp_path, "empty.txt", "\n\n")
    assert error_of(ner.read_ner_file, path, "conll") == f"{path}: no sentences found (read as conll)"
    assert "unknown NER data format 'xml'" in error_of(ner.read_ner_file, path, "xml")
    assert "a folder" in error_of(ner.guess_format, str(tmp_path))


# --- Writers --------------------------------------------------------------------------------------

def shifted_predictions(sentences, scheme):
    """Predicted tags unlike the gold: every sentence's entities moved one word to the right, as PER."""
    predictions = []
    for sentence in sentences:
        n_words = len(sentence.words)
        moved = [("PER", first + 1, last + 1) for _, first, last in ner.drop_overlapping(
            ner.word_entities(sentence))[0] if last + 1 < n_words]
        predictions.append(ner.entities_to_tags(n_words, ner.drop_overlapping(moved)[0], scheme))
    return predictions


@pytest.mark.parametrize("data_format", ["conll", "char_bio", "sentences_tags", "cluener", "jsonl"])
def test_write_like_input_reads_back(tmp_path, data_format):
    inputs = {"conll": ("in.txt", CONLL), "char_bio": ("in.txt", "北\tB-LOC\n京\tI-LOC\n欢\tO\n\n张 B-PER\n三 I-PER\n"),
              "cluener": ("in.json", json.dumps(CLUENER_OBJECTS, ensure_ascii=False)),
              "jsonl": ("in.jsonl", json.dumps({"text": "Obama in Berlin", "id": 3,
                                                "entities": [{"start": 0, "end": 5, "type": "PER"}]}) + "\n")}
    if data_format == "sentences_tags":
        source = tmp_path / "msra"
        source.mkdir()
        write(source, "sentences.txt", "在 江 苏 如 皋\n张 三\n")
        write(source, "tags.txt", "O B-LOC I-LOC B-LOC I-LOC\nB-PER I-PER\n")
        source = str(source)
    else:
        source = write(tmp_path, *inputs[data_format])
    sentences, _ = ner.read_ner_file(source, data_format)
    predictions = shifted_predictions(sentences, "BIOES")
    assert any(ner.tags_to_entities(tags, "BIOES") for tags in predictions)
    out = tmp_path / "out"
    out.mkdir()
    if data_format == "sentences_tags":  # the predicted tags file beside the input sentences
        (out / "sentences.txt").write_bytes((tmp_path / "msra" / "sentences.txt").read_bytes())
        written = str(out / "tags.txt")
    else:
        written = str(out / os.path.basename(source))
    ner.write_like_input(written, sentences, predictions, data_format, "BIOES")
    assert os.listdir(out) == [os.path.basename(written)] or data_format == "sentences_tags"
    read_back, _ = ner.read_ner_file(str(out) if data_format == "sentences_tags" else written, data_format,
                                     scheme="BIOES")
    assert [sentence.text for sentence in read_back] == [sentence.text for sentence in sentences]
    for sentence, again, tags in zip(sentences, read_back, predictions):
        assert again.entities == ner.tags_to_char_entities(sentence, tags, "BIOES")
    if data_format == "conll":  # the input's columns are kept: the gold tags are the second last
        gold = ner.read_conll(written, tag_column=-2, scheme="BIO")
        assert [sentence.entities for sentence in gold] == [sentence.entities for sentence in sentences]
        assert (out / "in.txt").read_text(encoding="utf-8").startswith("EU\tNNP\tB-NP\tB-ORG\tO\n")
    if data_format in ("cluener", "jsonl"):
        assert [sentence.extra for sentence in read_back] == [sentence.extra for sentence in sentences]
    with pytest.raises(ValueError):
        ner.write_like_input(written, sentences, predictions[:-1] if len(predictions) > 1 else [[]], data_format)
    with pytest.raises(UserInputError):
        ner.write_like_input(written, sentences, predictions, "xml", "BIOES")


def test_write_jsonl(tmp_path):
    path = write(tmp_path, "a.json", json.dumps(CLUENER_OBJECTS, ensure_ascii=False))
    sentences = ner.read_cluener(path)
    predicted = [[ner.Entity(9, 12, "name"), ner.Entity(0, 2, "company")], [], []]
    out = str(tmp_path / "predictions.jsonl")
    ner.write_jsonl(out, sentences, predicted)
    lines = [json.loads(line) for line in open(out, encoding="utf-8")]
    assert lines[0] == {"text": CLUENER_OBJECTS[0]["text"], "entities": [
        {"start": 0, "end": 2, "type": "company", "text": "浙商"},
        {"start": 9, "end": 12, "type": "name", "text": "叶老桂"}]}
    assert lines[2] == {"id": 7, "text": "尼日利亚海军", "entities": []}
    assert [sentence.entities for sentence in ner.read_jsonl(out)] == [sorted(entities) for entities in predicted]
    assert sorted(os.listdir(tmp_path)) == ["a.json", "predictions.jsonl"]  # no temporary left behind


# --- Scores ---------------------------------------------------------------------------------------

def test_entity_scores_by_hand():
    gold = [["O", "B-MISC", "I-MISC", "B-MISC", "O"], ["B-PER", "I-PER", "O"]]
    pred = [["O", "B-MISC", "I-MISC", "B-MISC", "I-MISC"], ["B-PER", "I-PER", "I-LOC"]]
    scores = ner.entity_scores(gold, pred)
    assert scores["precision"] == pytest.approx(2 / 4) and scores["recall"] == pytest.approx(2 / 3)
    assert scores["f1"] == pytest.approx(2 * (1 / 2) * (2 / 3) / (1 / 2 + 2 / 3)) and scores["support"] == 3
    assert scores["per_type"]["MISC"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert scores["per_type"]["LOC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert scores["per_type"]["PER"]["f1"] == 1.0
    nothing = ner.entity_scores(gold, [["O"] * 5, ["O"] * 3])  # no prediction: 0, not a division error
    assert (nothing["precision"], nothing["recall"], nothing["f1"]) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError):
        ner.entity_scores(gold, [["O"] * 5, ["O"] * 2])


@pytest.mark.parametrize("scheme", ["BIO", "IOB1"])
def test_entity_scores_equal_seqeval(scheme):
    metrics = pytest.importorskip("seqeval.metrics", reason="seqeval is a test requirement (requirements-test.txt)")
    rng = np.random.RandomState(2024 if scheme == "BIO" else 1996)
    checked = collections.Counter()
    for trial in range(12):
        # Small trials make zero divisions (a type never predicted, or never gold) common.
        n_sentences = 300 if trial == 0 else rng.randint(1, 6)
        types = TYPES if trial % 3 else TYPES + ("MISC",)
        gold = [random_bio(rng, rng.randint(0, 12), TYPES) for _ in range(n_sentences)]
        if scheme == "IOB1":
            gold = [ner.convert_tags(tags, "BIO", "IOB1") for tags in gold]
        pred = [perturb(rng, tags, types) for tags in gold]
        ours = ner.entity_scores(gold, pred, scheme)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # seqeval warns where a ratio divides by zero
            report = metrics.classification_report(gold, pred, output_dict=True)
            micro = (metrics.precision_score(gold, pred), metrics.recall_score(gold, pred),
                     metrics.f1_score(gold, pred))
        assert (ours["precision"], ours["recall"], ours["f1"]) == pytest.approx(micro, abs=1e-12, rel=0)
        assert set(ours["per_type"]) == set(report) - {"micro avg", "macro avg", "weighted avg"}
        for kind, values in ours["per_type"].items():
            theirs = report[kind]
            assert values["support"] == theirs["support"]
            for ours_key, their_key in (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score")):
                assert abs(values[ours_key] - theirs[their_key]) <= 1e-12, (kind, ours_key)
                checked["zero" if theirs[their_key] == 0 else "nonzero"] += 1
        if "micro avg" in report:
            assert ours["support"] == report["micro avg"]["support"]
        checked["implicit"] += sum(ner.count_implicit_starts(tags, "BIO") for tags in pred)
    assert checked["zero"] > 0 and checked["nonzero"] > 0 and checked["implicit"] > 0


def test_span_scores_match_entity_scores():
    rng = np.random.RandomState(5)
    gold = [random_bio(rng, rng.randint(0, 10)) for _ in range(200)]
    pred = [perturb(rng, tags) for tags in gold]
    sentences = [ner.Sentence(*_joined_sentence(len(tags))) for tags in gold]
    gold_spans = [ner.tags_to_char_entities(s, tags) for s, tags in zip(sentences, gold)]
    pred_spans = [ner.tags_to_char_entities(s, tags) for s, tags in zip(sentences, pred)]
    assert ner.span_scores(gold_spans, pred_spans) == ner.entity_scores(gold, pred)
    doubled = [entities + entities for entities in pred_spans]  # listed twice: counted once
    assert ner.span_scores(gold_spans, doubled) == ner.span_scores(gold_spans, pred_spans)
    assert ner.span_scores(gold_spans, gold_spans)["f1"] == 1.0


def _joined_sentence(n_words):
    words = [f"w{index}" for index in range(n_words)]
    spans = [(3 * index, 3 * index + 2) for index in range(n_words)]
    return " ".join(words), words, spans, [], "test:1"


# --- The real data in ../shared/data ----------------------------------------------------------------

def _summary(sentences):
    types = collections.Counter(entity.type for sentence in sentences for entity in sentence.entities)
    return len(sentences), sum(types.values()), dict(sorted(types.items()))


def test_real_conll2003():
    found = {}
    for split in ("train", "dev", "test"):
        path = shared_path("conll2003", f"{split}.txt")
        assert ner.guess_format(path) == "conll"
        sentences = ner.read_conll(path)
        n_sentences, n_entities, types = _summary(sentences)
        implicit = sum(ner.count_implicit_starts(sentence.tags) for sentence in sentences)
        found[split] = (n_sentences, n_entities)
        print(f"conll2003 {split}: {n_sentences} sentences, {n_entities} entities {types}, "
              f"{implicit} begin with I- (after O or another type)")
        assert set(types) == {"PER", "ORG", "LOC", "MISC"}
        # Every entity starts either with B- or with an I- that cannot continue: nothing else.
        b_tags = sum(tag.startswith("B-") for sentence in sentences for tag in sentence.tags)
        assert n_entities == b_tags + implicit
        assert all(sentence.words and sentence.words[0] != "-DOCSTART-" for sentence in sentences)
    assert {split: count for split, (count, _) in found.items()} == {"train": 14041, "dev": 3250, "test": 3453}
    assert {split: count for split, (_, count) in found.items()} == {"train": 23501, "dev": 5942, "test": 5651}


def test_real_cluener():
    counts = {}
    for split in ("train", "dev", "test"):
        path = shared_path("cluener", f"{split}.json")
        assert ner.guess_format(path) == ("jsonl" if split == "test" else "cluener")  # test: texts alone
        sentences = ner.read_cluener(path)
        counts[split] = _summary(sentences)[:2]
        print(f"cluener {split}: {counts[split][0]} sentences, {counts[split][1]} entities, "
              f"longest {max(len(sentence.text) for sentence in sentences)} characters")
        if split == "dev":
            types = _summary(sentences)[2]
            assert sorted(types) == ["address", "book", "company", "game", "government", "movie", "name",
                                     "organization", "position", "scene"]
            assert sentences[1].source == f"{path}:22"  # pretty-printed: the first object has 21 lines
            for sentence in sentences:  # entities -> BIOES tags -> the same entities
                tags = ner.sentence_tags(sentence, "BIOES")
                assert ner.tags_to_char_entities(sentence, tags, "BIOES") == sentence.entities
        if split == "train":
            nested = [(sentence.source, dropped) for sentence in sentences
                      for dropped in [ner.drop_overlapping(ner.word_entities(sentence))[1]] if dropped]
            print(f"cluener train: nested entities {nested}")
            assert nested == [(f"{path}:33055", [("company", 16, 19), ("company", 23, 26)])]
        if split == "test":
            assert all(sentence.extra.keys() == {"id"} for sentence in sentences)
    assert counts == {"train": (10748, 23971), "dev": (1343, 3072), "test": (1345, 0)}


def test_real_chinese_char_files(tmp_path):
    expected = {("weibo", "weiboNER_2nd_conll.train"): 1350, ("weibo", "weiboNER_2nd_conll.dev"): 270,
                ("weibo", "weiboNER_2nd_conll.test"): 270, ("people_daily", "example.dev"): 2318,
                ("people_daily", "example.test"): 4636, ("msra", "val"): 3000, ("msra", "test"): 3442}
    for (folder, name), n_sentences in expected.items():
        path = shared_path("ner_zh_misc", folder, name)
        sentences, data_format = ner.read_ner_file(path)
        count, n_entities, types = _summary(sentences)
        print(f"{folder}/{name}: {data_format}, {count} sentences, {n_entities} entities {types}, longest "
              f"{max(len(sentence.words) for sentence in sentences)} characters")
        assert count == n_sentences
        assert data_format == ("sentences_tags" if folder == "msra" else "char_bio")
        if folder == "weibo":  # the word-position numbers are gone: one character a word (12 broken emoji: two)
            assert all(len(word) == 1 or word == "\ufffd\ufffd" for sentence in sentences for word in sentence.words)
            assert set(types) <= {f"{kind}.{mention}" for kind in ("PER", "ORG", "LOC", "GPE")
                                  for mention in ("NAM", "NOM")}
        else:
            assert set(types) == {"PER", "ORG", "LOC"}
    # dh_msra.txt has 2.3 million rows (8 s to read): its first 5,000 lines show the format.
    lines = open(shared_path("chinese_nlp_corpus", "dh_msra.txt"), encoding="utf-8").read(200_000).split("\n")[:5000]
    cut = max(index for index, line in enumerate(lines) if line == "")  # the last blank line: whole sentences
    path = write(tmp_path, "dh_msra_head.txt", "\n".join(lines[:cut]) + "\n")
    sentences, data_format = ner.read_ner_file(path)
    print(f"dh_msra (first {cut} lines): {_summary(sentences)}")
    assert data_format == "char_bio" and len(sentences) == lines[:cut].count("") + 1
