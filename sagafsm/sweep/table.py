"""The sweep's results as a tidy table: one row per (point, seed), and a summary per point.

Written as CSV (``sweep.csv``, and ``sweep.parquet`` when pyarrow is installed) and read back by
``sagafsm plot``. The summary gives each figure's mean across a point's seeds with a Student's t
confidence interval, so a difference between two points can be told from seed noise.
"""

from __future__ import annotations

import csv
import importlib
import importlib.util
import math
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import attrs

from ..errors import InvalidConfig
from ..sim.metrics import student_t_interval
from .rows import METRICS, bounds_of, is_result_column

__all__ = ["SweepTable", "read_table", "write_csv"]

_INDEX = ("point", "seed")


@attrs.frozen(kw_only=True)
class SweepTable:
    rows: Sequence[dict[str, Any]]
    """One per run: point, seed, swept settings, the run's figures, every other setting."""
    parameters: tuple[str, ...]
    """The swept keys, in the order they were given."""
    from_cache: int = 0
    """Rows found in the cache rather than run."""

    @property
    def columns(self) -> list[str]:
        """Every column, in the order of the first row that has it."""
        seen: dict[str, None] = {}
        for row in self.rows:
            seen.update(dict.fromkeys(row))
        return list(seen)

    def column(self, name: str) -> list[Any]:
        return [row.get(name) for row in self.rows]

    def summary(self, confidence: float = 0.95) -> list[dict[str, Any]]:
        """Per point: the swept settings, the runs, and for each figure of :data:`METRICS` its
        mean, low and high (``goodput.mean``, ``goodput.low``, ``goodput.high``); violations are
        also counted as runs with any (``runs_with_violations``)."""
        points: dict[Any, list[dict[str, Any]]] = {}
        for row in self.rows:
            points.setdefault(row["point"], []).append(row)
        summary = []
        for point, rows in points.items():
            entry: dict[str, Any] = {"point": point}
            entry.update({key: rows[0].get(key) for key in self.parameters})
            entry["runs"] = len(rows)
            entry["runs_with_violations"] = sum(1 for r in rows if (r.get("violations") or 0) > 0)
            for name in METRICS:
                values = [float(r[name]) for r in rows if _number(r.get(name))]
                if not values:
                    continue
                stats = student_t_interval(values, confidence, bounds_of(name))
                for part in ("mean", "low", "high"):
                    entry[f"{name}.{part}"] = float(stats[part])
            summary.append(entry)
        return summary

    def write(self, directory: str | Path) -> list[Path]:
        """``sweep.csv`` and ``summary.csv`` (and ``sweep.parquet`` when pyarrow is installed)
        under ``directory``, each written whole or not at all; the paths written."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        written = [write_csv(folder / "sweep.csv", self.rows)]
        written.append(write_csv(folder / "summary.csv", self.summary()))
        if importlib.util.find_spec("pyarrow") is not None:
            written.append(_write_parquet(folder / "sweep.parquet", self.rows, self.columns))
        return written


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _columns(rows: Iterable[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    return list(seen)


def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> Path:
    """Rows as CSV (None as an empty cell), written whole or not at all."""
    columns = _columns(rows)
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".partial")
    try:
        with os.fdopen(handle, "w", newline="") as out:
            writer = csv.DictWriter(out, fieldnames=columns, restval="")
            writer.writeheader()
            for row in rows:
                writer.writerow({k: "" if v is None else v for k, v in row.items()})
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return path


def _write_parquet(path: Path, rows: Sequence[dict[str, Any]], columns: list[str]) -> Path:
    pyarrow: Any = importlib.import_module("pyarrow")  # optional: written only when installed
    parquet: Any = importlib.import_module("pyarrow.parquet")

    table = pyarrow.Table.from_pylist([{c: row.get(c) for c in columns} for row in rows])
    temporary = path.with_suffix(".partial")
    parquet.write_table(table, temporary)
    os.replace(temporary, path)
    return path


def _cell(text: str) -> Any:
    if text == "":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"True": True, "False": False}.get(text, text)


def read_table(path: str | Path) -> SweepTable:
    """A sweep's table read back from its CSV. Its parameters are the settings that vary across
    its rows (a setting swept over one value cannot be told from a fixed one, and needs none).

    :class:`~sagafsm.InvalidConfig` (one line) for a file that cannot be read or is not a
    sweep's table."""
    try:
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            rows = [{k: _cell(v) for k, v in row.items()} for row in reader]
            columns = list(reader.fieldnames or [])
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise InvalidConfig(f"cannot read sweep table {str(path)!r}: {reason}") from None
    missing = [c for c in (*_INDEX, "digest") if c not in columns]
    if missing or not rows:
        what = f"no {missing[0]!r} column" if missing else "no rows"
        raise InvalidConfig(f"{path}: not a sweep table ({what})")
    settings = [c for c in columns if c not in _INDEX and not is_result_column(c)]
    varying = tuple(c for c in settings if len({repr(r.get(c)) for r in rows}) > 1)
    return SweepTable(rows=rows, parameters=varying)
