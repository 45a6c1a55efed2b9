"""`radialog train STAGE --config NAME_OR_PATH`: run one training stage.

Multi-GPU / DeepSpeed: the same command under `accelerate launch`, e.g.
`accelerate launch --use_deepspeed --deepspeed_config_file configs/deepspeed/zero2.json
-m radialog train instruct --config radialog-v2 --init runs/align/model`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from radialog.commands.options import add_threads_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from radialog.train.config import STAGES

    parser.add_argument("stage", choices=STAGES, help="classifier, align or instruct")
    parser.add_argument(
        "--config", required=True, help="training config name (configs/train/NAME.json) or path"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="output dir (default runs/CONFIG/STAGE)"
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue from the newest checkpoint in --out"
    )
    parser.add_argument("--max-steps", type=int, default=None, help="stop after N optimizer steps")
    parser.add_argument(
        "--init",
        type=Path,
        default=None,
        help="start from a model saved by an earlier stage (its OUT/model directory)",
    )
    parser.add_argument(
        "--instruct",
        type=Path,
        default=None,
        help="instruct JSONL for the instruct stage (overrides the config's options.data)",
    )
    add_threads_argument(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from radialog.train import train_stage
    from radialog.train.config import StageConfig, load_train_config

    config = load_train_config(args.config)
    if args.threads:
        config.num_threads = args.threads
    if args.instruct is not None:
        config.stages.setdefault("instruct", StageConfig()).options["data"] = str(args.instruct)
    out = args.out or Path("runs") / config.name / args.stage
    result = train_stage(
        args.stage,
        config,
        out,
        resume=args.resume,
        max_steps=args.max_steps,
        init=args.init,
        show_progress=not args.no_progress,
    )
    json.dump(result.to_dict(), sys.stdout, indent=2, default=float)
    sys.stdout.write("\n")
    return 0
