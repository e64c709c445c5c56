"""Token classification (NER) inside the serving graph: raw text in, tagged words and entities out.

Every step is the graph twin of what run_ner.py does in Python, so the export tags a text exactly as
`run_ner.py --do_predict` tags the same text read from a jsonl (or, for a character-format model, a
cluener) file:

  split_words     words and their character spans: "basic" splits at whitespace, around punctuation and
                  CJK ideographs (ner.split_words); "characters" makes every non-whitespace character a
                  word (ner.read_cluener)
  word_piece_ids  each word's pieces on its own ([UNK] for a word that has none; at most `room`)
  cut_windows     whole-word windows of at most `room` pieces, `stride` apart (tagging.windows)
  window_features the windows as TokenClassificationTask's features (the model's input)
  merge_tags      each word's tag from the window where it has the most context (tagging.max_context)
  entity_spans    the entities of the tags, chunked as conlleval / ner.tags_to_entities chunk them

Offsets count characters (Unicode code points, as Python's str indexes) of the text as UTF-8 decoded;
bytes that are not UTF-8 are dropped first, as the tokenizer drops them.
"""
import tensorflow as tf

from bert import ner
from bert.export.graph_tokenization import _CJK, _PUNCTUATION, _PY_WHITESPACE

tf1 = tf.compat.v1

WORD_SPLITS = ("basic", "characters")
_BASIC_WHITESPACE = r"[ \t\n\r\p{Zs}]"  # tokenization._is_whitespace
_SPLIT_PATTERNS = {  # (delimiters, delimiters kept as words) for tensorflow_text.regex_split
    "basic": (f"{_BASIC_WHITESPACE}|[{_PUNCTUATION}{_CJK}]", f"[{_PUNCTUATION}{_CJK}]"),
    "characters": (r"(?s).", "[^" + _PY_WHITESPACE[1:-1] + "]"),  # str.isspace() characters are no words
}
# Prefix codes of the chunking tables.
_OUTSIDE, _BEGIN, _INSIDE, _END, _SINGLE = range(5)


def word_split_for(data_format):
    """How a model trained on `data_format` splits raw text into words."""
    return "characters" if data_format in ("cluener", "char_bio", "sentences_tags") else "basic"


def split_words(text, how):
    """string [batch] -> (words ragged string [batch, (words)], start, end ragged int64 character offsets,
    byte_start, byte_end ragged int64, the cleaned text string [batch])."""
    import tensorflow_text as tf_text

    text = tf.strings.unicode_transcode(text, "UTF-8", "UTF-8", errors="ignore")
    delimiters, kept = _SPLIT_PATTERNS[how]
    words, byte_start, byte_end = tf_text.regex_split_with_offsets(text, delimiters, kept)
    _, char_bytes = tf.strings.unicode_decode_with_offsets(text, "UTF-8")  # each character's byte offset

    def to_chars(offsets):  # byte offset -> index of the character starting there (or of the text's end)
        table = char_bytes.to_tensor(default_value=tf.int64.max)
        found = tf.searchsorted(table, offsets.to_tensor(), side="left", out_type=tf.int64)
        return tf.RaggedTensor.from_tensor(found, lengths=offsets.row_lengths())

    return words, to_chars(byte_start), to_chars(byte_end), byte_start, byte_end, text


def word_piece_ids(tokenizer, flat_words, room, unk_id):
    """string [words] -> each word's piece ids, ragged int64 [words, (pieces)], as tagging.word_pieces."""
    pieces = tokenizer.tokenize(flat_words)
    empty = tf.equal(pieces.row_lengths(), 0)
    unk = tf.RaggedTensor.from_row_lengths(tf.fill([tf.reduce_sum(tf.cast(empty, tf.int64))],
                                                   tf.constant(unk_id, tf.int64)), tf.cast(empty, tf.int64))
    pieces = tf.concat([pieces, unk], axis=1)
    return tf.RaggedTensor.from_tensor(pieces.to_tensor()[:, :room], lengths=tf.minimum(pieces.row_lengths(), room))


def cut_windows(piece_counts, room, stride):
    """piece_counts ragged int64 [batch, (words)] -> (text, first word, words) int64 [windows] of every
    window, texts in order and each text's windows in order; tagging.windows' windows exactly."""
    words = piece_counts.row_lengths()
    big = tf.constant(2 ** 31, tf.int64)  # beyond a text's words nothing fits
    starts = tf.pad(tf.cumsum(piece_counts.to_tensor(default_value=big), axis=1), [[0, 0], [1, 0]])

    def search(values, side):
        return tf.searchsorted(starts, values[:, tf.newaxis], side=side, out_type=tf.int64)[:, 0]

    def body(step, first, done, records):
        start = tf.gather(starts, first, batch_dims=1)
        last = tf.maximum(first + 1, search(start + room, "right") - 1)  # exclusive
        count = tf.minimum(last, words) - first  # 0 for an empty text's one window
        records = records.write(step, tf.stack([first, count, tf.cast(~done, tf.int64)]))
        following = tf.minimum(last, tf.maximum(first + 1, search(start + stride, "left")))
        done = done | (last >= words)
        return step + 1, tf.where(done, first, following), done, records

    records = tf.TensorArray(tf.int64, size=0, dynamic_size=True, element_shape=[3, None])
    _, _, _, records = tf.while_loop(lambda step, first, done, records: ~tf.reduce_all(done), body,
                                     [tf.constant(0), tf.zeros_like(words), tf.zeros_like(words, tf.bool), records])
    stacked = tf.transpose(records.stack(), [2, 0, 1])  # [batch, steps, 3]
    kept = tf.cast(stacked[:, :, 2], tf.bool)
    text = tf.broadcast_to(tf.range(tf.shape(words, out_type=tf.int64)[0])[:, tf.newaxis], tf.shape(kept, tf.int64))
    return tf.boolean_mask(text, kept), tf.boolean_mask(stacked[:, :, 0], kept), tf.boolean_mask(stacked[:, :, 1], kept)


def window_features(pieces, word_row_starts, windows, max_seq_length, cls_id, sep_id):
    """The windows as the task's features. pieces: ragged [all words, (pieces)]; word_row_starts: each
    text's first word in that flat list; windows: cut_windows' triple. Returns (features, the flat index
    of each window word ragged [windows, (words)], whether the window tags it, ragged bool alike)."""
    text, first, count = windows
    word_ids = tf.ragged.range(tf.gather(word_row_starts, text) + first, tf.gather(word_row_starts, text) + first + count)
    is_max = _max_context(word_ids)
    ids = tf.gather(pieces, word_ids).merge_dims(1, 2)  # [windows, (pieces)]
    n = tf.shape(count, out_type=tf.int64)[0]
    edge = lambda token: tf.RaggedTensor.from_tensor(tf.fill([n, 1], tf.constant(token, tf.int64)))  # noqa: E731
    ids = tf.concat([edge(cls_id), ids, edge(sep_id)], axis=1)
    shape = [None, max_seq_length]
    per_word = tf.gather(pieces.row_lengths(), word_ids)  # [windows, (words)]
    before = tf.cumsum(per_word.flat_values, exclusive=True)
    row_offset = tf.repeat(tf.gather(tf.concat([before, [0]], 0), per_word.row_starts()), per_word.row_lengths())
    positions = per_word.with_flat_values(1 + before - row_offset)
    features = {"input_ids": tf.cast(ids.to_tensor(0, shape=shape), tf.int32),
                "input_mask": tf.cast(tf.ones_like(ids).to_tensor(0, shape=shape), tf.int32),
                "segment_ids": tf.zeros([n, max_seq_length], tf.int32),
                "word_positions": tf.cast(positions.to_tensor(0, shape=shape), tf.int32),
                "word_count": tf.cast(count, tf.int32), "example_index": tf.cast(text, tf.int32),
                "first_word": tf.cast(first, tf.int32),
                "word_is_max_context": tf.cast(is_max, tf.int32).to_tensor(0, shape=shape)}
    return features, word_ids, is_max


def _max_context(word_ids):
    """ragged bool [windows, (words)]: the window gives this word its tag (tagging.max_context: the most
    words on its shorter side, plus 0.01 per window word; the first such window on a tie)."""
    count = word_ids.row_lengths()
    index = tf.ragged.range(count).flat_values
    size = tf.repeat(count, count)
    score = tf.cast(tf.minimum(index, size - 1 - index), tf.float64) + 0.01 * tf.cast(size, tf.float64)
    words = word_ids.flat_values
    total = tf.size(words, out_type=tf.int64)  # above every word id: each word is in a window
    best = tf.math.unsorted_segment_max(score, words, total)
    window = tf.repeat(tf.range(tf.shape(count, out_type=tf.int64)[0]), count)
    candidate = tf.where(score >= tf.gather(best, words), window, tf.int64.max)
    chosen = tf.math.unsorted_segment_min(candidate, words, total)
    return word_ids.with_flat_values(tf.equal(window, tf.gather(chosen, words)))


def merge_tags(word_tags, word_ids, is_max, total_words):
    """The model's word_tags [windows, max_seq_length] -> each word's tag id int32 [total_words]."""
    index = tf.ragged.range(word_ids.row_lengths()).flat_values
    tag = tf.gather_nd(word_tags, tf.stack([word_ids.value_rowids(), index], axis=1))
    mine = tf.cast(is_max.flat_values, tf.int32)
    return tf.math.unsorted_segment_sum(tag * mine, word_ids.flat_values, total_words)


def chunk_tables(labels, scheme):
    """Per label: its prefix code and its type's index in the sorted entity types; and the types."""
    inside = "M" if scheme == "BMES" else "I"
    codes = {"O": _OUTSIDE, "B": _BEGIN, inside: _INSIDE, "E": _END, "S": _SINGLE}
    parsed = [ner.parse_tag(label, scheme) for label in labels]
    types = sorted({kind for _, kind in parsed if kind})
    return ([codes[prefix] for prefix, _ in parsed], [types.index(kind) if kind else -1 for _, kind in parsed],
            types)


def entity_spans(tags, labels, scheme):
    """tags int32 [batch, words] (0 = "O" beyond a text's words) -> (first word, last word inclusive,
    type index) ragged int64 [batch, (entities)] and the types, as ner.tags_to_entities chunks."""
    prefix_table, type_table, types = chunk_tables(labels, scheme)
    prefix = tf.gather(tf.constant(prefix_table), tags)
    kind = tf.gather(tf.constant(type_table), tags)
    # tf.equal, not ==: graph-mode tensors may compare by identity (tensor equality off in tf.compat.v1).
    is_one_of = lambda x, *codes: tf.reduce_any(tf.stack([tf.equal(x, c) for c in codes]), axis=0)  # noqa: E731
    shift = lambda x, value: tf.pad(x, [[0, 0], [1, 0]], constant_values=value)[:, :-1]  # noqa: E731
    was_open = is_one_of(shift(prefix, _OUTSIDE), _BEGIN, _INSIDE)
    continues = was_open & tf.equal(shift(kind, -1), kind) & is_one_of(prefix, _INSIDE, _END)
    entity = tf.not_equal(prefix, _OUTSIDE)
    starts = entity & ~continues
    next_continues = tf.pad(continues, [[0, 0], [0, 1]])[:, 1:]
    ends = entity & (is_one_of(prefix, _END, _SINGLE) | ~next_continues)
    position = tf.broadcast_to(tf.range(tf.shape(tags, out_type=tf.int64)[1]), tf.shape(tags, tf.int64))
    return (tf.ragged.boolean_mask(position, starts), tf.ragged.boolean_mask(position, ends),
            tf.ragged.boolean_mask(tf.cast(kind, tf.int64), starts)), types


def tagging_outputs(exporter_predict, tokenizer, text, how, labels, scheme, max_seq_length, stride, cls_id, sep_id,
                    unk_id):
    """The whole path: text string [batch] -> (serving outputs, the windows' features).
    exporter_predict: features -> the task head's predictions (word_tags)."""
    words, start, end, byte_start, byte_end, text = split_words(text, how)
    room = max_seq_length - 2
    pieces = word_piece_ids(tokenizer, words.flat_values, room, unk_id)
    counts = words.with_flat_values(pieces.row_lengths())
    windows = cut_windows(counts, room, stride)
    features, word_ids, is_max = window_features(pieces, words.row_starts(), windows, max_seq_length, cls_id, sep_id)
    predictions = exporter_predict(features)
    tag_ids = words.with_flat_values(merge_tags(predictions["word_tags"], word_ids, is_max,
                                                tf.shape(words.flat_values)[0]))
    (first, last, kind), types = entity_spans(tag_ids.to_tensor(0), labels, scheme)
    gather = lambda values, index: tf.gather(values.to_tensor(), index.to_tensor(), batch_dims=1)  # noqa: E731
    entity_start, entity_end = gather(start, first), gather(end, last)
    byte_from, byte_to = gather(byte_start, first), gather(byte_end, last)
    entity_count = first.row_lengths()
    rows = tf.broadcast_to(text[:, tf.newaxis], tf.shape(byte_from))
    entity_text = tf.strings.substr(rows, byte_from, byte_to - byte_from)
    real = tf.sequence_mask(entity_count, tf.shape(byte_from)[1])
    type_names = tf.gather(tf.constant(types or [""], tf.string), kind.to_tensor(0))
    outputs = {
        "tokens": words.to_tensor(""), "tags": tf.gather(tf.constant(labels), tag_ids).to_tensor(""),
        "token_start": tf.cast(start.to_tensor(-1), tf.int32), "token_end": tf.cast(end.to_tensor(-1), tf.int32),
        "token_count": tf.cast(words.row_lengths(), tf.int32),
        "entity_type": tf.where(real, type_names, ""), "entity_text": tf.where(real, entity_text, ""),
        "entity_start": tf.cast(tf.where(real, entity_start, -1), tf.int32),
        "entity_end": tf.cast(tf.where(real, entity_end, -1), tf.int32),
        "entity_count": tf.cast(entity_count, tf.int32),
    }
    return outputs, features
