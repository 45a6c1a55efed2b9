"""Stage 3 `instruct`: LoRA on the LLM plus the adapter, on the instruct JSONL.

The loss is on the last assistant turn only (RaDialog v2's modified LLaVA preprocessing;
`RadialogModel.prepare_inputs(train=True)` masks everything else). Records come from
`radialog build-instruct` (LLaVA format); their `image` is a path (absolute or relative to the
JSONL) or a study id of the configured dataset.

Options: data (JSONL path, required; `--instruct` on the command line), val_size (64: records
held out for the validation loss), max_length (training sequence cap; longer samples are
skipped rather than cut, since cutting would remove the target), train_adapter (true),
train_encoder (false), limit (use the first N records), val_batches (8), group_by_length
(true: batches of similar length, as LLaVA's group_by_modality_length), emphasis_weight (1.0:
loss weight of the tokens of a record's `emphasis` sentences, the sentences that state its
findings; the validation loss stays unweighted so runs compare).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from radialog.errors import InvalidInputError
from radialog.model.prompt import IMAGE_PLACEHOLDER, Conversation
from radialog.train.common import StageInputs, freeze_all_but, lora_parameters, set_train_mode
from radialog.train.data import ImageBank, InstructSample, read_instruct_jsonl, resolve_image

log = logging.getLogger(__name__)


def to_conversation(sample: InstructSample) -> Conversation:
    conv = Conversation()
    for role, text in sample.turns:
        (conv.add_user if role == "USER" else conv.add_assistant)(text)
    return conv


class InstructModule(nn.Module):
    """forward(batch) -> (LM loss on the last assistant turn, {})."""

    def __init__(self, radialog: Any, opts: dict[str, Any]):
        super().__init__()
        self.radialog = radialog
        trainable: list[nn.Module] = []
        if opts.get("train_adapter", True):
            trainable.append(radialog.adapter)
        if opts.get("train_encoder", False):
            trainable.append(radialog.encoder)
        self.emphasis_weight = float(opts.get("emphasis_weight", 1.0))
        freeze_all_but(radialog, trainable)
        lora = lora_parameters(radialog.llm)
        if not lora:
            raise InvalidInputError(
                f"model {radialog.config.name!r} has no LoRA adapters (llm.lora is null); "
                "the instruct stage trains LoRA"
            )
        for p in lora:
            p.requires_grad_(True)

    def gradient_checkpointing_enable(self) -> None:
        self.radialog.llm.gradient_checkpointing_enable(
            gradient_checkpointing_kwargs={"use_reentrant": False}
        )

    def forward(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        tokens: list[torch.Tensor | None] = [None] * len(batch["conversations"])
        if batch["pixels"] is not None:
            encoded = self.radialog.encode_image(batch["pixels"])
            for row, i in enumerate(batch["image_rows"]):
                tokens[i] = encoded[row]
        weight = self.emphasis_weight if self.training else 1.0
        out = self.radialog(
            batch["conversations"],
            image_tokens=tokens,
            emphasis=batch.get("emphasis"),
            emphasis_weight=weight,
        )
        return out.loss.float(), {}


class InstructTask:
    name = "instruct"
    selection_metric = None

    def __init__(self, inputs: StageInputs):
        radialog, config, stage = inputs.radialog, inputs.config, inputs.stage
        data, show_progress = inputs.data, inputs.show_progress
        opts = stage.options
        path = opts.get("data")
        if not path:
            raise InvalidInputError(
                "the instruct stage needs its data: pass --instruct FILE.jsonl (from "
                "`radialog build-instruct`) or set stages.instruct.options.data"
            )
        path = Path(path)
        self.radialog = radialog
        self.batch_size = stage.batch_size
        self.val_batches = int(opts.get("val_batches", 8))
        self.group_by_length = bool(opts.get("group_by_length", True))
        self.max_length = int(opts.get("max_length", radialog.config.llm.max_length))
        self._saved_max_length = radialog.config.llm.max_length
        samples = read_instruct_jsonl(path, limit=opts.get("limit"))

        studies_by_id = None
        if any(s.image and not Path(s.image).suffix for s in samples):
            from radialog.train.common import load_studies

            studies_by_id = {
                st.id: st for split in ("train", "val") for st in load_studies(config, split, data)
            }
        samples = self._usable(samples, path.parent, studies_by_id)
        val_size = min(int(opts.get("val_size", 64)), len(samples) // 5)
        # The held-out records are the last ones: the builder shuffles by study already.
        self.train_samples = samples[: len(samples) - val_size]
        self.val_samples = samples[len(samples) - val_size :]
        if stage.train_limit:
            self.train_samples = self.train_samples[: stage.train_limit]
        if not self.train_samples:
            raise InvalidInputError(f"{path}: no usable training conversations")

        used = self.train_samples + self.val_samples  # preprocess only the images in use
        refs = sorted({s.image for s in used if s.image})
        self.image_index = {ref: i for i, ref in enumerate(refs)}
        enc = radialog.config.encoder
        self.bank = ImageBank(
            [resolve_image(r, path.parent, studies_by_id) for r in refs],
            enc.resize,
            enc.crop,
            show_progress,
        )
        radialog.config.llm.max_length = self.max_length
        self.model = InstructModule(radialog, opts)
        log.info(
            "instruct: %d train / %d val conversations, %d images",
            len(self.train_samples),
            len(self.val_samples),
            len(refs),
        )

    def _usable(
        self, samples: list[InstructSample], base: Path, studies_by_id: dict | None
    ) -> list[InstructSample]:
        """Drop records that would lose their target to truncation or lack their image."""
        n_img = int(self.radialog.num_image_tokens)
        codec = self.radialog.codec
        kept, too_long, no_image = [], 0, 0
        self._lengths: dict[int, int] = {}
        for s in samples:
            conv = to_conversation(s)
            if conv.has_image and not s.image:
                no_image += 1
                continue
            if not conv.has_image:
                s.image = None  # no placeholder: the image is not shown to the LLM
            prompt, target = conv.training_pair()
            length = (
                sum(len(x) for x in codec.encode_segments(prompt))
                + len(codec.encode(target, add_prefix=False))
                + 1
                + (n_img if conv.has_image else 0)
            )
            if length > self.max_length:
                too_long += 1
                continue
            self._lengths[id(s)] = length
            kept.append(s)
        if too_long or no_image:
            log.warning(
                "instruct: skipped %d records longer than %d tokens and %d without their image",
                too_long,
                self.max_length,
                no_image,
            )
        return kept

    def sample_lengths(self) -> list[int] | None:
        """Token counts of the training samples, for length-grouped batches (less padding)."""
        return [self._lengths[id(s)] for s in self.train_samples] if self.group_by_length else None

    def train_data(self) -> list[InstructSample]:
        return self.train_samples

    def load_sample(self, index: int, rng: np.random.Generator) -> InstructSample:
        return self.train_samples[index]

    def collate(self, samples: list[InstructSample]) -> dict[str, Any]:
        rows = [i for i, s in enumerate(samples) if s.image]
        pixels = (
            torch.stack([self.bank.get(self.image_index[samples[i].image]) for i in rows])
            if rows
            else None
        )
        return {
            "conversations": [to_conversation(s) for s in samples],
            "pixels": pixels,
            "image_rows": rows,
            "tasks": [s.task for s in samples],
            "emphasis": [s.emphasis for s in samples],
        }

    def set_train_mode(self, module: nn.Module) -> None:
        set_train_mode(module)

    @torch.no_grad()
    def evaluate(self, module: InstructModule) -> dict[str, float]:
        if not self.val_samples:
            return {}
        losses = []
        for b, start in enumerate(range(0, len(self.val_samples), self.batch_size)):
            if b >= self.val_batches:
                break
            loss, _ = module(self.collate(self.val_samples[start : start + self.batch_size]))
            losses.append(float(loss))
        return {"loss": float(np.mean(losses))}

    def save_model(self, module: InstructModule, directory: Path) -> None:
        cfg = module.radialog.config.llm
        cfg.max_length = self._saved_max_length  # the training cap is not an inference setting
        try:
            module.radialog.is_trained = True
            module.radialog.save_pretrained(directory)
        finally:
            cfg.max_length = self.max_length

    def finalize(self, module: InstructModule, out: Path, best_dir: Path | None) -> dict[str, Any]:
        module.radialog.config.llm.max_length = self._saved_max_length
        return {}


__all__ = ["IMAGE_PLACEHOLDER", "InstructModule", "InstructTask", "to_conversation"]
