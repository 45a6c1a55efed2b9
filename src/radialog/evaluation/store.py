"""Crash-safe files for `radialog eval`: an append-only JSONL log and atomic whole-file writes.

A run can be killed at any moment (OOM, Ctrl-C, a pre-empted GPU). Predictions are therefore
appended one JSON line per record, each line written with a single `write` and followed by
flush + fsync, so after a crash the file holds every finished record plus at most one partial
last line. On reopen that partial line is cut off and the finished keys are skipped.
Summary files (metrics, report, plots) are written with `radialog.fileio`'s atomic writers,
so a reader never sees half a file.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

log = logging.getLogger(__name__)


def read_jsonl(path: str | Path) -> list[dict]:
    """Every complete record of a JSONL file; a truncated or corrupt last line is ignored."""
    records, _ = _scan(Path(path))
    return records


def _scan(path: Path) -> tuple[list[dict], int]:
    """Parse complete lines; return the records and the byte length of the valid prefix."""
    if not path.exists():
        return [], 0
    data = path.read_bytes()
    records: list[dict] = []
    good = 0
    pos = 0
    while pos < len(data):
        end = data.find(b"\n", pos)
        if end < 0:  # no newline: the writer died mid-line
            break
        line = data[pos:end]
        try:
            rec = json.loads(line) if line.strip() else None
        except json.JSONDecodeError:
            # Only the very last line may be damaged by a crash; anything earlier is a real error.
            if data.find(b"\n", end + 1) >= 0:
                raise ValueError(
                    f"{path}: corrupt JSON on a line that is not the last one"
                ) from None
            break
        if rec is not None:
            records.append(rec)
        pos = end + 1
        good = pos
    return records, good


class PredictionStore:
    """Append-only JSONL of prediction records, each with a unique string `key`.

    Opening an existing file keeps its complete records (resume) and trims a partial last line.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        records, good = _scan(self.path)
        if self.path.exists() and self.path.stat().st_size != good:
            log.warning("%s: dropping a partial last line left by an interrupted run", self.path)
            with open(self.path, "r+b") as fh:
                fh.truncate(good)
                fh.flush()
                os.fsync(fh.fileno())
        self._records: dict[str, dict] = {}
        for rec in records:
            # A key written twice (should not happen) keeps its first, finished version.
            self._records.setdefault(rec["key"], rec)

    def __contains__(self, key: str) -> bool:
        return key in self._records

    def __len__(self) -> int:
        return len(self._records)

    def get(self, key: str) -> dict | None:
        return self._records.get(key)

    def records(self, task: str | None = None) -> Iterator[dict]:
        for rec in self._records.values():
            if task is None or rec.get("task") == task:
                yield rec

    def append(self, records: Iterable[dict]) -> None:
        """Append records (each a JSON object with `key`); durable when this returns."""
        new = [r for r in records if r["key"] not in self._records]
        if not new:
            return
        payload = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in new).encode("utf-8")
        with open(self.path, "ab") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        for rec in new:
            self._records[rec["key"]] = rec
