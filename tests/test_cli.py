"""The CLI dispatcher: help, unknown commands, user errors without tracebacks."""

import os
import subprocess
import sys

import pytest

from radialog.cli import COMMANDS, main


def test_help_lists_every_command(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert "radialog" in capsys.readouterr().out


def test_unknown_command_fails(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code != 0


def test_user_error_is_one_line_without_traceback(tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("this is not an image")
    proc = subprocess.run(
        [sys.executable, "-m", "radialog", "report", str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "error" in proc.stderr and "notes.png" in proc.stderr


def test_a_native_crash_prints_what_crashed(tmp_path):
    """A segfault in a native library (llama.cpp on an AMX CPU, say) must not end a long job
    silently: the CLI enables faulthandler, which names the crash and the Python stack."""
    (tmp_path / "crashing_command.py").write_text(
        "import ctypes\n"
        "def add_arguments(parser):\n"
        "    pass\n"
        "def run(args):\n"
        "    ctypes.string_at(0)  # reads address 0: SIGSEGV\n"
    )
    code = (
        "import sys; from radialog import cli; "
        "cli.COMMANDS['crash'] = ('crashing_command', 'segfaults'); "
        "sys.exit(cli.main(['crash']))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    assert proc.returncode != 0
    assert "Segmentation fault" in proc.stderr
    assert "crashing_command.py" in proc.stderr  # the Python frame that called into C
