"""Sentence and token embeddings for a file of texts, from a checkpoint (google-research/bert's
extract_features.py, with numpy outputs).

  python extract_features.py --model_dir=OUT --input_file=texts.txt --output_dir=FEATURES
  python extract_features.py --bert_config_file=M/bert_config.json --vocab_file=M/vocab.txt \
      --init_checkpoint=M --do_lower_case --max_seq_length=128 --input_file=texts.txt --output_dir=FEATURES

--model_dir: a training run's output_dir (model_info.json gives the vocab, lower-casing and length;
  best/ or the latest checkpoint is used; --max_seq_length overrides the length when given); or,
  without it, Google's flags name a pretrained model (e.g. models/all-MiniLM-L6-v2).
--input_file: one text a line; row i of every output is line i (blank lines included).
Writes to --output_dir (row i = line i):
  cls_emb.npy        float32 [texts, hidden]           the [CLS] token's final hidden state
  mean_emb.npy       float32 [texts, hidden]           mean of the final hidden states over real tokens
  pooled_emb.npy     float32 [texts, hidden]           BERT's pooler (tanh dense on [CLS])
  top_layer_emb.npy  float32 [texts, max_seq_length, hidden]  final hidden states, zero at padding
  input_mask.npy     int32 [texts, max_seq_length]     1 for real tokens
  tokens.txt         the word pieces of each row ([CLS] ... [SEP]), space-separated
It runs the checkpoint, not a SavedModel: pretrained models have no export, and the encoder graph is
the exporter's own (bert/export/: in-graph tokenization, BertModel), restored the same way.
"""
import os

import numpy as np
from absl import flags

import common_flags
from bert import export, files
from bert.errors import UserInputError, run_main
from processors import readers

FLAGS = flags.FLAGS
DEFAULT_BATCH = 32
OUTPUTS = ("cls_emb", "mean_emb", "pooled_emb", "top_layer_emb", "input_mask")


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


def extract(trained, texts, output_dir, batch_size):
    """Writes the features of `texts` (row i = texts[i]) to output_dir, each file whole or not at all."""
    extractor = export.FeatureExtractor(trained)
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


def main(argv):
    del argv
    common_flags.quiet_tensorflow()
    common_flags.require("input_file", "output_dir")
    batch_size = FLAGS.predict_batch_size if FLAGS["predict_batch_size"].present else DEFAULT_BATCH
    text = readers.read_text(FLAGS.input_file)
    texts = [line for _, line in readers.numbered_lines(text[:-1] if text.endswith("\n") else text)]
    if not texts or texts == [""]:
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
    extract(trained, texts, FLAGS.output_dir, batch_size)
    print(f"features of {len(texts)} texts from {trained.checkpoint} in {FLAGS.output_dir}: "
          + ", ".join(f"{name}.npy" for name in OUTPUTS) + ", tokens.txt")


if __name__ == "__main__":
    run_main(main)
