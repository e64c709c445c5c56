"""SavedModel export for serving: raw text in, labels out, tokenization inside the graph.

A trained output folder describes itself (model_info.json, bert_config.json, the vocab, label_map.json
and checkpoints), and bert.model_folder, its one owner, reads it (ModelInfo,
find_checkpoint, TrainedModel). `export_saved_model(model_dir, export_dir)` reads it and writes
`export_dir/<version>/` (saved_model.pb, variables/, assets/), the layout TensorFlow Serving
watches: the next free integer, written under a temporary name and renamed when complete.

The serving graph is built in tf.compat.v1 graph mode from the pieces training uses -- the one
model_fn (model_fn.model_fn_builder: BertModel + the task's head) in PREDICT mode -- so every variable
has its checkpoint name; the checkpoint is restored with a Saver and written with
tf.compat.v1.saved_model.Builder. Signatures (all batch-major, any batch size):

  serving_default  text_a [, text_b] string [batch] -> probabilities float32 [batch, labels],
                   label_id int32 [batch] (multi-label: [batch, labels] 0/1), label string [batch]
                   (multi-label: the labels that are on, joined by the label separator);
                   few-shot adds distances float32 [batch, classes] (squared Euclidean, or 1 - cosine)
  predict_ids      input_ids, input_mask, segment_ids int32 [batch, max_seq_length] -> the same outputs
  tokenize         text_a [, text_b] -> input_ids, input_mask, segment_ids (what the model sees)
  embed            (few-shot) text_a -> embedding float32 [batch, hidden]
  classify_with_support  (few-shot) support_text, support_label string [S], text_a string [batch] ->
                   probabilities, distances [batch, C], label_id, label [batch], labels string [C]: the
                   C distinct support labels (first appearance order) are the classes, their prototypes
                   computed in the graph; classify_with_support_embeddings takes support_embedding
                   float32 [S, hidden] (from embed) instead of support_text
  NER (token classification) has its own serving_default and tokenize: text in, tagged words with
  their character offsets and the entities decoded in the graph out (exporters.TokenClassificationExporter,
  tagging_graph.py).

Tokenization in the graph (`GraphTokenizer`) gives the ids of the Python tokenizer
(tokenization.FullTokenizer, itself token for token Google's) with tensorflow_text and tf.strings
ops; truncation (Google's pair rule), [CLS]/[SEP] and padding are graph ops too (`encode_pairs`).
A process that loads the SavedModel must `import tensorflow_text` first (it registers the ops);
TensorFlow Serving's model server has them built in.

Which file holds what:
  graph_tokenization.py  the in-graph tokenization: write_vocab_asset, GraphTokenizer, encode_pairs,
                         TextEncoder (text placeholders -> the encoder's features)
  exporters.py           TaskExporter, one subclass per task (ClassificationExporter, FewShotExporter
                         with SupportSet, TokenClassificationExporter), label_strings, the EXPORTERS
                         registry and the signature names
  tagging_graph.py       NER in the graph: words with offsets, windows, merging, entity chunking
  saved_model.py         export_saved_model, restore, version_numbers, resolve_saved_model
  features.py            FeatureExtractor (extract_features.py: the same encoder graph on a checkpoint)
The names are re-exported here: `from bert import export; export.export_saved_model(...)`.

Adding a task: subclass `TaskExporter` (exporters.py) with `task_class` set to the task; it registers
itself in EXPORTERS under the task's name, the one model_info.json records ("squad" plugs in here).
"""
from bert.export.exporters import (DEFAULT_MAX_SUPPORT, EXPORTERS, SIGNATURE_EMBED, SIGNATURE_WITH_SUPPORT,
                                   SIGNATURE_WITH_SUPPORT_EMBEDDINGS, ClassificationExporter, FewShotExporter,
                                   SupportSet, TaskExporter, TokenClassificationExporter, label_strings)
from bert.export.features import FeatureExtractor
from bert.export.graph_tokenization import (MAX_CHARS_PER_WORD, UTF8_MAX_BYTES, GraphTokenizer, TextEncoder,
                                            encode_pairs, write_vocab_asset)
from bert.export.saved_model import (SIGNATURE_IDS, SIGNATURE_TEXT, SIGNATURE_TOKENIZE, export_saved_model,
                                     resolve_saved_model, restore, version_numbers)
from bert.model_folder import LABEL_MAP_FILE, MODEL_INFO_FILE, ModelInfo, TrainedModel, find_checkpoint

__all__ = [
    "ClassificationExporter", "DEFAULT_MAX_SUPPORT", "EXPORTERS", "SIGNATURE_WITH_SUPPORT",
    "SIGNATURE_WITH_SUPPORT_EMBEDDINGS", "FeatureExtractor", "FewShotExporter", "GraphTokenizer",
    "LABEL_MAP_FILE", "MAX_CHARS_PER_WORD", "MODEL_INFO_FILE", "ModelInfo", "SIGNATURE_EMBED", "SIGNATURE_IDS",
    "SIGNATURE_TEXT", "SIGNATURE_TOKENIZE", "SupportSet", "TaskExporter", "TextEncoder", "TokenClassificationExporter", "TrainedModel",
    "UTF8_MAX_BYTES", "encode_pairs", "export_saved_model", "find_checkpoint", "label_strings", "restore",
    "resolve_saved_model", "version_numbers", "write_vocab_asset",
]
