"""The ``sagafsm`` command line: one module per subcommand, assembled here.

Each subcommand module has ``register(subparsers)`` and ``run(args) -> int``. Exit statuses:

- 0 clean, 1 a finding (a violated property, a mutant not caught...), as each command says;
- 2 bad input: errors a user can cause (a bad flag value, a bad config file, an unknown scenario,
  a mutant that does not apply) are :class:`~sagafsm.SagaError` subclasses; they print one line
  on stderr, never a traceback;
- 3 an internal error: an exception nobody raised on purpose (an engine bug inside a run, a
  scenario's service that crashes). One line names it and says where its traceback is:
  ``--debug`` prints it. It is never reported as a violation.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from types import ModuleType

from ..errors import SagaError
from . import (
    diagram,
    explore,
    plot,
    replay,
    resolve,
    retry,
    run,
    selfcheck,
    simulate,
    status,
    sweep,
)

__all__ = ["main", "INTERNAL_ERROR"]

_SUBCOMMANDS: tuple[ModuleType, ...] = (
    simulate, run, status, resolve, retry, replay, explore, selfcheck, diagram, sweep, plot
)  # fmt: skip

INTERNAL_ERROR = 3
"""The exit status of an internal error."""


def _parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="sagafsm", description="Sagas as state machines: simulate, check, draw."
    )
    parser.add_argument("--version", action="version", version=f"sagafsm {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in _SUBCOMMANDS:
        module.register(sub)
    for command in sub.choices.values():
        command.add_argument(
            "--debug",
            action="store_true",
            help="on an internal error (exit status 3), print its traceback",
        )
    return parser


def _internal_error(command: str, error: BaseException, debug: bool) -> int:
    # An InternalError comes out of a simulation, so its module is loaded by then; looking it up
    # here keeps the simulator (and its extra) out of the commands that never simulate.
    internal = sys.modules.get("sagafsm.sim.internal")
    wrapped = internal is not None and isinstance(error, internal.InternalError)
    original: BaseException = getattr(error, "error", error) if wrapped else error
    if debug:
        traceback.print_exception(original, file=sys.stderr)
    where = "traceback above" if debug else "rerun with --debug for the traceback"
    text = str(error) if wrapped else f"{type(error).__name__}: {error}"
    text = " ".join(text.split())  # one line, whatever the exception's message holds
    print(f"sagafsm {command}: internal error: {text} ({where})", file=sys.stderr)
    return INTERNAL_ERROR


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        status: int = args.run(args)
    except SagaError as error:  # a MissingExtra too: one line naming the extra to install
        print(f"sagafsm {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sagafsm {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (| head): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as error:  # nobody raised it on purpose: a bug, never "bad input"
        return _internal_error(args.command, error, args.debug)
    return status
