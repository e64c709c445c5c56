"""Few-shot: the episode sampler, the prototypical head, the class split, evaluation, run_fewshot.main()."""
import dataclasses
import json
import random

import numpy as np
import pytest
import tensorflow as tf
from absl import flags

import run_fewshot
from bert import fewshot, files, input_pipeline, plots, tasks
from bert.errors import UserInputError
from conftest import run_in_graph, tiny_config

FLAGS = flags.FLAGS
tf1 = tf.compat.v1


def test_episode_sampler_invariants():
    rows = {c: np.arange(c * 10, c * 10 + 10) for c in range(7)}  # class c owns rows 10c..10c+9
    sampler = input_pipeline.EpisodeSampler(rows, n_way=4, k_shot=2, q_query=3, seed=5)
    seen_classes = set()
    for _ in range(50):
        chosen, labels, is_query, classes = sampler.sample()
        assert len(chosen) == 4 * 5 and len(set(chosen)) == 20  # no row twice: support and query disjoint
        assert len(set(classes)) == 4
        assert list(labels[:8]) == [0, 0, 1, 1, 2, 2, 3, 3] and list(labels[8:]) == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3
        assert list(is_query) == [0] * 8 + [1] * 12
        for row, label in zip(chosen, labels):
            assert row // 10 == classes[label]  # every row belongs to its episode class
        seen_classes.update(classes)
    assert seen_classes == set(range(7))
    first = input_pipeline.EpisodeSampler(rows, 4, 2, 3, seed=5).sample()[0]
    np.testing.assert_array_equal(input_pipeline.EpisodeSampler(rows, 4, 2, 3, seed=5).sample()[0], first)
    assert not np.array_equal(input_pipeline.EpisodeSampler(rows, 4, 2, 3, seed=6).sample()[0], first)
    with pytest.raises(ValueError, match="8-way episodes need 8 classes"):
        input_pipeline.EpisodeSampler(rows, 8, 1, 1, seed=0)
    with pytest.raises(ValueError, match="fewer than 11 examples"):
        input_pipeline.EpisodeSampler(rows, 2, 5, 6, seed=0)


class FixedEmbeddingModel:
    """Stands in for BertModel: its 'sequence output' is given, so the head sees known embeddings."""

    def __init__(self, sequence):
        self.sequence = sequence

    def get_sequence_output(self):
        return self.sequence


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_prototypical_loss_matches_numpy(distance):
    rng = np.random.RandomState(0)
    n, k, q, hidden = 3, 2, 2, 4
    embeddings = rng.randn(n * (k + q), hidden).astype(np.float32)
    labels = np.array([0, 0, 1, 1, 2, 2, 0, 0, 1, 1, 2, 2], np.int32)
    is_query = np.array([0] * 6 + [1] * 6, np.int32)
    task = tasks.FewShotTask(["a", "b", "c"], None, 1, pooling="cls", distance=distance)

    def build():
        features = {"input_mask": tf.ones([12, 1], tf.int32), "episode_labels": tf.constant(labels),
                    "is_query": tf.constant(is_query)}
        model = FixedEmbeddingModel(tf.constant(embeddings[:, None, :]))
        return task.build(model, features, tf.estimator.ModeKeys.TRAIN).loss

    loss = run_in_graph(build)
    support, query = embeddings[:6], embeddings[6:]
    prototypes = np.stack([support[labels[:6] == c].mean(0) for c in range(3)])
    if distance == "euclidean":
        logits = -np.array([[np.sum((x - p) ** 2) for p in prototypes] for x in query])
    else:
        logits = 10.0 * np.array([[x @ p / np.linalg.norm(x) / np.linalg.norm(p) for p in prototypes] for x in query])
    log_probs = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    expected = -np.mean(log_probs[np.arange(6), labels[6:]])
    assert loss == pytest.approx(expected, rel=1e-5)


def test_class_split_is_disjoint_complete_and_seeded():
    classes = [f"c{i}" for i in range(20)]
    split = fewshot.split_classes(classes, test_ratio=0.3, val_ratio=0.1, seed=1)
    parts = [set(split[k]) for k in ("train_classes", "val_classes", "test_classes")]
    assert [len(p) for p in parts] == [12, 2, 6]
    assert set.union(*parts) == set(classes) and sum(map(len, parts)) == 20
    assert fewshot.split_classes(classes, 0.3, 0.1, seed=1) == split
    assert fewshot.split_classes(classes, 0.3, 0.1, seed=2) != split
    with pytest.raises(UserInputError, match="cannot split 3 classes"):
        fewshot.split_classes(classes[:3], 0.9, 0.3)


def test_small_classes_are_named_and_left_out():
    rows = {0: np.arange(3), 1: np.arange(10), 2: np.arange(10), 3: np.arange(1)}
    labels = ["tiny", "big", "large", "single"]
    kept, message = fewshot.keep_classes_with(rows, 4, 2, labels, "training")
    assert sorted(kept) == [1, 2]
    assert "2 class(es) have fewer than 4 examples" in message and "single (1), tiny (3)" in message
    with pytest.raises(UserInputError, match="3-way episodes need 3 classes with at least 4 examples"):
        fewshot.keep_classes_with(rows, 4, 3, labels, "training")


def test_evaluation_on_embeddings():
    rng = np.random.RandomState(1)
    centers = rng.randn(6, 8) * 10
    label_ids = np.repeat(np.arange(6), 20)
    separated = centers[label_ids] + rng.randn(120, 8) * 0.1
    rows = fewshot.rows_by_class(label_ids, range(6))
    result = tasks.FewShotScorer(5, 1, 5, episodes=200, seed=0, distance="euclidean").score(separated, rows)
    assert result["accuracy"] == 1.0 and result["ci95"] == 0.0 and result["episodes"] == 200
    noise = rng.randn(120, 8)
    chance = tasks.FewShotScorer(5, 1, 5, episodes=400, seed=0, distance="euclidean").score(noise, rows)
    assert abs(chance["accuracy"] - 0.2) < 3 * chance["ci95"] + 0.02
    summary = tasks.summarize([1.0, 0.0, 1.0, 0.0], seconds=2.0)
    assert summary["accuracy"] == 0.5 and summary["episodes_per_second"] == 2.0
    assert summary["ci95"] == pytest.approx(1.96 * np.std([1, 0, 1, 0], ddof=1) / 2)
    assert fewshot.parse_setting("10w5s") == (10, 5)
    with pytest.raises(UserInputError, match="not of the form"):
        fewshot.parse_setting("5x1s")


def test_fewshot_figure_has_a_line_and_band_per_row_and_way(tmp_path):
    def result(accuracy):
        return {"accuracy": accuracy, "ci95": 0.02, "episodes": 100}

    rows = {name: {s: result(base + 0.1 * k) for s, k in (("5w1s", 1), ("5w5s", 5), ("10w1s", 1), ("10w5s", 5))}
            for name, base in (("meta-trained", 0.3), ("frozen encoder", 0.2), ("fine-tuning", 0.1))}
    figure = plots.write_fewshot_plot(str(tmp_path / "f.png"), rows, held_out_classes=20)
    axes = figure.axes[0]
    lines = axes.get_lines()
    assert len(lines) == 3 * 2 and len(axes.collections) == 3 * 2  # rows x distinct N, one band each
    assert [text.get_text() for text in axes.get_legend().get_texts()] == [
        f"{name}, {n}-way" for name in rows for n in (5, 10)]
    np.testing.assert_allclose(lines[0].get_xdata(), [1, 5])
    np.testing.assert_allclose(lines[0].get_ydata(), [40, 80])  # percent
    band = axes.collections[0].get_paths()[0].vertices
    assert band[:, 1].min() == pytest.approx(38) and band[:, 1].max() == pytest.approx(82)  # +- ci95
    assert "shots" in axes.get_xlabel() and "accuracy" in axes.get_ylabel()
    assert "20 held-out classes" in axes.get_title()
    assert (tmp_path / "f.png").read_bytes().startswith(b"\x89PNG") and not list(tmp_path.glob("*.tmp-*"))
    # One setting: a point with an error bar, no band; no rows at all still draws.
    one = plots.write_fewshot_plot(str(tmp_path / "one.png"), {"meta-trained": {"5w1s": result(0.5)}}).axes[0]
    (point, _, (bar,)), = one.containers  # one ErrorbarContainer: data line, caps, bar
    assert point.get_ydata()[0] == pytest.approx(50) and bar.get_segments()[0][:, 1] == pytest.approx([48, 52])
    assert [text.get_text() for text in one.get_legend().get_texts()] == ["meta-trained, 5-way"]
    plots.write_fewshot_plot(str(tmp_path / "none.png"), {})
    assert (tmp_path / "one.png").stat().st_size > 0 and (tmp_path / "none.png").stat().st_size > 0


# Each class has its own words; every sentence also carries three noise words shared by all classes.
# A random encoder is distracted by the noise; meta-training can learn to ignore it, which carries
# over to held-out classes (their own words are never seen in training).
TOPICS = {f"topic{i}": [f"w{i}a", f"w{i}b", f"w{i}c"] for i in range(8)}
NOISE = [f"n{i}" for i in range(12)]


@pytest.fixture
def tiny_model(tmp_path):
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "about", "this", "is"] + sum(TOPICS.values(), []) + NOISE
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tiny_config(vocab_size=len(vocab)).to_json_file(str(tmp_path / "bert_config.json"))
    return tmp_path


def write_data(path, per_class=12, seed=0, topics=TOPICS):
    rng = random.Random(seed)
    lines = [f"this is about {rng.choice(words)} {' '.join(rng.sample(NOISE, 3))}\t{topic}"
             for topic, words in topics.items() for _ in range(per_class)]
    path.write_text("\n".join(lines) + "\n")
    return path


def run(tiny_model, output_dir, **overrides):
    args = dict(bert_config_file=tiny_model / "bert_config.json", vocab_file=tiny_model / "vocab.txt",
                output_dir=output_dir, max_seq_length=12, n_way=3, k_shot=2, q_query=2, train_episodes=30,
                learning_rate=1e-3, eval_settings="3w1s,3w2s", eval_q_query=4, eval_episodes=50, predict_batch_size=16,
                pooling="mean")
    args.update(overrides)
    FLAGS.unparse_flags()
    FLAGS(["run_fewshot"] + [f"--{k}={v}" for k, v in args.items() if v is not None])
    run_fewshot.main([])


def test_train_evaluate_predict_end_to_end(tmp_path, tiny_model):
    data = write_data(tmp_path / "topics.tsv")
    (tmp_path / "support.tsv").write_text("this is about w0a\tzero\nthis is about w0b\tzero\n"
                                          "this is about w5a\tfive\nthis is about w5c\tfive\n")
    (tmp_path / "texts.txt").write_text("this is about w0c\n\nthis is about w5b\n")
    out = tmp_path / "out"
    run(tiny_model, out, do_train=True, do_eval=True, do_predict=True, data_file=data, test_class_ratio=0.375,
        support_file=tmp_path / "support.tsv", predict_file=tmp_path / "texts.txt", baseline="finetune",
        baseline_episodes=2, baseline_steps=2)
    split = json.loads((out / "class_split.json").read_text())
    assert len(split["test_classes"]) == 3 and len(split["train_classes"]) == 5
    assert not set(split["test_classes"]) & set(split["train_classes"])
    info = json.loads((out / "model_info.json").read_text())
    assert info["task"] == "fewshot" and info["pooling"] == "mean" and info["distance"] == "euclidean"
    results = json.loads((out / "fewshot_results.json").read_text())
    for setting in ("3w1s", "3w2s"):
        assert set(results[setting]) >= {"accuracy", "ci95", "episodes"} and results[setting]["episodes"] == 50
        assert 0 <= results[setting]["accuracy"] <= 1
    assert set(results["rows"]) == {"meta-trained", "random init", "fine-tuning"}
    assert results["rows"]["fine-tuning"]["3w1s"]["episodes"] == 2
    assert results["training"]["episodes"] == 30
    # Meta-training learns to look past the shared noise words: it must beat a random encoder on
    # the held-out topics.
    assert results["rows"]["meta-trained"]["3w2s"]["accuracy"] > results["rows"]["random init"]["3w2s"]["accuracy"]
    assert "| meta-trained |" in (out / "fewshot_results.md").read_text()
    png = (out / "fewshot_results.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000
    lines = (out / "predictions.tsv").read_text().splitlines()
    assert lines[0].split("\t") == ["text", "label", "probability", "distance:five", "distance:zero"]
    assert [line.split("\t")[0] for line in lines[1:]] == ["this is about w0c", "this is about w5b"]
    assert all(0 <= float(line.split("\t")[2]) <= 1 for line in lines[1:])


def test_prediction_straight_from_a_pretrained_checkpoint(tmp_path, tiny_model, caplog):
    # A "pretrained" checkpoint: the output of a short meta-training run in another folder.
    data = write_data(tmp_path / "topics.tsv")
    run(tiny_model, tmp_path / "pretrained", do_train=True, data_file=data, train_episodes=5, pooling="cls",
        distance="cosine")
    (tmp_path / "support.tsv").write_text("this is about w1a\tone\nthis is about w2a\ttwo\n")
    (tmp_path / "texts.txt").write_text("this is about w1b\n")
    caplog.set_level("INFO")
    run(tiny_model, tmp_path / "out", do_predict=True, init_checkpoint=tmp_path / "pretrained",
        support_file=tmp_path / "support.tsv", predict_file=tmp_path / "texts.txt", pooling="auto", verbosity=0)
    # auto: what the model it starts from was trained with (its model_info.json).
    assert f"pooling cls (auto: from {tmp_path / 'pretrained' / 'model_info.json'})" in caplog.text
    assert f"distance cosine (auto: from {tmp_path / 'pretrained' / 'model_info.json'})" in caplog.text
    rows = (tmp_path / "out" / "predictions.tsv").read_text().splitlines()
    assert len(rows) == 2 and rows[1].split("\t")[1] in {"one", "two"}


def test_predictions_tsv_stays_rectangular_whatever_the_texts_hold(tmp_path, tiny_model, capsys):
    (tmp_path / "support.tsv").write_text("this is about w0a\tzero\nthis is about w5a\tfive\n")
    texts = ["this is about w0c\tw5b", "a back\\slash w0a \\t", "this is about w5b"]
    (tmp_path / "texts.txt").write_text("\n".join(texts) + "\n")
    run(tiny_model, tmp_path / "out", do_predict=True, support_file=tmp_path / "support.tsv",
        predict_file=tmp_path / "texts.txt")
    lines = (tmp_path / "out" / "predictions.tsv").read_text(encoding="utf-8").split("\n")
    assert lines[0].split("\t") == ["text", "label", "probability", "distance:five", "distance:zero"]
    assert lines[-1] == "" and len(lines) == len(texts) + 2
    rows = [line.split("\t") for line in lines[1:-1]]
    assert all(len(row) == 5 for row in rows)
    assert [files.unescape_tsv_field(row[0]) for row in rows] == texts
    assert all(row[1] in ("five", "zero") and 0 <= float(row[2]) <= 1 for row in rows)
    printed = capsys.readouterr().out
    assert "this is about w0c\\tw5b" in printed and "a back\\\\slash w0a \\\\t" in printed


def test_one_class_support_set_warns(tmp_path, tiny_model, caplog):
    (tmp_path / "support.tsv").write_text("this is about w0a\tzero\nthis is about w0b\tzero\n")
    (tmp_path / "texts.txt").write_text("this is about w5b\nthis is about w0c\n")
    run(tiny_model, tmp_path / "out", do_predict=True, support_file=tmp_path / "support.tsv",
        predict_file=tmp_path / "texts.txt")
    assert "support.tsv" in caplog.text and "one class ('zero')" in caplog.text and "probability 1" in caplog.text
    rows = [line.split("\t") for line in (tmp_path / "out" / "predictions.tsv").read_text().splitlines()[1:]]
    assert [row[1] for row in rows] == ["zero", "zero"] and all(float(row[2]) == 1 for row in rows)


def test_bad_inputs(tmp_path, tiny_model):
    bad = tmp_path / "bad.tsv"
    bad.write_text("this is about w0a\ttopic0\nthis is about w0b topic0\n")
    with pytest.raises(UserInputError, match=r"bad.tsv:2: expected 2 tab-separated columns"):
        run(tiny_model, tmp_path / "o1", do_train=True, data_file=bad)
    # Only two classes have enough examples for 3-way training episodes.
    few = {"topic0": TOPICS["topic0"], "topic1": TOPICS["topic1"], "topic2": TOPICS["topic2"],
           "topic3": TOPICS["topic3"]}
    small = write_data(tmp_path / "small.tsv", per_class=3, topics=few)
    with open(small, "a") as writer:
        writer.write("this is about w0a w0b\ttopic0\nthis is about w1a\ttopic1\n" * 3)
    with pytest.raises(UserInputError, match=r"meta-training: 3-way episodes need 3 classes with at least 4 "
                                             r"examples each, but only 2 have that many"):
        run(tiny_model, tmp_path / "o2", do_train=True, data_file=small, class_split_file=write_json(
            tmp_path / "split.json", {"train_classes": list(few), "test_classes": []}))
    train = write_data(tmp_path / "train.tsv", topics={k: TOPICS[k] for k in ("topic0", "topic1", "topic2")})
    evaluation = write_data(tmp_path / "eval.tsv", topics={k: TOPICS[k] for k in ("topic2", "topic3", "topic4")})
    with pytest.raises(UserInputError, match=r"the train and test files share classes \['topic2'\]"):
        run(tiny_model, tmp_path / "o3", do_train=True, train_file=train, eval_file=evaluation)
    with pytest.raises(UserInputError, match="not of the form"):
        run(tiny_model, tmp_path / "o4", do_eval=True, data_file=train, eval_settings="3way")
    with pytest.raises(UserInputError, match="--do_predict needs --support_file and --predict_file"):
        run(tiny_model, tmp_path / "o5", do_predict=True)


def write_json(path, value):
    path.write_text(json.dumps(value))
    return path


def test_adaptation_row_prediction_and_export_agree(tmp_path, tiny_model):
    """--adapt_steps: a row of the table, a setting of --do_predict, and an export that gives what
    --do_predict gives for the same support set."""
    import export_savedmodel
    from bert import adaptation, config, export
    data = write_data(tmp_path / "topics.tsv")
    out = tmp_path / "out"
    adapt = dict(adapt_steps=5, adapt_learning_rate=1e-2, adapt_layers=1, adapt_layer_learning_rate=1e-3)
    run(tiny_model, out, do_train=True, do_eval=True, data_file=data, test_class_ratio=0.375, eval_frozen=False,
        distance="cosine", **adapt)
    rows = json.loads((out / "fewshot_results.json").read_text())["rows"]
    assert set(rows) == {"meta-trained", "meta-trained + adaptation"}
    assert rows["meta-trained + adaptation"]["3w2s"]["episodes"] == 50
    assert "| meta-trained + adaptation |" in (out / "fewshot_results.md").read_text()

    support = tmp_path / "support.tsv"
    support.write_text("this is about w0a\tzero\nthis is about w0b n1\tzero\nthis is about w5a\tfive\n"
                       "about w5c n2 n3\tfive\nthis w6a\tsix\n")
    texts = ["this is about w0c", "this is about w5b n4", "w6b", "about"]
    (tmp_path / "texts.txt").write_text("\n".join(texts) + "\n")
    run(tiny_model, out, do_predict=True, support_file=support, predict_file=tmp_path / "texts.txt",
        distance="cosine", **adapt)
    lines = [line.split("\t") for line in (out / "predictions.tsv").read_text().splitlines()[1:]]
    setup = config.TrainingConfig(output_dir=str(out), bert_config_file=str(tiny_model / "bert_config.json"),
                                  text=config.TextConfig(vocab_file=str(tiny_model / "vocab.txt")), max_seq_length=12,
                                  pooling="mean")
    bert_config = setup.bert_config()
    tokenizer = setup.tokenizer(bert_config)
    from processors import read_text_label_file, read_text_lines

    def classify(steps):
        return fewshot.classify(lambda classes: tasks.FewShotTask(classes, tokenizer, 12, "mean", "cosine"), setup,
                                bert_config, setup.feature_cache(), read_text_label_file(str(support)),
                                read_text_lines(str(tmp_path / "texts.txt")),
                                adaptation.AdaptConfig(steps, 1e-2, 1, 1e-3))
    adapted, plain = classify(5), classify(0)
    assert np.abs(adapted.probabilities - plain.probabilities).max() > 1e-3  # adaptation changed something
    assert [line[1] for line in lines] == [adapted.classes[i] for i in adapted.probabilities.argmax(-1)]
    np.testing.assert_allclose([float(line[2]) for line in lines], adapted.probabilities.max(-1), atol=1e-4)

    FLAGS.unparse_flags()
    FLAGS(["export_savedmodel", f"--model_dir={out}", f"--export_dir={tmp_path / 'export'}",
           f"--support_file={support}"] + [f"--{k}={v}" for k, v in adapt.items()])
    export_savedmodel.main([])
    served = tf.saved_model.load(export.resolve_saved_model(str(tmp_path / "export"))).signatures["serving_default"](
        text_a=tf.constant(texts))
    np.testing.assert_allclose(served["probabilities"].numpy(), adapted.probabilities, atol=1e-5)
    np.testing.assert_allclose(served["distances"].numpy(), adapted.distances, atol=1e-5)


def test_episode_sizes_drawn_from_ranges(tmp_path, tiny_model):
    rows = {c: np.arange(c * 10, c * 10 + 10) for c in range(7)}
    sampler = input_pipeline.EpisodeSampler(rows, n_way=(2, 5), k_shot=(1, 4), q_query=3, seed=1)
    sizes = set()
    for _ in range(200):
        chosen, labels, is_query, classes = sampler.sample()
        n, k = len(classes), int((is_query == 0).sum()) // len(classes)
        assert 2 <= n <= 5 and 1 <= k <= 4 and len(chosen) == n * (k + 3) == len(set(chosen))
        assert list(labels[:n * k]) == list(np.repeat(np.arange(n), k)) and (is_query[n * k:] == 1).all()
        sizes.add((n, k))
    assert len(sizes) == 16  # every combination turns up
    with pytest.raises(ValueError, match="fewer than 8 examples"):
        input_pipeline.EpisodeSampler({0: np.arange(7), 1: np.arange(7, 20)}, 2, (1, 5), 3, seed=0)
    assert fewshot.parse_range("5:20", 2, "--n_way") == (5, 20) and fewshot.parse_range(" 3 ", 2, "x") == (3, 3)
    for bad in ("20:5", "1:3", "5-20", ""):
        with pytest.raises(UserInputError, match="--n_way"):
            fewshot.parse_range(bad, 2, "--n_way")
    # Meta-training on episodes of varying size.
    out = tmp_path / "out"
    run(tiny_model, out, do_train=True, data_file=write_data(tmp_path / "topics.tsv"), n_way="2:4", k_shot="1:3",
        train_episodes=6)
    assert json.loads((out / "fewshot_results.json").read_text())["training"]["episodes"] == 6
    FLAGS.unparse_flags()
    with pytest.raises(flags.IllegalFlagValueError, match="k_shot"):
        FLAGS(["run_fewshot", "--k_shot=3:1"])
    FLAGS.unparse_flags()


def test_default_episode_shapes_fit_the_data():
    """--n_way / --k_shot not given: the recipe's 5:10-way 1:10-shot, narrowed to the classes there are."""
    episodes = fewshot.FewShotConfig(n_way=(5, 10), k_shot=(1, 10), q_query=5, fit_n_way=True, fit_k_shot=True)
    rows = {c: np.arange(n) for c, n in enumerate([40, 12, 30, 3, 25, 18, 40])}  # class 3 too small for 1 + 5
    fitted = fewshot.fit_episode_shapes(episodes, rows)
    assert fitted.n_way == (5, 6) and fitted.k_shot == (1, 7)  # 6 usable classes, the smallest has 12 = 7 + 5
    assert fewshot.fit_episode_shapes(dataclasses.replace(episodes, fit_n_way=False, fit_k_shot=False), rows) \
        == dataclasses.replace(episodes, fit_n_way=False, fit_k_shot=False)
    big = {c: np.arange(100) for c in range(30)}
    assert fewshot.fit_episode_shapes(episodes, big) == episodes  # room for the whole range: unchanged
