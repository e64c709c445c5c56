"""End-to-end runs of run_classifier.main() with a tiny model on data the tests write."""
import csv
import glob
import json
import os
import random
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from absl import flags

import run_classifier
from bert import estimator, files, input_pipeline, model_fn, optimization, plots, tasks, tokenization
from bert.errors import UserInputError
from conftest import REPO, tiny_config

FLAGS = flags.FLAGS
POSITIVE = ["good", "great", "fine", "happy", "love"]
NEGATIVE = ["bad", "awful", "sad", "hate", "poor"]
FILLER = ["the", "movie", "was", "very", "long", "short", "plot"]


@pytest.fixture
def model_dir(tmp_path):
    """A tiny BERT: vocab.txt + bert_config.json (random init: no checkpoint)."""
    folder = tmp_path / "model"
    folder.mkdir()
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + POSITIVE + NEGATIVE + FILLER
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tiny_config(vocab_size=len(vocab)).to_json_file(str(folder / "bert_config.json"))
    return folder


def sentiment_rows(count, seed):
    """(label, text) pairs whose label is given away by one word: learnable in a few dozen steps."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        label = rng.choice(["pos", "neg"])
        word = rng.choice(POSITIVE if label == "pos" else NEGATIVE)
        rows.append((label, f"the movie was very {word}"))
    return rows


def write_tsv(folder, header, rows_by_split):
    folder.mkdir(exist_ok=True)
    for split, rows in rows_by_split.items():
        with open(folder / f"{split}.tsv", "w", encoding="utf-8") as writer:
            writer.write("\t".join(header) + "\n")
            for row in rows:
                writer.write("\t".join(row) + "\n")
    return folder


def run(model_dir, output_dir, **overrides):
    args = dict(bert_config_file=model_dir / "bert_config.json", vocab_file=model_dir / "vocab.txt",
                output_dir=output_dir, max_seq_length=16, train_batch_size=8, eval_batch_size=8,
                predict_batch_size=8, learning_rate=2e-3, num_train_epochs=6, save_checkpoints_steps=1000)
    args.update(overrides)
    FLAGS.unparse_flags()
    FLAGS(["run_classifier"] + [f"--{k}={v}" for k, v in args.items()])
    run_classifier.main([])
    results = output_dir / "eval_results.json"
    return json.loads(results.read_text()) if results.exists() else None


def test_tsv_train_eval_predict(tmp_path, model_dir):
    data = write_tsv(tmp_path / "data", ["label", "text_a"],
                     {"train": sentiment_rows(96, 1), "dev": sentiment_rows(32, 2), "test": sentiment_rows(10, 3)})
    out = tmp_path / "out"
    report = run(model_dir, out, task_name="tsv", data_dir=data, do_train=True, do_eval=True, do_predict=True)
    assert report["accuracy"] >= 0.9 and report["macro_f1"] >= 0.9
    assert report["global_step"] == 72  # 96 examples x 6 epochs / 8
    matrix = np.array(report["confusion_matrix"]["matrix"])
    assert matrix.sum() == 32 and report["confusion_matrix"]["labels"] == ["neg", "pos"]
    assert set(report["per_class"]) == {"neg", "pos"}
    assert sum(c["support"] for c in report["per_class"].values()) == 32
    assert "accuracy = " in (out / "eval_results.txt").read_text()
    png = (out / "confusion_matrix.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000
    assert json.loads((out / "label_map.json").read_text())["labels"] == ["neg", "pos"]
    info = json.loads((out / "model_info.json").read_text())
    assert info["task"] == "classification" and info["labels"] == ["neg", "pos"] and info["text_pair"] is False
    assert info["max_seq_length"] == 16 and (out / info["vocab_file"]).exists() and (out / "bert_config.json").exists()
    lines = (out / "test_results.tsv").read_text().splitlines()
    assert len(lines) == 10
    for line, (label, _) in zip(lines, sentiment_rows(10, 3)):
        neg, pos, name = line.split("\t")
        assert abs(float(neg) + float(pos) - 1.0) < 1e-4
        assert name == ("pos" if float(pos) > 0.5 else "neg")
    assert sum(line.split("\t")[2] == label for line, (label, _) in zip(lines, sentiment_rows(10, 3))) >= 9
    assert glob.glob(str(out / "events.out.tfevents.*"))

    # Evaluating again reuses the cached dev features; a new max length makes new ones.
    cached = sorted(os.listdir(out / "cache"))
    run(model_dir, out, task_name="tsv", data_dir=data, do_eval=True)
    assert sorted(os.listdir(out / "cache")) == cached
    run(model_dir, out, task_name="tsv", data_dir=data, do_eval=True, max_seq_length=12)
    assert len(os.listdir(out / "cache")) == len(cached) + 2  # one more record file and its metadata


def test_confusion_matrix_figure(tmp_path, recwarn, caplog, monkeypatch):
    labels = [f"类别{i}" for i in range(12)] + ["a label far longer than twenty-four characters"]
    matrix = np.diag(np.arange(1, 14))
    matrix[0, 1] = 7
    figure = plots.write_confusion_matrix(str(tmp_path / "cm.png"), {"labels": labels, "matrix": matrix.tolist()})
    axes = figure.axes[0]
    shown = axes.images[0].get_array()
    np.testing.assert_array_equal(shown, matrix)  # rows: true labels, columns: predictions
    assert [t.get_text() for t in axes.get_yticklabels()][:2] == ["类别0", "类别1"]
    assert [t.get_text() for t in axes.get_xticklabels()][-1] == "a label far longer than…"
    assert axes.get_ylabel() == "true label" and axes.get_xlabel() == "predicted label"
    cells = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in axes.texts}
    assert len(cells) == 14 and cells[(0, 1)] == "7" and cells[(12, 12)] == "13"  # nonzero counts only
    assert "98 examples" in axes.get_title()
    assert (tmp_path / "cm.png").read_bytes().startswith(b"\x89PNG") and not list(tmp_path.glob("*.tmp-*"))
    # Without a CJK font (whatever this machine has): one warning naming what to install, none per glyph.
    monkeypatch.setattr(plots, "cjk_fonts", lambda rescan=False: [])
    caplog.clear()
    plots.write_confusion_matrix(str(tmp_path / "boxes.png"), {"labels": labels, "matrix": matrix.tolist()})
    assert not [w for w in recwarn if "missing from font" in str(w.message)]
    assert caplog.text.count("no CJK font installed") == 1 and "fonts-noto-cjk" in caplog.text


def test_output_tsv_escapes_tabs_line_breaks_and_backslashes(tmp_path):
    values = ["plain", "tab\there", "new\nline", "cr\rlf\r\n", "back\\slash", "\\t is no tab", "", "中文 \u2028"]
    path = tmp_path / "out.tsv"
    files.write_tsv(str(path), ["value", "n"], ([value, str(i)] for i, value in enumerate(values)))
    lines = path.read_bytes().decode("utf-8").split("\n")
    assert lines[-1] == "" and len(lines) == len(values) + 2  # a header, one line per row, a final newline
    assert all(line.count("\t") == 1 and "\r" not in line for line in lines[:-1])
    assert lines[3] == "new\\nline\t2" and lines[6] == "\\\\t is no tab\t5"
    assert [files.unescape_tsv_field(line.split("\t")[0]) for line in lines[1:-1]] == values
    assert files.read_tsv(str(path)) == [["value", "n"]] + [[value, str(i)] for i, value in enumerate(values)]
    with pytest.raises(ValueError, match="3 fields"):
        files.write_tsv(str(tmp_path / "ragged.tsv"), ["a", "b"], [["x", "y", "z"]])


def test_labels_with_tabs_and_line_breaks_keep_test_results_rectangular(tmp_path, model_dir):
    """A quoted csv label may hold a tab or a line break; test_results.tsv must still have one line per
    example and one field per class plus the label."""
    names = {"pos": "good\tone", "neg": "bad\none \\ really"}
    data = tmp_path / "data"
    data.mkdir()
    for split, rows in (("train", sentiment_rows(32, 20)), ("test", sentiment_rows(6, 21))):
        with open(data / f"{split}.csv", "w", newline="", encoding="utf-8") as writer:
            out = csv.writer(writer)
            out.writerow(["label", "text_a"])
            out.writerows((names[label], text) for label, text in rows)
    out = tmp_path / "out"
    run(model_dir, out, task_name="csv", data_dir=data, do_train=True, do_predict=True, num_train_epochs=1)
    lines = (out / "test_results.tsv").read_bytes().decode("utf-8").split("\n")
    assert lines[-1] == "" and len(lines) == 7
    for line in lines[:-1]:
        fields = line.split("\t")
        assert len(fields) == 3 and abs(float(fields[0]) + float(fields[1]) - 1) < 1e-4
        assert files.unescape_tsv_field(fields[2]) in names.values()


def test_test_file_labels_are_not_needed_for_prediction(tmp_path, model_dir):
    """A test-file label never seen in training: prediction ignores gold labels, so test_results.tsv is
    written; on the dev set the same label is a one-line error."""
    test_rows = sentiment_rows(5, 23) + [("maybe", "the movie was very long")]
    data = write_tsv(tmp_path / "data", ["label", "text_a"], {"train": sentiment_rows(16, 22), "test": test_rows})
    out = tmp_path / "out"
    run(model_dir, out, task_name="tsv", data_dir=data, do_train=True, do_predict=True, num_train_epochs=1)
    lines = (out / "test_results.tsv").read_text().splitlines()
    assert len(lines) == 6 and all(line.split("\t")[2] in ("neg", "pos") for line in lines)
    (data / "dev.tsv").write_text((data / "test.tsv").read_text())
    with pytest.raises(UserInputError, match=r"dev.tsv:7: label 'maybe' is not in the label set"):
        run(model_dir, out, task_name="tsv", data_dir=data, do_eval=True)


def test_one_class_training_data_is_a_one_line_error(tmp_path, model_dir):
    data = write_tsv(tmp_path / "data", ["label", "text_a"], {"train": [("pos", "good"), ("pos", "great")]})
    with pytest.raises(UserInputError, match=r"train.tsv: the training data has one class \('pos'\)"):
        run(model_dir, tmp_path / "out", task_name="tsv", data_dir=data, do_train=True)
    assert not (tmp_path / "out" / "label_map.json").exists()


def test_eval_during_training_keeps_the_best_checkpoint(tmp_path, model_dir):
    data = write_tsv(tmp_path / "data", ["text_a", "label"],
                     {"train": [(t, l) for l, t in sentiment_rows(64, 4)],
                      "dev": [(t, l) for l, t in sentiment_rows(16, 5)]})
    out = tmp_path / "out"
    report = run(model_dir, out, task_name="tsv", data_dir=data, do_train=True, do_eval=True,
                 eval_every_steps=16, best_metric="loss", num_train_epochs=4)
    best = json.loads((out / "best" / "best_eval.json").read_text())
    assert best["metric"] == "loss"
    assert report["loss"] == pytest.approx(best["value"], rel=1e-5)  # the final eval used the best checkpoint
    assert tf.train.latest_checkpoint(str(out / "best")).endswith(f"model.ckpt-{best['report']['global_step']}")


def test_csv_with_renamed_columns_and_jsonl(tmp_path, model_dir):
    data = tmp_path / "csvdata"
    data.mkdir()
    for split, rows in (("train", sentiment_rows(48, 6)), ("dev", sentiment_rows(16, 7))):
        with open(data / f"{split}.csv", "w", newline="", encoding="utf-8") as writer:
            out = csv.writer(writer)
            out.writerow(["cat", "label", "review"])
            out.writerows([("films", label, text) for label, text in rows])
    report = run(model_dir, tmp_path / "out_csv", task_name="csv", data_dir=data, do_train=True, do_eval=True,
                 text_a_column="review", num_train_epochs=1)
    assert report["global_step"] == 6 and sum(c["support"] for c in report["per_class"].values()) == 16

    data = tmp_path / "jsondata"
    data.mkdir()
    for split, rows in (("train", sentiment_rows(48, 8)), ("dev", sentiment_rows(16, 9))):
        with open(data / f"{split}.json", "w", encoding="utf-8") as writer:
            for index, (label, text) in enumerate(rows):
                writer.write(json.dumps({"sentence": text, "label": 100 + (label == "pos"), "id": index}) + "\n")
    report = run(model_dir, tmp_path / "out_json", task_name="jsonl", data_dir=data, do_train=True, do_eval=True,
                 text_a_column="sentence", label_column="label", num_train_epochs=1)
    assert report["confusion_matrix"]["labels"] == ["100", "101"]


def test_user_processor_module_and_sentence_pairs(tmp_path, model_dir):
    module = tmp_path / "my_processors.py"
    module.write_text('''
import os
import processors

@processors.register_processor("same_mood")
class SameMood(processors.DataProcessor):
    """Pairs: is the second sentence's mood the same as the first's?"""
    def _read(self, path, split):
        examples = []
        with open(path, encoding="utf-8") as reader:
            for number, line in enumerate(reader, 1):
                a, b, label = line.rstrip("\\n").split("|")
                examples.append(processors.InputExample(f"{split}-{number}", a, b, label, f"{path}:{number}"))
        return examples
    def get_train_examples(self, data_dir):
        return self._read(os.path.join(data_dir, "pairs_train.txt"), "train")
    def get_dev_examples(self, data_dir):
        return self._read(os.path.join(data_dir, "pairs_dev.txt"), "dev")
    def get_labels(self):
        return ["different", "same"]
''')
    data = tmp_path / "pairs"
    data.mkdir()
    rng = random.Random(3)
    for split, count in (("train", 48), ("dev", 16)):
        lines = []
        for _ in range(count):
            a, b = rng.choice(POSITIVE + NEGATIVE), rng.choice(POSITIVE + NEGATIVE)
            same = (a in POSITIVE) == (b in POSITIVE)
            lines.append(f"it was {a}|it was {b}|{'same' if same else 'different'}")
        (data / f"pairs_{split}.txt").write_text("\n".join(lines) + "\n")
    report = run(model_dir, tmp_path / "out", task_name="same_mood", processor_module=module, data_dir=data,
                 do_train=True, do_eval=True, num_train_epochs=1)
    assert report["confusion_matrix"]["labels"] == ["different", "same"] and report["global_step"] == 6

    tokenizer = tokenization.FullTokenizer(str(model_dir / "vocab.txt"))
    task = tasks.ClassificationTask(["different", "same"], tokenizer, 10)
    from processors import InputExample
    features = task.convert(InputExample("x", "the movie was very good", "the plot was bad", "same"))
    # 5 + 4 tokens into 10 - 3: the longer side loses one, then the tie goes against the second.
    assert tokenizer.convert_ids_to_tokens(features["input_ids"]) == [
        "[CLS]", "the", "movie", "was", "very", "[SEP]", "the", "plot", "was", "[SEP]"]
    assert features["segment_ids"] == [0] * 6 + [1] * 4 and features["input_mask"] == [1] * 10


def test_truncation_trims_the_longer_side():
    a, b = list("abcdefg"), list("xyz")
    input_pipeline.truncate_pair(a, b, 6)
    assert a == list("abc") and b == list("xyz")
    a, b = list("abcd"), list("wxyz")
    input_pipeline.truncate_pair(a, b, 5)
    assert a == list("abc") and b == list("wx")


def test_multi_label(tmp_path, model_dir):
    rng = random.Random(11)

    def rows(count):
        """Three words each, so only the words (not the length) tell the labels."""
        out = []
        for _ in range(count):
            labels = []
            mood = rng.choice(POSITIVE + NEGATIVE)
            if mood in POSITIVE:
                labels.append("pos")
            size = rng.choice(["long", "short"])
            if size == "long":
                labels.append("long")
            out.append((",".join(labels) or "none", f"{rng.choice(['the', 'movie', 'plot'])} {mood} {size}"))
        return out

    data = write_tsv(tmp_path / "data", ["label", "text_a"],
                     {"train": rows(96), "dev": rows(32), "test": rows(8)})
    out = tmp_path / "out"
    report = run(model_dir, out, task_name="tsv", data_dir=data, do_train=True, do_eval=True, do_predict=True,
                 multi_label=True, num_train_epochs=10, pooling="mean")
    assert set(report["per_class"]) == {"long", "none", "pos"}
    assert report["exact_match"] >= 0.8
    assert not (out / "confusion_matrix.png").exists()  # no confusion matrix for multi-label
    for line in (out / "test_results.tsv").read_text().splitlines():
        fields = line.split("\t")
        assert len(fields) == 4 and all(0 <= float(p) <= 1 for p in fields[:3])
        assert set(filter(None, fields[3].split(","))) <= {"long", "none", "pos"}


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_mixed_precision_trains(tmp_path, model_dir, precision):
    data = write_tsv(tmp_path / "data", ["label", "text_a"], {"train": sentiment_rows(64, 12), "dev": sentiment_rows(32, 13)})
    report = run(model_dir, tmp_path / "out", task_name="tsv", data_dir=data, do_train=True, do_eval=True,
                 precision=precision, num_train_epochs=8)
    assert report["loss"] < 0.2  # from ln 2 = 0.69 at the start
    variables = dict(tf.train.list_variables(str(tmp_path / "out")))
    reader = tf.train.load_checkpoint(str(tmp_path / "out"))
    assert reader.get_variable_to_dtype_map()["bert/embeddings/word_embeddings"] == tf.float32
    assert ("optimizer_state/loss_scale" in variables) == (precision == "fp16")


def test_mirrored_over_two_cpus_matches_one_device(tmp_path, model_dir):
    """Same global batch, no dropout, no shuffling: two replicas must follow one device's trajectory.

    Only the order of the floating-point sums differs (the all-reduce), about 1e-7 relative per
    step; over 8 Adam steps that stays far below the 1e-4 allowed here.
    """
    config = tiny_config(vocab_size=22, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    tokenizer = tokenization.FullTokenizer(str(model_dir / "vocab.txt"))
    task = tasks.ClassificationTask(["neg", "pos"], tokenizer, 16, dropout_prob=0.0)
    from processors import InputExample
    examples = [InputExample(f"t{i}", text, None, label) for i, (label, text) in enumerate(sentiment_rows(64, 14))]
    path, _ = input_pipeline.cached_tfrecord(str(tmp_path / "cache"), "train", {}, examples, task.convert)
    optimizer_config = optimization.OptimizerConfig(learning_rate=1e-3, num_train_steps=8, num_warmup_steps=2)

    def train(name, distribution, batch):
        settings = estimator.RunSettings(model_dir=str(tmp_path / name), distribution=distribution, cpu_devices=2,
                                         seed=7)
        bert = estimator.build_estimator(model_fn.model_fn_builder(task, config, None, optimizer_config), settings)
        bert.train(input_pipeline.tfrecord_input_fn_builder(path, task.feature_spec(), batch, is_training=True,
                                                            shuffle_buffer=0), max_steps=8)
        reader = tf.train.load_checkpoint(str(tmp_path / name))
        return {n: reader.get_tensor(n) for n in ("output_weights", "bert/pooler/dense/kernel")}, reader

    single, single_reader = train("single", "none", 8)
    mirrored, mirrored_reader = train("mirrored", "mirrored", 4)  # 2 replicas x 4 = the same 8
    assert single_reader.get_tensor("global_step") == mirrored_reader.get_tensor("global_step") == 8
    initial = tf.train.load_checkpoint(str(tmp_path / "single" / "model.ckpt-0")).get_tensor("output_weights")
    assert np.abs(single["output_weights"] - initial).max() > 1e-3  # training did move the weights
    for name in single:
        np.testing.assert_allclose(mirrored[name], single[name], atol=1e-4)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_workers_with_tf_config(tmp_path, model_dir):
    data = write_tsv(tmp_path / "data", ["label", "text_a"], {"train": sentiment_rows(32, 15), "dev": sentiment_rows(8, 16)})
    out = tmp_path / "out"
    cluster = {"chief": [f"127.0.0.1:{free_port()}"], "worker": [f"127.0.0.1:{free_port()}"]}
    args = [sys.executable, os.path.join(REPO, "run_classifier.py"), "--task_name=tsv", f"--data_dir={data}",
            "--do_train", "--do_eval", f"--vocab_file={model_dir / 'vocab.txt'}",
            f"--bert_config_file={model_dir / 'bert_config.json'}", f"--output_dir={out}", "--max_seq_length=16",
            "--train_batch_size=8", "--num_train_epochs=1", "--distribution=multi_worker"]

    def start(kind):
        env = dict(os.environ, TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": kind, "index": 0}}))
        return subprocess.Popen(args, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    processes = [start("chief"), start("worker")]
    try:
        outputs = [p.communicate(timeout=240)[0] for p in processes]
    finally:
        for p in processes:
            p.kill()
    assert [p.returncode for p in processes] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    assert tf.train.latest_checkpoint(str(out)).endswith("model.ckpt-4")  # 32 examples / 8 per update
    assert json.loads((out / "eval_results.json").read_text())["global_step"] == 4
    assert "eval_results" not in outputs[1]  # only the chief evaluates


def test_bad_inputs_get_clear_errors(tmp_path, model_dir):
    data = write_tsv(tmp_path / "data", ["label", "text_a"], {"train": sentiment_rows(16, 17),
                                                              "dev": [("maybe", "the movie was very long")]})
    base = dict(task_name="tsv", data_dir=data, do_train=True)
    with pytest.raises(UserInputError, match="max_seq_length=65 is above max_position_embeddings 64"):
        run(model_dir, tmp_path / "o1", max_seq_length=65, **base)
    with pytest.raises(UserInputError, match=r"dev.tsv:2: label 'maybe' is not in the label set"):
        run(model_dir, tmp_path / "o2", do_eval=True, **base)
    with pytest.raises(UserInputError, match="data folder not found"):
        run(model_dir, tmp_path / "o3", **dict(base, data_dir=tmp_path / "nowhere"))
    with pytest.raises(UserInputError, match="unknown|not registered|no processor"):
        run(model_dir, tmp_path / "o4", **dict(base, task_name="nosuchtask"))
    # A checkpoint whose shapes do not fit the config: the variable is named.
    wide = tmp_path / "wide"
    wide.mkdir()
    (wide / "vocab.txt").write_text((model_dir / "vocab.txt").read_text())
    tiny_config(vocab_size=22, hidden_size=48).to_json_file(str(wide / "bert_config.json"))
    run(wide, tmp_path / "o5", num_train_epochs=1, **base)
    with pytest.raises(UserInputError, match=r"bert/embeddings/word_embeddings has shape \[22, 48\]"):
        run(model_dir, tmp_path / "o6", init_checkpoint=tmp_path / "o5", **base)


def test_script_prints_one_line_not_a_traceback(tmp_path, model_dir):
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, "run_classifier.py"), "--task_name=tsv", f"--data_dir={tmp_path}",
         "--do_train", f"--vocab_file={model_dir / 'vocab.txt'}", f"--bert_config_file={model_dir / 'bert_config.json'}",
         f"--output_dir={tmp_path / 'out'}", "--max_seq_length=16"],
        capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 2
    assert "train.tsv" in result.stderr and "Traceback" not in result.stderr
