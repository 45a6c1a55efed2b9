"""Command line entry point: parses arguments and calls the library.

Each subcommand lives in `radialog.commands.<name>` with `add_arguments(parser)` and
`run(args) -> int`; modules are imported only when their command runs, so `--help` is fast.
"""

from __future__ import annotations

import argparse
import faulthandler
import importlib
import logging
import sys

from radialog import __version__
from radialog.errors import RadialogError

# name -> (module, one-line help). Order is the order shown by --help.
COMMANDS: dict[str, tuple[str, str]] = {
    "report": ("radialog.commands.report", "write a report for an X-ray image (PNG/JPEG/DICOM)"),
    "chat": ("radialog.commands.chat", "interactive dialog about an X-ray and its report"),
    "serve": ("radialog.commands.serve", "HTTP API (OpenAI-compatible) and web page"),
    "demo": ("radialog.commands.demo", "report + follow-up questions on the bundled example image"),
    "label": ("radialog.commands.label", "label report texts with the 14 CheXpert observations"),
    "score": ("radialog.commands.score", "score predicted reports against references"),
    "eval": ("radialog.commands.eval", "generate, score and tabulate on a dataset"),
    "train": ("radialog.commands.train", "train a stage: classifier, align, instruct"),
    "build-instruct": ("radialog.commands.build_instruct", "build the instruct dataset (JSONL)"),
    "phantom": ("radialog.commands.phantom", "render synthetic phantom radiographs"),
    "convert": ("radialog.commands.convert", "convert published RaDialog / CheXbert checkpoints"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="radialog",
        description="Chest X-ray report generation and dialog. Not a medical device: "
        "a radiologist must review every report.",
    )
    parser.add_argument("--version", action="version", version=f"radialog {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_module, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


class _StderrHandler(logging.StreamHandler):
    """Writes to the current sys.stderr (which may be replaced after the handler is made)."""

    @property
    def stream(self):  # type: ignore[override]  # noqa: ANN201
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:  # noqa: ANN001
        pass


def _show_preparation_notices() -> None:
    """First-use conversions (written to the cache) say once what they prepare, where and how
    big, as one plain line each on stderr (radialog.model.llm.PREPARE_LOG)."""
    prepare = logging.getLogger("radialog.prepare")
    if prepare.handlers:
        return
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("radialog: %(message)s"))
    prepare.addHandler(handler)
    prepare.setLevel(logging.INFO)
    prepare.propagate = False


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # A crash inside a native library (llama.cpp, torch) kills the process without a Python
    # exception; faulthandler still prints what crashed and the Python stack that called it.
    if not faulthandler.is_enabled():
        faulthandler.enable(file=sys.__stderr__ or sys.stderr, all_threads=True)
    parser = build_parser()
    # Parse only the global part; the subcommand's own parser handles the rest.
    top, rest = parser.parse_known_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if top.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    _show_preparation_notices()
    if top.command is None:
        parser.print_help()
        return 0
    module_name, help_text = COMMANDS[top.command]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            print(
                f"radialog: the '{top.command}' command is not available in this build",
                file=sys.stderr,
            )
            return 2
        raise
    sub = argparse.ArgumentParser(prog=f"radialog {top.command}", description=help_text)
    module.add_arguments(sub)
    args = sub.parse_args(rest)
    try:
        return int(module.run(args) or 0)
    except RadialogError as exc:
        print(f"radialog {top.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
