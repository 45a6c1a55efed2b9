"""The RaDialog model: encoders, adapters, findings classifier, prompt format, LLM, checkpoint IO.

Heavy modules (torch, transformers) load on first use of the names below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from radialog.model.config import RadialogConfig, load_named_config
from radialog.model.prompt import (
    IMAGE_PLACEHOLDER,
    SYSTEM_PROMPT,
    Conversation,
    findings_text,
    report_prompt,
)

if TYPE_CHECKING:
    from radialog.model.radialog_model import ImageAnalysis, RadialogModel
    from radialog.model.report import Report

__all__ = [
    "IMAGE_PLACEHOLDER",
    "SYSTEM_PROMPT",
    "Conversation",
    "ImageAnalysis",
    "RadialogConfig",
    "RadialogModel",
    "Report",
    "findings_text",
    "load_named_config",
    "report_prompt",
]


def __getattr__(name: str) -> Any:
    if name in ("RadialogModel", "Report", "ImageAnalysis"):
        from radialog.model import radialog_model

        return getattr(radialog_model, name)
    raise AttributeError(name)
