"""Label report texts with our labeler (imported lazily: the labeler is a separate module)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

logger = logging.getLogger(__name__)


def label_texts(
    texts: Sequence[str], labeler: Any = "rules"
) -> list[tuple[dict[str, int | None], dict[str, list[str]]] | None]:
    """(labels, evidence) per text; None for empty texts (nothing to label)."""
    out: list[tuple[dict[str, int | None], dict[str, list[str]]] | None] = [None] * len(texts)
    todo = [i for i, t in enumerate(texts) if t and t.strip()]
    if not todo:
        return out
    from radialog.labeler import get_labeler

    results = get_labeler(labeler).label([texts[i] for i in todo])
    for i, result in zip(todo, results, strict=True):
        out[i] = (dict(result.labels), {k: list(v) for k, v in result.evidence.items()})
    logger.debug("labelled %d of %d texts", len(todo), len(texts))
    return out
