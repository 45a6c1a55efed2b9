"""CheXbert (Smit et al., 2020): BERT-base + 14 linear heads on the [CLS] state.

Loads Stanford's `chexbert.pth` from a local path: a dict `{"model_state_dict": ...}` whose
keys carry DataParallel's `module.` prefix. Heads follow CheXbert's own order (No Finding
LAST); 13 heads have 4 classes (0 blank, 1 positive, 2 negative, 3 uncertain), the No
Finding head has 2 (0 blank, 1 positive). Results come back in radialog's canonical order
with values 1/0/-1/None. Nothing is downloaded: the bert-base-uncased tokenizer must be a
local directory (or a vocab.txt) given by the user or lying beside the checkpoint.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from transformers import BertConfig, BertModel, BertTokenizer

from radialog.errors import CheckpointError, ModelNotFoundError
from radialog.labeler.base import LabelResult, LabelValue
from radialog.labels import CHEXPERT_LABELS, NO_FINDING

log = logging.getLogger(__name__)

# CheXbert's head order (its src/constants.py CONDITIONS): ours with No Finding moved last.
CHEXBERT_CONDITIONS: tuple[str, ...] = (
    *(name for name in CHEXPERT_LABELS if name != NO_FINDING),
    NO_FINDING,
)
# Class index -> CheXpert value, for the 4-class heads and the No Finding head.
CLASS_VALUES: dict[int, LabelValue] = {0: None, 1: 1, 2: 0, 3: -1}
NO_FINDING_VALUES: dict[int, LabelValue] = {0: None, 1: 1}

CHECKPOINT_NAME = "chexbert.pth"
MAX_TOKENS = 512
# A buffer that transformers < 4.31 saved in state dicts; newer BertModel does not have it.
_LEGACY_KEYS = ("bert.embeddings.position_ids",)


class CheXbertModel(nn.Module):
    """CheXbert's architecture: BERT encoder, dropout, one linear head per condition."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.bert = BertModel(config)  # with pooler: the checkpoint stores its weights
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        hidden = config.hidden_size
        heads = [nn.Linear(hidden, 4) for _ in CHEXBERT_CONDITIONS[:-1]]
        self.linear_heads = nn.ModuleList([*heads, nn.Linear(hidden, 2)])

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> list[torch.Tensor]:
        """Logits per head, in CHEXBERT_CONDITIONS order: 13 x (B, 4) then (B, 2)."""
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        cls = self.dropout(hidden[:, 0, :])
        return [head(cls) for head in self.linear_heads]


def config_from_state_dict(state: dict[str, torch.Tensor]) -> BertConfig:
    """BERT config implied by the weight shapes (heads: BERT's 64 dims per head)."""
    try:
        vocab, hidden = state["bert.embeddings.word_embeddings.weight"].shape
        positions = state["bert.embeddings.position_embeddings.weight"].shape[0]
        types = state["bert.embeddings.token_type_embeddings.weight"].shape[0]
        intermediate = state["bert.encoder.layer.0.intermediate.dense.weight"].shape[0]
    except KeyError as exc:
        raise CheckpointError(
            f"not a CheXbert checkpoint: missing {exc.args[0]!r}; expected Stanford's chexbert.pth "
            "(keys like 'module.bert.embeddings...' and 'module.linear_heads.N...')"
        ) from None
    layers = 1 + max(
        int(m.group(1)) for k in state if (m := re.match(r"bert\.encoder\.layer\.(\d+)\.", k))
    )
    return BertConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // 64),
        intermediate_size=intermediate,
        max_position_embeddings=positions,
        type_vocab_size=types,
    )


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read chexbert.pth (or radialog's converted model.safetensors) and strip DataParallel's
    `module.` prefix."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            raw = load_file(str(path))
        else:
            raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle/zip errors come in many types
        raise CheckpointError(f"cannot read CheXbert checkpoint {path}: {exc}") from exc
    state = raw.get("model_state_dict", raw) if isinstance(raw, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(
            f"{path} is not a CheXbert checkpoint: expected a dict with 'model_state_dict' of tensors"
        )
    return {
        (k[len("module.") :] if k.startswith("module.") else k): v
        for k, v in state.items()
        if (k[len("module.") :] if k.startswith("module.") else k) not in _LEGACY_KEYS
    }


def tokenizer_candidates(checkpoint: Path, tokenizer: str | Path | None) -> list[Path]:
    """Where a bert-base-uncased tokenizer is looked for: `tokenizer`, else beside the checkpoint."""
    if tokenizer is not None:
        return [Path(tokenizer)]
    return [
        checkpoint.parent / "tokenizer",
        checkpoint.parent / "bert-base-uncased",
        checkpoint.parent,
    ]


def find_tokenizer_source(candidates: Sequence[Path]) -> Path | None:
    """The first candidate that is a vocab file or a directory holding vocab.txt."""
    for candidate in candidates:
        if candidate.is_file() or (candidate / "vocab.txt").is_file():
            return candidate
    return None


def _find_tokenizer(checkpoint: Path, tokenizer: str | Path | None) -> BertTokenizer:
    candidates = tokenizer_candidates(checkpoint, tokenizer)
    source = find_tokenizer_source(candidates)
    if source is not None and source.is_file():
        return BertTokenizer(vocab_file=str(source), do_lower_case=True)
    if source is not None:
        return BertTokenizer.from_pretrained(str(source), local_files_only=True)
    where = ", ".join(str(c) for c in candidates)
    raise ModelNotFoundError(
        f"no bert-base-uncased tokenizer found (looked in {where}); pass a local directory "
        "holding vocab.txt with --chexbert-tokenizer DIR"
    )


class CheXbertLabeler:
    """CheXbert inference on CPU or GPU; labels come back in radialog's canonical order."""

    name = "chexbert"

    def __init__(
        self,
        model: CheXbertModel,
        tokenizer: BertTokenizer,
        *,
        device: str | torch.device = "cpu",
        batch_size: int = 16,
    ) -> None:
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.max_tokens = min(MAX_TOKENS, model.bert.config.max_position_embeddings)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        *,
        tokenizer: str | Path | None = None,
        device: str | torch.device = "cpu",
        batch_size: int = 16,
    ) -> CheXbertLabeler:
        """Load `chexbert.pth` (or a directory holding it); every weight must land."""
        path = Path(path)
        if path.is_dir():
            # `radialog convert --from chexbert` writes model.safetensors instead.
            converted = path / "model.safetensors"
            has_pth = (path / CHECKPOINT_NAME).is_file()
            path = converted if converted.is_file() and not has_pth else path / CHECKPOINT_NAME
        if not path.is_file():
            raise ModelNotFoundError(f"CheXbert checkpoint not found: {path}")
        state = load_state_dict(path)
        model = CheXbertModel(config_from_state_dict(state))
        try:
            result = model.load_state_dict(state, strict=False)
        except RuntimeError as exc:  # shape mismatches
            raise CheckpointError(f"{path} does not match the CheXbert layout: {exc}") from None
        if result.missing_keys or result.unexpected_keys:
            raise CheckpointError(
                f"{path} does not match the CheXbert layout: "
                f"missing {result.missing_keys[:5]}{'...' if len(result.missing_keys) > 5 else ''}, "
                f"unexpected {result.unexpected_keys[:5]}{'...' if len(result.unexpected_keys) > 5 else ''}"
            )
        log.info("loaded CheXbert from %s (%d layers)", path, model.bert.config.num_hidden_layers)
        return cls(model, _find_tokenizer(path, tokenizer), device=device, batch_size=batch_size)

    def encode(self, text: str) -> list[int]:
        """CheXbert's input: whitespace-normalised text, [CLS] ... [SEP], at most 512 tokens."""
        text = re.sub(r"\s+", " ", (text or "").strip())
        tokens = self.tokenizer.tokenize(text)
        ids = self.tokenizer.convert_tokens_to_ids(tokens)[: self.max_tokens - 2]
        return [self.tokenizer.cls_token_id, *ids, self.tokenizer.sep_token_id]

    @torch.no_grad()
    def label(self, texts: Sequence[str]) -> list[LabelResult]:
        results: list[LabelResult] = []
        for start in range(0, len(texts), self.batch_size):
            batch = [self.encode(t) for t in texts[start : start + self.batch_size]]
            width = max(len(ids) for ids in batch)
            pad = self.tokenizer.pad_token_id
            input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids in batch])
            mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids in batch])
            logits = self.model(input_ids.to(self.device), mask.to(self.device))
            classes = torch.stack([head.argmax(dim=1) for head in logits], dim=1).tolist()
            results.extend(self._to_result(row) for row in classes)
        return results

    @staticmethod
    def _to_result(classes: list[int]) -> LabelResult:
        by_name: dict[str, LabelValue] = {}
        for name, cls_index in zip(CHEXBERT_CONDITIONS, classes, strict=True):
            table = NO_FINDING_VALUES if name == NO_FINDING else CLASS_VALUES
            by_name[name] = table[cls_index]
        return LabelResult({name: by_name[name] for name in CHEXPERT_LABELS}, {})
