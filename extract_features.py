"""Token and sentence embeddings for a file of texts, from a checkpoint: google-research/bert's
extract_features.py (its command line and JSON-lines output), plus numpy outputs.

  python extract_features.py --input_file=texts.txt --output_file=features.jsonl \
      --vocab_file=M/vocab.txt --bert_config_file=M/bert_config.json --init_checkpoint=M/bert_model.ckpt \
      --layers=-1,-2,-3,-4 --max_seq_length=128 --batch_size=8
  python extract_features.py --model_dir=OUT --input_file=texts.txt --output_dir=FEATURES

The model: --model_dir, a training run's output_dir (model_info.json gives the vocab, lower-casing and
  length; best/ or the latest checkpoint is used; --max_seq_length overrides the length when given);
  or, without it, Google's flags name a pretrained model (e.g. models/all-MiniLM-L6-v2).
--output_file (Google's format): one JSON object a line of --input_file, {"linex_index": line number
  from 0 (Google's spelling), "features": [{"token": word piece, "layers": [{"index": layer,
  "values": [hidden floats, rounded to 6 decimals]}, ...one per --layers entry]}, ...one per token,
  [CLS] and [SEP] included]}. A line "text_a ||| text_b" is a sentence pair (split at the last
  " ||| "); lines are stripped of surrounding whitespace, as Google's are.
--output_dir (numpy; row i = line i of --input_file, blank lines included, no pair syntax):
  cls_emb.npy        float32 [texts, hidden]           the [CLS] token's final hidden state
  mean_emb.npy       float32 [texts, hidden]           mean of the final hidden states over real tokens
  pooled_emb.npy     float32 [texts, hidden]           BERT's pooler (tanh dense on [CLS])
  top_layer_emb.npy  float32 [texts, max_seq_length, hidden]  final hidden states, zero at padding
  input_mask.npy     int32 [texts, max_seq_length]     1 for real tokens
  tokens.txt         the word pieces of each row ([CLS] ... [SEP]), space-separated
Either output is written whole or not at all. It runs the checkpoint, not a SavedModel: pretrained
models have no export, and the encoder graph is the exporter's own (bert/export/: in-graph
tokenization, BertModel), restored the same way. Google's TPU flags: see common_flags.py.
"""
import json
import os

import numpy as np
from absl import flags

import common_flags
from bert import export, files
from bert.errors import UserInputError, run_main
from processors import readers

FLAGS = flags.FLAGS
# Google's flags of this script (the others are shared: common_flags.py).
flags.DEFINE_string("layers", "-1,-2,-3,-4", "--output_file: the transformer layers written for each token, "
                    "comma-separated indexes into the list of layers (-1: the last, 0: the first).")
flags.DEFINE_integer("batch_size", 32, "Texts per batch (--predict_batch_size is accepted too).", lower_bound=1)
flags.DEFINE_bool("use_one_hot_embeddings", False, "Look word embeddings up by a one-hot matmul instead of a "
                  "gather (Google's TPU option): the same numbers, only slower here.")

OUTPUTS = ("cls_emb", "mean_emb", "pooled_emb", "top_layer_emb", "input_mask")
PAIR_SEPARATOR = " ||| "  # Google's: "text_a ||| text_b" is a sentence pair


def trained_model(model_dir, init_checkpoint, max_seq_length=None):
    """A training run's output folder (max_seq_length, when given, overrides its length)."""
    info = export.ModelInfo.from_dir(model_dir)
    if max_seq_length is not None:
        info.max_seq_length = max_seq_length
    return export.TrainedModel.load(model_dir, init_checkpoint, info)


def pretrained_model(bert_config_file, text, init_checkpoint, max_seq_length):
    """A pretrained model named by Google's flags; text: config.TextConfig."""
    info = export.ModelInfo(task=None, bert_config_file=os.path.abspath(bert_config_file),
                            vocab_file=os.path.abspath(text.path), tokenizer=text.kind,
                            do_lower_case=text.do_lower_case, max_seq_length=max_seq_length)
    return export.TrainedModel.load("", init_checkpoint, info)


def extract(trained, texts, output_dir, batch_size, use_one_hot_embeddings=False):
    """Writes the features of `texts` (row i = texts[i]) to output_dir, each file whole or not at all."""
    extractor = export.FeatureExtractor(trained, use_one_hot_embeddings=use_one_hot_embeddings)
    os.makedirs(output_dir, exist_ok=True)
    length, hidden = trained.info.max_seq_length, trained.config.hidden_size
    shapes = {"cls_emb": (hidden,), "mean_emb": (hidden,), "pooled_emb": (hidden,),
              "top_layer_emb": (length, hidden), "input_mask": (length,)}
    paths = {name: os.path.join(output_dir, f"{name}.npy") for name in OUTPUTS}
    arrays = {name: np.lib.format.open_memmap(paths[name] + ".tmp", mode="w+",
                                              dtype=np.int32 if name == "input_mask" else np.float32,
                                              shape=(len(texts),) + shapes[name]) for name in OUTPUTS}
    tokens = []
    try:
        for start in range(0, len(texts), batch_size):
            out = extractor(texts[start:start + batch_size])
            for name in OUTPUTS:
                arrays[name][start:start + len(out[name])] = out[name]
            for ids, mask in zip(out["input_ids"], out["input_mask"]):
                tokens.append(" ".join(trained.tokenizer.convert_ids_to_tokens(ids[mask > 0])))
        for array in arrays.values():
            array.flush()
        del arrays
        for name in OUTPUTS:
            os.replace(paths[name] + ".tmp", paths[name])
    finally:
        extractor.close()
        for name in OUTPUTS:
            if os.path.exists(paths[name] + ".tmp"):
                os.remove(paths[name] + ".tmp")
    files.write_text_atomic(os.path.join(output_dir, "tokens.txt"), "\n".join(tokens) + "\n")


def layer_indexes(spec, num_layers):
    """--layers ("-1,-2") -> [-1, -2], each checked against a model of num_layers layers."""
    try:
        indexes = [int(part) for part in spec.split(",")]
    except ValueError:
        raise UserInputError(f"--layers={spec}: expected comma-separated integers such as -1,-2,-3,-4") from None
    for index in indexes:
        if not -num_layers <= index < num_layers:
            raise UserInputError(f"--layers={spec}: layer {index} does not exist; the model has {num_layers} "
                                 f"layers (indexes {-num_layers}..{num_layers - 1})")
    return indexes


def google_examples(lines):
    """Google's input lines -> (text_a, text_b) pairs: stripped; "a ||| b" (at the last " ||| ") is a
    pair, anything else text_a alone (text_b "")."""
    examples = []
    for line in lines:
        text_a, separator, text_b = line.strip().rpartition(PAIR_SEPARATOR)
        examples.append((text_a, text_b) if separator else (text_b, ""))
    return examples


def google_json_lines(trained, examples, layers, batch_size, use_one_hot_embeddings=False):
    """Google's extract_features.py output, one JSON line (with its "\n") per example, in order."""
    # Google's second segment exists only when text_b has tokens ([CLS] a [SEP], not [CLS] a [SEP] [SEP]).
    examples = [(a, b if b and trained.tokenizer.tokenize(b) else "") for a, b in examples]
    extractor = export.FeatureExtractor(trained, text_pair=any(b for _, b in examples), layers=layers,
                                        use_one_hot_embeddings=use_one_hot_embeddings)
    try:
        for start in range(0, len(examples), batch_size):
            batch = examples[start:start + batch_size]
            out = extractor([a for a, _ in batch], [b for _, b in batch], fetch=("layers", "input_ids", "input_mask"))
            for offset, (ids, mask, values) in enumerate(zip(out["input_ids"], out["input_mask"], out["layers"])):
                length = int(mask.sum())  # [CLS] ... [SEP]: the real tokens come first
                tokens = trained.tokenizer.convert_ids_to_tokens(ids[:length])
                features = [{"token": token,
                             "layers": [{"index": layer, "values": [round(x, 6) for x in values[j, i].tolist()]}
                                        for j, layer in enumerate(layers)]}
                            for i, token in enumerate(tokens)]
                yield json.dumps({"linex_index": start + offset, "features": features}) + "\n"
    finally:
        extractor.close()


def write_lines_atomic(path, lines):
    """Writes the strings `lines` to `path` as they come, through a temporary name renamed when complete."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = files.temporary_name(path)
    try:
        with open(tmp, "w", encoding="utf-8") as writer:
            writer.writelines(lines)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def main(argv):
    del argv
    common_flags.reject_tpu()
    common_flags.quiet_tensorflow()
    common_flags.require("input_file")
    if FLAGS.output_file and FLAGS.output_dir:
        raise UserInputError("give --output_file (Google's JSON lines) or --output_dir (numpy arrays), not both")
    if not (FLAGS.output_file or FLAGS.output_dir):
        raise UserInputError("missing required flag: --output_file (Google's JSON lines) or --output_dir "
                             "(numpy arrays)")
    if FLAGS.output_dir and FLAGS["layers"].present:
        raise UserInputError("--layers picks the layers of --output_file; --output_dir writes the top layer")
    batch_size = FLAGS.predict_batch_size if FLAGS["predict_batch_size"].present and not FLAGS["batch_size"].present \
        else FLAGS.batch_size
    text = readers.read_text(FLAGS.input_file)
    lines = [line for _, line in readers.numbered_lines(text[:-1] if text.endswith("\n") else text)]
    if not lines or lines == [""]:
        raise UserInputError(f"{FLAGS.input_file}: no texts")
    if FLAGS.model_dir:
        trained = trained_model(FLAGS.model_dir, FLAGS.init_checkpoint,
                                FLAGS.max_seq_length if FLAGS["max_seq_length"].present else None)
    else:
        common_flags.require("bert_config_file", "init_checkpoint")
        if not (FLAGS.vocab_file or FLAGS.spm_model_file):
            raise UserInputError("missing required flag(s): --vocab_file (or --spm_model_file), or give --model_dir")
        trained = pretrained_model(FLAGS.bert_config_file, common_flags.text_config(), FLAGS.init_checkpoint,
                                   FLAGS.max_seq_length)
    if FLAGS.output_file:
        layers = layer_indexes(FLAGS.layers, trained.config.num_hidden_layers)
        write_lines_atomic(FLAGS.output_file, google_json_lines(trained, google_examples(lines), layers, batch_size,
                                                                FLAGS.use_one_hot_embeddings))
        print(f"features of {len(lines)} lines (layers {FLAGS.layers}) from {trained.checkpoint} in "
              f"{FLAGS.output_file}")
        return
    extract(trained, lines, FLAGS.output_dir, batch_size, FLAGS.use_one_hot_embeddings)
    print(f"features of {len(lines)} texts from {trained.checkpoint} in {FLAGS.output_dir}: "
          + ", ".join(f"{name}.npy" for name in OUTPUTS) + ", tokens.txt")


if __name__ == "__main__":
    run_main(main)
