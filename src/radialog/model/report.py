"""A generated report as the system returns it, and its one JSON shape (`Report.to_dict`).

Light on purpose (no torch): the chat session builds the same record for its first turn.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from radialog import DISCLAIMER
from radialog.consistency import Consistency
from radialog.model.prompt import Conversation


def with_total(stages: dict[str, float]) -> dict[str, float]:
    """Stage timings plus "total", their sum: a cached image analysis still counts its own
    time, so every caller reports the total the same way."""
    out = {k: v for k, v in stages.items() if k != "total"}
    out["total"] = sum(out.values())
    return out


@dataclass
class Report:
    """A generated report. `findings`: probability per CheXpert label (canonical order);
    `predicted`: labels above their threshold after RaDialog's No-Finding rule (the findings
    given to the LLM); `timings`: seconds per stage."""

    findings: dict[str, float]
    predicted: list[str]
    text: str
    model: str
    timings: dict[str, float] = field(default_factory=dict)
    disclaimer: str = DISCLAIMER
    # The dialog so far (report prompt + this report), for follow-up questions.
    conversation: Conversation | None = field(default=None, repr=False, compare=False)
    # The labeler's check of the report against `predicted` (None when checking was off).
    consistency: Consistency | None = None
    thresholds: dict[str, float] = field(default_factory=dict)
    # The input gate's verdict (radialog.gate.GateResult.to_dict()), set by the caller that
    # screened the image.
    gate: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {
            "findings": {k: float(v) for k, v in self.findings.items()},
            "thresholds": {k: round(float(v), 4) for k, v in self.thresholds.items()},
            "predicted": list(self.predicted),
            "report": self.text,
            "model": self.model,
            "disclaimer": self.disclaimer,
            "timings": {k: round(float(v), 4) for k, v in self.timings.items()},
        }
        if self.consistency is not None:
            out["consistency"] = self.consistency.to_dict()
        if self.gate is not None:
            out["gate"] = dict(self.gate)
        return out
