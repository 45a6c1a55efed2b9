"""`radialog eval`: RaDialog's evaluation (report generation and downstream tasks), resumable.

Entry points: `run_eval(model, studies, out, options)` writes a run folder (predictions.jsonl,
metrics.json, report.md, per-label F1 plot); `compare_runs(dir_a, dir_b)` tests two runs
against each other with a paired bootstrap.
"""

from radialog.evaluation.runner import (
    ALL_TASKS,
    TASKS,
    TEXT_TASKS,
    EvalOptions,
    parse_tasks,
    run_eval,
)

__all__ = [
    "ALL_TASKS",
    "TASKS",
    "TEXT_TASKS",
    "EvalOptions",
    "compare_runs",
    "parse_tasks",
    "run_eval",
]


def __getattr__(name: str):
    if name == "compare_runs":
        from radialog.evaluation.compare import compare_runs

        return compare_runs
    raise AttributeError(name)
