"""Builds a vocabulary from a corpus, for --vocab_file or --spm_model_file of the other scripts.

  python build_vocab.py --kind=sentencepiece --input_file=corpus.txt --output=spm/zh --vocab_size=8000
  python build_vocab.py --kind=whitespace --input_file=ids.txt --output=vocab.txt --min_count=2
"""
from absl import flags

from bert import vocab
from bert.errors import run_main

FLAGS = flags.FLAGS
flags.DEFINE_enum("kind", None, ["sentencepiece", "whitespace"], "What to build.")
flags.DEFINE_string("input_file", None, "Comma-separated text files.")
flags.DEFINE_string("output", None, "sentencepiece: the model prefix (writes PREFIX.model); whitespace: vocab.txt.")
flags.DEFINE_integer("vocab_size", 8000, "sentencepiece: pieces, special tokens included.", lower_bound=1)
flags.DEFINE_enum("model_type", "unigram", ["unigram", "bpe", "char", "word"], "sentencepiece model type.")
flags.DEFINE_float("character_coverage", 0.9995,
                   "sentencepiece: share of characters covered (1.0 for small alphabets).")
flags.register_validator("character_coverage", lambda value: 0 < value <= 1,  # False for nan
                         "--character_coverage must be above 0 and at most 1")
flags.DEFINE_integer("min_count", 1, "whitespace: keep tokens seen at least this often.", lower_bound=1)
flags.DEFINE_integer("max_size", 0, "whitespace: at most this many entries, special tokens included (0: all).",
                     lower_bound=0)
flags.DEFINE_bool("lower_case", False, "Lower-case the text first.")
flags.mark_flags_as_required(["kind", "input_file", "output"])


def main(argv):
    del argv
    paths = [p.strip() for p in FLAGS.input_file.split(",") if p.strip()]
    if FLAGS.kind == "sentencepiece":
        path = vocab.train_sentencepiece(paths, FLAGS.output, FLAGS.vocab_size, FLAGS.model_type,
                                         FLAGS.character_coverage, FLAGS.lower_case)
        print(f"wrote {path} ({FLAGS.vocab_size} pieces); use it with --spm_model_file={path}")
    else:
        size = vocab.build_whitespace_vocab(paths, FLAGS.output, FLAGS.min_count, FLAGS.max_size or None,
                                           lower_case=FLAGS.lower_case)
        print(f"wrote {FLAGS.output} ({size} entries); use it with --vocab_file={FLAGS.output} --tokenizer=whitespace")


if __name__ == "__main__":
    run_main(main)
