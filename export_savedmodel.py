"""Exports a trained output folder as a SavedModel that TensorFlow Serving loads as it is.

  python export_savedmodel.py --model_dir=OUT --export_dir=EXPORT              (run_classifier.py output)
  python export_savedmodel.py --model_dir=OUT --export_dir=EXPORT --support_file=SUPPORT.tsv   (run_fewshot.py)
  python export_savedmodel.py --model_dir=OUT --export_dir=EXPORT              (run_ner.py: tags and entities out)
  python export_savedmodel.py --model_dir=OUT --export_dir=EXPORT              (run_multitask.py: a signature per task)

Reads model_info.json, bert_config.json, the vocab, label_map.json and the checkpoint (OUT/best when
there is one, else the latest) from OUT -- no training flags repeated -- and writes EXPORT/<version>/
(saved_model.pb, variables/, assets/), the next free version number. Signatures: serving_default
(raw text in, probabilities / label_id / label out; tokenization inside the graph), predict_ids
(token ids in), tokenize, and for few-shot models embed and classify_with_support(_embeddings) (the classes
come with each request, up to --max_support support texts); see bert/export/. A few-shot model's
serving_default classifies into the classes of --support_file (text<TAB>label lines, a few per class), fixed at export;
with --adapt_steps (and --adapt_learning_rate, --adapt_layers) it is adapted to that support set first,
exactly as run_fewshot.py --do_predict adapts with the same flags.
"""
from absl import flags
from absl import logging as absl_logging

import common_flags  # defines --model_dir and --support_file
import processors
from bert import export
from bert.errors import UserInputError, run_main

FLAGS = flags.FLAGS
flags.DEFINE_string("export_dir", None, "Where version folders 1, 2, ... go (TensorFlow Serving's model base path).")
flags.DEFINE_string("checkpoint", None, "Export this checkpoint instead of model_dir/best (or the latest).")
flags.DEFINE_integer("max_support", export.DEFAULT_MAX_SUPPORT, "Few-shot: the most support texts a "
                     "classify_with_support request may carry (more: the request fails with a message).", lower_bound=1)


def main(argv):
    del argv
    common_flags.quiet_tensorflow()
    common_flags.reject_tpu()
    common_flags.require("model_dir", "export_dir")
    support = None
    if FLAGS.support_file:
        examples = processors.read_text_label_file(FLAGS.support_file, "support")
        support = export.SupportSet([e.text_a for e in examples], [e.label for e in examples], FLAGS.support_file,
                                    common_flags.adapt_config(), FLAGS.max_support)
        if len(set(support.labels)) == 1:
            absl_logging.warning("%s: the support set has one class (%r): the exported model gives every text that "
                                 "class with probability 1", FLAGS.support_file, support.labels[0])
    elif FLAGS.adapt_steps:
        raise UserInputError("--adapt_steps adapts a few-shot model to its --support_file: pass one")
    path = export.export_saved_model(FLAGS.model_dir, FLAGS.export_dir, support=support, checkpoint=FLAGS.checkpoint)
    print(f"exported {FLAGS.model_dir} to {path}")


if __name__ == "__main__":
    run_main(main)
