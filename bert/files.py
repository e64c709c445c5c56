"""Writing files so that a reader never sees half of one; reading JSON with errors that name the line."""
import json
import os
import tempfile

from bert.errors import UserInputError


def write_text_atomic(path, text):
    """Writes `text` to `path` through a temporary file in the same folder, so no reader sees half."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as writer:
            writer.write(text)
        os.chmod(tmp, 0o666 & ~umask())  # mkstemp makes it private; give it a normal file's mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_json(path, what="file", expect=None, encoding="utf-8"):
    """The JSON value in `path`; a missing, unreadable or invalid file is a UserInputError naming the
    file, the line and column, and `what` it should be (e.g. "config file"). expect: a type (dict,
    list) the top-level value must have."""
    try:
        with open(path, encoding=encoding) as reader:
            value = json.load(reader)
    except FileNotFoundError:
        raise UserInputError(f"{path}: {what} not found") from None
    except UnicodeDecodeError as error:
        raise UserInputError(f"{path}: not UTF-8 ({error.reason} at byte {error.start})") from None
    except OSError as error:
        raise UserInputError(f"{path}: cannot be read ({error.strerror or error})") from None
    except json.JSONDecodeError as error:
        raise UserInputError(f"{path}, line {error.lineno}: invalid JSON: {error.msg} (column {error.colno})") from None
    if expect is not None and not isinstance(value, expect):
        raise UserInputError(f"{path}: expected a JSON {'object' if expect is dict else expect.__name__}, "
                             f"found {type(value).__name__}")
    return value
