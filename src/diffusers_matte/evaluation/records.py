# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""The output folder of a run: ``run.json`` (what the numbers depend on) and the resumable ``samples.csv``.

A run split across N processes appends each process's rows to its own ``samples.process-<index>.csv``; the main
process merges them into ``samples.csv`` (in sample order) at the end. A run that stops before then leaves these
files, and the next run, with any number of processes, reads them all and merges them.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple

from ..metrics import METRIC_NAMES

SAMPLES_FILE = "samples.csv"


HEADER_FILE = "run.json"


METRICS_FILE = "metrics.json"


TABLE_FILE = "results.md"


OUTPUT_FILES = (SAMPLES_FILE, HEADER_FILE, METRICS_FILE, TABLE_FILE)


#: The rows of one process of a multi-process run, until the main process merges them into ``samples.csv``.
PART_FILE_PATTERN = "samples.process-*.csv"


def part_file(output_dir: Path, process_index: int) -> Path:
    """Where process ``process_index`` of a multi-process run appends its rows."""
    return Path(output_dir) / f"samples.process-{process_index:05d}.csv"


def part_files(output_dir: Path) -> List[Path]:
    """The per-process files of ``output_dir`` (of this run or of an interrupted one), in process order."""
    return sorted(Path(output_dir).glob(PART_FILE_PATTERN))


CSV_COLUMNS = (
    ("instance_id", "text_index", "text_type", "image_id", "height", "width")
    + METRIC_NAMES
    + ("has_target", "grounding_score", "seconds", "device", "text")
)


#: Columns a row may leave empty (``device``), or that files written before they existed lack: such a row has a
#: target and no grounding score.
OPTIONAL_COLUMNS = ("device", "has_target", "grounding_score")


HEADER_FORMAT = 1


class RunMismatchError(ValueError):
    """The output folder holds results of a different run (model, protocol, data, ...)."""


def check_header(output_dir: Path, header: Dict[str, Any], overwrite: bool) -> None:
    """Writes ``run.json``, or checks that the one there describes the same run (else refuses / starts over)."""
    header_path = output_dir / HEADER_FILE
    existing = [name for name in OUTPUT_FILES if (output_dir / name).exists()]
    existing += [path.name for path in part_files(output_dir)]
    if existing and not overwrite:
        if not header_path.is_file():
            raise RunMismatchError(
                f"{output_dir} holds {existing} but no {HEADER_FILE}; use another output folder or overwrite."
            )
        previous = json.loads(header_path.read_text())
        differences = {
            key: (previous.get(key), header.get(key))
            for key in sorted(set(previous) | set(header))
            if previous.get(key) != header.get(key)
        }
        if differences:
            listed = "; ".join(f"{key}: {old!r} there, {new!r} now" for key, (old, new) in differences.items())
            raise RunMismatchError(
                f"{output_dir} holds the results of a different run ({listed}); use another output folder, or "
                "pass overwrite=True (--overwrite) to discard them."
            )
        return
    for name in existing:
        (output_dir / name).unlink()
    output_dir.mkdir(parents=True, exist_ok=True)
    header_path.write_text(json.dumps(header, indent=1, sort_keys=True) + "\n")


def read_samples_csv(path: Path, trim: bool = True) -> List[Dict[str, Any]]:
    """Rows of a ``samples.csv`` with typed values; an incomplete last line (an interrupted write) is dropped.

    With ``trim``, that line is also cut from the file, so that appending starts on a fresh line; pass
    ``trim=False`` to read a file another process may be writing.
    """
    if not path.is_file():
        return []
    if trim:
        _drop_partial_line(path)
    rows = []
    with open(path, newline="", encoding="utf-8") as handle:
        for raw in csv.DictReader(handle):
            # a cut-off row lacks its numbers (the optional columns come before `seconds` and `text`)
            if any(raw.get(n) in (None, "") for n in CSV_COLUMNS if n not in OPTIONAL_COLUMNS):
                continue
            rows.append(_typed(raw))
    return rows


def read_all_samples(output_dir: Path, trim: bool = True) -> Dict[Tuple[str, int], Dict[str, Any]]:
    """(instance_id, text_index) -> row, of ``samples.csv`` and of the per-process files (the first row of a key
    wins)."""
    done: Dict[Tuple[str, int], Dict[str, Any]] = {}
    for path in [Path(output_dir) / SAMPLES_FILE] + part_files(output_dir):
        for row in read_samples_csv(path, trim):
            done.setdefault((row["instance_id"], row["text_index"]), row)
    return done


def merge_part_files(output_dir: Path, order: Iterable[Tuple[str, int]]) -> bool:
    """Folds the per-process files into ``samples.csv`` and removes them; ``False`` if there were none.

    The new ``samples.csv`` lists the rows of the keys in ``order`` in that order (the order one process writes
    them in), then any other rows already there (of a run with a larger ``max_samples``). It replaces the old one
    atomically, and the per-process files are removed only after that, so an interruption loses no row.
    """
    parts = part_files(output_dir)
    if not parts:
        return False
    done = read_all_samples(output_dir)
    ordered = [done.pop(key) for key in order if key in done]
    _write_rows(Path(output_dir) / SAMPLES_FILE, ordered + list(done.values()))
    for path in parts:
        path.unlink()
    return True


def _write_rows(target: Path, rows: List[Dict[str, Any]]) -> None:
    """Writes ``rows`` with the header of :data:`CSV_COLUMNS` to ``target``, replacing it atomically."""
    descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    try:
        with os.fdopen(descriptor, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
            writer.writeheader()
            writer.writerows(_as_written(row) for row in rows)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def _as_written(row: Dict[str, Any]) -> Dict[str, Any]:
    """A typed row as :class:`CsvAppender` writes it (floats as repr: they read back exactly; None as empty)."""
    return {name: row[name] for name in CSV_COLUMNS}


def _typed(raw: Dict[str, str]) -> Dict[str, Any]:
    row: Dict[str, Any] = {name: raw.get(name) for name in CSV_COLUMNS}
    for name in ("text_index", "height", "width"):
        row[name] = int(raw[name])
    for name in METRIC_NAMES + ("seconds",):
        row[name] = float(raw[name])
    row["device"] = raw.get("device") or ""
    row["has_target"] = raw.get("has_target") != "False"
    row["grounding_score"] = float(raw["grounding_score"]) if raw.get("grounding_score") else None
    return row


def _header(path: Path) -> List[str]:
    with open(path, newline="", encoding="utf-8") as handle:
        return next(csv.reader(handle), [])


def _drop_partial_line(path: Path) -> None:
    """Cuts the file after its last newline, so that appending starts on a fresh line."""
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])


class CsvAppender:
    """Appends sample rows to the CSV, flushed to disk after each batch."""

    def __init__(self, path: Optional[Path]):
        self.handle = None
        if path is None:
            return
        new = not path.is_file() or path.stat().st_size == 0
        if not new and _header(path) != list(CSV_COLUMNS):  # a file of an older version: rewritten in these columns
            _write_rows(path, read_samples_csv(path))
        self.handle = open(path, "a", newline="", encoding="utf-8")
        self.writer = csv.DictWriter(self.handle, fieldnames=CSV_COLUMNS)
        if new:
            self.writer.writeheader()

    def write(self, rows: List[Dict[str, Any]]) -> None:
        if self.handle is None:
            return
        self.writer.writerows(rows)  # floats as repr: they read back exactly
        self.handle.flush()
        os.fsync(self.handle.fileno())

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
