"""Tokenizers with google-research/bert's interface: tokenize, convert_tokens_to_ids, convert_ids_to_tokens.

- FullTokenizer: BasicTokenizer (cleaning, CJK split, punctuation split, lower-casing and accent
  stripping) then greedy longest-match-first WordPiece; token for token what Google's produces.
- SentencePieceTokenizer: a SentencePiece .model file behind the same interface.
- WhitespaceTokenizer: for pre-tokenized or ID corpora; words not in the vocab become [UNK].

Speed: every character's cleaning result and every whitespace-separated word's final word pieces are
cached, so repeated words (most of any corpus) cost one dictionary look-up.
"""
import os
import re
import unicodedata

from absl import logging

from bert.errors import UserInputError

UNK = "[UNK]"
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
MAX_INPUT_CHARS_PER_WORD = 200  # a longer word becomes [UNK] (Google's limit)
_CACHE_LIMIT = 1 << 20  # words remembered per tokenizer before the cache starts over


def convert_to_unicode(text):
    """str stays, bytes are decoded as UTF-8 (undecodable bytes dropped, as Google does)."""
    if isinstance(text, str):
        return text
    if isinstance(text, bytes):
        return text.decode("utf-8", "ignore")
    raise TypeError(f"expected str or bytes, got {type(text).__name__}")


def load_vocab(vocab_file):
    """vocab.txt -> {token: id}, one token a line, id = line number (a repeated token keeps the last)."""
    try:
        with open(vocab_file, "rb") as reader:
            data = reader.read()
    except FileNotFoundError:
        raise UserInputError(f"{vocab_file}: vocab file not found") from None
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    vocab = {}
    for index, raw in enumerate(lines):
        try:
            token = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise UserInputError(
                f"{vocab_file}, line {index + 1}: not UTF-8 (byte {raw[error.start]:#04x})") from None
        vocab[token.strip()] = index
    if not vocab:
        raise UserInputError(f"{vocab_file}: the vocab file is empty")
    return vocab


def _is_whitespace(char):
    return char in " \t\n\r" or unicodedata.category(char) == "Zs"


def _is_control(char):
    # Tab, newline and carriage return are categorised Cc but count as whitespace here.
    return char not in "\t\n\r" and unicodedata.category(char) in ("Cc", "Cf")


def _is_punctuation(char):
    # Every non-alphanumeric printable ASCII character counts ("$", "^", "`" are not Unicode P*).
    cp = ord(char)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(char).startswith("P")


_CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
               (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


def _is_cjk(cp):
    """CJK Unified Ideographs (and extensions, compatibility ideographs); not kana or hangul."""
    return any(low <= cp <= high for low, high in _CJK_RANGES)


class _CleanTable(dict):
    """str.translate table, filled on first sight of each code point.

    Drops NUL, U+FFFD and control/format characters, turns whitespace into a space and surrounds
    CJK ideographs with spaces so each becomes its own word.
    """

    def __missing__(self, cp):
        char = chr(cp)
        if cp == 0 or cp == 0xFFFD or _is_control(char):
            value = ""
        elif _is_whitespace(char):
            value = " "
        elif _is_cjk(cp):
            value = f" {char} "
        else:
            value = char
        self[cp] = value
        return value


_CLEAN_TABLE = _CleanTable()


def _strip_accents(text):
    return "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")


def _split_on_punctuation(word):
    """"a,b" -> ["a", ",", "b"]: each punctuation character becomes a piece of its own."""
    pieces, current = [], []
    for char in word:
        if _is_punctuation(char):
            if current:
                pieces.append("".join(current))
                current = []
            pieces.append(char)
        else:
            current.append(char)
    if current:
        pieces.append("".join(current))
    return pieces


def _basic_split(word, do_lower_case):
    """One whitespace-free word -> BasicTokenizer's pieces (lower-cased, accents stripped, punctuation split)."""
    if do_lower_case:
        word = _strip_accents(word.lower())
    return " ".join(_split_on_punctuation(word)).split()


class _WordCache(dict):
    """word -> pieces, started over when it holds _CACHE_LIMIT words."""

    def __init__(self, compute):
        super().__init__()
        self._compute = compute

    def __missing__(self, word):
        if len(self) >= _CACHE_LIMIT:
            self.clear()
        pieces = self[word] = self._compute(word)
        return pieces


def _split_text(text, word_cache):
    tokens = []
    for word in convert_to_unicode(text).translate(_CLEAN_TABLE).split():
        tokens.extend(word_cache[word])
    return tokens


class BasicTokenizer:
    """Cleaning, CJK split, punctuation split, and (when do_lower_case) lower-casing + accent stripping."""

    def __init__(self, do_lower_case=True):
        self.do_lower_case = do_lower_case
        self._cache = _WordCache(lambda word: _basic_split(word, do_lower_case))

    def tokenize(self, text):
        return _split_text(text, self._cache)


class WordpieceTokenizer:
    """Greedy longest-match-first sub-word split against a vocab; continuations carry "##"."""

    def __init__(self, vocab, unk_token=UNK, max_input_chars_per_word=MAX_INPUT_CHARS_PER_WORD):
        self.vocab = vocab
        self.unk_token = unk_token
        self.max_input_chars_per_word = max_input_chars_per_word
        # No piece longer than the longest vocab entry can match: start the search there.
        self._longest = max(len(t[2:]) if t.startswith("##") else len(t) for t in vocab)
        self._cache = _WordCache(self.split_word)

    def tokenize(self, text):
        pieces = []
        for word in convert_to_unicode(text).split():
            pieces.extend(self._cache[word])
        return pieces

    def split_word(self, word):
        """One word -> its word pieces, or [unk_token] when it cannot be split."""
        if len(word) > self.max_input_chars_per_word:
            return [self.unk_token]
        pieces, start = [], 0
        while start < len(word):
            end = min(len(word), start + self._longest)
            while end > start:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.vocab:
                    break
                end -= 1
            if end == start:  # not even one character matched
                return [self.unk_token]
            pieces.append(piece)
            start = end
        return pieces


class _VocabMixin:
    """convert_tokens_to_ids / convert_ids_to_tokens over self.vocab and self.inv_vocab."""

    def convert_tokens_to_ids(self, tokens):
        try:
            return [self.vocab[token] for token in tokens]
        except KeyError as error:
            raise KeyError(f"token {error.args[0]!r} is not in the vocab") from None

    def convert_ids_to_tokens(self, ids):
        return [self.inv_vocab[int(i)] for i in ids]


class FullTokenizer(_VocabMixin):
    """BasicTokenizer then WordPiece: google-research/bert's FullTokenizer."""

    def __init__(self, vocab_file, do_lower_case=True):
        self.vocab = load_vocab(vocab_file)
        self.inv_vocab = {index: token for token, index in self.vocab.items()}
        self.do_lower_case = do_lower_case
        self.basic_tokenizer = BasicTokenizer(do_lower_case=do_lower_case)
        self.wordpiece_tokenizer = WordpieceTokenizer(vocab=self.vocab)
        self._cache = _WordCache(self._word_pieces)

    def _word_pieces(self, word):
        pieces = []
        for part in _basic_split(word, self.do_lower_case):
            pieces.extend(self.wordpiece_tokenizer.split_word(part))
        return pieces

    def tokenize(self, text):
        return _split_text(text, self._cache)

    def tokenize_with_offsets(self, text):
        """Like tokenize(), plus each piece's [start, end) character span in `text`.

        A piece's span is exact when normalisation (lower-casing, accent stripping) keeps the length
        of its word; otherwise every piece of that word gets the whole word's span.
        """
        pieces, starts, ends = [], [], []
        for word, positions in _words_with_positions(convert_to_unicode(text)):
            for part, part_positions in _split_word_positions(word, positions, self.do_lower_case):
                word_pieces = self.wordpiece_tokenizer.split_word(part)
                lengths = [len(p[2:]) if p.startswith("##") else len(p) for p in word_pieces]
                exact = word_pieces != [UNK] and len(part_positions) == len(part) == sum(lengths)
                offset = 0
                for piece, length in zip(word_pieces, lengths):
                    if exact:
                        span = part_positions[offset:offset + length]
                        starts.append(span[0])
                        ends.append(span[-1] + 1)
                    else:
                        starts.append(part_positions[0])
                        ends.append(part_positions[-1] + 1)
                    pieces.append(piece)
                    offset += length
        return pieces, starts, ends


def _words_with_positions(text):
    """(word, [index in text of each kept character]) for the words tokenize() would see."""
    words, chars, positions = [], [], []

    def flush():
        if chars:
            words.append(("".join(chars), list(positions)))
            chars.clear()
            positions.clear()

    for index, char in enumerate(text):
        mapped = _CLEAN_TABLE[ord(char)]
        if mapped == "":
            continue  # dropped without splitting the word, as in tokenize()
        if mapped == " ":
            flush()
        elif mapped != char:  # a CJK ideograph: a word of its own
            flush()
            words.append((char, [index]))
        else:
            chars.append(char)
            positions.append(index)
    flush()
    return words


def _split_word_positions(word, positions, do_lower_case):
    """BasicTokenizer's pieces of one word with the original positions of their characters.

    When normalisation changes the word's length the positions cannot be aligned character by
    character; each piece then gets all of the word's positions (callers fall back to the word span).
    """
    parts = _basic_split(word, do_lower_case)
    normal = _strip_accents(word.lower()) if do_lower_case else word
    if len(normal) != len(word):
        return [(part, positions) for part in parts]
    result, offset = [], 0
    for part in parts:
        start = normal.index(part, offset)
        result.append((part, positions[start:start + len(part)]))
        offset = start + len(part)
    return result


class WhitespaceTokenizer(_VocabMixin):
    """Splits on whitespace only; a word not in the vocab becomes [UNK]. For pre-tokenized/ID corpora."""

    def __init__(self, vocab_file, do_lower_case=False, unk_token=UNK):
        self.vocab = load_vocab(vocab_file)
        self.inv_vocab = {index: token for token, index in self.vocab.items()}
        self.do_lower_case = do_lower_case
        if unk_token not in self.vocab:
            raise UserInputError(f"{vocab_file}: the vocab has no {unk_token} token")
        self.unk_token = unk_token

    def tokenize(self, text):
        text = convert_to_unicode(text)
        if self.do_lower_case:
            text = text.lower()
        return [word if word in self.vocab else self.unk_token for word in text.split()]


class SentencePieceTokenizer:
    """A SentencePiece model behind the FullTokenizer interface; unknown pieces map to its unk id."""

    def __init__(self, model_file, do_lower_case=False):
        import sentencepiece

        if not os.path.isfile(model_file):
            raise UserInputError(f"{model_file}: SentencePiece model file not found")
        self.processor = sentencepiece.SentencePieceProcessor()
        try:
            self.processor.Load(model_file)
        except (OSError, RuntimeError) as error:
            raise UserInputError(f"{model_file}: not a SentencePiece model ({error})") from None
        self.do_lower_case = do_lower_case
        self.vocab = {self.processor.IdToPiece(i): i for i in range(self.processor.GetPieceSize())}
        self.inv_vocab = {index: piece for piece, index in self.vocab.items()}
        missing = [t for t in SPECIAL_TOKENS if t not in self.vocab and t != UNK]
        if missing:
            logging.warning("%s has no pieces for %s; train it with user_defined_symbols to use them "
                            "as BERT's special tokens", model_file, ", ".join(missing))

    def tokenize(self, text):
        text = convert_to_unicode(text)
        if self.do_lower_case:
            text = text.lower()
        return self.processor.EncodeAsPieces(text)

    def convert_tokens_to_ids(self, tokens):
        return [self.processor.PieceToId(token) for token in tokens]

    def convert_ids_to_tokens(self, ids):
        return [self.processor.IdToPiece(int(i)) for i in ids]


# Google's released checkpoints whose names do not say "cased"/"uncased" but whose vocab is lower-case.
_LOWER_CASE_MODELS = ("chinese_L-12_H-768_A-12", "multilingual_L-12_H-768_A-12")


def validate_case_matches_checkpoint(do_lower_case, init_checkpoint):
    """Warns, and returns the warning, when do_lower_case contradicts the checkpoint's name.

    The name is the folder holding the checkpoint (e.g. uncased_L-12_H-768_A-12/bert_model.ckpt)
    or the checkpoint itself; names that say neither cased nor uncased are not checked.
    """
    if not init_checkpoint:
        return None
    path = os.path.normpath(str(init_checkpoint))
    name = os.path.basename(path) if os.path.isdir(path) else os.path.basename(os.path.dirname(path))
    lowered = name.lower()
    if re.search(r"(^|[^a-z])uncased", lowered) or name in _LOWER_CASE_MODELS:
        expected = True
    elif re.search(r"(^|[^a-z])cased", lowered):
        expected = False
    else:
        return None
    if bool(do_lower_case) == expected:
        return None
    message = (f"do_lower_case={bool(do_lower_case)} but the checkpoint {name!r} looks "
               f"{'uncased' if expected else 'cased'}: pass do_lower_case={expected} unless you know better")
    logging.warning(message)
    return message


def create_tokenizer(vocab_file=None, spm_model_file=None, do_lower_case=True, kind="wordpiece"):
    """The tokenizer scripts use: SentencePiece when spm_model_file is given, else WordPiece
    (kind="wordpiece") or whitespace (kind="whitespace") over vocab_file."""
    if spm_model_file:
        return SentencePieceTokenizer(spm_model_file, do_lower_case=do_lower_case)
    if not vocab_file:
        raise UserInputError("a vocab file (--vocab_file) or a SentencePiece model (--spm_model_file) is needed")
    if kind == "whitespace":
        return WhitespaceTokenizer(vocab_file, do_lower_case=do_lower_case)
    if kind != "wordpiece":
        raise UserInputError(f"tokenizer kind must be wordpiece or whitespace, got {kind!r}")
    return FullTokenizer(vocab_file, do_lower_case=do_lower_case)
