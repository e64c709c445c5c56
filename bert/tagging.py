"""Token classification (named-entity recognition), the word side: words to pieces, windows, merging.
The task itself, on the shared model_fn, is tasks.TokenClassificationTask.

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


def tag_list(tag_sequences):
    """The tags of some tag sequences, "O" first, then sorted: a task's labels."""
    found = sorted({tag for tags in tag_sequences for tag in tags} - {OUTSIDE})
    return [OUTSIDE] + found
