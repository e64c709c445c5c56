"""Writing files so that a reader never sees half of one; reading JSON with errors that name the line;
TSV files whose fields are escaped so that every row stays one line of the same width."""
import contextlib
import fcntl
import json
import os
import re
import shutil
import socket
import time

from bert.errors import UserInputError


# Temporaries carry the writer's process id and host ("name.tmp-PID@HOST"), so that
# remove_stale_temporaries can tell a dead writer's leftovers from a live one's work, and never touches
# another machine's (a folder shared by the workers of a cluster).
_HOST = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:40] or "host"
_TEMPORARY = re.compile(r".+\.tmp-(\d+)@(\w+)")


def temporary_name(path):
    """Where to write `path` (a file or a folder) before renaming it into place."""
    return f"{path}.tmp-{os.getpid()}@{_HOST}"


@contextlib.contextmanager
def replacing(path):
    """Yields a temporary path beside `path`; when the block ends without an error it is renamed to
    `path` in one step (readers see the old file or the new one, never half), else removed."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = temporary_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.isdir(tmp) and not os.path.islink(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        elif os.path.lexists(tmp):
            os.remove(tmp)


def write_text_atomic(path, text):
    """Writes `text` to `path` through a temporary file in the same folder, so no reader sees half."""
    with replacing(path) as tmp, open(tmp, "w", encoding="utf-8") as writer:
        writer.write(text)


def copy_atomic(source, path):
    """Copies `source` to `path` so that no reader (or a kill mid-copy) leaves half of it at `path`."""
    with replacing(path) as tmp:
        shutil.copyfile(source, tmp)


def remove_stale_temporaries(folder):
    """Deletes the temporaries that processes of this machine no longer running left in `folder` (a
    kill mid-write); a live process's, and other machines', are kept. Returns the names removed."""
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        match = _TEMPORARY.fullmatch(name)
        if not match or match.group(2) != _HOST or _alive(int(match.group(1))):
            continue
        path = os.path.join(folder, name)
        try:
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
            removed.append(name)
        except OSError:
            pass  # another cleaner got there first
    return removed


_held_locks = {}  # real folder path -> open lock file, held until the process exits


def lock_folder(folder, what="run"):
    """Takes `folder`'s lock (folder/.lock) for this process, or fails at once with a UserInputError
    naming the holder: two runs never write one folder together."""
    key = os.path.realpath(folder)
    if key in _held_locks:
        return
    os.makedirs(folder, exist_ok=True)
    handle = open(os.path.join(folder, LOCK_FILE), "a+", encoding="utf-8")
    try:
        # A POSIX record lock: held by this process alone (forked workers do not inherit it, so a killed
        # run's orphaned workers never keep the folder locked) and released when the process ends.
        fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise UserInputError(f"{folder}: another {what} ({holder}) is using this folder; wait for it to finish "
                             "or choose another folder") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    handle.flush()
    _held_locks[key] = handle


LOCK_FILE = ".lock"


@contextlib.contextmanager
def locked_folder(folder, what="run"):
    """lock_folder for the duration of a block (released after it, unless this process held it before)."""
    key = os.path.realpath(folder)
    held = key in _held_locks
    lock_folder(folder, what)
    try:
        yield
    finally:
        if not held:
            _held_locks.pop(key).close()


def _alive(pid):
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


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


# --- TSV files people read (test_results.tsv, predictions.tsv) -----------------------------------
# A field may hold anything the data held, so four characters are escaped with a backslash:
# backslash -> \\, tab -> \t, line feed -> \n, carriage return -> \r. Every row is then one line
# with one tab between fields, and unescape_tsv_field gives back exactly the original text.

_TSV_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}
_TSV_UNESCAPES = {escaped[1]: char for char, escaped in _TSV_ESCAPES.items()}
_TSV_SPECIAL = re.compile(r"[\\\t\n\r]")
_TSV_ESCAPED = re.compile(r"\\(.)", re.DOTALL)


def escape_tsv_field(value) -> str:
    """`value` as text (str() for non-strings) with backslash, tab, line feed and carriage return
    written as \\\\, \\t, \\n and \\r."""
    return _TSV_SPECIAL.sub(lambda match: _TSV_ESCAPES[match.group()], str(value))


def unescape_tsv_field(text) -> str:
    """The inverse of escape_tsv_field (a backslash before any other character is kept as it is)."""
    return _TSV_ESCAPED.sub(lambda match: _TSV_UNESCAPES.get(match.group(1), match.group()), text)


def write_tsv(path, header, rows):
    """Writes a TSV file atomically: the `header` row (None for none), then `rows` (any iterable,
    e.g. a generator, of sequences), every field escaped by escape_tsv_field. Every row must have as
    many fields as the header (or, without one, as the first row): the file stays rectangular."""
    with replacing(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as writer:
        width = len(header) if header is not None else None
        if header is not None:
            writer.write("\t".join(map(escape_tsv_field, header)) + "\n")
        for number, row in enumerate(rows, start=1):
            row = list(row)
            if width is None:
                width = len(row)
            elif len(row) != width:
                raise ValueError(f"{path}: row {number} has {len(row)} fields, the file has {width}")
            writer.write("\t".join(map(escape_tsv_field, row)) + "\n")


def read_tsv(path) -> list:
    """The rows of a file written by write_tsv (header included), every field unescaped."""
    with open(path, encoding="utf-8", newline="") as reader:
        text = reader.read()
    lines = text.split("\n")  # not splitlines(): that also splits at \x0c, \x85, \u2028 and others
    if lines[-1] == "":
        lines.pop()
    return [[unescape_tsv_field(field) for field in line.split("\t")] for line in lines]


def read_text(path) -> str:
    """A UTF-8 file's text (a byte-order mark dropped); a missing file, a folder or a byte that is not
    UTF-8 is a UserInputError naming the file (and the line)."""
    try:
        with open(path, "rb") as reader:
            data = reader.read()
    except FileNotFoundError:
        raise UserInputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UserInputError(f"{path}: is a folder, not a file") from None
    except OSError as error:
        raise UserInputError(f"{path}: cannot be read ({error.strerror or error})") from None
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise UserInputError(f"{path}:{line}: byte 0x{data[error.start]:02x} is not valid UTF-8 "
                             "(save the file as UTF-8)") from None


def numbered_lines(text):
    """(line number, line) for each line, without its "\\n" or "\\r\\n"."""
    for number, line in enumerate(text.split("\n"), start=1):
        yield number, line[:-1] if line.endswith("\r") else line
