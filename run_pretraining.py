"""Masked-LM (+ next-sentence) pretraining, from scratch or continuing a checkpoint.

  python run_pretraining.py --input_file=pretrain_data --output_dir=OUT --do_train --do_eval \
      --bert_config_file=M/bert_config.json --init_checkpoint=M --num_train_steps=10000 --num_warmup_steps=1000

--input_file: a folder written by create_pretraining_data.py (its pretrain_meta.json gives the lengths
and whether there are next-sentence labels), or comma-separated TFRecord files/globs with
--max_predictions_per_seq (next-sentence labels are then detected from the first record).
Heads the init checkpoint lacks are created fresh (the masked-LM output tied to the word embeddings)
and reported. A run stopped part-way continues from its last checkpoint with the same data order.
Results: eval_results.json / eval_results.txt with masked-LM accuracy and loss (and next-sentence
accuracy and loss).
"""
import glob
import os

import tensorflow as tf
from absl import flags, logging

import common_flags
from bert import estimator, files, input_pipeline, model_fn, model_folder, tasks
from bert.errors import UserInputError, run_main

FLAGS = flags.FLAGS
flags.DEFINE_string("eval_input_file", None, "Held-out data for --do_eval (default: --input_file).")
flags.DEFINE_integer("num_train_steps", 100000, "Optimizer updates.")
flags.DEFINE_integer("num_warmup_steps", 10000, "Learning-rate warm-up updates.")
flags.DEFINE_integer("max_eval_steps", 100, "Evaluation batches, at most.")


def pretraining_data(spec):
    """(TFRecord paths, max_seq_length, max_predictions_per_seq, has next-sentence labels)."""
    if os.path.isdir(spec):
        meta_path = os.path.join(spec, "pretrain_meta.json")
        if not os.path.exists(meta_path):
            raise UserInputError(f"{spec}: no pretrain_meta.json (was it written by create_pretraining_data.py?)")
        meta = files.read_json(meta_path, "pretraining data description", expect=dict)
        paths = [os.path.join(spec, name) for name in meta["shards"]]
        return paths, meta["max_seq_length"], meta["max_predictions_per_seq"], meta["next_sentence"]
    paths = sorted(path for part in spec.split(",") if part.strip() for path in glob.glob(part.strip()))
    if not paths:
        raise UserInputError(f"{spec}: no TFRecord files match")
    first = tf.train.Example.FromString(next(iter(tf.data.TFRecordDataset(paths[0]).take(1))).numpy())
    feature = first.features.feature
    if "input_ids" not in feature or "masked_lm_positions" not in feature:
        raise UserInputError(f"{paths[0]}: not pretraining data (no input_ids / masked_lm_positions)")
    return (paths, len(feature["input_ids"].int64_list.value), len(feature["masked_lm_positions"].int64_list.value),
            "next_sentence_labels" in feature)


def pretrain(setup, task, paths, num_train_steps, num_warmup_steps):
    """Trains to num_train_steps; a resumed run skips the batches the interrupted one consumed."""
    optimizer_config = setup.optimizer_for_steps(num_train_steps, warmup_steps=num_warmup_steps)
    hooks = [lambda loss: estimator.ProgressHook(loss, num_train_steps, setup.train_batch_size,
                                                 every=max(num_train_steps // 20, 1))]
    bert = estimator.build_estimator(
        model_fn.model_fn_builder(task, setup.bert_config(), setup.init_checkpoint, optimizer_config, setup.precision,
                                  training_hooks=hooks), setup.run)
    model_folder.save_model_info(setup, task)
    replicas, micro_batch = setup.micro_batch(bert)
    # Resuming: skip the batches the earlier run consumed, so the data order is the uninterrupted one's.
    latest = tf.train.latest_checkpoint(setup.output_dir)
    done = model_folder.checkpoint_step(latest) if latest else 0
    # Each worker's input pipeline feeds its own replicas one batch each per micro-step.
    skip = done * setup.gradient_accumulation_steps * (replicas // estimator.num_workers())
    if done:
        logging.info("resuming at step %d: skipping %d batches already trained on", done, skip)
    estimator.train(bert, input_pipeline.tfrecord_input_fn_builder(
        paths, task.feature_spec(), micro_batch, is_training=True, drop_remainder=True, seed=setup.seed,
        skip_batches=skip), num_train_steps)
    return bert


def main(argv):
    del argv
    common_flags.quiet_tensorflow()
    common_flags.require("input_file", "bert_config_file", "output_dir")
    if not (FLAGS.do_train or FLAGS.do_eval):
        raise UserInputError("nothing to do: pass --do_train and/or --do_eval")
    paths, seq_length, max_predictions, next_sentence = pretraining_data(FLAGS.input_file)
    setup = common_flags.training_config(max_seq_length=seq_length)  # the data fixes the length
    task = tasks.PretrainingTask(seq_length, max_predictions, next_sentence)
    logging.info("%d shard(s), length %d, %d predictions, %s", len(paths), seq_length, max_predictions,
                 "masked LM + next sentence" if next_sentence else "masked LM only")
    if FLAGS.do_train:
        bert = pretrain(setup, task, paths, FLAGS.num_train_steps, FLAGS.num_warmup_steps)
    else:
        bert = estimator.build_estimator(
            model_fn.model_fn_builder(task, setup.bert_config(), setup.init_checkpoint, precision=setup.precision),
            setup.run)
    if FLAGS.do_eval and estimator.is_chief():
        eval_paths = pretraining_data(FLAGS.eval_input_file)[0] if FLAGS.eval_input_file else paths
        result = bert.evaluate(input_pipeline.tfrecord_input_fn_builder(eval_paths, task.feature_spec(),
                                                                        setup.eval_batch_size, is_training=False),
                               steps=FLAGS.max_eval_steps)
        model_folder.write_eval_results(setup.output_dir, task.scorer().score(result))


if __name__ == "__main__":
    run_main(main)
