"""The built-in processors.

Generic formats, columns chosen by name through ProcessorOptions:
  tsv     train.tsv / dev.tsv / test.tsv, tab-separated with a header row, no quoting
  csv     train.csv / dev.csv / test.csv, the csv module's default dialect (quoted fields)
  jsonl   train.json / dev.json / test.json (or .jsonl), one JSON object per line (FewCLUE)

Fixed layouts, read the way google-research/bert's run_classifier.py reads them:
  mrpc    train.tsv / dev.tsv / test.tsv with a header; label, -, -, text_a, text_b
  cola    train.tsv / dev.tsv without a header: -, label, -, text_a; test.tsv with a header: -, text_a
  mnli    train.tsv / dev_matched.tsv / test_matched.tsv with a header; text_a in column 8,
          text_b in column 9, the label in the last column (test files have none)
  xnli    train: multinli/multinli.train.<language>.tsv with the columns premise, hypo, label
          ("contradictory" is read as "contradiction"); dev and test: xnli.dev.tsv and
          xnli.test.tsv, the rows whose `language` column is options.language, with the columns
          sentence1, sentence2 and gold_label
Tab-separated files are read with quoting off: MRPC has sentences that open a double quote and
never close it.
"""
import json
from typing import List

from absl import logging

from bert.errors import UserInputError

from processors.base import DataProcessor, InputExample
from processors.readers import CSV, TSV, json_type, read_json_lines, read_table
from processors.registry import register_processor

NLI_LABELS = ["contradiction", "entailment", "neutral"]


# --- generic formats --------------------------------------------------------------------------


class TableProcessor(DataProcessor):
    """A TSV or CSV file whose header names its columns (found by name, in any order, through the
    options), or, with has_header=False, rows of label,text_a[,text_b]."""
    file_format = TSV

    def read_examples(self, path, split) -> List[InputExample]:
        options = self.options
        if not options.has_header:
            table = read_table(path, self.file_format, has_header=False, num_columns=(2, 3))
            return [self.make_example(split, index, path, line, text_a=fields[1],
                                      text_b=fields[2] if len(fields) > 2 else None, label=fields[0],
                                      text_a_name="column 2", label_name="column 1")
                    for index, (line, fields) in enumerate(table.rows)]
        table = read_table(path, self.file_format, has_header=True)
        text_a = table.column(options.text_a_column)
        text_b = table.column(options.text_b_column, required=False) if options.text_b_column else None
        label = table.column(options.label_column, required=split != "test")
        examples = []
        for line, fields in table.rows:
            examples.append(self.make_example(
                split, len(examples), path, line, text_a=fields[text_a],
                text_b=fields[text_b] if text_b is not None else None,
                label=fields[label] if label is not None else None,
                text_a_name=f"column '{options.text_a_column}'", label_name=f"column '{options.label_column}'"))
        return examples


@register_processor("tsv")
class TsvProcessor(TableProcessor):
    file_format = TSV
    extensions = (".tsv",)


@register_processor("csv")
class CsvProcessor(TableProcessor):
    file_format = CSV
    extensions = (".csv",)


@register_processor("jsonl")
class JsonLinesProcessor(DataProcessor):
    """One JSON object per line; text_a, text_b and label are fields named by the options. A label
    that is a number becomes its string, a whole number without a decimal point (1 and 1.0 are the
    one class "1"; a fractional one such as 2.5 gets a warning); with multi_label a label may also
    be a JSON array."""
    extensions = (".json", ".jsonl")

    def read_examples(self, path, split) -> List[InputExample]:
        options = self.options
        examples = []
        fractional = []  # (line, label) of labels that are numbers but not whole ones
        for line, record in read_json_lines(path):
            where = f"{path}:{line}"
            text_a = self._text(record, options.text_a_column, where, required=True)
            text_b = self._text(record, options.text_b_column, where) if options.text_b_column else None
            if options.label_column not in record and split != "test":
                raise UserInputError(f"{where}: no field '{options.label_column}' (the label); "
                                     f"the object's fields are {sorted(record)}")
            raw = record.get(options.label_column)
            label = self._label(raw, options.label_column, where)
            if any(isinstance(value, float) and not value.is_integer() for value in _as_list(raw)):
                fractional.append((line, raw))
            examples.append(self.make_example(split, len(examples), path, line, text_a, text_b, label,
                                              text_a_name=f"field '{options.text_a_column}'",
                                              label_name=f"field '{options.label_column}'"))
        if fractional:
            line, raw = fractional[0]
            logging.warning("%s:%d: the label %s is not a whole number; each distinct value is a class of its own "
                            "(%d line(s) of the file have such labels)", path, line, json.dumps(raw), len(fractional))
        return examples

    @staticmethod
    def _text(record, field, where, required=False):
        if field not in record:
            if required:
                raise UserInputError(f"{where}: no field '{field}' (text_a); "
                                     f"the object's fields are {sorted(record)}")
            return None
        value = record[field]
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise UserInputError(f"{where}: field '{field}' is {json_type(value)}, not text")

    @staticmethod
    def _label(value, field, where):
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, bool):
            raise UserInputError(f"{where}: field '{field}' (the label) is a boolean; write it as a string")
        if isinstance(value, (int, float)):
            return _number_label(value)
        if isinstance(value, list) and all(isinstance(part, (str, int, float)) and not isinstance(part, bool)
                                           for part in value):
            return [part if isinstance(part, str) else _number_label(part) for part in value]
        raise UserInputError(f"{where}: field '{field}' (the label) is {json_type(value)}, "
                             "expected a string or a number")


def _number_label(value) -> str:
    """A JSON number as a class name: whole numbers without a decimal point (1.0 -> "1", like 1)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _as_list(value):
    return value if isinstance(value, list) else [value]


# --- fixed layouts (google-research/bert's run_classifier.py) ---------------------------------


class ColumnLayoutProcessor(DataProcessor):
    """Tab-separated files whose columns are found by position.

    `layouts` maps a split to (has_header, number of columns without a header, text_a column,
    text_b column or None, label column or None); column numbers count from 0, -1 is the last.
    """
    extensions = (".tsv",)
    labels = None
    layouts = {}

    def get_labels(self):
        return list(self.labels) if self.labels is not None else None

    def read_examples(self, path, split) -> List[InputExample]:
        has_header, num_columns, text_a, text_b, label = self.layouts[split]
        table = read_table(path, TSV, has_header=has_header, num_columns=num_columns)
        return [self.make_example(split, index, path, line, text_a=fields[text_a],
                                  text_b=fields[text_b] if text_b is not None else None,
                                  label=fields[label] if label is not None else None,
                                  text_a_name=f"column {_ordinal(text_a)}",
                                  label_name=f"column {_ordinal(label)}")
                for index, (line, fields) in enumerate(table.rows)]


def _ordinal(column):
    return "last" if column == -1 else str(column + 1) if column is not None else "none"


@register_processor("mrpc")
class MrpcProcessor(ColumnLayoutProcessor):
    """GLUE MRPC: Quality, #1 ID, #2 ID, #1 String, #2 String; test rows start with an index."""
    labels = ["0", "1"]
    layouts = {"train": (True, None, 3, 4, 0), "dev": (True, None, 3, 4, 0), "test": (True, None, 3, 4, None)}


@register_processor("cola")
class ColaProcessor(ColumnLayoutProcessor):
    """GLUE CoLA: train and dev rows are source, label, original label, sentence (no header); the
    test file has the header index, sentence."""
    labels = ["0", "1"]
    layouts = {"train": (False, 4, 3, None, 1), "dev": (False, 4, 3, None, 1), "test": (True, None, 1, None, None)}


@register_processor("mnli")
class MnliProcessor(ColumnLayoutProcessor):
    """GLUE MNLI (matched): sentence1 and sentence2 in columns 9 and 10, the gold label last."""
    labels = NLI_LABELS
    split_files = {"train": "train.tsv", "dev": "dev_matched.tsv", "test": "test_matched.tsv"}
    layouts = {"train": (True, None, 8, 9, -1), "dev": (True, None, 8, 9, -1), "test": (True, None, 8, 9, None)}


@register_processor("xnli")
class XnliProcessor(DataProcessor):
    """XNLI: machine-translated MultiNLI for training, the rows of options.language for dev and test."""
    extensions = (".tsv",)
    split_files = {"train": "multinli/multinli.train.{language}.tsv", "dev": "xnli.dev.tsv",
                   "test": "xnli.test.tsv"}

    def get_labels(self):
        return list(NLI_LABELS)

    def file_name(self, split):
        return super().file_name(split).format(language=self.options.language)

    def read_examples(self, path, split) -> List[InputExample]:
        table = read_table(path, TSV, has_header=True)
        if split == "train":
            columns = [table.column(name) for name in ("premise", "hypo", "label")]
            rows = table.rows
        else:
            language = table.column("language")
            columns = [table.column("sentence1"), table.column("sentence2"),
                       table.column("gold_label", required=split != "test")]
            rows = [(line, fields) for line, fields in table.rows
                    if fields[language].strip() == self.options.language]
            if not rows and table.rows:
                present = sorted({fields[language].strip() for _, fields in table.rows})
                raise UserInputError(f"{path}: no rows with language '{self.options.language}'; "
                                     f"the file has {present}")
        text_a, text_b, label = columns
        examples = []
        for line, fields in rows:
            value = fields[label] if label is not None else None
            if value is not None and value.strip() == "contradictory":
                value = "contradiction"
            examples.append(self.make_example(split, len(examples), path, line, fields[text_a], fields[text_b],
                                              value, text_a_name=f"column '{table.header[text_a]}'",
                                              label_name=f"column '{table.header[label]}'" if label is not None
                                              else "label"))
        return examples
