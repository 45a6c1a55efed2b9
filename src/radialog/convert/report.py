"""What a conversion did: per part, which source keys landed, which were left out and why."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SHOW = 8  # key names listed per category in the printed report


@dataclass
class PartReport:
    """One checkpoint part (e.g. "vision tower") mapped onto one radialog module.

    `loaded`: target keys filled from the source. `ignored`: source keys not needed for
    inference (training-only heads, the text branch), dropped on purpose. `unmatched`: source
    keys radialog did not recognise. `missing`: target keys the source did not provide (they keep
    their initial values).
    """

    name: str
    source: str
    loaded: int = 0
    ignored: list[str] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.unmatched and not self.missing


@dataclass
class ConversionReport:
    kind: str
    out: Path
    parts: list[PartReport] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(p.ok for p in self.parts)

    def part(self, name: str) -> PartReport:
        for p in self.parts:
            if p.name == name:
                return p
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["out"] = str(self.out)
        return data

    def format(self) -> str:
        """A human-readable summary (what `radialog convert` prints)."""
        lines = [f"converted {self.kind} -> {self.out}"]
        for p in self.parts:
            status = "ok" if p.ok else "CHECK"
            lines.append(f"  [{status}] {p.name}: {p.loaded} tensors loaded from {p.source}")
            for label, keys in (
                ("unmatched source keys", p.unmatched),
                ("missing (left at initial values)", p.missing),
                ("ignored (not used for inference)", p.ignored),
            ):
                if keys:
                    shown = ", ".join(keys[:SHOW]) + (" ..." if len(keys) > SHOW else "")
                    lines.append(f"      {len(keys)} {label}: {shown}")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)
