"""Helpers shared by CLI commands: options that mean the same everywhere, and model loading."""

from __future__ import annotations

import argparse
import logging
import os
from dataclasses import replace
from typing import Any

from radialog.model.config import GENERATION_BACKENDS

log = logging.getLogger(__name__)

DEFAULT_MODEL = os.environ.get("RADIALOG_MODEL", "radialog-mini")


def _dataset_value(text: str) -> Any:
    low = text.lower()
    if low in {"true", "false"}:
        return low == "true"
    if low == "none":
        return None
    try:
        return int(text)
    except ValueError:
        return text


def dataset_kwargs(pairs: list[str]) -> dict[str, Any]:
    """`--dataset-arg KEY=VALUE` options -> loader keywords (true/false, none and integers
    typed; anything else a string)."""
    from radialog.errors import InvalidInputError

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidInputError(
                f"--dataset-arg {pair!r}: expected KEY=VALUE, e.g. root=/data/mimic"
            )
        out[key.strip()] = _dataset_value(value.strip())
    return out


def add_model_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help="model name (e.g. radialog-mini) or a directory written by save_pretrained "
        "(default: %(default)s; env RADIALOG_MODEL)",
    )
    parser.add_argument(
        "--backend",
        choices=GENERATION_BACKENDS,
        default=os.environ.get("RADIALOG_BACKEND", "auto"),
        help="text generation: 'fast' (radialog's decoder, same output as 'hf'), 'hf' "
        "(transformers generate()), 'llamacpp' (llama.cpp on the LLM's GGUF with LoRA merged; "
        "needs llama-cpp-python) or 'auto' (default: %(default)s; env RADIALOG_BACKEND)",
    )
    add_threads_argument(parser)


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads for torch and llama.cpp (default: the cores that other processes "
        "leave free, measured at start; threads beyond that compete for cores and slow "
        "generation down many times)",
    )


def add_repair_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-repair",
        dest="repair",
        action="store_false",
        help="do not repair a report that disagrees with its findings list (by default the "
        "labeler checks every report and one correction turn repairs it; the check is "
        "still shown)",
    )


def add_max_new_tokens_argument(
    parser: argparse.ArgumentParser, default: int | None = None, help: str = "answer length cap"
) -> None:
    parser.add_argument("--max-new-tokens", type=int, default=default, help=help)


def add_penalty_arguments(parser: argparse.ArgumentParser) -> None:
    """OpenAI-style repetition penalties (off by default, as in RaDialog's evaluation)."""
    for name, what in (
        ("frequency", "times a token was already generated"),
        ("presence", "whether a token was already generated"),
    ):
        parser.add_argument(
            f"--{name}-penalty",
            type=float,
            default=0.0,
            help=f"-2..2: lower a token's score by this x {what} (default: 0, off)",
        )


def add_max_context_tokens_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-context-tokens",
        type=int,
        default=None,
        help="history budget per conversation (prompt + answer; default and upper bound: the "
        "model's context, config llm.max_length); older follow-ups are dropped beyond it, a "
        "message that does not fit is refused",
    )


def add_labeler_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--labeler",
        default="rules",
        help="'rules' (built in) or the path of a CheXbert checkpoint (chexbert.pth, its "
        "directory or a converted one) (default: %(default)s)",
    )


def add_metric_arguments(parser: argparse.ArgumentParser) -> None:
    """The report-metric switches of `radialog score` and `radialog eval`."""
    parser.add_argument("--no-bertscore", action="store_true", help="skip BERTScore")
    parser.add_argument(
        "--bertscore-model",
        default=None,
        help="local BERTScore encoder directory (default: bundled all-MiniLM-L6-v2; "
        "RaDialog used distilroberta-base)",
    )
    parser.add_argument("--no-meteor", action="store_true", help="skip METEOR (needs Java)")
    parser.add_argument(
        "--bootstrap",
        type=int,
        default=1000,
        help="bootstrap resamples for CIs, 0 for none (default: %(default)s)",
    )


def load_model(args: argparse.Namespace):
    """Load the model named by --model; errors are RadialogErrors with a clear message."""
    import torch

    from radialog.cpu import free_cores
    from radialog.model import RadialogModel

    # One thread count for torch and llama.cpp: --threads, else the cores other processes
    # leave free (on a busy machine, more threads than free cores made a report 10x slower).
    # (llama.cpp measures again when it starts, after the model load; env
    # RADIALOG_LLAMACPP_THREADS sets its count alone.)
    chosen = getattr(args, "threads", None)
    if chosen or not os.environ.get("OMP_NUM_THREADS"):  # an explicit OMP_NUM_THREADS stays
        torch.set_num_threads(chosen or free_cores())
    model = RadialogModel.from_pretrained(args.model)
    if chosen:
        model.llamacpp_options = replace(model.llamacpp_options, threads=chosen)
    model.generation_backend = getattr(args, "backend", None) or "auto"
    model.eval()
    return model


def add_force_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--force",
        action="store_true",
        help="run the model even when the input gate refuses the image as not a chest X-ray "
        "(the output records that the gate was overridden)",
    )


def screen_image(args: argparse.Namespace, xray, name: str):  # noqa: ANN001, ANN201
    """The input gate's verdict on `xray` (radialog.gate.GateResult), before the (slow)
    model load: the gate is read from the model's own `gate/` folder. Raises
    NotAChestXRayError (exit code 2) when it refuses and --force was not given."""
    from pathlib import Path

    from radialog.gate import InputGate, screen
    from radialog.model.radialog_model import CONFIG_NAME, weights_root

    path = Path(args.model).expanduser()
    if not path.is_dir():
        embedded = weights_root() / str(args.model)
        path = embedded if (embedded / CONFIG_NAME).is_file() else None
    gate = InputGate.for_model_dir(path) if path is not None else None
    result = screen(gate, xray, force=getattr(args, "force", False), name=name)
    if result.decision == "warn":
        log.warning("input gate: %s %s (score %.2f)", name, result.message, result.score)
    return result


def add_image_report_arguments(parser: argparse.ArgumentParser) -> None:
    """What every command that reports on one X-ray file takes: the image and the model."""
    parser.add_argument("image", help="chest X-ray: PNG, JPEG (8/16-bit) or DICOM")
    add_model_argument(parser)


def add_report_safety_arguments(parser: argparse.ArgumentParser) -> None:
    """Repetition penalties, the consistency repair switch and the input gate's --force."""
    add_penalty_arguments(parser)
    add_repair_argument(parser)
    add_force_argument(parser)
