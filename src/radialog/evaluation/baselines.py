"""Model-free report-generation baselines for `radialog eval --baseline NAME`.

A baseline writes the same `rg/<id>` prediction records a model would, so the same scoring code
turns them into metrics. `normal`: every study gets the same normal report, the usual floor
for clinical-efficacy scores (most test studies are normal, so it is not a trivial one).
"""

from __future__ import annotations

from collections.abc import Sequence

from radialog.evaluation.items import EvalItem
from radialog.evaluation.store import PredictionStore

BASELINES: dict[str, str] = {"normal": "No acute cardiopulmonary abnormality."}


def baseline_text(name: str) -> str:
    from radialog.errors import InvalidInputError

    if name not in BASELINES:
        raise InvalidInputError(
            f"unknown baseline {name!r}; choose from {', '.join(sorted(BASELINES))}"
        )
    return BASELINES[name]


def run_rg_baseline(store: PredictionStore, items: Sequence[EvalItem], name: str) -> None:
    """Write the baseline's report for every item not yet in the store."""
    text = baseline_text(name)
    store.append(
        {
            "key": f"rg/{it.id}",
            "task": "rg",
            "id": it.id,
            "prompt": f"BASELINE:{name}",
            "output": text,
            "user_turn": "",
            "predicted_findings": [],
            "probabilities": {},
            "reference": it.findings,
        }
        for it in items
        if f"rg/{it.id}" not in store
    )
