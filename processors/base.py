"""InputExample, ProcessorOptions and DataProcessor: the interface every processor implements.

A processor knows which file holds each split (`data_file`), how to turn that file into
`InputExample`s (`read_examples`), and, when the task fixes them, its labels (`get_labels`).
"""
import dataclasses
import os
from typing import List, Optional, Union

from bert.errors import UserInputError

SPLITS = ("train", "dev", "test")


@dataclasses.dataclass
class InputExample:
    """One text (or text pair) to classify.

    `label` is None when unknown (test files), a string, or a list of strings for multi-label data.
    `source` is "path:line", so that later stages can say where a bad example came from.
    """
    guid: str
    text_a: str
    text_b: Optional[str] = None
    label: Union[None, str, List[str]] = None
    source: str = ""


@dataclasses.dataclass
class ProcessorOptions:
    """How a processor reads its files; scripts fill it from flags and every field has a default."""
    text_a_column: str = "text_a"
    text_b_column: Optional[str] = "text_b"  # used only when the header (or JSON object) has it
    label_column: str = "label"
    has_header: bool = True  # False: rows are label,text_a[,text_b] (csv and tsv)
    multi_label: bool = False
    label_separator: str = ","  # multi-label: the labels within one field are split on this
    # Base names get the processor's extension added ("train" -> "train.tsv"); full names are kept.
    train_file: str = "train"
    dev_file: str = "dev"
    test_file: str = "test"
    language: str = "zh"  # xnli: the language whose rows are read from xnli.dev.tsv / xnli.test.tsv

    def __post_init__(self):
        for field in ("text_a_column", "label_column", "train_file", "dev_file", "test_file"):
            if not getattr(self, field):
                raise UserInputError(f"processor option {field} must not be empty")
        if self.multi_label and not self.label_separator:
            raise UserInputError("processor option label_separator must not be empty when multi_label is set")


_DEFAULT_OPTIONS = ProcessorOptions()


class DataProcessor:
    """Turns a data folder into InputExamples for the train, dev and test splits.

    Subclasses set `extensions` and implement `read_examples(path, split)`; they may set
    `split_files` (a split's own file name, used while the options keep their default name) and
    override `get_labels` when the task fixes its label set. A subclass registered with
    `@register_processor("name")` can be chosen by name on the command line.
    """
    name = None  # the registry key, set by register_processor
    extensions = (".tsv",)  # tried in order when a file name is given without one
    split_files = {}  # e.g. {"dev": "dev_matched.tsv"}; an option changed from its default wins

    def __init__(self, options: Optional[ProcessorOptions] = None):
        self.options = options if options is not None else ProcessorOptions()

    # --- the interface scripts use -------------------------------------------------------------

    def get_train_examples(self, data_dir) -> List[InputExample]:
        return self.get_examples(data_dir, "train")

    def get_dev_examples(self, data_dir) -> List[InputExample]:
        return self.get_examples(data_dir, "dev")

    def get_test_examples(self, data_dir) -> List[InputExample]:
        """Test examples; their labels may be None."""
        return self.get_examples(data_dir, "test")

    def get_labels(self) -> Optional[List[str]]:
        """The task's labels in id order, or None when they come from the training data."""
        return None

    def data_file(self, data_dir, split) -> str:
        """The path `split` is read from (also the key of any cache built from it)."""
        name = self.file_name(split)
        if name.endswith(tuple(self.extensions)):
            return os.path.join(data_dir, name)
        candidates = [os.path.join(data_dir, name + extension) for extension in self.extensions]
        for candidate in candidates:
            if os.path.isfile(candidate):
                return candidate
        if os.path.isfile(os.path.join(data_dir, name)):  # a full name with another extension
            return os.path.join(data_dir, name)
        return candidates[0]

    # --- what subclasses build on --------------------------------------------------------------

    def file_name(self, split) -> str:
        """The file name of `split` inside the data folder, before an extension is added."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
        option = f"{split}_file"
        chosen = getattr(self.options, option)
        if chosen == getattr(_DEFAULT_OPTIONS, option) and split in self.split_files:
            return self.split_files[split]
        return chosen

    def get_examples(self, data_dir, split) -> List[InputExample]:
        path = self.data_file(data_dir, split)
        if not os.path.isfile(path):
            raise UserInputError(self._missing_file_message(data_dir, split, path))
        return self.read_examples(path, split)

    def read_examples(self, path, split) -> List[InputExample]:
        """Reads the examples of `split` from the file at `path`."""
        raise NotImplementedError(f"{type(self).__name__} must implement read_examples(path, split)")

    def make_example(self, split, index, path, line, text_a, text_b=None, label=None,
                     text_a_name="text_a", label_name="label") -> InputExample:
        """An InputExample from raw field values, checked: text_a must not be empty, nor the
        label outside test files. `text_a_name` and `label_name` say where the values came from
        (a column or field name) in error messages."""
        where = f"{path}:{line}"
        if text_a is None or not text_a.strip():
            raise UserInputError(f"{where}: empty text_a ({text_a_name})")
        if text_b is not None and not text_b.strip():
            text_b = None
        return InputExample(guid=f"{split}-{index}", text_a=text_a, text_b=text_b,
                            label=self.parse_label(label, split, where, label_name), source=where)

    def parse_label(self, raw, split, where, label_name="label"):
        """None (allowed only in test files), a stripped string, or for multi-label a list of the
        non-empty stripped parts of `raw` split on the label separator (a list is taken as it is)."""
        if raw is None:
            parts = []
        elif isinstance(raw, list):
            if not self.options.multi_label:
                raise UserInputError(f"{where}: the label ({label_name}) is a list; "
                                     "set multi_label for data with several labels per example")
            parts = [str(part).strip() for part in raw]
        elif self.options.multi_label:
            parts = [part.strip() for part in raw.split(self.options.label_separator)]
        else:
            parts = [raw.strip()]
        parts = list(dict.fromkeys(part for part in parts if part))  # drop empties and repeats
        if not parts:
            if split == "test":
                return None
            raise UserInputError(f"{where}: empty label ({label_name})")
        return parts if self.options.multi_label else parts[0]

    def _missing_file_message(self, data_dir, split, path):
        message = f"{path}: no such file (the {split} file of the '{self.name}' processor"
        name = self.file_name(split)
        if not name.endswith(tuple(self.extensions)) and len(self.extensions) > 1:
            tried = ", ".join(name + extension for extension in self.extensions)
            message += f"; tried {tried}"
        message += ")"
        if not os.path.isdir(data_dir):
            message += f"; the folder {data_dir} does not exist"
        return message
