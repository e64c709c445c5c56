"""run_ner.py end to end on a tiny model: CoNLL (English) and CLUENER (Chinese), softmax and CRF."""
import json
import random

import pytest
from absl import flags

import run_ner
from bert.errors import UserInputError
from conftest import tiny_config

FLAGS = flags.FLAGS
PEOPLE, PLACES, OTHER = ["ann", "bob", "eve"], ["paris", "rome"], ["met", "in", "the", "and", "saw", "today"]
HAN_PLACES, HAN_OTHER = ["北京", "上海"], "我们在今天去了和"


@pytest.fixture
def model(tmp_path):
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + PEOPLE + PLACES + OTHER + sorted(
        set("".join(HAN_PLACES) + HAN_OTHER))
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tiny_config(vocab_size=len(vocab)).to_json_file(str(tmp_path / "bert_config.json"))
    return tmp_path


def conll_sentences(count, seed):
    rng = random.Random(seed)
    sentences = []
    for _ in range(count):
        rows = []
        for _ in range(rng.randint(3, 9)):
            kind = rng.random()
            if kind < 0.2:
                rows.append((rng.choice(PEOPLE), "B-PER"))
            elif kind < 0.35:
                rows += [(rng.choice(PLACES), "B-LOC"), ("rome", "I-LOC")] if rng.random() < 0.3 else [
                    (rng.choice(PLACES), "B-LOC")]
            else:
                rows.append((rng.choice(OTHER), "O"))
        sentences.append(rows)
    return sentences


def write_conll(path, sentences, docstart=True):
    lines = ["-DOCSTART- O", ""] if docstart else []
    for rows in sentences:
        lines += [f"{word} {tag}" for word, tag in rows] + [""]
    path.write_text("\n".join(lines), encoding="utf-8")


def run(model, out, **overrides):
    args = dict(bert_config_file=model / "bert_config.json", vocab_file=model / "vocab.txt", output_dir=out,
                max_seq_length=16, train_batch_size=16, learning_rate=3e-3, num_train_epochs=12,
                predict_batch_size=32)
    args.update(overrides)
    FLAGS.unparse_flags()
    FLAGS(["run_ner"] + [f"--{k}={v}" for k, v in args.items()])
    run_ner.main([])


@pytest.mark.parametrize("use_crf", [False, True])
def test_conll_train_evaluate_predict(tmp_path, model, use_crf):
    data = tmp_path / "data"
    data.mkdir()
    write_conll(data / "train.txt", conll_sentences(120, 0))
    write_conll(data / "dev.txt", conll_sentences(40, 1))
    write_conll(data / "test.txt", conll_sentences(5, 2) + [[("ann", "O")] * 30], docstart=False)  # long: windows
    out = tmp_path / "out"
    run(model, out, do_train=True, do_eval=True, do_predict=True, data_dir=data, use_crf=use_crf)
    results = json.loads((out / "eval_results.json").read_text())
    assert set(results["per_type"]) == {"PER", "LOC"}
    assert results["f1"] > 0.9, results  # people and places are learnable from the words alone
    assert json.loads((out / "label_map.json").read_text())["labels"][0] == "O"
    blocks = (out / "predictions.txt").read_text().strip().split("\n\n")
    assert len(blocks) == 6 and len(blocks[-1].splitlines()) == 30  # the 30-word sentence: every word tagged
    assert all(len(line.split()) == 3 for line in blocks[-1].splitlines())
    spans = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(spans) == 6
    for record in spans:
        for entity in record["entities"]:
            assert record["text"][entity["start"]:entity["end"]] == entity["text"]
    # Evaluating again from the trained folder (no training flags) gives the same figures.
    run(model, out, do_eval=True, data_dir=data, use_crf=use_crf)
    assert json.loads((out / "eval_results.json").read_text())["f1"] == pytest.approx(results["f1"])


def cluener_records(count, seed):
    """CLUENER objects: a place (an "address") between other characters."""
    rng = random.Random(seed)
    records = []
    for _ in range(count):
        place = rng.choice(HAN_PLACES)
        before = "".join(rng.choice(HAN_OTHER) for _ in range(rng.randint(0, 3)))
        after = "".join(rng.choice(HAN_OTHER) for _ in range(rng.randint(1, 3)))
        start = len(before)
        records.append({"text": before + place + after,
                        "label": {"address": {place: [[start, start + len(place) - 1]]}}})
    return records


def test_cluener_chinese_characters(tmp_path, model):
    records = cluener_records(80, 3)
    for name, part in (("train", records[:60]), ("dev", records[60:])):
        (tmp_path / f"{name}.json").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in part),
                                               encoding="utf-8")
    out = tmp_path / "out"
    run(model, out, do_train=True, do_eval=True, do_predict=True, train_file=tmp_path / "train.json",
        eval_file=tmp_path / "dev.json", predict_file=tmp_path / "dev.json", model_scheme="BIOES")
    results = json.loads((out / "eval_results.json").read_text())
    assert results["f1"] > 0.9 and set(results["per_type"]) == {"address"}
    written = [json.loads(line) for line in (out / "predictions.json").read_text(encoding="utf-8").splitlines()]
    assert len(written) == 20 and all(set(r["label"]) <= {"address"} for r in written)
    right = sum(r["label"] == g["label"] for r, g in zip(written, records[60:]))
    assert right >= 18


def test_bad_inputs(tmp_path, model):
    with pytest.raises(UserInputError, match="no train.txt or train.json|no .*train"):
        run(model, tmp_path / "o1", do_train=True, data_dir=tmp_path)
    bad = tmp_path / "bad.txt"
    bad.write_text("ann B-PER\nrome B-LOC extra\n", encoding="utf-8")
    with pytest.raises(UserInputError, match=r"bad.txt:2"):
        run(model, tmp_path / "o2", do_train=True, train_file=bad, data_format="conll")
    good = tmp_path / "good.txt"
    good.write_text("ann B-PER\nrome B-LOC\n", encoding="utf-8")
    with pytest.raises(UserInputError, match="model_info.json: not found"):  # nothing trained in o3
        run(model, tmp_path / "o3", do_eval=True, eval_file=good, data_format="conll")
    with pytest.raises(UserInputError, match="--data_format=sentences_tags: give the files"):
        run(model, tmp_path / "o4", do_train=True, data_dir=tmp_path, data_format="sentences_tags")
