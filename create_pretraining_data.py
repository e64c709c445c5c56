"""Raw text -> masked-LM (+ next-sentence) training instances in TFRecord shards, Google's feature names.

  python create_pretraining_data.py --input_file=corpus/ --output_dir=pretrain_data \
      --vocab_file=M/vocab.txt --do_lower_case --max_seq_length=128 --max_predictions_per_seq=20

Input: files, globs or folders (comma-separated) of text, one sentence a line, a blank line between
documents. Output, either:
  --output_dir: output_dir/pretrain-NNNNN-of-NNNNN.tfrecord (--num_shards of them); shards of an earlier
      run into the folder that this run does not write are removed;
  --output_file (Google's flag): the TFRecord file it names, or the comma-separated files it names,
      the instances spread round-robin over them. They must lie in one folder (files in several folders are
      refused: the meta file describing them has one place, beside them).
and pretrain_meta.json beside the shards: the settings, whether next-sentence labels are present, counts,
and each shard's size and sha256. It is replaced by an "unfinished" one before the first shard is written
and written complete last, so run_pretraining.py never trusts a folder a killed run left half-written,
and refuses shards that are not the ones it describes.

--no_nsp makes masked-LM-only data; --word_boundaries picks the units of whole-word masking (default:
WordPiece "##" continuations); Google's --do_whole_word_mask, when given, overrides it: true is
"wordpiece", false is "none" (each piece its own unit). --phrase_file lists phrases/entities (one a line)
masked as units.
"""
import glob
import os
import time

from absl import flags, logging

import common_flags
from bert import input_pipeline, pretraining_data
from bert.errors import UserInputError, run_main
from processors import readers

FLAGS = flags.FLAGS
flags.DEFINE_integer("num_shards", 1, "Output TFRecord shards in --output_dir.", lower_bound=1)
common_flags.define_float("masked_lm_prob", 0.15, "Share of tokens masked.", low=0, high=1, above=True)
common_flags.define_float("short_seq_prob", 0.1, "With next-sentence data: chance of a shorter target length.",
                          low=0, high=1)
flags.DEFINE_integer("dupe_factor", 10, "Passes over the data, each with different masks.", lower_bound=1)
flags.DEFINE_integer("random_seed", 12345, "Seed: the same seed and input give the same output.", lower_bound=0)
flags.DEFINE_bool("no_nsp", False, "Masked LM only: documents cut into max-length segments.")
flags.DEFINE_enum("word_boundaries", "wordpiece", list(pretraining_data.WORD_BOUNDARIES),
                  "Whole-word masking units: ## continuation, space-segmented input, jieba, or none.")
flags.DEFINE_bool("do_whole_word_mask", None, "Google's flag: true masks whole words (WordPiece '##' "
                  "continuations), false each piece on its own. Absent: --word_boundaries decides.")
flags.DEFINE_string("phrase_file", None, "Phrases/entities, one a line, masked as whole units.")
flags.DEFINE_integer("num_workers", 0, "Processes (0: one per CPU core).", lower_bound=0)


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


def output_shards(output_dir, output_file, num_shards, num_shards_given):
    """(shard paths, whether the folder is this script's own) from --output_dir / --output_file."""
    if output_dir and output_file:
        raise UserInputError("give --output_dir or --output_file, not both")
    if output_file:
        paths = [part.strip() for part in output_file.split(",") if part.strip()]
        if not paths:
            raise UserInputError("--output_file names no file")
        if num_shards_given and num_shards != len(paths):
            raise UserInputError(f"--num_shards={num_shards} but --output_file names {len(paths)} file(s): "
                                 "with --output_file, each file named is a shard")
        pretraining_data.check_shard_paths(paths)
        return paths, False
    if not output_dir:
        raise UserInputError("missing required flag: --output_dir (or Google's --output_file)")
    return pretraining_data.shard_paths(output_dir, num_shards), True


def word_boundaries(do_whole_word_mask, boundaries, boundaries_given):
    """The masking units: Google's --do_whole_word_mask when given (true: "wordpiece", false: "none"),
    else --word_boundaries."""
    if do_whole_word_mask is None:
        return boundaries
    chosen = "wordpiece" if do_whole_word_mask else "none"
    if boundaries_given and boundaries != chosen:
        raise UserInputError(f"--do_whole_word_mask={str(do_whole_word_mask).lower()} means --word_boundaries="
                             f"{chosen}, but --word_boundaries={boundaries} is given: pass one of them")
    return chosen


def main(argv):
    del argv
    common_flags.reject_tpu()
    common_flags.require("input_file")
    shards, own_folder = output_shards(FLAGS.output_dir, FLAGS.output_file, FLAGS.num_shards,
                                       FLAGS["num_shards"].present)
    config = pretraining_data.MaskingConfig(
        max_seq_length=FLAGS.max_seq_length, max_predictions_per_seq=FLAGS.max_predictions_per_seq,
        masked_lm_prob=FLAGS.masked_lm_prob, short_seq_prob=FLAGS.short_seq_prob, dupe_factor=FLAGS.dupe_factor,
        nsp=not FLAGS.no_nsp, seed=FLAGS.random_seed,
        word_boundaries=word_boundaries(FLAGS.do_whole_word_mask, FLAGS.word_boundaries,
                                        FLAGS["word_boundaries"].present))
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
        phrases = pretraining_data.phrase_pieces(tokenizer, readers.read_text(FLAGS.phrase_file).split("\n"))
    summary = pretraining_data.write_pretraining_data(
        documents, tokenizer, config, shards, FLAGS.num_workers or os.cpu_count() or 1, phrases,
        vocab_digest=input_pipeline.file_digest(text.path), start=start, own_folder=own_folder)
    destination = FLAGS.output_dir or ", ".join(shards)
    print(f"wrote {summary['instances']} instances ({summary['tokens']} tokens, {summary['masked']} masked) "
          f"from {summary['documents']} documents in {len(shards)} shard(s), {summary['seconds']:.1f}s "
          f"({summary['instances_per_second']} instances/s) -> {destination} "
          f"(+ {os.path.join(os.path.dirname(shards[0]), pretraining_data.META_FILE)})")


if __name__ == "__main__":
    run_main(main)
