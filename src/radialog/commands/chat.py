"""`radialog chat IMAGE`: the report, then a dialog about it in the terminal.

Answers stream as they are generated. Works with piped input (stdin not a TTY): one
message or command per line. Type /help for the commands.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from radialog.commands.options import (
    add_image_report_arguments,
    add_max_context_tokens_argument,
    add_max_new_tokens_argument,
    add_report_safety_arguments,
    load_model,
    screen_image,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_image_report_arguments(parser)
    add_max_new_tokens_argument(parser)
    add_max_context_tokens_argument(parser)
    parser.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    parser.add_argument("--temperature", type=float, default=0.7, help="with --sample")
    parser.add_argument("--top-p", type=float, default=0.9, help="with --sample")
    parser.add_argument(
        "--seed", type=int, default=None, help="with --sample: reproducible answers"
    )
    add_report_safety_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from radialog.chat import Session
    from radialog.imaging.io import read_xray
    from radialog.model.generation import GenerationOptions

    xray = read_xray(args.image)  # a bad file fails before the slower model load
    gate = screen_image(args, xray, f"image file {args.image}")  # and so does a wrong one
    model = load_model(args)
    options = GenerationOptions(
        max_new_tokens=args.max_new_tokens,
        do_sample=args.sample,
        temperature=args.temperature,
        top_p=args.top_p,
        seed=args.seed,
        frequency_penalty=args.frequency_penalty,
        presence_penalty=args.presence_penalty,
    )
    session = Session(
        model,
        xray,
        max_context_tokens=args.max_context_tokens,
        options=options,
        repair=args.repair,
        gate=gate,
    )
    return ChatLoop(session, sys.stdin, sys.stdout).run()


class ChatLoop:
    """The terminal dialog: reads lines, streams answers, handles session commands."""

    def __init__(self, session, stdin: TextIO, stdout: TextIO) -> None:  # noqa: ANN001
        self.session = session
        self.stdin = stdin
        self.out = stdout
        self.interactive = stdin.isatty()

    def run(self) -> int:
        from radialog import DISCLAIMER

        self._write(f"{DISCLAIMER}\n\n")
        self.session.analyse()
        self._write(self._findings_block())
        self._write("\nReport:\n")
        streamer = self._streamer()
        report = self.session.report(streamer)
        self._write("\n")
        self._write(self._consistency_block(report, streamer.emitted))
        self._write("\nAsk a question or type /help.\n")
        while True:
            line = self._read()
            if line is None:
                break
            line = line.strip()
            if not line:
                continue
            if not self.handle(line):
                break
        return 0

    def handle(self, line: str) -> bool:
        """Handle one line; False to quit."""
        from radialog.chat import HELP, parse_command
        from radialog.errors import RadialogError

        try:
            cmd = parse_command(line)
            if cmd is not None and cmd.name == "quit":
                return False
            if cmd is not None and cmd.name == "help":
                self._write(HELP + "\n")
                return True
            if cmd is not None and cmd.name == "reset":
                self.session.reset()
                self._write("Follow-ups forgotten; the report is kept.\n")
                return True
            if cmd is not None and cmd.name == "save":
                path = Path(cmd.argument).expanduser()
                saved = (
                    self.session.to_markdown(path)
                    if path.suffix.lower() in (".md", ".markdown")
                    else self.session.to_json(path)
                )
                self._write(f"Saved to {saved}\n")
                return True
            self._write("radialog> ")
            reply = self.session.respond(line, self._streamer())
            self._write("\n")
            if reply.correction is not None:
                self._write(reply.correction.summary() + "\n")
                if reply.correction.replaced:
                    self._write("(this is now the report; /save keeps the original too)\n")
            for notice in self.session.notices:
                self._write(f"(note: {notice})\n")
            self.session.notices.clear()
        except RadialogError as exc:
            self._write(f"\nerror: {exc}\n")
        except OSError as exc:
            self._write(f"\nerror: cannot save: {exc}\n")
        return True

    def _streamer(self):  # noqa: ANN202
        from radialog.chat.streaming import TextDeltaStreamer

        return TextDeltaStreamer(self.session.model.codec, self._write)

    def _findings_block(self) -> str:
        from radialog.chat.session import model_thresholds
        from radialog.commands.report import format_findings, format_gate

        gate = self.session.gate
        warning = format_gate(gate.to_dict()) if gate is not None else None
        lines = [warning, ""] if warning else []
        lines += format_findings(
            self.session.findings, self.session.predicted, model_thresholds(self.session.model)
        )
        return "\n".join(lines) + "\n"

    def _consistency_block(self, report: str, streamed: str) -> str:
        """The check of the report; when a repair replaced the streamed first draft, the
        report that counts (the dialog continues from it)."""
        check = self.session.consistency
        if check is None:
            return ""
        lines = [f"(consistency check: {check.summary()})"]
        lines += [f"(note: {note})" for note in check.notes]
        if check.repaired and report != streamed:
            lines += [
                "",
                "Report after the automatic repair (--no-repair keeps the draft):",
                report,
            ]
        return "\n".join(lines) + "\n"

    def _read(self) -> str | None:
        if self.interactive:
            try:
                return input("\nyou> ")
            except EOFError:
                return None
        line = self.stdin.readline()
        if line and line.strip():
            self._write(f"\nyou> {line.strip()}\n")  # echo piped input: a readable transcript
        return line if line else None

    def _write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()
