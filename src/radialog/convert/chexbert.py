"""Stanford's `chexbert.pth` -> `model.safetensors` + `config.json` (+ `tokenizer/vocab.txt`).

The checkpoint is validated by building radialog's CheXbert model from it (every weight must
land); the output directory is accepted by `radialog label --labeler DIR`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from radialog.convert.report import ConversionReport, PartReport
from radialog.convert.writer import REPORT_NAME, write_out_dir
from radialog.errors import CheckpointError, ModelNotFoundError
from radialog.labeler.chexbert import (
    CHECKPOINT_NAME,
    CHEXBERT_CONDITIONS,
    CheXbertModel,
    config_from_state_dict,
    find_tokenizer_source,
    load_state_dict,
    tokenizer_candidates,
)

WEIGHTS_NAME = "model.safetensors"


def _vocab_file(src: Path, tokenizer: Path | None) -> Path | None:
    source = find_tokenizer_source(tokenizer_candidates(src, tokenizer))
    if source is None:
        if tokenizer is not None:
            raise ModelNotFoundError(f"no vocab.txt in {tokenizer}")
        return None
    return source if source.is_file() else source / "vocab.txt"


def convert_chexbert(
    src: Path, out: Path, *, tokenizer: Path | None = None, force: bool = False
) -> ConversionReport:
    src = Path(src).expanduser()
    if src.is_dir():
        src = src / CHECKPOINT_NAME
    if not src.is_file():
        raise ModelNotFoundError(f"CheXbert checkpoint not found: {src}")
    state = load_state_dict(src)
    config = config_from_state_dict(state)
    model = CheXbertModel(config)
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise CheckpointError(f"{src} does not match the CheXbert layout: {exc}") from None
    report = ConversionReport("chexbert", Path(out))
    report.parts.append(
        PartReport(
            "CheXbert (BERT + 14 heads)",
            str(src),
            loaded=len(state) - len(result.unexpected_keys),
            unmatched=sorted(result.unexpected_keys),
            missing=sorted(result.missing_keys),
        )
    )
    if not report.ok:
        raise CheckpointError(f"{src} does not match the CheXbert layout:\n{report.format()}")
    vocab = _vocab_file(src, tokenizer)
    if vocab is None:
        report.notes.append(
            "no bert-base-uncased vocab.txt found beside the checkpoint: pass --chexbert-tokenizer "
            "when labelling, or re-run convert with it to bundle the tokenizer"
        )

    def fill(tmp: Path) -> None:
        from safetensors.torch import save_file

        save_file(
            {k: v.contiguous() for k, v in model.state_dict().items()},
            str(tmp / WEIGHTS_NAME),
            metadata={"converted_from": "chexbert"},
        )
        meta = {
            "kind": "chexbert",
            "conditions": list(CHEXBERT_CONDITIONS),
            "bert": config.to_dict(),
        }
        (tmp / "config.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        if vocab is not None:
            (tmp / "tokenizer").mkdir()
            shutil.copyfile(vocab, tmp / "tokenizer" / "vocab.txt")
        report.out = Path(out).expanduser().resolve()
        (tmp / REPORT_NAME).write_text(
            json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8"
        )

    write_out_dir(Path(out), fill, force=force)
    return report
