"""Slash-command parsing and label resolution (no model needed)."""

from __future__ import annotations

import pytest

from radialog.chat.commands import CommandError, format_correct, parse_command, resolve_label


@pytest.mark.parametrize(
    ("typed", "label"),
    [
        ("effusion", "Pleural Effusion"),
        ("Pleural_Effusion", "Pleural Effusion"),
        ("lung-opacity", "Lung Opacity"),
        ("PNEUMOTHORAX", "Pneumothorax"),
        ("cardiomegaly", "Cardiomegaly"),
        ("nodule", "Lung Lesion"),
        ("fract", "Fracture"),
    ],
)
def test_resolve_label(typed: str, label: str) -> None:
    assert resolve_label(typed) == label


def test_resolve_label_rejects_unknown_and_ambiguous() -> None:
    with pytest.raises(CommandError, match="unknown finding"):
        resolve_label("banana")
    with pytest.raises(CommandError, match="ambiguous"):
        resolve_label("lung")  # Lung Opacity or Lung Lesion


def test_parse_correct_with_quotes_and_short_names() -> None:
    cmd = parse_command('/correct +effusion -pneumothorax +"lung opacity"')
    assert cmd is not None and cmd.name == "correct"
    assert cmd.add == ["Pleural Effusion", "Lung Opacity"]
    assert cmd.remove == ["Pneumothorax"]
    # format_correct writes a line that parses back to the same changes
    again = parse_command(format_correct(cmd.add, cmd.remove))
    assert again is not None and (again.add, again.remove) == (cmd.add, cmd.remove)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("/correct", "say what to change"),
        ("/correct effusion", "needs a \\+"),
        ("/correct +effusion -effusion", "both added and removed"),
        ('/correct +"lung', "close your quotes"),
        ("/translate", "which language"),
        ("/easy please", "takes no arguments"),
        ("/frobnicate", "unknown command"),
    ],
)
def test_malformed_commands_say_what_is_wrong(line: str, message: str) -> None:
    with pytest.raises(CommandError, match=message):
        parse_command(line)


def test_plain_questions_and_synonyms() -> None:
    assert parse_command("Is the heart enlarged?") is None
    assert parse_command("//not a command") is None
    assert parse_command("/summarize").name == "summary"  # type: ignore[union-attr]
    assert parse_command("/translate  Brazilian Portuguese").argument == "Brazilian Portuguese"  # type: ignore[union-attr]
    assert parse_command("/exit").name == "quit"  # type: ignore[union-attr]
