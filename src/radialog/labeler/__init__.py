"""Report text -> the 14 CheXpert labels (1/0/-1/None) with evidence sentences.

`RuleLabeler` is our own rule-based labeler (no model files needed); `CheXbertLabeler`
runs Stanford's CheXbert checkpoint when the user has it locally.
"""

from __future__ import annotations

from pathlib import Path

from radialog.errors import ModelNotFoundError
from radialog.labeler.base import Labeler, LabelResult, LabelValue, apply_no_finding_rule
from radialog.labeler.rules import RuleLabeler, label_report

__all__ = [
    "LabelResult",
    "LabelValue",
    "Labeler",
    "RuleLabeler",
    "apply_no_finding_rule",
    "get_labeler",
    "label_report",
]


def get_labeler(
    name_or_path: str | Path | Labeler | None = "rules", *, tokenizer: str | Path | None = None
) -> Labeler:
    """Return a labeler by name ("rules") or a CheXbert checkpoint path (file or directory).

    The one place a labeler argument is resolved: None means the rule labeler, and an object
    that already has `.label` is returned as it is. For CheXbert, `tokenizer` is a local
    bert-base-uncased directory; without it a tokenizer directory beside the checkpoint is used
    (see `labeler.chexbert`).
    """
    if hasattr(name_or_path, "label"):
        return name_or_path  # type: ignore[return-value]
    if name_or_path is None or str(name_or_path) in ("rules", "rule", "chexpert-rules"):
        return RuleLabeler()
    path = Path(name_or_path)
    if path.exists():
        from radialog.labeler.chexbert import CheXbertLabeler

        return CheXbertLabeler.from_checkpoint(path, tokenizer=tokenizer)
    if str(name_or_path) == "chexbert":
        raise ModelNotFoundError(
            "CheXbert needs Stanford's chexbert.pth: pass its path (e.g. --labeler /models/chexbert.pth) "
            "and a local bert-base-uncased tokenizer directory"
        )
    raise ModelNotFoundError(
        f"unknown labeler {str(name_or_path)!r}: use 'rules' or the path of a CheXbert checkpoint (chexbert.pth)"
    )
