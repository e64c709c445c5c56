"""run_multitask.py on a tiny model: a sentence, a sentence-pair and an NER task on one encoder."""
import json
import random

import numpy as np
import pytest
from absl import flags

import run_multitask
import tensorflow as tf

from bert import input_pipeline, multitask
from bert.errors import UserInputError
from conftest import tiny_config
from test_run_ner import OTHER, PEOPLE, PLACES, conll_sentences, write_conll

FLAGS = flags.FLAGS
GOOD, BAD = ["fine", "lovely", "superb"], ["awful", "poor", "dreadful"]
TOPICS = {"sport": ["goal", "match"], "food": ["soup", "bread"], "music": ["song", "piano"]}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("multitask")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + PEOPLE + PLACES + OTHER + GOOD + BAD + sum(
        TOPICS.values(), [])
    (root / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tiny_config(vocab_size=len(vocab)).to_json_file(str(root / "bert_config.json"))
    rng = random.Random(0)
    sentiment = root / "sentiment"
    sentiment.mkdir()
    for part, count in (("train", 60), ("dev", 30)):
        rows = [(label, " ".join([rng.choice(words)] + rng.sample(OTHER, 2)))
                for label, words in [("pos", GOOD), ("neg", BAD)] for _ in range(count // 2)]
        (sentiment / f"{part}.tsv").write_text("label\ttext_a\n" + "".join(f"{l}\t{t}\n" for l, t in rows))
    topic = root / "topic"
    topic.mkdir()
    for part, count in (("train", 40), ("dev", 10)):
        # A sentence pair whose label is read from the second text only.
        lines = [json.dumps({"sentence": " ".join(rng.sample(OTHER, 2)),
                             "context": " ".join([rng.choice(words)] + rng.sample(OTHER, 2)), "label": label})
                 for label, words in TOPICS.items() for _ in range(count)]
        (topic / f"{part}.jsonl").write_text("\n".join(lines) + "\n")
    entities = root / "entities"
    entities.mkdir()
    write_conll(entities / "train.txt", conll_sentences(80, 0))
    write_conll(entities / "dev.txt", conll_sentences(30, 1) + [[("met", "O"), ("xyz", "B-ORG")]])  # a new tag
    options = {"topic": {"text_a_column": "sentence", "text_b_column": "context"},
               "entities": {"use_crf": True, "loss_weight": 2}}
    (root / "options.json").write_text(json.dumps(options))
    return root


def run(world, out, **overrides):
    args = dict(bert_config_file=world / "bert_config.json", vocab_file=world / "vocab.txt", output_dir=out,
                tasks=f"sentiment:tsv:{world / 'sentiment'},topic:jsonl:{world / 'topic'},"
                      f"entities:conll:{world / 'entities'}",
                task_options=world / "options.json", max_seq_length=16, train_batch_size=16, learning_rate=3e-3,
                num_train_epochs=8, predict_batch_size=32)
    args.update(overrides)
    FLAGS.unparse_flags()
    FLAGS(["run_multitask"] + [f"--{k}={v}" for k, v in args.items() if v is not None])
    run_multitask.main([])


@pytest.fixture(scope="module")
def trained(world, tmp_path_factory):
    """The three tasks trained together (130 steps), validated at the end (--eval_every_steps above the steps),
    the best checkpoint kept by the entities' F1."""
    out = tmp_path_factory.mktemp("trained") / "out"
    run(world, out, do_train=True, do_eval=True, eval_every_steps=200, best_task="entities")
    return out


def test_three_tasks_on_one_encoder(world, trained, tmp_path):
    out = trained
    report = json.loads((out / "eval_results.json").read_text())
    best = json.loads((out / "best" / "best_eval.json").read_text())  # kept by --best_task's figure
    assert best["metric"] == "dev entities" and best["value"] == pytest.approx(report["entities"])
    assert set(report["tasks"]) == {"sentiment", "topic", "entities"}
    assert report["sentiment"] == report["tasks"]["sentiment"]["accuracy"] > 0.9
    assert report["topic"] == report["tasks"]["topic"]["accuracy"] > 0.9
    assert report["entities"] == report["tasks"]["entities"]["f1"] > 0.8
    assert set(report["tasks"]["entities"]["per_type"]) == {"PER", "LOC", "ORG"}  # ORG: only in dev, a miss
    assert report["mean"] == pytest.approx(np.mean([report[t] for t in ("sentiment", "topic", "entities")]))
    info = json.loads((out / "model_info.json").read_text())
    assert [t["name"] for t in info["tasks"]] == ["sentiment", "topic", "entities"]
    assert info["tasks"][2]["use_crf"] is True and info["tasks"][2]["loss_weight"] == 2.0
    # Each head lives under its task's scope; one encoder.
    import tensorflow as tf
    names = [name for name, _ in tf.train.list_variables(str(out))]
    assert "sentiment/output_weights" in names and "topic/output_weights" in names
    assert any(n.startswith("entities/ner/") for n in names) and "bert/embeddings/word_embeddings" in names
    assert not any(n.startswith("sentiment/bert") for n in names)
    # Evaluating the trained folder again (no training flags but the tasks) gives the same figures.
    run(world, out, do_eval=True)
    again = json.loads((out / "eval_results.json").read_text())
    assert again["mean"] == pytest.approx(report["mean"])

    # Single-task scripts continue from it: each head is found under its task's scope (a learning rate
    # too small to move anything, so the figures are the multi-task model's; a fresh head would guess).
    import run_classifier
    import run_ner
    from bert import model_folder
    common = dict(bert_config_file=world / "bert_config.json", vocab_file=world / "vocab.txt",
                  init_checkpoint=model_folder.find_checkpoint(str(out)),  # best/, which the report scored
                  max_seq_length=16, learning_rate=1e-9, num_train_epochs=0.1, train_batch_size=8,
                  do_train=True, do_eval=True)
    FLAGS.unparse_flags()
    FLAGS(["run_classifier", "--task_name=tsv", f"--data_dir={world / 'sentiment'}",
           f"--output_dir={tmp_path / 'single'}"] + [f"--{k}={v}" for k, v in common.items()])
    run_classifier.main([])
    single = json.loads((tmp_path / "single" / "eval_results.json").read_text())
    assert single["accuracy"] == pytest.approx(report["sentiment"])
    FLAGS.unparse_flags()
    FLAGS(["run_ner", f"--data_dir={world / 'entities'}", "--use_crf", f"--output_dir={tmp_path / 'ner'}"]
          + [f"--{k}={v}" for k, v in common.items()])
    run_ner.main([])
    assert json.loads((tmp_path / "ner" / "eval_results.json").read_text())["f1"] == pytest.approx(report["entities"])


CHILD = r"""
import json, sys
import tensorflow as tf
import tensorflow_text  # noqa: F401
model = tf.saved_model.load(sys.argv[1])
texts, seconds = json.load(open(sys.argv[2], encoding="utf-8"))
out = {"signatures": sorted(model.signatures)}
for name, signature in model.signatures.items():
    if name == "tokenize":
        continue
    inputs = {"text_a": tf.constant(texts)}
    if "text_b" in signature.structured_input_signature[1]:
        inputs["text_b"] = tf.constant(seconds)
    result = signature(**inputs)
    out[name] = {k: (v.numpy().tolist() if v.dtype != tf.string else
                     [[x.decode() for x in row] if v.shape.rank == 2 else row.decode() for row in v.numpy()])
                 for k, v in result.items()}
json.dump(out, open(sys.argv[3], "w", encoding="utf-8"))
"""


def test_export_one_signature_per_task(world, trained, tmp_path):
    """One SavedModel, a signature per task, checked in a fresh process against the Estimator's predictions."""
    import os
    import subprocess
    import sys
    from bert import estimator, export, model_fn, model_folder, modeling, ner, tagging, tokenization
    out = trained
    path = export.export_saved_model(str(out), str(tmp_path / "export"))
    rng = random.Random(7)
    texts = [" ".join(rng.choice(GOOD + BAD + sum(TOPICS.values(), []) + PEOPLE + PLACES + OTHER)
                      for _ in range(rng.randint(1, 20))) for _ in range(24)] + ["", "ann met bob in rome"]
    seconds = texts[::-1]  # the topic task's second texts
    (tmp_path / "texts.json").write_text(json.dumps([texts, seconds]))
    (tmp_path / "child.py").write_text(CHILD)
    env = dict({k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, TF_CPP_MIN_LOG_LEVEL="3")
    child = subprocess.run([sys.executable, str(tmp_path / "child.py"), path, str(tmp_path / "texts.json"),
                            str(tmp_path / "served.json")], cwd=str(tmp_path), env=env, capture_output=True, text=True,
                           timeout=300)
    assert child.returncode == 0, child.stderr[-3000:]
    served = json.loads((tmp_path / "served.json").read_text())
    assert served["signatures"] == ["entities", "sentiment", "serving_default", "topic"]
    assert served["serving_default"] == served["sentiment"]
    size = sum(os.path.getsize(os.path.join(path, "variables", f)) for f in os.listdir(os.path.join(path, "variables")))
    encoder_bytes = 4 * sum(np.prod(shape) for name, shape in tf.train.list_variables(str(out))
                            if name.startswith("bert/") and "adam" not in name)
    assert encoder_bytes < size < 1.5 * encoder_bytes  # one copy of the encoder

    info = model_folder.ModelInfo.from_dir(str(out))
    tokenizer = tokenization.FullTokenizer(str(world / "vocab.txt"))
    joint = multitask.MultiTask.from_info(info, tokenizer)
    bert_config = modeling.BertConfig.from_json_file(str(out / "bert_config.json"))
    bert = estimator.build_estimator(model_fn.model_fn_builder(joint, bert_config), estimator.RunSettings(str(out)))
    checkpoint = model_folder.find_checkpoint(str(out))  # what the export exported
    cache = input_pipeline.FeatureCache(str(tmp_path / "cache"), {})
    from processors import InputExample
    for name, second in (("sentiment", [None] * len(texts)), ("topic", seconds)):
        feature_path, _ = cache.features(joint.tasks[name], [InputExample(str(i), t, b, None)
                                                             for i, (t, b) in enumerate(zip(texts, second))], name)
        predicted = [p[f"{name}/probabilities"] for p in bert.predict(
            multitask.task_input_fn_builder(joint, name, feature_path, 8, training_features=False),
            checkpoint_path=checkpoint)]
        np.testing.assert_allclose(served[name]["probabilities"], predicted, atol=1e-5)
    sentences = [ner.Sentence(t, [t[a:b] for a, b in ner.split_words(t)], ner.split_words(t), [], "x") for t in texts]
    task = joint.tasks["entities"]
    feature_path, _ = cache.features(task, [tagging.TaggedWords(list(s.words)) for s in sentences], "entities")
    batches = list(bert.predict(multitask.task_input_fn_builder(joint, "entities", feature_path, 8,
                                                                training_features=False),
                                checkpoint_path=checkpoint, yield_single_examples=False))
    own = [multitask.strip_prefix("entities", b) for b in batches]
    tags = task.merge([len(s.words) for s in sentences], {k: [r for b in own for r in b[k]] for k in own[0]})
    found = 0
    for row, (sentence, sentence_tags) in enumerate(zip(sentences, tags)):
        expected = [(e.start, e.end, e.type) for e in ner.tags_to_char_entities(sentence, sentence_tags, "BIO")]
        got = served["entities"]
        count = got["entity_count"][row]
        assert list(zip(got["entity_start"][row][:count], got["entity_end"][row][:count],
                        got["entity_type"][row][:count])) == expected
        found += count
    assert found > 5


def test_sampling_weights_and_specs(world):
    np.testing.assert_allclose(multitask.sampling_weights([100, 300], 1), [0.25, 0.75])
    np.testing.assert_allclose(multitask.sampling_weights([100, 300], 0), [0.5, 0.5])
    np.testing.assert_allclose(multitask.sampling_weights([100, 400], 0.5), [1 / 3, 2 / 3])
    specs = multitask.parse_specs("a:tsv:x, b:cluener:y/z:w", None, ["tsv"])
    assert [(s.name, s.processor, s.data_dir, s.is_ner) for s in specs] == [("a", "tsv", "x", False),
                                                                             ("b", "cluener", "y/z:w", True)]
    for text, message in (("a:tsv:x,a:tsv:y", "two tasks are named 'a'"), ("a:nope:x", "unknown processor 'nope'"),
                          ("a:tsv", "not name:processor:data_dir"), ("1a:tsv:x", "task name '1a'"),
                          ("", "at least one task")):
        with pytest.raises(UserInputError, match=message):
            multitask.parse_specs(text, None, ["tsv"])
    bad = world / "bad_options.json"
    bad.write_text(json.dumps({"a": {"colour": 1}}))
    with pytest.raises(UserInputError, match="unknown option"):
        multitask.parse_specs("a:tsv:x", str(bad), ["tsv"])
    bad.write_text(json.dumps({"b": {}}))
    with pytest.raises(UserInputError, match="options for 'b'"):
        multitask.parse_specs("a:tsv:x", str(bad), ["tsv"])


def test_batches_hold_one_task_each(world, tmp_path):
    """The training input: every batch is one task's, drawn about as often as the weights say."""
    from bert import tasks, tokenization
    tokenizer = tokenization.FullTokenizer(str(world / "vocab.txt"))
    named = {"a": tasks.ClassificationTask(["x", "y"], tokenizer, 8), "b": tasks.ClassificationTask(["u", "v", "w"],
                                                                                                     tokenizer, 8)}
    joint = multitask.MultiTask(named)
    cache = input_pipeline.FeatureCache(str(tmp_path), {})
    from processors import InputExample
    paths = {name: cache.features(task, [InputExample(str(i), "fine song", None, task.labels[i % len(task.labels)])
                                         for i in range(12)], name)[0] for name, task in named.items()}
    input_fn, weights = multitask.train_input_fn_builder(joint, paths, {"a": 100, "b": 300}, 4, 1.0, seed=3)
    assert weights == pytest.approx({"a": 0.25, "b": 0.75})
    counts = {0: 0, 1: 0}
    for batch in input_fn().take(400):
        ids = batch["task_id"].numpy()
        assert (ids == ids[0]).all() and batch["input_ids"].shape == (4, 8)
        counts[int(ids[0])] += 1
        other = "b" if ids[0] == 0 else "a"
        assert not batch[f"{other}/label_ids"].numpy().any()
    assert 0.18 < counts[0] / 400 < 0.32
    # MultiTask.convert gives what the pipeline builds from the task's own features.
    example = InputExample("0", "fine song", None, "w")
    row = joint.convert(("b", example))[0]
    own = {k: tf.constant([v]) for k, v in named["b"].convert(example).items()}
    built = {k: v.numpy()[0].tolist() for k, v in joint.as_multitask("b", own, True).items()}
    assert row == built and row["task_id"] == 1 and row["b/label_ids"] == 2 and row["a/label_ids"] == 0


def test_bad_inputs(world, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "train.tsv").write_text("label\ttext_a\n")
    with pytest.raises(UserInputError, match="no training examples|no labels"):
        run(world, tmp_path / "o1", do_train=True, tasks=f"s:tsv:{empty}", task_options=None)
    (empty / "train.tsv").write_text("label\ttext_a\npos\tfine\nneg\tawful\n")
    (empty / "dev.tsv").write_text("label\ttext_a\n")
    with pytest.raises(UserInputError, match="no evaluation examples"):
        run(world, tmp_path / "o1b", do_train=True, do_eval=True, tasks=f"s:tsv:{empty}", task_options=None)
    with pytest.raises(UserInputError, match="--best_task=zzz"):
        run(world, tmp_path / "o2", do_train=True, best_task="zzz")
    out = tmp_path / "o3"
    run(world, out, do_train=True, tasks=f"sentiment:tsv:{world / 'sentiment'}", task_options=None,
        num_train_epochs=1)
    other = tmp_path / "other"
    other.mkdir()
    (other / "train.tsv").write_text("label\ttext_a\nhappy\tfine\nsad\tawful\n")
    with pytest.raises(UserInputError, match="another|labels"):  # the label set changed between runs
        run(world, out, do_train=True, tasks=f"sentiment:tsv:{other}", task_options=None, num_train_epochs=1)
    with pytest.raises(UserInputError, match="no task"):
        run(world, out, do_eval=True, tasks=f"topic:jsonl:{world / 'topic'}", task_options=None)

