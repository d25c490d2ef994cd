"""The checks every subcommand makes on its inputs before any work starts, and the staging of
its outputs so that a run writes all of them or none.

An output path is refused (:class:`~sagafsm.InvalidConfig`, one line naming the flag and the fix)
when it could not be written at the end: it is a directory, or under a regular file, or in a
directory that does not exist or cannot be written. Writability is probed by creating (and
removing) a file there, not by ``os.access``: root passes every permission check and still
cannot write into ``/proc`` or a read-only mount.

Outputs are then produced under temporary names beside their targets (:class:`StagedOutputs`)
and moved into place only once every one of them exists, so ``--trace t.jsonl --plots BAD``
leaves no ``t.jsonl`` behind, and a run that fails half-way leaves nothing.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import InvalidConfig

__all__ = [
    "check_output_file",
    "check_output_dir",
    "check_not_an_input",
    "StagedOutputs",
    "staged",
    "cap_jobs",
]

_PREFIX = ".sagafsm-"
_SUFFIX = ".partial"


def _probe(directory: Path) -> str | None:
    """Why nothing can be created in ``directory`` (None when a file can be)."""
    try:
        handle, probe = tempfile.mkstemp(dir=directory, prefix=_PREFIX, suffix=_SUFFIX)
    except OSError as error:
        return error.strerror or str(error)
    os.close(handle)
    os.unlink(probe)
    return None


def _nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists (the working directory at the top)."""
    for candidate in (path, *path.parents):
        if candidate.exists() or candidate.is_symlink():
            return candidate
    return Path(".")


def check_output_file(path: str, flag: str, suffix: str | tuple[str, ...] | None = None) -> Path:
    """The file an output flag names, refused unless it can be written where it is: its
    directory must exist and take new files; it must not be a directory. ``suffix``: the
    endings allowed (one or several)."""
    target = Path(path)
    endings = (suffix,) if isinstance(suffix, str) else suffix
    if endings is not None and target.suffix.lower() not in endings:
        raise InvalidConfig(f"{flag} {path!r}: the file name must end in {' or '.join(endings)}")
    if target.is_dir():
        raise InvalidConfig(f"{flag} {path!r} is a directory: name a file in it")
    parent = target.parent
    if not parent.exists():
        raise InvalidConfig(
            f"{flag} {path!r}: directory {str(parent)!r} does not exist: create it first"
        )
    if not parent.is_dir():
        raise InvalidConfig(f"{flag} {path!r}: {str(parent)!r} is a file, not a directory")
    why = _probe(parent)
    if why is not None:
        raise InvalidConfig(
            f"{flag} {path!r}: cannot write in {str(parent)!r} ({why}): name a writable place"
        )
    return target


def check_output_dir(path: str, flag: str) -> Path:
    """The directory an output flag names (created at the end if needed), refused unless it
    can be: every part of it that exists must be a directory, the deepest one writable."""
    target = Path(path)
    existing = _nearest_existing(target)
    if not existing.is_dir():
        where = "" if existing == target else f": {str(existing)!r} is a file"
        raise InvalidConfig(f"{flag} {path!r} is not a directory{where}: name a directory")
    why = _probe(existing)
    if why is not None:
        raise InvalidConfig(
            f"{flag} {path!r}: cannot write in {str(existing)!r} ({why}): name a writable place"
        )
    return target


def check_not_an_input(output: Path, flag: str, inputs: dict[str, str | None]) -> None:
    """Refuse an output that would overwrite one of the command's inputs (``--trace c.toml``
    with ``--config c.toml``): ``inputs`` maps what each input is called to its path."""
    if not output.exists():
        return
    for name, path in inputs.items():
        if path is not None and Path(path).exists() and os.path.samefile(output, path):
            raise InvalidConfig(
                f"{flag} {str(output)!r} is the {name}: it would be overwritten; name another file"
            )


class StagedOutputs:
    """Temporary names for a command's outputs, moved onto their targets by :meth:`commit`.

    Each temporary lives beside its target (the same file system, so the final move is a
    rename); whatever is not committed is removed by :meth:`discard`."""

    def __init__(self) -> None:
        self._files: list[tuple[Path, Path]] = []
        self._dirs: list[tuple[Path, Path]] = []

    def file(self, target: Path) -> Path:
        """A temporary file to write ``target``'s content into."""
        handle, name = tempfile.mkstemp(
            # ends as the target does: a writer choosing its format by the suffix still can
            dir=target.parent,
            prefix=f"{_PREFIX}{target.name}.",
            suffix=_SUFFIX + target.suffix,
        )
        os.close(handle)
        self._files.append((Path(name), target))
        return Path(name)

    def directory(self, target: Path) -> Path:
        """A temporary directory to write ``target``'s files into (``target`` may not exist)."""
        name = tempfile.mkdtemp(dir=_nearest_existing(target), prefix=_PREFIX, suffix=_SUFFIX)
        self._dirs.append((Path(name), target))
        return Path(name)

    def commit(self) -> list[Path]:
        """Move every output into place; the paths written, in order."""
        written: list[Path] = []
        umask = os.umask(0)
        os.umask(umask)
        for temporary, target in self._files:
            os.chmod(temporary, 0o666 & ~umask)  # mkstemp makes 0600; a plain open() would not
            os.replace(temporary, target)
            written.append(target)
        for temporary, target in self._dirs:
            target.mkdir(parents=True, exist_ok=True)
            for produced in sorted(temporary.iterdir()):
                os.chmod(produced, 0o666 & ~umask)
                os.replace(produced, target / produced.name)
                written.append(target / produced.name)
        self.discard()
        return written

    def discard(self) -> None:
        for temporary, _ in self._files:
            temporary.unlink(missing_ok=True)
        for temporary, _ in self._dirs:
            shutil.rmtree(temporary, ignore_errors=True)
        self._files.clear()
        self._dirs.clear()


@contextmanager
def staged() -> Iterator[StagedOutputs]:
    """A :class:`StagedOutputs` whose leftovers are removed however the block ends."""
    outputs = StagedOutputs()
    try:
        yield outputs
    finally:
        outputs.discard()


def cap_jobs(jobs: int, tasks: int) -> tuple[int, str | None]:
    """The processes worth starting for ``tasks`` runs when ``jobs`` were asked for: no more than
    the runs, nor than the CPUs this process may use; and a note saying so when that is fewer."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    useful = max(1, min(jobs, tasks, cpus))
    if useful == jobs:
        return jobs, None
    runs = f"{tasks} run" if tasks == 1 else f"{tasks} runs"
    available = f"{cpus} CPU" if cpus == 1 else f"{cpus} CPUs"
    return useful, f"--jobs {jobs} capped to {useful} ({runs} to share, {available} to run them)"
