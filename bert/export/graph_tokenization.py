"""Tokenization as graph ops: raw text in, the encoder's int32 features out, inside the graph.

`GraphTokenizer` gives the ids of the Python tokenizer (tokenization.FullTokenizer, itself token for
token Google's; also WhitespaceTokenizer and SentencePieceTokenizer) with tensorflow_text and
tf.strings ops; truncation (Google's pair rule), [CLS]/[SEP] and padding are graph ops too
(`encode_pairs`). `TextEncoder` puts both behind string placeholders (text_a [, text_b]) in the
current graph. The vocab the graph's lookup table reads is written by `write_vocab_asset`.

A process that loads a graph built with these must `import tensorflow_text` first (it registers the
ops); TensorFlow Serving's model server has them built in.
"""
import tensorflow as tf

from bert import tasks, tokenization
from bert.errors import UserInputError

tf1 = tf.compat.v1

MAX_CHARS_PER_WORD = tokenization.MAX_INPUT_CHARS_PER_WORD  # Google's: a longer word is one [UNK]
UTF8_MAX_BYTES = 4  # per character: a word of MAX_CHARS_PER_WORD characters has at most 4x as many bytes


# Google's BasicTokenizer, as regular expressions (RE2 syntax) over the whole text:
_WHITESPACE = r"[\t\n\r\p{Zs}\x{2028}\x{2029}]"  # -> " " (line/paragraph separators: str.split splits there)
_CONTROL = r"[\p{Cc}\p{Cf}\x{FFFD}]"  # dropped (after the whitespace above is a space; NUL is Cc)
_CJK = "".join(rf"\x{{{low:X}}}-\x{{{high:X}}}" for low, high in tokenization._CJK_RANGES)  # spaced out
_PUNCTUATION = r"!-/:-@\[-`{-~\p{P}"  # every non-alphanumeric printable ASCII character, and Unicode P*
# Python's str.split() whitespace (WhitespaceTokenizer splits with it).
_PY_WHITESPACE = r"[\t\n\x{0B}\x{0C}\r\x{1C}-\x{1F} \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}" \
                 r"\x{202F}\x{205F}\x{3000}]"


def write_vocab_asset(vocab, path):
    """Writes the vocab as the graph's lookup table reads it: line i is the token whose id is i.

    For a clean vocab this is the file itself. tokenization.load_vocab strips each line (Google's
    Chinese vocab has a line holding U+2028, which becomes "") and lets a repeated token keep its last
    id; a line that no token can reach that way (and an empty one, which the table refuses) becomes
    a key no tokenizer produces (it holds a space), so the ids stay the line numbers.
    """
    by_id = {index: token for token, index in vocab.items() if token}
    lines = [by_id.get(i, f"[unused line {i + 1}]") for i in range(max(vocab.values()) + 1)]
    with open(path, "w", encoding="utf-8") as writer:
        writer.write("\n".join(lines) + "\n")
    return path


class GraphTokenizer:
    """Text -> token ids with TensorFlow ops: the ids the project's Python tokenizer gives.

    wordpiece: clean (drop control/format characters, NUL and U+FFFD; whitespace -> space), space
    out CJK ideographs, then (do_lower_case) lower-case, NFD and drop non-spacing marks, space out
    punctuation, split on spaces; a word over 200 characters is [UNK]; greedy longest-match-first
    WordPiece (tensorflow_text.WordpieceTokenizer), a word that cannot be covered is one [UNK].
    whitespace: (lower-case,) split on Python's whitespace, look each word up, [UNK] when absent.
    sentencepiece: (lower-case,) tensorflow_text.SentencepieceTokenizer on the same model.

    Graph mode: the vocab table is filled by tf.compat.v1.tables_initializer() (a SavedModel's
    main op); `vocab_file` becomes an asset of the SavedModel (write it with write_vocab_asset).
    """

    def __init__(self, kind, python_tokenizer, vocab_file, do_lower_case):
        import tensorflow_text as tf_text  # noqa: F401  (registers the ops; only needed here)

        self.kind = kind
        self.do_lower_case = do_lower_case
        self.tf_text = tf_text
        if kind == "sentencepiece":
            model = python_tokenizer.processor.serialized_model_proto()
            self.sentencepiece = tf_text.SentencepieceTokenizer(model=model, out_type=tf.int32)
            return
        vocab = python_tokenizer.vocab
        if tokenization.UNK not in vocab:
            raise UserInputError(f"{vocab_file}: the vocab has no {tokenization.UNK} token")
        self.unk_id = vocab[tokenization.UNK]
        initializer = tf.lookup.TextFileInitializer(
            vocab_file, tf.string, tf.lookup.TextFileIndex.WHOLE_LINE,
            tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER)
        if kind == "whitespace":
            self.table = tf.lookup.StaticHashTable(initializer, default_value=self.unk_id)
            return
        self.table = tf.lookup.StaticHashTable(initializer, default_value=-1)
        longest = max(len(t[2:]) if t.startswith("##") else len(t) for t in vocab)
        self.wordpiece = tf_text.WordpieceTokenizer(
            self.table, suffix_indicator="##", max_bytes_per_word=UTF8_MAX_BYTES * MAX_CHARS_PER_WORD + 1,
            max_chars_per_token=max(longest, 1), token_out_type=tf.int64, unknown_token=tokenization.UNK)

    def lower(self, text):
        return tf.strings.lower(text, encoding="utf-8")  # ICU full lower-casing, as Python's str.lower()

    def words(self, text):
        """BasicTokenizer: string [batch] -> words, ragged string [batch, (words)]."""
        x = tf.strings.regex_replace(text, _WHITESPACE, " ")
        x = tf.strings.regex_replace(x, _CONTROL, "")
        x = tf.strings.regex_replace(x, f"([{_CJK}])", r" \1 ")
        if self.do_lower_case:
            x = self.tf_text.normalize_utf8(self.lower(x), "NFD")
            x = tf.strings.regex_replace(x, r"\p{Mn}", "")  # accents stripped
        x = tf.strings.regex_replace(x, f"([{_PUNCTUATION}])", r" \1 ")
        words = tf.strings.split(x)  # only spaces are left to split on
        too_long = tf.strings.length(words.flat_values, unit="UTF8_CHAR") > MAX_CHARS_PER_WORD
        return words.with_flat_values(tf.where(too_long, tokenization.UNK, words.flat_values))

    def tokenize(self, text):
        """string [batch] -> token ids, ragged int64 [batch, (tokens)]."""
        # Bytes that are not UTF-8 are dropped, as convert_to_unicode's decode("utf-8", "ignore") does.
        text = tf.strings.unicode_transcode(text, "UTF-8", "UTF-8", errors="ignore")
        if self.kind == "sentencepiece":
            if self.do_lower_case:
                text = self.lower(text)
            return tf.cast(self.sentencepiece.tokenize(text), tf.int64)
        if self.kind == "whitespace":
            if self.do_lower_case:
                text = self.lower(text)
            words = tf.strings.split(tf.strings.regex_replace(text, _PY_WHITESPACE, " "))
            return words.with_flat_values(self.table.lookup(words.flat_values))
        return self.wordpiece.tokenize(self.words(text)).merge_dims(1, 2)


def encode_pairs(tokens_a, tokens_b, has_b, max_seq_length, cls_id, sep_id):
    """Google's features from token ids: [CLS] a [SEP] (b [SEP]), padded to max_seq_length.

    tokens_a, tokens_b: ragged int64 [batch, (tokens)]; has_b: bool [batch] (False: a alone, as for
    an empty text_b). Truncation is input_pipeline.truncate_pair's (trim the longer side one token at
    a time, the second on a tie) in closed form: with budget m, b keeps min(len_b, max(m - len_a,
    m // 2)) and a the rest. Returns input_ids, input_mask, segment_ids: int32 [batch, max_seq_length].
    """
    len_a = tokens_a.row_lengths()
    len_b = tokens_b.row_lengths() * tf.cast(has_b, tf.int64)
    budget = tf.where(has_b, tf.constant(max_seq_length - 3, tf.int64), tf.constant(max_seq_length - 2, tf.int64))
    fits = len_a + len_b <= budget
    keep_b = tf.where(fits, len_b, tf.minimum(len_b, tf.maximum(budget - len_a, budget // 2)))
    keep_a = tf.where(fits, len_a, budget - keep_b)
    a = tf.RaggedTensor.from_tensor(tokens_a.to_tensor(), lengths=keep_a)
    b = tf.RaggedTensor.from_tensor(tokens_b.to_tensor(), lengths=keep_b)

    batch = tf.shape(len_a, out_type=tf.int64)[0]
    cls = tf.RaggedTensor.from_tensor(tf.fill([batch, 1], tf.constant(cls_id, tf.int64)))
    sep = tf.RaggedTensor.from_tensor(tf.fill([batch, 1], tf.constant(sep_id, tf.int64)))
    sep_b = tf.RaggedTensor.from_row_lengths(
        tf.fill([tf.reduce_sum(tf.cast(has_b, tf.int64))], tf.constant(sep_id, tf.int64)), tf.cast(has_b, tf.int64))
    ids = tf.concat([cls, a, sep, b, sep_b], axis=1)
    segments = tf.concat([tf.zeros_like(cls), tf.zeros_like(a), tf.zeros_like(sep), tf.ones_like(b),
                          tf.ones_like(sep_b)], axis=1)
    shape = [None, max_seq_length]
    return (tf.cast(ids.to_tensor(0, shape=shape), tf.int32),
            tf.cast(tf.ones_like(ids).to_tensor(0, shape=shape), tf.int32),
            tf.cast(segments.to_tensor(0, shape=shape), tf.int32))


class TextEncoder:
    """Raw text placeholders -> the encoder's int32 features, inside the current graph."""

    def __init__(self, trained, vocab_file, text_pair):
        info = trained.info
        self.tokenizer = GraphTokenizer(info.tokenizer, trained.tokenizer, vocab_file, info.do_lower_case)
        self.max_seq_length = info.max_seq_length
        self.special_ids = trained.special_id("[CLS]"), trained.special_id("[SEP]")
        self.text_a = tf1.placeholder(tf.string, [None], name="text_a")
        self.text_b = tf1.placeholder(tf.string, [None], name="text_b") if text_pair else None
        self.tokenized = self.encode(self.text_a, self.text_b)
        # The model reads these; predict_ids feeds them directly (the text path is then not run).
        self.features = {name: tf1.placeholder_with_default(tensor, [None, info.max_seq_length], name=name)
                         for name, tensor in zip(tasks.Task.encoder_features, self.tokenized)}

    def encode(self, text_a, text_b=None):
        """string [batch] (and text_b) -> input_ids, input_mask, segment_ids int32 [batch, max_seq_length]."""
        tokens_a = self.tokenizer.tokenize(text_a)
        if text_b is not None:
            tokens_b = self.tokenizer.tokenize(text_b)
            has_b = tf.strings.length(text_b) > 0
        else:
            tokens_b = tf.RaggedTensor.from_row_lengths(tf.zeros([0], tf.int64), tf.zeros_like(tokens_a.row_lengths()))
            has_b = tf.zeros_like(tokens_a.row_lengths(), tf.bool)
        return encode_pairs(tokens_a, tokens_b, has_b, self.max_seq_length, *self.special_ids)

    def text_inputs(self):
        inputs = {"text_a": self.text_a}
        if self.text_b is not None:
            inputs["text_b"] = self.text_b
        return inputs

    def feed(self, texts_a, texts_b=None):
        feed = {self.text_a: list(texts_a)}
        if self.text_b is not None:
            feed[self.text_b] = list(texts_b) if texts_b is not None else [""] * len(feed[self.text_a])
        return feed
