"""Features from a checkpoint (extract_features.py): BertModel over the in-graph tokenization.

Pretrained models have no export, so `FeatureExtractor` runs a checkpoint directly; its encoder
graph is the exporter's (graph_tokenization.TextEncoder, BertModel), restored the same way
(saved_model.restore).
"""
import os
import shutil
import tempfile

import tensorflow as tf

from bert import heads, modeling
from bert.export.graph_tokenization import TextEncoder, write_vocab_asset
from bert.export.saved_model import restore

tf1 = tf.compat.v1


class FeatureExtractor:
    """BertModel over in-graph tokenized text, restored from a checkpoint, in its own session.

    __call__(texts_a, texts_b=None, fetch=None) -> {"cls_emb" [n, hidden] (the [CLS] token's final
    hidden state), "mean_emb" [n, hidden] (mean over real tokens), "pooled_emb" [n, hidden] (BERT's tanh
    pooler), "top_layer_emb" [n, max_seq_length, hidden] (zero at padding), "input_ids", "input_mask"
    [n, max_seq_length], and with `layers` "layers" [n, len(layers), max_seq_length, hidden] (the
    transformer layers get_all_encoder_layers()[i] for i in layers, padding not zeroed)} as numpy;
    fetch: the names wanted (default all).

    text_pair: feed text_b too. layers: layer indexes as Python indexes the list of transformer
    layers (-1 is the last). use_one_hot_embeddings: Google's TPU lookup (one-hot matmul), same numbers.
    """

    def __init__(self, trained, text_pair=False, layers=(), use_one_hot_embeddings=False):
        self.graph = tf.Graph()
        self.folder = tempfile.mkdtemp(prefix="bert-features-")
        with self.graph.as_default():
            vocab = os.path.join(self.folder, "vocab.txt")
            if trained.info.tokenizer != "sentencepiece":
                write_vocab_asset(trained.tokenizer.vocab, vocab)
            self.encoder = TextEncoder(trained, vocab, text_pair)
            features = self.encoder.features
            model = modeling.BertModel(trained.config, is_training=False, input_ids=features["input_ids"],
                                       input_mask=features["input_mask"], token_type_ids=features["segment_ids"],
                                       use_one_hot_embeddings=use_one_hot_embeddings)
            mask = tf.cast(features["input_mask"], tf.float32)[:, :, tf.newaxis]
            self.outputs = {"cls_emb": heads.sentence_embedding(model, features["input_mask"], "cls"),
                            "mean_emb": heads.sentence_embedding(model, features["input_mask"], "mean"),
                            "pooled_emb": heads.sentence_embedding(model, features["input_mask"], "pooled"),
                            "top_layer_emb": model.get_sequence_output() * mask,
                            "input_ids": features["input_ids"], "input_mask": features["input_mask"]}
            if layers:
                encoder_layers = model.get_all_encoder_layers()  # each [n, max_seq_length, hidden]
                self.outputs["layers"] = tf.stack([encoder_layers[i] for i in layers], axis=1)
            self.session = tf1.Session(graph=self.graph)
            restore(self.session, trained.checkpoint, tf1.global_variables())
            self.session.run(tf1.tables_initializer())

    def __call__(self, texts_a, texts_b=None, fetch=None):
        outputs = self.outputs if fetch is None else {name: self.outputs[name] for name in fetch}
        return self.session.run(outputs, self.encoder.feed(texts_a, texts_b))

    def close(self):
        self.session.close()
        shutil.rmtree(self.folder, ignore_errors=True)
