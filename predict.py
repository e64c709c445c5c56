"""Batch prediction with an exported SavedModel, without TensorFlow Serving.

  python predict.py --saved_model_dir=EXPORT --predict_file=texts.txt --output_file=predictions.tsv
  python predict.py --saved_model_dir=EXPORT/3 --predict_file=pairs.tsv --output_file=predictions.tsv
  python predict.py --saved_model_dir=NER_EXPORT --predict_file=texts.jsonl --output_file=entities.jsonl

--saved_model_dir: a version folder, or the export folder (its highest version is used).
--predict_file: a .tsv file -- with a header row naming the columns text_a (and text_b), e.g. the
  training data's own files, or without one: text_a in the first column, text_b in the second -- or
  any other file: one text a line (every line, blank ones too, so output row i is input line i).
Output: a TSV with a header: the input text(s), label, probability (of that label; not for
multi-label models), one column per class with its probability, and for few-shot models
distance:<class> columns; a backslash, tab or line break in a text or label is written as \\\\, \\t,
\\n or \\r (bert.files.write_tsv), so every row is one line. The model's own serving_default
signature does the work, in batches of --predict_batch_size (default 64 here), tokenization included.

--support_file=SUPPORT.tsv (text<TAB>label lines) with a few-shot export: its classes instead of those baked
in at export time, through the export's classify_with_support_embeddings signature (the support texts are
embedded once with embed); the class columns follow the support file's order of first appearance.

NER exports (run_ner.py): --predict_file is a .json/.jsonl file of {"text": ...} objects (jsonl or
CLUENER; other keys such as "id" are kept) or one text a line; the output is JSON Lines, one line per
text: {"text", "entities": [{"start", "end", "type", "text"}]} (character offsets, end exclusive), as
run_ner.py --do_predict writes predictions.jsonl.
"""
import itertools
import os
import re

from absl import flags

import common_flags  # predict_file, predict_batch_size, output_file, support_file
import processors
from bert import export, files, ner
from bert.errors import UserInputError, run_main
from processors import readers

FLAGS = flags.FLAGS
flags.DEFINE_string("saved_model_dir", None, "An export folder (highest version) or one version folder.")
DEFAULT_BATCH = 64


def read_inputs(path, pair):
    """{"text_a": [...] (, "text_b": [...])} from a .tsv (header optional) or a one-text-a-line file."""
    if not path.lower().endswith(".tsv"):
        text = readers.read_text(path)
        lines = [line for _, line in readers.numbered_lines(text[:-1] if text.endswith("\n") else text)]
        if pair:
            raise UserInputError(f"{path}: the model takes text pairs (text_a, text_b); give a .tsv file")
        return {"text_a": lines}
    rows = readers.read_rows(path, readers.TSV)
    if not rows:
        raise UserInputError(f"{path}: no rows")
    header = [name.strip() for name in rows[0][1]]
    if "text_a" in header:
        columns = {"text_a": header.index("text_a")}
        if "text_b" in header:
            columns["text_b"] = header.index("text_b")
        rows = rows[1:]
    else:
        columns = {"text_a": 0, "text_b": 1} if pair else {"text_a": 0}
    if pair and "text_b" not in columns:
        raise UserInputError(f"{path}:1: the model takes text pairs; the header names no text_b column")
    if not pair and "text_b" in columns:
        raise UserInputError(f"{path}:1: the header has a text_b column but the model takes text_a only")
    inputs = {name: [] for name in columns}
    for line, fields in rows:
        if len(fields) <= max(columns.values()):
            raise UserInputError(f"{path}:{line}: expected at least {max(columns.values()) + 1} tab-separated "
                                 f"columns, found {len(fields)}")
        for name, index in columns.items():
            inputs[name].append(fields[index])
    return inputs


def label_names(saved_model_dir, width):
    """The class names in the order of the probabilities (assets/label_map.json)."""
    import json
    path = os.path.join(saved_model_dir, "assets", export.LABEL_MAP_FILE)
    try:
        with open(path, encoding="utf-8") as reader:
            labels = json.load(reader)["labels"]
    except (OSError, ValueError, KeyError):
        labels = None
    return labels if labels and len(labels) == width else [str(i) for i in range(width)]


def main(argv):
    del argv
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the tokenization ops the SavedModel uses)

    common_flags.reject_tpu()
    common_flags.require("saved_model_dir", "predict_file", "output_file")
    batch_size = FLAGS.predict_batch_size if FLAGS["predict_batch_size"].present else DEFAULT_BATCH
    saved_model_dir = export.resolve_saved_model(FLAGS.saved_model_dir)
    signatures = tf.saved_model.load(saved_model_dir).signatures
    serve = signatures[export.SIGNATURE_TEXT]
    if "entity_type" in serve.structured_outputs:
        if FLAGS.support_file:
            raise UserInputError(f"{saved_model_dir} tags entities: --support_file is for few-shot exports")
        return tag_entities(serve, batch_size)
    if FLAGS.support_file:
        serve = with_support(signatures, saved_model_dir, batch_size)
    names = ["text_a"] if FLAGS.support_file else sorted(serve.structured_input_signature[1])
    inputs = read_inputs(FLAGS.predict_file, pair="text_b" in names)
    count = len(inputs["text_a"])
    if not count:
        raise UserInputError(f"{FLAGS.predict_file}: no texts")

    def batches():
        for start in range(0, count, batch_size):
            batch = {name: tf.constant(values[start:start + batch_size], tf.string) for name, values in inputs.items()}
            try:
                yield start, {name: tensor.numpy() for name, tensor in serve(**batch).items()}
            except tf.errors.InvalidArgumentError as error:  # the model's own checks (e.g. of a support set)
                found = re.search(r"assertion failed: \[(.*?)\]", error.message)
                raise UserInputError(f"{saved_model_dir}: {found.group(1) if found else error.message}") from None

    def rows(outputs):
        for start, out in outputs:
            for row, probabilities in enumerate(out["probabilities"]):
                fields = [inputs[name][start + row] for name in inputs] + [out["label"][row].decode("utf-8")]
                if not multi_label:
                    fields.append(f"{probabilities[out['label_id'][row]]:.6f}")
                fields += [f"{p:.6f}" for p in probabilities]
                if "distances" in out:
                    fields += [f"{d:.6f}" for d in out["distances"][row]]
                yield fields

    outputs = batches()
    first = next(outputs)  # the first batch's outputs say what columns there are
    multi_label = first[1]["label_id"].ndim == 2
    labels = [label.decode("utf-8") for label in first[1]["labels"]] if "labels" in first[1] else \
        label_names(saved_model_dir, first[1]["probabilities"].shape[1])
    header = list(inputs) + ["label"] + ([] if multi_label else ["probability"]) + labels
    if "distances" in first[1]:
        header += [f"distance:{label}" for label in labels]
    files.write_tsv(FLAGS.output_file, header, rows(itertools.chain([first], outputs)))
    print(f"{count} predictions from {saved_model_dir} in {FLAGS.output_file}")


def with_support(signatures, saved_model_dir, batch_size):
    """serving_default's stand-in for --support_file: the support texts are embedded once (embed), then each
    batch goes to classify_with_support_embeddings with them."""
    import tensorflow as tf

    if export.SIGNATURE_WITH_SUPPORT_EMBEDDINGS not in signatures:
        raise UserInputError(f"{saved_model_dir}: --support_file needs a few-shot export with the "
                             f"{export.SIGNATURE_WITH_SUPPORT_EMBEDDINGS} signature (not a classifier, not an export "
                             "adapted with --adapt_steps, not one made before that signature existed)")
    examples = processors.read_text_label_file(FLAGS.support_file, "support")
    embed = signatures[export.SIGNATURE_EMBED]
    texts = [example.text_a for example in examples]
    embeddings = tf.concat([embed(text_a=tf.constant(texts[start:start + batch_size]))["embedding"]
                            for start in range(0, len(texts), batch_size)], 0)
    labels = tf.constant([example.label for example in examples])
    classify = signatures[export.SIGNATURE_WITH_SUPPORT_EMBEDDINGS]
    return lambda text_a: classify(support_embedding=embeddings, support_label=labels, text_a=text_a)


def read_ner_texts(path):
    """Sentences with their text (and extra keys) from a .json/.jsonl file, else one text a line."""
    if path.lower().endswith((".json", ".jsonl")):
        sentences, _ = ner.read_ner_file(path)
        return sentences
    text = readers.read_text(path)
    lines = readers.numbered_lines(text[:-1] if text.endswith("\n") else text)
    return [ner.Sentence(line, [], [], [], f"{path}:{number}") for number, line in lines]


def tag_entities(serve, batch_size):
    """An NER export's entities for every text of --predict_file, written as JSON Lines."""
    import tensorflow as tf

    sentences = read_ner_texts(FLAGS.predict_file)
    if not sentences:
        raise UserInputError(f"{FLAGS.predict_file}: no texts")
    found = []
    for start in range(0, len(sentences), batch_size):
        texts = [sentence.text for sentence in sentences[start:start + batch_size]]
        out = {name: tensor.numpy() for name, tensor in serve(text_a=tf.constant(texts, tf.string)).items()}
        for row in range(len(texts)):
            found.append([ner.Entity(int(out["entity_start"][row][k]), int(out["entity_end"][row][k]),
                                     out["entity_type"][row][k].decode("utf-8"))
                          for k in range(out["entity_count"][row])])
    ner.write_jsonl(FLAGS.output_file, sentences, found)
    print(f"entities of {len(sentences)} texts in {FLAGS.output_file}")


if __name__ == "__main__":
    run_main(main)
