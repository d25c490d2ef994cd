"""Finished runs kept on disk, one file per run, named by a hash of what the run depends on.

A run is a pure function of (scenario, effective configuration, seed included), so its row can be
kept under a hash of them: a sweep interrupted half-way resumes with the runs it has, and one
extended by a value or a seed runs only the new points. The hash also covers sagafsm's version and,
for a scenario given as a file, the file's contents (editing it invalidates its runs). Each file
is written whole or not at all (a temporary file renamed over it), so an interrupt never leaves
half a row.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

__all__ = ["RunCache", "run_key", "scenario_identity"]


def _version() -> str:
    try:
        return version("sagafsm")
    except PackageNotFoundError:  # a source tree that was never installed
        return "unknown"


def scenario_identity(scenario: str) -> str:
    """A built-in scenario's name; for a file, its name and a hash of its contents."""
    if scenario.endswith(".py") or "/" in scenario:
        contents = Path(scenario).read_bytes()
        return f"{Path(scenario).name}#{hashlib.sha256(contents).hexdigest()[:16]}"
    return scenario


def run_key(identity: str, data: Mapping[str, Any]) -> str:
    """The hash a run is kept under: scenario identity, configuration data, sagafsm version."""
    text = json.dumps(
        {"scenario": identity, "config": data, "sagafsm": _version()},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(text.encode()).hexdigest()


class RunCache:
    """The rows of finished runs under ``directory``, one ``<key>.json`` each."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def load(self, key: str) -> dict[str, Any] | None:
        """The row kept under ``key``, or None (never run, or a file that cannot be read)."""
        try:
            with open(self.directory / f"{key}.json") as handle:
                kept = json.load(handle)
        except (OSError, ValueError):
            return None
        row = kept.get("row") if isinstance(kept, dict) else None
        return row if isinstance(row, dict) and kept.get("key") == key else None

    def store(self, key: str, data: Mapping[str, Any], row: Mapping[str, Any]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.directory, suffix=".partial")
        try:
            with os.fdopen(handle, "w") as out:
                json.dump({"key": key, "config": data, "row": row}, out, sort_keys=True)
            os.replace(temporary, self.directory / f"{key}.json")
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)
