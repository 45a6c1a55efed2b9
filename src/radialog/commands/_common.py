"""Helpers shared by CLI commands (model loading with a friendly message)."""

from __future__ import annotations

import argparse
import logging
import os

log = logging.getLogger(__name__)

DEFAULT_MODEL = os.environ.get("RADIALOG_MODEL", "radialog-mini")


def add_model_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help="model name (e.g. radialog-mini) or a directory written by save_pretrained "
        "(default: %(default)s; env RADIALOG_MODEL)",
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="CPU threads for torch (default: all cores)"
    )


def load_model(args: argparse.Namespace):
    """Load the model named by --model; errors are RadialogErrors with a clear message."""
    import torch

    from radialog.model import RadialogModel

    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    model = RadialogModel.from_pretrained(args.model)
    model.eval()
    return model
