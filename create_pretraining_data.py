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
import json
import os
import random
import time

from absl import flags, logging

import common_flags
from bert import files, input_pipeline, pretraining_data
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
    tokenizer = common_flags.tokenizer()
    workers = FLAGS.num_workers or os.cpu_count() or 1
    start = time.time()
    paths = input_paths(FLAGS.input_file)
    documents = pretraining_data.read_documents(paths)
    if not documents:
        raise UserInputError(f"{FLAGS.input_file}: no text found")
    logging.info("read %d documents from %d file(s)", len(documents), len(paths))

    split = pretraining_data.SentenceTokenizer(tokenizer, config.word_boundaries)
    chunks = list(range(-(-len(documents) // pretraining_data.CHUNK_DOCUMENTS)))

    def tokenize_chunk(chunk):
        first = chunk * pretraining_data.CHUNK_DOCUMENTS
        return [[split(sentence) for sentence in document]
                for document in documents[first:first + pretraining_data.CHUNK_DOCUMENTS]]

    tokenized = [doc for part in input_pipeline.map_parallel(tokenize_chunk, chunks, workers, min_items=2) for doc in part]
    tokenized = [[s for s in document if s.tokens] for document in tokenized]
    tokenized = [document for document in tokenized if document]
    logging.info("tokenized %d documents in %.1fs", len(tokenized), time.time() - start)

    phrases = ()
    if FLAGS.phrase_file:
        with open(FLAGS.phrase_file, encoding="utf-8") as reader:
            phrases = pretraining_data.phrase_pieces(tokenizer, reader.read().split("\n"))
    vocab_tokens = sorted((t for t in tokenizer.vocab if not (t.startswith("[") and t.endswith("]"))),
                          key=tokenizer.vocab.get)
    chunks = list(range(-(-len(tokenized) // pretraining_data.CHUNK_DOCUMENTS)))

    def serialized_chunk(chunk):
        # Workers return finished records (bytes, tokens, masks): the parent only shuffles and writes.
        return [(input_pipeline.serialize_example(pretraining_data.instance_features(instance, tokenizer, config)),
                 len(instance.tokens), len(instance.masked_lm_positions))
                for instance in pretraining_data.instances_for_chunk(tokenized, chunk, config, vocab_tokens, phrases)]

    instances = [row for part in input_pipeline.map_parallel(serialized_chunk, chunks, workers, min_items=2)
                 for row in part]
    random.Random(config.seed).shuffle(instances)
    if not instances:
        raise UserInputError("no instances: the documents are too short for these settings")

    os.makedirs(FLAGS.output_dir, exist_ok=True)
    shards = [os.path.join(FLAGS.output_dir, f"pretrain-{i:05d}-of-{FLAGS.num_shards:05d}.tfrecord")
              for i in range(FLAGS.num_shards)]
    for index, path in enumerate(shards):
        input_pipeline.write_tfrecord(path, (record for record, _, _ in instances[index::FLAGS.num_shards]))
    seconds = time.time() - start
    summary = {"instances": len(instances), "tokens": sum(tokens for _, tokens, _ in instances),
               "masked": sum(masked for _, _, masked in instances), "documents": len(tokenized),
               "seconds": round(seconds, 2), "instances_per_second": round(len(instances) / seconds, 1)}
    meta = {"next_sentence": config.nsp, "max_seq_length": config.max_seq_length,
            "max_predictions_per_seq": config.max_predictions_per_seq, "shards": [os.path.basename(s) for s in shards],
            "settings": vars(config), "vocab": common_flags.vocab_digest(), "summary": summary}
    files.write_text_atomic(os.path.join(FLAGS.output_dir, "pretrain_meta.json"), json.dumps(meta, indent=2) + "\n")
    print(f"wrote {summary['instances']} instances ({summary['tokens']} tokens, {summary['masked']} masked) "
          f"from {summary['documents']} documents in {len(shards)} shard(s), {seconds:.1f}s "
          f"({summary['instances_per_second']} instances/s) -> {FLAGS.output_dir}")


if __name__ == "__main__":
    run_main(main)
