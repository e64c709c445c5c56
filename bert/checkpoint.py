"""Checkpoints: initialisation with a report, and conversion to and from Hugging Face BERT.

`init_from_checkpoint` is the one checkpoint-init path of every script: it maps graph variables to
checkpoint variables, refuses a shape mismatch by name, and logs each variable as loaded, not in the
checkpoint (left at its initialiser) or, for the checkpoint's own variables, unused.

`hf_to_google` / `google_to_hf` convert between a Hugging Face BERT folder (config.json,
model.safetensors or pytorch_model.bin, vocab.txt or tokenizer.json) and a Google-style folder
(bert_config.json, bert_model.ckpt.*, vocab.txt, and tokenizer_config.json when the lower-casing is
known) with numpy and the `safetensors` package, no torch involved. `pytorch_model.bin` is read by a
weights-only unpickler (read_pytorch_zip) that refuses every global a state dict does not need. Every
weight's shape is checked against the config before anything is written.
"""
import collections
import dataclasses
import glob
import importlib.util
import json
import os
import pickle
import re
import shutil
import tempfile
import zipfile

import numpy as np
import safetensors
import safetensors.numpy
import tensorflow as tf
from absl import logging

from bert import files, model_folder, modeling
from bert.errors import UserInputError

tf1 = tf.compat.v1

CHECKPOINT_NAME = "bert_model.ckpt"
# Checkpoint entries that are training state rather than model weights.
_BOOKKEEPING_SUFFIXES = ("/adam_m", "/adam_v", "/grad_accum")
_BOOKKEEPING_NAMES = ("global_step",)


def _is_bookkeeping(name):
    return name in _BOOKKEEPING_NAMES or name.endswith(_BOOKKEEPING_SUFFIXES) or name.startswith(
        "optimizer_state/")


def _one_line(text):
    return " ".join(str(text).split())


def _find_checkpoint(path):
    """A checkpoint prefix from a prefix, a folder with a `checkpoint` file, or a folder with bert_model.ckpt."""
    path = str(path)
    if os.path.isdir(path):
        latest = tf.train.latest_checkpoint(path)
        if latest:
            return latest
        candidate = os.path.join(path, CHECKPOINT_NAME)
        if os.path.exists(candidate + ".index"):
            return candidate
        raise UserInputError(f"{path}: no TensorFlow checkpoint in this folder")
    if os.path.exists(path + ".index"):
        return path
    raise UserInputError(f"{path}: checkpoint not found (expected {path}.index)")


def open_checkpoint(path):
    """(prefix, tf.train.CheckpointReader) for a checkpoint prefix or folder, once its files look whole.

    The index is read (names, shapes, dtypes) and the data shards' total size compared with the bytes
    its tensors need, so a truncated .index or data shard is a UserInputError naming the checkpoint
    before any graph runs. No tensor is read here: Estimator reads each one once when it initialises,
    and TensorFlow's checksum catches damage inside a data file that keeps its length at that read.
    """
    prefix = _find_checkpoint(path)
    try:
        reader = tf.train.load_checkpoint(prefix)
    except tf.errors.OpError as error:
        raise UserInputError(f"{prefix}: unreadable checkpoint index ({_one_line(error.message)}); "
                             "the checkpoint is truncated or damaged") from None
    shapes, dtypes = reader.get_variable_to_shape_map(), reader.get_variable_to_dtype_map()
    needed = sum(int(np.prod(shapes[name], dtype=np.int64)) * dtypes[name].size
                 for name in shapes if dtypes[name] != tf.string)  # strings have no fixed size
    shards = sorted(glob.glob(glob.escape(prefix) + ".data-[0-9][0-9][0-9][0-9][0-9]-of-[0-9][0-9][0-9][0-9][0-9]"))
    count = int(shards[-1][-5:]) if shards else 1
    expected = [f"{prefix}.data-{i:05d}-of-{count:05d}" for i in range(count)]
    missing = [shard for shard in expected if shard not in shards]
    if needed and missing:
        raise UserInputError(f"{prefix}: the checkpoint lacks its data file {missing[0]}")
    stored = sum(os.path.getsize(shard) for shard in expected if shard in shards)
    if stored < needed:
        raise UserInputError(f"{prefix}: the checkpoint's data holds {stored} bytes but its index lists "
                             f"{needed} bytes of tensors; the checkpoint is truncated")
    return prefix, reader


def resolve_checkpoint(path):
    """The prefix of the checkpoint at `path` (a prefix or folder); a UserInputError naming it when it is
    missing, truncated or unreadable (see open_checkpoint)."""
    return open_checkpoint(path)[0]


@dataclasses.dataclass
class InitReport:
    """What init_from_checkpoint did: (graph name, checkpoint name) pairs loaded, and the rest."""
    checkpoint: str
    loaded: list
    not_in_checkpoint: list
    unused_in_checkpoint: list  # model weights the graph did not take
    skipped_bookkeeping: list  # optimizer slots, global_step, ...

    def log(self):
        """Per variable: loaded ones at verbosity 1 (--verbosity=1), the rest at INFO; then a summary."""
        for graph_name, ckpt_name in self.loaded:
            suffix = "" if graph_name == ckpt_name else f" <- {ckpt_name}"
            logging.vlog(1, "  loaded: %s%s", graph_name, suffix)
        for name in self.not_in_checkpoint:
            logging.info("  not in checkpoint (initialised fresh): %s", name)
        for name in self.unused_in_checkpoint:
            logging.info("  unused in checkpoint: %s", name)
        logging.info("%s", self.summary())

    def summary(self):
        return (f"init from {self.checkpoint}: {len(self.loaded)} variables loaded, "
                f"{len(self.not_in_checkpoint)} not in the checkpoint, "
                f"{len(self.unused_in_checkpoint)} checkpoint weights unused, "
                f"{len(self.skipped_bookkeeping)} optimizer/bookkeeping entries ignored")


def build_assignment_map(tvars, checkpoint, name_map=None):
    """Matches graph variables to a checkpoint's; returns ({ckpt name: graph name}, InitReport).

    name_map: optional function from a graph variable name to the checkpoint name to load it from
    (e.g. to load "encoder/..." from "bert/..."); identity by default.
    Raises UserInputError naming the variable when shapes differ.
    """
    checkpoint, reader = open_checkpoint(checkpoint)
    ckpt_shapes = reader.get_variable_to_shape_map()
    assignment, loaded, missing, used = {}, [], [], set()
    for var in tvars:
        graph_name = var.op.name
        ckpt_name = name_map(graph_name) if name_map else graph_name
        if ckpt_name not in ckpt_shapes:
            missing.append(graph_name)
            continue
        graph_shape = var.shape.as_list()
        if list(ckpt_shapes[ckpt_name]) != graph_shape:
            raise UserInputError(
                f"{checkpoint}: variable {ckpt_name} has shape {list(ckpt_shapes[ckpt_name])} in the "
                f"checkpoint but {graph_name} has shape {graph_shape} in the model; does the config "
                f"match the checkpoint?")
        assignment[ckpt_name] = graph_name
        loaded.append((graph_name, ckpt_name))
        used.add(ckpt_name)
    rest = sorted(set(ckpt_shapes) - used)
    report = InitReport(checkpoint, loaded, missing,
                        [n for n in rest if not _is_bookkeeping(n)], [n for n in rest if _is_bookkeeping(n)])
    return assignment, report


def init_from_checkpoint(checkpoint, tvars=None, name_map=None):
    """Makes the graph's variables start from `checkpoint` (graph mode); logs and returns an InitReport."""
    if tvars is None:
        tvars = tf1.trainable_variables()
    assignment, report = build_assignment_map(tvars, checkpoint, name_map)
    if assignment:
        tf1.train.init_from_checkpoint(report.checkpoint, assignment)
    report.log()
    return report


def read_checkpoint(checkpoint):
    """{name: numpy array} for every variable in a TensorFlow checkpoint."""
    prefix, reader = open_checkpoint(checkpoint)
    arrays = {}
    for name in sorted(reader.get_variable_to_shape_map()):
        try:
            arrays[name] = reader.get_tensor(name)
        except tf.errors.OpError as error:  # e.g. a checksum mismatch in a damaged data file
            raise UserInputError(f"{prefix}: cannot read {name} ({_one_line(error.message)}); "
                                 "the checkpoint is damaged") from None
    return arrays


def write_checkpoint(arrays, prefix):
    """Writes {name: numpy array} as a TF checkpoint at `prefix` (and a `checkpoint` file beside it)."""
    names = sorted(arrays)
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.convert_to_tensor(arrays[n]) for n in names])
    model_folder.write_checkpoint_state(os.path.dirname(prefix), os.path.basename(prefix))


# --- safetensors ------------------------------------------------------------------------------------
# The `safetensors` package parses and checks the file: the header must be a JSON object whose every
# tensor has a known dtype, a shape and data_offsets that fit its bytes and cover the file. Its errors
# become one-line UserInputErrors naming the file. bfloat16 has no numpy type of its own: TensorFlow's
# (ml_dtypes') bfloat16 type, registered with numpy on import, reads it, and it is widened to float32.
_BFLOAT16 = tf.bfloat16.as_numpy_dtype
_ST_READABLE = ("F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U64", "U32", "U16", "U8", "BOOL")


def read_safetensors(path):
    """{name: numpy array} from a .safetensors file (bfloat16 returned as float32)."""
    try:
        with safetensors.safe_open(path, framework="np") as reader:
            arrays = {}
            for name in reader.keys():
                dtype = reader.get_slice(name).get_dtype()
                if dtype not in _ST_READABLE:
                    raise UserInputError(f"{path}: tensor {name} has unsupported dtype {dtype}")
                array = reader.get_tensor(name)
                arrays[name] = array.astype(np.float32) if array.dtype == _BFLOAT16 else array
            return arrays
    except FileNotFoundError:
        raise UserInputError(f"{path}: file not found") from None
    except OSError as error:
        raise UserInputError(f"{path}: cannot read ({error.strerror or error})") from None
    except safetensors.SafetensorError as error:
        raise UserInputError(f"{path}: not a valid safetensors file ({_one_line(error)})") from None


def write_safetensors(arrays, path, metadata=None):
    """Writes {name: numpy array} as a .safetensors file; metadata: optional {str: str} for its header."""
    # The package writes each array's memory as it lies: a transposed view must be made contiguous first.
    # (np.ascontiguousarray would turn a scalar into shape [1].)
    tensors = {name: np.asarray(array, order="C") for name, array in arrays.items()}
    safetensors.numpy.save_file(tensors, path,
                                metadata={str(k): str(v) for k, v in metadata.items()} if metadata else None)


# --- Hugging Face <-> Google names ----------------------------------------------------------------
# Each weight's Google shape as the config fields that fix it ("hidden_size", ...), a number, or None
# where the config says nothing (a classifier's label count).
_H, _I = "hidden_size", "intermediate_size"


def _name_pairs(num_layers):
    """(Hugging Face name without "bert." prefix, Google name, transpose, Google shape) for every BERT weight."""
    pairs = [
        ("embeddings.word_embeddings.weight", "bert/embeddings/word_embeddings", False, ("vocab_size", _H)),
        ("embeddings.position_embeddings.weight", "bert/embeddings/position_embeddings", False,
         ("max_position_embeddings", _H)),
        ("embeddings.token_type_embeddings.weight", "bert/embeddings/token_type_embeddings", False,
         ("type_vocab_size", _H)),
        ("embeddings.LayerNorm.weight", "bert/embeddings/LayerNorm/gamma", False, (_H,)),
        ("embeddings.LayerNorm.bias", "bert/embeddings/LayerNorm/beta", False, (_H,)),
        ("pooler.dense.weight", "bert/pooler/dense/kernel", True, (_H, _H)),
        ("pooler.dense.bias", "bert/pooler/dense/bias", False, (_H,)),
    ]
    for i in range(num_layers):
        hf, google = f"encoder.layer.{i}.", f"bert/encoder/layer_{i}/"
        for hf_part, google_part, kernel in (("attention.self.query", "attention/self/query", (_H, _H)),
                                             ("attention.self.key", "attention/self/key", (_H, _H)),
                                             ("attention.self.value", "attention/self/value", (_H, _H)),
                                             ("attention.output.dense", "attention/output/dense", (_H, _H)),
                                             ("intermediate.dense", "intermediate/dense", (_H, _I)),
                                             ("output.dense", "output/dense", (_I, _H))):
            pairs.append((f"{hf}{hf_part}.weight", f"{google}{google_part}/kernel", True, kernel))
            pairs.append((f"{hf}{hf_part}.bias", f"{google}{google_part}/bias", False, kernel[1:]))
        for hf_part, google_part in (("attention.output.LayerNorm", "attention/output/LayerNorm"),
                                     ("output.LayerNorm", "output/LayerNorm")):
            pairs.append((f"{hf}{hf_part}.weight", f"{google}{google_part}/gamma", False, (_H,)))
            pairs.append((f"{hf}{hf_part}.bias", f"{google}{google_part}/beta", False, (_H,)))
    return pairs


# Heads: (Hugging Face name, Google name, transpose, Google shape). Google's output_weights are [out, in] already.
_HEAD_PAIRS = [
    ("cls.predictions.transform.dense.weight", "cls/predictions/transform/dense/kernel", True, (_H, _H)),
    ("cls.predictions.transform.dense.bias", "cls/predictions/transform/dense/bias", False, (_H,)),
    ("cls.predictions.transform.LayerNorm.weight", "cls/predictions/transform/LayerNorm/gamma", False, (_H,)),
    ("cls.predictions.transform.LayerNorm.bias", "cls/predictions/transform/LayerNorm/beta", False, (_H,)),
    ("cls.predictions.bias", "cls/predictions/output_bias", False, ("vocab_size",)),
    ("cls.seq_relationship.weight", "cls/seq_relationship/output_weights", False, (2, _H)),
    ("cls.seq_relationship.bias", "cls/seq_relationship/output_bias", False, (2,)),
    ("classifier.weight", "output_weights", False, (None, _H)),
    ("classifier.bias", "output_bias", False, (None,)),
]
_HEADS = {"masked-LM head": "cls/predictions/", "next-sentence head": "cls/seq_relationship/",
          "pooler": "bert/pooler/", "classifier": "output_"}
# An encoder layer's weights, and its index, in each layout.
_HF_LAYER = re.compile(r"(?:bert\.)?encoder\.layer\.(\d+)\.")
_GOOGLE_LAYER = re.compile(r"bert/encoder/layer_(\d+)/")
# Hugging Face entries that are derived, not weights: buffers and the decoder tied to the embeddings.
_HF_DERIVED = ("embeddings.position_ids", "cls.predictions.decoder.weight", "cls.predictions.decoder.bias")

_CONFIG_KEYS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                "hidden_dropout_prob", "attention_probs_dropout_prob", "max_position_embeddings",
                "type_vocab_size", "initializer_range", "layer_norm_eps")
# Activation names: Hugging Face's "gelu" is erf-GELU, Google's "gelu" the tanh approximation.
_HF_TO_GOOGLE_ACT = {"gelu": "gelu_exact", "gelu_new": "gelu", "gelu_pytorch_tanh": "gelu", "relu": "relu",
                     "tanh": "tanh", "silu": "swish", "swish": "swish"}
_GOOGLE_TO_HF_ACT = {"gelu": "gelu_new", "gelu_new": "gelu_new", "gelu_exact": "gelu", "relu": "relu",
                     "tanh": "tanh", "swish": "silu", "silu": "silu"}


def _check_layer_count(source, layer_indices, config, config_path):
    """The weights' encoder layers (their indices) must be as many as the config's num_hidden_layers."""
    count = max(layer_indices, default=-1) + 1
    if count != config.num_hidden_layers:
        raise UserInputError(f"{source}: the weights have {count} encoder layers but {config_path} implies "
                             f"{config.num_hidden_layers} (num_hidden_layers)")


def _check_shape(source, name, shape, google_shape, transpose, config, config_path):
    """Raises a UserInputError naming the weight unless `shape` is what the config implies."""
    fields = google_shape[::-1] if transpose else google_shape
    expected = [getattr(config, f) if isinstance(f, str) else f for f in fields]
    shape = [int(d) for d in shape]
    if len(shape) != len(expected) or any(e is not None and e != d for e, d in zip(expected, shape)):
        implied = ", ".join("any" if e is None else str(e) for e in expected)
        why = ", ".join("any" if f is None else str(f) for f in fields)
        raise UserInputError(f"{source}: {name} has shape {shape} but {config_path} implies [{implied}] ({why})")


@dataclasses.dataclass
class ConversionReport:
    converted: int
    absent_heads: list  # heads the source does not have (reported, never invented)
    ignored: list  # source entries not converted

    def summary(self):
        lines = [f"converted {self.converted} tensors"]
        if self.absent_heads:
            lines.append("the source has no " + ", ".join(self.absent_heads) + " (not created)")
        if self.ignored:
            lines.append("not converted: " + ", ".join(self.ignored))
        return "; ".join(lines)


def _absent_heads(google_names):
    return [head for head, prefix in _HEADS.items() if not any(n.startswith(prefix) for n in google_names)]


def _prepare_output(output_dir, overwrite):
    """A temporary folder beside output_dir; the caller renames it into place when complete."""
    if os.path.exists(output_dir) and os.listdir(output_dir) and not overwrite:
        raise UserInputError(f"{output_dir}: already exists and is not empty (pass --overwrite to replace it)")
    parent = os.path.dirname(os.path.abspath(output_dir))
    os.makedirs(parent, exist_ok=True)
    return tempfile.mkdtemp(dir=parent, prefix=".tmp-convert-")


def _finish_output(tmp_dir, output_dir):
    os.chmod(tmp_dir, 0o777 & ~files.umask())  # mkdtemp makes it private
    if os.path.exists(output_dir):
        shutil.rmtree(output_dir)
    os.replace(tmp_dir, output_dir)


def _convert_into(output_dir, overwrite, write):
    tmp_dir = _prepare_output(output_dir, overwrite)
    try:
        report = write(tmp_dir)
        _finish_output(tmp_dir, output_dir)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    logging.info("%s -> %s", report.summary(), output_dir)
    return report


def hf_to_google(input_dir, output_dir, overwrite=False):
    """Hugging Face BERT folder -> Google-style folder. Returns a ConversionReport."""
    hf_config = files.read_json(os.path.join(input_dir, "config.json"), expect=dict)
    if hf_config.get("model_type", "bert") != "bert":
        raise UserInputError(f"{input_dir}/config.json: model_type {hf_config['model_type']!r} is not BERT")
    if hf_config.get("position_embedding_type", "absolute") != "absolute":
        raise UserInputError(f"{input_dir}/config.json: only absolute position embeddings are supported")
    act = hf_config.get("hidden_act", "gelu")
    if act not in _HF_TO_GOOGLE_ACT:
        raise UserInputError(f"{input_dir}/config.json: unsupported hidden_act {act!r}")
    try:
        config = modeling.BertConfig(hidden_act=_HF_TO_GOOGLE_ACT[act],
                                     **{k: hf_config[k] for k in _CONFIG_KEYS if k in hf_config})
    except (TypeError, UserInputError) as error:
        raise UserInputError(f"{input_dir}/config.json: {error}") from None

    weights_path = os.path.join(input_dir, "model.safetensors")
    if not os.path.exists(weights_path):
        raise UserInputError(f"{weights_path}: not found (only safetensors weights are read; no torch here)")
    tensors = read_safetensors(weights_path)
    prefix = "bert." if any(k.startswith("bert.") for k in tensors) else ""

    def hf_name(name):  # encoder weights may carry "bert." (BertForPreTraining) or not (BertModel)
        return name if name.startswith(("cls.", "classifier.")) else prefix + name

    config_path = os.path.join(input_dir, "config.json")
    _check_layer_count(weights_path, [int(m.group(1)) for m in map(_HF_LAYER.match, tensors) if m],
                       config, config_path)
    arrays, used = {}, set()
    for hf, google, transpose, google_shape in _name_pairs(config.num_hidden_layers) + _HEAD_PAIRS:
        source = hf_name(hf)
        if source not in tensors and source.endswith("LayerNorm.weight"):
            source = source[:-len("weight")] + "gamma"  # older transformers names
        if source not in tensors and source.endswith("LayerNorm.bias"):
            source = source[:-len("bias")] + "beta"
        if source not in tensors:
            if google.startswith("bert/") and not google.startswith("bert/pooler/"):
                raise UserInputError(f"{weights_path}: missing {source}, which every BERT encoder has")
            continue
        _check_shape(weights_path, source, tensors[source].shape, google_shape, transpose, config, config_path)
        value = tensors[source].astype(np.float32)
        arrays[google] = np.ascontiguousarray(value.T if transpose else value)
        used.add(source)
    ignored = sorted(k for k in tensors if k not in used and k.replace(prefix, "", 1) not in _HF_DERIVED)

    def write(tmp_dir):
        write_checkpoint(arrays, os.path.join(tmp_dir, CHECKPOINT_NAME))
        config.to_json_file(os.path.join(tmp_dir, "bert_config.json"))
        _copy_vocab(input_dir, tmp_dir)
        return ConversionReport(len(arrays), _absent_heads(arrays), ignored)

    return _convert_into(output_dir, overwrite, write)


def google_to_hf(input_dir, output_dir, overwrite=False, do_lower_case=None):
    """Google-style folder -> Hugging Face BERT folder. Returns a ConversionReport."""
    config_path = os.path.join(input_dir, "bert_config.json")
    config = modeling.BertConfig.from_json_file(config_path)
    ckpt, reader = open_checkpoint(input_dir)
    shapes = reader.get_variable_to_shape_map()
    _check_layer_count(ckpt, [int(m.group(1)) for m in map(_GOOGLE_LAYER.match, shapes) if m], config, config_path)
    pairs = _name_pairs(config.num_hidden_layers) + _HEAD_PAIRS
    for _, google, _, google_shape in pairs:  # every shape, before a tensor is read
        if google in shapes:
            _check_shape(ckpt, google, shapes[google], google_shape, False, config, config_path)
    arrays = read_checkpoint(ckpt)
    tensors, used = {}, set()
    has_pretraining_heads = any(n.startswith("cls/") for n in arrays)
    prefix = "bert." if has_pretraining_heads else ""
    for hf, google, transpose, _ in pairs:
        if google not in arrays:
            if google.startswith("bert/") and not google.startswith("bert/pooler/"):
                raise UserInputError(f"{input_dir}: checkpoint lacks {google}, which every BERT encoder has")
            continue
        value = arrays[google].astype(np.float32)
        name = hf if hf.startswith(("cls.", "classifier.")) else prefix + hf
        tensors[name] = np.ascontiguousarray(value.T if transpose else value)
        used.add(google)
    ignored = sorted(n for n in arrays if n not in used and not _is_bookkeeping(n))
    architecture = ("BertForPreTraining" if has_pretraining_heads else
                    "BertForSequenceClassification" if "output_weights" in arrays else "BertModel")
    hf_config = {k: getattr(config, k) for k in _CONFIG_KEYS}
    hf_config.update(model_type="bert", architectures=[architecture], pad_token_id=0,
                     position_embedding_type="absolute",
                     hidden_act=_GOOGLE_TO_HF_ACT.get(config.hidden_act, config.hidden_act))
    if "output_weights" in arrays:
        hf_config["num_labels"] = int(arrays["output_weights"].shape[0])

    def write(tmp_dir):
        write_safetensors(tensors, os.path.join(tmp_dir, "model.safetensors"), metadata={"format": "pt"})
        files.write_text_atomic(os.path.join(tmp_dir, "config.json"),
                                   json.dumps(hf_config, indent=2, sort_keys=True) + "\n")
        if do_lower_case is not None:
            files.write_text_atomic(
                os.path.join(tmp_dir, "tokenizer_config.json"),
                json.dumps({"tokenizer_class": "BertTokenizer", "do_lower_case": bool(do_lower_case)}) + "\n")
        _copy_vocab(input_dir, tmp_dir)
        return ConversionReport(len(tensors), _absent_heads(arrays), ignored)

    return _convert_into(output_dir, overwrite, write)


def _copy_vocab(input_dir, output_dir):
    vocab = os.path.join(input_dir, "vocab.txt")
    if os.path.exists(vocab):
        shutil.copyfile(vocab, os.path.join(output_dir, "vocab.txt"))
    else:
        logging.warning("%s has no vocab.txt; the converted folder has none either", input_dir)
