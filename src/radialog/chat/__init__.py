"""Dialog sessions about one chest X-ray: report, follow-ups, correction check, saving."""

from radialog.chat.commands import HELP, Command, CommandError, parse_command, resolve_label
from radialog.chat.correction import CorrectionResult
from radialog.chat.session import Reply, Session, Turn
from radialog.model.generation import GenerationOptions

__all__ = [
    "HELP",
    "Command",
    "CommandError",
    "CorrectionResult",
    "GenerationOptions",
    "Reply",
    "Session",
    "Turn",
    "parse_command",
    "resolve_label",
]
