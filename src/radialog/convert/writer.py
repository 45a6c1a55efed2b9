"""Writing a converted model in radialog's saved-model layout, atomically.

`config.json` + `model.safetensors` (encoder, adapter, classifier: the same keys
`RadialogModel.save_pretrained` writes) + `adapter/` (peft LoRA) + `conversion.json` (the
report). The base LLM is referenced by path in `config.json`, never copied.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from torch import nn

from radialog.convert.lora import LoraCheckpoint, write_adapter
from radialog.convert.report import ConversionReport
from radialog.errors import InvalidInputError
from radialog.fileio import atomic_dir
from radialog.model.config import RadialogConfig

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
ADAPTER_DIR = "adapter"
REPORT_NAME = "conversion.json"


def write_out_dir(out: Path, fill: Callable[[Path], None], *, force: bool) -> Path:
    """Fill a temp dir beside `out`, then move it into place (replacing `out` only if `force`)."""
    out = out.expanduser().resolve()
    if out.exists() and any(out.iterdir()) and not force:
        raise InvalidInputError(
            f"{out} exists and is not empty; choose another --out or pass --force"
        )
    return atomic_dir(out, fill, replace=True)


def write_model(
    out: Path,
    cfg: RadialogConfig,
    parts: nn.ModuleDict,
    report: ConversionReport,
    *,
    lora: LoraCheckpoint | None,
    base_path: Path,
    extra: Callable[[Path], None] | None = None,
    force: bool = False,
) -> Path:
    from safetensors.torch import save_file

    def fill(tmp: Path) -> None:
        (tmp / CONFIG_NAME).write_text(cfg.to_json(), encoding="utf-8")
        state = {k: v.detach().cpu().contiguous() for k, v in parts.state_dict().items()}
        save_file(
            state,
            str(tmp / WEIGHTS_NAME),
            metadata={"is_trained": "true", "converted_from": report.kind},
        )
        if lora is not None:
            report.parts.append(write_adapter(lora, tmp / ADAPTER_DIR, base_path))
        if extra is not None:
            extra(tmp)
        report.out = out.expanduser().resolve()
        (tmp / REPORT_NAME).write_text(
            json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8"
        )

    return write_out_dir(out, fill, force=force)
