"""Flags shared by the training scripts, and their translation into the library's config objects.

The library (bert/) reads no flags: a script's `main` calls training_config() once and hands the
result (a bert.config.TrainingConfig) down; nothing else reads FLAGS, and nothing writes to it.
"""
import math

from absl import flags, logging

from bert import adaptation, config, estimator
from bert.errors import UserInputError

FLAGS = flags.FLAGS


def define_float(name, default, help_text, low=None, high=None, above=False):
    """A float flag that must be finite and within [low, high] (above: strictly greater than low); a
    value outside is absl's one-line flag error, before anything runs."""
    flags.DEFINE_float(name, default, help_text)
    lower = "" if low is None else f"above {low:g}" if above else f"at least {low:g}"
    upper = "" if high is None else f"at most {high:g}"
    wanted = " and ".join(part for part in (lower, upper) if part)

    def check(value):
        return value is None or (math.isfinite(value) and (low is None or value > low or (not above and value == low))
                                 and (high is None or value <= high))

    flags.register_validator(name, check, f"--{name} must be a finite number" + (f" {wanted}" if wanted else ""))


# google-research/bert's names.
flags.DEFINE_string("bert_config_file", None, "bert_config.json of the pretrained model.")
flags.DEFINE_string("vocab_file", None, "vocab.txt the model was trained with.")
flags.DEFINE_string("init_checkpoint", None, "Checkpoint (prefix or folder) to start from.")
flags.DEFINE_string("output_dir", None, "Where checkpoints, caches and results go.")
flags.DEFINE_bool("do_lower_case", True, "Lower-case and strip accents (True for uncased models).")
flags.DEFINE_integer("max_seq_length", 128, "Tokens per example, [CLS] and [SEP] included.", lower_bound=3)
flags.DEFINE_bool("do_train", False, "Train.")
flags.DEFINE_bool("do_eval", False, "Evaluate on the dev set.")
flags.DEFINE_bool("do_predict", False, "Predict the test set.")
flags.DEFINE_integer("train_batch_size", 32, "Examples per optimizer update, over all devices.", lower_bound=1)
flags.DEFINE_integer("eval_batch_size", 8, "Examples per evaluation batch.", lower_bound=1)
flags.DEFINE_integer("predict_batch_size", 8, "Examples per prediction batch.", lower_bound=1)
define_float("learning_rate", 5e-5, "Peak learning rate for AdamW.", low=0, above=True)
define_float("num_train_epochs", 3.0, "Passes over the training data.", low=0, above=True)
define_float("warmup_proportion", 0.1, "Share of training spent warming the learning rate up.", low=0, high=1)
flags.DEFINE_integer("save_checkpoints_steps", 1000, "Save a checkpoint every this many steps.", lower_bound=1)
# Additions.
flags.DEFINE_string("spm_model_file", None, "A SentencePiece model to tokenize with instead of vocab_file.")
flags.DEFINE_enum("tokenizer", "wordpiece", ["wordpiece", "whitespace"], "How vocab_file is applied.")
flags.DEFINE_enum("precision", "fp32", ["fp32", "fp16", "bf16"],
                  "Compute precision; fp16 uses dynamic loss scaling. Variables stay float32.")
flags.DEFINE_enum("distribution", "none", list(estimator.DISTRIBUTIONS),
                  "mirrored: all local GPUs (or CPU devices); multi_worker: machines listed in TF_CONFIG.")
flags.DEFINE_integer("num_gpus", 0, "mirrored: how many GPUs (0: all visible).", lower_bound=0)
flags.DEFINE_integer("cpu_devices", 1, "Logical CPU devices (mirrored on a machine without GPUs).", lower_bound=1)
flags.DEFINE_bool("use_xla", False, "Compile with XLA.")
flags.DEFINE_integer("gradient_accumulation_steps", 1, "Micro-batches per optimizer update.", lower_bound=1)
define_float("weight_decay", 0.01, "AdamW decoupled weight decay (none on LayerNorm and biases).", low=0)
flags.DEFINE_integer("seed", 12345, "Random seed for initialisation, dropout and shuffling.",
                     lower_bound=0, upper_bound=2**32 - 1)
flags.DEFINE_string("cache_dir", None, "Where cached TFRecord features go (default: output_dir/cache).")
flags.DEFINE_integer("keep_checkpoint_max", 3, "Checkpoints kept in output_dir.", lower_bound=0)
flags.DEFINE_string("task_name", None, "A data processor registered by name (built in: tsv, csv, jsonl, mrpc, "
                    "cola, mnli, xnli), or one registered by --processor_module.")
flags.DEFINE_string("data_dir", None, "Folder with the processor's train/dev/test files.")
flags.DEFINE_string("processor_module", None, "A module name or .py file whose processors register themselves.")
flags.DEFINE_enum("pooling", None, ["auto", "pooled", "cls", "mean"],
                  "Sentence vector: BERT's pooler, the [CLS] state, or the mean over tokens. auto: what the model "
                  "was trained for (a trained output_dir's model_info.json, or the init checkpoint folder's "
                  "sentence_embedding.json from convert_checkpoint.py), else pooled. Default: pooled in "
                  "run_classifier, auto in run_fewshot.")
flags.DEFINE_string("input_file", None, "Input: raw text files/globs/folders for create_pretraining_data.py; "
                    "its output folder (or TFRecord files) for run_pretraining.py; texts for extract_features.py.")
flags.DEFINE_integer("max_predictions_per_seq", 20, "Masked positions per sequence, at most (run_pretraining "
                     "reads it from the data folder's pretrain_meta.json when there is one).", lower_bound=1)
flags.DEFINE_string("train_file", None, "Training data: text<TAB>label lines of the meta-training classes "
                    "(run_fewshot.py), SQuAD-format JSON (run_squad.py).")
flags.DEFINE_string("eval_file", None, "Evaluation data: text<TAB>label lines of the evaluation classes "
                    "(run_fewshot.py), NER data (run_ner.py; default: the data_dir's dev file).")
flags.DEFINE_string("predict_file", None, "Texts to predict: one a line (run_fewshot.py), SQuAD-format JSON "
                    "(run_squad.py).")
flags.DEFINE_string("model_dir", None, "A training run's output_dir to read (model_info.json, bert_config.json, "
                    "the vocab and checkpoints): export_savedmodel.py, extract_features.py.")
flags.DEFINE_string("support_file", None, "Few-shot: text<TAB>label lines, a few per class (any classes): the "
                    "classes run_fewshot.py --do_predict and an exported few-shot model classify into.")
flags.DEFINE_integer("adapt_steps", 0, "Few-shot: Adam steps on the support set's cross-entropy that adapt a "
                     "linear head started from the prototypes (0: the prototypes as they are): run_fewshot.py's "
                     "evaluation row and --do_predict, and an exported few-shot model.", lower_bound=0,
                     upper_bound=100000)
define_float("adapt_learning_rate", 1e-2, "Few-shot: Adam learning rate of --adapt_steps (1e-2 was best for the "
             "head alone on csldcp's validation disciplines).", low=0, above=True)
flags.DEFINE_integer("adapt_layers", 0, "Few-shot: top encoder layers adapted with the head (0: the head alone).",
                     lower_bound=0)
define_float("adapt_layer_learning_rate", None, "Few-shot: Adam learning rate of the --adapt_layers (default: "
             "--adapt_learning_rate's).", low=0, above=True)
flags.DEFINE_bool("overwrite_output_dir", False, "Start afresh in an output_dir that holds another run (its "
                  "checkpoints, caches and results are removed; other files are left alone).")
flags.DEFINE_integer("eval_every_steps", 0, "While training: evaluate every this many steps and keep the best "
                     "checkpoint in output_dir/best.", lower_bound=0)
# The rest of google-research/bert's flags, so that its command lines run as they are. TPUs: this project
# runs tf.estimator.Estimator on CPUs and GPUs; --use_tpu=true is refused (reject_tpu), the others are ignored.
flags.DEFINE_bool("use_tpu", False, "Google's TPUEstimator switch. Only false works here (true is an error): use "
                  "--distribution=mirrored (local GPUs) or multi_worker (machines in TF_CONFIG) instead.")
flags.DEFINE_string("tpu_name", None, "Google's Cloud TPU name or grpc:// address. Accepted and ignored (no TPUs).")
flags.DEFINE_string("tpu_zone", None, "Google's Cloud TPU zone. Accepted and ignored (no TPUs).")
flags.DEFINE_string("gcp_project", None, "Google's Cloud TPU project. Accepted and ignored (no TPUs).")
flags.DEFINE_string("master", None, "Google's TensorFlow master URL (a TPU's). Accepted and ignored: several "
                    "machines are given by TF_CONFIG with --distribution=multi_worker.")
flags.DEFINE_integer("num_tpu_cores", 8, "Google's TPU core count. Accepted and ignored (GPUs: --num_gpus).",
                     lower_bound=1)
flags.DEFINE_integer("iterations_per_loop", 1000, "Google's TPU steps per host loop. Accepted and ignored: the "
                     "Estimator runs one step per call.")
flags.DEFINE_bool("verbose_logging", False, "run_squad.py (Google's): log the warnings of mapping a predicted answer "
                  "back to the original text. Accepted; there are none here: answers are cut from the context by "
                  "character offsets, which always map (questions skipped in training are always logged).")
flags.DEFINE_string("output_file", None, "Output file: extract_features.py's Google JSON lines (instead of "
                    "--output_dir), create_pretraining_data.py's TFRecord file(s) (comma-separated), predict.py's "
                    "predictions TSV.")


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


def reject_tpu():
    """Google's --use_tpu=true is a one-line error (TPUs cannot apply); its other TPU flags are ignored."""
    if FLAGS.use_tpu:
        raise UserInputError("--use_tpu=true: this project runs tf.estimator.Estimator on CPUs and GPUs, not "
                             "TPUEstimator; drop --use_tpu and use --distribution=mirrored (all local GPUs) or "
                             "--distribution=multi_worker (machines listed in TF_CONFIG)")


def adapt_config():
    given = [f"--{name}" for name in ("adapt_learning_rate", "adapt_layers", "adapt_layer_learning_rate")
             if FLAGS[name].present]
    if given and not FLAGS.adapt_steps:
        logging.warning("%s without --adapt_steps: no adaptation (give --adapt_steps=N to adapt)", ", ".join(given))
    return adaptation.AdaptConfig(steps=FLAGS.adapt_steps, learning_rate=FLAGS.adapt_learning_rate,
                                  layers=FLAGS.adapt_layers, layer_learning_rate=FLAGS.adapt_layer_learning_rate)


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
