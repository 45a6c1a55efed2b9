"""Stage 1 `classifier`: the 14-label findings classifier and its image encoder.

As RaDialog (§1.4): BCEWithLogits with log class weighting pos_weight_c = log(N / count_c)
(guarded, see `log_class_weights`), positives only (uncertain/blank = 0), the encoder is
fine-tuned. Checkpoint selection on validation macro F1 (option `select`: "macro_f1" or
"macro_auroc"; both are logged). After training, the best checkpoint is reloaded and one
threshold per label is tuned on validation to maximise that label's F1; the thresholds are saved
with the model (`FindingsHead.thresholds`).

Options (`stages.classifier.options`): select, augment (bool), eval_batch_size, pos_weight_floor,
test (bool: also score the test split at the end), threshold_min_positives (10) and
threshold_min_f1 (0.3): below either, a label keeps the default threshold. separate_encoder
(bool): a model whose classifier shares the report branch's encoder gets its own copy of it
first (`RadialogModel.separate_classifier_encoder`), so that this stage can continue a trained
model without moving the image tokens its adapter and LoRA were trained on.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from radialog.train.common import StageInputs, freeze_all_but, load_studies, set_train_mode
from radialog.train.data import ImageBank, label_targets, log_class_weights, study_image_source
from radialog.train.thresholds import classification_metrics, tune_thresholds

log = logging.getLogger(__name__)


class ClassifierModule(nn.Module):
    """forward(batch) -> (weighted BCE loss, logs). Trains the classifier encoder and head."""

    def __init__(self, radialog: nn.Module, pos_weight: torch.Tensor):
        super().__init__()
        self.radialog = radialog
        self.register_buffer("pos_weight", pos_weight.float())
        encoder = radialog.classifier_encoder or radialog.encoder
        self.num_trainable = freeze_all_but(radialog, [encoder, radialog.classifier])

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        logits = self.radialog.classifier_logits(batch["pixels"]).float()
        loss = F.binary_cross_entropy_with_logits(
            logits, batch["targets"].to(logits.device), pos_weight=self.pos_weight
        )
        return loss, {}


class ClassifierTask:
    name = "classifier"

    def __init__(self, inputs: StageInputs):
        radialog, config, stage = inputs.radialog, inputs.config, inputs.stage
        data, show_progress = inputs.data, inputs.show_progress
        opts = stage.options
        self.select = opts.get("select", "macro_f1")
        self.selection_metric = self.select
        self.augment = bool(opts.get("augment", False))
        self.eval_batch_size = int(opts.get("eval_batch_size", 64))
        self.score_test = bool(opts.get("test", False))
        self.threshold_min_positives = int(opts.get("threshold_min_positives", 10))
        self.threshold_min_f1 = float(opts.get("threshold_min_f1", 0.3))
        self.config = config
        if opts.get("separate_encoder") and radialog.separate_classifier_encoder():
            log.info("classifier: own copy of the shared image encoder (report branch unchanged)")

        enc = radialog.config.classifier_encoder
        self.resize, self.crop = enc.resize, enc.crop
        train = load_studies(config, "train", data, stage.train_limit)
        val = load_studies(config, "val", data, stage.val_limit)
        self.test_studies = load_studies(config, "test", data) if self.score_test else []
        self.train_targets = label_targets(train)
        self.val_targets = label_targets(val)
        self.train_bank = self._bank(train, show_progress)
        self.val_bank = self._bank(val, show_progress)
        self.pos_weight = log_class_weights(
            self.train_targets, floor=float(opts.get("pos_weight_floor", 0.1))
        )
        self.model = ClassifierModule(radialog, self.pos_weight)
        log.info(
            "classifier: %d train / %d val studies, %d trainable parameters",
            len(train),
            len(val),
            self.model.num_trainable,
        )

    def _bank(self, studies: list[Any], show_progress: bool) -> ImageBank:
        return ImageBank(
            [study_image_source(s) for s in studies], self.resize, self.crop, show_progress
        )

    # -- loop protocol
    def train_data(self) -> ImageBank:
        return self.train_bank

    def load_sample(
        self, index: int, rng: np.random.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.train_bank.get(index, rng, self.augment), self.train_targets[index]

    @staticmethod
    def collate(samples: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, torch.Tensor]:
        return {
            "pixels": torch.stack([s[0] for s in samples]),
            "targets": torch.stack([s[1] for s in samples]),
        }

    def set_train_mode(self, module: nn.Module) -> None:
        set_train_mode(module)

    @torch.no_grad()
    def probabilities(self, module: ClassifierModule, bank: ImageBank) -> np.ndarray:
        radialog = module.radialog
        out = []
        for start in range(0, len(bank), self.eval_batch_size):
            idx = range(start, min(start + self.eval_batch_size, len(bank)))
            pixels = torch.stack([bank.get(i) for i in idx])
            out.append(torch.sigmoid(radialog.classifier_logits(pixels).float()).cpu())
        return torch.cat(out).numpy() if out else np.zeros((0, self.val_targets.shape[1]))

    def evaluate(self, module: ClassifierModule) -> dict[str, float]:
        if len(self.val_bank) == 0:
            return {}
        probs = self.probabilities(module, self.val_bank)
        logits = torch.logit(torch.from_numpy(probs).clamp(1e-6, 1 - 1e-6))
        metrics = classification_metrics(probs, self.val_targets.numpy(), 0.5)
        metrics["loss"] = float(
            F.binary_cross_entropy_with_logits(logits, self.val_targets, pos_weight=self.pos_weight)
        )
        return {k: v for k, v in metrics.items() if "/" not in k}  # per-label at the end only

    def save_model(self, module: ClassifierModule, directory: Path) -> None:
        module.radialog.is_trained = True
        module.radialog.save_pretrained(directory)

    def finalize(
        self, module: ClassifierModule, out: Path, best_dir: Path | None
    ) -> dict[str, Any]:
        """Reload the best checkpoint, tune thresholds on val, score val (and test)."""
        radialog = module.radialog
        if best_dir is not None:
            from safetensors.torch import load_file

            radialog.trained_modules().load_state_dict(
                load_file(str(best_dir / "model.safetensors")), strict=True
            )
        radialog.eval()
        result: dict[str, Any] = {"select": self.select}
        if len(self.val_bank):
            probs = self.probabilities(module, self.val_bank)
            y = self.val_targets.numpy()
            thresholds = tune_thresholds(
                probs,
                y,
                default=radialog.config.classifier.threshold,
                min_positives=self.threshold_min_positives,
                min_f1=self.threshold_min_f1,
            )
            radialog.classifier.set_thresholds(thresholds.tolist())
            result["val_at_0.5"] = classification_metrics(probs, y, 0.5)
            result["val_tuned"] = classification_metrics(probs, y, thresholds)
        result["thresholds"] = dict(
            zip(_label_keys(), (float(t) for t in radialog.thresholds.tolist()), strict=True)
        )
        if self.test_studies:
            bank = self._bank(self.test_studies, False)
            probs = self.probabilities(module, bank)
            y = label_targets(self.test_studies).numpy()
            result["test_n"] = len(self.test_studies)
            result["test_at_0.5"] = classification_metrics(probs, y, 0.5)
            result["test_tuned"] = classification_metrics(probs, y, radialog.thresholds.numpy())
        (out / "classifier_metrics.json").write_text(json.dumps(result, indent=2))
        return {
            k: v
            for k, v in {
                "val_macro_f1_tuned": result.get("val_tuned", {}).get("macro_f1"),
                "val_macro_auroc": result.get("val_tuned", {}).get("macro_auroc"),
                "test_macro_f1_tuned": result.get("test_tuned", {}).get("macro_f1"),
                "test_macro_auroc": result.get("test_tuned", {}).get("macro_auroc"),
            }.items()
            if v is not None
        }


def _label_keys() -> list[str]:
    from radialog.labels import CHEXPERT_LABELS

    return list(CHEXPERT_LABELS)
