"""An output folder belongs to one run: reruns that differ are refused before anything is written,
a second concurrent run fails at once, --overwrite_output_dir starts afresh, best/ keeps its score
across runs, dead writers' temporaries are cleaned, and numeric flags are range-checked."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from absl import flags

import run_classifier
import run_fewshot
from bert import checkpoint, estimator, files, input_pipeline, model_folder
from bert.errors import UserInputError
from conftest import REPO
from test_fewshot import run as run_fewshot_flags
from test_fewshot import tiny_model, write_data  # noqa: F401  (fixture)
from test_run_classifier import model_dir, sentiment_rows, write_tsv  # noqa: F401  (fixture)
from test_run_classifier import run as run_classifier_flags

FLAGS = flags.FLAGS


def snapshot(folder, names):
    return {name: (folder / name).read_bytes() for name in names if (folder / name).exists()}


def test_fewshot_rerun_with_another_class_split_is_refused_before_writing(tmp_path, tiny_model):  # noqa: F811
    data = write_data(tmp_path / "topics.tsv")
    out = tmp_path / "out"
    run_fewshot_flags(tiny_model, out, do_train=True, do_eval=True, data_file=data, test_class_ratio=0.375,
                      train_episodes=4, eval_frozen=False)
    kept = snapshot(out, ["class_split.json", "fewshot_results.json", "model_info.json", "run.json"])
    with pytest.raises(UserInputError, match="another class split"):
        run_fewshot_flags(tiny_model, out, do_eval=True, data_file=data, test_class_ratio=0.375, split_seed=7)
    assert snapshot(out, kept) == kept
    # Edited training data: refused too (the model was trained on the old data).
    with open(data, "a", encoding="utf-8") as writer:
        writer.write(data.read_text().splitlines()[0] + "\n")  # one sentence more, of a class it has
    with pytest.raises(UserInputError, match="another training data"):
        run_fewshot_flags(tiny_model, out, do_train=True, data_file=data, test_class_ratio=0.375, train_episodes=8)
    # Starting afresh trains again on the new split.
    run_fewshot_flags(tiny_model, out, do_train=True, do_eval=True, data_file=data, test_class_ratio=0.375,
                      split_seed=7, train_episodes=4, eval_frozen=False, overwrite_output_dir=True)
    assert json.loads((out / "class_split.json").read_text()) != json.loads(kept["class_split.json"])
    split = {part: classes for part, classes in json.loads((out / "class_split.json").read_text()).items() if classes}
    assert json.loads((out / "run.json").read_text())["class_split"] == split


def test_classifier_rerun_with_another_config_is_refused_before_writing(tmp_path, model_dir):  # noqa: F811
    data = write_tsv(tmp_path / "data", ["label", "text_a"], {"train": sentiment_rows(16, 1), "dev": sentiment_rows(8, 2)})
    out = tmp_path / "out"
    run_classifier_flags(model_dir, out, task_name="tsv", data_dir=data, do_train=True, num_train_epochs=1)
    kept = snapshot(out, ["bert_config.json", "model_info.json", "label_map.json", "run.json"])
    other = tmp_path / "other_config.json"
    other.write_text(json.dumps(dict(json.loads((model_dir / "bert_config.json").read_text()), intermediate_size=40)))
    with pytest.raises(UserInputError, match="another bert config intermediate size"):
        run_classifier_flags(model_dir, out, task_name="tsv", data_dir=data, do_train=True, bert_config_file=other)
    assert snapshot(out, kept) == kept
    # Evaluation alone with the same model is fine.
    assert run_classifier_flags(model_dir, out, task_name="tsv", data_dir=data, do_eval=True)["global_step"] == 2


def test_a_second_concurrent_run_fails_at_once(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from bert import model_folder; model_folder.claim(sys.argv[1]); "
                               "print('claimed', flush=True); sys.stdin.read()", str(tmp_path / "out")],
        cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "claimed"
        with pytest.raises(UserInputError, match=f"another run \\(pid {holder.pid} on .*, since .*\\) is using this folder"):
            model_folder.claim(str(tmp_path / "out"))
    finally:
        holder.communicate("", timeout=60)
    model_folder.claim(str(tmp_path / "out"))  # free once the holder is gone


def test_overwrite_removes_only_run_outputs(tmp_path):
    out = tmp_path / "out"
    for name in ("notes.txt", "model.ckpt-5.index", "run.json", "eval_results.txt", "checkpoint"):
        files.write_text_atomic(str(out / name), "x")
    os.makedirs(out / "best")
    os.makedirs(out / "cache")
    model_folder.claim(str(out), overwrite=True)
    assert sorted(os.listdir(out)) == [".lock", "notes.txt"]


def test_dead_writers_temporaries_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    ours = files.temporary_name(str(tmp_path / "train.abc.tf_record"))  # this (live) process's
    stale = ours.replace(f".tmp-{os.getpid()}@", f".tmp-{pid}@")
    elsewhere = ours.replace(f".tmp-{os.getpid()}@", f".tmp-{pid}@").rsplit("@", 1)[0] + "@anotherhost"
    for path in (ours, stale, elsewhere, str(tmp_path / "train.abc.tf_record")):
        open(path, "w").close()
    assert files.remove_stale_temporaries(str(tmp_path)) == [os.path.basename(stale)]
    assert sorted(os.listdir(tmp_path)) == sorted(os.path.basename(p) for p in (ours, elsewhere, "train.abc.tf_record"))
    # The feature cache does it before writing.
    old = stale.replace("train.abc", "old")
    open(old, "w").close()
    input_pipeline.cached_tfrecord(str(tmp_path), "t", {}, [], lambda e: {})
    assert not os.path.exists(old)


class FakeEstimator:
    """train() writes a checkpoint at the target step; enough for estimator.train's bookkeeping."""

    def __init__(self, folder):
        self.folder = self.model_dir = folder
        self.config = tf.estimator.RunConfig(model_dir=folder)

    def train(self, input_fn, max_steps):
        checkpoint.write_checkpoint({"global_step": np.int64(max_steps), "w": np.float32(max_steps)},
                                    os.path.join(self.folder, f"model.ckpt-{max_steps}"))

    def latest_checkpoint(self):
        return tf.train.latest_checkpoint(self.folder)


def test_best_checkpoint_keeps_its_score_across_runs(tmp_path):
    best_dir = str(tmp_path / "out" / "best")
    os.makedirs(tmp_path / "out")

    def train(scores, total, data=None):
        scores = iter(scores)
        validation = estimator.Validation(2, lambda checkpoint: {"accuracy": next(scores)}, "accuracy", best_dir,
                                          data=data)
        estimator.train(FakeEstimator(str(tmp_path / "out")), None, total, validation)
        return json.loads((tmp_path / "out" / "best" / "best_eval.json").read_text())

    assert train([0.5, 0.8], 4)["value"] == 0.8
    best = train([0.6], 6)  # a continued run whose only evaluation is worse keeps the earlier best
    assert best["value"] == 0.8 and tf.train.latest_checkpoint(best_dir).endswith("model.ckpt-4")
    assert train([0.9], 8)["value"] == 0.9
    # Scored on other evaluation data, the kept score is not the one to beat.
    assert train([0.4], 10, data="another dev set")["value"] == 0.4


@pytest.mark.parametrize("script, flag", [
    ("run_fewshot.py", "--learning_rate=-1"), ("run_fewshot.py", "--learning_rate=nan"), ("run_fewshot.py", "--k_shot=0"),
    ("run_fewshot.py", "--q_query=0"), ("run_fewshot.py", "--train_episodes=0"), ("run_fewshot.py", "--n_way=1"),
    ("run_classifier.py", "--num_train_epochs=-1"), ("run_classifier.py", "--train_batch_size=0"),
    ("run_classifier.py", "--warmup_proportion=1.5"), ("run_squad.py", "--doc_stride=0"),
    ("run_fewshot.py", "--test_class_ratio=0"), ("run_classifier.py", "--seed=-3"),
])
def test_numbers_that_make_no_sense_are_refused(script, flag):
    module = {"run_fewshot.py": run_fewshot, "run_classifier.py": run_classifier}.get(script)
    if module is not None:  # in process: absl refuses the value while parsing
        FLAGS.unparse_flags()
        with pytest.raises(flags.IllegalFlagValueError, match=flag.split("=")[0]):
            FLAGS([script, flag])
        FLAGS.unparse_flags()
        return
    result = subprocess.run([sys.executable, script, flag, "--output_dir=/nonexistent"], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert f"flag {flag}" in result.stderr


def test_resume_falls_back_from_a_damaged_latest_checkpoint(tmp_path):
    out = tmp_path / "out"
    for step in (2, 4):
        checkpoint.write_checkpoint({"global_step": np.int64(step), "w": np.zeros([64], np.float32)},
                                    str(out / f"model.ckpt-{step}"))
    checkpoint.write_checkpoint_state(str(out), "model.ckpt-4", ["model.ckpt-2", "model.ckpt-4"])
    data = next(out.glob("model.ckpt-4.data-*"))
    data.write_bytes(data.read_bytes()[:100])  # killed while writing
    model_folder.claim(str(out))  # claiming (also for evaluation alone) changes nothing
    assert tf.train.latest_checkpoint(str(out)).endswith("model.ckpt-4")
    model_folder.resume_from_a_whole_checkpoint(str(out))  # what estimator.train does first
    assert tf.train.latest_checkpoint(str(out)).endswith("model.ckpt-2")
    next(out.glob("model.ckpt-2.data-*")).write_bytes(b"")
    checkpoint.write_checkpoint_state(str(out), "model.ckpt-2")
    with pytest.raises(UserInputError, match="no checkpoint there is whole"):
        model_folder.resume_from_a_whole_checkpoint(str(out))
