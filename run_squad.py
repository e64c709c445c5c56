"""Extractive reading comprehension (SQuAD v1.1 / v2.0, CMRC2018, DRCD), google-research/bert's flags.

  python run_squad.py --do_train --train_file=train.json --do_predict --do_eval --predict_file=dev.json \
      --vocab_file=M/vocab.txt --bert_config_file=M/bert_config.json --init_checkpoint=M --output_dir=OUT

Outputs: predictions.json, nbest_predictions.json, null_odds.json (with --version_2_with_negative),
and with --do_eval the official metrics in eval_results.json (SQuAD EM/F1, the v2.0 HasAns/NoAns
splits and best thresholds, or CMRC2018's character-level EM/F1 for Chinese: --eval_version; with
`total` questions and their context `windows`). Training records its questions, skipped questions
and windows in model_info.json ("training_data").
"""
import dataclasses
import json
import os
from typing import Optional

from absl import flags, logging

import common_flags
from bert import estimator, files, input_pipeline, model_fn, model_folder, squad, tasks
from bert.errors import UserInputError, run_main

FLAGS = flags.FLAGS
flags.DEFINE_integer("doc_stride", 128, "Pieces between the starts of consecutive context windows.", lower_bound=1)
flags.DEFINE_integer("max_query_length", 64, "Question pieces kept (longer questions are truncated, with a warning).",
                     lower_bound=1)
flags.DEFINE_integer("n_best_size", 20, "Candidate starts and ends considered, and answers kept in nbest.",
                     lower_bound=1)
flags.DEFINE_integer("max_answer_length", 30, "Longest answer, in pieces.", lower_bound=1)
flags.DEFINE_bool("version_2_with_negative", False, "SQuAD 2.0: questions may have no answer.")
common_flags.define_float("null_score_diff_threshold", 0.0, "SQuAD 2.0: answer \"\" when null score - best > this.")
flags.DEFINE_enum("eval_version", "auto", ["auto", "1.1", "2.0", "cmrc"],
                  "Metric for --do_eval: auto picks cmrc for Chinese, 2.0 with --version_2_with_negative, else 1.1.")


@dataclasses.dataclass
class SquadConfig:
    """What run_squad.py adds to the shared TrainingConfig."""
    train_file: Optional[str]
    predict_file: Optional[str]
    window: squad.WindowSettings
    n_best_size: int = 20
    max_answer_length: int = 30
    version_2_with_negative: bool = False
    null_score_diff_threshold: float = 0.0
    eval_version: str = "auto"


def train(setup, run, task, bert_config):
    """Fine-tunes on run.train_file; returns the estimator (built without training when train_file is None)."""
    cache = setup.feature_cache()
    optimizer_config, hooks = None, ()
    if run.train_file:
        train_examples = squad.read_squad_file(run.train_file, run.version_2_with_negative)
        model_folder.check_run(setup.output_dir, dict(
            setup.identity(bert_config), task=task.name,
            training_data=input_pipeline.data_digest(train_examples)), record=estimator.is_chief())
        usable = [e for e in train_examples if squad.answer_recoverable(e)]
        logging.info("training on %d questions (%d skipped: answer not found at its offset)", len(usable),
                     len(train_examples) - len(usable))
        train_path, train_count = cache.features(task, usable, "squad-train", training=True)
        optimizer_config = setup.optimizer_for_examples(train_count)
        total = optimizer_config.num_train_steps
        hooks = [lambda loss: estimator.ProgressHook(loss, total, setup.train_batch_size, every=max(total // 20, 1))]
        model_folder.save_model_info(setup, task, training_data={
            "questions": len(usable), "skipped": len(train_examples) - len(usable), "windows": train_count})
    bert = estimator.build_estimator(model_fn.model_fn_builder(task, bert_config, setup.init_checkpoint,
                                                               optimizer_config, setup.precision, training_hooks=hooks),
                                     setup.run)
    if run.train_file:
        _, batch = setup.micro_batch(bert)
        estimator.train(bert, input_pipeline.tfrecord_input_fn_builder(
            train_path, task.feature_spec(True), batch, True, drop_remainder=True, seed=setup.seed), total)
    return bert


def predict(setup, run, task, bert, do_eval):
    """Answers run.predict_file's questions: predictions.json, nbest_predictions.json (null_odds.json),
    and with do_eval the task scorer's official metrics in eval_results.json."""
    examples = squad.read_squad_file(run.predict_file, run.version_2_with_negative)
    path, count = setup.feature_cache().features(task, examples, "squad-predict", training=False)
    spec = task.feature_spec(False)
    windows = input_pipeline.read_tfrecord_arrays(path, spec)
    starts, ends = [], []
    for result in bert.predict(input_pipeline.tfrecord_input_fn_builder(path, spec, setup.predict_batch_size, False),
                               yield_single_examples=False):
        starts.extend(result["start_logits"])
        ends.extend(result["end_logits"])
    predictions, nbest, null_odds = squad.best_answers(
        examples, windows, (starts, ends), run.n_best_size, run.max_answer_length,
        run.version_2_with_negative, run.null_score_diff_threshold)
    outputs = {"predictions.json": predictions, "nbest_predictions.json": nbest}
    if run.version_2_with_negative:
        outputs["null_odds.json"] = null_odds
    for name, value in outputs.items():
        files.write_text_atomic(os.path.join(setup.output_dir, name),
                                json.dumps(value, indent=2, ensure_ascii=False) + "\n")
    logging.info("answered %d questions (%d windows) -> %s", len(examples), count, setup.output_dir)
    if do_eval:
        scorer = task.scorer(run.eval_version, run.version_2_with_negative)
        model_folder.write_eval_results(setup.output_dir, dict(scorer.score(examples, predictions, null_odds),
                                                              windows=count))


def main(argv):
    del argv
    common_flags.reject_tpu()
    common_flags.quiet_tensorflow()
    common_flags.require("bert_config_file", "output_dir")
    if not (FLAGS.do_train or FLAGS.do_predict):
        raise UserInputError("nothing to do: pass --do_train and/or --do_predict (with --do_eval for metrics)")
    if FLAGS.do_eval and not FLAGS.do_predict:
        raise UserInputError("--do_eval scores the predictions: pass --do_predict with it")
    if FLAGS.spm_model_file or FLAGS.tokenizer != "wordpiece":
        raise UserInputError("run_squad.py needs a WordPiece vocab (character offsets come from FullTokenizer)")
    for name in ("train_file",) * FLAGS.do_train + ("predict_file",) * FLAGS.do_predict:
        common_flags.require(name)
    # Google's SQuAD default length is 384 (the other scripts default to 128).
    setup = common_flags.training_config(max_seq_length=None if FLAGS["max_seq_length"].present else 384)
    run = SquadConfig(
        train_file=FLAGS.train_file if FLAGS.do_train else None,
        predict_file=FLAGS.predict_file if FLAGS.do_predict else None,
        window=squad.WindowSettings(setup.max_seq_length, FLAGS.doc_stride, FLAGS.max_query_length),
        n_best_size=FLAGS.n_best_size, max_answer_length=FLAGS.max_answer_length,
        version_2_with_negative=FLAGS.version_2_with_negative,
        null_score_diff_threshold=FLAGS.null_score_diff_threshold, eval_version=FLAGS.eval_version)
    bert_config = setup.bert_config()
    task = tasks.SpanTask(setup.tokenizer(bert_config), run.window)
    model_folder.claim(setup.output_dir, FLAGS.overwrite_output_dir, exclusive=estimator.is_chief())
    model_folder.check_run(setup.output_dir, dict(setup.identity(bert_config), task=task.name), record=False)
    bert = train(setup, run, task, bert_config)
    if run.predict_file and estimator.is_chief():
        predict(setup, run, task, bert, FLAGS.do_eval)


if __name__ == "__main__":
    run_main(main)
