"""`radialog demo`: the main job on the embedded default model, non-interactively.

Reports on the bundled example X-ray, then asks two follow-up questions in the same dialog.
"""

from __future__ import annotations

import argparse
import time

from radialog.commands.options import (
    add_force_argument,
    add_max_new_tokens_argument,
    add_model_argument,
    add_repair_argument,
    load_model,
    screen_image,
)
from radialog.commands.report import format_report

FOLLOW_UPS = (
    "Is there any Pleural Effusion?",
    "Summarize the report in one sentence.",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image", default=None, help="X-ray to use instead of the bundled example")
    add_model_argument(parser)
    add_max_new_tokens_argument(parser, default=120)
    add_repair_argument(parser)
    add_force_argument(parser)


def run(args: argparse.Namespace) -> int:
    from radialog.chat import Session
    from radialog.imaging import example_image_path
    from radialog.model.generation import GenerationOptions
    from radialog.model.llamacpp import llamacpp_available

    image = args.image or str(example_image_path())
    print(f"radialog demo: {image}")
    from radialog.imaging import read_xray

    xray = read_xray(image)
    gate = screen_image(args, xray, f"image file {image}")
    start = time.perf_counter()
    model = load_model(args)
    backend = model.resolve_backend(None)
    print(
        f"model: {model.name} (loaded in {time.perf_counter() - start:.1f} s; "
        f"generation backend: {backend})"
    )
    if backend == "fast" and not llamacpp_available():
        print("tip: `make llamacpp` adds the llama.cpp backend (~5x faster generation here)")
    if not getattr(model, "is_trained", True):
        print(
            "NOTE: no trained weights found for this model: running the UNTRAINED default "
            "assembly, so the text below is not meaningful."
        )
    session = Session(
        model,
        xray,
        options=GenerationOptions(max_new_tokens=args.max_new_tokens),
        repair=args.repair,
        gate=gate,
    )
    start = time.perf_counter()
    session.report()
    print()
    print(format_report(session.report_data))
    print(f"(report in {time.perf_counter() - start:.1f} s)")
    for question in FOLLOW_UPS:
        start = time.perf_counter()
        answer = session.ask(question)
        print(f"\nUSER: {question}\nRADIALOG: {answer}  ({time.perf_counter() - start:.1f} s)")
        for notice in session.notices:
            print(f"(note: {notice})")
        session.notices.clear()
    return 0
