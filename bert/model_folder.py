"""A trained output folder, written and read here and nowhere else.

A training run (run_classifier.py, run_fewshot.py, run_squad.py, run_pretraining.py with --do_train)
leaves an output folder that describes itself: model_info.json (the task's name and what it records
about itself, how text becomes ids; `save_model_info`), bert_config.json, the vocab (vocab.txt, or
spm.model for SentencePiece), label_map.json (`save_label_map`), eval_results.json/.txt
(`write_eval_results`), checkpoints (model.ckpt-N) and best/ (the best checkpoint by validation, with
best_eval.json; `keep_best`). Reading: `ModelInfo` is model_info.json, `trained_checkpoint` /
`best_checkpoint` / `find_checkpoint` find the checkpoint to use, `load_label_map` the labels, and
`TrainedModel.load` gathers everything export and feature extraction need (bert/export/). A run
claims the folder first (`claim`: a lock, cleanup, --overwrite_output_dir) and `check_run` binds it to
one run (run.json).
"""
import dataclasses
import glob
import json
import os
import re
import shutil
from typing import List, Optional

import tensorflow as tf
from absl import logging

from bert import checkpoint as checkpoints
from bert import files, heads, modeling, tokenization
from bert.errors import UserInputError

MODEL_INFO_FILE = "model_info.json"
LABEL_MAP_FILE = "label_map.json"


@dataclasses.dataclass
class ModelInfo:
    """model_info.json: what the task is and how text becomes ids (save_model_info)."""
    task: Optional[str]
    bert_config_file: str = "bert_config.json"  # a file in the folder
    vocab_file: Optional[str] = "vocab.txt"  # vocab.txt, or spm.model for SentencePiece; None: unknown
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
        if not os.path.exists(path):
            raise UserInputError(f"{path}: not found; export needs a folder a training run wrote "
                                 "(run_classifier.py / run_fewshot.py with --do_train)")
        data = files.read_json(path, "model info file", expect=dict)
        if "task" not in data:
            raise UserInputError(f"{path}: expected a JSON object with a \"task\"")
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        info = cls(**{k: v for k, v in data.items() if k in known},
                   extra={k: v for k, v in data.items() if k not in known})
        info.validate(path)
        for field in ("bert_config_file", "vocab_file"):  # what a folder names must stay inside it
            name = getattr(info, field)
            if name is not None and (not isinstance(name, str) or os.path.basename(name) != name
                                     or name in ("", ".", "..")):
                raise UserInputError(f"{path}: {field} must name a file inside {model_dir}, not {name!r}")
        return info

    def validate(self, where):
        if self.tokenizer not in ("wordpiece", "whitespace", "sentencepiece"):
            raise UserInputError(f"{where}: unknown tokenizer {self.tokenizer!r}")
        if isinstance(self.max_seq_length, bool) or not isinstance(self.max_seq_length, int) \
                or self.max_seq_length < 3:
            raise UserInputError(f"{where}: max_seq_length must be an integer of at least 3")
        if self.distance not in heads.DISTANCES:
            raise UserInputError(f"{where}: unknown distance {self.distance!r} (known: {', '.join(heads.DISTANCES)})")
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
    best = best_checkpoint(model_dir)
    if best:
        return best
    for folder in (best_dir(model_dir), model_dir):
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
        if info.vocab_file is None:
            raise UserInputError(f"{model_dir}: the vocab is unknown (the run that wrote it was given no "
                                 "--vocab_file); copy the model's vocab.txt into the folder and set \"vocab_file\": "
                                 f"\"vocab.txt\" in {MODEL_INFO_FILE}")
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


# --- claiming an output folder for a run ----------------------------------------------------------------

RUN_FILE = "run.json"  # what defines the run that trained in this folder
# What this project writes into an output folder: all that --overwrite_output_dir removes (a user's
# own files there are left alone).
_RUN_OUTPUTS = re.compile(r"(run|model_info|label_map|class_split|bert_config|eval_results|fewshot_results|predictions|"
                          r"nbest_predictions|null_odds)\.json|vocab\.txt|spm\.model|eval_results\.txt|"
                          r"fewshot_results\.(md|png)|confusion_matrix\.png|(test_results|predictions)\.tsv|predictions\.(txt|jsonl)|"
                          r"checkpoint|graph\.pbtxt|model\.ckpt-\d+\..*|events\.out\.tfevents\..*|best|cache|eval|"
                          r"frozen-.*|.*\.tmp-\d+@\w+")


def claim(output_dir, overwrite=False, exclusive=True):
    """Makes output_dir this run's: creates it, takes its lock (a second concurrent run into the same
    folder fails at once with a clear message), removes what dead runs left half-written, and with
    `overwrite` removes every output of an earlier run so that this one starts afresh.

    Multi-worker training shares one folder: only the chief claims it (exclusive=True); the other
    workers (exclusive=False) only create it, and never clean or overwrite what the chief writes.
    """
    os.makedirs(output_dir, exist_ok=True)
    if not exclusive:
        return
    files.lock_folder(output_dir)
    files.remove_stale_temporaries(output_dir)
    if overwrite:
        for name in os.listdir(output_dir):
            if _RUN_OUTPUTS.fullmatch(name):
                path = os.path.join(output_dir, name)
                shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.remove(path)


def resume_from_a_whole_checkpoint(output_dir):
    """Before training resumes in output_dir: when its latest checkpoint is damaged (a kill while it was
    written, a full disk), makes the newest whole one the latest, with a warning; none whole is an error."""
    state = tf.train.get_checkpoint_state(output_dir)
    if state is None or not state.model_checkpoint_path:
        return
    listed = list(state.all_model_checkpoint_paths) or [state.model_checkpoint_path]
    candidates = [os.path.join(output_dir, os.path.basename(path)) for path in reversed(listed)]
    for index, prefix in enumerate(candidates):
        try:
            checkpoints.open_checkpoint(prefix)
        except UserInputError as error:
            logging.warning("%s (not resuming from it)", error)
            continue
        if index:
            logging.warning("%s: resuming from %s, the newest whole checkpoint", output_dir, prefix)
            checkpoints.write_checkpoint_state(output_dir, os.path.basename(prefix),
                                   [os.path.basename(p) for p in reversed(candidates[index:])])
        return
    raise UserInputError(f"{output_dir}: no checkpoint there is whole ({', '.join(candidates)}); pass "
                         "--overwrite_output_dir to start afresh")


def check_run(output_dir, identity, record=True):
    """Refuses a run into output_dir that differs from the run recorded there (run.json) in anything
    both describe (identity: {what: JSON-able value}, e.g. task, bert_config, vocab, data, labels,
    class_split), before anything is written; with `record`, records this run's identity there (a
    training run; evaluation and prediction only compare)."""
    path = os.path.join(output_dir, RUN_FILE)
    identity = json.loads(json.dumps(identity))  # tuples -> lists, as they read back
    recorded = files.read_json(path, "run description", expect=dict) if os.path.exists(path) else {}
    difference = _difference(recorded, identity)
    if difference:
        what, there, now = difference
        raise UserInputError(
            f"{output_dir} holds a run with another {what} ({_describe(there)} there, {_describe(now)} now): "
            "choose another --output_dir, or pass --overwrite_output_dir to start afresh there")
    if record and any(key not in recorded for key in identity):
        files.write_text_atomic(path, json.dumps(dict(recorded, **identity), indent=2, ensure_ascii=False) + "\n")


def _difference(there, now, path=""):
    """The first (what, value there, value now) that differs among the keys both dicts have, inner dicts
    compared the same way (a run that knows less, e.g. evaluation without training data, compares less)."""
    for key in sorted(set(there) & set(now)):
        what = f"{path} {key}".strip().replace("_", " ")
        if isinstance(there[key], dict) and isinstance(now[key], dict):
            inner = _difference(there[key], now[key], what)
            if inner:
                return inner
        elif there[key] != now[key]:
            return what, there[key], now[key]
    return None


def _describe(value, width=60):
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= width else text[:width - 3] + "..."


# --- writing a trained folder -------------------------------------------------------------------------

BEST_DIR = "best"
BEST_EVAL_FILE = "best_eval.json"


def save_model_info(setup, task, **details):
    """Makes setup.output_dir self-describing for export and prediction: model_info.json (the task's
    name and what it records about itself, how text becomes ids) plus copies of bert_config.json and
    the vocab / SentencePiece model (vocab_file null when the run was given none: pretraining reads
    ids). setup: config.TrainingConfig; task: a tasks.Task."""
    text = setup.text
    vocab_name = None if text.path is None else "spm.model" if text.spm_model_file else "vocab.txt"
    os.makedirs(setup.output_dir, exist_ok=True)
    for source, name in ((setup.bert_config_file, "bert_config.json"), (text.path, vocab_name)):
        target = os.path.join(setup.output_dir, name or "")
        if source is not None and os.path.abspath(source) != os.path.abspath(target):
            files.copy_atomic(source, target)
    info = dict(task=task.name, bert_config_file="bert_config.json", vocab_file=vocab_name, tokenizer=text.kind,
                do_lower_case=text.do_lower_case, max_seq_length=setup.max_seq_length, **task.model_info(),
                **details)
    files.write_text_atomic(os.path.join(setup.output_dir, MODEL_INFO_FILE), json.dumps(info, indent=2) + "\n")


def save_label_map(labels, output_dir, multi_label=False) -> str:
    """Writes output_dir/label_map.json ({"labels": [...], "multi_label": bool}) atomically."""
    path = os.path.join(output_dir, LABEL_MAP_FILE)
    content = {"labels": list(labels), "multi_label": bool(multi_label)}
    files.write_text_atomic(path, json.dumps(content, ensure_ascii=False, indent=2) + "\n")
    return path


def load_label_map(output_dir):
    """(labels, multi_label) from output_dir/label_map.json."""
    path = os.path.join(output_dir, LABEL_MAP_FILE)
    if not os.path.exists(path):
        raise UserInputError(f"{path}: no such file (the label map a training run writes)")
    content = files.read_json(path, "label map", encoding="utf-8-sig")
    if not isinstance(content, dict):
        raise UserInputError(f'{path}: expected a JSON object {{"labels": [...], "multi_label": ...}}')
    labels = content.get("labels")
    if not (isinstance(labels, list) and labels and all(isinstance(label, str) and label for label in labels)):
        raise UserInputError(f'{path}: "labels" must be a non-empty list of non-empty strings')
    if len(set(labels)) != len(labels):
        raise UserInputError(f'{path}: "labels" lists a label more than once')
    multi_label = content.get("multi_label", False)
    if not isinstance(multi_label, bool):
        raise UserInputError(f'{path}: "multi_label" must be true or false')
    return labels, multi_label


def write_eval_results(output_dir, report):
    """output_dir/eval_results.json, and Google's eval_results.txt with the scalar entries."""
    path = os.path.join(output_dir, "eval_results")
    files.write_text_atomic(path + ".json", json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    scalars = {k: v for k, v in report.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    files.write_text_atomic(path + ".txt", "".join(f"{key} = {scalars[key]}\n" for key in sorted(scalars)))
    print(json.dumps(scalars))


def best_dir(output_dir):
    return os.path.join(output_dir, BEST_DIR)


def keep_best(checkpoint_path, destination, info):
    """Keeps one checkpoint (index + data shards) in `destination` as the best so far, with `info` (its
    score) in best_eval.json. best_eval.json, which names the checkpoint, is the commit point: the
    new checkpoint's files are copied in first, the state file and the old files follow, so a kill at
    any moment leaves a best_eval.json that names a whole checkpoint with its own score."""
    base = os.path.basename(checkpoint_path)
    folder = os.path.dirname(checkpoint_path)
    os.makedirs(destination, exist_ok=True)
    ours = [name for name in os.listdir(folder) if name.startswith(base + ".index") or name.startswith(base + ".data-")]
    for name in ours:
        files.copy_atomic(os.path.join(folder, name), os.path.join(destination, name))
    files.write_text_atomic(os.path.join(destination, BEST_EVAL_FILE),
                            json.dumps(dict(info, checkpoint=base), indent=2) + "\n")
    checkpoints.write_checkpoint_state(destination, base)
    for name in os.listdir(destination):
        if name.startswith("model.ckpt-") and name not in ours:
            os.remove(os.path.join(destination, name))


def _best(destination):
    """(checkpoint prefix, best_eval.json's content) kept in destination, or (None, None)."""
    path = os.path.join(destination, BEST_EVAL_FILE)
    if not os.path.exists(path):
        return None, None
    info = files.read_json(path, "best checkpoint's evaluation", expect=dict)
    name = info.get("checkpoint")
    prefix = os.path.join(destination, name) if isinstance(name, str) and os.path.basename(name) == name else None
    if prefix is None or not os.path.exists(prefix + ".index"):  # written before best_eval.json named it
        prefix = tf.train.latest_checkpoint(destination)
    return (prefix, info) if prefix else (None, None)


def best_value(destination, metric, data=None):
    """The value of `metric` that the checkpoint kept in `destination` scored (None: none kept, or kept by
    another metric, or scored on other evaluation data than `data`, a digest)."""
    _, info = _best(destination)
    if not info or info.get("metric") != metric or info.get("data") != data:
        return None
    return info.get("value")


def best_checkpoint(output_dir):
    """The checkpoint kept in output_dir/best, or None."""
    return _best(best_dir(output_dir))[0]


def trained_checkpoint(output_dir):
    """The checkpoint a finished run stands for: best/ when it was kept, else the latest (None: untrained)."""
    return best_checkpoint(output_dir) or tf.train.latest_checkpoint(output_dir)


PLAIN_BERT = {"pooling": "pooled", "distance": "euclidean"}  # Google's pooled output; prototypical networks


def embedding_defaults(output_dir, init_checkpoint):
    """What `auto` pooling and distance mean for a run: ({"pooling", "distance"}, {key: where from}).

    Each from the first that says: output_dir's model_info.json (a trained model keeps its own); the
    init checkpoint's folder (or, for a best/ checkpoint, its run folder): the sentence_embedding.json
    that convert_checkpoint.py writes for a sentence-transformers model, then a run's model_info.json;
    else a plain BERT's: the pooled output and squared Euclidean distance.
    """
    sources = [os.path.join(output_dir, MODEL_INFO_FILE)] if output_dir else []
    if init_checkpoint:
        folder = init_checkpoint if os.path.isdir(init_checkpoint) else os.path.dirname(init_checkpoint)
        folders = [folder] + ([os.path.dirname(folder)] if os.path.basename(folder) == "best" else [])
        sources += [os.path.join(f, name) for f in folders
                    for name in (checkpoints.SENTENCE_EMBEDDING_FILE, MODEL_INFO_FILE)]
    chosen, origin = {}, {}
    for path in sources:
        if not os.path.exists(path):
            continue
        recorded = files.read_json(path, "model description", expect=dict)
        for key, allowed in (("pooling", heads.POOLINGS), ("distance", heads.DISTANCES)):
            value = recorded.get(key)
            if key in chosen or value is None:
                continue
            if value not in allowed:
                raise UserInputError(f"{path}: {key} {value!r} is not one of {', '.join(allowed)}")
            chosen[key], origin[key] = value, path
    for key, value in PLAIN_BERT.items():
        if key not in chosen:
            chosen[key], origin[key] = value, "a plain BERT's default"
    return chosen, origin
