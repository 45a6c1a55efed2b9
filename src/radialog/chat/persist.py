"""Saving a dialog as JSON or Markdown, atomically (a crash never leaves half a file)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from radialog import DISCLAIMER, __version__
from radialog.errors import InvalidInputError
from radialog.fileio import atomic_write_text

if TYPE_CHECKING:
    from radialog.chat.session import Session


def session_dict(session: Session) -> dict[str, Any]:
    """Everything needed to read the dialog later. No patient identifiers are ever stored:
    the session never holds DICOM headers, only pixels."""
    return {
        "radialog_version": __version__,
        "saved_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": getattr(session.model, "name", None) or type(session.model).__name__,
        "image": None
        if session.xray is None
        else {
            "format": session.xray.format,
            "shape": list(session.xray.shape),
            "view": session.xray.view,
        },
        "findings": session.findings,
        "predicted": session.predicted,
        "report": session.current_report,
        # The report the dialog started from: corrections never lose it.
        "original_report": session.original_report,
        "consistency": None if session.consistency is None else session.consistency.to_dict(),
        "gate": None if getattr(session, "gate", None) is None else session.gate.to_dict(),
        "turns": [t.to_dict() for t in session.turns],
        "notices": list(session.notices),
        "disclaimer": DISCLAIMER,
    }


def session_markdown(session: Session) -> str:
    from radialog.gate import gate_notice

    data = session_dict(session)
    lines = ["# Chest X-ray report and dialog", "", f"> **{DISCLAIMER}**", ""]
    lines.append(f"Model: `{data['model']}` · saved {data['saved_at']}")
    gate = gate_notice(data["gate"])
    if gate:
        lines += ["", f"**{gate}**"]
    if data["findings"]:
        lines += [
            "",
            "## Findings (classifier probability)",
            "",
            "| finding | probability | predicted |",
        ]
        lines.append("|---|---:|:---:|")
        for label, p in data["findings"].items():
            lines.append(f"| {label} | {p:.2f} | {'yes' if label in data['predicted'] else ''} |")
    if data["report"]:
        lines += ["", "## Report", "", data["report"]]
    if data["original_report"] and data["original_report"] != data["report"]:
        lines += ["", "## Report before corrections", "", data["original_report"]]
    follow = [t for t in session.turns if t.kind != "report"]
    if follow:
        lines += ["", "## Dialog", ""]
        for t in follow:
            who = "**You**" if t.role == "user" else "**RaDialog**"
            lines += [f"{who}: {t.text}", ""]
    if data["notices"]:
        lines += ["", "_" + "; ".join(data["notices"]) + "_"]
    return "\n".join(lines).rstrip() + "\n"


def write_json(session: Session, path: str | Path) -> Path:
    return atomic_write_text(
        _existing_dir(path), json.dumps(session_dict(session), indent=2, ensure_ascii=False) + "\n"
    )


def write_markdown(session: Session, path: str | Path) -> Path:
    return atomic_write_text(_existing_dir(path), session_markdown(session))


def _existing_dir(path: str | Path) -> Path:
    """`path`, if its directory exists: a mistyped /save path must not create directories."""
    path = Path(path).expanduser()
    if not path.parent.is_dir():
        raise InvalidInputError(
            f"cannot save to {path}: the directory {path.parent} does not exist"
        )
    return path
