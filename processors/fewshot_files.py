"""The few-shot formats: `text<TAB>label` lines (all classes in one file) and one-text-a-line files."""
from typing import List

from absl import logging

from bert.errors import UserInputError
from processors.base import InputExample
from processors.readers import TSV, numbered_lines, read_rows, read_text

_HEADER_ROWS = {("text", "label"), ("text_a", "label"), ("sentence", "label")}  # compared lowercased


def read_text_label_file(path, split="data") -> List[InputExample]:
    """`text<TAB>label` per line, no header; blank lines skipped, and a line such as `text<TAB>label`
    (a header, which the format does not have) skipped with a warning."""
    examples = []
    for line, fields in read_rows(path, TSV):
        if len(fields) != 2:
            raise UserInputError(f"{path}:{line}: expected 2 tab-separated columns (text, label), found {len(fields)}")
        text, label = fields[0].strip(), fields[1].strip()
        if (text.lower(), label.lower()) in _HEADER_ROWS:
            logging.warning("%s:%d: '%s<TAB>%s' looks like a header row (this format has none); it is skipped",
                            path, line, text, label)
            continue
        if not text:
            raise UserInputError(f"{path}:{line}: empty text")
        if not label:
            raise UserInputError(f"{path}:{line}: empty label")
        examples.append(InputExample(f"{split}-{len(examples)}", text, None, label, f"{path}:{line}"))
    if not examples:
        raise UserInputError(f"{path}: no examples in the file")
    return examples


def read_text_lines(path, split="predict") -> List[InputExample]:
    """One text per line (blank lines skipped), unlabelled."""
    lines = [(number, text.strip()) for number, text in numbered_lines(read_text(path)) if text.strip()]
    examples = [InputExample(f"{split}-{index}", text, None, None, f"{path}:{number}")
                for index, (number, text) in enumerate(lines)]
    if not examples:
        raise UserInputError(f"{path}: no texts in the file")
    return examples
