"""Extractive reading comprehension (SQuAD v1.1 / v2.0, CMRC2018, DRCD), google-research/bert's flags.

  python run_squad.py --do_train --train_file=train.json --do_predict --do_eval --predict_file=dev.json \
      --vocab_file=M/vocab.txt --bert_config_file=M/bert_config.json --init_checkpoint=M --output_dir=OUT

Outputs: predictions.json, nbest_predictions.json, null_odds.json (with --version_2_with_negative),
and with --do_eval the official metrics in eval_results.json (SQuAD EM/F1, the v2.0 HasAns/NoAns
splits and best thresholds, or CMRC2018's character-level EM/F1 for Chinese: --eval_version).
"""
import json
import os

from absl import flags, logging

import common_flags
from bert import estimator, files, input_pipeline, model_fn, squad, tasks
from bert.errors import UserInputError, run_main

FLAGS = flags.FLAGS
flags.DEFINE_integer("doc_stride", 128, "Pieces between the starts of consecutive context windows.")
flags.DEFINE_integer("max_query_length", 64, "Question pieces kept (longer questions are truncated, with a warning).")
flags.DEFINE_integer("n_best_size", 20, "Candidate starts and ends considered, and answers kept in nbest.")
flags.DEFINE_integer("max_answer_length", 30, "Longest answer, in pieces.")
flags.DEFINE_bool("version_2_with_negative", False, "SQuAD 2.0: questions may have no answer.")
flags.DEFINE_float("null_score_diff_threshold", 0.0, "SQuAD 2.0: answer \"\" when null score - best > this.")
flags.DEFINE_enum("eval_version", "auto", ["auto", "1.1", "2.0", "cmrc"],
                  "Metric for --do_eval: auto picks cmrc for Chinese, 2.0 with --version_2_with_negative, else 1.1.")


def main(argv):
    del argv
    common_flags.quiet_tensorflow()
    common_flags.require("bert_config_file", "output_dir")
    if not FLAGS["max_seq_length"].present:
        FLAGS.max_seq_length = 384  # Google's SQuAD default (the other scripts default to 128)
    if not (FLAGS.do_train or FLAGS.do_predict):
        raise UserInputError("nothing to do: pass --do_train and/or --do_predict (with --do_eval for metrics)")
    if FLAGS.do_eval and not FLAGS.do_predict:
        raise UserInputError("--do_eval scores the predictions: pass --do_predict with it")
    if FLAGS.spm_model_file or FLAGS.tokenizer != "wordpiece":
        raise UserInputError("run_squad.py needs a WordPiece vocab (character offsets come from FullTokenizer)")
    for name in ("train_file",) * FLAGS.do_train + ("predict_file",) * FLAGS.do_predict:
        common_flags.require(name)
    config = common_flags.bert_config()
    tokenizer = common_flags.tokenizer(config)
    window = squad.WindowSettings(FLAGS.max_seq_length, FLAGS.doc_stride, FLAGS.max_query_length)
    task = tasks.SpanTask(tokenizer, window)
    key = dict(task.cache_key(), vocab=common_flags.vocab_digest(), lower=FLAGS.do_lower_case)
    os.makedirs(FLAGS.output_dir, exist_ok=True)

    def features_file(examples, name, is_training):
        return input_pipeline.cached_tfrecord(
            common_flags.cache_dir(), name, dict(key, training=is_training), examples,
            lambda example: squad.example_features(example, tokenizer, window, is_training), many=True)

    optimizer_config, hooks = None, ()
    if FLAGS.do_train:
        train_examples = squad.read_squad_file(FLAGS.train_file, FLAGS.version_2_with_negative)
        usable = [e for e in train_examples if squad.answer_recoverable(e)]
        logging.info("training on %d questions (%d skipped: answer not found at its offset)", len(usable),
                     len(train_examples) - len(usable))
        train_path, train_count = features_file(usable, "squad-train", True)
        optimizer_config = common_flags.optimizer_config(train_count)
        total = optimizer_config.num_train_steps
        hooks = [lambda loss: estimator.ProgressHook(loss, total, FLAGS.train_batch_size, every=max(total // 20, 1))]
        common_flags.save_model_info("squad", doc_stride=FLAGS.doc_stride, max_query_length=FLAGS.max_query_length)
    bert = estimator.build_estimator(model_fn.model_fn_builder(task, config, FLAGS.init_checkpoint, optimizer_config,
                                                               FLAGS.precision, training_hooks=hooks),
                                     common_flags.run_settings())
    if FLAGS.do_train:
        _, batch = common_flags.micro_batch(bert)
        bert.train(input_pipeline.tfrecord_input_fn_builder(train_path, task.feature_spec(True), batch, True,
                                                            drop_remainder=True, seed=FLAGS.seed),
                   max_steps=optimizer_config.num_train_steps)

    if FLAGS.do_predict and estimator.is_chief():
        examples = squad.read_squad_file(FLAGS.predict_file, FLAGS.version_2_with_negative)
        path, count = features_file(examples, "squad-predict", False)
        spec = task.feature_spec(False)
        windows = input_pipeline.read_tfrecord_arrays(path, spec)
        starts, ends = [], []
        for result in bert.predict(input_pipeline.tfrecord_input_fn_builder(path, spec, FLAGS.predict_batch_size,
                                                                            False), yield_single_examples=False):
            starts.extend(result["start_logits"])
            ends.extend(result["end_logits"])
        predictions, nbest, null_odds = squad.best_answers(
            examples, windows, (starts, ends), FLAGS.n_best_size, FLAGS.max_answer_length,
            FLAGS.version_2_with_negative, FLAGS.null_score_diff_threshold)
        outputs = {"predictions.json": predictions, "nbest_predictions.json": nbest}
        if FLAGS.version_2_with_negative:
            outputs["null_odds.json"] = null_odds
        for name, value in outputs.items():
            files.write_text_atomic(os.path.join(FLAGS.output_dir, name),
                                    json.dumps(value, indent=2, ensure_ascii=False) + "\n")
        logging.info("answered %d questions (%d windows) -> %s", len(examples), count, FLAGS.output_dir)
        if FLAGS.do_eval:
            version = FLAGS.eval_version
            if version == "auto":
                version = "2.0" if FLAGS.version_2_with_negative else squad.language_of(examples)
            result = squad.evaluate(examples, predictions, version, null_odds or None)
            result["eval_version"] = version
            common_flags.write_eval_results(result)


if __name__ == "__main__":
    run_main(main)
