"""radialog.fileio: atomic writes leave either the old file or the new one, never debris."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from radialog.fileio import (
    atomic_dir,
    atomic_open,
    atomic_path,
    atomic_write_json,
    atomic_write_text,
)


def test_write_replaces_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "a.txt"
    atomic_write_text(target, "old")
    atomic_write_text(target, "néw")
    assert target.read_text(encoding="utf-8") == "néw"
    assert [p.name for p in target.parent.iterdir()] == ["a.txt"]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's private 0600


def test_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "a.jsonl"
    atomic_write_text(target, "kept\n")
    with pytest.raises(RuntimeError), atomic_open(target) as fh:
        fh.write("half")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "kept\n"
    assert [p.name for p in tmp_path.iterdir()] == ["a.jsonl"]


def test_json_refuses_nan(tmp_path: Path) -> None:
    atomic_write_json(tmp_path / "m.json", {"a": 1})
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": 1}
    with pytest.raises(ValueError):
        atomic_write_json(tmp_path / "m.json", {"a": float("nan")})
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": 1}


def test_atomic_dir_replaces_only_when_asked(tmp_path: Path) -> None:
    out = tmp_path / "model"
    atomic_dir(out, lambda d: (d / "v").write_text("1"))
    assert (out / "v").read_text() == "1"
    with pytest.raises(FileExistsError):
        atomic_dir(out, lambda d: (d / "v").write_text("2"), replace=False)
    atomic_dir(out, lambda d: (d / "v").write_text("2"))
    assert (out / "v").read_text() == "2"

    def broken(d: Path) -> None:
        (d / "v").write_text("3")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_dir(out, broken)
    assert (out / "v").read_text() == "2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_atomic_path_for_writers_that_open_the_file_themselves(tmp_path: Path) -> None:
    target = tmp_path / "m.gguf"
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target
        tmp.write_bytes(b"GGUF v1")
        assert not target.exists()  # nobody sees it before the rename
    assert target.read_bytes() == b"GGUF v1"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"GGUF half")
        raise RuntimeError("crash mid-write")
    assert target.read_bytes() == b"GGUF v1"
    assert [p.name for p in tmp_path.iterdir()] == ["m.gguf"]
