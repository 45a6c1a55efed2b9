"""`report.md` for an eval run (and for `--compare`), laid out like RaDialog's tables.

Scales follow the paper: CE, BLEU, METEOR and ROUGE-L as percentages with one decimal, BERTScore
as a fraction with two decimals. Every value is followed by its 95% bootstrap interval when one
was computed; the conventions behind each number are listed under the tables.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from radialog.labels import CHEXPERT_LABELS
from radialog.metrics import RADIALOG_CE

# (column header, metric key, scale, decimals). Order as in the RaDialog results table.
RG_COLUMNS: tuple[tuple[str, str, float, int], ...] = (
    ("CE", RADIALOG_CE, 100.0, 1),
    ("BS", "bertscore_f1", 1.0, 2),
    ("B-1", "bleu_1", 100.0, 1),
    ("B-4", "bleu_4", 100.0, 1),
    ("MTR", "meteor", 100.0, 1),
    ("R-L", "rouge_l", 100.0, 1),
)
QA_COLUMNS: tuple[tuple[str, str, float, int], ...] = (
    ("F1", "macro_f1", 100.0, 1),
    ("Prec", "macro_precision", 100.0, 1),
    ("Rec", "macro_recall", 100.0, 1),
    ("Acc", "accuracy", 100.0, 1),
)
TASK_TITLES = {
    "rg": "Report generation",
    "correction": "Report correction",
    "binary_qa": "Findings QA (binary)",
    "all_qa": "Findings QA (list all)",
    "impression": "Impression generation",
    "view": "View classification",
    "text_correction": "Correction of the real report (text only)",
    "text_impression": "Impression from the real findings (text only)",
}
TEXT_CORRECTION_COLUMNS: tuple[tuple[str, str], ...] = (
    ("Success", "success_rate"),
    ("Took effect", "took_effect"),
    ("Nothing else changed", "unchanged"),
    ("ROUGE-L vs original", "rouge_l_vs_original"),
)


def fmt_metric(
    entry: Mapping[str, Any] | None, scale: float, decimals: int, ci: bool = True
) -> str:
    """'39.2 [35.0, 43.1]' from a metric entry {'value', 'ci_low', 'ci_high'}; '–' when missing."""
    if not entry or entry.get("value") is None:
        return "–"
    text = f"{entry['value'] * scale:.{decimals}f}"
    low, high = entry.get("ci_low"), entry.get("ci_high")
    if ci and low is not None and high is not None:
        text += f" [{low * scale:.{decimals}f}, {high * scale:.{decimals}f}]"
    return text


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _row(name: str, metrics: Mapping[str, Any], columns) -> list[str]:
    return [name] + [fmt_metric(metrics.get(key), scale, dec) for _, key, scale, dec in columns]


def render_run_report(result: Mapping[str, Any]) -> str:
    """Markdown for one run's metrics.json content."""
    run, tasks = result["run"], result["tasks"]
    name = run["model"] + (" (no findings)" if run.get("no_findings") else "")
    out = [
        f"# radialog eval: {name} on {run['dataset']} ({run['split']})",
        "",
        "Values: CE, BLEU, METEOR, ROUGE-L and QA scores ×100; BERTScore as a fraction. "
        f"Brackets: 95% bootstrap interval ({run.get('n_bootstrap', 0)} resamples of the test items).",
        "",
    ]
    if "rg" in tasks:
        rg = tasks["rg"]
        out += [f"## Report generation (n = {rg['n']})", ""]
        out += _table(
            ["Model"] + [c[0] for c in RG_COLUMNS], [_row(name, rg["metrics"], RG_COLUMNS)]
        )
        out.append("")
        cls = rg.get("classifier")
        if cls:
            out += [
                "Findings classifier vs the reference labels: macro AUROC "
                f"{fmt_metric(cls['macro_auroc'], 100.0, 1)}, macro F1 (14) "
                f"{fmt_metric(cls['macro_f1'], 100.0, 1)}.",
                "",
            ]
    downstream = _downstream_rows(tasks)
    if downstream:
        out += ["## Downstream tasks", ""]
        out += _table(["Task", "n", "Metric", "Value"], downstream)
        out.append("")
    per_label = {
        t: tasks[t]["per_label_f1"]
        for t in ("rg", "binary_qa", "all_qa")
        if "per_label_f1" in tasks.get(t, {})
    }
    if "correction" in tasks:
        per_label["correction"] = tasks["correction"]["after"]["per_label_f1"]
    if per_label:
        out += ["## Per-label F1 (×100)", ""]
        header = ["Label"] + [TASK_TITLES[t] for t in per_label]
        rows = [
            [label] + [_pct(per_label[t].get(label)) for t in per_label]
            for label in CHEXPERT_LABELS
        ]
        out += _table(header, rows)
        out.append("")
    plots = result.get("plots") or []
    for plot in plots:
        out += [f"![per-label F1]({plot})", ""]
    out += ["## Conventions", ""]
    out += [f"- **{key}**: {text}" for key, text in result.get("conventions", {}).items()]
    out.append("")
    return "\n".join(out)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}"


def _downstream_rows(tasks: Mapping[str, Any]) -> list[list[str]]:
    rows: list[list[str]] = []
    if "correction" in tasks:
        c = tasks["correction"]
        before, after = c["before"]["metrics"], c["after"]["metrics"]
        n = f"{c['n']} ({c['n_keep_old']} kept)"
        for label, key, scale, dec in (RG_COLUMNS[0], RG_COLUMNS[-1]):
            b, a = before.get(key), after.get(key)
            delta = "" if not (a and b) else f" (Δ {(a['value'] - b['value']) * scale:+.{dec}f})"
            rows.append(
                [
                    TASK_TITLES["correction"],
                    n,
                    f"{label} before → after",
                    f"{fmt_metric(b, scale, dec, ci=False)} → {fmt_metric(a, scale, dec)}{delta}",
                ]
            )
    for task in ("binary_qa", "all_qa"):
        if task in tasks:
            t = tasks[task]
            for label, key, scale, dec in QA_COLUMNS:
                rows.append(
                    [
                        TASK_TITLES[task],
                        str(t["n"]),
                        label,
                        fmt_metric(t["metrics"].get(key), scale, dec),
                    ]
                )
    if "impression" in tasks:
        t = tasks["impression"]
        for label, key, scale, dec in RG_COLUMNS[2:]:
            rows.append(
                [
                    TASK_TITLES["impression"],
                    str(t["n"]),
                    label,
                    fmt_metric(t["metrics"].get(key), scale, dec),
                ]
            )
    if "text_correction" in tasks:
        t = tasks["text_correction"]
        modes = ", ".join(f"{m['n']} {name}" for name, m in t.get("by_mode", {}).items())
        for label, key in TEXT_CORRECTION_COLUMNS:
            rows.append(
                [
                    TASK_TITLES["text_correction"],
                    f"{t['n']} ({modes})" if modes else str(t["n"]),
                    label,
                    fmt_metric(t["metrics"].get(key), 100.0, 1),
                ]
            )
    if "text_impression" in tasks:
        t = tasks["text_impression"]
        for label, key, scale, dec in RG_COLUMNS[2:]:
            rows.append(
                [
                    TASK_TITLES["text_impression"],
                    str(t["n"]),
                    label,
                    fmt_metric(t["metrics"].get(key), scale, dec),
                ]
            )
    if "view" in tasks:
        t = tasks["view"]
        for label, key in (("Accuracy", "accuracy"), ("Macro F1", "macro_f1")):
            rows.append(
                [
                    TASK_TITLES["view"],
                    str(t["n"]),
                    label,
                    fmt_metric(t["metrics"].get(key), 100.0, 1),
                ]
            )
    return rows


def render_comparison(result: Mapping[str, Any]) -> str:
    """Markdown for a `--compare` result: per metric A, B, B − A with its paired-bootstrap CI and p."""
    a, b = result["a"], result["b"]
    out = [
        "# radialog eval --compare",
        "",
        f"- A: `{a['dir']}` ({a['model']}{' (no findings)' if a.get('no_findings') else ''})",
        f"- B: `{b['dir']}` ({b['model']}{' (no findings)' if b.get('no_findings') else ''})",
        f"- {result['n']} test items present in both runs (matched by id); "
        f"paired bootstrap, {result['n_bootstrap']} resamples.",
        "",
    ]
    rows = []
    for row in result["metrics"]:
        scale, dec = row["scale"], row["decimals"]
        ci = row.get("ci")
        ci_text = "–" if not ci else f"[{ci[0] * scale:+.{dec}f}, {ci[1] * scale:+.{dec}f}]"
        p = row.get("p_value")
        rows.append(
            [
                row["label"],
                f"{row['a'] * scale:.{dec}f}",
                f"{row['b'] * scale:.{dec}f}",
                f"{row['delta'] * scale:+.{dec}f}",
                ci_text,
                "–" if p is None else f"{p:.3f}",
            ]
        )
    out += _table(["Metric", "A", "B", "B − A", "95% CI of B − A", "p"], rows)
    out.append("")
    return "\n".join(out)
