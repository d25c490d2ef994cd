"""Running a user's code at the door: importing a scenario file and calling its factory.

Whatever a user's file does wrong when it is imported or its ``scenario()`` / ``runtime()`` is
called (a syntax error, a missing module, an exception, ``sys.exit()``, a factory that wants
arguments) is bad input: :class:`~sagafsm.InvalidConfig`, one line naming the file and the fix,
never a traceback nor the file's own exit status. The simulator's and the runtime's scenario
loaders share it.
"""

from __future__ import annotations

import importlib.util
import inspect
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from .errors import InvalidConfig

__all__ = ["import_file", "call_factory"]


def import_file(name: str, module_name: str) -> ModuleType:
    """Import the Python file ``name`` as a module called ``module_name``."""
    path = Path(name)
    if not path.is_file():
        what = "is a directory, not a .py file" if path.is_dir() else "does not exist"
        raise InvalidConfig(f"scenario file {name!r} {what}")
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise InvalidConfig(f"cannot load scenario file {name!r}")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as error:  # a binary or non-UTF-8 file is one too
        raise InvalidConfig(
            f"scenario file {name!r} does not import: {error.msg} at line {error.lineno}"
        ) from None
    except ImportError as error:
        missing = f"module {error.name!r} not found" if error.name else one_line(error)
        raise InvalidConfig(
            f"scenario file {name!r} does not import: {missing} (install it or fix the import)"
        ) from None
    except SystemExit as error:  # a script's sys.exit() must not become sagafsm's exit status
        raise InvalidConfig(
            f"scenario file {name!r} called sys.exit({error.code!r}) while being imported: "
            "a scenario file must only define functions"
        ) from None
    except Exception as error:
        raise InvalidConfig(
            f"scenario file {name!r} does not import: it raised {one_line(error)}"
        ) from None
    return module


def call_factory(factory: Callable[[], object], what: str, name: str) -> object:
    """``factory()`` (a scenario's ``scenario()`` or ``runtime()``, named ``what``), refused
    when it needs arguments or raises."""
    try:
        inspect.signature(factory).bind()
    except TypeError:
        raise InvalidConfig(
            f"{what}() of {name!r} must take no arguments: it is {what}{inspect.signature(factory)}"
        ) from None
    except ValueError:  # no signature to read (a builtin): let the call say
        pass
    try:
        return factory()
    except (Exception, SystemExit) as error:
        raise InvalidConfig(f"{what}() of {name!r} raised {one_line(error)}: fix it") from None


def one_line(error: BaseException) -> str:
    """An exception as ``Type: message`` on one line."""
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
