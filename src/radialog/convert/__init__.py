"""Published checkpoints -> radialog's saved-model format.

`convert(kind, src, out, ...)` with kind "radialog-v1", "radialog-v2" or "chexbert". The result
loads with `RadialogModel.from_pretrained(out)` (or `radialog label --labeler out` for CheXbert)
and `out/conversion.json` records which source keys landed where. Nothing is downloaded; base
LLMs are referenced by their local directory. See docs/CHECKPOINTS.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from radialog.convert.embeddings import PrecomputedEmbeddings
from radialog.convert.report import ConversionReport, PartReport
from radialog.errors import InvalidInputError

KINDS = ("radialog-v1", "radialog-v2", "chexbert")

__all__ = ["KINDS", "ConversionReport", "PartReport", "PrecomputedEmbeddings", "convert"]


def convert(kind: str, src: str | Path, out: str | Path, **options: Any) -> ConversionReport:
    """Convert a published checkpoint. Options by kind:

    - radialog-v2: `base_llm` (required: liuhaotian/llava-v1.5-7b dir), `classifier`, `dtype`
      ("bfloat16"), `quantization` (None, "8bit", "4bit"), `force`.
    - radialog-v1: `base_llm` (required: lmsys/vicuna-7b-v1.3 dir), `lora_dir`, `qformer`,
      `classifier`, `biovil`, `embeddings` (list of .pkl), `qformer_heads`, `dtype` ("float16"),
      `quantization`, `force`.
    - chexbert: `tokenizer` (a bert-base-uncased dir or vocab.txt), `force`.
    """
    src, out = Path(src), Path(out)
    if kind == "radialog-v2":
        from radialog.convert.v2 import convert_v2

        return convert_v2(src, out, **options)
    if kind == "radialog-v1":
        from radialog.convert.v1 import convert_v1

        return convert_v1(src, out, **options)
    if kind == "chexbert":
        from radialog.convert.chexbert import convert_chexbert

        return convert_chexbert(src, out, **options)
    raise InvalidInputError(f"unknown checkpoint kind {kind!r}; use one of {', '.join(KINDS)}")
