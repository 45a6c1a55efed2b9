"""A saved model's LLM on the llama.cpp path without building the torch LLM.

llama.cpp decodes from the exported GGUF (LoRA merged; radialog.model.llamacpp); of the torch
LLM a report then needs only the input embedding table and the tokenizer. Building the torch
LLM (transformers + peft imports, ~540 MB of float32 weights, LoRA deltas to find the export)
took most of a warm one-shot `radialog report`. So the first report through llama.cpp of a
saved model records, next to the exports, which export it used plus the embedding table
(memory-mapped on later loads) and the tokenizer (radialog.model.light_tokenizer). A later
load finds that record from files alone and starts without the torch LLM; it is built on first
real use (`RadialogModel.llm`).

The record's key is computed without the LLM: the source GGUF's identity, the LLM config and
the bytes of the model directory's adapter files. The embedding table and tokenizer depend
only on the source, dtype and tokenizer, so models trained from one source share them.
`RADIALOG_EAGER_LLM=1` turns the shortcut off (benchmark baseline, debugging).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from radialog.model.config import LLMConfig

log = logging.getLogger(__name__)

FORMAT = 1  # bump when what is recorded changes
EAGER_ENV = "RADIALOG_EAGER_LLM"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin")
EMBED_FILE = "embed.npy"
PARTS_META = "parts.json"


def root() -> Path:
    from radialog.paths import cache_dir

    return cache_dir() / "llamacpp" / "lazy"


def _identity(source: Path) -> str:
    st = source.stat()
    return f"{source.resolve()}|{st.st_size}|{st.st_mtime_ns}"


@dataclass(frozen=True)
class Keys:
    """`entry`: this model's LLM (source, config, adapter bytes); `parts`: its source's
    embedding table and tokenizer."""

    entry: str
    parts: str


def keys_for(cfg: LLMConfig, adapter_dir: Path | None) -> Keys | None:
    """The record keys of a saved model's LLM, or None when it cannot use the shortcut (not
    a GGUF source, fresh untrained LoRA, llama.cpp not installed)."""
    try:
        return _keys(cfg, adapter_dir)
    except Exception as exc:  # noqa: BLE001 - only a shortcut: the eager load still works
        log.debug("no lazy-LLM keys: %s", exc)
        return None


def _keys(cfg: LLMConfig, adapter_dir: Path | None) -> Keys | None:
    from radialog.model.llamacpp import llamacpp_available
    from radialog.model.llm import resolve_source

    if cfg.source in (None, "", "random") or cfg.quantization:
        return None
    if adapter_dir is None and cfg.lora is not None:
        return None  # a fresh LoRA is random per load: nothing to look up
    source = resolve_source(cfg.source)
    if source.suffix != ".gguf" or not llamacpp_available():
        return None
    parts = hashlib.sha256(
        f"{FORMAT}|{_identity(source)}|{cfg.dtype}|{cfg.tokenizer}".encode()
    ).hexdigest()[:20]
    settings = json.dumps(dataclasses.asdict(cfg), sort_keys=True, default=str)
    digest = hashlib.sha256(f"{parts}|{settings}".encode())
    for name in ADAPTER_FILES if adapter_dir is not None else ():
        path = adapter_dir / name
        if path.is_file():
            digest.update(name.encode())
            digest.update(path.read_bytes())
    return Keys(digest.hexdigest()[:20], parts)


class LazyLLM:
    """What a model without its torch LLM holds: the recorded exports, the embedding table
    (memory-mapped, in the LLM's dtype), the tokenizer, and llama.cpp decoders made here."""

    def __init__(
        self, record: dict[str, Any], parts_dir: Path, adapter_dir: Path | None, full_tokenizer: Any
    ) -> None:
        from radialog.model.light_tokenizer import LightTokenizer

        meta = json.loads((parts_dir / PARTS_META).read_text(encoding="utf-8"))
        table = torch.from_numpy(np.load(parts_dir / EMBED_FILE, mmap_mode="c"))
        if meta["dtype"] == "bfloat16":  # numpy has no bfloat16: stored as its bits
            table = table.view(torch.bfloat16)
        self.embedding = nn.Embedding.from_pretrained(table, freeze=True)
        self.tokenizer = LightTokenizer.load(parts_dir, full_tokenizer)
        self.exports: dict[str, str] = dict(record["exports"])
        self.export_dir = parts_dir.parent.parent  # beside the exports
        self.n_params = int(record["n_params"])
        self.adapter_dir = adapter_dir
        self.decoders: dict[Any, Any] = {}
        self.lock = threading.RLock()

    @property
    def table(self) -> torch.Tensor:
        return self.embedding.weight

    def decoder(self, options: Any) -> Any:
        """The llama.cpp decoder for `options`, or None when no export for its weight type
        is recorded or the file is gone (the caller then builds the LLM)."""
        from radialog.model.llamacpp import LlamaCppDecoder, decoder_threads, load_llama_cpp

        with self.lock:
            if options in self.decoders:
                return self.decoders[options]
            name = self.exports.get(options.weights)
            path = self.export_dir / name if name else None
            if path is None or not path.is_file():
                return None
            load_llama_cpp()
            os.utime(path)  # recently used: kept by the exports' pruning
            decoder = LlamaCppDecoder(path, decoder_threads(options), self.table)
            self.decoders[options] = decoder
            return decoder


def find(keys: Keys | None, adapter_dir: Path | None, full_tokenizer: Any) -> LazyLLM | None:
    """The recorded LLM parts for `keys`, or None (nothing recorded, or turned off)."""
    if keys is None or os.environ.get(EAGER_ENV, "") not in ("", "0"):
        return None
    entry = root() / f"{keys.entry}.json"
    parts_dir = root() / f"parts-{keys.parts}"
    try:
        record = json.loads(entry.read_text(encoding="utf-8"))
        if record.get("format") != FORMAT or record.get("parts") != keys.parts:
            return None
        return LazyLLM(record, parts_dir, adapter_dir, full_tokenizer)
    except Exception as exc:  # noqa: BLE001 - an unusable record means the eager load
        if entry.is_file():
            log.debug("unusable lazy-LLM record %s: %s", entry, exc)
        return None


def record(keys: Keys, weights: str, export: Path, llm: Any, tokenizer: Any) -> None:
    """Note that this model's LLM exports to `export` for `weights`, and save its source's
    embedding table and tokenizer if not yet saved. Errors are logged, never raised: the
    record only speeds later loads up."""
    try:
        entry = root() / f"{keys.entry}.json"
        try:
            current = json.loads(entry.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            current = {}
        if (
            current.get("exports", {}).get(weights) == export.name
            and current.get("format") == FORMAT
        ):
            return
        parts_dir = root() / f"parts-{keys.parts}"
        if not (parts_dir / PARTS_META).is_file() and not _save_parts(parts_dir, llm, tokenizer):
            return
        exports = dict(current.get("exports", {})) if current.get("format") == FORMAT else {}
        exports[weights] = export.name
        n_params = sum(p.numel() for p in llm.parameters())
        from radialog.fileio import atomic_write_json

        atomic_write_json(
            entry,
            {"format": FORMAT, "parts": keys.parts, "exports": exports, "n_params": n_params},
        )
    except Exception as exc:  # noqa: BLE001 - see docstring
        log.debug("could not record the lazy-LLM parts: %s", exc)


# One sample covers the prompt's special text, the decode clean-up and non-ASCII text.
_SAMPLE = "<s>[INST] A chest X-ray </s> shows n't 's , . ? ! ' x 'm ünï 中 🙂 [/INST]"


def _save_parts(parts_dir: Path, llm: Any, tokenizer: Any) -> bool:
    """Write the embedding table and the light tokenizer; False when the tokenizer is not a
    fast one or the light one would not give the same ids and text."""
    from radialog.fileio import atomic_open, atomic_write_json
    from radialog.model.light_tokenizer import LightTokenizer, save_light_tokenizer

    if getattr(tokenizer, "backend_tokenizer", None) is None:
        return False
    parts_dir.mkdir(parents=True, exist_ok=True)
    save_light_tokenizer(tokenizer, parts_dir)
    light = LightTokenizer.load(parts_dir, lambda: tokenizer)
    for special in (True, False):
        ids = tokenizer(_SAMPLE, add_special_tokens=special).input_ids
        if light(_SAMPLE, add_special_tokens=special).input_ids != ids:
            return False
        if light.decode(ids, skip_special_tokens=special) != tokenizer.decode(
            ids, skip_special_tokens=special
        ):
            return False
    table = llm.get_input_embeddings().weight.detach().cpu()
    dtype = str(table.dtype).removeprefix("torch.")
    data = table.view(torch.uint16).numpy() if table.dtype == torch.bfloat16 else table.numpy()
    with atomic_open(parts_dir / EMBED_FILE, "wb") as fh:
        np.save(fh, np.ascontiguousarray(data))
    atomic_write_json(parts_dir / PARTS_META, {"dtype": dtype, "shape": list(table.shape)})
    return True
