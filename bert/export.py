"""SavedModel export for serving: raw text in, labels out, tokenization inside the graph.

A trained output folder describes itself (model_info.json, bert_config.json, the vocab, label_map.json
and checkpoints; see common_flags.save_model_info). `export_saved_model(model_dir, export_dir)` reads
it and writes `export_dir/<version>/` (saved_model.pb, variables/, assets/), the layout TensorFlow
Serving watches: the next free integer, written under a temporary name and renamed when complete.

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

Tokenization in the graph (`GraphTokenizer`) gives the ids of the Python tokenizer
(tokenization.FullTokenizer, itself token for token Google's) with tensorflow_text and tf.strings
ops; truncation (Google's pair rule), [CLS]/[SEP] and padding are graph ops too (`encode_pairs`).
A process that loads the SavedModel must `import tensorflow_text` first (it registers the ops);
TensorFlow Serving's model server has them built in.

Adding a task: subclass `TaskExporter` and register it in EXPORTERS under the task name that
common_flags.save_model_info writes ("squad" plugs in here).
"""
import dataclasses
import glob
import json
import os
import re
import shutil
import tempfile
import uuid
from typing import List, Optional

import numpy as np
import tensorflow as tf

from bert import checkpoint as checkpoints
from bert import heads, model_fn, modeling, tasks, tokenization
from bert.errors import UserInputError

tf1 = tf.compat.v1

MODEL_INFO_FILE = "model_info.json"
LABEL_MAP_FILE = "label_map.json"
SIGNATURE_TEXT = "serving_default"
SIGNATURE_IDS = "predict_ids"
SIGNATURE_TOKENIZE = "tokenize"
SIGNATURE_EMBED = "embed"
MAX_CHARS_PER_WORD = tokenization.MAX_INPUT_CHARS_PER_WORD  # Google's: a longer word is one [UNK]
UTF8_MAX_BYTES = 4  # per character: a word of MAX_CHARS_PER_WORD characters has at most 4x as many bytes


# --- what a trained output folder holds -----------------------------------------------------------


@dataclasses.dataclass
class ModelInfo:
    """model_info.json: what the task is and how text becomes ids (common_flags.save_model_info)."""
    task: Optional[str]
    bert_config_file: str = "bert_config.json"  # relative to the folder
    vocab_file: str = "vocab.txt"  # vocab.txt, or spm.model for SentencePiece
    tokenizer: str = "wordpiece"  # wordpiece | whitespace | sentencepiece
    do_lower_case: bool = True
    max_seq_length: int = 128
    labels: Optional[List[str]] = None  # classification
    multi_label: bool = False
    label_separator: str = ","
    pooling: Optional[str] = None  # pooled | cls | mean
    text_pair: bool = False
    distance: str = "euclidean"  # few-shot
    extra: dict = dataclasses.field(default_factory=dict)  # keys this module does not use, kept

    @classmethod
    def from_dir(cls, model_dir):
        path = os.path.join(model_dir, MODEL_INFO_FILE)
        if not os.path.isdir(model_dir):
            raise UserInputError(f"{model_dir}: no such folder")
        try:
            with open(path, encoding="utf-8") as reader:
                data = json.load(reader)
        except FileNotFoundError:
            raise UserInputError(f"{path}: not found; export needs a folder a training run wrote "
                                 "(run_classifier.py / run_fewshot.py with --do_train)") from None
        except (OSError, UnicodeDecodeError) as error:
            raise UserInputError(f"{path}: cannot be read ({error})") from None
        except json.JSONDecodeError as error:
            raise UserInputError(f"{path}, line {error.lineno}: invalid JSON: {error.msg}") from None
        if not isinstance(data, dict) or "task" not in data:
            raise UserInputError(f"{path}: expected a JSON object with a \"task\"")
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        info = cls(**{k: v for k, v in data.items() if k in known},
                   extra={k: v for k, v in data.items() if k not in known})
        info.validate(path)
        return info

    def validate(self, where):
        if self.tokenizer not in ("wordpiece", "whitespace", "sentencepiece"):
            raise UserInputError(f"{where}: unknown tokenizer {self.tokenizer!r}")
        if isinstance(self.max_seq_length, bool) or not isinstance(self.max_seq_length, int) \
                or self.max_seq_length < 3:
            raise UserInputError(f"{where}: max_seq_length must be an integer of at least 3")
        if self.labels is not None and not (isinstance(self.labels, list) and self.labels
                                            and all(isinstance(label, str) for label in self.labels)):
            raise UserInputError(f"{where}: \"labels\" must be a non-empty list of strings")

    def to_dict(self):
        data = {k: v for k, v in dataclasses.asdict(self).items() if k != "extra"}
        data.update(self.extra)
        return data


def find_checkpoint(model_dir):
    """The checkpoint to serve from a trained folder: best/ when there is one, else the latest.

    Falls back to the highest model.ckpt-N on disk when the `checkpoint` state file is missing or
    names paths that moved with the folder, and to bert_model.ckpt (a pretrained model folder).
    """
    for folder in (os.path.join(model_dir, "best"), model_dir):
        if not os.path.isdir(folder):
            continue
        latest = tf.train.latest_checkpoint(folder)
        if latest:
            return latest
        steps = []
        for index in glob.glob(os.path.join(glob.escape(folder), "model.ckpt-*.index")):
            match = re.fullmatch(r"model\.ckpt-(\d+)\.index", os.path.basename(index))
            if match:
                steps.append((int(match.group(1)), index[:-len(".index")]))
        if steps:
            return max(steps)[1]
    pretrained = os.path.join(model_dir, "bert_model.ckpt")
    if os.path.exists(pretrained + ".index"):
        return pretrained
    raise UserInputError(f"{model_dir}: no checkpoint (model.ckpt-N) here or in best/; train first "
                         "(--do_train) or point at the training run's output_dir")


@dataclasses.dataclass
class TrainedModel:
    """Everything export needs, read from a trained folder (or given for a pretrained one)."""
    model_dir: str
    info: ModelInfo
    config: modeling.BertConfig
    tokenizer: object  # tokenization.FullTokenizer / WhitespaceTokenizer / SentencePieceTokenizer
    vocab_path: str
    checkpoint: str

    @classmethod
    def load(cls, model_dir, checkpoint=None, info=None):
        """info: a ModelInfo for a folder without model_info.json (a pretrained model)."""
        info = info or ModelInfo.from_dir(model_dir)
        config = modeling.BertConfig.from_json_file(os.path.join(model_dir, info.bert_config_file))
        if info.max_seq_length > config.max_position_embeddings:
            raise UserInputError(f"{model_dir}: max_seq_length {info.max_seq_length} is above "
                                 f"max_position_embeddings {config.max_position_embeddings}")
        vocab_path = os.path.join(model_dir, info.vocab_file)
        if info.tokenizer == "sentencepiece":
            tokenizer = tokenization.SentencePieceTokenizer(vocab_path, info.do_lower_case)
        else:
            tokenizer = tokenization.create_tokenizer(vocab_path, None, info.do_lower_case, info.tokenizer)
        largest = max(tokenizer.vocab.values())
        if largest >= config.vocab_size:
            raise UserInputError(f"{vocab_path} has ids up to {largest} but vocab_size is {config.vocab_size}")
        if checkpoint:
            checkpoint = checkpoints.resolve_checkpoint(checkpoint)
        else:
            checkpoint = find_checkpoint(model_dir)
        return cls(model_dir, info, config, tokenizer, vocab_path, checkpoint)

    def special_id(self, token):
        """The id the Python tokenizer gives `token` ([CLS], [SEP]); a WordPiece vocab must have it."""
        if token not in self.tokenizer.vocab and self.info.tokenizer != "sentencepiece":
            raise UserInputError(f"{self.vocab_path}: the vocab has no {token} token")
        return self.tokenizer.convert_tokens_to_ids([token])[0]  # SentencePiece: its unk id when absent


# --- tokenization as graph ops ---------------------------------------------------------------------

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
        self.text_a = tf1.placeholder(tf.string, [None], name="text_a")
        self.text_b = tf1.placeholder(tf.string, [None], name="text_b") if text_pair else None
        tokens_a = self.tokenizer.tokenize(self.text_a)
        if text_pair:
            tokens_b = self.tokenizer.tokenize(self.text_b)
            has_b = tf.strings.length(self.text_b) > 0
        else:
            tokens_b = tf.RaggedTensor.from_row_lengths(tf.zeros([0], tf.int64), tf.zeros_like(tokens_a.row_lengths()))
            has_b = tf.zeros_like(tokens_a.row_lengths(), tf.bool)
        self.tokenized = encode_pairs(tokens_a, tokens_b, has_b, info.max_seq_length,
                                      trained.special_id("[CLS]"), trained.special_id("[SEP]"))
        # The model reads these; predict_ids feeds them directly (the text path is then not run).
        self.features = {name: tf1.placeholder_with_default(tensor, [None, info.max_seq_length], name=name)
                         for name, tensor in zip(tasks.Task.encoder_features, self.tokenized)}

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


# --- tasks -----------------------------------------------------------------------------------------


class TaskExporter:
    """What export asks of a task: its serving outputs, extra signatures, assets and variables."""
    task = None
    text_pair = False

    def __init__(self, trained, support=None):
        self.trained = trained
        self.info = trained.info

    def build(self, encoder):
        """Builds the model on encoder.features; returns {output name: tensor} for serving_default."""
        raise NotImplementedError

    def extra_signatures(self, encoder):
        return {}

    def own_variables(self):
        """Variables this exporter fills itself (not restored from the checkpoint)."""
        return []

    def after_restore(self, session, encoder):
        """Runs once the checkpoint is restored and the tables initialised."""

    def label_map(self):
        return None

    def assets(self):
        """{asset file name: text} written beside the vocab (e.g. the label map)."""
        return {}

    def predictions(self, features):
        """The shared model_fn in PREDICT mode on `features`: the task head's predictions."""
        build = model_fn.model_fn_builder(self.model_task(), self.trained.config)
        return build(features, None, tf.estimator.ModeKeys.PREDICT, None).predictions

    def model_task(self):
        raise NotImplementedError


def label_strings(labels, label_ids, multi_label, separator):
    """label_ids int32 [batch] (or multi-hot [batch, labels]) -> string [batch]."""
    names = tf.constant(labels, tf.string)
    if not multi_label:
        return tf.gather(names, label_ids)
    on = label_ids > 0  # [batch, labels]
    chosen = tf.ragged.boolean_mask(tf.broadcast_to(names, tf.shape(on)), on)
    return tf.strings.reduce_join(chosen, axis=-1, separator=separator)


class ClassificationExporter(TaskExporter):
    task = "classification"

    def __init__(self, trained, support=None):
        super().__init__(trained)
        if support is not None:
            raise UserInputError("--support_file is for few-shot models; this one is a classifier with "
                                 "fixed labels")
        if not self.info.labels:
            raise UserInputError(f"{trained.model_dir}/{MODEL_INFO_FILE}: a classifier needs its \"labels\"")
        self.text_pair = bool(self.info.text_pair)

    def model_task(self):
        return tasks.ClassificationTask(self.info.labels, None, self.info.max_seq_length,
                                        multi_label=self.info.multi_label, pooling=self.info.pooling or "pooled")

    def build(self, encoder):
        predictions = self.predictions(encoder.features)
        label_ids = predictions["label_ids"]
        return {"probabilities": predictions["probabilities"], "label_id": label_ids,
                "label": label_strings(self.info.labels, label_ids, self.info.multi_label,
                                       self.info.label_separator)}

    def label_map(self):
        return {"labels": self.info.labels, "multi_label": bool(self.info.multi_label)}


@dataclasses.dataclass
class SupportSet:
    """A few labelled texts per class: the classes a few-shot model's serving_default chooses from."""
    texts: List[str]
    labels: List[str]
    source: str = "support set"


class FewShotExporter(TaskExporter):
    """Prototypes (class means of the support set's embeddings) are computed at export time and kept
    as the variable `prototypes`; the query is classified by distance to them, as run_fewshot.py does."""
    task = "fewshot"

    def __init__(self, trained, support=None):
        super().__init__(trained)
        if support is None:
            raise UserInputError("a few-shot model classifies into the classes of a support set: pass "
                                 "--support_file=SUPPORT.tsv (text<TAB>label lines, a few per class)")
        self.support = support
        self.classes = sorted(set(support.labels))
        self.pooling = self.info.pooling or "mean"
        self.distance = self.info.distance
        if self.distance not in heads.DISTANCES:
            raise UserInputError(f"{trained.model_dir}/{MODEL_INFO_FILE}: unknown distance {self.distance!r}")

    def model_task(self):
        return tasks.FewShotTask(self.classes, None, self.info.max_seq_length, self.pooling, self.distance)

    def build(self, encoder):
        self.embedding = self.predictions(encoder.features)["embedding"]  # [batch, hidden]
        hidden = self.trained.config.hidden_size
        self.prototypes = tf1.get_variable("prototypes", [len(self.classes), hidden], tf.float32,
                                           initializer=tf1.zeros_initializer(), trainable=False)
        logits = heads.prototypical_logits(self.embedding, self.prototypes, self.distance)  # [batch, classes]
        if self.distance == "euclidean":
            distances = heads.squared_distances(self.embedding, self.prototypes)
        else:
            distances = 1.0 - tf.matmul(tf.math.l2_normalize(self.embedding, -1),
                                        tf.math.l2_normalize(self.prototypes, -1), transpose_b=True)
        label_ids = tf.argmax(logits, -1, output_type=tf.int32)
        return {"probabilities": tf.nn.softmax(logits, -1), "label_id": label_ids,
                "label": label_strings(self.classes, label_ids, False, ","), "distances": distances}

    def extra_signatures(self, encoder):
        return {SIGNATURE_EMBED: ({"text_a": encoder.text_a}, {"embedding": self.embedding})}

    def own_variables(self):
        return [self.prototypes]

    def after_restore(self, session, encoder, batch_size=64):
        embeddings = np.concatenate([
            session.run(self.embedding, encoder.feed(self.support.texts[start:start + batch_size]))
            for start in range(0, len(self.support.texts), batch_size)])
        labels = np.asarray(self.support.labels)
        prototypes = np.stack([embeddings[labels == c].mean(0) for c in self.classes])  # as run_fewshot.py
        self.prototypes.load(prototypes, session)

    def label_map(self):
        return {"labels": self.classes, "multi_label": False}

    def assets(self):
        lines = [f"{t}\t{l}" for t, l in zip(self.support.texts, self.support.labels)]
        return {"support.tsv": "\n".join(lines) + "\n"}


EXPORTERS = {exporter.task: exporter for exporter in (ClassificationExporter, FewShotExporter)}


# --- the SavedModel ---------------------------------------------------------------------------------


def version_numbers(export_dir):
    """The integer version folders under export_dir, sorted."""
    if not os.path.isdir(export_dir):
        return []
    return sorted(int(name) for name in os.listdir(export_dir)
                  if name.isdigit() and os.path.isdir(os.path.join(export_dir, name)))


def resolve_saved_model(path):
    """A SavedModel folder from itself or from an export folder (its highest version)."""
    if os.path.exists(os.path.join(path, "saved_model.pb")):
        return path
    versions = [v for v in version_numbers(path) if os.path.exists(os.path.join(path, str(v), "saved_model.pb"))]
    if not versions:
        raise UserInputError(f"{path}: no saved_model.pb here or in a version folder (1, 2, ...) below it")
    return os.path.join(path, str(versions[-1]))


def restore(session, checkpoint, variables):
    """Restores `variables` from checkpoint by name; a missing or misshapen one is named."""
    shapes = tf.train.load_checkpoint(checkpoint).get_variable_to_shape_map()
    missing = [v.op.name for v in variables if v.op.name not in shapes]
    if missing:
        raise UserInputError(f"{checkpoint}: the checkpoint lacks {', '.join(missing[:5])}"
                             f"{' ...' if len(missing) > 5 else ''}; was it written by this model_info.json's task?")
    for v in variables:
        if list(shapes[v.op.name]) != v.shape.as_list():
            raise UserInputError(f"{checkpoint}: {v.op.name} has shape {shapes[v.op.name]} in the checkpoint but "
                                 f"{v.shape.as_list()} in the model; does bert_config.json match it?")
    tf1.train.Saver({v.op.name: v for v in variables}).restore(session, checkpoint)


def _signature(inputs, outputs):
    return tf1.saved_model.predict_signature_def(inputs, outputs)


def export_saved_model(model_dir, export_dir, support=None, checkpoint=None):
    """Exports a trained folder as export_dir/<next version>/; returns that folder.

    support: a SupportSet (few-shot models only, required there). checkpoint: a checkpoint to export
    instead of model_dir's best/ (or latest) one.
    """
    trained = TrainedModel.load(model_dir, checkpoint)
    exporter_class = EXPORTERS.get(trained.info.task)
    if exporter_class is None:
        raise UserInputError(f"{model_dir}/{MODEL_INFO_FILE}: task {trained.info.task!r} cannot be exported "
                             f"(exportable: {', '.join(sorted(EXPORTERS))})")
    exporter = exporter_class(trained, support)
    os.makedirs(export_dir, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".tmp-assets-", dir=export_dir)
    building = os.path.join(export_dir, f".tmp-export-{uuid.uuid4().hex[:12]}")  # TF Serving skips it
    try:
        graph = tf.Graph()
        with graph.as_default(), tf1.Session(graph=graph) as session:
            vocab_asset = os.path.join(staging, trained.info.vocab_file)
            if trained.info.tokenizer == "sentencepiece":
                shutil.copyfile(trained.vocab_path, vocab_asset)
            else:
                write_vocab_asset(trained.tokenizer.vocab, vocab_asset)
            encoder = TextEncoder(trained, vocab_asset, exporter.text_pair)
            outputs = exporter.build(encoder)
            extra_assets = dict(exporter.assets())
            if exporter.label_map() is not None:
                extra_assets[LABEL_MAP_FILE] = json.dumps(exporter.label_map(), ensure_ascii=False, indent=2) + "\n"
            info = dict(trained.info.to_dict(), checkpoint=os.path.basename(trained.checkpoint))
            extra_assets[MODEL_INFO_FILE] = json.dumps(info, ensure_ascii=False, indent=2) + "\n"
            for name, text in extra_assets.items():
                with open(os.path.join(staging, name), "w", encoding="utf-8") as writer:
                    writer.write(text)
                # An asset the graph does not read: listed so that the Builder copies it into assets/.
                tf1.add_to_collection(tf1.GraphKeys.ASSET_FILEPATHS,
                                      tf.constant(os.path.join(staging, name), name="asset_" + re.sub(r"\W", "_", name)))
            if trained.info.tokenizer == "sentencepiece":  # read into the graph; kept beside it too
                tf1.add_to_collection(tf1.GraphKeys.ASSET_FILEPATHS, tf.constant(vocab_asset, name="asset_spm_model"))

            own = exporter.own_variables()
            restore(session, trained.checkpoint, [v for v in tf1.global_variables()
                                                  if v.op.name not in {o.op.name for o in own}])
            session.run([v.initializer for v in own])
            session.run(tf1.tables_initializer())
            exporter.after_restore(session, encoder)

            signatures = {
                SIGNATURE_TEXT: _signature(encoder.text_inputs(), outputs),
                SIGNATURE_IDS: _signature(encoder.features, outputs),
                SIGNATURE_TOKENIZE: _signature(encoder.text_inputs(), dict(zip(tasks.Task.encoder_features,
                                                                               encoder.tokenized))),
            }
            for name, (inputs, extra_outputs) in exporter.extra_signatures(encoder).items():
                signatures[name] = _signature(inputs, extra_outputs)
            builder = tf1.saved_model.Builder(building)
            builder.add_meta_graph_and_variables(
                session, [tf1.saved_model.tag_constants.SERVING], signature_def_map=signatures,
                assets_collection=tf1.get_collection(tf1.GraphKeys.ASSET_FILEPATHS),
                main_op=tf1.tables_initializer(), strip_default_attrs=True)
            builder.save()
        return _publish(building, export_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(building, ignore_errors=True)


def _publish(building, export_dir, attempts=100):
    """Renames the finished SavedModel to the next free version number (another exporter may race)."""
    for _ in range(attempts):
        versions = version_numbers(export_dir)
        target = os.path.join(export_dir, str(versions[-1] + 1 if versions else 1))
        try:
            os.rename(building, target)  # fails when target appeared meanwhile (non-empty)
            return target
        except OSError:
            if not os.path.exists(target):
                raise
    raise UserInputError(f"{export_dir}: could not claim a version folder")


# --- features from a checkpoint (extract_features.py) -----------------------------------------------


class FeatureExtractor:
    """BertModel over in-graph tokenized text, restored from a checkpoint, in its own session.

    __call__(texts_a, texts_b=None) -> {"cls_emb" [n, hidden] (the [CLS] token's final hidden state),
    "mean_emb" [n, hidden] (mean over real tokens), "pooled_emb" [n, hidden] (BERT's tanh pooler),
    "top_layer_emb" [n, max_seq_length, hidden] (zero at padding), "input_ids", "input_mask"
    [n, max_seq_length]} as numpy.
    """

    def __init__(self, trained, text_pair=False):
        self.graph = tf.Graph()
        self.folder = tempfile.mkdtemp(prefix="bert-features-")
        with self.graph.as_default():
            vocab = os.path.join(self.folder, "vocab.txt")
            if trained.info.tokenizer != "sentencepiece":
                write_vocab_asset(trained.tokenizer.vocab, vocab)
            self.encoder = TextEncoder(trained, vocab, text_pair)
            features = self.encoder.features
            model = modeling.BertModel(trained.config, is_training=False, input_ids=features["input_ids"],
                                       input_mask=features["input_mask"], token_type_ids=features["segment_ids"])
            mask = tf.cast(features["input_mask"], tf.float32)[:, :, tf.newaxis]
            self.outputs = {"cls_emb": heads.sentence_embedding(model, features["input_mask"], "cls"),
                            "mean_emb": heads.sentence_embedding(model, features["input_mask"], "mean"),
                            "pooled_emb": heads.sentence_embedding(model, features["input_mask"], "pooled"),
                            "top_layer_emb": model.get_sequence_output() * mask,
                            "input_ids": features["input_ids"], "input_mask": features["input_mask"]}
            self.session = tf1.Session(graph=self.graph)
            restore(self.session, trained.checkpoint, tf1.global_variables())
            self.session.run(tf1.tables_initializer())

    def __call__(self, texts_a, texts_b=None):
        return self.session.run(self.outputs, self.encoder.feed(texts_a, texts_b))

    def close(self):
        self.session.close()
        shutil.rmtree(self.folder, ignore_errors=True)
