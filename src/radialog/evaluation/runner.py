"""`run_eval`: generate every task's predictions (resumably), score them, write the run folder.

Output folder:
- `run.json`: what was run (model, dataset, split, tasks, options). A resumed run must match it.
- `predictions.jsonl`: one record per prompt (key, task, id, prompt, output, task fields);
  append-only and crash-safe, so a killed run continues where it stopped.
- `metrics.json`: every metric with its 95% CI and the convention behind it.
- `report.md`: RaDialog-style tables; `per_label_f1.png`: per-label F1 chart.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from radialog import __version__
from radialog.data.study import Study
from radialog.errors import InvalidInputError
from radialog.evaluation import generation as gen
from radialog.evaluation.items import EvalItem, build_items
from radialog.evaluation.store import PredictionStore
from radialog.fileio import atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)

TASKS: tuple[str, ...] = ("rg", "correction", "binary_qa", "all_qa", "impression", "view")
# Follow-up tasks on the real report text (radialog.evaluation.followup): no image needed.
# Named explicitly; "all" keeps meaning RaDialog's six tasks above.
TEXT_TASKS: tuple[str, ...] = ("text_correction", "text_impression")
ALL_TASKS: tuple[str, ...] = TASKS + TEXT_TASKS
# Tasks that continue the generated report's conversation need the RG predictions.
NEEDS_RG = frozenset({"correction", "binary_qa", "all_qa", "impression"})
PREDICTIONS = "predictions.jsonl"
METRICS = "metrics.json"
REPORT = "report.md"
RUN = "run.json"
PLOT = "per_label_f1.png"


@dataclass
class EvalOptions:
    """How to run and score. Defaults follow RaDialog's evaluation (§5 of the reference)."""

    tasks: tuple[str, ...] = ("rg",)
    use_findings: bool = True
    images: str = "frontal"  # "frontal" (one image per study) or "all" (RaDialog on MIMIC)
    batch_size: int = 8
    limit: int | None = None
    labeler: str = "rules"
    reference_labels: str = "text"  # "text": labeler on the reference; "dataset": Study.labels
    bertscore: bool = True
    bertscore_model: str | None = None  # local encoder dir; None = the bundled all-MiniLM-L6-v2
    meteor: bool = True
    n_bootstrap: int = 1000
    seed: int = 42
    max_new_tokens: dict[str, int] = field(default_factory=lambda: dict(gen.MAX_NEW_TOKENS))
    baseline: str | None = None  # model-free RG baseline (evaluation.baselines), e.g. "normal"

    def resolved_tasks(self) -> tuple[str, ...]:
        wanted = set(self.tasks)
        unknown = wanted - set(ALL_TASKS)
        if unknown:
            raise InvalidInputError(
                f"unknown task(s) {', '.join(sorted(unknown))}; choose from {', '.join(ALL_TASKS)}"
            )
        if wanted & NEEDS_RG:
            wanted.add("rg")
        if self.baseline is not None and wanted - {"rg"}:
            raise InvalidInputError(
                f"--baseline {self.baseline} only writes reports: use --tasks rg "
                f"(not {', '.join(sorted(wanted - {'rg'}))})"
            )
        return tuple(t for t in ALL_TASKS if t in wanted)


# Options that change predictions: a resumed run must not mix them. The text_* keys are set only
# when text_correction runs (its requests depend on the labeler and the seed).
_PREDICTION_KEYS = (
    "model",
    "dataset",
    "split",
    "use_findings",
    "images",
    "max_new_tokens",
    "baseline",
    "text_labeler",
    "text_seed",
)


def parse_tasks(text: str) -> tuple[str, ...]:
    """'rg,correction' / 'all' (RaDialog's six image tasks) -> task tuple."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    if names == ["all"]:
        return TASKS
    return tuple(names)


def _check_run(out: Path, run: dict[str, Any]) -> None:
    import json

    path = out / RUN
    if path.exists():
        old = json.loads(path.read_text(encoding="utf-8"))
        diff = [k for k in _PREDICTION_KEYS if old.get(k) != run.get(k)]
        if diff:
            raise InvalidInputError(
                f"{out} holds a run with different {', '.join(diff)} "
                f"({', '.join(f'{k}={old.get(k)!r}' for k in diff)}); use another --out folder"
            )
    atomic_write_json(path, run)


def run_eval(
    model: Any,
    studies: Iterable[Study],
    out: str | Path,
    options: EvalOptions | None = None,
    *,
    model_name: str = "model",
    dataset: str = "dataset",
    split: str | None = None,
    progress: Callable[[str, int], Any] | None = None,
) -> dict[str, Any]:
    """Run the tasks on `studies`, resuming from `out` if it holds a run; return metrics.json's content."""
    from radialog.labeler import get_labeler

    options = options or EvalOptions()
    tasks = options.resolved_tasks()
    image_tasks = [t for t in tasks if t not in TEXT_TASKS]
    text_tasks = [t for t in tasks if t in TEXT_TASKS]
    if model is None and options.baseline is None:
        raise InvalidInputError("run_eval needs a model unless a baseline is given")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    studies = list(studies)
    items: list[EvalItem] = []
    if image_tasks:
        items = build_items(studies, images=options.images, require_image=options.baseline is None)
        if options.limit is not None:
            items = items[: options.limit]
        if not items:
            raise InvalidInputError(
                f"no test items in {dataset} ({split or 'all splits'}): the studies need a findings "
                "section and an image file that exists (for iu, pass --dataset-arg image_root=DIR; "
                "or try --split all; the text_* tasks need no image)"
            )
    text_items: list[EvalItem] = []
    if text_tasks:
        from radialog.evaluation.followup import build_text_items

        text_items = build_text_items(studies)
        if options.limit is not None:
            text_items = text_items[: options.limit]
        if not text_items:
            raise InvalidInputError(
                f"no studies with a findings section in {dataset} ({split or 'all splits'})"
            )
    run = {
        "model": model_name,
        "dataset": dataset,
        "split": split,
        "n_items": len(items),
        "tasks": list(tasks),
        **{k: v for k, v in asdict(options).items() if k != "tasks"},
        "radialog_version": __version__,
    }
    if text_tasks:
        run["n_text_items"] = len(text_items)
    if "text_correction" in tasks:
        run["text_labeler"] = options.labeler
        run["text_seed"] = options.seed
    if model is not None:
        from radialog.evaluation.followup import lora_is_identity

        # Record whether the LLM is exactly its base (fresh LoRA, B = 0): the no-fine-tuning baseline.
        run["model_is_trained"] = bool(getattr(model, "is_trained", True))
        run["lora_is_identity"] = lora_is_identity(model) if hasattr(model, "llm") else None
    _check_run(out, run)
    store = PredictionStore(out / PREDICTIONS)
    labeler = get_labeler(options.labeler)
    mnt = options.max_new_tokens
    result: dict[str, Any] = {"schema": 1, "run": run, "tasks": {}, "conventions": {}}

    if image_tasks:
        if options.baseline is not None:
            from radialog.evaluation.baselines import run_rg_baseline

            run_rg_baseline(store, items, options.baseline)
        else:
            runner = gen.ModelRunner(model, batch_size=options.batch_size, progress=progress)
            gen.run_rg(runner, store, items, options.use_findings, mnt["rg"])
        pred_labels, ref_labels = _label_rg(labeler, store, items, options.reference_labels)
        if "correction" in tasks:
            gen.run_correction(runner, store, items, pred_labels, ref_labels, mnt["correction"])
        if "binary_qa" in tasks:
            gen.run_binary_qa(runner, store, items, mnt["binary_qa"])
        if "all_qa" in tasks:
            gen.run_all_qa(runner, store, items, mnt["all_qa"])
        if "impression" in tasks:
            gen.run_impression(runner, store, items, mnt["impression"])
        if "view" in tasks:
            gen.run_view(runner, store, items, mnt["view"])

        from radialog.evaluation.scoring import score_run

        result = score_run(store, items, tasks, run, labeler, pred_labels, ref_labels, options)
    if text_tasks:
        _run_text_tasks(model, store, text_items, tasks, labeler, options, progress, result)
    write_outputs(out, result)
    return result


def _run_text_tasks(
    model: Any,
    store: PredictionStore,
    items: Sequence[EvalItem],
    tasks: Sequence[str],
    labeler: Any,
    options: EvalOptions,
    progress: Callable[[str, int], Any] | None,
    result: dict[str, Any],
) -> None:
    """Generate and score the text-only follow-up tasks into `result`."""
    from radialog.evaluation import followup as fu

    runner = gen.ModelRunner(model, batch_size=options.batch_size, progress=progress)
    mnt = {**fu.MAX_NEW_TOKENS, **options.max_new_tokens}
    if "text_correction" in tasks:
        fu.run_text_correction(runner, store, items, labeler, options.seed, mnt["text_correction"])
        result["tasks"]["text_correction"] = fu.score_text_correction(
            store, items, labeler, options
        )
    if "text_impression" in tasks:
        fu.run_text_impression(runner, store, items, labeler, mnt["text_impression"])
        result["tasks"]["text_impression"] = fu.score_text_impression(store, items, options)
    result["conventions"].update(fu.CONVENTIONS)
    result["conventions"]["text generation"] = "greedy; max_new_tokens " + ", ".join(
        f"{t} {mnt[t]}" for t in fu.TEXT_TASKS if t in tasks
    )


def _label_rg(
    labeler: Any, store: PredictionStore, items: Sequence[EvalItem], reference_labels: str
) -> tuple[dict[str, dict], dict[str, dict]]:
    """14 labels of each generated report and of each reference (same labeler on both sides)."""
    preds = [store.get(f"rg/{it.id}")["output"] for it in items]
    pred = {it.id: r.labels for it, r in zip(items, labeler.label(preds), strict=True)}
    if reference_labels == "dataset":
        missing = [it.id for it in items if it.labels is None]
        if missing:
            raise InvalidInputError(
                f"--reference-labels dataset: {len(missing)} items have no dataset labels (e.g. {missing[0]})"
            )
        ref = {it.id: dict(it.labels) for it in items}
    else:
        refs = labeler.label([it.findings for it in items])
        ref = {it.id: r.labels for it, r in zip(items, refs, strict=True)}
    return pred, ref


def write_outputs(out: Path, result: dict[str, Any]) -> None:
    """metrics.json, the per-label F1 plot and report.md, each written atomically."""
    from radialog.evaluation.tables import TASK_TITLES, render_run_report
    from radialog.metrics.plots import plot_per_label_f1

    series = {}
    for task in ("rg", "binary_qa", "all_qa"):
        if "per_label_f1" in result["tasks"].get(task, {}):
            series[TASK_TITLES[task]] = result["tasks"][task]["per_label_f1"]
    if "correction" in result["tasks"]:
        series[TASK_TITLES["correction"]] = result["tasks"]["correction"]["after"]["per_label_f1"]
    result["plots"] = []
    if series:
        run = result["run"]
        plot_per_label_f1(series, out / PLOT, f"Per-label F1: {run['model']} on {run['dataset']}")
        result["plots"].append(PLOT)
    atomic_write_json(out / METRICS, result)
    atomic_write_text(out / REPORT, render_run_report(result))
