"""Raw text -> masked-LM (+ next-sentence) training instances in TFRecord shards, Google's feature names.

  python create_pretraining_data.py --input_file=corpus/ --output_dir=pretrain_data \
      --vocab_file=M/vocab.txt --do_lower_case --max_seq_length=128 --max_predictions_per_seq=20

Input: files, globs or folders (comma-separated) of text, one sentence a line, a blank line between
documents. Output: output_dir/pretrain-NNNNN-of-NNNNN.tfrecord shards (each written whole or not at
all) and pretrain_meta.json (the settings, whether next-sentence labels are present, and counts).
--no_nsp makes masked-LM-only data; --word_boundaries picks the units of whole-word masking;
--phrase_file lists phrases/entities (one a line) masked as units.
"""
import glob
import os
import time

from absl import flags, logging

import common_flags
from bert import input_pipeline, pretraining_data
from bert.errors import UserInputError, run_main

FLAGS = flags.FLAGS
flags.DEFINE_integer("num_shards", 1, "Output TFRecord shards.")
flags.DEFINE_float("masked_lm_prob", 0.15, "Share of tokens masked.")
flags.DEFINE_float("short_seq_prob", 0.1, "With next-sentence data: chance of a shorter target length.")
flags.DEFINE_integer("dupe_factor", 10, "Passes over the data, each with different masks.")
flags.DEFINE_integer("random_seed", 12345, "Seed: the same seed and input give the same output.")
flags.DEFINE_bool("no_nsp", False, "Masked LM only: documents cut into max-length segments.")
flags.DEFINE_enum("word_boundaries", "wordpiece", list(pretraining_data.WORD_BOUNDARIES),
                  "Whole-word masking units: ## continuation, space-segmented input, jieba, or none.")
flags.DEFINE_string("phrase_file", None, "Phrases/entities, one a line, masked as whole units.")
flags.DEFINE_integer("num_workers", 0, "Processes (0: one per CPU core).")


def input_paths(spec):
    paths = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        if os.path.isdir(part):
            paths.extend(sorted(os.path.join(root, name) for root, _, names in os.walk(part) for name in names
                                if not name.startswith(".")))
        else:
            matched = sorted(glob.glob(part))
            if not matched:
                raise UserInputError(f"{part}: no such file (or nothing matches the pattern)")
            paths.extend(matched)
    return paths


def main(argv):
    del argv
    common_flags.require("input_file", "output_dir")
    config = pretraining_data.MaskingConfig(
        max_seq_length=FLAGS.max_seq_length, max_predictions_per_seq=FLAGS.max_predictions_per_seq,
        masked_lm_prob=FLAGS.masked_lm_prob, short_seq_prob=FLAGS.short_seq_prob, dupe_factor=FLAGS.dupe_factor,
        nsp=not FLAGS.no_nsp, word_boundaries=FLAGS.word_boundaries, seed=FLAGS.random_seed)
    text = common_flags.text_config()
    tokenizer = text.create_tokenizer(init_checkpoint=FLAGS.init_checkpoint)
    start = time.time()
    paths = input_paths(FLAGS.input_file)
    documents = pretraining_data.read_documents(paths)
    if not documents:
        raise UserInputError(f"{FLAGS.input_file}: no text found")
    logging.info("read %d documents from %d file(s)", len(documents), len(paths))
    phrases = ()
    if FLAGS.phrase_file:
        with open(FLAGS.phrase_file, encoding="utf-8") as reader:
            phrases = pretraining_data.phrase_pieces(tokenizer, reader.read().split("\n"))
    summary = pretraining_data.write_pretraining_data(
        documents, tokenizer, config, FLAGS.output_dir, FLAGS.num_shards, FLAGS.num_workers or os.cpu_count() or 1,
        phrases, vocab_digest=input_pipeline.file_digest(text.path), start=start)
    print(f"wrote {summary['instances']} instances ({summary['tokens']} tokens, {summary['masked']} masked) "
          f"from {summary['documents']} documents in {FLAGS.num_shards} shard(s), {summary['seconds']:.1f}s "
          f"({summary['instances_per_second']} instances/s) -> {FLAGS.output_dir}")


if __name__ == "__main__":
    run_main(main)
