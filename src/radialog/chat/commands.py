"""Slash commands shared by the terminal chat, the HTTP API and the web page.

One syntax everywhere, so a conversation typed in `radialog chat` means the same when
sent to `/v1/chat/completions`:

    /correct +effusion -pneumothorax      add / remove findings (RaDialog correction prompt)
    /correct +"lung opacity" -edema       multi-word labels quoted, or with _ or -
    /easy                                 rewrite the report in easy language
    /summary                              summarise the report
    /impression                           write the impression section
    /translate German                     translate the report
    /reset  /save FILE  /help  /quit      terminal-only session commands

Anything not starting with "/" is a free question about the image and report.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from radialog.errors import RadialogError
from radialog.labels import CHEXPERT_LABELS, NO_FINDING, canonical_label


class CommandError(RadialogError):
    """A slash command is malformed; the message shows the right syntax."""


# Short names people type for the 14 labels (lower case, spaces for separators).
ALIASES: dict[str, str] = {
    "effusion": "Pleural Effusion",
    "pleural effusion": "Pleural Effusion",
    "opacity": "Lung Opacity",
    "lesion": "Lung Lesion",
    "nodule": "Lung Lesion",
    "mass": "Lung Lesion",
    "devices": "Support Devices",
    "device": "Support Devices",
    "tubes": "Support Devices",
    "lines": "Support Devices",
    "mediastinum": "Enlarged Cardiomediastinum",
    "enlarged mediastinum": "Enlarged Cardiomediastinum",
    "cardiomediastinum": "Enlarged Cardiomediastinum",
    "heart enlargement": "Cardiomegaly",
    "enlarged heart": "Cardiomegaly",
    "pleural": "Pleural Other",
    "normal": NO_FINDING,
    "no findings": NO_FINDING,
}

FOLLOW_UPS = ("correct", "easy", "summary", "impression", "translate")
SESSION_COMMANDS = ("reset", "save", "help", "quit")
_SYNONYMS = {
    "summarize": "summary",
    "summarise": "summary",
    "simple": "easy",
    "easy-language": "easy",
    "exit": "quit",
    "q": "quit",
    "?": "help",
}

HELP = """Commands:
  /correct +finding -finding   add (+) or remove (-) findings, e.g. /correct +effusion -pneumothorax
                               (multi-word: +"lung opacity" or +lung_opacity)
  /easy                        explain the report in easy language
  /summary                     summarise the report
  /impression                  write the impression section
  /translate LANGUAGE          translate the report, e.g. /translate German
  /reset                       forget the follow-ups (keeps the image and its report)
  /save FILE                   save the conversation (.json or .md)
  /help                        this text
  /quit                        leave
Anything else is a question about the image and the report."""


@dataclass
class Command:
    """A parsed slash command."""

    name: str
    add: list[str] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    argument: str = ""  # /translate LANGUAGE, /save FILE


def resolve_label(name: str) -> str:
    """Canonical CheXpert label for what a person typed ('effusion', 'lung_opacity', ...)."""
    key = " ".join(name.replace("_", " ").replace("-", " ").split()).lower()
    if not key:
        raise CommandError("empty finding name; e.g. /correct +effusion -pneumothorax")
    try:
        return canonical_label(key)
    except ValueError:
        pass
    if key in ALIASES:
        return ALIASES[key]
    matches = [label for label in CHEXPERT_LABELS if key in label.lower()]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise CommandError(
            f"'{name}' is ambiguous: it matches {', '.join(matches)}; type more of the name"
        )
    raise CommandError(
        f"unknown finding '{name}'; use one of: {', '.join(label.lower() for label in CHEXPERT_LABELS)}"
    )


def parse_command(line: str) -> Command | None:
    """Parse a slash command; None for a plain question. Raises CommandError if malformed."""
    text = line.strip()
    if not text.startswith("/") or text.startswith("//"):
        return None
    head, _, rest = text[1:].partition(" ")
    name = _SYNONYMS.get(head.lower(), head.lower())
    rest = rest.strip()
    if name == "correct":
        return _parse_correct(rest)
    if name == "translate":
        if not rest:
            raise CommandError("say which language: /translate German")
        return Command("translate", argument=rest)
    if name == "save":
        if not rest:
            raise CommandError("say where to save: /save conversation.json (or .md)")
        return Command("save", argument=rest)
    if name in FOLLOW_UPS or name in SESSION_COMMANDS:
        if rest:
            raise CommandError(f"/{name} takes no arguments")
        return Command(name)
    raise CommandError(f"unknown command /{head}; type /help for the list")


def _parse_correct(rest: str) -> Command:
    try:
        tokens = shlex.split(rest)
    except ValueError as exc:
        raise CommandError(f"cannot parse /correct arguments ({exc}); close your quotes") from None
    add: list[str] = []
    remove: list[str] = []
    for tok in tokens:
        if tok[:1] in "+-" and len(tok) > 1:
            label = resolve_label(tok[1:])
            target, other = (add, remove) if tok[0] == "+" else (remove, add)
            if label in other:
                raise CommandError(f"{label} is both added and removed; pick one")
            if label not in target:
                target.append(label)
        else:
            raise CommandError(
                f"'{tok}' needs a + (add) or - (remove) in front: /correct +effusion -pneumothorax"
            )
    if not add and not remove:
        raise CommandError("say what to change: /correct +effusion -pneumothorax")
    return Command("correct", add=add, remove=remove)


def format_correct(add: list[str], remove: list[str]) -> str:
    """The /correct command line for these changes (what the web page and logs show)."""
    parts = [f'+"{a.lower()}"' if " " in a else f"+{a.lower()}" for a in add]
    parts += [f'-"{r.lower()}"' if " " in r else f"-{r.lower()}" for r in remove]
    return "/correct " + " ".join(parts)
