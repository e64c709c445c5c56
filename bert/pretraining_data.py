"""Masked-LM (and next-sentence) training instances from raw text, as google-research/bert makes them.

Input: documents as lists of sentences. Each sentence is tokenized into word pieces with a word id per
piece, so masking can treat a whole word (or a whole listed phrase) as one unit:
  - "wordpiece": a piece starting with "##" continues the previous word (English whole-word masking);
  - "spaces": the sentence is already segmented, words separated by spaces (e.g. Chinese);
  - "jieba": Chinese segmented with jieba (an optional dependency: pip install jieba);
  - "none": every piece is its own unit (the original BERT masking).

Instances: with next-sentence prediction, Google's recipe (segments A and B fill a target length,
B is the true continuation or, half the time, text from another document); with `nsp=False`, each
document's pieces are cut into consecutive max-length segments and a final segment shorter than half
the length is dropped. Everything is reproducible from `seed`; work is split into fixed chunks of
documents, each with its own seed, so the result does not depend on how many processes run it.
(Google's --do_whole_word_mask=true is "wordpiece" here, its default false is "none".)

Files: instances go round-robin into TFRecord shards in one folder, with pretrain_meta.json beside them
listing each shard's size, record count and sha256, written so that a folder's shards and meta file
always belong to one run (write_shards); find_pretraining_data reads a folder or files back, checked.
"""
import contextlib
import dataclasses
import glob
import hashlib
import json
import os
import random
import re
import time
from typing import List, Optional

from absl import logging

from bert import files
from bert.errors import UserInputError

WORD_BOUNDARIES = ("wordpiece", "spaces", "jieba", "none")
CHUNK_DOCUMENTS = 64  # documents per unit of work (and per random-number stream)


@dataclasses.dataclass
class Sentence:
    tokens: List[str]
    word_ids: List[int]  # pieces of one word share an id; ids are unique within the sentence


@dataclasses.dataclass
class MaskingConfig:
    max_seq_length: int = 128
    max_predictions_per_seq: int = 20
    masked_lm_prob: float = 0.15
    short_seq_prob: float = 0.1
    dupe_factor: int = 10
    nsp: bool = True
    word_boundaries: str = "wordpiece"
    seed: int = 12345


@dataclasses.dataclass
class Instance:
    tokens: List[str]
    segment_ids: List[int]
    is_random_next: bool
    masked_lm_positions: List[int]
    masked_lm_labels: List[str]


def read_documents(paths):
    """Documents from text files: one sentence a line, a blank line between documents."""
    documents = []
    for path in paths:
        try:
            with open(path, encoding="utf-8") as reader:
                lines = reader.read().split("\n")
        except FileNotFoundError:
            raise UserInputError(f"{path}: no such file") from None
        except UnicodeDecodeError as error:
            raise UserInputError(f"{path}: not UTF-8 (byte {error.start})") from None
        current = []
        for line in lines:
            line = line.strip()
            if line:
                current.append(line)
            elif current:
                documents.append(current)
                current = []
        if current:
            documents.append(current)
    return documents


class SentenceTokenizer:
    """Sentence -> Sentence(word pieces, word ids), by the chosen word boundaries."""

    def __init__(self, tokenizer, word_boundaries="wordpiece"):
        if word_boundaries not in WORD_BOUNDARIES:
            raise UserInputError(f"word boundaries must be one of {WORD_BOUNDARIES}, got {word_boundaries!r}")
        self.tokenizer = tokenizer
        self.word_boundaries = word_boundaries
        self._segment = None
        if word_boundaries == "jieba":
            try:
                import jieba
            except ImportError:
                raise UserInputError("--word_boundaries=jieba needs jieba: pip install jieba") from None
            jieba.setLogLevel(60)
            self._segment = lambda text: [w for w in jieba.cut(text) if w.strip()]

    def __call__(self, text):
        if self.word_boundaries in ("spaces", "jieba"):
            words = text.split() if self.word_boundaries == "spaces" else self._segment(text)
            tokens, word_ids = [], []
            for index, word in enumerate(words):
                pieces = self.tokenizer.tokenize(word)
                tokens.extend(pieces)
                word_ids.extend([index] * len(pieces))
            return Sentence(tokens, word_ids)
        tokens = self.tokenizer.tokenize(text)
        if self.word_boundaries == "none":
            return Sentence(tokens, list(range(len(tokens))))
        word_ids, word = [], -1
        for token in tokens:
            if not (token.startswith("##") and word >= 0):
                word += 1
            word_ids.append(word)
        return Sentence(tokens, word_ids)


def phrase_pieces(tokenizer, phrases):
    """Phrases (one a line in a phrase file) as tuples of word pieces, longest first."""
    pieces = {tuple(tokenizer.tokenize(p)) for p in phrases if p.strip()}
    return sorted((p for p in pieces if len(p) > 1), key=len, reverse=True)


def masking_units(tokens, word_ids, phrases=()):
    """Groups of positions masked together: whole words, merged into whole phrases where they occur.

    tokens/word_ids: the instance's tokens ([CLS]/[SEP] get word id None). Returns a list of lists.
    """
    units, previous = [], object()
    for position, (token, word) in enumerate(zip(tokens, word_ids)):
        if word is None:
            previous = object()
            continue
        if word == previous and units:
            units[-1].append(position)
        else:
            units.append([position])
        previous = word
    if not phrases:
        return units
    unit_of = {p: i for i, unit in enumerate(units) for p in unit}
    merged_into = list(range(len(units)))
    start = 0
    while start < len(tokens):
        for phrase in phrases:
            end = start + len(phrase)
            if tuple(tokens[start:end]) == phrase and all(p in unit_of for p in range(start, end)):
                first = unit_of[start]
                for p in range(start, end):
                    merged_into[unit_of[p]] = first
                start = end - 1
                break
        start += 1
    grouped = {}
    for index, unit in enumerate(units):
        root = merged_into[index]
        while merged_into[root] != root:
            root = merged_into[root]
        grouped.setdefault(root, []).extend(unit)
    return [sorted(positions) for positions in grouped.values()]


def mask_tokens(tokens, units, config, vocab_tokens, rng):
    """Google's masking: ~masked_lm_prob of the tokens (at most max_predictions_per_seq), whole units at
    a time; each chosen token becomes [MASK] 80%, stays 10%, becomes a random token 10%."""
    budget = min(config.max_predictions_per_seq, max(1, int(round(len(tokens) * config.masked_lm_prob))))
    order = list(units)
    rng.shuffle(order)
    output = list(tokens)
    chosen = []
    for unit in order:
        if len(chosen) >= budget:
            break
        if len(chosen) + len(unit) > budget:
            continue
        for position in unit:
            roll = rng.random()
            if roll < 0.8:
                output[position] = "[MASK]"
            elif roll >= 0.9:
                output[position] = vocab_tokens[rng.randint(0, len(vocab_tokens) - 1)]
            chosen.append(position)
    chosen.sort()
    return output, chosen, [tokens[p] for p in chosen]


def _truncate_pair(a, b, max_tokens, rng):
    """Trims the longer of a and b, from the front or the back at random, until they fit."""
    while len(a) + len(b) > max_tokens:
        longer = a if len(a) > len(b) else b
        del longer[0 if rng.random() < 0.5 else -1]


def _assemble(a, b, config, vocab_tokens, rng, is_random_next, phrases):
    """a, b: lists of (token, word key). -> Instance with [CLS] a [SEP] (b [SEP]) and masking."""
    tokens = ["[CLS]"] + [t for t, _ in a] + ["[SEP]"]
    word_ids = [None] + [("a", w) for _, w in a] + [None]
    segment_ids = [0] * len(tokens)
    if b:
        tokens += [t for t, _ in b] + ["[SEP]"]
        word_ids += [("b", w) for _, w in b] + [None]
        segment_ids += [1] * (len(b) + 1)
    units = masking_units(tokens, word_ids, phrases)
    masked, positions, labels = mask_tokens(tokens, units, config, vocab_tokens, rng)
    return Instance(masked, segment_ids, is_random_next, positions, labels)


def _pieces(sentences):
    """Sentences -> [(token, (sentence index, word id))] so word keys never collide across sentences."""
    return [(t, (i, w)) for i, s in enumerate(sentences) for t, w in zip(s.tokens, s.word_ids)]


def instances_from_document(documents, index, config, vocab_tokens, rng, phrases=()):
    """All instances of one pass over documents[index] (a list of Sentence)."""
    document = documents[index]
    if not config.nsp:
        pieces = _pieces(document)
        size = config.max_seq_length - 2
        segments = [pieces[start:start + size] for start in range(0, len(pieces), size)]
        if segments and len(segments[-1]) < size / 2:
            segments.pop()  # a short tail would be mostly padding
        return [_assemble(segment, None, config, vocab_tokens, rng, False, phrases) for segment in segments]

    max_tokens = config.max_seq_length - 3
    target = max_tokens if rng.random() >= config.short_seq_prob else rng.randint(2, max_tokens)
    instances, chunk, length, i = [], [], 0, 0
    while i < len(document):
        chunk.append(document[i])
        length += len(document[i].tokens)
        if i == len(document) - 1 or length >= target:
            if chunk:
                a_end = rng.randint(1, len(chunk) - 1) if len(chunk) >= 2 else 1
                a = _pieces(chunk[:a_end])
                random_next = len(chunk) == 1 or rng.random() < 0.5
                if random_next and len(documents) > 1:
                    other = index
                    while other == index:
                        other = rng.randint(0, len(documents) - 1)
                    start = rng.randint(0, len(documents[other]) - 1)
                    b_sentences, b_length = [], 0
                    for sentence in documents[other][start:]:
                        b_sentences.append(sentence)
                        b_length += len(sentence.tokens)
                        if b_length >= target - len(a):
                            break
                    b = [(t, ("other", w)) for t, w in _pieces(b_sentences)]
                    i -= len(chunk) - a_end  # the unused sentences of this chunk start the next one
                else:
                    random_next = False
                    b = [(t, ("next", w)) for t, w in _pieces(chunk[a_end:])]
                _truncate_pair(a, b, max_tokens, rng)
                if a and b:
                    instances.append(_assemble(a, b, config, vocab_tokens, rng, random_next, phrases))
            chunk, length = [], 0
            target = max_tokens if rng.random() >= config.short_seq_prob else rng.randint(2, max_tokens)
        i += 1
    return instances


def instances_for_chunk(documents, chunk_id, config, vocab_tokens, phrases=()):
    """Instances of documents [chunk_id * CHUNK_DOCUMENTS, ...) for all dupe_factor passes, seeded by chunk."""
    rng = random.Random(f"{config.seed}-{chunk_id}")
    first = chunk_id * CHUNK_DOCUMENTS
    indices = range(first, min(first + CHUNK_DOCUMENTS, len(documents)))
    instances = []
    for _ in range(config.dupe_factor if config.nsp else max(config.dupe_factor, 1)):
        for index in indices:
            instances.extend(instances_from_document(documents, index, config, vocab_tokens, rng, phrases))
    return instances


def instance_features(instance, tokenizer, config):
    """Instance -> Google's features (lists padded to max_seq_length / max_predictions_per_seq)."""
    input_ids = tokenizer.convert_tokens_to_ids(instance.tokens)
    pad = config.max_seq_length - len(input_ids)
    positions = list(instance.masked_lm_positions)
    ids = tokenizer.convert_tokens_to_ids(instance.masked_lm_labels)
    pad_predictions = config.max_predictions_per_seq - len(positions)
    features = {"input_ids": input_ids + [0] * pad, "input_mask": [1] * len(input_ids) + [0] * pad,
                "segment_ids": instance.segment_ids + [0] * pad,
                "masked_lm_positions": positions + [0] * pad_predictions,
                "masked_lm_ids": ids + [0] * pad_predictions,
                "masked_lm_weights": [1.0] * len(positions) + [0.0] * pad_predictions}
    if config.nsp:
        features["next_sentence_labels"] = [1 if instance.is_random_next else 0]
    return features


def feature_shapes(config: MaskingConfig, with_nsp: Optional[bool] = None):
    """{name: (shape, dtype name)} of the features instance_features writes."""
    seq, predictions = [config.max_seq_length], [config.max_predictions_per_seq]
    shapes = {"input_ids": (seq, "int64"), "input_mask": (seq, "int64"), "segment_ids": (seq, "int64"),
              "masked_lm_positions": (predictions, "int64"), "masked_lm_ids": (predictions, "int64"),
              "masked_lm_weights": (predictions, "float32")}
    if config.nsp if with_nsp is None else with_nsp:
        shapes["next_sentence_labels"] = ([1], "int64")
    return shapes


# --- the files: shards, and the meta file that vouches for them ---------------------------------------
#
# A folder holds one run's data. pretrain_meta.json lists the run's shards (names in its folder) with each
# one's size, record count and sha256. The writer first replaces any earlier meta file with one marked
# "complete": false that names the shards about to be written, writes each shard under a temporary name
# and renames it when whole, and writes the complete meta file last. So a folder a killed run left
# behind says so, a shard that is not the one the meta file describes shows by its size or digest, and
# readers take the shards the meta file lists, never whatever a pattern matches.

META_FILE = "pretrain_meta.json"
META_FORMAT = 2  # 2: "complete" and per-shard sizes and digests ("shard_files")
SHARD_NAME = re.compile(r"pretrain-\d{5}-of-\d{5}\.tfrecord")  # --output_dir's shard names


def shard_paths(output_dir, num_shards):
    """output_dir/pretrain-NNNNN-of-NNNNN.tfrecord, the shard names of an --output_dir run."""
    return [os.path.join(output_dir, f"pretrain-{i:05d}-of-{num_shards:05d}.tfrecord") for i in range(num_shards)]


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as reader:
        for block in iter(lambda: reader.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_shard_paths(shards):
    """The one folder `shards` (output paths) lie in; a UserInputError when they are not distinct files
    of one folder."""
    folders = {os.path.dirname(os.path.abspath(path)) for path in shards}
    if len(folders) != 1:
        raise UserInputError(f"the output files are in {len(folders)} folders ({', '.join(sorted(folders))}): "
                             f"name files in one folder, where {META_FILE} goes beside them")
    names = [os.path.basename(path) for path in shards]
    if len(set(names)) != len(names) or not all(names):
        raise UserInputError("an output file is named more than once, or a name is a folder's")
    if META_FILE in names:
        raise UserInputError(f"{META_FILE} is the name of the file that describes the shards; name them otherwise")
    for path in shards:
        if os.path.isdir(path):
            raise UserInputError(f"{path} is a folder; name files (or use --output_dir)")
    return folders.pop()


def write_shards(records, shards, meta, own_folder=False, start=None):
    """Writes `records` (serialized examples) round-robin over `shards` (paths, all in one folder) and
    the folder's pretrain_meta.json (`meta` plus the shard list, sizes, digests and counts), in the order
    that keeps the folder trustworthy at every moment (see above). own_folder: the folder and the
    pretrain-*-of-*.tfrecord names in it are this script's (--output_dir), so shards of an earlier run
    that the new meta file does not list are removed. start: time.time() when the run began; meta["summary"]
    then gets the seconds up to the last shard and instances per second. Returns the meta file's path."""
    from bert import input_pipeline  # TensorFlow, imported here: reading and masking documents need none
    folder = check_shard_paths(shards)
    names = [os.path.basename(path) for path in shards]
    os.makedirs(folder, exist_ok=True)
    # Two writers would delete each other's shards (a folder named by --output_file is not ours to lock).
    with files.locked_folder(folder, "create_pretraining_data.py run") if own_folder else contextlib.nullcontext():
        meta_path = os.path.join(folder, META_FILE)
        head = {"format": META_FORMAT, "complete": False}
        # From here until the last line the folder is marked unfinished: an earlier run's meta is gone.
        files.write_text_atomic(meta_path, json.dumps(dict(head, **meta, shards=names), indent=2) + "\n")
        if own_folder:
            removed = files.remove_stale_temporaries(folder)
            if removed:
                logging.info("removed what killed runs left half-written in %s: %s", folder,
                             ", ".join(sorted(removed)))
        details = {}
        for index, path in enumerate(shards):
            count = input_pipeline.write_tfrecord(path, records[index::len(shards)])
            details[names[index]] = {"bytes": os.path.getsize(path), "sha256": sha256_of(path), "records": count}
        head["complete"] = True
        if start is not None:
            seconds = time.time() - start
            meta["summary"].update(seconds=round(seconds, 2), instances_per_second=round(len(records) / seconds, 1))
        files.write_text_atomic(meta_path, json.dumps(dict(head, **meta, shards=names, shard_files=details),
                                                      indent=2) + "\n")
        if own_folder:  # shards of an earlier run with more of them: no meta file lists them now
            stale = sorted(entry for entry in os.listdir(folder)
                           if SHARD_NAME.fullmatch(entry) and entry not in names)
            for name in stale:
                os.remove(os.path.join(folder, name))
            if stale:
                logging.info("removed %d shard(s) of an earlier run from %s: %s", len(stale), folder,
                             ", ".join(stale))
    return meta_path


def write_pretraining_data(documents, tokenizer, config, shards, workers, phrases=(), vocab_digest=None, start=None,
                           own_folder=False):
    """Tokenizes `documents`, makes instances (config: MaskingConfig) and writes them, shuffled with
    config.seed, spread over `shards` (paths in one folder; shard_paths() names an --output_dir's), with
    pretrain_meta.json beside them (write_shards). The output is the same whatever the number of worker
    processes. Returns the summary counts."""
    from bert import input_pipeline
    start = time.time() if start is None else start
    split = SentenceTokenizer(tokenizer, config.word_boundaries)
    chunks = list(range(-(-len(documents) // CHUNK_DOCUMENTS)))

    def tokenize_chunk(chunk):
        first = chunk * CHUNK_DOCUMENTS
        return [[split(sentence) for sentence in document] for document in documents[first:first + CHUNK_DOCUMENTS]]

    tokenized = [doc for part in input_pipeline.map_parallel(tokenize_chunk, chunks, workers, min_items=2)
                 for doc in part]
    tokenized = [[s for s in document if s.tokens] for document in tokenized]
    tokenized = [document for document in tokenized if document]
    logging.info("tokenized %d documents in %.1fs", len(tokenized), time.time() - start)

    vocab_tokens = sorted((t for t in tokenizer.vocab if not (t.startswith("[") and t.endswith("]"))),
                          key=tokenizer.vocab.get)
    chunks = list(range(-(-len(tokenized) // CHUNK_DOCUMENTS)))

    def serialized_chunk(chunk):
        # Workers return finished records (bytes, tokens, masks): the parent only shuffles and writes.
        return [(input_pipeline.serialize_example(instance_features(instance, tokenizer, config)),
                 len(instance.tokens), len(instance.masked_lm_positions))
                for instance in instances_for_chunk(tokenized, chunk, config, vocab_tokens, phrases)]

    instances = [row for part in input_pipeline.map_parallel(serialized_chunk, chunks, workers, min_items=2)
                 for row in part]
    random.Random(config.seed).shuffle(instances)
    if not instances:
        raise UserInputError("no instances: the documents are too short for these settings")

    summary = {"instances": len(instances), "tokens": sum(tokens for _, tokens, _ in instances),
               "masked": sum(masked for _, _, masked in instances), "documents": len(tokenized)}
    meta = {"next_sentence": config.nsp, "max_seq_length": config.max_seq_length,
            "max_predictions_per_seq": config.max_predictions_per_seq, "settings": vars(config),
            "vocab": vocab_digest, "summary": summary}
    write_shards([record for record, _, _ in instances], shards, meta, own_folder, start)
    return summary


# --- reading: which files, and are they one run's --------------------------------------------------------

@dataclasses.dataclass
class PretrainingFiles:
    """TFRecord files to train on and the shape of their features."""
    paths: List[str]
    max_seq_length: int
    max_predictions_per_seq: int
    next_sentence: bool  # next_sentence_labels present
    source: str  # where the shape came from: a pretrain_meta.json, or a file's first record


def read_meta(folder):
    """The checked pretrain_meta.json of `folder` (None when there is none). A meta file of a run that did
    not finish, or one without shard sizes and digests, is refused."""
    path = os.path.join(folder, META_FILE)
    if not os.path.exists(path):
        return None
    meta = files.read_json(path, "pretraining data description", expect=dict)
    if meta.get("complete") is False:
        raise UserInputError(f"{path}: the create_pretraining_data.py run writing this folder did not finish "
                             "(killed?), so its shards may mix two runs; run it again")
    shards, details = meta.get("shards"), meta.get("shard_files")
    if meta.get("format") != META_FORMAT or not isinstance(shards, list) or not isinstance(details, dict):
        raise UserInputError(f"{path}: no shard sizes and digests (written by an older create_pretraining_data.py), "
                             "so nothing shows its shards belong to it; run create_pretraining_data.py again")
    for name in shards:
        entry = details.get(name) if isinstance(name, str) else None
        if not (isinstance(entry, dict) and os.path.basename(name) == name and name not in ("", ".", "..")
                and isinstance(entry.get("bytes"), int) and isinstance(entry.get("sha256"), str)):
            raise UserInputError(f"{path}: shard entry {name!r} is not a file name with its size and digest")
    for key, kind in (("max_seq_length", int), ("max_predictions_per_seq", int), ("next_sentence", bool)):
        if not isinstance(meta.get(key), kind):
            raise UserInputError(f"{path}: \"{key}\" must be {'an integer' if kind is int else 'true or false'}")
    return meta


def verified_shard(folder, name, meta):
    """folder/name after checking it is the shard the folder's meta file describes (size, then sha256)."""
    path = os.path.join(folder, name)
    meta_path = os.path.join(folder, META_FILE)
    expected = meta["shard_files"][name]
    if not os.path.isfile(path):
        raise UserInputError(f"{path}: missing ({meta_path} lists it); run create_pretraining_data.py again")
    size = os.path.getsize(path)
    if size != expected["bytes"]:
        raise UserInputError(f"{path}: {size} bytes where {meta_path} records {expected['bytes']}: not the shard "
                             "that run wrote; run create_pretraining_data.py again")
    if sha256_of(path) != expected["sha256"]:
        raise UserInputError(f"{path}: its sha256 differs from the one {meta_path} records: not the shard that run "
                             "wrote; run create_pretraining_data.py again")
    return path


def _first_record_shape(path):
    """(max_seq_length, max_predictions_per_seq, next_sentence) read from the first record of `path`
    (None when it has no records)."""
    import tensorflow as tf
    try:
        records = list(tf.data.TFRecordDataset(path).take(1).as_numpy_iterator())
    except tf.errors.OpError as error:
        raise UserInputError(f"{path}: not a readable TFRecord file ({error.message.splitlines()[0]})") from None
    if not records:
        return None
    try:
        feature = tf.train.Example.FromString(records[0]).features.feature
    except Exception:  # protobuf's DecodeError
        raise UserInputError(f"{path}: its records are not tf.train.Example protos") from None
    if "input_ids" not in feature or "masked_lm_positions" not in feature:
        raise UserInputError(f"{path}: not pretraining data (no input_ids / masked_lm_positions)")
    return (len(feature["input_ids"].int64_list.value), len(feature["masked_lm_positions"].int64_list.value),
            "next_sentence_labels" in feature)


def find_pretraining_data(spec):
    """The pretraining data `spec` names: a folder create_pretraining_data.py wrote (its pretrain_meta.json
    lists the shards), or TFRecord files, comma-separated and/or glob patterns (Google's --input_file).

    Files in a folder that has a pretrain_meta.json must be shards it lists, and every shard used is
    checked against the size and sha256 recorded there; files in a folder without one (e.g. made by
    Google's create_pretraining_data.py) are read as they are, their shape taken from the first record.
    Returns PretrainingFiles."""
    parts = [part.strip() for part in spec.split(",") if part.strip()]
    if not parts:
        raise UserInputError(f"{spec!r} names no pretraining data")
    if len(parts) == 1 and os.path.isdir(parts[0]):
        folder = parts[0]
        meta = read_meta(folder)
        if meta is None:
            raise UserInputError(f"{folder}: no {META_FILE} (create_pretraining_data.py writes it last, so a folder "
                                 "without it was not written by it or not finished); run it again, or name the "
                                 "TFRecord files")
        return PretrainingFiles([verified_shard(folder, name, meta) for name in meta["shards"]],
                                meta["max_seq_length"], meta["max_predictions_per_seq"], meta["next_sentence"],
                                os.path.join(folder, META_FILE))
    paths = set()
    for part in parts:
        if os.path.isdir(part):
            raise UserInputError(f"{part} is a folder: give a data folder alone, or TFRecord files")
        matched = glob.glob(part)
        if not matched:
            raise UserInputError(f"{part}: no such file (or nothing matches the pattern)")
        paths.update(matched)
    paths = sorted(paths)
    metas, plain, shapes = {}, [], {}
    for path in paths:
        folder = os.path.dirname(path) or "."
        if folder not in metas:
            metas[folder] = read_meta(folder)
        meta = metas[folder]
        if meta is None:
            plain.append(path)
            continue
        name = os.path.basename(path)
        if name not in meta["shard_files"]:
            raise UserInputError(f"{path}: not a shard {os.path.join(folder, META_FILE)} lists (a folder holds one "
                                 "run's data, and this file is not that run's): name only the shards it lists, or "
                                 "the folder")
        verified_shard(folder, name, meta)
        shapes.setdefault((meta["max_seq_length"], meta["max_predictions_per_seq"], meta["next_sentence"]),
                          os.path.join(folder, META_FILE))
    for path in plain:  # each file's own first record: Google-format files may differ
        shape = _first_record_shape(path)
        if shape is not None:
            shapes.setdefault(shape, path)
    if plain and not shapes:
        raise UserInputError(f"{', '.join(plain)}: no records")
    if len(shapes) > 1:
        raise UserInputError(f"{spec}: the files differ in (sequence length, predictions, next-sentence labels): "
                             + "; ".join(f"{shape} in {where}" for shape, where in shapes.items()))
    (seq_length, predictions, next_sentence), source = shapes.popitem()
    return PretrainingFiles(paths, seq_length, predictions, next_sentence, source)
