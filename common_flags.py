"""Flags shared by the training scripts, and their translation into the library's config objects.

The library (bert/) reads no flags: a script's `main` calls training_config() once and hands the
result (a bert.config.TrainingConfig) down; nothing else reads FLAGS, and nothing writes to it.
"""
from absl import flags

from bert import config, estimator
from bert.errors import UserInputError

FLAGS = flags.FLAGS

# google-research/bert's names.
flags.DEFINE_string("bert_config_file", None, "bert_config.json of the pretrained model.")
flags.DEFINE_string("vocab_file", None, "vocab.txt the model was trained with.")
flags.DEFINE_string("init_checkpoint", None, "Checkpoint (prefix or folder) to start from.")
flags.DEFINE_string("output_dir", None, "Where checkpoints, caches and results go.")
flags.DEFINE_bool("do_lower_case", True, "Lower-case and strip accents (True for uncased models).")
flags.DEFINE_integer("max_seq_length", 128, "Tokens per example, [CLS] and [SEP] included.")
flags.DEFINE_bool("do_train", False, "Train.")
flags.DEFINE_bool("do_eval", False, "Evaluate on the dev set.")
flags.DEFINE_bool("do_predict", False, "Predict the test set.")
flags.DEFINE_integer("train_batch_size", 32, "Examples per optimizer update, over all devices.")
flags.DEFINE_integer("eval_batch_size", 8, "Examples per evaluation batch.")
flags.DEFINE_integer("predict_batch_size", 8, "Examples per prediction batch.")
flags.DEFINE_float("learning_rate", 5e-5, "Peak learning rate for AdamW.")
flags.DEFINE_float("num_train_epochs", 3.0, "Passes over the training data.")
flags.DEFINE_float("warmup_proportion", 0.1, "Share of training spent warming the learning rate up.")
flags.DEFINE_integer("save_checkpoints_steps", 1000, "Save a checkpoint every this many steps.")
# Additions.
flags.DEFINE_string("spm_model_file", None, "A SentencePiece model to tokenize with instead of vocab_file.")
flags.DEFINE_enum("tokenizer", "wordpiece", ["wordpiece", "whitespace"], "How vocab_file is applied.")
flags.DEFINE_enum("precision", "fp32", ["fp32", "fp16", "bf16"],
                  "Compute precision; fp16 uses dynamic loss scaling. Variables stay float32.")
flags.DEFINE_enum("distribution", "none", list(estimator.DISTRIBUTIONS),
                  "mirrored: all local GPUs (or CPU devices); multi_worker: machines listed in TF_CONFIG.")
flags.DEFINE_integer("num_gpus", 0, "mirrored: how many GPUs (0: all visible).")
flags.DEFINE_integer("cpu_devices", 1, "Logical CPU devices (mirrored on a machine without GPUs).")
flags.DEFINE_bool("use_xla", False, "Compile with XLA.")
flags.DEFINE_integer("gradient_accumulation_steps", 1, "Micro-batches per optimizer update.")
flags.DEFINE_float("weight_decay", 0.01, "AdamW decoupled weight decay (none on LayerNorm and biases).")
flags.DEFINE_integer("seed", 12345, "Random seed for initialisation, dropout and shuffling.")
flags.DEFINE_string("cache_dir", None, "Where cached TFRecord features go (default: output_dir/cache).")
flags.DEFINE_integer("keep_checkpoint_max", 3, "Checkpoints kept in output_dir.")
flags.DEFINE_string("task_name", None, "A data processor registered by name (built in: tsv, csv, jsonl, mrpc, "
                    "cola, mnli, xnli), or one registered by --processor_module.")
flags.DEFINE_string("data_dir", None, "Folder with the processor's train/dev/test files.")
flags.DEFINE_string("processor_module", None, "A module name or .py file whose processors register themselves.")
flags.DEFINE_enum("pooling", None, ["pooled", "cls", "mean"],
                  "Sentence vector: BERT's pooler, the [CLS] state, or the mean over tokens "
                  "(default: pooled in run_classifier, mean in run_fewshot).")
flags.DEFINE_string("input_file", None, "Input: raw text files/globs/folders for create_pretraining_data.py; "
                    "its output folder (or TFRecord files) for run_pretraining.py; texts for extract_features.py.")
flags.DEFINE_integer("max_predictions_per_seq", 20, "Masked positions per sequence, at most (run_pretraining "
                     "reads it from the data folder's pretrain_meta.json when there is one).")
flags.DEFINE_string("train_file", None, "Training data: text<TAB>label lines of the meta-training classes "
                    "(run_fewshot.py), SQuAD-format JSON (run_squad.py).")
flags.DEFINE_string("predict_file", None, "Texts to predict: one a line (run_fewshot.py), SQuAD-format JSON "
                    "(run_squad.py).")
flags.DEFINE_string("model_dir", None, "A training run's output_dir to read (model_info.json, bert_config.json, "
                    "the vocab and checkpoints): export_savedmodel.py, extract_features.py.")
flags.DEFINE_string("support_file", None, "Few-shot: text<TAB>label lines, a few per class (any classes): the "
                    "classes run_fewshot.py --do_predict and an exported few-shot model classify into.")
flags.DEFINE_integer("eval_every_steps", 0, "While training: evaluate every this many steps and keep the best "
                     "checkpoint in output_dir/best.")


def quiet_tensorflow():
    """Keeps TensorFlow's own INFO/WARNING chatter (config dumps, deprecations) out of the output;
    the scripts' progress and results still print."""
    import logging
    import tensorflow as tf
    tf.get_logger().setLevel(logging.ERROR)


def require(*names):
    missing = [f"--{name}" for name in names if getattr(FLAGS, name) in (None, "")]
    if missing:
        raise UserInputError("missing required flag(s): " + ", ".join(missing))


def text_config():
    return config.TextConfig(vocab_file=FLAGS.vocab_file, spm_model_file=FLAGS.spm_model_file,
                             tokenizer=FLAGS.tokenizer, do_lower_case=FLAGS.do_lower_case)


def training_config(max_seq_length=None):
    """The shared flags as a config.TrainingConfig (max_seq_length: a value that overrides the flag,
    e.g. the one pretraining data fixes)."""
    run = estimator.RunSettings(
        model_dir=FLAGS.output_dir, distribution=FLAGS.distribution, num_gpus=FLAGS.num_gpus,
        cpu_devices=FLAGS.cpu_devices, use_xla=FLAGS.use_xla, save_checkpoints_steps=FLAGS.save_checkpoints_steps,
        keep_checkpoint_max=FLAGS.keep_checkpoint_max, seed=FLAGS.seed)
    return config.TrainingConfig(
        output_dir=FLAGS.output_dir, bert_config_file=FLAGS.bert_config_file, text=text_config(),
        init_checkpoint=FLAGS.init_checkpoint,
        max_seq_length=FLAGS.max_seq_length if max_seq_length is None else max_seq_length,
        precision=FLAGS.precision, train_batch_size=FLAGS.train_batch_size, eval_batch_size=FLAGS.eval_batch_size,
        predict_batch_size=FLAGS.predict_batch_size, learning_rate=FLAGS.learning_rate,
        num_train_epochs=FLAGS.num_train_epochs, warmup_proportion=FLAGS.warmup_proportion,
        weight_decay=FLAGS.weight_decay, gradient_accumulation_steps=FLAGS.gradient_accumulation_steps,
        seed=FLAGS.seed, cache_dir=FLAGS.cache_dir, eval_every_steps=FLAGS.eval_every_steps,
        pooling=FLAGS.pooling, run=run)
