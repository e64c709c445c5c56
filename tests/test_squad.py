"""Reading comprehension: windows and offsets, the official metrics, an end-to-end run, bad input."""
import json
import os
import re
import subprocess
import sys

import pytest
from absl import flags

import run_squad
from bert import squad, tokenization
from bert.errors import UserInputError
from conftest import REPO, shared_path, tiny_config

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
    # As evaluate-v2.0.py with its default --na-prob-thresh 1.0: none1 (odds 3) and none2 (odds 2) count as
    # answering "", so none2's "here" is not held against it.
    assert result["exact_match"] == 75.0 and result["HasAns_exact"] == 50.0 and result["NoAns_exact"] == 100.0
    assert result["HasAns_total"] == 2 and result["NoAns_total"] == 2
    strict = squad.evaluate(examples, predictions, "2.0", odds, null_odds_threshold=5.0)
    assert strict["exact_match"] == 50.0 and strict["NoAns_exact"] == 50.0 and strict["best_exact"] == 75.0
    # Thresholds, by hand: all "" gives 2/4. Answering has1 (odds -5) gains 1 -> 3/4; then has2 (1.0) +0;
    # none2 (2.0) -1. Best 75 at threshold -5.
    assert result["best_exact"] == 75.0 and result["best_exact_thresh"] == -5.0


def test_cmrc_metrics_by_hand():
    assert squad.cmrc_exact("光荣和ω-force", "光荣和ω-force") == 1.0
    assert squad.cmrc_exact("《光荣》", "光荣") == 1.0  # punctuation is deleted before comparing
    # pred segments 光 荣; gold 光 荣 和 ωforce (punctuation is deleted before segmenting, so "ω-force" is
    # one word): longest common run 2, precision 2/2, recall 2/4 -> F1 = 2 * 0.5 / 1.5 = 0.6667.
    assert squad.cmrc_f1("光荣", "光荣和ω-force") == pytest.approx(2 / 3)
    # a common run must be contiguous: 北京 and 京北 share no two-segment run
    assert squad.cmrc_f1("北京市", "京北市") == pytest.approx(2 * (1 / 3) * (1 / 3) / (2 / 3))
    examples = [example("小明昨天去了北京", "q", "北京", "c1")]
    result = squad.evaluate(examples, {"c1": "北京。"}, "cmrc")
    assert result["exact_match"] == 100.0 and result["f1"] == 100.0 and result["average"] == 100.0
    assert squad.language_of(examples) == "cmrc"


def test_cmrc_f1_segments_as_the_official_script():
    # CMRC2018's F1 deletes its punctuation marks before segmenting and splits the other runs into Penn
    # Treebank words (NLTK's word_tokenize): a period stays on a word unless it ends the run, "%" and
    # brackets stand alone, n't is split off and double quotes become `` and ''.
    assert squad._cmrc_segments("CCTV-5") == ["cctv5"]
    assert squad.cmrc_f1("TV-5", "CCTV-5") == 0.0  # tv5 against cctv5: nothing in common
    assert squad._cmrc_segments("HENRY A. WALSH !") == ["henry", "a.", "walsh", "!"]
    assert squad.cmrc_f1("HENRY A. WALSH !", "Henry A. Walsh") == pytest.approx(2 * (3 / 4) / (1 + 3 / 4))
    assert squad._cmrc_segments("有42%的") == ["有", "42", "%", "的"]
    assert squad._cmrc_segments("43年(1910年)4月") == ["43", "年", "(", "1910", "年", ")", "4", "月"]
    assert squad._cmrc_segments('他说"don\'t go"') == ["他", "说", "``", "do", "n't", "go", "''"]
    assert squad._cmrc_segments("3,000 and 3, b...") == ["3,000", "and", "3", ",", "b", "..."]
    assert squad.cmrc_exact("《光荣》。", "光荣") == 1.0
    assert squad.cmrc_exact("光荣…", "光荣") == 0.0  # "…" is not in the list (its "……" is two characters)


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
        {"id": "q8", "question": "?", "answers": [{"text": "cat", "answer_start": "2"}]}]}]}]}))
    with pytest.raises(UserInputError, match=r"article 'Cats', question q8: field 'answer_start' should be a int"):
        squad.read_squad_file(str(bad))
    bad.write_text(json.dumps({"data": [{"title": "Cats", "paragraphs": [{"context": "a cat", "qas": [
        {"id": "q8", "question": "?", "answers": ["cat"]}]}]}]}))
    with pytest.raises(UserInputError, match=r"question q8: expected an object with a field 'text', found str"):
        squad.read_squad_file(str(bad))
    # A question whose first answer is not found at its offset (here, or past the end) is read, skipped in
    # training, and counted in the log.
    bad.write_text(json.dumps({"data": [{"title": "Cats", "paragraphs": [{"context": "a cat sat", "qas": [
        {"id": "q9", "question": "?", "answers": [{"text": "dog", "answer_start": 2}]}]}]}]}))
    examples = squad.read_squad_file(str(bad))
    assert len(examples) == 1 and not squad.answer_recoverable(examples[0])
    assert "1 question(s) whose first answer does not match the context" in caplog.text
    bad.write_text(json.dumps({"data": [{"title": "Cats", "paragraphs": [{"context": "a cat sat", "qas": [
        {"id": "q9", "question": "?", "answers": [{"text": "cat", "answer_start": 40}]}]}]}]}))
    assert not squad.answer_recoverable(squad.read_squad_file(str(bad))[0])


def squad_file(path, questions, version="1.1"):
    """A one-article SQuAD file: questions are (id, context, [(answer text, answer_start), ...])."""
    paragraphs = [{"context": context, "qas": [{"id": qid, "question": "?", "answers": [
        {"text": text, "answer_start": start} for text, start in answers]}]} for qid, context, answers in questions]
    path.write_text(json.dumps({"version": version, "data": [{"title": "t", "paragraphs": paragraphs}]},
                               ensure_ascii=False))
    return path


def evaluate_script(*args):
    return subprocess.run([sys.executable, os.path.join(REPO, "evaluate_squad.py")] + [str(a) for a in args],
                          capture_output=True, text=True, cwd=REPO, timeout=120)


def test_evaluation_reads_answers_whatever_their_offsets(tmp_path, caplog):
    # As in CMRC2018's dev set: secondary answers with answer_start -1 (or past the end). The metric reads
    # only texts; training uses the first answer and skips a question whose first answer is not at its offset.
    context = "小明昨天去了北京"
    data = squad_file(tmp_path / "dev.json", [
        ("c1", context, [("北京", 6), ("去了北京", -1)]),
        ("c2", context, [("小明", 0), ("昨天", 99)]),
        ("c3", context, [("北京", -1), ("北京", 6)])])
    examples = squad.read_squad_file(str(data))
    assert [len(e.answers) for e in examples] == [2, 2, 2]
    assert [squad.answer_recoverable(e) for e in examples] == [True, True, False]
    result = squad.evaluate(examples, {"c1": "去了北京", "c2": "昨天", "c3": "北京"}, "cmrc")
    assert result["exact_match"] == 100.0 and result["f1"] == 100.0
    predictions = tmp_path / "predictions.json"
    predictions.write_text(json.dumps({"c1": "去了北京", "c2": "小明", "c3": "去了"}, ensure_ascii=False))
    printed = evaluate_script(data, predictions, "--version=cmrc")
    assert printed.returncode == 0, printed.stderr
    # c3: 去了 against 北京: nothing shared, EM 0 and F1 0 -> EM 200/3, F1 200/3
    assert json.loads(printed.stdout)["exact_match"] == pytest.approx(200 / 3)
    assert json.loads(printed.stdout)["f1"] == pytest.approx(200 / 3)


def test_cmrc2018_dev_is_read_as_it_is():
    path = shared_path("cmrc2018", "cmrc2018_dev.json")
    examples = squad.read_squad_file(path)
    assert len(examples) == 3219
    assert sum(a["answer_start"] == -1 for e in examples for a in e.answers) == 193
    # three first answers sit one character off their offset: those questions are skipped in training
    assert sum(not squad.answer_recoverable(e) for e in examples) == 3
    result = squad.evaluate(examples, {e.qas_id: e.answers[-1]["text"] for e in examples}, "cmrc")
    assert result["exact_match"] == 100.0 and result["f1"] == 100.0


def test_each_squad_version_keeps_the_gold_answers_its_official_script_keeps(tmp_path):
    # v1.1 keeps a gold "." (it normalises to ""), so an empty prediction matches it exactly, but its F1 is 0
    # (no shared token). v2.0 drops such golds, falling back to [""] only when none is left; an empty prediction
    # against [""] then scores 1 for both. v2.0 counts a question as HasAns when its answer list is not empty.
    context = "interventionism . the cat sat"
    items = [("q1", context, [("interventionism", 0), (".", 16)]), ("q2", context, [("cat sat", 22)]),
             ("q3", context, [(".", 16)])]
    data = squad_file(tmp_path / "dev.json", items)
    examples = squad.read_squad_file(str(data))
    predictions = {"q1": "", "q2": "cat", "q3": ","}
    v1 = squad.evaluate(examples, predictions, "1.1")
    # q1 EM 1 F1 0; q2 EM 0 F1 2/3 (precision 1, recall 1/2); q3 EM 1 F1 0
    assert v1["exact_match"] == pytest.approx(200 / 3) and v1["f1"] == pytest.approx(100 * (2 / 3) / 3)
    v2 = squad.evaluate(examples, predictions, "2.0")
    # q1 golds [interventionism]: EM 0 F1 0; q2 as above; q3 golds [""]: "," normalises to "", EM 1 F1 1
    assert v2["exact_match"] == pytest.approx(100 / 3) and v2["f1"] == pytest.approx(100 * (1 + 2 / 3) / 3)
    assert v2["HasAns_total"] == 3 and "NoAns_total" not in v2
    assert squad.squad_f1("", ".") == 0.0 and squad.squad2_f1("", ".") == 1.0
    path = tmp_path / "predictions.json"
    path.write_text(json.dumps(predictions))
    printed = evaluate_script(data, path, "--version=1.1")
    assert printed.returncode == 0, printed.stderr
    assert json.loads(printed.stdout)["exact_match"] == pytest.approx(200 / 3)


def test_squad_v11_dev_gold_dots():
    # SQuAD v1.1 dev: every first answer predicted, except "" for the three questions with a gold ".":
    # the official v1.1 script gives those EM 1 and F1 0.
    path = shared_path("squad_v1.1", "dev-v1.1.json")
    examples = squad.read_squad_file(path)
    dots = {e.qas_id for e in examples if any(a["text"] == "." for a in e.answers)}
    assert len(dots) == 3 and len(examples) == 10570
    predictions = {e.qas_id: "" if e.qas_id in dots else e.answers[0]["text"] for e in examples}
    result = squad.evaluate(examples, predictions, "1.1")
    assert result["exact_match"] == 100.0 and result["f1"] == pytest.approx(100 * 10567 / 10570)


@pytest.mark.parametrize("version", ["1.1", "2.0", "cmrc"])
def test_evaluate_squad_bad_input_is_one_line(tmp_path, version):
    good = squad_file(tmp_path / "dev.json", [("q1", "a cat sat", [("cat", 2)])])
    empty = tmp_path / "empty.json"
    empty.write_text('{"data": []}')
    wrong_text = squad_file(tmp_path / "wrong.json", [("q1", "a cat sat", [(5, 2)])])
    predictions = tmp_path / "predictions.json"
    predictions.write_text('{"q1": "cat"}')
    as_list = tmp_path / "as_list.json"
    as_list.write_text('{"q1": ["cat"]}')
    as_number = tmp_path / "as_number.json"
    as_number.write_text('{"q1": 3}')
    odds = tmp_path / "odds.json"
    odds.write_text('{"q1": "high"}')
    cases = [(empty, predictions, [], r"empty\.json: no questions"),
             (wrong_text, predictions, [], r"wrong\.json: article 't', question q1: field 'text' should be a str"),
             (good, as_list, [], r"as_list\.json: question q1: the answer should be a string, not list"),
             (good, as_number, [], r"as_number\.json: question q1: the answer should be a string, not int")]
    if version == "2.0":
        cases.append((good, predictions, [f"--na_prob_file={odds}"],
                      r"odds\.json: question q1: the null odds should be a number, not str"))
    for data, answers, extra, message in cases:
        printed = evaluate_script(data, answers, f"--version={version}", *extra)
        assert printed.returncode != 0 and "Traceback" not in printed.stderr, printed.stderr
        assert printed.stderr.count("\n") == 1 and re.match(r"error: .*" + message, printed.stderr), printed.stderr
    with pytest.raises(UserInputError, match=r"empty\.json: no questions"):
        squad.read_squad_file(str(empty))
