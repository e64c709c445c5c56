"""Reading data files row by row, with every mistake reported as "path:line: what is wrong".

Line numbers are 1-based and count the header as line 1. A UTF-8 byte order mark and CRLF line
ends are accepted everywhere; a row repeating the header is skipped with a warning.
"""
import csv
import dataclasses
import io
import json
from typing import List, Optional, Tuple

from absl import logging

from bert.errors import UserInputError
from bert.files import numbered_lines, read_text  # noqa: F401 (processors.readers.read_text for callers)

TSV = "tsv"  # tab-separated, no quoting: a quote character is ordinary text (MRPC needs this)
CSV = "csv"  # the csv module's default dialect: comma-separated, double-quoted fields


def read_rows(path, file_format) -> List[Tuple[int, List[str]]]:
    """(line number, fields) for every non-blank row of a TSV or CSV file.

    For CSV the line number is the line the row starts on (a quoted field may span lines).
    """
    text = read_text(path)
    if file_format == TSV:
        return [(number, line.split("\t")) for number, line in numbered_lines(text)
                if line and not (line.isspace() and "\t" not in line)]
    if file_format != CSV:
        raise ValueError(f"file_format must be {TSV!r} or {CSV!r}, not {file_format!r}")
    rows = []
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    start = 1
    try:
        for fields in reader:
            if fields:
                rows.append((start, fields))
            start = reader.line_num + 1
    except csv.Error as error:
        if "unexpected end of data" in str(error):
            raise UserInputError(f"{path}:{start}: a quoted field opened in the row starting on this "
                                 "line is never closed") from None
        raise UserInputError(f"{path}:{start}: malformed CSV ({error})") from None
    return rows


@dataclasses.dataclass
class Table:
    """The rows of a TSV or CSV file, checked to all have the same number of columns."""
    path: str
    header: Optional[List[str]]  # the column names, stripped; None for a file without a header
    rows: List[Tuple[int, List[str]]]  # (line number, fields)

    def column(self, name, required=True) -> Optional[int]:
        """The index of the header column `name`; None if absent and not `required`."""
        found = [index for index, column in enumerate(self.header) if column == name]
        if len(found) > 1:
            raise UserInputError(f"{self.path}:1: the header has the column '{name}' {len(found)} times")
        if found:
            return found[0]
        if required:
            raise UserInputError(f"{self.path}:1: the header has no column '{name}'; "
                                 f"its columns are {self.header}")
        return None


def read_table(path, file_format, has_header=True, num_columns=None) -> Table:
    """Reads a TSV or CSV file; each row must have as many columns as the header (with a header)
    or `num_columns` (an int or a tuple of allowed counts) when given."""
    rows = read_rows(path, file_format)
    header = None
    if has_header:
        if not rows:
            raise UserInputError(f"{path}: the file is empty; a header row was expected")
        header = [name.strip() for name in rows[0][1]]
        rows = [(line, fields) for line, fields in rows[1:] if not _repeats_header(path, line, fields, header)]
        allowed, why = (len(header),), " (as in the header)"
    elif num_columns is not None:
        allowed = (num_columns,) if isinstance(num_columns, int) else tuple(num_columns)
        why = ""
    else:
        allowed, why = None, ""
    if allowed is not None:
        for line, fields in rows:
            if len(fields) not in allowed:
                expected = " or ".join(str(count) for count in allowed)
                hint = ""
                if len(fields) == 1 and file_format == TSV:
                    hint = "; columns must be separated by tabs"
                raise UserInputError(f"{path}:{line}: expected {expected} columns{why}, "
                                     f"found {len(fields)}{hint}")
    return Table(path, header, rows)


def _repeats_header(path, line, fields, header) -> bool:
    """True (with a warning) for a row equal to the header, as concatenated files have: it is skipped
    rather than read as an example whose label is the label column's name."""
    if [field.strip() for field in fields] != header:
        return False
    logging.warning("%s:%d: this row repeats the header row (were files concatenated?); it is skipped", path, line)
    return True


_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", int: "a number",
               float: "a number", bool: "a boolean", type(None): "null"}


def json_type(value) -> str:
    """How JSON calls the type of `value`, for messages."""
    return _JSON_TYPES.get(type(value), type(value).__name__)


def read_json_lines(path) -> List[Tuple[int, dict]]:
    """(line number, object) for every non-blank line of a JSON-lines file."""
    records = []
    for number, line in numbered_lines(read_text(path)):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise UserInputError(f"{path}:{number}: not valid JSON ({error.msg} at column {error.colno}); "
                                 "each line must hold one JSON object") from None
        if not isinstance(record, dict):
            raise UserInputError(f"{path}:{number}: expected a JSON object, found {json_type(record)}")
        records.append((number, record))
    return records
