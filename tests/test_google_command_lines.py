"""google-research/bert's README command lines, run as they are, on tiny data and a tiny model folder laid
out as Google's releases are (vocab.txt, bert_config.json, bert_model.ckpt.*); and every flag its scripts
define is accepted here, with Google's default.

The commands run in-process (main() after absl parses the command line), as the other tests do; one
subprocess checks that --use_tpu=true is a one-line error and exit status 2.
"""
import json
import os
import shlex
import string
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from absl import flags

import create_pretraining_data
import extract_features
import run_classifier
import run_pretraining
import run_squad
from bert import modeling, tokenization
from bert.errors import UserInputError
from conftest import REPO, tiny_config

FLAGS = flags.FLAGS
tf1 = tf.compat.v1

# The flags each google-research/bert script defines, with its default.
TPU_FLAGS = {"use_tpu": False, "tpu_name": None, "tpu_zone": None, "gcp_project": None, "master": None,
             "num_tpu_cores": 8}
GOOGLE_FLAGS = {
    run_classifier: dict(
        data_dir=None, bert_config_file=None, task_name=None, vocab_file=None, output_dir=None, init_checkpoint=None,
        do_lower_case=True, max_seq_length=128, do_train=False, do_eval=False, do_predict=False, train_batch_size=32,
        eval_batch_size=8, predict_batch_size=8, learning_rate=5e-5, num_train_epochs=3.0, warmup_proportion=0.1,
        save_checkpoints_steps=1000, iterations_per_loop=1000, **TPU_FLAGS),
    run_squad: dict(
        bert_config_file=None, vocab_file=None, output_dir=None, train_file=None, predict_file=None,
        init_checkpoint=None, do_lower_case=True, max_seq_length=384, doc_stride=128, max_query_length=64,
        do_train=False, do_predict=False, train_batch_size=32, predict_batch_size=8, learning_rate=5e-5,
        num_train_epochs=3.0, warmup_proportion=0.1, save_checkpoints_steps=1000, iterations_per_loop=1000,
        n_best_size=20, max_answer_length=30, verbose_logging=False, version_2_with_negative=False,
        null_score_diff_threshold=0.0, **TPU_FLAGS),
    run_pretraining: dict(
        bert_config_file=None, input_file=None, output_dir=None, init_checkpoint=None, max_seq_length=128,
        max_predictions_per_seq=20, do_train=False, do_eval=False, train_batch_size=32, eval_batch_size=8,
        learning_rate=5e-5, num_train_steps=100000, num_warmup_steps=10000, save_checkpoints_steps=1000,
        iterations_per_loop=1000, max_eval_steps=100, **TPU_FLAGS),
    create_pretraining_data: dict(
        input_file=None, output_file=None, vocab_file=None, do_lower_case=True, do_whole_word_mask=False,
        max_seq_length=128, max_predictions_per_seq=20, random_seed=12345, dupe_factor=10, masked_lm_prob=0.15,
        short_seq_prob=0.1),
    extract_features: dict(
        input_file=None, output_file=None, layers="-1,-2,-3,-4", bert_config_file=None, max_seq_length=128,
        init_checkpoint=None, vocab_file=None, do_lower_case=True, batch_size=32, use_tpu=False, master=None,
        num_tpu_cores=8, use_one_hot_embeddings=False),
}
# Defaults that differ on purpose: run_squad's 384 is applied in main() (the flag is shared with scripts whose
# default is 128); create_pretraining_data's absent --do_whole_word_mask leaves --word_boundaries in charge.
OTHER_DEFAULT = {(run_squad, "max_seq_length"): 128, (create_pretraining_data, "do_whole_word_mask"): None}

# Google's README command lines, as they are but for the paths ($OUT for /tmp/... output folders).
MRPC_TRAIN = r"""
python run_classifier.py \
  --task_name=MRPC \
  --do_train=true \
  --do_eval=true \
  --data_dir=$GLUE_DIR/MRPC \
  --vocab_file=$BERT_BASE_DIR/vocab.txt \
  --bert_config_file=$BERT_BASE_DIR/bert_config.json \
  --init_checkpoint=$BERT_BASE_DIR/bert_model.ckpt \
  --max_seq_length=128 \
  --train_batch_size=32 \
  --learning_rate=2e-5 \
  --num_train_epochs=3.0 \
  --output_dir=$OUT/mrpc_output/
"""
MRPC_PREDICT = r"""
python run_classifier.py \
  --task_name=MRPC \
  --do_predict=true \
  --data_dir=$GLUE_DIR/MRPC \
  --vocab_file=$BERT_BASE_DIR/vocab.txt \
  --bert_config_file=$BERT_BASE_DIR/bert_config.json \
  --init_checkpoint=$TRAINED_CLASSIFIER \
  --max_seq_length=128 \
  --output_dir=$OUT/mrpc_output/
"""
SQUAD_V1 = r"""
python run_squad.py \
  --vocab_file=$BERT_BASE_DIR/vocab.txt \
  --bert_config_file=$BERT_BASE_DIR/bert_config.json \
  --init_checkpoint=$BERT_BASE_DIR/bert_model.ckpt \
  --do_train=True \
  --train_file=$SQUAD_DIR/train-v1.1.json \
  --do_predict=True \
  --predict_file=$SQUAD_DIR/dev-v1.1.json \
  --train_batch_size=12 \
  --learning_rate=3e-5 \
  --num_train_epochs=2.0 \
  --max_seq_length=384 \
  --doc_stride=128 \
  --output_dir=$OUT/squad_base/
"""
SQUAD_V2 = r"""
python run_squad.py \
  --vocab_file=$BERT_LARGE_DIR/vocab.txt \
  --bert_config_file=$BERT_LARGE_DIR/bert_config.json \
  --init_checkpoint=$BERT_LARGE_DIR/bert_model.ckpt \
  --do_train=True \
  --train_file=$SQUAD_DIR/train-v2.0.json \
  --do_predict=True \
  --predict_file=$SQUAD_DIR/dev-v2.0.json \
  --train_batch_size=24 \
  --learning_rate=3e-5 \
  --num_train_epochs=2.0 \
  --max_seq_length=384 \
  --doc_stride=128 \
  --output_dir=$OUT/squad_large/ \
  --use_tpu=True \
  --tpu_name=$TPU_NAME \
  --version_2_with_negative=True
"""
SQUAD_V2_THRESHOLD = r"""
python run_squad.py \
  --vocab_file=$BERT_LARGE_DIR/vocab.txt \
  --bert_config_file=$BERT_LARGE_DIR/bert_config.json \
  --init_checkpoint=$BERT_LARGE_DIR/bert_model.ckpt \
  --do_train=False \
  --train_file=$SQUAD_DIR/train-v2.0.json \
  --do_predict=True \
  --predict_file=$SQUAD_DIR/dev-v2.0.json \
  --train_batch_size=24 \
  --learning_rate=3e-5 \
  --num_train_epochs=2.0 \
  --max_seq_length=384 \
  --doc_stride=128 \
  --output_dir=$OUT/squad_large/ \
  --use_tpu=True \
  --tpu_name=$TPU_NAME \
  --version_2_with_negative=True \
  --null_score_diff_threshold=$THRESH
"""
EXTRACT_FEATURES = r"""
python extract_features.py \
  --input_file=$OUT/input.txt \
  --output_file=$OUT/output.jsonl \
  --vocab_file=$BERT_BASE_DIR/vocab.txt \
  --bert_config_file=$BERT_BASE_DIR/bert_config.json \
  --init_checkpoint=$BERT_BASE_DIR/bert_model.ckpt \
  --layers=-1,-2,-3,-4 \
  --max_seq_length=128 \
  --batch_size=8
"""
TPU_ARGS = ("--use_tpu=True", "--tpu_name=$TPU_NAME")
TPU_ERROR = "--use_tpu=true: this project runs tf.estimator.Estimator on CPUs and GPUs"

WORDS = ["the", "cat", "dog", "sat", "on", "mat", "what", "did", "do", "where", "is", "red", "blue", "car", "was",
         "who", "saw", "a", "bird", "ran", "to", "park", "color", "he", "said", "it", "good", "bad", "movie",
         "?", ".", ",", "'", "|"]
VOCAB = list(tokenization.SPECIAL_TOKENS) + WORDS + ["##s", "##ed"]


def argv(command, variables, drop=()):
    """A README command line -> absl argv (the script's name first), $VARIABLES filled in; drop: arguments
    (as written in the README) left out."""
    words = shlex.split(command.replace("\\\n", " "))
    assert words[0] == "python"
    return [string.Template(word).substitute(variables) for word in words[1:] if word not in drop]


def run(module, command, variables, drop=()):
    FLAGS.unparse_flags()
    FLAGS(argv(command, variables, drop))
    module.main([])


def google_model(model, layers):
    """A tiny random BERT as Google releases one: vocab.txt, bert_config.json, bert_model.ckpt.* in `model`."""
    model.mkdir()
    (model / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    config = tiny_config(vocab_size=len(VOCAB), num_hidden_layers=layers, max_position_embeddings=512)
    config.to_json_file(str(model / "bert_config.json"))
    with tf.Graph().as_default():
        tf1.set_random_seed(3)
        modeling.BertModel(config, is_training=False, input_ids=tf1.placeholder(tf.int32, [None, 8]))
        with tf1.Session() as session:
            session.run(tf1.global_variables_initializer())
            tf1.train.Saver().save(session, str(model / "bert_model.ckpt"), write_meta_graph=False)
    return config


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """$BERT_BASE_DIR (= $BERT_LARGE_DIR): a tiny model (2 layers; extract_features.py gets 4, which Google's
    default --layers=-1,-2,-3,-4 needs), $GLUE_DIR/MRPC, $SQUAD_DIR."""
    root = tmp_path_factory.mktemp("google")
    base = root / "uncased_L-2_H-32_A-4"
    google_model(base, 2)
    extract_model = root / "uncased_L-4_H-32_A-4"
    extract_config = google_model(extract_model, 4)

    mrpc = root / "glue" / "MRPC"
    mrpc.mkdir(parents=True)
    pairs = [("the cat sat on the mat .", "the cat sat on the red mat .", "1"),
             ("he said the movie was good .", "he said it was bad .", "0"),
             ("where is the blue car ?", "where was the blue car ?", "1"),
             ("the dog ran to the park .", "a bird saw the dog .", "0")]
    header = "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
    for split, count in (("train", 32), ("dev", 8)):
        rows = [f"{label}\t{100 + i}\t{200 + i}\t{a}\t{b}\n" for i, (a, b, label) in
                enumerate(pairs * (count // len(pairs)))]
        (mrpc / f"{split}.tsv").write_text("\ufeff" + header + "".join(rows), encoding="utf-8")  # as GLUE's files
    (mrpc / "test.tsv").write_text("index\t#1 ID\t#2 ID\t#1 String\t#2 String\n" + "".join(
        f"{i}\t{300 + i}\t{400 + i}\t{a}\t{b}\n" for i, (a, b, _) in enumerate(pairs + pairs[:1])), encoding="utf-8")

    squad_dir = root / "squad"
    squad_dir.mkdir()
    context = "the cat sat on the mat . the dog ran to the park . a bird saw the red car ."
    questions = [("where did the cat sit ?", "on the mat"), ("where did the dog run ?", "to the park"),
                 ("what did the bird see ?", "the red car"), ("who ran to the park ?", "the dog")]
    for version, impossible in (("v1.1", ()), ("v2.0", ("who saw the blue car ?",))):
        qas = [{"id": f"q{i}", "question": q, "answers": [{"text": a, "answer_start": context.index(a)}]}
               for i, (q, a) in enumerate(questions * 3)]
        if impossible:
            qas = [dict(q, is_impossible=False) for q in qas] + [
                {"id": f"n{i}", "question": q, "answers": [], "is_impossible": True} for i, q in enumerate(impossible)]
        data = {"version": version, "data": [{"title": "t", "paragraphs": [{"context": context, "qas": qas}]}]}
        for split in ("train", "dev"):
            (squad_dir / f"{split}-{version}.json").write_text(json.dumps(data), encoding="utf-8")
    return {"root": root, "extract_model": extract_model, "extract_config": extract_config,
            "variables": {"BERT_BASE_DIR": str(base), "BERT_LARGE_DIR": str(base), "GLUE_DIR": str(root / "glue"),
                          "SQUAD_DIR": str(squad_dir), "TPU_NAME": "my-tpu", "OUT": str(root / "out")}}


@pytest.mark.parametrize("module", list(GOOGLE_FLAGS), ids=lambda module: module.__name__)
def test_every_google_flag_is_accepted_with_googles_default(module):
    for name, default in GOOGLE_FLAGS[module].items():
        assert name in FLAGS, f"{module.__name__}: --{name} is not defined"
        default = OTHER_DEFAULT.get((module, name), default)
        assert FLAGS[name].default == default, f"{module.__name__}: --{name} defaults to {FLAGS[name].default!r}"


def test_run_classifier_mrpc_train_eval_then_predict(world):
    variables = world["variables"]
    out = world["root"] / "out" / "mrpc_output"
    run(run_classifier, MRPC_TRAIN, variables)
    results = dict(line.split(" = ") for line in (out / "eval_results.txt").read_text().splitlines())
    assert int(results["global_step"]) == 3  # 32 examples x 3 epochs / 32
    assert 0 <= float(results["accuracy"]) <= 1 and float(results["loss"]) > 0
    world["eval_results"] = results

    trained = tf.train.latest_checkpoint(str(out))
    assert trained.endswith("model.ckpt-3")
    run(run_classifier, MRPC_PREDICT, dict(variables, TRAINED_CLASSIFIER=trained))
    lines = (out / "test_results.tsv").read_text().splitlines()
    assert len(lines) == 5  # one per test.tsv row
    for line in lines:
        # Google's columns: one probability per class ("0", "1"), in label order.
        probabilities = [float(x) for x in line.split("\t")[:2]]
        assert abs(sum(probabilities) - 1) < 1e-4


def test_run_classifier_eval_results_has_googles_keys(world):
    if "eval_results" not in world:
        pytest.skip("the MRPC run did not finish")
    assert {"eval_accuracy", "eval_loss", "global_step", "loss"} <= set(world["eval_results"])


def test_run_squad_v1_and_v2(world):
    variables = world["variables"]
    run(run_squad, SQUAD_V1, variables)
    out = world["root"] / "out" / "squad_base"
    predictions = json.loads((out / "predictions.json").read_text())
    assert sorted(predictions) == sorted(f"q{i}" for i in range(12))
    assert all(isinstance(answer, str) for answer in predictions.values())
    assert sorted(json.loads((out / "nbest_predictions.json").read_text())) == sorted(predictions)
    assert not (out / "null_odds.json").exists()

    # SQuAD 2.0 as Google's README trains it, on a TPU: --use_tpu=True is the one error.
    large = world["root"] / "out" / "squad_large"
    with pytest.raises(UserInputError, match=f"^{TPU_ERROR}"):
        run(run_squad, SQUAD_V2, variables)
    assert not large.exists()
    # The README's next step predicts again from that folder with the threshold evaluate-v2.0.py chose (the
    # v1.1 model stands in for the refused TPU run; the TPU flags are left out).
    large.symlink_to(out, target_is_directory=True)
    run(run_squad, SQUAD_V2_THRESHOLD, dict(variables, THRESH=1e9), drop=TPU_ARGS)
    null_odds = json.loads((large / "null_odds.json").read_text())
    predictions = json.loads((large / "predictions.json").read_text())
    nbest = json.loads((large / "nbest_predictions.json").read_text())
    assert sorted(null_odds) == sorted(predictions) == sorted(nbest) == sorted([f"q{i}" for i in range(12)] + ["n0"])
    for qas_id, answer in predictions.items():  # null score - best non-null is never above 1e9: never ""
        assert answer == next((entry["text"] for entry in nbest[qas_id] if entry["text"]), "")


def reference_layers(world, examples, max_seq_length):
    """Google's extract_features computed independently: its features from the Python tokenizer, BertModel's
    get_all_encoder_layers() on them. -> ([tokens per example], float32 [examples, layers, seq, hidden])."""
    tokenizer = tokenization.FullTokenizer(str(world["extract_model"] / "vocab.txt"), do_lower_case=True)
    all_tokens, rows = [], []
    for text_a, text_b in examples:
        a, b = tokenizer.tokenize(text_a), tokenizer.tokenize(text_b) if text_b else []
        while len(a) + len(b) > max_seq_length - (3 if b else 2):  # the longer side loses a piece (b on a tie)
            (a if len(a) > len(b) else b).pop()
        tokens = ["[CLS]"] + a + ["[SEP]"] + (b + ["[SEP]"] if b else [])
        segments = [0] * (len(a) + 2) + [1] * (len(b) + 1 if b else 0)
        pad = max_seq_length - len(tokens)
        rows.append((tokenizer.convert_tokens_to_ids(tokens) + [0] * pad, [1] * len(tokens) + [0] * pad,
                     segments + [0] * pad))
        all_tokens.append(tokens)
    ids, mask, segments = (np.array(column, np.int32) for column in zip(*rows))
    with tf.Graph().as_default():
        model = modeling.BertModel(world["extract_config"], is_training=False, input_ids=tf.constant(ids),
                                   input_mask=tf.constant(mask), token_type_ids=tf.constant(segments))
        with tf1.Session() as session:
            tf1.train.Saver().restore(session, str(world["extract_model"] / "bert_model.ckpt"))
            layers = session.run(model.get_all_encoder_layers())
    return all_tokens, np.stack(layers, axis=1)


def test_extract_features_writes_googles_json_lines(world):
    variables = dict(world["variables"], BERT_BASE_DIR=str(world["extract_model"]))
    out = world["root"] / "out"
    out.mkdir(exist_ok=True)
    lines = ["the cat sat on the mat .", "  The dog ran ||| a bird saw the dog .  ", "", "red ||| blue ||| cars",
             " ".join(["the red car"] * 60)] + ["what did the cat do ?"] * 5  # 10 lines: two batches of 8
    (out / "input.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    run(extract_features, EXTRACT_FEATURES, variables)
    records = [json.loads(line) for line in (out / "output.jsonl").read_text().splitlines()]
    assert [record["linex_index"] for record in records] == list(range(10))
    assert list(records[0]) == ["linex_index", "features"] and list(records[0]["features"][0]) == ["token", "layers"]

    examples = [("the cat sat on the mat .", ""), ("The dog ran", "a bird saw the dog ."), ("", ""),
                ("red ||| blue", "cars"), (lines[4], "")] + [("what did the cat do ?", "")] * 5
    tokens, layers = reference_layers(world, examples, 128)
    assert [f["token"] for f in records[1]["features"]] == ["[CLS]", "the", "dog", "ran", "[SEP]", "a", "bird", "saw",
                                                           "the", "dog", ".", "[SEP]"]
    assert [f["token"] for f in records[2]["features"]] == ["[CLS]", "[SEP]"]
    assert len(records[4]["features"]) == 128  # truncated to --max_seq_length
    for record, expected_tokens, expected in zip(records, tokens, layers):
        assert [f["token"] for f in record["features"]] == expected_tokens
        for position, feature in enumerate(record["features"]):
            assert [layer["index"] for layer in feature["layers"]] == [-1, -2, -3, -4]
            for layer in feature["layers"]:
                values = layer["values"]
                assert len(values) == 32 and all(value == round(value, 6) for value in values)
                np.testing.assert_allclose(values, expected[layer["index"], position], atol=2e-6)

    # --use_one_hot_embeddings (Google's TPU lookup) gives the same numbers; --use_tpu=true is refused.
    variables = dict(variables, OUT=str(out / "one_hot"))
    (out / "one_hot").mkdir()
    (out / "one_hot" / "input.txt").write_text(lines[1] + "\n", encoding="utf-8")
    FLAGS.unparse_flags()
    FLAGS(argv(EXTRACT_FEATURES, variables) + ["--use_one_hot_embeddings=true", "--layers=0,-1"])
    extract_features.main([])
    record = json.loads((out / "one_hot" / "output.jsonl").read_text())
    assert [layer["index"] for layer in record["features"][0]["layers"]] == [0, -1]
    assert record["features"][3]["layers"][1] == records[1]["features"][3]["layers"][0]


@pytest.mark.parametrize("extra, message", [
    (["--layers=-1,-5"], r"--layers=-1,-5: layer -5 does not exist; the model has 4 layers \(indexes -4..3\)"),
    (["--layers=last"], "--layers=last: expected comma-separated integers"),
    (["--output_dir=$OUT/npy"], r"give --output_file \(Google's JSON lines\) or --output_dir \(numpy arrays\), "
                                r"not both"),
    (["--use_tpu=true"], TPU_ERROR),
])
def test_extract_features_bad_flags_are_one_line_errors(world, extra, message):
    variables = dict(world["variables"], BERT_BASE_DIR=str(world["extract_model"]), OUT=str(world["root"] / "bad"))
    os.makedirs(variables["OUT"], exist_ok=True)
    (world["root"] / "bad" / "input.txt").write_text("the cat\n", encoding="utf-8")
    FLAGS.unparse_flags()
    FLAGS(argv(EXTRACT_FEATURES, variables) + [string.Template(word).substitute(variables) for word in extra])
    with pytest.raises(UserInputError, match=message):
        extract_features.main([])
    assert not (world["root"] / "bad" / "output.jsonl").exists()


@pytest.mark.parametrize("module", [run_classifier, run_pretraining, create_pretraining_data],
                         ids=lambda module: module.__name__)
def test_use_tpu_is_refused_before_anything_runs(tmp_path, module):
    FLAGS.unparse_flags()
    FLAGS([module.__name__, "--use_tpu=true", "--tpu_name=my-tpu", "--num_tpu_cores=8", "--iterations_per_loop=10",
           f"--output_dir={tmp_path / 'out'}"])
    with pytest.raises(UserInputError, match=f"^{TPU_ERROR}"):
        module.main([])
    assert not (tmp_path / "out").exists()


def test_use_tpu_is_a_one_line_error_from_the_command_line(world):
    """Google's SQuAD 2.0 README command line, as it is (on a TPU)."""
    result = subprocess.run([sys.executable] + argv(SQUAD_V2, dict(world["variables"], OUT=str(world["root"] / "tpu"))),
                            cwd=REPO, capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))  # TensorFlow's C++ start-up lines
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {TPU_ERROR}, not TPUEstimator; drop --use_tpu and use --distribution=mirrored (all local GPUs) or "
        "--distribution=multi_worker (machines listed in TF_CONFIG)"]
    assert not (world["root"] / "tpu").exists()
