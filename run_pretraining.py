"""Masked-LM (+ next-sentence) pretraining, from scratch or continuing a checkpoint.

  python run_pretraining.py --input_file=pretrain_data --output_dir=OUT --do_train --do_eval \
      --bert_config_file=M/bert_config.json --init_checkpoint=M --num_train_steps=10000 --num_warmup_steps=1000

Google's command line works as it is (--input_file=/tmp/tf_examples.tfrecord ... --max_seq_length=128
--max_predictions_per_seq=20, no --vocab_file: the data is ids already, and model_info.json then records
the vocab as unknown, so export asks for it).
--input_file: a folder written by create_pretraining_data.py, or TFRecord files, comma-separated and/or
glob patterns (Google's). A folder's shards are the ones its pretrain_meta.json lists (nothing is
globbed), each checked against the size and sha256 recorded there; a folder without one, or whose
meta file says the run writing it did not finish, is refused. Files named in a folder that has a
pretrain_meta.json must be shards it lists, and are checked the same way; files in a folder without one
(Google's create_pretraining_data.py output) are read as they are, the lengths and whether there are
next-sentence labels taken from the first record. --max_seq_length / --max_predictions_per_seq, when
given, must match the data (as in Google's script, where they must match data generation); when
absent, the data's are used.
Heads the init checkpoint lacks are created fresh (the masked-LM output tied to the word embeddings)
and reported. A run stopped part-way continues from its last checkpoint with the same data order.
Results: eval_results.json / eval_results.txt with masked-LM accuracy and loss (and next-sentence
accuracy and loss).
"""
import tensorflow as tf
from absl import flags, logging

import common_flags
from bert import checkpoint, estimator, input_pipeline, model_fn, model_folder, tasks
from bert import pretraining_data as pretraining_data_files
from bert.errors import UserInputError, run_main

FLAGS = flags.FLAGS
flags.DEFINE_string("eval_input_file", None, "Held-out data for --do_eval (default: --input_file).")
flags.DEFINE_integer("num_train_steps", 100000, "Optimizer updates.", lower_bound=1)
flags.DEFINE_integer("num_warmup_steps", 10000, "Learning-rate warm-up updates.", lower_bound=0)
flags.DEFINE_integer("max_eval_steps", 100, "Evaluation batches, at most.", lower_bound=1)


def pretraining_data(spec, max_seq_length=None, max_predictions_per_seq=None):
    """bert.pretraining_data.PretrainingFiles named by --input_file; the two lengths, when given on the
    command line, must be the data's."""
    data = pretraining_data_files.find_pretraining_data(spec)
    for flag, given, actual in (("max_seq_length", max_seq_length, data.max_seq_length),
                                ("max_predictions_per_seq", max_predictions_per_seq, data.max_predictions_per_seq)):
        if given is not None and given != actual:
            raise UserInputError(f"--{flag}={given} but the data has {actual} (from {data.source}); it must match "
                                 f"the data: pass --{flag}={actual} or leave it out")
    return data


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
    if estimator.is_chief():
        model_folder.resume_from_a_whole_checkpoint(setup.output_dir)
    latest = tf.train.latest_checkpoint(setup.output_dir)
    done = checkpoint.checkpoint_step(latest) if latest else 0
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
    common_flags.reject_tpu()
    common_flags.quiet_tensorflow()
    common_flags.require("input_file", "bert_config_file", "output_dir")
    if not (FLAGS.do_train or FLAGS.do_eval):
        raise UserInputError("nothing to do: pass --do_train and/or --do_eval")
    given = {name: FLAGS[name].value if FLAGS[name].present else None
             for name in ("max_seq_length", "max_predictions_per_seq")}
    data = pretraining_data(FLAGS.input_file, **given)
    paths, seq_length, max_predictions, next_sentence = (data.paths, data.max_seq_length,
                                                         data.max_predictions_per_seq, data.next_sentence)
    setup = common_flags.training_config(max_seq_length=seq_length)  # the data fixes the length
    task = tasks.PretrainingTask(seq_length, max_predictions, next_sentence)
    model_folder.claim(setup.output_dir, FLAGS.overwrite_output_dir, exclusive=estimator.is_chief())
    # The data are ids already: the vocab given (or not) does not define the run.
    identity = dict(bert_config=setup.bert_config().to_dict(), task=task.name,
                    max_predictions_per_seq=max_predictions, next_sentence=next_sentence)
    if FLAGS.do_train:
        identity["training_data"] = input_pipeline.files_digest(paths)
    model_folder.check_run(setup.output_dir, identity, record=FLAGS.do_train and estimator.is_chief())
    logging.info("%d shard(s), length %d, %d predictions, %s", len(paths), seq_length, max_predictions,
                 "masked LM + next sentence" if next_sentence else "masked LM only")
    if FLAGS.do_train:
        bert = pretrain(setup, task, paths, FLAGS.num_train_steps, FLAGS.num_warmup_steps)
    else:
        bert = estimator.build_estimator(
            model_fn.model_fn_builder(task, setup.bert_config(), setup.init_checkpoint, precision=setup.precision),
            setup.run)
    if FLAGS.do_eval and estimator.is_chief():
        eval_paths = pretraining_data(FLAGS.eval_input_file, seq_length, max_predictions).paths \
            if FLAGS.eval_input_file else paths
        result = bert.evaluate(input_pipeline.tfrecord_input_fn_builder(eval_paths, task.feature_spec(),
                                                                        setup.eval_batch_size, is_training=False),
                               steps=FLAGS.max_eval_steps)
        model_folder.write_eval_results(setup.output_dir, task.scorer().score(result))


if __name__ == "__main__":
    run_main(main)
