"""`radialog report IMAGE`: findings with probabilities and a draft report for one image."""

from __future__ import annotations

import argparse
import json
import sys

from radialog.commands.options import (
    add_image_report_arguments,
    add_max_new_tokens_argument,
    add_report_safety_arguments,
    load_model,
    screen_image,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_image_report_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_max_new_tokens_argument(parser, help="generation length cap")
    add_report_safety_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from radialog.imaging.io import read_xray

    # Read first: a bad file should fail before the (slower) model load.
    xray = read_xray(args.image)
    gate = screen_image(args, xray, f"image file {args.image}")
    model = load_model(args)
    from radialog.model.generation import GenerationOptions

    options = GenerationOptions(  # validates the penalties before generating
        max_new_tokens=args.max_new_tokens,
        frequency_penalty=args.frequency_penalty,
        presence_penalty=args.presence_penalty,
    )
    report = model.generate_report(xray, check=True, repair=args.repair, **options.kwargs())
    report.gate = gate.to_dict()
    payload = report.to_dict()
    if args.json:
        json.dump(payload, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    print(format_report(payload))
    return 0


def format_findings(
    findings: dict[str, float], predicted: list[str], thresholds: dict[str, float]
) -> list[str]:
    """The findings table: probability, the label's threshold, * when given to the prompt."""
    lines = ["Findings (probability, threshold; * = given to the report prompt):"]
    for label, prob in findings.items():
        mark = "*" if label in predicted else " "
        limit = thresholds.get(label)
        cut = f"  (threshold {limit:.2f})" if limit is not None else ""
        lines.append(f"  {mark} {label:<28} {prob:5.2f}{cut}")
    return lines


def format_consistency(consistency: dict | None) -> list[str]:
    """The consistency check of a report dict, for people: one summary line, the evidence
    of disagreements, and the first draft when an automatic repair replaced it."""
    if not consistency:
        return []
    from radialog.consistency import Consistency, Statement

    check = Consistency(
        listed=consistency["listed"],
        stated=[Statement(s["label"], tuple(s["evidence"])) for s in consistency["stated"]],
        omitted=[Statement(s["label"], tuple(s["evidence"])) for s in consistency["omitted"]],
        unsupported=[
            Statement(s["label"], tuple(s["evidence"])) for s in consistency["unsupported"]
        ],
        repaired=consistency["repaired"],
    )
    lines = [f"Consistency check: {check.summary()}"]
    for s in check.unsupported:
        if s.evidence:
            lines.append(f'  unlisted {s.label}: "{" ".join(s.evidence)}"')
    if consistency["repaired"]:
        lines += [
            "  The first draft disagreed with the findings list and was repaired automatically "
            "(--no-repair keeps the first draft). First draft:",
            f"  {consistency['original_report']}",
        ]
    lines += [f"  note: {n}" for n in consistency.get("notes", [])]
    return lines


def format_report(payload: dict) -> str:
    """Human-readable rendering of a report dict (the `--json` shape)."""
    lines = [f"Model: {payload['model']}", ""]
    gate = format_gate(payload.get("gate"))
    if gate:
        lines += [gate, ""]
    lines += format_findings(
        payload["findings"], payload["predicted"], payload.get("thresholds") or {}
    )
    lines += ["", "Report:", f"  {payload['report']}"]
    consistency = format_consistency(payload.get("consistency"))
    if consistency:
        lines += ["", *consistency]
    lines += ["", payload["disclaimer"]]
    return "\n".join(lines)


def format_gate(gate: dict | None) -> str | None:
    """One line on the input gate's verdict when a reader should see it (see
    `radialog.gate.gate_notice`)."""
    from radialog.gate import gate_notice

    return gate_notice(gate)
