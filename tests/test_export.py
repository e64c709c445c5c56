"""SavedModel export: tiny trained models exported, loaded in a fresh process that never imports the
project, and checked against Estimator.predict; the in-graph tokenizer against the Python one."""
import json
import os
import random
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from absl import flags

import export_savedmodel
import extract_features
import predict
import run_classifier
import run_fewshot
from bert import estimator, export, fewshot, files, input_pipeline, model_fn, tasks, tokenization
from bert.errors import UserInputError
from conftest import REPO, shared_path, tiny_config
from processors import InputExample

FLAGS = flags.FLAGS
tf1 = tf.compat.v1
MAX_LEN = 16
WORDS = ["the", "movie", "was", "very", "good", "great", "bad", "awful", "plot", "it", "is", "not", "this",
         "about", "and", "cafe", "un", "##want", "##ed", "##s"]
TOPIC_WORDS = [f"w{i}{c}" for i in range(6) for c in "ab"]
CHINESE = list("这部电影很好太坏了剧情不错差天气音乐")
PUNCTUATION = [",", ".", "!", "?", "。", "，"]
VOCAB = list(tokenization.SPECIAL_TOKENS) + WORDS + TOPIC_WORDS + CHINESE + PUNCTUATION
POSITIVE = ["the movie was very good", "这部电影很好", "it is great", "剧情不错"]
NEGATIVE = ["the plot was bad", "这部电影太差了", "it is awful", "剧情很坏"]


def query_texts(seed=0, count=64):
    """64 texts: English, Chinese, mixed, accents and case, an empty one, blank, one far over MAX_LEN."""
    fixed = ["the movie was very good", "这部电影很好。", "The MOVIE was not BAD!", "Café unwanted movies",
             "", "   ", "good " * 40 + "bad", "电影" * 30, "the\tplot\u00a0was\u200b bad", "天气，音乐！ about this"]
    rng = random.Random(seed)
    pool = WORDS[:15] + CHINESE + PUNCTUATION + ["xyz", "Ünïcödé"]
    return fixed + [" ".join(rng.choice(pool) for _ in range(rng.randint(1, 25))) for _ in range(count - len(fixed))]


CHILD = r'''
"""Loads each SavedModel with TensorFlow alone and runs its signatures on the request's inputs."""
import importlib.util, json, sys
import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the tokenization ops)

request = json.load(open(sys.argv[1], encoding="utf-8"))
arrays, strings = {}, {}
for name, job in request.items():
    model = tf.saved_model.load(job["path"])
    strings[name + "/signatures"] = sorted(model.signatures)
    serve = model.signatures["serving_default"]
    inputs = {k: tf.constant(v, tf.string) for k, v in job["inputs"].items()}
    count = len(job["inputs"]["text_a"])
    batch = serve(**inputs)
    singles = [serve(**{k: v[i:i + 1] for k, v in inputs.items()}) for i in range(count)]
    for key, value in batch.items():
        if value.dtype == tf.string:
            strings[f"{name}/batch/{key}"] = [s.decode("utf-8") for s in value.numpy()]
            strings[f"{name}/single/{key}"] = [s[key].numpy()[0].decode("utf-8") for s in singles]
        else:
            arrays[f"{name}/batch/{key}"] = value.numpy()
            arrays[f"{name}/single/{key}"] = np.concatenate([s[key].numpy() for s in singles])
    for key, value in model.signatures["tokenize"](**inputs).items():
        arrays[f"{name}/tokenize/{key}"] = value.numpy()
    ids = {k: tf.constant(np.asarray(v, np.int32)) for k, v in job["ids"].items()}
    for key, value in model.signatures["predict_ids"](**ids).items():
        if value.dtype != tf.string:
            arrays[f"{name}/ids/{key}"] = value.numpy()
    if "embed" in model.signatures:
        arrays[name + "/embed"] = model.signatures["embed"](text_a=inputs["text_a"])["embedding"].numpy()
    for key, support in job.get("support_requests", {}).items():  # the classes in the request
        texts, labels = tf.constant(support["support_text"]), tf.constant(support["support_label"])
        embedded = model.signatures["embed"](text_a=texts)["embedding"]
        for path, out in (("text", model.signatures["classify_with_support"](
                              support_text=texts, support_label=labels, text_a=inputs["text_a"])),
                          ("embedding", model.signatures["classify_with_support_embeddings"](
                              support_embedding=embedded, support_label=labels, text_a=inputs["text_a"]))):
            for output, value in out.items():
                if value.dtype == tf.string:
                    strings[f"{name}/{key}/{path}/{output}"] = [x.decode("utf-8") for x in value.numpy()]
                else:
                    arrays[f"{name}/{key}/{path}/{output}"] = value.numpy()
strings["bert_imported"] = sorted(m for m in sys.modules if m == "bert" or m.startswith(("bert.", "processors")))
strings["bert_importable"] = importlib.util.find_spec("bert") is not None
np.savez(sys.argv[2] + ".npz", **arrays)
json.dump(strings, open(sys.argv[2] + ".json", "w", encoding="utf-8"), ensure_ascii=False)
'''


def run_flags(argv_name, **args):
    FLAGS.unparse_flags()
    FLAGS([argv_name] + [f"--{k}={v}" for k, v in args.items()])


def write_tsv(path, header, rows):
    path.write_text("\n".join("\t".join(row) for row in [header] + rows) + "\n", encoding="utf-8")


def features(task, examples):
    """The Python tokenizer's features (task.convert), as int32 arrays [examples, MAX_LEN]."""
    rows = [task.convert(example) for example in examples]
    return {name: np.array([row[name] for row in rows], np.int32) for name in tasks.Task.encoder_features}


def estimator_predict(task, config, model_dir, examples):
    """Estimator.predict on the Python tokenizer's features: {prediction name: array}."""
    bert = estimator.build_estimator(model_fn.model_fn_builder(task, config), estimator.RunSettings(str(model_dir)))
    batches = list(bert.predict(input_pipeline.array_input_fn_builder(features(task, examples), 64),
                                checkpoint_path=tf.train.latest_checkpoint(str(model_dir)), yield_single_examples=False))
    return {key: np.concatenate([batch[key] for batch in batches]) for key in batches[0]}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Three tiny trained models, their exports, and what a fresh process got out of the exports."""
    root = tmp_path_factory.mktemp("export")
    model = root / "model"
    model.mkdir()
    (model / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    config = tiny_config(vocab_size=len(VOCAB), max_position_embeddings=MAX_LEN)
    config.to_json_file(str(model / "bert_config.json"))
    common = dict(bert_config_file=model / "bert_config.json", vocab_file=model / "vocab.txt",
                  max_seq_length=MAX_LEN, learning_rate=2e-3)
    rng = random.Random(1)

    # A sentence classifier and a sentence-pair classifier (run_classifier.py).
    data = root / "single"
    data.mkdir()
    write_tsv(data / "train.tsv", ["label", "text_a"],
              [[label, rng.choice(texts)] for label, texts in [("pos", POSITIVE), ("neg", NEGATIVE)] * 16])
    run_flags("run_classifier", task_name="tsv", data_dir=data, output_dir=root / "single_out", do_train=True,
              train_batch_size=8, num_train_epochs=4, **common)
    run_classifier.main([])
    data = root / "pair"
    data.mkdir()
    pairs = [(rng.choice(POSITIVE + NEGATIVE), rng.choice(POSITIVE + NEGATIVE)) for _ in range(32)]
    write_tsv(data / "train.tsv", ["text_a", "text_b", "label"],
              [[a, b, "same" if (a in POSITIVE) == (b in POSITIVE) else "different"] for a, b in pairs])
    run_flags("run_classifier", task_name="tsv", data_dir=data, output_dir=root / "pair_out", do_train=True,
              train_batch_size=8, num_train_epochs=4, **common)
    run_classifier.main([])

    # A few-shot model (run_fewshot.py, cosine distance: its scale is a trained variable), and the same
    # checkpoint declared euclidean.
    lines = [f"this is about {rng.choice(TOPIC_WORDS[2 * t:2 * t + 2])} {rng.choice(WORDS[:5])}\ttopic{t}"
             for t in range(6) for _ in range(8)]
    (root / "topics.tsv").write_text("\n".join(lines) + "\n")
    run_flags("run_fewshot", data_file=root / "topics.tsv", test_class_ratio=0.2, output_dir=root / "fewshot_out",
              do_train=True, n_way=3, k_shot=2, q_query=2, train_episodes=8, distance="cosine", pooling="mean", **common)
    run_fewshot.main([])
    euclidean = root / "fewshot_euclidean_out"
    shutil.copytree(root / "fewshot_out", euclidean)
    info = json.loads((euclidean / "model_info.json").read_text())
    (euclidean / "model_info.json").write_text(json.dumps(dict(info, distance="euclidean")))
    support = root / "support.tsv"
    support.write_text("this is about w0a\tzero\nthis is about w0b it\tzero\nabout w5a\tfive\nthis w5b\tfive\n"
                       "这部电影很好\t电影\n剧情不错\t电影\n")
    # Classes that come with a request: the export's support set shuffled, and new classes (Chinese and English).
    request_support = root / "request_support.tsv"
    request_support.write_text("剧情很坏\t坏\nit is great\t好\nthe plot was bad\t坏\n这部电影很好\t好\nabout w3a\ttopic\n"
                               "this w3b is\ttopic\n剧情不错\t好\n")
    support_requests = {"shuffled": [line.split("\t") for line in support.read_text().splitlines()][::-1],
                        "new": [line.split("\t") for line in request_support.read_text().splitlines()]}
    support_requests = {key: {"support_text": [t for t, _ in rows], "support_label": [label for _, label in rows]}
                        for key, rows in support_requests.items()}

    exports = {
        "single": export.export_saved_model(str(root / "single_out"), str(root / "exports" / "single")),
        "pair": export.export_saved_model(str(root / "pair_out"), str(root / "exports" / "pair")),
    }
    for name in ("fewshot", "fewshot_euclidean"):
        run_flags("export_savedmodel", model_dir=root / f"{name}_out", export_dir=root / "exports" / name,
                  support_file=support)
        export_savedmodel.main([])
        exports[name] = export.resolve_saved_model(str(root / "exports" / name))

    texts = query_texts()
    rng = random.Random(2)
    texts_b = [rng.choice(["", "剧情不错", "it is bad " * 12, "the movie"]) for _ in texts]
    tokenizer = tokenization.FullTokenizer(str(model / "vocab.txt"))
    jobs = {  # (task, model folder, examples) for Estimator.predict
        "single": (tasks.ClassificationTask(["neg", "pos"], tokenizer, MAX_LEN), "single_out", texts, None),
        "pair": (tasks.ClassificationTask(["different", "same"], tokenizer, MAX_LEN), "pair_out", texts, texts_b),
        "fewshot_embed": (tasks.FewShotTask(["x"], tokenizer, MAX_LEN, pooling="mean"), "fewshot_out", texts, None),
        "support_embed": (tasks.FewShotTask(["x"], tokenizer, MAX_LEN, pooling="mean"), "fewshot_out",
                          [line.split("\t")[0] for line in support.read_text().splitlines()], None),
        "request_support_embed": (tasks.FewShotTask(["x"], tokenizer, MAX_LEN, pooling="mean"), "fewshot_out",
                                  support_requests["new"]["support_text"], None),
    }
    jobs = {name: (task, folder, [InputExample(str(i), a, b[i] if b else None, None) for i, a in enumerate(texts_a)])
            for name, (task, folder, texts_a, b) in jobs.items()}
    ids = {name: features(jobs[name][0], jobs[name][2]) for name in ("single", "pair", "fewshot_embed")}

    # The fresh process runs while this one computes the Estimator's predictions.
    request = {name: {"path": path, "inputs": {"text_a": texts, **({"text_b": texts_b} if name == "pair" else {})},
                      "ids": {k: v.tolist() for k, v in ids.get(name, ids["fewshot_embed"]).items()},
                      **({"support_requests": support_requests} if name.startswith("fewshot") else {})}
               for name, path in exports.items()}
    (root / "request.json").write_text(json.dumps(request, ensure_ascii=False), encoding="utf-8")
    (root / "child.py").write_text(CHILD)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    with open(root / "child.log", "w") as log:
        child = subprocess.Popen([sys.executable, str(root / "child.py"), str(root / "request.json"),
                                  str(root / "served")], cwd=str(root), env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            references = {name: (estimator_predict(task, config, root / folder, examples), ids.get(name))
                          for name, (task, folder, examples) in jobs.items()}
            child.wait(timeout=300)
        finally:
            child.kill()
    assert child.returncode == 0, (root / "child.log").read_text()[-3000:]
    for name in ("support_embed", "request_support_embed"):
        references[name] = references[name][0]["embedding"]
    support_examples = [InputExample(str(i), text, None, label) for i, (text, label) in
                        enumerate(line.split("\t") for line in support.read_text().splitlines())]
    served = dict(np.load(str(root / "served.npz")))
    served.update(json.loads((root / "served.json").read_text(encoding="utf-8")))
    return dict(root=root, config=config, exports=exports, served=served, references=references, texts=texts,
                texts_b=texts_b, support=support, support_examples=support_examples, tokenizer=tokenizer,
                request_support=request_support, support_requests=support_requests)


def test_fresh_process_never_imports_the_project(world):
    served = world["served"]
    assert served["bert_imported"] == [] and served["bert_importable"] is False
    assert served["single/signatures"] == ["predict_ids", "serving_default", "tokenize"]
    assert served["fewshot/signatures"] == ["classify_with_support", "classify_with_support_embeddings", "embed",
                                            "predict_ids", "serving_default", "tokenize"]


@pytest.mark.parametrize("name, labels", [("single", ["neg", "pos"]), ("pair", ["different", "same"])])
def test_classifier_matches_estimator_predict(world, name, labels):
    served, (reference, features) = world["served"], world["references"][name]
    # The graph's tokenization is the Python tokenizer's, truncation and padding included.
    for key in tasks.Task.encoder_features:
        np.testing.assert_array_equal(served[f"{name}/tokenize/{key}"], features[key], err_msg=key)
    assert features["input_mask"][6].sum() == MAX_LEN  # far over the maximum: truncated
    if name == "single":
        assert features["input_mask"][4].sum() == 2  # the empty string: [CLS] [SEP]
    probabilities = reference["probabilities"]
    assert probabilities.shape == (64, 2) and np.ptp(probabilities[:, 0]) > 1e-3  # inputs do change the output
    for path in ("batch", "single", "ids"):  # batches of 64 and of 1, and token ids in
        np.testing.assert_allclose(served[f"{name}/{path}/probabilities"], probabilities, atol=1e-5, err_msg=path)
        np.testing.assert_array_equal(served[f"{name}/{path}/label_id"], reference["label_ids"], err_msg=path)
    assert served[f"{name}/batch/label"] == [labels[i] for i in reference["label_ids"]]
    assert served[f"{name}/single/label"] == served[f"{name}/batch/label"]
    if name == "pair":
        has_b = np.array([bool(b) for b in world["texts_b"]])
        assert (features["segment_ids"].max(1) == has_b).all() and 0 < has_b.sum() < 64


@pytest.mark.parametrize("name", ["fewshot", "fewshot_euclidean"])
def test_fewshot_matches_run_fewshot_arithmetic(world, name):
    served, references = world["served"], world["references"]
    queries = references["fewshot_embed"][0]["embedding"]
    np.testing.assert_allclose(served[f"{name}/embed"], queries, atol=1e-5)
    support, labels = references["support_embed"], [e.label for e in world["support_examples"]]
    classes = sorted(set(labels))
    prototypes = np.stack([support[np.array(labels) == c].mean(0) for c in classes])
    distance = "cosine" if name == "fewshot" else "euclidean"
    scale = 10.0
    if distance == "cosine":
        checkpoint = tf.train.latest_checkpoint(str(world["root"] / "fewshot_out"))
        scale = float(tf.train.load_checkpoint(checkpoint).get_tensor("prototypical/cosine_scale"))
        assert scale != 10.0  # trained, so reading the wrong value would show
    def expected(prototypes):
        """(logits, distances) of the queries against `prototypes`, in numpy."""
        if distance == "euclidean":
            distances = ((queries[:, None, :] - prototypes[None, :, :]) ** 2).sum(-1)
            return -distances, distances
        unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)  # noqa: E731
        cosine = unit(queries) @ unit(prototypes).T
        return scale * cosine, 1.0 - cosine

    logits, distances = expected(prototypes)
    for path in ("batch", "single", "ids"):
        np.testing.assert_allclose(served[f"{name}/{path}/probabilities"], fewshot.softmax(logits), atol=1e-5)
        np.testing.assert_allclose(served[f"{name}/{path}/distances"], distances, rtol=1e-5, atol=1e-5)
    assert served[f"{name}/batch/label"] == [classes[i] for i in logits.argmax(-1)]
    assert served[f"{name}/single/label"] == served[f"{name}/batch/label"]

    # The export's own support set sent shuffled with the request: the same numbers, columns in the request's order.
    for path in ("text", "embedding"):
        key = f"{name}/shuffled/{path}"
        order = [classes.index(label) for label in served[key + "/labels"]]
        assert served[key + "/labels"] == ["电影", "five", "zero"]  # first appearance in the (reversed) request
        np.testing.assert_allclose(served[key + "/probabilities"], served[f"{name}/batch/probabilities"][:, order],
                                   atol=1e-5)
        np.testing.assert_allclose(served[key + "/distances"], served[f"{name}/batch/distances"][:, order], atol=1e-5)
        assert served[key + "/label"] == served[f"{name}/batch/label"]
    # New classes: the prototypes of the request's support texts, as run_fewshot.py computes them.
    request = world["support_requests"]["new"]
    new_classes = list(dict.fromkeys(request["support_label"]))
    support = references["request_support_embed"]
    logits, distances = expected(np.stack([support[np.array(request["support_label"]) == c].mean(0)
                                           for c in new_classes]))
    for path in ("text", "embedding"):
        key = f"{name}/new/{path}"
        assert served[key + "/labels"] == new_classes == ["坏", "好", "topic"]
        np.testing.assert_allclose(served[key + "/probabilities"], fewshot.softmax(logits), atol=1e-5)
        np.testing.assert_allclose(served[key + "/distances"], distances, rtol=1e-5, atol=1e-5)
        assert served[key + "/label"] == [new_classes[i] for i in logits.argmax(-1)]
        assert (served[key + "/label_id"] == logits.argmax(-1)).all()


def test_fewshot_export_agrees_with_run_fewshot_predictions(world, tmp_path):
    """run_fewshot.py --do_predict on the same support set: the same labels and probabilities (it writes 4 decimals)."""
    root, served = world["root"], world["served"]
    rows = [i for i, t in enumerate(world["texts"][:16]) if t and t == t.strip() and "\t" not in t]
    (tmp_path / "texts.txt").write_text("\n".join(world["texts"][i] for i in rows) + "\n", encoding="utf-8")
    run_flags("run_fewshot", do_predict=True, support_file=world["support"], predict_file=tmp_path / "texts.txt",
              output_dir=root / "fewshot_out", bert_config_file=root / "model" / "bert_config.json",
              vocab_file=root / "model" / "vocab.txt", max_seq_length=MAX_LEN, distance="cosine")
    run_fewshot.main([])
    lines = [line.split("\t") for line in (root / "fewshot_out" / "predictions.tsv").read_text().splitlines()[1:]]
    assert len(lines) == len(rows) >= 8
    assert [line[0] for line in lines] == [world["texts"][i] for i in rows]
    assert [line[1] for line in lines] == [served["fewshot/batch/label"][i] for i in rows]
    np.testing.assert_allclose([float(line[2]) for line in lines],
                               served["fewshot/batch/probabilities"][rows].max(-1), atol=1e-4)
    np.testing.assert_allclose([[float(x) for x in line[3:]] for line in lines], served["fewshot/batch/distances"][rows],
                               atol=1e-4)
    # New classes in the request: what run_fewshot.py --do_predict gives with them as its support file.
    run_flags("run_fewshot", do_predict=True, support_file=world["request_support"], predict_file=tmp_path / "texts.txt",
              output_dir=root / "fewshot_out", bert_config_file=root / "model" / "bert_config.json",
              vocab_file=root / "model" / "vocab.txt", max_seq_length=MAX_LEN, distance="cosine")
    run_fewshot.main([])
    table = (root / "fewshot_out" / "predictions.tsv").read_text().splitlines()
    columns = table[0].split("\t")[3:]  # one distance column per class, sorted
    lines = [line.split("\t") for line in table[1:]]
    order = [served["fewshot/new/text/labels"].index(c.split(":", 1)[-1]) for c in columns]
    assert [line[1] for line in lines] == [served["fewshot/new/text/label"][i] for i in rows]
    np.testing.assert_allclose([float(line[2]) for line in lines],
                               served["fewshot/new/text/probabilities"][rows].max(-1), atol=1e-4)
    np.testing.assert_allclose([[float(x) for x in line[3:]] for line in lines],
                               served["fewshot/new/text/distances"][rows][:, order], atol=1e-4)


def test_layout_assets_and_versions(world, tmp_path):
    root, exports = world["root"], world["exports"]
    for name, path in exports.items():
        assert os.path.basename(path) == "1"
        assert sorted(os.listdir(path)) == ["assets", "saved_model.pb", "variables"]
        assets = os.path.join(path, "assets")
        assert open(os.path.join(assets, "vocab.txt"), encoding="utf-8").read() == "\n".join(VOCAB) + "\n"
        info = json.load(open(os.path.join(assets, "model_info.json"), encoding="utf-8"))
        assert info["max_seq_length"] == MAX_LEN and info["checkpoint"].startswith("model.ckpt-")
    label_map = json.load(open(os.path.join(exports["single"], "assets", "label_map.json")))
    assert label_map == {"labels": ["neg", "pos"], "multi_label": False}
    assert json.load(open(os.path.join(exports["fewshot"], "assets", "label_map.json")))["labels"] == [
        "five", "zero", "电影"]
    assert "这部电影很好\t电影" in open(os.path.join(exports["fewshot"], "assets", "support.tsv"), encoding="utf-8").read()
    assert not [n for n in os.listdir(root / "exports" / "single") if n.startswith(".tmp")]  # nothing left behind

    # The next export is version 2 (a folder that is not a number is not a version).
    os.makedirs(root / "exports" / "single" / "notes")
    run_flags("export_savedmodel", model_dir=root / "single_out", export_dir=root / "exports" / "single")
    export_savedmodel.main([])
    assert export.version_numbers(str(root / "exports" / "single")) == [1, 2]
    assert export.resolve_saved_model(str(root / "exports" / "single")) == str(root / "exports" / "single" / "2")
    assert os.path.exists(root / "exports" / "single" / "2" / "saved_model.pb")


def test_predict_script_over_tsv_and_text_file(world, tmp_path):
    served, texts, texts_b = world["served"], world["texts"], world["texts_b"]
    rows = [[a.replace("\t", " "), b] for a, b in zip(texts, texts_b)]
    write_tsv(tmp_path / "pairs.tsv", ["id", "text_a", "text_b"], [[str(i)] + row for i, row in enumerate(rows)])
    run_flags("predict", saved_model_dir=world["root"] / "exports" / "pair", predict_file=tmp_path / "pairs.tsv",
              output_file=tmp_path / "out.tsv", predict_batch_size=7)
    predict.main([])
    lines = [line.split("\t") for line in (tmp_path / "out.tsv").read_text(encoding="utf-8").splitlines()]
    assert lines[0] == ["text_a", "text_b", "label", "probability", "different", "same"]
    assert [line[:2] for line in lines[1:]] == rows
    assert [line[2] for line in lines[1:]] == served["pair/batch/label"]
    np.testing.assert_allclose([[float(x) for x in line[4:]] for line in lines[1:]],
                               served["pair/batch/probabilities"], atol=1e-5)

    # A text file: every line is a row, blank ones too; few-shot rows carry the distances.
    lines_in = ["this is about w0a", "", "剧情很好"]
    (tmp_path / "texts.txt").write_text("\n".join(lines_in) + "\n", encoding="utf-8")
    run_flags("predict", saved_model_dir=world["exports"]["fewshot_euclidean"], predict_file=tmp_path / "texts.txt",
              output_file=tmp_path / "few.tsv")
    predict.main([])
    lines = [line.split("\t") for line in (tmp_path / "few.tsv").read_text(encoding="utf-8").splitlines()]
    assert lines[0] == ["text_a", "label", "probability", "five", "zero", "电影",
                        "distance:five", "distance:zero", "distance:电影"]
    assert [line[0] for line in lines[1:]] == lines_in and lines[1][1] in ("five", "zero", "电影")
    assert float(lines[1][2]) == pytest.approx(max(float(x) for x in lines[1][3:6]), abs=1e-6)


def test_support_in_the_request(world, tmp_path):
    """classify_with_support as TensorFlow Serving's REST columnar body carries it, predict.py --support_file, and
    bad support sets failing the request with a message while the model keeps serving."""
    served, texts = world["served"], world["texts"][:8]
    model = tf.saved_model.load(world["exports"]["fewshot"])
    body = json.dumps({"signature_name": "classify_with_support",
                       "inputs": dict(world["support_requests"]["new"], text_a=texts)}, ensure_ascii=False)
    request = json.loads(body)  # what the model server hands the signature: one tensor per named input
    out = model.signatures[request["signature_name"]](**{k: tf.constant(v) for k, v in request["inputs"].items()})
    np.testing.assert_allclose(out["probabilities"].numpy(), served["fewshot/new/text/probabilities"][:8], atol=1e-6)
    assert [x.decode() for x in out["labels"].numpy()] == ["坏", "好", "topic"]

    run_flags("predict", saved_model_dir=world["root"] / "exports" / "fewshot", predict_file=tmp_path / "texts.txt",
              output_file=tmp_path / "out.tsv", support_file=world["request_support"], predict_batch_size=3)
    (tmp_path / "texts.txt").write_text("\n".join(t.replace("\n", " ") for t in texts) + "\n", encoding="utf-8")
    predict.main([])
    lines = [line.split("\t") for line in (tmp_path / "out.tsv").read_text(encoding="utf-8").splitlines()]
    assert lines[0] == ["text_a", "label", "probability", "坏", "好", "topic", "distance:坏", "distance:好", "distance:topic"]
    assert [line[1] for line in lines[1:]] == served["fewshot/new/text/label"][:8]
    np.testing.assert_allclose([[float(x) for x in line[3:6]] for line in lines[1:]],
                               served["fewshot/new/text/probabilities"][:8], atol=1e-5)

    classify = model.signatures["classify_with_support"]
    good = dict(support_text=tf.constant(["it is great", "剧情很坏"]), support_label=tf.constant(["好", "坏"]),
                text_a=tf.constant(["the movie"]))
    for change, message in ((dict(support_text=tf.constant([], tf.string), support_label=tf.constant([], tf.string)),
                             "the support set is empty"),
                            (dict(support_label=tf.constant(["好"])), "one label per support text"),
                            (dict(support_label=tf.constant(["好", ""])), "a support label is empty")):
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            classify(**dict(good, **change))
    assert classify(**good)["probabilities"].shape == (1, 2)  # still serving
    run_flags("export_savedmodel", model_dir=world["root"] / "fewshot_out", export_dir=tmp_path / "small",
              support_file=world["support"], max_support=6)
    export_savedmodel.main([])
    small = tf.saved_model.load(export.resolve_saved_model(str(tmp_path / "small"))).signatures
    request = world["support_requests"]["new"]  # 7 support texts
    with pytest.raises(tf.errors.InvalidArgumentError, match="more than 6 support texts"):
        small["classify_with_support"](support_text=tf.constant(request["support_text"]),
                                       support_label=tf.constant(request["support_label"]), text_a=tf.constant(["x"]))
    run_flags("predict", saved_model_dir=tmp_path / "small", predict_file=tmp_path / "texts.txt",
              output_file=tmp_path / "out2.tsv", support_file=world["request_support"])
    with pytest.raises(UserInputError, match="more than 6 support texts"):
        predict.main([])
    run_flags("predict", saved_model_dir=world["exports"]["single"], predict_file=tmp_path / "texts.txt",
              output_file=tmp_path / "out3.tsv", support_file=world["request_support"])
    with pytest.raises(UserInputError, match="needs a few-shot export"):
        predict.main([])


def test_predict_script_output_stays_rectangular(world, tmp_path):
    """A text holding a tab or a backslash is escaped (bert.files.write_tsv), not cut into columns or changed."""
    lines_in = ["the\tplot was bad", "a back\\slash \\t good", "it is great"]
    (tmp_path / "texts.txt").write_text("\n".join(lines_in) + "\n", encoding="utf-8")
    run_flags("predict", saved_model_dir=world["exports"]["single"], predict_file=tmp_path / "texts.txt",
              output_file=tmp_path / "out.tsv", predict_batch_size=2)
    predict.main([])
    lines = (tmp_path / "out.tsv").read_text(encoding="utf-8").split("\n")
    assert lines[0].split("\t") == ["text_a", "label", "probability", "neg", "pos"]
    assert lines[-1] == "" and all(len(line.split("\t")) == 5 for line in lines[1:-1])
    assert [files.unescape_tsv_field(line.split("\t")[0]) for line in lines[1:-1]] == lines_in


def test_extract_features(world, tmp_path):
    root = world["root"]
    texts = world["texts"][:10]
    (tmp_path / "texts.txt").write_text("\n".join(t.replace("\n", " ") for t in texts) + "\n", encoding="utf-8")
    run_flags("extract_features", model_dir=root / "fewshot_out", input_file=tmp_path / "texts.txt",
              output_dir=tmp_path / "features", predict_batch_size=4)
    extract_features.main([])
    out = {name: np.load(str(tmp_path / "features" / f"{name}.npy")) for name in extract_features.OUTPUTS}
    # The few-shot model pools by the mean: its Estimator embeddings are mean_emb.
    np.testing.assert_allclose(out["mean_emb"], world["references"]["fewshot_embed"][0]["embedding"][:10], atol=1e-5)
    assert out["top_layer_emb"].shape == (10, MAX_LEN, 32) and out["cls_emb"].shape == (10, 32)
    np.testing.assert_allclose(out["top_layer_emb"][:, 0], out["cls_emb"], atol=1e-6)
    mask = world["references"]["fewshot_embed"][1]["input_mask"][:10]
    np.testing.assert_array_equal(out["input_mask"], mask)
    assert not out["top_layer_emb"][mask == 0].any() and out["top_layer_emb"][mask == 1].all(-1).any()
    tokens = (tmp_path / "features" / "tokens.txt").read_text(encoding="utf-8").splitlines()
    assert tokens[0] == "[CLS] the movie was very good [SEP]" and tokens[4] == "[CLS] [SEP]"

    # Google's flags on a pretrained folder give the same numbers.
    run_flags("extract_features", bert_config_file=root / "model" / "bert_config.json",
              vocab_file=root / "model" / "vocab.txt", init_checkpoint=root / "fewshot_out", max_seq_length=MAX_LEN,
              input_file=tmp_path / "texts.txt", output_dir=tmp_path / "features2")
    extract_features.main([])
    np.testing.assert_allclose(np.load(str(tmp_path / "features2" / "mean_emb.npy")), out["mean_emb"], atol=1e-6)

    # Google's JSON lines (--output_file) from the same folder: layer -1 is top_layer_emb, to 6 decimals.
    run_flags("extract_features", model_dir=root / "fewshot_out", input_file=tmp_path / "texts.txt",
              output_file=tmp_path / "features.jsonl", layers="-1,0", batch_size=3)
    extract_features.main([])
    records = [json.loads(line) for line in (tmp_path / "features.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [record["linex_index"] for record in records] == list(range(10))
    assert " ".join(feature["token"] for feature in records[0]["features"]) == tokens[0]
    for record, top_layer in zip(records, out["top_layer_emb"]):
        assert len(record["features"]) == len(tokens[record["linex_index"]].split())
        for position, feature in enumerate(record["features"]):
            assert [layer["index"] for layer in feature["layers"]] == [-1, 0]
            np.testing.assert_allclose(feature["layers"][0]["values"], top_layer[position], atol=2e-6)


def test_bad_inputs_are_named(world, tmp_path):
    root = world["root"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserInputError, match=r"model_info.json: not found"):
        run_flags("export_savedmodel", model_dir=tmp_path / "empty", export_dir=tmp_path / "e")
        export_savedmodel.main([])
    untrained = tmp_path / "untrained"
    untrained.mkdir()
    for name in ("model_info.json", "bert_config.json", "vocab.txt"):
        shutil.copy(root / "single_out" / name, untrained / name)
    with pytest.raises(UserInputError, match=r"no checkpoint \(model.ckpt-N\) here or in best/"):
        run_flags("export_savedmodel", model_dir=untrained, export_dir=tmp_path / "e")
        export_savedmodel.main([])
    with pytest.raises(UserInputError, match=r"pass --support_file"):
        run_flags("export_savedmodel", model_dir=root / "fewshot_out", export_dir=tmp_path / "e")
        export_savedmodel.main([])
    with pytest.raises(UserInputError, match=r"no saved_model.pb"):
        export.resolve_saved_model(str(tmp_path / "empty"))
    assert not os.path.exists(tmp_path / "e") or not export.version_numbers(str(tmp_path / "e"))

    result = subprocess.run([sys.executable, os.path.join(REPO, "export_savedmodel.py"), f"--model_dir={untrained}",
                             f"--export_dir={tmp_path / 'e'}"], capture_output=True, text=True, cwd=REPO, timeout=120,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [f"error: {untrained}: no checkpoint (model.ckpt-N) here or in best/; "
                                                  "train first (--do_train) or point at the training run's output_dir"]


# --- the tokenizer inside the graph ---------------------------------------------------------------


def graph_ids(kind, python_tokenizer, texts, folder):
    """GraphTokenizer's ids for texts, in graph mode with tables initialised as a SavedModel does."""
    with tf.Graph().as_default():
        vocab = None
        if kind != "sentencepiece":
            vocab = export.write_vocab_asset(python_tokenizer.vocab, os.path.join(folder, "vocab_asset.txt"))
        tokenizer = export.GraphTokenizer(kind, python_tokenizer, vocab, python_tokenizer.do_lower_case)
        text = tf1.placeholder(tf.string, [None])
        ids = tokenizer.tokenize(text)
        with tf1.Session() as session:
            session.run(tf1.tables_initializer())
            return session.run(ids, {text: texts}).to_list()


TRICKY = ["a", "B", " ", "\t", "\n", "\u00a0", "\u2028", "\u3000", "\x00", "\x1c", "\x85", "\u200b", "\u00ad", "\ufeff",
          "\ufffd", "é", "E\u0301", "\u0130", "\u03a3", "ß", "\u1fef", "\u037e", "。", "，", "$", "^", "`", "~", "\U0001f600",
          "\U00020000", "\uf900", "か", "한", "电", "影", "the", "##", "cafe", "Café", "unwanted"]


@pytest.mark.parametrize("lower", [True, False])
def test_wordpiece_in_graph_matches_python_on_tricky_text(tmp_path, lower):
    (tmp_path / "vocab.txt").write_text("\n".join(VOCAB + ["b", "e", "i", "σ", "ς", "`", "~"]) + "\n", encoding="utf-8")
    python = tokenization.FullTokenizer(str(tmp_path / "vocab.txt"), do_lower_case=lower)
    rng = random.Random(3)
    texts = ["".join(rng.choice(TRICKY) for _ in range(rng.randint(0, 30))) for _ in range(400)]
    texts += ["a" * 200, "a" * 201, "é" * 200 + " x", "电" * 300, "ΣΑΣ ΣΑΣ. Σ", b"ok \xff\xfe bytes"]
    expected = [python.convert_tokens_to_ids(python.tokenize(t)) for t in texts]
    assert graph_ids("wordpiece", python, texts, str(tmp_path)) == expected


def test_whitespace_and_sentencepiece_in_graph_match_python(tmp_path):
    texts = ["17 42 99 FOO\tfoo", "", "  x\u3000y\x1cz\u2028w ", "Ünïcödé words 中文"]
    (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n17\n42\nfoo\nx\ny\nz\nw\n", encoding="utf-8")
    for lower in (False, True):
        python = tokenization.WhitespaceTokenizer(str(tmp_path / "vocab.txt"), do_lower_case=lower)
        expected = [python.convert_tokens_to_ids(python.tokenize(t)) for t in texts]
        assert graph_ids("whitespace", python, texts, str(tmp_path)) == expected

    import sentencepiece
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join([f"the quick brown fox number {i} jumps" for i in range(100)] + ["自然语言处理"] * 20))
    sentencepiece.SentencePieceTrainer.Train(
        input=str(corpus), model_prefix=str(tmp_path / "spm"), vocab_size=48, character_coverage=1.0,
        user_defined_symbols=["[CLS]", "[SEP]", "[MASK]"], pad_id=0, unk_id=1, bos_id=-1, eos_id=-1,
        pad_piece="[PAD]", unk_piece="[UNK]", minloglevel=2)
    texts = ["The Quick fox 42", "", "自然 处理 unknown ÜBER", "[CLS] brown"]
    for lower in (False, True):
        python = tokenization.SentencePieceTokenizer(str(tmp_path / "spm.model"), do_lower_case=lower)
        expected = [python.convert_tokens_to_ids(python.tokenize(t)) for t in texts]
        assert graph_ids("sentencepiece", python, texts, str(tmp_path)) == expected


def test_pair_truncation_in_graph_is_googles():
    """encode_pairs against input_pipeline.encode_text_pair for every mix of lengths up to 14."""
    class Digits:  # "3 4 5" -> ids 3, 4, 5
        def tokenize(self, text):
            return text.split()

        def convert_tokens_to_ids(self, tokens):
            return [{"[CLS]": 1, "[SEP]": 2}.get(t) or int(t) for t in tokens]

    cases = [(la, lb, has_b) for la in range(15) for lb in range(15) for has_b in (True, False) if has_b or lb == 0]
    for max_len in (3, 4, 9, 16):
        rows_a = [[10 + i for i in range(la)] for la, _, _ in cases]
        rows_b = [[50 + i for i in range(lb)] for _, lb, _ in cases]
        with tf.Graph().as_default(), tf1.Session() as session:
            outputs = session.run(export.encode_pairs(
                tf.ragged.constant(rows_a, tf.int64, ragged_rank=1), tf.ragged.constant(rows_b, tf.int64, ragged_rank=1),
                tf.constant([c[2] for c in cases]), max_len, 1, 2))
        for index, ((la, lb, has_b), a, b) in enumerate(zip(cases, rows_a, rows_b)):
            text_b = (" ".join(map(str, b)) or " ") if has_b else None  # " ": a second segment with no tokens
            expected = input_pipeline.encode_text_pair(Digits(), " ".join(map(str, a)), text_b, max_len)
            got = [outputs[k][index].tolist() for k in range(3)]
            assert got == [list(e) for e in expected], (max_len, la, lb, has_b)


def test_multi_label_names_join_the_labels_that_are_on():
    with tf.Graph().as_default(), tf1.Session() as session:
        names = session.run(export.label_strings(["a", "b", "c"], tf.constant([[1, 0, 1], [0, 0, 0], [0, 1, 0]]),
                                                 True, "|"))
    assert [n.decode() for n in names] == ["a|c", "", "b"]


@pytest.mark.parametrize("vocab_name", ["uncased", "chinese"])
@pytest.mark.parametrize("lower", [True, False])
def test_google_reference_in_graph_token_for_token(tmp_path, vocab_name, lower):
    cases_path = shared_path("tokenization_reference", "google_tokenizer_cases.jsonl")
    vocab = (shared_path("tokenization_reference", "vocab_uncased.txt") if vocab_name == "uncased"
             else shared_path("bert_chinese", "vocab.txt"))
    with open(cases_path, encoding="utf-8") as reader:
        cases = [json.loads(line) for line in reader]
    python = tokenization.FullTokenizer(vocab, do_lower_case=lower)
    got = graph_ids("wordpiece", python, [case["text"] for case in cases], str(tmp_path))
    key = f"{vocab_name}_lower={lower}"
    mismatches = [case["text"][:60] for case, ids in zip(cases, got)
                  if python.convert_ids_to_tokens(ids) != case[key]]
    assert len(cases) == 2530
    assert mismatches == []
