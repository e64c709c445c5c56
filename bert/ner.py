"""Named-entity recognition data: sentences and their entities, tag schemes, the common file formats
(read and written back), and entity-level scores identical to conlleval's / seqeval's default mode.

Words and entities:
- A Sentence is its text, its words with their character spans, and its entities as character spans
  (end exclusive). Entities of tagged formats come from the tags; word-level entities are
  (type, first word, last word), last inclusive.
- CoNLL: the text is the words joined by single spaces. Character formats (char_bio,
  sentences_tags): each row (token) is a word and the text is the tokens joined with nothing between;
  a whitespace character listed in the file is kept as a word. CLUENER: the text as it is, each
  non-whitespace character a word (whitespace stays in the text but is no word). jsonl: words are
  split at whitespace, around every punctuation mark and CJK ideograph (as BERT's BasicTokenizer
  splits), and at every entity boundary, so gold entities always cover whole words.

Formats (FORMATS): conll, cluener, char_bio, sentences_tags (MSRA's sentences.txt + tags.txt: one
sentence a line, characters and tags separated by spaces), jsonl. Every reader reports bad input as a
UserInputError "path:line: what is wrong".

No TensorFlow here, and nothing reads flags.
"""
import bisect
import dataclasses
import json
import os
import re
from typing import Any, Dict, List, Optional, Tuple

from absl import logging

from bert import files, tokenization
from bert.errors import UserInputError

SCHEMES = ("BIO", "IOB1", "BIOES", "BMES")
FORMATS = ("conll", "cluener", "char_bio", "sentences_tags", "jsonl")
# The extensions of a format's train/dev/test files in a data folder (sentences_tags comes as file pairs).
DATA_EXTENSIONS = {"conll": [".txt"], "char_bio": [".txt"], "cluener": [".json"], "jsonl": [".jsonl", ".json"]}

WordEntity = Tuple[str, int, int]  # (type, first word, last word inclusive)


@dataclasses.dataclass(frozen=True, order=True)
class Entity:
    """An entity as characters of its sentence's text: text[start:end] (end exclusive)."""
    start: int
    end: int
    type: str


@dataclasses.dataclass
class Sentence:
    """One sentence of an NER file.

    spans[i] is words[i]'s (start, exclusive end) in `text`; `source` is "path:line" of its first line;
    `tags` are the per-word tags as read (None for formats without tags); `extra` holds what the format
    carried besides, for writing predictions back: "columns" (CoNLL rows as read), "separator" (CoNLL
    column separator), other JSON keys such as "id" (cluener, jsonl).
    """
    text: str
    words: List[str]
    spans: List[Tuple[int, int]]
    entities: List[Entity]
    source: str
    tags: Optional[List[str]] = None
    extra: Dict[str, Any] = dataclasses.field(default_factory=dict)


# --- Tag schemes ----------------------------------------------------------------------------------
# BIO (IOB2): B- begins every entity, I- continues it. IOB1: I- begins and continues; B- only begins
# an entity right after one of the same type. BIOES: B- I- E- for entities of two words or more, S- for
# one word. BMES: as BIOES with M- for inside.

_PREFIXES = {"BIO": "BI", "IOB1": "BI", "BIOES": "BIES", "BMES": "BMES"}
_parsed_tags: Dict[Tuple[str, str], Tuple[str, str]] = {}


def check_scheme(scheme):
    """Raises a UserInputError unless `scheme` is one of SCHEMES."""
    if scheme not in SCHEMES:
        raise UserInputError(f"unknown tag scheme {scheme!r}; the schemes are {', '.join(SCHEMES)}")


def parse_tag(tag, scheme) -> Tuple[str, str]:
    """(prefix, type) of a tag: ("O", "") for "O", ("B", "PER") for "B-PER". A tag that `scheme`
    does not have (e.g. "X-PER", "E-LOC" under BIO, "B-" without a type) is a UserInputError naming it."""
    key = (tag, scheme)
    parsed = _parsed_tags.get(key)
    if parsed is not None:
        return parsed
    check_scheme(scheme)
    prefixes = _PREFIXES[scheme]
    if tag == "O":
        parsed = ("O", "")
    elif len(tag) > 2 and tag[1] == "-" and tag[0] in prefixes:
        parsed = (tag[0], tag[2:])
    elif len(tag) >= 2 and tag[1] == "-" and tag[0] in prefixes:
        raise UserInputError(f"tag {tag!r} has no entity type after the '-'")
    else:
        allowed = ", ".join(["O"] + [f"{prefix}-<type>" for prefix in prefixes])
        raise UserInputError(f"tag {tag!r} does not fit the {scheme} scheme (its tags are {allowed})")
    if len(_parsed_tags) < 100_000:
        _parsed_tags[key] = parsed
    return parsed


def _chunk(tags, scheme) -> Tuple[List[WordEntity], int]:
    """The entities of `tags` and the number of them that began without the scheme's start mark."""
    check_scheme(scheme)
    inside = "M" if scheme == "BMES" else "I"
    entities, implicit = [], 0
    open_type, open_start = None, 0  # the entity still open after the previous word
    for index, tag in enumerate(tags):
        prefix, kind = parse_tag(tag, scheme)
        if not (open_type == kind and prefix in (inside, "E")):
            if open_type is not None:
                entities.append((open_type, open_start, index - 1))
                open_type = None
            if prefix == "O":
                continue
            if prefix in (inside, "E") and scheme != "IOB1":
                implicit += 1
            open_type, open_start = kind, index
        if prefix in ("E", "S"):
            entities.append((kind, open_start, index))
            open_type = None
    if open_type is not None:
        entities.append((open_type, open_start, len(tags) - 1))
    return entities, implicit


def tags_to_entities(tags, scheme="BIO") -> List[WordEntity]:
    """The entities (type, first word, last word inclusive) of one sentence's tags, in order.

    Chunking is conlleval's (seqeval's default mode), lenient: an entity ends at O, at B- (or S-), at a
    tag of another type, and after E- or S-; an inside tag (I-, M-) or E- that cannot continue an open
    entity of its type begins a new one (count_implicit_starts counts those). BIO and IOB1 chunk alike.
    """
    return _chunk(tags, scheme)[0]


def count_implicit_starts(tags, scheme="BIO") -> int:
    """How many entities of `tags` begin with a tag that does not mark a start in `scheme` (I- after O
    or after another type in BIO; I-/M-/E- not continuing an entity in BIOES/BMES; always 0 in IOB1,
    where I- is the ordinary start)."""
    return _chunk(tags, scheme)[1]


def _check_word_entities(n_words, word_entities) -> List[WordEntity]:
    ordered = sorted(word_entities, key=lambda entity: (entity[1], entity[2]))
    previous = None
    for entity in ordered:
        kind, first, last = entity
        if not isinstance(kind, str) or not kind or any(char.isspace() for char in kind):
            raise UserInputError(f"entity {entity}: the type must be a non-empty string without spaces")
        if not 0 <= first <= last < n_words:
            raise UserInputError(f"entity {entity} is outside the sentence's {n_words} words")
        if previous is not None and first <= previous[2]:
            raise UserInputError(f"entities {previous} and {entity} overlap; tags cannot express that")
        previous = entity
    return ordered


def entities_to_tags(n_words, word_entities, scheme="BIO") -> List[str]:
    """The tags of a sentence of `n_words` words with `word_entities` ((type, first, last inclusive),
    any order) in `scheme`; overlapping entities are a UserInputError (see drop_overlapping)."""
    check_scheme(scheme)
    tags = ["O"] * n_words
    previous = None
    for kind, first, last in _check_word_entities(n_words, word_entities):
        if scheme == "IOB1":
            follows_same = previous is not None and previous[2] == first - 1 and previous[0] == kind
            tags[first:last + 1] = [f"I-{kind}"] * (last - first + 1)
            if follows_same:
                tags[first] = f"B-{kind}"
        elif scheme == "BIO" or first < last:
            inside = "M" if scheme == "BMES" else "I"
            tags[first:last + 1] = [f"B-{kind}"] + [f"{inside}-{kind}"] * (last - first)
            if scheme in ("BIOES", "BMES"):
                tags[last] = f"E-{kind}"
        else:
            tags[first] = f"S-{kind}"
        previous = (kind, first, last)
    return tags


def convert_tags(tags, from_scheme, to_scheme) -> List[str]:
    """`tags` rewritten from one scheme to another (through their entities)."""
    check_scheme(to_scheme)
    return entities_to_tags(len(tags), tags_to_entities(tags, from_scheme), to_scheme)


def drop_overlapping(word_entities) -> Tuple[List[WordEntity], List[WordEntity]]:
    """(kept, dropped): the longest entities are kept first (the earlier on a tie); an entity that
    overlaps one already kept is dropped. Kept entities are in sentence order."""
    ranked = sorted(word_entities, key=lambda entity: (entity[1] - entity[2], entity[1], entity[2], entity[0]))
    kept, dropped, taken = [], [], set()
    for entity in ranked:
        words = range(entity[1], entity[2] + 1)
        if any(word in taken for word in words):
            dropped.append(entity)
        else:
            kept.append(entity)
            taken.update(words)
    return sorted(kept, key=lambda entity: entity[1]), dropped


# --- Between characters and words -------------------------------------------------------------------

def word_entities(sentence, entities=None) -> List[WordEntity]:
    """`entities` (default: the sentence's own) as (type, first word, last word inclusive); an entity
    that covers no word, or cuts one, is a UserInputError naming the sentence's source."""
    entities = sentence.entities if entities is None else entities
    starts = [start for start, _ in sentence.spans]
    ends = [end for _, end in sentence.spans]
    result = []
    for entity in entities:
        first = bisect.bisect_right(ends, entity.start)  # the first word ending after the entity's start
        last = bisect.bisect_left(starts, entity.end) - 1  # the last word starting before its end
        quoted = repr(sentence.text[entity.start:entity.end])
        if first > last:
            raise UserInputError(f"{sentence.source}: entity {quoted} ({entity.type}, characters "
                                 f"{entity.start}-{entity.end}) covers no word")
        if starts[first] < entity.start or ends[last] > entity.end:
            raise UserInputError(f"{sentence.source}: entity {quoted} ({entity.type}, characters "
                                 f"{entity.start}-{entity.end}) begins or ends inside a word")
        result.append((entity.type, first, last))
    return result


def char_entities(sentence, word_entity_list) -> List[Entity]:
    """Word entities (type, first, last inclusive) of `sentence` as character-span Entities."""
    return [Entity(sentence.spans[first][0], sentence.spans[last][1], kind)
            for kind, first, last in word_entity_list]


def sentence_tags(sentence, scheme="BIO") -> List[str]:
    """Tags for the sentence's words from its entities. Overlapping (nested) entities cannot be tagged:
    the longest is kept and the others are dropped with a warning naming the source."""
    kept, dropped = drop_overlapping(word_entities(sentence))
    for kind, first, last in dropped:
        logging.warning("%s: entity %r (%s) overlaps a longer one and is left out of the tags", sentence.source,
                        sentence.text[sentence.spans[first][0]:sentence.spans[last][1]], kind)
    return entities_to_tags(len(sentence.words), kept, scheme)


def tags_to_char_entities(sentence, tags, scheme="BIO") -> List[Entity]:
    """The character-span entities that per-word `tags` (e.g. predicted) give `sentence`."""
    if len(tags) != len(sentence.words):
        raise ValueError(f"{sentence.source}: {len(tags)} tags for {len(sentence.words)} words")
    return char_entities(sentence, tags_to_entities(tags, scheme))


def _joined(words, separator) -> Tuple[str, List[Tuple[int, int]]]:
    spans, offset = [], 0
    for word in words:
        spans.append((offset, offset + len(word)))
        offset += len(word) + len(separator)
    return separator.join(words), spans


def _tagged_sentence(path, rows, words, tags, separator, scheme, extra=None, tags_path=None) -> Sentence:
    """rows: (line number, ...) per word; a bad tag is reported at its line of `tags_path` (default `path`)."""
    for (line, *_), tag in zip(rows, tags):
        try:
            parse_tag(tag, scheme)
        except UserInputError as error:
            raise UserInputError(f"{tags_path or path}:{line}: {error}") from None
    text, spans = _joined(words, separator)
    sentence = Sentence(text, words, spans, [], f"{path}:{rows[0][0]}", tags, extra or {})
    sentence.entities = char_entities(sentence, tags_to_entities(tags, scheme))
    return sentence


# --- Reading ----------------------------------------------------------------------------------------

def _numbered_lines(text):
    """files.numbered_lines without the empty piece after a final newline."""
    return files.numbered_lines(text[:-1] if text.endswith("\n") else text)


def _blocks(text):
    """Lists of (line number, line) between blank lines; -DOCSTART- lines are dropped and end a block."""
    block = []
    for number, line in _numbered_lines(text):
        if not line.strip() or line.split()[0] == "-DOCSTART-":
            if block:
                yield block
            block = []
        else:
            block.append((number, line))
    if block:
        yield block


def read_conll(path, tag_column=-1, scheme="BIO") -> List[Sentence]:
    """CoNLL files: one word a line, whitespace-separated columns (the word first, the tag in column
    `tag_column`, negative counting from the end), a blank line between sentences, -DOCSTART- lines
    dropped. Every row of a sentence must have as many columns as its first."""
    check_scheme(scheme)
    sentences = []
    for block in _blocks(files.read_text(path)):
        first_line, first_row = block[0]
        width = len(first_row.split())
        column = tag_column if tag_column >= 0 else width + tag_column
        if width < 2:
            raise UserInputError(f"{path}:{first_line}: expected a word and a tag separated by whitespace, "
                                 "found one column")
        if not 0 < column < width:
            what = "is the word column" if column == 0 else f"does not exist in a row of {width} columns"
            raise UserInputError(f"{path}:{first_line}: tag column {tag_column} {what}")
        rows = []
        for line, row in block:
            fields = row.split()
            if len(fields) != width:
                raise UserInputError(f"{path}:{line}: {len(fields)} columns, but the sentence's first row "
                                     f"(line {first_line}) has {width}")
            rows.append((line, fields))
        extra = {"columns": [fields for _, fields in rows], "separator": "\t" if "\t" in first_row else " "}
        sentences.append(_tagged_sentence(path, rows, [fields[0] for _, fields in rows],
                                          [fields[column] for _, fields in rows], " ", scheme, extra))
    return sentences


_SPACED_ROW = re.compile(r"(\S+|\s) +(\S+)[ \t]*")  # a token (or one whitespace character), spaces, a tag
_POSITION_SUFFIX = re.compile(r"(.+?)([0-9]+)")  # Weibo NER: a character, then its position in its word


def _char_row(path, line, row):
    if "\t" in row:
        fields = row.rstrip(" \t").split("\t") if row.strip(" \t") else []
        if len(fields) != 2 or not fields[0] or not fields[1].strip():
            raise UserInputError(f"{path}:{line}: expected a character, a tab and a tag, found "
                                 f"{len(fields)} tab-separated fields")
        return fields[0], fields[1].strip()
    match = _SPACED_ROW.fullmatch(row)
    if not match:
        raise UserInputError(f"{path}:{line}: expected a character and a tag separated by a tab or spaces, "
                             f"found {row.strip()!r}")
    return match.group(1), match.group(2)


def read_char_bio(path, scheme="BIO", position_suffix=None) -> List[Sentence]:
    """Character-per-line files (MSRA, People's Daily, Weibo): "char<TAB>tag" or "char tag", a blank
    line between sentences. Each row is a word (a whitespace character given in a tab-separated row is
    kept as one); the text is the tokens joined with nothing between.

    position_suffix: Weibo NER writes each character followed by its position in its segmented word
    ("叔1"); True removes that trailing number, False keeps tokens as they are, None (default) removes
    it when every token of the file looks like that (two or more characters ending in digits).
    """
    check_scheme(scheme)
    blocks = [[(line, *_char_row(path, line, row)) for line, row in block]
              for block in _blocks(files.read_text(path))]
    if position_suffix is None:
        position_suffix = bool(blocks) and all(len(token) >= 2 and _POSITION_SUFFIX.fullmatch(token)
                                               for block in blocks for _, token, _ in block)
        if position_suffix:
            logging.info("%s: every character carries a word-position number (Weibo NER style); removed", path)
    sentences = []
    for block in blocks:
        words = []
        for line, token, _ in block:
            if position_suffix:
                match = _POSITION_SUFFIX.fullmatch(token)
                if not match:
                    raise UserInputError(f"{path}:{line}: {token!r} is not a character followed by its "
                                         "word-position number")
                token = match.group(1)
            words.append(token)
        sentences.append(_tagged_sentence(path, block, words, [tag for _, _, tag in block], "", scheme))
    return sentences


def _split_fields(line):
    return [field for field in re.split(r"[ \t]+", line.strip(" \t")) if field]


def sentences_tags_paths(path, tags_path=None) -> Tuple[str, str]:
    """(sentences file, tags file) of an MSRA-style pair given the folder holding sentences.txt and
    tags.txt, or the sentences file (tags file: `tags_path`, else tags.txt beside it)."""
    if os.path.isdir(path):
        return os.path.join(path, "sentences.txt"), tags_path or os.path.join(path, "tags.txt")
    return path, tags_path or os.path.join(os.path.dirname(path), "tags.txt")


def read_sentences_tags(path, tags_path=None, scheme="BIO") -> List[Sentence]:
    """MSRA's pair of files: sentences.txt with one sentence a line, its characters separated by
    spaces, and tags.txt with the same number of space-separated tags on the same line. `path`: the
    folder holding both, or sentences.txt (see sentences_tags_paths). Blank lines are skipped."""
    check_scheme(scheme)
    sentences_path, tags_path = sentences_tags_paths(path, tags_path)
    sentence_lines = list(_numbered_lines(files.read_text(sentences_path)))
    tag_lines = list(_numbered_lines(files.read_text(tags_path)))
    if len(sentence_lines) != len(tag_lines):
        raise UserInputError(f"{tags_path}: {len(tag_lines)} lines, but {sentences_path} has {len(sentence_lines)}")
    sentences = []
    for (line, row), (_, tag_row) in zip(sentence_lines, tag_lines):
        words, tags = _split_fields(row), _split_fields(tag_row)
        if len(words) != len(tags):
            raise UserInputError(f"{tags_path}:{line}: {len(tags)} tags for the {len(words)} characters of "
                                 f"{sentences_path}:{line}")
        if words:
            sentences.append(_tagged_sentence(sentences_path, [(line,)] * len(words), words, tags, "", scheme,
                                              tags_path=tags_path))
    return sentences


def _line_of(text, index, cache):
    """1-based line of text[index]; `cache` [position, line] makes forward calls cheap."""
    if index < cache[0]:
        cache[:] = [0, 1]
    cache[1] += text.count("\n", cache[0], index)
    cache[0] = index
    return cache[1]


def _json_values(path, text) -> List[Tuple[int, Any]]:
    """(first line, value) of every value in `text`: concatenated JSON values (one a line or spread
    over several lines), or the elements of one JSON array."""
    decoder, values, cache = json.JSONDecoder(), [], [0, 1]
    size = len(text)

    def skip(index):
        while index < size and text[index].isspace():
            index += 1
        return index

    def decode(index):
        try:
            return decoder.raw_decode(text, index)
        except json.JSONDecodeError as error:
            raise UserInputError(f"{path}:{error.lineno}: invalid JSON: {error.msg} (column {error.colno})") from None

    index = skip(0)
    in_array = index < size and text[index] == "["
    if in_array:
        index = skip(index + 1)
        if index < size and text[index] == "]":
            index = skip(index + 1)
            in_array = False
    while index < size:
        line = _line_of(text, index, cache)
        value, index = decode(index)
        values.append((line, value))
        index = skip(index)
        if in_array:
            if index < size and text[index] == ",":
                index = skip(index + 1)
            elif index >= size:
                break
            elif text[index] == "]":
                index = skip(index + 1)
                in_array = False
                if index < size:
                    raise UserInputError(f"{path}:{_line_of(text, index, cache)}: text after the closing ']'")
            else:
                raise UserInputError(f"{path}:{_line_of(text, index, cache)}: expected ',' or "
                                     "']' after an array element")
    if in_array:
        raise UserInputError(f"{path}: the JSON array is never closed with ']'")
    return values


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _text_of(path, line, value, what):
    if not isinstance(value, dict):
        raise UserInputError(f"{path}:{line}: expected a JSON object ({what}), found {type(value).__name__}")
    text = value.get("text")
    if not isinstance(text, str):
        raise UserInputError(f"{path}:{line}: the object has no \"text\" string")
    return text


def read_cluener(path) -> List[Sentence]:
    """CLUENER2020 JSON: objects {"text", "label": {type: {entity text: [[start, end], ...]}}} with
    INCLUSIVE ends, one a line, pretty-printed one after another, or in a JSON array. "label" may be
    absent (test files). Each non-whitespace character is a word; other keys (e.g. "id") go to extra."""
    sentences = []
    for line, value in _json_values(path, files.read_text(path)):
        text = _text_of(path, line, value, "with \"text\" and \"label\"")
        label = value.get("label") or {}
        if not isinstance(label, dict):
            raise UserInputError(f"{path}:{line}: \"label\" must be an object {{type: {{entity: [[start, end]]}}}}")
        entities = []
        for kind, mentions in label.items():
            if not kind or any(char.isspace() for char in kind):
                raise UserInputError(f"{path}:{line}: entity type {kind!r} is empty or has whitespace")
            if not isinstance(mentions, dict):
                raise UserInputError(f"{path}:{line}: label {kind!r} must map entity texts to [[start, end], ...]")
            for mention, places in mentions.items():
                if not isinstance(places, list):
                    raise UserInputError(f"{path}:{line}: {kind} {mention!r}: expected a list of [start, end]")
                for place in places:
                    if not (isinstance(place, list) and len(place) == 2 and all(map(_is_int, place))):
                        raise UserInputError(f"{path}:{line}: {kind} {mention!r}: {place!r} is not [start, end]")
                    start, end = place
                    if not 0 <= start <= end < len(text):
                        raise UserInputError(f"{path}:{line}: {kind} {mention!r}: [{start}, {end}] is outside the "
                                             f"text (length {len(text)}; ends are inclusive)")
                    if text[start:end + 1] != mention:
                        raise UserInputError(f"{path}:{line}: {kind} {mention!r}: the text at [{start}, {end}] is "
                                             f"{text[start:end + 1]!r} (ends are inclusive)")
                    entities.append(Entity(start, end + 1, kind))
        spans = [(index, index + 1) for index, char in enumerate(text) if not char.isspace()]
        extra = {key: item for key, item in value.items() if key not in ("text", "label")}
        sentences.append(Sentence(text, [text[start] for start, _ in spans], spans, sorted(entities),
                                  f"{path}:{line}", None, extra))
    return sentences


def split_words(text, cuts=()) -> List[Tuple[int, int]]:
    """Word spans of `text`: split at whitespace, around each punctuation mark and CJK ideograph (as
    BERT's BasicTokenizer does), and at every character offset in `cuts`."""
    cuts = set(cuts)
    spans, start = [], None
    for index, char in enumerate(text):
        if start is not None and index in cuts:
            spans.append((start, index))
            start = None
        if tokenization._is_whitespace(char):  # pylint: disable=protected-access
            if start is not None:
                spans.append((start, index))
            start = None
        elif tokenization._is_punctuation(char) or tokenization._is_cjk(ord(char)):  # pylint: disable=protected-access
            if start is not None:
                spans.append((start, index))
            spans.append((index, index + 1))
            start = None
        elif start is None:
            start = index
    if start is not None:
        spans.append((start, len(text)))
    return spans


def read_jsonl(path) -> List[Sentence]:
    """JSON Lines: {"text": ..., "entities": [{"start", "end", "type"}, ...]} a line, ends exclusive
    ("entities" may be absent; an entity's optional "text" must equal text[start:end]). Words: see
    split_words, cut at every entity boundary. Other keys (e.g. "id") go to extra."""
    sentences = []
    for line, row in _numbered_lines(files.read_text(path)):
        if not row.strip():
            continue
        try:
            value = json.loads(row)
        except json.JSONDecodeError as error:
            raise UserInputError(f"{path}:{line}: invalid JSON: {error.msg} (column {error.colno}); "
                                 "expected one object a line") from None
        text = _text_of(path, line, value, "with \"text\" and \"entities\"")
        items = value.get("entities") or []
        if not isinstance(items, list):
            raise UserInputError(f"{path}:{line}: \"entities\" must be a list of {{\"start\", \"end\", \"type\"}}")
        entities = []
        for item in items:
            if not (isinstance(item, dict) and _is_int(item.get("start")) and _is_int(item.get("end"))
                    and isinstance(item.get("type"), str) and item["type"].strip()):
                raise UserInputError(f"{path}:{line}: entity {item!r} needs integer \"start\", \"end\" and a "
                                     "\"type\" string")
            start, end, kind = item["start"], item["end"], item["type"]
            if any(char.isspace() for char in kind):
                raise UserInputError(f"{path}:{line}: entity type {kind!r} has whitespace")
            if not 0 <= start < end <= len(text):
                raise UserInputError(f"{path}:{line}: entity {kind} [{start}, {end}) is outside the text "
                                     f"(length {len(text)}) or empty; ends are exclusive")
            if "text" in item and item["text"] != text[start:end]:
                raise UserInputError(f"{path}:{line}: entity {kind} [{start}, {end}) says {item['text']!r} but "
                                     f"the text there is {text[start:end]!r} (ends are exclusive)")
            entities.append(Entity(start, end, kind))
        spans = split_words(text, [offset for entity in entities for offset in (entity.start, entity.end)])
        extra = {key: item for key, item in value.items() if key not in ("text", "entities")}
        sentence = Sentence(text, [text[start:end] for start, end in spans], spans, sorted(entities),
                            f"{path}:{line}", None, extra)
        word_entities(sentence)  # an entity of only whitespace covers no word
        sentences.append(sentence)
    return sentences


def guess_format(path) -> str:
    """The format of an NER file (one of FORMATS) from its first lines: JSON with "entities" ->
    jsonl, other JSON -> cluener; rows of two columns whose tokens are single characters (at least 90%)
    or Weibo's character+position tokens -> char_bio; other rows -> conll. A folder holding
    sentences.txt and tags.txt, or a sentences.txt with tags.txt beside it -> sentences_tags."""
    sentences_path, tags_path = sentences_tags_paths(path)
    if os.path.isdir(path) or os.path.basename(path) == "sentences.txt":
        if os.path.isfile(sentences_path) and os.path.isfile(tags_path):
            return "sentences_tags"
        if os.path.isdir(path):
            raise UserInputError(f"{path}: a folder, and not one holding sentences.txt and tags.txt")
    try:
        with open(path, "rb") as reader:
            head = reader.read(1 << 16).decode("utf-8", "ignore").lstrip("\ufeff")
    except OSError:
        files.read_text(path)  # raises the reader's own error
        raise
    stripped = head.lstrip()
    if stripped[:1] in ("{", "["):
        body = stripped[1:].lstrip() if stripped[0] == "[" else stripped
        decoder, objects, position = json.JSONDecoder(), [], 0
        while position < len(body) and len(objects) < 200:  # the objects in the first 64 KiB
            try:
                value, position = decoder.raw_decode(body, position)
            except json.JSONDecodeError:
                break
            objects.append(value)
            position = len(body) - len(body[position:].lstrip(" \t\r\n,"))
        if any(isinstance(o, dict) and "label" in o for o in objects):
            return "cluener"
        # "entities", or texts alone (a file to tag): JSONL, whose words are split properly
        return "jsonl"
    rows = []
    for block in _blocks(head):
        rows.extend(row for _, row in block)
        if len(rows) >= 200:
            break
    rows = rows[:-1] if len(head) == 1 << 16 and len(rows) > 1 else rows  # the last may be cut short
    tokens = []
    for row in rows:
        try:
            tokens.append(_char_row(path, 0, row)[0])
        except UserInputError:
            return "conll"
    if tokens and (sum(len(token) == 1 for token in tokens) >= 0.9 * len(tokens)
                   or all(len(token) >= 2 and _POSITION_SUFFIX.fullmatch(token) for token in tokens)):
        return "char_bio"
    return "conll"


def read_ner_file(path, data_format=None, tag_column=-1, scheme="BIO") -> Tuple[List[Sentence], str]:
    """(sentences, format) of an NER file in `data_format` (one of FORMATS; None: guess_format, logged).
    tag_column applies to conll, scheme to the tagged formats. A file without sentences is an error."""
    if data_format is None:
        data_format = guess_format(path)
        logging.info("%s: read as %s (guessed from its content)", path, data_format)
    if data_format == "conll":
        sentences = read_conll(path, tag_column, scheme)
    elif data_format == "char_bio":
        sentences = read_char_bio(path, scheme)
    elif data_format == "sentences_tags":
        sentences = read_sentences_tags(path, scheme=scheme)
    elif data_format == "cluener":
        sentences = read_cluener(path)
    elif data_format == "jsonl":
        sentences = read_jsonl(path)
    else:
        raise UserInputError(f"unknown NER data format {data_format!r}; the formats are {', '.join(FORMATS)}")
    if not sentences:
        raise UserInputError(f"{path}: no sentences found (read as {data_format})")
    return sentences, data_format


# --- Writing ----------------------------------------------------------------------------------------

def _check_lengths(sentences, predictions, what):
    if len(sentences) != len(predictions):
        raise ValueError(f"{len(predictions)} {what} lists for {len(sentences)} sentences")


def _jsonl_line(sentence, entities):
    record = dict(sentence.extra)
    record["text"] = sentence.text
    record["entities"] = [{"start": entity.start, "end": entity.end, "type": entity.type,
                           "text": sentence.text[entity.start:entity.end]} for entity in sorted(entities)]
    return json.dumps(record, ensure_ascii=False) + "\n"


def _write_lines(path, lines):
    with files.replacing(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as writer:
        writer.writelines(lines)


def write_jsonl(path, sentences, predicted_entities):
    """Writes one line per sentence, {"text", "entities": [{"start", "end", "type", "text"}]} (ends
    exclusive, plus the sentence's extra keys such as "id"), atomically. predicted_entities: a list of
    Entity lists, one per sentence."""
    _check_lengths(sentences, predicted_entities, "entity")
    _write_lines(path, (_jsonl_line(sentence, entities) for sentence, entities in zip(sentences, predicted_entities)))


def write_like_input(path, sentences, predicted_word_tags, data_format, scheme="BIO"):
    """Writes predictions (per sentence, one tag per word in `scheme`) in the input's own format,
    atomically: conll -> the input columns plus the predicted tag (a blank line between sentences,
    -DOCSTART- lines not repeated); char_bio -> char<TAB>tag (Weibo's position numbers not repeated);
    sentences_tags -> the tags file (one sentence a line, tags separated by spaces); cluener -> one
    object a line with "label" ends inclusive; jsonl -> as write_jsonl."""
    _check_lengths(sentences, predicted_word_tags, "tag")
    for sentence, tags in zip(sentences, predicted_word_tags):
        if len(tags) != len(sentence.words):
            raise ValueError(f"{sentence.source}: {len(tags)} predicted tags for {len(sentence.words)} words")
        try:
            tags_to_entities(tags, scheme)  # every tag fits the scheme
        except UserInputError as error:
            raise UserInputError(f"predicted tags for {sentence.source}: {error}") from None
    lines = []
    for sentence, tags in zip(sentences, predicted_word_tags):
        if data_format == "conll":
            columns = sentence.extra.get("columns")
            if not columns:  # a sentence read from another format: its words, and its tags if it had some
                columns = [[word] for word in sentence.words]
                if sentence.tags:
                    columns = [row + [tag] for row, tag in zip(columns, sentence.tags)]
            separator = sentence.extra.get("separator", " ")
            lines.extend(separator.join(list(row) + [tag]) + "\n" for row, tag in zip(columns, tags))
            lines.append("\n")
        elif data_format == "char_bio":
            lines.extend(f"{word}\t{tag}\n" for word, tag in zip(sentence.words, tags))
            lines.append("\n")
        elif data_format == "sentences_tags":
            lines.append(" ".join(tags) + "\n")
        elif data_format == "cluener":
            label: Dict[str, Dict[str, List[List[int]]]] = {}
            for entity in tags_to_char_entities(sentence, tags, scheme):
                mentions = label.setdefault(entity.type, {})
                mentions.setdefault(sentence.text[entity.start:entity.end], []).append([entity.start, entity.end - 1])
            record = dict(sentence.extra, text=sentence.text, label=label)
            lines.append(json.dumps(record, ensure_ascii=False) + "\n")
        elif data_format == "jsonl":
            lines.append(_jsonl_line(sentence, tags_to_char_entities(sentence, tags, scheme)))
        else:
            raise UserInputError(f"unknown NER data format {data_format!r}; the formats are {', '.join(FORMATS)}")
    _write_lines(path, lines)


# --- Scores -----------------------------------------------------------------------------------------
# Exact-match entity scores as conlleval and seqeval (default mode) count them: an entity is correct
# when its type, first and last word (or characters) all match. Per type and micro-averaged; a ratio
# whose denominator is 0 is 0 (seqeval also warns).

def _ratios(correct, predicted, support) -> Dict[str, float]:
    precision = correct / predicted if predicted else 0.0
    recall = correct / support if support else 0.0
    f1 = 2.0 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "support": support}


def _scores(gold, predicted) -> Dict[str, Any]:
    """gold, predicted: {type: set of entity keys}."""
    per_type, totals = {}, [0, 0, 0]
    for kind in sorted(set(gold) | set(predicted)):
        gold_set, predicted_set = gold.get(kind, set()), predicted.get(kind, set())
        counts = (len(gold_set & predicted_set), len(predicted_set), len(gold_set))
        per_type[kind] = _ratios(*counts)
        totals = [total + count for total, count in zip(totals, counts)]
    result = _ratios(*totals)
    result["per_type"] = per_type
    return result


def entity_scores(gold_tags, pred_tags, scheme="BIO") -> Dict[str, Any]:
    """Entity precision, recall, f1 (micro, 0..1), support (gold entities) and per_type {type:
    {precision, recall, f1, support}} of predicted against gold tags (lists of per-sentence tag lists),
    equal to seqeval's classification_report(..., output_dict=True) in default mode."""
    if len(gold_tags) != len(pred_tags):
        raise ValueError(f"{len(gold_tags)} gold sentences but {len(pred_tags)} predicted")
    gold, predicted = {}, {}
    for index, (gold_sentence, pred_sentence) in enumerate(zip(gold_tags, pred_tags)):
        if len(gold_sentence) != len(pred_sentence):
            raise ValueError(f"sentence {index}: {len(gold_sentence)} gold tags but {len(pred_sentence)} predicted")
        for found, sentence in ((gold, gold_sentence), (predicted, pred_sentence)):
            for kind, first, last in tags_to_entities(sentence, scheme):
                found.setdefault(kind, set()).add((index, first, last))
    return _scores(gold, predicted)


def span_scores(gold_entity_lists, pred_entity_lists) -> Dict[str, Any]:
    """entity_scores' numbers for character-span Entities (lists per sentence) of formats without
    tags; an entity listed twice in one sentence counts once."""
    if len(gold_entity_lists) != len(pred_entity_lists):
        raise ValueError(f"{len(gold_entity_lists)} gold sentences but {len(pred_entity_lists)} predicted")
    gold, predicted = {}, {}
    for index, (gold_entities, pred_entities) in enumerate(zip(gold_entity_lists, pred_entity_lists)):
        for found, entities in ((gold, gold_entities), (predicted, pred_entities)):
            for entity in entities:
                found.setdefault(entity.type, set()).add((index, entity.start, entity.end))
    return _scores(gold, predicted)
