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


def test_serve_help_shows_every_default(capsys):
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for flag, default in [
        ("--max-upload-mb", "20.0"),
        ("--max-pixels", "25000000"),
        ("--max-concurrency", "1"),
        ("--queue-size", "8"),
        ("--timeout", "120.0"),
        ("--max-new-tokens", "300"),
        ("--port", "8000"),
    ]:
        after = out.rsplit(f"{flag} {flag.strip('-').replace('-', '_').upper()}", 1)[-1]
        assert f"(default: {default})" in after.split(" --", 1)[0], flag


def test_serve_flags_reach_the_server_settings(monkeypatch):
    from types import SimpleNamespace

    import uvicorn

    from radialog.commands import serve

    apps = []
    monkeypatch.setattr(serve, "load_model", lambda args: SimpleNamespace(name="stub"))
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: apps.append(app))
    assert main(["serve", "--no-repair", "--max-pixels", "1000"]) == 0
    settings = apps[0].state.settings
    assert settings.repair is False and settings.max_pixels == 1000
    assert main(["serve"]) == 0
    assert apps[1].state.settings.repair is True
