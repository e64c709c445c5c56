"""Token classification (named-entity recognition) on the shared model_fn: one tag per word.

Each word is tokenized on its own (a Chinese character is a word), and its tag is predicted at its first
word piece; later pieces carry no tag. A sentence longer than max_seq_length - 2 pieces becomes several
overlapping windows of whole words (`stride` pieces apart); each word's tag is taken from the window in
which it has the most context on both sides (as run_squad.py does for answers), so every word gets one.

Features of a window, aligned by the window's word index j (not by piece position):
  word_positions[j]  the position of word j's first piece; word_labels[j] its tag id (training);
  word_count         how many words the window has; word_is_max_context[j]: this window tags word j;
  example_index, first_word: which sentence, and the sentence index of the window's word 0.
The head scores every piece, gathers the first pieces' scores into word order and trains and decodes
them with a softmax, or with a linear-chain CRF over the words (bert/crf.py) when use_crf.
"""
import dataclasses
from typing import List, Optional

import numpy as np
import tensorflow as tf

from bert import crf, modeling, tasks
from bert.errors import UserInputError

tf1 = tf.compat.v1
OUTSIDE = "O"


@dataclasses.dataclass
class TaggedWords:
    """What TokenClassificationTask converts: a sentence's words and, for training, their tags."""
    words: List[str]
    tags: Optional[List[str]] = None


@dataclasses.dataclass
class Window:
    first_word: int
    words: int  # how many


def word_pieces(tokenizer, words, max_pieces):
    """Each word's pieces ([UNK] for a word the tokenizer drops entirely, e.g. a control character),
    at most max_pieces per word."""
    pieces = []
    for word in words:
        found = tokenizer.tokenize(word) or ["[UNK]"]
        pieces.append(found[:max_pieces])
    return pieces


def windows(piece_counts, room, stride):
    """Whole-word windows of at most `room` pieces, starting `stride` pieces (or the next word) apart."""
    if not len(piece_counts):
        return [Window(0, 0)]  # an empty sentence: one window without words
    starts = np.concatenate([[0], np.cumsum(piece_counts)])
    result, first = [], 0
    while True:
        last = first + 1  # at least one word (word_pieces cuts a word to `room` pieces)
        while last < len(piece_counts) and starts[last + 1] - starts[first] <= room:
            last += 1
        result.append(Window(first, last - first))
        if last >= len(piece_counts):
            return result
        following = first + 1
        while following < last and starts[following] - starts[first] < stride:
            following += 1
        first = following


def max_context(window_list, word):
    """The index of the window in which `word` has the most words on its shorter side."""
    best, best_score = None, None
    for index, window in enumerate(window_list):
        if window.first_word <= word < window.first_word + window.words:
            offset = word - window.first_word
            score = min(offset, window.words - 1 - offset) + 0.01 * window.words
            if best_score is None or score > best_score:
                best, best_score = index, score
    return best


@tasks.register_task
class TokenClassificationTask(tasks.Task):
    """Tags per word; labels[0] must be "O" (the id padding positions carry)."""

    name = "ner"
    many_features = True

    def __init__(self, labels, tokenizer, max_seq_length, use_crf=False, stride=None, dropout_prob=0.1,
                 initializer_range=0.02):
        self.labels = list(labels)
        if not self.labels or self.labels[0] != OUTSIDE:
            raise ValueError(f"the first tag must be {OUTSIDE!r}, got {self.labels[:1]}")
        self.label_to_id = {label: index for index, label in enumerate(self.labels)}
        self.tokenizer = tokenizer
        self.max_seq_length = max_seq_length
        self.use_crf = use_crf
        self.stride = stride or max(1, (max_seq_length - 2) // 2)
        self.dropout_prob, self.initializer_range = dropout_prob, initializer_range

    def feature_shapes(self, training=True):
        seq = [self.max_seq_length]
        shapes = {"input_ids": seq, "input_mask": seq, "segment_ids": seq, "word_positions": seq,
                  "word_count": [], "word_is_max_context": seq, "example_index": [], "first_word": []}
        if training:
            shapes["word_labels"] = seq
        return shapes

    def cache_key(self, training=False):
        return {"task": self.name, "labels": self.labels, "max_seq_length": self.max_seq_length,
                "stride": self.stride, "training": training}

    def convert(self, example, training=False):
        """A TaggedWords -> one feature dict per window (the cache adds example_index)."""
        words, tags = example.words, example.tags
        if training and tags is None:
            raise UserInputError("training needs tags for every sentence")
        room = self.max_seq_length - 2
        pieces = word_pieces(self.tokenizer, words, room)
        window_list = windows([len(p) for p in pieces], room, self.stride)
        features = []
        for index, window in enumerate(window_list):
            tokens, positions, owned, labels = ["[CLS]"], [], [], []
            for j in range(window.words):
                word = window.first_word + j
                positions.append(len(tokens))
                tokens.extend(pieces[word])
                owned.append(int(max_context(window_list, word) == index))
                if tags is not None:
                    labels.append(self.label_to_id[tags[word]])
            tokens.append("[SEP]")
            pad = self.max_seq_length - len(tokens)
            words_pad = self.max_seq_length - window.words
            feature = {"input_ids": self.tokenizer.convert_tokens_to_ids(tokens) + [0] * pad,
                       "input_mask": [1] * len(tokens) + [0] * pad, "segment_ids": [0] * self.max_seq_length,
                       "word_positions": positions + [0] * words_pad, "word_count": window.words,
                       "word_is_max_context": owned + [0] * words_pad, "first_word": window.first_word}
            if training:
                feature["word_labels"] = labels + [0] * words_pad
            features.append(feature)
        return features

    def build(self, model, features, mode):
        sequence = model.get_sequence_output()  # [batch, seq, hidden]
        if mode == tf.estimator.ModeKeys.TRAIN:
            sequence = modeling.dropout(sequence, self.dropout_prob)
        width = sequence.shape.as_list()[-1]
        with tf1.variable_scope(self.name):
            weights = tf1.get_variable("output_weights", [len(self.labels), width],
                                       initializer=modeling.create_initializer(self.initializer_range))
            bias = tf1.get_variable("output_bias", [len(self.labels)], initializer=tf1.zeros_initializer())
            words = tf.gather(sequence, features["word_positions"], batch_dims=1)  # [batch, seq, hidden]
            logits = tf.einsum("bwh,th->bwt", words, weights) + bias  # [batch, words, tags]
            lengths = features["word_count"]
            mask = tf.sequence_mask(lengths, self.max_seq_length, dtype=tf.float32)
            if self.use_crf:
                transitions = crf.crf_variables(len(self.labels))
                predicted, _ = crf.viterbi_decode(logits, lengths, *transitions)
            else:
                predicted = tf.argmax(logits, -1, output_type=tf.int32) * tf.cast(mask, tf.int32)
        predictions = {"word_tags": predicted, "word_count": lengths, "example_index": features["example_index"],
                       "first_word": features["first_word"], "word_is_max_context": features["word_is_max_context"]}
        if mode == tf.estimator.ModeKeys.PREDICT:
            return tasks.TaskOutputs(None, predictions, {})
        labels = features["word_labels"]
        if self.use_crf:
            loss = -tf.reduce_mean(crf.log_likelihood(logits, labels, lengths, *transitions))
        else:
            per_word = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
            loss = tf.reduce_sum(per_word * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)
        metrics = {}
        if mode == tf.estimator.ModeKeys.EVAL:
            metrics = {"word_accuracy": tf1.metrics.accuracy(labels, predicted, weights=mask)}
        return tasks.TaskOutputs(loss, predictions, metrics)

    def model_info(self):
        return {"use_crf": self.use_crf, "stride": self.stride}

    @classmethod
    def from_info(cls, info, tokenizer=None, labels=()):
        return cls(labels, tokenizer, info.max_seq_length, info.extra.get("use_crf", False),
                   info.extra.get("stride"))

    def merge(self, sentence_lengths, predictions):
        """Window predictions (arrays by name, as Estimator.predict gives them) -> one tag list per
        sentence: each word's tag from the window where it has the most context."""
        tags: List[List[str]] = [[OUTSIDE] * n for n in sentence_lengths]
        for window in range(len(predictions["example_index"])):
            sentence, first = int(predictions["example_index"][window]), int(predictions["first_word"][window])
            for j in range(int(predictions["word_count"][window])):
                if predictions["word_is_max_context"][window][j]:
                    tags[sentence][first + j] = self.labels[int(predictions["word_tags"][window][j])]
        return tags


def tag_list(tag_sequences):
    """The tags of some tag sequences, "O" first, then sorted: a task's labels."""
    found = sorted({tag for tags in tag_sequences for tag in tags} - {OUTSIDE})
    return [OUTSIDE] + found
