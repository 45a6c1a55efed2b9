"""`radialog report IMAGE`: findings with probabilities and a draft report for one image."""

from __future__ import annotations

import argparse
import json
import sys

from radialog.commands._common import (
    add_max_new_tokens_argument,
    add_model_argument,
    add_penalty_arguments,
    load_model,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", help="chest X-ray: PNG, JPEG (8/16-bit) or DICOM")
    add_model_argument(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_max_new_tokens_argument(parser, help="generation length cap")
    add_penalty_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from radialog.imaging.io import read_xray

    # Read first: a bad file should fail before the (slower) model load.
    xray = read_xray(args.image)
    model = load_model(args)
    from radialog.chat.session import GenerationOptions

    options = GenerationOptions(  # validates the penalties before generating
        max_new_tokens=args.max_new_tokens,
        frequency_penalty=args.frequency_penalty,
        presence_penalty=args.presence_penalty,
    )
    report = model.generate_report(xray, **options.kwargs())
    payload = report.to_dict()
    if args.json:
        json.dump(payload, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    print(format_report(payload))
    return 0


def format_report(payload: dict) -> str:
    """Human-readable rendering of a report dict (the `--json` shape)."""
    lines = [f"Model: {payload['model']}", "", "Findings (probability):"]
    predicted = set(payload["predicted"])
    for label, prob in payload["findings"].items():
        mark = "*" if label in predicted else " "
        lines.append(f"  {mark} {label:<28} {prob:5.2f}")
    lines += ["", "Report:", f"  {payload['report']}", "", payload["disclaimer"]]
    return "\n".join(lines)
