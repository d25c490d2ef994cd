"""The ``sagafsm`` command line: one module per subcommand, assembled here.

Each subcommand module has ``register(subparsers)`` and ``run(args) -> int``. Errors a user can
cause (a bad flag value, a bad config file, an unknown scenario) are :class:`~sagafsm.SagaError`
subclasses: they print one line on stderr and exit with status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from types import ModuleType

from ..errors import SagaError
from . import diagram, explore, replay, selfcheck, simulate

__all__ = ["main"]

_SUBCOMMANDS: tuple[ModuleType, ...] = (simulate, replay, explore, selfcheck, diagram)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sagafsm", description="Sagas as state machines: simulate, check, draw."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in _SUBCOMMANDS:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        status: int = args.run(args)
    except SagaError as error:
        print(f"sagafsm {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sagafsm {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (| head): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return status
