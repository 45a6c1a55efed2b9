"""`radialog build-instruct`: write the instruct dataset (LLaVA-format JSONL) for a dataset."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from radialog.commands.options import dataset_kwargs
from radialog.errors import InvalidInputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from radialog.data.instruct import TASKS
    from radialog.data.registry import DATASETS

    parser.add_argument("--dataset", required=True, help=f"dataset name: {', '.join(DATASETS)}")
    parser.add_argument(
        "--dataset-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="adapter argument, repeatable (e.g. root=/data/mimic-cxr-jpg/2.0.0, path=my.csv, "
        "split_file=r2gen_annotation.json)",
    )
    parser.add_argument("--split", default="train", help="split to build from (default: train)")
    parser.add_argument(
        "--out", default="out/instruct", help="output folder (default: %(default)s)"
    )
    parser.add_argument(
        "--size", type=int, default=None, help="number of samples (default: one pass)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--tasks",
        default=",".join(TASKS),
        help="comma-separated tasks (default: all): " + ", ".join(TASKS),
    )
    parser.add_argument(
        "--context-probs",
        default="0.6,0.2,0.2",
        help="probabilities of full,partial,none report context for follow-ups (default: %(default)s)",
    )
    parser.add_argument("--normal-fraction", type=float, default=1 / 14)
    parser.add_argument("--abnormal-repeats", type=int, default=2)
    parser.add_argument(
        "--replay-model",
        default="none",
        help="base LLM for replay pseudo ground truth: smollm2, a model path, or none (default: none; "
        "then easy_language/summarize/region_qa are skipped and correction answers with the report)",
    )
    parser.add_argument(
        "--text-only-prob",
        type=float,
        default=0.0,
        help="share of report/correction/QA/impression samples sent without the image "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--mismatch-image-prob",
        type=float,
        default=0.0,
        help="share of report samples shown another study's image, so the findings list decides "
        "the report (default: %(default)s)",
    )
    parser.add_argument(
        "--extra",
        action="append",
        default=[],
        metavar="TASK=N",
        help="N more samples of a follow-up task per study, repeatable (e.g. correction=3)",
    )
    parser.add_argument(
        "--correction-target",
        choices=("reference", "replay"),
        default="reference",
        help="correction answers: the true report (reference) or the replay model's edit "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--findings-first",
        action="store_true",
        help="report and correction targets state the listed findings first (the report's own "
        "sentences, reordered)",
    )
    parser.add_argument(
        "--correction-wrong-list-prob",
        type=float,
        default=0.0,
        help="share of corrections whose report prompt lists the wrong report's findings (what "
        "the report was written from), so the request, not the list, says what to change",
    )
    parser.add_argument(
        "--composed-reports",
        type=int,
        default=0,
        help="report samples per study for a random findings list (0-3 labels), composed from "
        "other reports' single-finding sentences and this study's normal sentences",
    )
    parser.add_argument(
        "--composed-image-prob",
        type=float,
        default=0.0,
        help="share of composed report samples that show a random study's image (else text-only)",
    )
    parser.add_argument(
        "--composed-followups",
        type=int,
        default=0,
        help="corrections and yes/no questions per study on a report composed for a random "
        "list (corrections may have to drop a sentence that negates the added finding)",
    )
    parser.add_argument(
        "--composed-list-sizes",
        default="0.1,0.45,0.3,0.15",
        help="weights of composed list sizes 0, 1, 2, ... labels (default: %(default)s)",
    )
    parser.add_argument(
        "--composed-followup-sizes",
        default="0.4,0.4,0.2",
        help="the same for the first report of composed follow-ups (default: %(default)s)",
    )
    parser.add_argument(
        "--composed-yes-prob",
        type=float,
        default=0.5,
        help="share of composed yes/no questions on a listed label (default: %(default)s)",
    )
    parser.add_argument(
        "--composed-two-changes-prob",
        type=float,
        default=0.0,
        help="share of composed corrections that change two labels, in the repair's wording",
    )
    parser.add_argument(
        "--clean-finding-sentences",
        action="store_true",
        help="composed finding sentences without IU's anonymised 'XXXX' where others exist",
    )
    parser.add_argument("--replay-batch", type=int, default=8)
    parser.add_argument(
        "--replay-backend",
        choices=("auto", "hf", "llamacpp"),
        default="auto",
        help="who runs the replay model: llama.cpp for a GGUF source when installed (auto), or "
        "transformers (default: %(default)s)",
    )
    parser.add_argument(
        "--replay-cache", default=None, help="answer cache (default: OUT/replay_cache.jsonl)"
    )


def _extra_tasks(items: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        task, sep, count = item.partition("=")
        if not sep or not count.strip().isdigit():
            raise InvalidInputError(f"--extra {item!r}: expected TASK=N, e.g. correction=3")
        out[task.strip()] = int(count)
    return out


def _weights(flag: str, text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(","))
    except ValueError:
        raise InvalidInputError(f"{flag} {text!r}: give comma-separated numbers") from None


def _context_probs(text: str) -> tuple[float, float, float]:
    values = _weights("--context-probs", text)
    if len(values) != 3 or min(values) < 0 or sum(values) <= 0:
        raise InvalidInputError(
            f"--context-probs {text!r}: give three non-negative numbers, e.g. 0.6,0.2,0.2"
        )
    return values  # type: ignore[return-value]


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from radialog.data.instruct import COUNT_CONTEXTS, InstructConfig, build_instruct
    from radialog.data.registry import load_dataset
    from radialog.data.replay import make_pseudo_labeler

    tasks = tuple(t.strip() for t in args.tasks.split(",") if t.strip())
    try:
        config = InstructConfig(
            tasks=tasks,
            seed=args.seed,
            size=args.size,
            context_probs=_context_probs(args.context_probs),
            normal_fraction=args.normal_fraction,
            abnormal_repeats=args.abnormal_repeats,
            text_only_prob=args.text_only_prob,
            mismatch_image_prob=args.mismatch_image_prob,
            extra_tasks=_extra_tasks(args.extra),
            correction_target=args.correction_target,
            findings_first=args.findings_first,
            correction_wrong_list_prob=args.correction_wrong_list_prob,
            composed_reports=args.composed_reports,
            composed_image_prob=args.composed_image_prob,
            composed_followups=args.composed_followups,
            composed_list_sizes=_weights("--composed-list-sizes", args.composed_list_sizes),
            composed_followup_sizes=_weights(
                "--composed-followup-sizes", args.composed_followup_sizes
            ),
            composed_yes_prob=args.composed_yes_prob,
            composed_two_changes_prob=args.composed_two_changes_prob,
            clean_finding_sentences=args.clean_finding_sentences,
        )
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from None
    studies = load_dataset(args.dataset, args.split, **dataset_kwargs(args.dataset_arg))
    if not studies:
        raise InvalidInputError(f"dataset {args.dataset!r} has no studies in split {args.split!r}")
    out = Path(args.out)
    cache = Path(args.replay_cache) if args.replay_cache else out / "replay_cache.jsonl"
    try:
        replay = make_pseudo_labeler(
            args.replay_model, cache, batch_size=args.replay_batch, backend=args.replay_backend
        )
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from None

    console = Console(stderr=True)
    with Progress(
        TextColumn("building"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        job = bar.add_task("samples", total=args.size)
        result = build_instruct(
            studies,
            out / "instruct.jsonl",
            config,
            replay=replay,
            progress=lambda _s: bar.advance(job),
        )
    summary = {
        "dataset": args.dataset,
        "split": args.split,
        "studies": len(studies),
        "samples": result.total,
        "config": {**vars(config), "tasks": list(config.tasks)},
        "replay_model": args.replay_model,
        "counts": result.counts,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")

    table = Table(title=f"instruct samples ({args.dataset}, {args.split}, {len(studies)} studies)")
    table.add_column("task")
    for context in COUNT_CONTEXTS:
        table.add_column(context, justify="right")
    table.add_column("total", justify="right")
    for task in config.tasks:
        row = result.counts.get(task, {})
        table.add_row(task, *(str(row.get(c, 0)) for c in COUNT_CONTEXTS), str(sum(row.values())))
    table.add_row("all", *("" for _ in COUNT_CONTEXTS), str(result.total), style="bold")
    Console().print(table)
    Console().print(f"wrote {result.path}")
    return 0
