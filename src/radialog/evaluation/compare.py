"""`radialog eval --compare A B`: paired bootstrap of run B against run A, matched by item id.

Both runs' predictions are scored on the same resamples of the items they share, so the CI of
B − A and the one-sided p-value (share of resamples where B is not better than A) account for
the pairing. Report metrics come from `radialog.metrics.compare_systems`; downstream tasks
(correction CE, QA F1, view accuracy) use the same paired bootstrap on their statistics.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from radialog.errors import InvalidInputError
from radialog.evaluation.parsing import parse_view
from radialog.evaluation.runner import PREDICTIONS, RUN
from radialog.evaluation.scoring import (
    CE_CONVENTION,
    QA_KEYS,
    binary_rows,
    list_rows,
    view_statistics,
)
from radialog.evaluation.store import read_jsonl
from radialog.evaluation.tables import RG_COLUMNS, render_comparison
from radialog.fileio import atomic_write_json, atomic_write_text
from radialog.labels import NO_FINDING
from radialog.metrics import RADIALOG_CE, compare_systems
from radialog.metrics.bootstrap import paired_bootstrap
from radialog.metrics.clinical import clinical_statistics, label_matrix

log = logging.getLogger(__name__)


def load_run(path: str | Path) -> tuple[dict[str, Any], dict[str, dict]]:
    """(run.json, records by key) of a run folder; the store is only read, never repaired."""
    path = Path(path)
    if not (path / RUN).is_file() or not (path / PREDICTIONS).is_file():
        raise InvalidInputError(
            f"{path} is not a `radialog eval` run folder (no {RUN} / {PREDICTIONS})"
        )
    run = json.loads((path / RUN).read_text(encoding="utf-8"))
    records = {r["key"]: r for r in read_jsonl(path / PREDICTIONS)}
    return run, records


def _ids(records: Mapping[str, dict], task: str) -> list[str]:
    return [r["id"] for r in records.values() if r.get("task") == task]


def compare_runs(
    dir_a: str | Path,
    dir_b: str | Path,
    *,
    out: str | Path | None = None,
    n_bootstrap: int = 1000,
    seed: int = 42,
    labeler: str = "rules",
    bertscore: bool | str = True,
    meteor: bool = True,
) -> dict[str, Any]:
    """B − A on every metric both runs have; writes compare.json and compare.md into `out`
    (default: `<dir_b>/compare-<name of dir_a>`)."""
    from radialog.labeler import get_labeler

    run_a, rec_a = load_run(dir_a)
    run_b, rec_b = load_run(dir_b)
    in_b = set(_ids(rec_b, "rg"))
    ids = [i for i in _ids(rec_a, "rg") if i in in_b]
    if not ids:
        raise InvalidInputError(
            f"{dir_a} and {dir_b} share no report-generation items (matched by id)"
        )
    refs = [rec_a[f"rg/{i}"]["reference"] for i in ids]
    differ = [i for i, ref in zip(ids, refs, strict=True) if rec_b[f"rg/{i}"]["reference"] != ref]
    if differ:
        raise InvalidInputError(
            f"the runs have different reference texts for {len(differ)} items (e.g. {differ[0]})"
        )
    lab = get_labeler(labeler)
    preds_a = [rec_a[f"rg/{i}"]["output"] for i in ids]
    preds_b = [rec_b[f"rg/{i}"]["output"] for i in ids]
    # compare_systems tests its first system against the second: pass B first for B − A.
    cmp = compare_systems(
        preds_b,
        preds_a,
        refs,
        labeler=lab,
        bertscore=bertscore,
        bootstrap=n_bootstrap,
        seed=seed,
        progress=False,
        meteor=meteor,
    )
    rows = []
    columns = [*RG_COLUMNS, ("CE micro-F1 (5)", f"{CE_CONVENTION}/f1_micro/5", 100.0, 1)]
    for label, key, scale, dec in columns:
        m = cmp["metrics"].get(key)
        if m and m["a"] is not None:
            rows.append(
                _row(
                    f"RG {label}",
                    key,
                    m["b"],
                    m["a"],
                    m["delta"],
                    m["ci_low"],
                    m["ci_high"],
                    m["p_value"],
                    scale,
                    dec,
                    m["convention"],
                )
            )
    ref_m = label_matrix([r.labels for r in lab.label(refs)])
    rows += _downstream_rows(rec_a, rec_b, ids, ref_m, lab, n_bootstrap, seed)
    result = {
        "a": {
            "dir": str(dir_a),
            "model": run_a["model"],
            "no_findings": not run_a.get("use_findings", True),
        },
        "b": {
            "dir": str(dir_b),
            "model": run_b["model"],
            "no_findings": not run_b.get("use_findings", True),
        },
        "n": len(ids),
        "n_bootstrap": n_bootstrap,
        "seed": seed,
        "labeler": cmp["labeler"],
        "bertscore": cmp["bertscore"],
        "metrics": rows,
    }
    out = Path(out) if out else Path(dir_b) / f"compare-{Path(dir_a).resolve().name}"
    atomic_write_json(out / "compare.json", result)
    atomic_write_text(out / "compare.md", render_comparison(result))
    return result


def _row(label, key, a, b, delta, low, high, p, scale, dec, convention) -> dict[str, Any]:
    return {
        "label": label,
        "key": key,
        "a": a,
        "b": b,
        "delta": delta,
        "ci": None if low is None or high is None else [low, high],
        "p_value": p,
        "scale": scale,
        "decimals": dec,
        "convention": convention,
    }


def _paired(
    label: str, key: str, stat_a, stat_b, n: int, samples: int, seed: int, convention: str
) -> dict:
    # The bootstrap keys its distributions by Statistic.name; both statistics share that name.
    name = stat_a.name
    r = paired_bootstrap({name: stat_b}, {name: stat_a}, n, samples, seed)[name]
    return _row(label, key, r.b, r.a, r.delta, r.ci_low, r.ci_high, r.p_value, 100.0, 1, convention)


def _downstream_rows(
    rec_a: Mapping[str, dict],
    rec_b: Mapping[str, dict],
    ids: Sequence[str],
    ref_m: np.ndarray,
    labeler: Any,
    samples: int,
    seed: int,
) -> list[dict]:
    rows = []

    def have(key_of) -> list[str]:
        return [i for i in ids if key_of(i) in rec_a and key_of(i) in rec_b]

    sub = have(lambda i: f"correction/{i}")
    if sub and len(sub) == len(ids):
        mats = [
            label_matrix(
                [r.labels for r in labeler.label([rec[f"correction/{i}"]["output"] for i in ids])]
            )
            for rec in (rec_a, rec_b)
        ]
        sa, sb = (
            next(s for s in clinical_statistics(m, ref_m, CE_CONVENTION) if s.name == RADIALOG_CE)
            for m in mats
        )
        rows.append(
            _paired(
                "Correction CE after", RADIALOG_CE, sa, sb, len(ids), samples, seed, sa.convention
            )
        )
    qa = (
        ("binary_qa", binary_rows, "Binary QA F1", lambda i: f"binary_qa/{i}/{NO_FINDING}"),
        ("all_qa", list_rows, "List-all QA F1", lambda i: f"all_qa/{i}"),
    )
    for task, parse, label, key_of in qa:
        if len(have(key_of)) != len(ids):
            continue
        stats = []
        for rec in (rec_a, rec_b):
            m = np.array(parse(rec, ids), dtype=np.float64)
            stats += [
                s
                for s in clinical_statistics(m, ref_m, CE_CONVENTION)
                if s.name == QA_KEYS["macro_f1"]
            ]
        rows.append(
            _paired(
                label,
                f"{task}/macro_f1",
                stats[0],
                stats[1],
                len(ids),
                samples,
                seed,
                stats[0].convention,
            )
        )
    view_ids = have(lambda i: f"view/{i}")
    if view_ids:
        true = [rec_a[f"view/{i}"]["reference"] for i in view_ids]
        preds = [
            [parse_view(rec[f"view/{i}"]["output"]) for i in view_ids] for rec in (rec_a, rec_b)
        ]
        sa, sb = (next(s for s in view_statistics(true, p) if s.name == "accuracy") for p in preds)
        rows.append(
            _paired(
                "View accuracy",
                "view/accuracy",
                sa,
                sb,
                len(view_ids),
                samples,
                seed,
                sa.convention,
            )
        )
    return rows
