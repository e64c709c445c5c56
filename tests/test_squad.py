"""Reading comprehension: windows and offsets, the official metrics, an end-to-end run, bad input."""
import json
import os
import subprocess
import sys

import pytest
from absl import flags

import run_squad
from bert import squad, tokenization
from bert.errors import UserInputError
from conftest import REPO, tiny_config

FLAGS = flags.FLAGS
WORDS = ["the", "cat", "dog", "sat", "on", "mat", "what", "did", "do", "where", "is", "red", "blue", "car", "was",
         "who", "saw", "a", "bird", "ran", "to", "park", "color", "?", ".", ","]
CHINESE = list("谁在公园里跑步小明昨天去了北京哪")


@pytest.fixture
def vocab_file(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(list(tokenization.SPECIAL_TOKENS) + WORDS + ["##s"] + CHINESE) + "\n")
    return path


def example(context, question, answer, qas_id="q1", impossible=False):
    answers = [] if impossible else [{"text": answer, "answer_start": context.index(answer)}]
    return squad.SquadExample(qas_id, "t", question, context, answers, impossible)


def test_windows_cover_the_context_and_map_the_answer(vocab_file):
    tokenizer = tokenization.FullTokenizer(str(vocab_file))
    context = " ".join(f"the cat sat on the mat {w} ." for w in ["red", "blue", "red", "blue", "red"]) + \
        " where is the dog ? the dog ran to the park ."
    item = example(context, "where did the dog do", "ran to the park")
    settings = squad.WindowSettings(max_seq_length=20, doc_stride=6, max_query_length=4)
    features = squad.example_features(item, tokenizer, settings, is_training=True)
    pieces, starts, ends = tokenizer.tokenize_with_offsets(context)
    assert len(features) > 3
    seen = set()
    for feature in features:
        assert len(feature["input_ids"]) == 20 and feature["segment_ids"][:6] == [0] * 6  # [CLS] + 4 query + [SEP]
        assert tokenizer.convert_ids_to_tokens(feature["input_ids"][1:5]) == ["where", "did", "the", "dog"]  # truncated
        for position, (start, end) in enumerate(zip(feature["token_start_chars"], feature["token_end_chars"])):
            if start >= 0:
                seen.add((start, end))
                assert feature["segment_ids"][position] == 1
        if feature["start_positions"]:
            text = context[feature["token_start_chars"][feature["start_positions"]]:
                           feature["token_end_chars"][feature["end_positions"]]]
            assert text == "ran to the park"
    assert seen == set(zip(starts, ends))  # every context piece is in some window
    assert sum(1 for f in features if f["start_positions"]) >= 1
    # each piece is the "max context" piece in exactly one window
    owners = {}
    for feature in features:
        for flag, start, end in zip(feature["token_is_max_context"], feature["token_start_chars"], feature["token_end_chars"]):
            if flag:
                owners[(start, end)] = owners.get((start, end), 0) + 1
    assert set(owners.values()) == {1} and set(owners) == seen


def test_answer_at_a_window_edge_and_chinese(vocab_file):
    tokenizer = tokenization.FullTokenizer(str(vocab_file))
    context = "小明昨天去了北京。谁在公园里跑步？小明。"
    item = example(context, "小明去了哪", "北京")
    settings = squad.WindowSettings(max_seq_length=16, doc_stride=4, max_query_length=8)
    features = squad.example_features(item, tokenizer, settings, is_training=True)
    answered = [f for f in features if f["start_positions"]]
    assert answered
    for feature in answered:
        assert context[feature["token_start_chars"][feature["start_positions"]]:
                       feature["token_end_chars"][feature["end_positions"]]] == "北京"
    # A window that ends exactly at the answer's last character still holds the whole answer.
    edge = [f for f in answered if f["end_positions"] == max(i for i, s in enumerate(f["token_start_chars"]) if s >= 0)]
    assert edge, "expected a window ending on the answer"
    # A window holding only part of the answer labels [CLS] (no answer here).
    partial = [f for f in features if not f["start_positions"] and "北" in
               "".join(context[s:e] for s, e in zip(f["token_start_chars"], f["token_end_chars"]) if s >= 0)
               and "京" not in "".join(context[s:e] for s, e in zip(f["token_start_chars"], f["token_end_chars"]) if s >= 0)]
    assert all(f["end_positions"] == 0 for f in partial)


def test_squad_metrics_by_hand():
    # "the Cat sat!" -> "cat sat"; gold "cat sat on the mat" -> "cat sat on mat": EM 0,
    # F1: 2 shared tokens, precision 2/2, recall 2/4 -> 2 * 1 * 0.5 / 1.5 = 0.6667.
    assert squad.squad_exact("the Cat sat!", "cat sat on the mat") == 0.0
    assert squad.squad_f1("the Cat sat!", "cat sat on the mat") == pytest.approx(2 / 3)
    assert squad.squad_exact("The  cat, sat.", "cat sat") == 1.0
    examples = [example("a cat sat on the mat", "q", "cat sat on the mat", "1"),
                example("the dog ran far away", "q", "ran far", "2")]
    examples[1].answers.append({"text": "ran far away", "answer_start": 8})
    result = squad.evaluate(examples, {"1": "the Cat sat!", "2": "far away"}, "1.1")
    # q1: EM 0, F1 2/3. q2: best gold "ran far away": common 2 of pred 2, gold 3 -> F1 0.8; EM 0.
    assert result["exact_match"] == 0.0
    assert result["f1"] == pytest.approx(100 * (2 / 3 + 0.8) / 2)


def test_squad2_metrics_and_best_threshold():
    examples = [example("a cat sat", "q", "cat", "has1"), example("a dog ran", "q", "dog", "has2"),
                example("nothing here", "q", "", "none1", impossible=True),
                example("nothing here", "q", "", "none2", impossible=True)]
    predictions = {"has1": "cat", "has2": "ran", "none1": "", "none2": "here"}
    odds = {"has1": -5.0, "has2": 1.0, "none1": 3.0, "none2": 2.0}
    result = squad.evaluate(examples, predictions, "2.0", odds)
    assert result["exact_match"] == 50.0 and result["HasAns_exact"] == 50.0 and result["NoAns_exact"] == 50.0
    assert result["HasAns_total"] == 2 and result["NoAns_total"] == 2
    # Thresholds, by hand: all "" gives 2/4. Answering has1 (odds -5) gains 1 -> 3/4; then has2 (1.0) +0;
    # none2 (2.0) -1. Best 75 at threshold -5.
    assert result["best_exact"] == 75.0 and result["best_exact_thresh"] == -5.0


def test_cmrc_metrics_by_hand():
    assert squad.cmrc_exact("光荣和ω-force", "光荣和ω-force") == 1.0
    assert squad.cmrc_exact("《光荣》", "光荣") == 1.0  # punctuation is deleted before comparing
    # pred segments 光 荣; gold 光 荣 和 ω force ("-" is punctuation, dropped): longest common run 2,
    # precision 2/2, recall 2/5 -> F1 = 2 * 0.4 / 1.4 = 0.5714.
    assert squad.cmrc_f1("光荣", "光荣和ω-force") == pytest.approx(0.8 / 1.4)
    # a common run must be contiguous: 北京 and 京北 share no two-segment run
    assert squad.cmrc_f1("北京市", "京北市") == pytest.approx(2 * (1 / 3) * (1 / 3) / (2 / 3))
    examples = [example("小明昨天去了北京", "q", "北京", "c1")]
    result = squad.evaluate(examples, {"c1": "北京。"}, "cmrc")
    assert result["exact_match"] == 100.0 and result["f1"] == 100.0 and result["average"] == 100.0
    assert squad.language_of(examples) == "cmrc"


def write_squad(path, items, version_2=False):
    data = {"version": "v2.0" if version_2 else "1.1", "data": [{"title": "t", "paragraphs": [
        {"context": context, "qas": [{"id": qid, "question": q, "is_impossible": answer is None,
                                      "answers": [] if answer is None else
                                      [{"text": answer, "answer_start": context.index(answer)}]}]}
        for qid, context, q, answer in items]}]}
    path.write_text(json.dumps(data, ensure_ascii=False))
    return path


QUESTIONS = [
    ("a", "the cat sat on the red mat .", "what sat on the mat ?", "cat"),
    ("b", "a bird saw the blue car .", "who saw the car ?", "bird"),
    ("c", "the dog ran to the park .", "where did the dog do ?", "park"),
    ("d", "the car was red . the mat was blue .", "what color is the mat ?", "blue"),
]


def run(model, output, **overrides):
    args = dict(bert_config_file=model / "bert_config.json", vocab_file=model / "vocab.txt", output_dir=output,
                max_seq_length=24, doc_stride=8, max_query_length=8, train_batch_size=4, learning_rate=3e-3,
                num_train_epochs=40, predict_batch_size=4, warmup_proportion=0.05)
    args.update(overrides)
    FLAGS.unparse_flags()
    FLAGS(["run_squad"] + [f"--{k}={v}" for k, v in args.items()])
    run_squad.main([])


def test_train_predict_evaluate_end_to_end(tmp_path, vocab_file):
    tiny_config(vocab_size=len(vocab_file.read_text().split())).to_json_file(str(tmp_path / "bert_config.json"))
    data = write_squad(tmp_path / "train.json", QUESTIONS)
    out = tmp_path / "out"
    run(tmp_path, out, do_train=True, do_predict=True, do_eval=True, train_file=data, predict_file=data)
    predictions = json.loads((out / "predictions.json").read_text())
    contexts = {qid: context for qid, context, _, _ in QUESTIONS}
    assert set(predictions) == set(contexts)
    assert all(p in contexts[qid] for qid, p in predictions.items())  # cut from the context by offsets
    result = json.loads((out / "eval_results.json").read_text())
    assert result["eval_version"] == "1.1" and result["exact_match"] >= 75.0  # memorised the four questions
    nbest = json.loads((out / "nbest_predictions.json").read_text())
    assert abs(sum(c["probability"] for c in nbest["a"]) - 1.0) < 1e-6


def test_squad2_unanswerable(tmp_path, vocab_file):
    tiny_config(vocab_size=len(vocab_file.read_text().split())).to_json_file(str(tmp_path / "bert_config.json"))
    items = QUESTIONS + [("e", "the cat sat on the mat .", "who saw the bird ?", None),
                         ("f", "a dog ran .", "what color is the car ?", None)]
    data = write_squad(tmp_path / "train.json", items, version_2=True)
    out = tmp_path / "out"
    run(tmp_path, out, do_train=True, do_predict=True, do_eval=True, train_file=data, predict_file=data,
        version_2_with_negative=True)
    odds = json.loads((out / "null_odds.json").read_text())
    assert set(odds) == {qid for qid, *_ in items}
    result = json.loads((out / "eval_results.json").read_text())
    assert result["eval_version"] == "2.0" and result["NoAns_total"] == 2 and "best_f1_thresh" in result

    printed = subprocess.run([sys.executable, os.path.join(REPO, "evaluate_squad.py"), str(data),
                              str(out / "predictions.json"), "--version=2.0", f"--na_prob_file={out / 'null_odds.json'}"],
                             capture_output=True, text=True, cwd=REPO, timeout=120, check=True)
    standalone = json.loads(printed.stdout)
    assert standalone["exact_match"] == pytest.approx(result["exact_match"])
    assert standalone["best_f1"] == pytest.approx(result["best_f1"])


def test_bad_input_names_the_article_and_question(tmp_path, caplog):
    bad = tmp_path / "bad.json"
    bad.write_text('{"data": [\n{"title": "x",,}]}')
    with pytest.raises(UserInputError, match=r"bad.json, line 2: invalid JSON"):
        squad.read_squad_file(str(bad))
    bad.write_text(json.dumps({"data": [{"title": "Cats", "paragraphs": [{"context": "a cat", "qas": [
        {"id": "q7", "answers": [{"text": "cat", "answer_start": 2}]}]}]}]}))
    with pytest.raises(UserInputError, match=r"article 'Cats', question q7: missing field 'question'"):
        squad.read_squad_file(str(bad))
    bad.write_text(json.dumps({"data": [{"title": "Cats", "paragraphs": [{"context": "a cat", "qas": [
        {"id": "q8", "question": "?", "answers": [{"text": "cat", "answer_start": 40}]}]}]}]}))
    with pytest.raises(UserInputError, match=r"article 'Cats', question q8: answer_start 40 is outside the context"):
        squad.read_squad_file(str(bad))
    # An answer not found at its offset is skipped in training, with a count in the log.
    bad.write_text(json.dumps({"data": [{"title": "Cats", "paragraphs": [{"context": "a cat sat", "qas": [
        {"id": "q9", "question": "?", "answers": [{"text": "dog", "answer_start": 2}]}]}]}]}))
    examples = squad.read_squad_file(str(bad))
    assert len(examples) == 1 and not squad.answer_recoverable(examples[0])
    assert "do not match the context" in caplog.text
