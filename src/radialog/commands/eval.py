"""`radialog eval`: generate, score and tabulate on a dataset; or compare two runs.

    radialog eval --model radialog-mini --dataset phantom-iu --split test --out runs/mini
    radialog eval --model DIR --dataset mimic --dataset-arg root=/data/mimic-cxr-jpg/2.0.0 --tasks all
    radialog eval --compare runs/no-findings runs/mini
    radialog eval --model radialog-mini --dataset iu --dataset-arg split_file=r2gen_annotation.json \
        --tasks text_correction,text_impression          # real report text, no image needed
    radialog eval --baseline normal --dataset phantom-iu --out runs/normal   # constant report
    radialog eval --model radialog-mini --untrained ...  # base LLM, no fine-tuning (LoRA B = 0)

A killed run continues where it stopped when rerun with the same --out.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from radialog.commands.options import (
    add_labeler_argument,
    add_max_new_tokens_argument,
    add_metric_arguments,
    add_model_argument,
    dataset_kwargs,
)
from radialog.errors import InvalidInputError

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_argument(parser)
    parser.add_argument(
        "--dataset",
        default="phantom-iu",
        help="phantom-iu, iu, mimic or custom (default: %(default)s)",
    )
    parser.add_argument(
        "--dataset-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra dataset option, repeatable (mimic: root=DIR; custom: path=FILE; iu: split_file=FILE)",
    )
    parser.add_argument(
        "--split", default="test", help="train, val, test or all (default: %(default)s)"
    )
    parser.add_argument(
        "--device",
        default=None,
        help="torch device for the model, e.g. cuda or cpu (default: cuda when available)",
    )
    parser.add_argument(
        "--tasks",
        default="rg",
        help="comma list of rg, correction, binary_qa, all_qa, impression, view, or 'all' (these "
        "six); plus the text-only follow-ups text_correction, text_impression (default: %(default)s)",
    )
    parser.add_argument(
        "--baseline",
        choices=("normal",),
        default=None,
        help="model-free report baseline scored by the same code: 'normal' writes "
        "'No acute cardiopulmonary abnormality.' for every study (tasks: rg only)",
    )
    parser.add_argument(
        "--untrained",
        action="store_true",
        help="build --model (a config name) without trained weights: the base LLM with a fresh, "
        "zero LoRA, i.e. the no-fine-tuning baseline",
    )
    parser.add_argument(
        "--out", default=None, help="run folder (default: runs/eval-<model>-<dataset>-<split>)"
    )
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N items")
    parser.add_argument(
        "--batch-size", type=int, default=8, help="generation batch size (default: %(default)s)"
    )
    parser.add_argument(
        "--no-findings",
        action="store_true",
        help="ablation: image-only prompt (the 'Predicted Findings' sentence removed)",
    )
    parser.add_argument(
        "--images",
        choices=("frontal", "all"),
        default=None,
        help="one frontal image per study, or every image (RaDialog on MIMIC); default: all for mimic, else frontal",
    )
    add_labeler_argument(parser)
    parser.add_argument(
        "--reference-labels",
        choices=("text", "dataset"),
        default="text",
        help="reference labels for CE: the labeler on the reference findings (RaDialog) or the dataset's labels",
    )
    add_max_new_tokens_argument(
        parser,
        help="cap on every task's generation length (defaults: RaDialog's, e.g. 300 for reports)",
    )
    add_metric_arguments(parser)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--compare",
        nargs=2,
        metavar=("DIR_A", "DIR_B"),
        default=None,
        help="paired bootstrap between two finished runs (B - A), matched by item id",
    )


def run(args: argparse.Namespace) -> int:
    if args.compare:
        return _run_compare(args)
    from radialog.commands.options import load_model
    from radialog.data import load_dataset
    from radialog.evaluation import EvalOptions, parse_tasks, run_eval
    from radialog.evaluation.followup import MAX_NEW_TOKENS as TEXT_MAX_NEW_TOKENS
    from radialog.evaluation.generation import MAX_NEW_TOKENS

    dataset = args.dataset.strip().lower()
    _check_java(args)
    tasks = parse_tasks(args.tasks)
    max_new = dict(MAX_NEW_TOKENS)
    # Text-task lengths join the dict only when used, so older runs' run.json still match.
    max_new.update({t: v for t, v in TEXT_MAX_NEW_TOKENS.items() if t in tasks})
    if args.max_new_tokens is not None:
        if args.max_new_tokens < 1:
            raise InvalidInputError("--max-new-tokens must be at least 1")
        max_new = {k: min(v, args.max_new_tokens) for k, v in max_new.items()}
    options = EvalOptions(
        tasks=tasks,
        use_findings=not args.no_findings,
        images=args.images or ("all" if dataset == "mimic" else "frontal"),
        batch_size=args.batch_size,
        limit=args.limit,
        labeler=args.labeler,
        reference_labels=args.reference_labels,
        bertscore=not args.no_bertscore,
        bertscore_model=args.bertscore_model,
        meteor=not args.no_meteor,
        n_bootstrap=args.bootstrap,
        seed=args.seed,
        max_new_tokens=max_new,
        baseline=args.baseline,
    )
    options.resolved_tasks()  # fail on a typo before loading anything
    kwargs = dataset_kwargs(args.dataset_arg)
    if dataset == "phantom-iu" and args.limit is not None:
        # Its loader renders every phantom of the split up front; only render what is used.
        kwargs.setdefault("limit", args.limit)
    if dataset == "mimic":
        kwargs.setdefault("require_findings", "true")
        kwargs["require_findings"] = str(kwargs["require_findings"]).lower() in ("1", "true", "yes")
    split = None if args.split.strip().lower() == "all" else args.split
    studies = load_dataset(dataset, split, **kwargs)
    model_label = _model_label(args)
    suffix = "-nofindings" if args.no_findings else ""
    out = Path(args.out or f"runs/eval-{model_label}-{dataset}-{args.split}{suffix}")
    model = None
    if args.baseline is None:
        model = _untrained_model(args) if args.untrained else load_model(args)
        device = args.device or _default_device()
        if device != "cpu":
            model.to(device)
    with _progress() as progress:
        result = run_eval(
            model,
            studies,
            out,
            options,
            model_name=model_label,
            dataset=dataset,
            split=args.split,
            progress=progress,
        )
    _print_summary(result, out)
    return 0


def _model_label(args: argparse.Namespace) -> str:
    if args.baseline:
        return f"baseline-{args.baseline}"
    label = Path(args.model).name if Path(args.model).exists() else args.model
    return f"{label}-untrained" if args.untrained else label


def _untrained_model(args: argparse.Namespace):
    """The named config's untrained assembly; refuses if its LoRA is not the identity."""
    import torch

    from radialog.evaluation.followup import lora_is_identity
    from radialog.model import RadialogModel

    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    if Path(args.model).is_dir():
        raise InvalidInputError(
            "--untrained takes a model config name (e.g. radialog-mini), not a saved directory"
        )
    model = RadialogModel.from_config(args.model)
    if lora_is_identity(model) is False:
        raise InvalidInputError(f"{args.model}: a fresh LoRA should have B = 0; it does not")
    model.eval()
    return model


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _check_java(args: argparse.Namespace) -> None:
    """METEOR runs a Java jar: fail before hours of generation rather than after."""
    import shutil

    if not args.no_meteor and shutil.which("java") is None:
        raise InvalidInputError(
            "METEOR needs Java (`java` on PATH): install a JRE (e.g. openjdk-17-jre-headless) "
            "or pass --no-meteor"
        )


def _run_compare(args: argparse.Namespace) -> int:
    from radialog.evaluation.compare import compare_runs

    _check_java(args)

    a, b = (Path(p) for p in args.compare)
    out = Path(args.out) if args.out else None
    result = compare_runs(
        a,
        b,
        out=out,
        n_bootstrap=args.bootstrap,
        seed=args.seed,
        labeler=args.labeler,
        bertscore=(args.bertscore_model or True) if not args.no_bertscore else False,
        meteor=not args.no_meteor,
    )
    from radialog.evaluation.tables import render_comparison

    print(render_comparison(result))
    return 0


class _progress:
    """A rich progress line per task (`progress(task, n_done)` callback)."""

    def __enter__(self):
        from rich.progress import Progress

        self._bar = Progress(transient=True)
        self._bar.__enter__()
        self._tasks: dict[str, int] = {}
        return self

    def __call__(self, task: str, n: int) -> None:
        if task not in self._tasks:
            self._tasks[task] = self._bar.add_task(task, total=None)
        self._bar.advance(self._tasks[task], n)

    def __exit__(self, *exc) -> None:
        self._bar.__exit__(*exc)


def _print_summary(result: dict, out: Path) -> None:
    from radialog.evaluation.tables import RG_COLUMNS, fmt_metric

    rg = result["tasks"].get("rg")
    if rg:
        cells = [
            f"{name} {fmt_metric(rg['metrics'].get(key), scale, dec, ci=False)}"
            for name, key, scale, dec in RG_COLUMNS
        ]
        print(
            f"{result['run']['model']} on {result['run']['dataset']} (n={rg['n']}): "
            + "  ".join(cells)
        )
    from radialog.evaluation.tables import TEXT_CORRECTION_COLUMNS

    tc = result["tasks"].get("text_correction")
    if tc:
        cells = [
            f"{name} {fmt_metric(tc['metrics'].get(key), 100.0, 1, ci=False)}"
            for name, key in TEXT_CORRECTION_COLUMNS
        ]
        print(f"text_correction (n={tc['n']}): " + "  ".join(cells))
    ti = result["tasks"].get("text_impression")
    if ti:
        cells = [
            f"{name} {fmt_metric(ti['metrics'].get(key), scale, dec, ci=False)}"
            for name, key, scale, dec in RG_COLUMNS[2:]
        ]
        print(f"text_impression (n={ti['n']}): " + "  ".join(cells))
    print(f"wrote {out / 'report.md'}, {out / 'metrics.json'}, {out / 'predictions.jsonl'}")
