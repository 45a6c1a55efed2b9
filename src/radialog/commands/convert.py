"""`radialog convert --from radialog-v1|radialog-v2|chexbert SRC --out DIR [--base-llm DIR]`.

Writes radialog's format (config.json + model.safetensors + adapter/) so that `--model DIR`
works everywhere, and prints which source keys were loaded, ignored, unmatched or missing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from radialog.convert import KINDS, convert

DTYPES = ("bfloat16", "float16", "float32")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="kind", required=True, choices=KINDS, help="checkpoint kind")
    parser.add_argument(
        "src", type=Path, help="the downloaded release folder (or chexbert.pth for --from chexbert)"
    )
    parser.add_argument("--out", type=Path, required=True, help="output model directory")
    parser.add_argument(
        "--base-llm",
        type=Path,
        default=None,
        help="local base LLM directory: liuhaotian/llava-v1.5-7b (v2) or lmsys/vicuna-7b-v1.3 (v1)",
    )
    parser.add_argument("--classifier", type=Path, default=None, help="findings classifier .ckpt")
    parser.add_argument("--lora", type=Path, default=None, help="v1: the LoRA folder to use")
    parser.add_argument("--qformer", type=Path, default=None, help="v1: checkpoint_4.pth")
    parser.add_argument(
        "--qformer-heads", type=int, default=None, help="v1: attention heads (default hidden/64)"
    )
    parser.add_argument(
        "--biovil",
        type=Path,
        default=None,
        help="v1: BioViL-T weights (biovil_t_image_model_proj_size_128.pt)",
    )
    parser.add_argument(
        "--embeddings",
        type=Path,
        nargs="*",
        default=None,
        help="v1: precomputed embedding .pkl files",
    )
    parser.add_argument(
        "--dtype", choices=DTYPES, default=None, help="LLM dtype in the written config"
    )
    parser.add_argument(
        "--quantize",
        choices=("8bit", "4bit"),
        default=None,
        help="load the LLM with bitsandbytes (CUDA)",
    )
    parser.add_argument(
        "--chexbert-tokenizer",
        type=Path,
        default=None,
        help="chexbert: bert-base-uncased dir to bundle",
    )
    parser.add_argument("--force", action="store_true", help="replace a non-empty --out directory")


def run(args: argparse.Namespace) -> int:
    options: dict = {"force": args.force}
    if args.kind == "chexbert":
        options["tokenizer"] = args.chexbert_tokenizer
    else:
        options.update(
            base_llm=args.base_llm, classifier=args.classifier, quantization=args.quantize
        )
        if args.dtype:
            options["dtype"] = args.dtype
    if args.kind == "radialog-v1":
        options.update(
            lora_dir=args.lora,
            qformer=args.qformer,
            biovil=args.biovil,
            embeddings=args.embeddings,
            qformer_heads=args.qformer_heads,
        )
    report = convert(args.kind, args.src, args.out, **options)
    print(report.format())
    if args.kind != "chexbert":
        print(f"use it with: --model {report.out}")
    return 0
