"""The LLM tokenizer without transformers: the `tokenizers` library on a saved backend.

Importing transformers takes seconds, a large share of a one-shot report on the llama.cpp
path, which needs only a few tokenizer calls. `LightTokenizer` answers those calls exactly as
transformers' fast tokenizer does (it runs the same Rust tokenizer, saved from the loaded one
with its post-processor, and repeats transformers' decode clean-up); anything else is passed
to the full transformers tokenizer, loaded on first such use.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

TOKENIZER_FILE = "tokenizer.json"
META_FILE = "tokenizer_meta.json"


def save_light_tokenizer(tokenizer: Any, out_dir: Path) -> None:
    """Write what `LightTokenizer.load` reads, from a loaded transformers fast tokenizer."""
    from radialog.fileio import atomic_write_json, atomic_write_text

    meta = {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "clean_up_tokenization_spaces": bool(tokenizer.clean_up_tokenization_spaces),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / TOKENIZER_FILE, tokenizer.backend_tokenizer.to_str())
    atomic_write_json(out_dir / META_FILE, meta)


def clean_up_tokenization(text: str) -> str:
    """transformers' `clean_up_tokenization` (PreTrainedTokenizerBase), step for step."""
    return (
        text.replace(" .", ".")
        .replace(" ?", "?")
        .replace(" !", "!")
        .replace(" ,", ",")
        .replace(" ' ", "'")
        .replace(" n't", "n't")
        .replace(" 'm", "'m")
        .replace(" 's", "'s")
        .replace(" 've", "'ve")
        .replace(" 're", "'re")
    )


class _Encoding:
    def __init__(self, ids: list[int]) -> None:
        self.input_ids = ids

    def __getitem__(self, key: str) -> list[int]:
        if key != "input_ids":
            raise KeyError(key)
        return self.input_ids


class LightTokenizer:
    """The calls radialog's prompt codec and stop criteria make (`__call__` on one text,
    `decode`, `batch_decode`, `convert_ids_to_tokens` of one id, the special-token ids).
    `full`: returns the transformers tokenizer, for any other attribute."""

    def __init__(self, backend: Any, meta: dict[str, Any], full: Callable[[], Any]) -> None:
        backend.no_truncation()
        backend.no_padding()
        self._backend = backend
        self.bos_token_id: int | None = meta.get("bos_token_id")
        self.eos_token_id: int | None = meta.get("eos_token_id")
        self.pad_token_id: int | None = meta.get("pad_token_id")
        self._clean_up = bool(meta.get("clean_up_tokenization_spaces"))
        self._full_loader = full
        self._full: Any = None

    @classmethod
    def load(cls, directory: Path, full: Callable[[], Any]) -> LightTokenizer:
        from tokenizers import Tokenizer

        meta = json.loads((directory / META_FILE).read_text(encoding="utf-8"))
        return cls(Tokenizer.from_file(str(directory / TOKENIZER_FILE)), meta, full)

    def __call__(self, text: str, add_special_tokens: bool = True) -> _Encoding:
        if not isinstance(text, str):
            return self.full(text, add_special_tokens=add_special_tokens)
        return _Encoding(self._backend.encode(text, add_special_tokens=add_special_tokens).ids)

    def decode(self, ids: Any, skip_special_tokens: bool = False) -> str:
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        if isinstance(ids, int):
            ids = [ids]
        text = self._backend.decode(ids, skip_special_tokens=skip_special_tokens)
        return clean_up_tokenization(text) if self._clean_up else text

    def batch_decode(self, sequences: Any, skip_special_tokens: bool = False) -> list[str]:
        if hasattr(sequences, "tolist"):
            sequences = sequences.tolist()
        return [self.decode(s, skip_special_tokens=skip_special_tokens) for s in sequences]

    def convert_ids_to_tokens(self, ids: Any, skip_special_tokens: bool = False) -> Any:
        if isinstance(ids, int):
            return self._backend.id_to_token(ids)
        return self.full.convert_ids_to_tokens(ids, skip_special_tokens=skip_special_tokens)

    def __len__(self) -> int:
        return len(self.full)

    @property
    def full(self) -> Any:
        """The transformers tokenizer (loaded on first use)."""
        if self._full is None:
            self._full = self._full_loader()
        return self._full

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.full, name)
