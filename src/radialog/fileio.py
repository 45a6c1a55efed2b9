"""Atomic file and directory writes: a reader never sees half a file, a crash leaves no debris.

Every write goes to a temporary sibling (same folder, so the final rename stays on one file
system), is flushed and fsynced, and is then renamed over the target. Files get the
permissions a plain `open()` would give them (mkstemp's are private). Append-only logs that
fsync per record (`evaluation/store.py`, `data/replay.py`) are a different pattern and
do not use this module.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


@contextmanager
def atomic_open(path: str | Path, mode: str = "w", *, newline: str | None = None) -> Iterator[IO]:
    """Open a temporary file beside `path` for writing ("w" text as UTF-8, or "wb").

    On a clean exit the file is flushed, fsynced and renamed over `path`; on an exception it
    is removed and `path` is left as it was.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open supports modes 'w' and 'wb', not {mode!r}")
    target = Path(path).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, encoding=encoding, newline=newline) as fh:
            os.fchmod(fh.fileno(), 0o666 & ~_umask())
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside `path` for writers that open the file themselves (a GGUF
    writer). On a clean exit the file is fsynced and renamed over `path`; on an exception it
    is removed and `path` is left as it was."""
    target = Path(path).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with tmp.open("rb+") as fh:
            os.fsync(fh.fileno())
        tmp.chmod(0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` atomically; returns the (user-expanded) target path."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)
    return Path(path).expanduser()


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write `text` as UTF-8 to `path` atomically; returns the target path."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """Indented JSON plus a final newline; NaN/Infinity are refused (they are not JSON)."""
    return atomic_write_text(path, json.dumps(obj, indent=2, allow_nan=False) + "\n")


def atomic_dir(out: str | Path, fill: Callable[[Path], None], *, replace: bool = True) -> Path:
    """Build a directory with `fill(tmp)` in a temporary sibling, then move it to `out`.

    An existing `out` is replaced only if `replace` (else FileExistsError); it is renamed away
    before the new one is renamed in, so `out` is never a half-written directory.
    Returns the resolved `out`.
    """
    out = Path(out).expanduser().resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        tmp.chmod(0o777 & ~_umask())  # mkdtemp makes it private; give it normal permissions
        fill(tmp)
        if out.exists():
            if not replace:
                raise FileExistsError(f"{out} already exists")
            old = out.with_name(f".{out.name}.old-{time.time_ns()}")
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _umask() -> int:
    # The only portable way to read the umask is to set it; restore it at once.
    mask = os.umask(0)
    os.umask(mask)
    return mask
