"""Processors by name: the decorator that registers them and the lookups scripts use.

Users add a processor without editing any script: they register a class in their own module and
pass `--processor_module=my_module` (a module name or a path to a .py file).
"""
import importlib
import importlib.util
import os
import re
import sys
import traceback
from typing import Dict, List

from bert.errors import UserInputError

from processors.base import DataProcessor, ProcessorOptions

_REGISTRY: Dict[str, type] = {}
_LOADED_FILES: Dict[str, str] = {}  # absolute path of an imported .py file -> its module name


def register_processor(name):
    """Class decorator: registers a DataProcessor subclass under `name` (lowercased) and sets its
    `name` attribute. Registering another class under a name already taken is an error; the same
    class (or its re-import from the same module) may register again."""
    if not isinstance(name, str) or not name.strip():
        raise UserInputError(f"a processor name must be a non-empty string, not {name!r}")
    key = name.strip().lower()

    def register(cls):
        if not (isinstance(cls, type) and issubclass(cls, DataProcessor)):
            raise UserInputError(f"processor '{key}': {cls!r} is not a subclass of processors.DataProcessor")
        taken = _REGISTRY.get(key)
        if taken is not None and not _same_class(taken, cls):
            raise UserInputError(f"processor name '{key}' is already taken by {_class_path(taken)}; "
                                 f"cannot register {_class_path(cls)} under it")
        cls.name = key
        _REGISTRY[key] = cls
        return cls

    return register


def registered_processors() -> List[str]:
    """The registered names, sorted."""
    return sorted(_REGISTRY)


def get_processor(name, options: ProcessorOptions = None) -> DataProcessor:
    """A new instance of the processor registered under `name` (case-insensitive)."""
    cls = _REGISTRY.get(str(name).strip().lower()) if name is not None else None
    if cls is None:
        raise UserInputError(f"unknown processor '{name}'; the registered processors are "
                             f"{', '.join(registered_processors())} (a processor of your own can be "
                             "registered in a module passed as --processor_module)")
    return cls(options)


def import_processor_module(module) -> None:
    """Imports `module`, a module name ("my_package.my_processors") or a path to a .py file, so
    that the processors it defines register themselves. A missing module or file, or any
    exception raised while importing it, becomes a UserInputError naming it."""
    if not isinstance(module, str) or not module.strip():
        raise UserInputError(f"--processor_module must name a module or a .py file, not {module!r}")
    module = module.strip()
    if module.endswith(".py") or os.sep in module or "/" in module:
        _import_file(module)
    else:
        _import_name(module)


def _import_name(module):
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name and (module == error.name or module.startswith(error.name + ".")):
            raise UserInputError(f"processor module '{module}': no module named '{error.name}' "
                                 "(is its folder on PYTHONPATH? a path to a .py file also works)") from error
        raise UserInputError(_import_failure(module, error)) from error
    except Exception as error:  # anything the user's module raises while it runs
        raise UserInputError(_import_failure(module, error)) from error


def _import_file(path):
    full_path = os.path.abspath(path)
    if full_path in _LOADED_FILES:
        return
    if not os.path.isfile(full_path):
        raise UserInputError(f"processor module {path}: no such file")
    stem = re.sub(r"\W", "_", os.path.splitext(os.path.basename(full_path))[0])
    module_name = f"_processor_module_{stem}_{len(_LOADED_FILES)}"
    spec = importlib.util.spec_from_file_location(module_name, full_path)
    if spec is None or spec.loader is None:
        raise UserInputError(f"processor module {path}: cannot be imported as a Python module")
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = loaded  # dataclasses and pickling look classes up here
    try:
        spec.loader.exec_module(loaded)
    except Exception as error:  # anything the user's module raises while it runs
        del sys.modules[module_name]
        raise UserInputError(_import_failure(path, error)) from error
    _LOADED_FILES[full_path] = module_name


def _import_failure(module, error):
    """"processor module X failed to import: Type: message (at file:line)"."""
    if isinstance(error, SyntaxError) and error.filename:
        where = f"{error.filename}:{error.lineno}"
        what = f"SyntaxError: {error.msg}"
    else:
        frames = traceback.extract_tb(error.__traceback__)
        where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else ""
        what = f"{type(error).__name__}: {error}"
    message = f"processor module {module} failed to import: {what}"
    return f"{message} (at {where})" if where else message


def _same_class(a, b):
    return a is b or (a.__module__ == b.__module__ and a.__qualname__ == b.__qualname__)


def _class_path(cls):
    return f"{cls.__module__}.{cls.__qualname__}"
