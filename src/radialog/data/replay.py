"""Pseudo ground truth for replay tasks, written by the base LLM before fine-tuning.

RaDialog asks the base LLM (Vicuna-13B) to answer easy-language, summary, region and
correction instructions about the ground-truth report, and trains on those answers, which
keeps the fine-tuned model close to the base model's conversational behaviour.

`PseudoLabeler` batches chats through any text-generation callable and caches the answers on
disk, keyed by SHA-256 of (generator id, chat). The cache is an append-only JSONL file,
flushed and fsynced after every batch: a killed run loses at most the batch in flight, and
re-running resumes from the cache (a torn last line is ignored).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

Chat = list[dict[str, str]]  # [{"role": "user"|"assistant", "content": ...}, ...]
Generate = Callable[[list[Chat]], list[str]]


def chat_key(generator_id: str, chat: Chat) -> str:
    payload = json.dumps([generator_id, chat], ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class PseudoLabeler:
    """Cached, batched answers of a generator to chats.

    generate: callable taking a list of chats, returning one answer string per chat.
    generator_id: names the generator and its settings; part of the cache key, so answers of
        different models never mix.
    cache_path: JSONL cache file (created if missing); None keeps the cache in memory only.
    """

    def __init__(
        self,
        generate: Generate,
        generator_id: str,
        cache_path: str | Path | None = None,
        batch_size: int = 8,
    ) -> None:
        self.generate = generate
        self.generator_id = generator_id
        self.cache_path = Path(cache_path) if cache_path else None
        self.batch_size = max(1, batch_size)
        self.hits = 0
        self.misses = 0
        self._needs_newline = False
        self._cache: dict[str, str] = self._load()

    def _load(self) -> dict[str, str]:
        cache: dict[str, str] = {}
        if self.cache_path is None or not self.cache_path.is_file():
            return cache
        torn = 0
        with self.cache_path.open("rb") as handle:
            for raw in handle:
                # A torn last line has no newline: the next append must start a fresh line.
                self._needs_newline = not raw.endswith(b"\n")
                try:
                    entry = json.loads(raw)
                    cache[entry["key"]] = entry["answer"]
                except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
                    torn += 1  # a line cut by a kill mid-write
        if torn:
            logger.warning("ignored %d unreadable line(s) in %s", torn, self.cache_path)
        logger.info("replay cache %s: %d answers", self.cache_path, len(cache))
        return cache

    def __len__(self) -> int:
        return len(self._cache)

    def cached(self, chat: Chat) -> str | None:
        return self._cache.get(chat_key(self.generator_id, chat))

    def __call__(self, chats: Sequence[Chat]) -> list[str]:
        """Answers for the chats, in order; generates only what the cache lacks."""
        keys = [chat_key(self.generator_id, c) for c in chats]
        todo: dict[str, Chat] = {}
        for key, chat in zip(keys, chats, strict=True):
            if key not in self._cache and key not in todo:
                todo[key] = chat
        self.hits += len(chats) - len(todo)
        items = list(todo.items())
        for start in range(0, len(items), self.batch_size):
            batch = items[start : start + self.batch_size]
            answers = self.generate([c for _, c in batch])
            if len(answers) != len(batch):
                raise RuntimeError(
                    f"generator returned {len(answers)} answers for {len(batch)} prompts"
                )
            self._store([(k, a) for (k, _), a in zip(batch, answers, strict=True)])
            self.misses += len(batch)
        return [self._cache[k] for k in keys]

    def _store(self, entries: list[tuple[str, str]]) -> None:
        for key, answer in entries:
            self._cache[key] = answer
        if self.cache_path is None:
            return
        self.cache_path.parent.mkdir(parents=True, exist_ok=True)
        lines = "".join(
            json.dumps({"key": k, "answer": a, "generator": self.generator_id}, ensure_ascii=False)
            + "\n"
            for k, a in entries
        )
        if self._needs_newline:
            lines = "\n" + lines
            self._needs_newline = False
        with self.cache_path.open("a", encoding="utf-8") as handle:
            handle.write(lines)
            handle.flush()
            os.fsync(handle.fileno())


class LLMGenerator:
    """Greedy chat generation with a causal LM from `radialog.model.llm` (e.g. SmolLM2).

    Uses the tokenizer's own chat template (the base model's native format), left padding,
    `max_new_tokens` (RaDialog: 256).
    """

    def __init__(
        self, source: str = "smollm2", max_new_tokens: int = 256, device: str | None = None
    ) -> None:
        self.source = source
        self.max_new_tokens = max_new_tokens
        self.device = device
        self.id = f"{source}:greedy:{max_new_tokens}"
        self._model: Any = None
        self._tokenizer: Any = None

    def _load(self) -> None:
        # Loaded on first use, so a run whose answers are all cached never loads the model.
        import torch

        from radialog.model.config import LLMConfig
        from radialog.model.llm import load_llm

        self._model, self._tokenizer = load_llm(LLMConfig(source=self.source, lora=None))
        self.device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        self._model.to(self.device)

    def __call__(self, chats: list[Chat]) -> list[str]:
        import torch

        if self._model is None:
            self._load()
        tokenizer = self._tokenizer
        texts = [
            tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True)
            for c in chats
        ]
        tokenizer.padding_side = "left"
        batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        batch = {k: v.to(self.device) for k, v in batch.items()}
        with torch.inference_mode():
            out = self._model.generate(
                **batch,
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
        new = out[:, batch["input_ids"].shape[1] :]
        return [t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True)]


class LlamaCppChatGenerator:
    """The same greedy chat generation as `LLMGenerator`, run by llama.cpp on a GGUF source
    (~6x faster on a CPU; see benchmarks/README.md). The prompt is the HF tokenizer's chat
    template, tokenised by it, so both generators see the same token ids; llama-cpp-python
    reuses the KV cache of a shared prompt prefix between chats. Its answers are cached under
    their own generator id: quantised arithmetic may pick other tokens than torch does."""

    def __init__(
        self, source: str = "smollm2", max_new_tokens: int = 256, threads: int | None = None
    ) -> None:
        self.source = source
        self.max_new_tokens = max_new_tokens
        self.threads = threads
        self.id = f"{source}:llamacpp-greedy:{max_new_tokens}"
        self._llm: Any = None
        self._tokenizer: Any = None

    def _load(self) -> None:
        from radialog.cpu import free_cores
        from radialog.model.llamacpp import open_llama
        from radialog.model.llm import load_tokenizer, resolve_source

        self._tokenizer = load_tokenizer(self.source)
        self._llm = open_llama(  # safe parameters; llama.cpp's log lines -> our logger
            resolve_source(self.source),
            n_ctx=4096,
            n_threads=self.threads or free_cores(),  # threads beyond free cores spin-wait
            verbose=False,
        )

    def __call__(self, chats: list[Chat]) -> list[str]:
        if self._llm is None:
            self._load()
        tokenizer, eos = self._tokenizer, self._tokenizer.eos_token_id
        answers = []
        for chat in chats:
            prompt = tokenizer.apply_chat_template(chat, tokenize=True, add_generation_prompt=True)
            ids: list[int] = []
            # reset=True (the default) reuses the shared prompt prefix; reset=False never frees
            # the KV cache, which fills up after a few dozen chats (llama_decode returns 1).
            for token in self._llm.generate(list(prompt), temp=0.0, top_k=1):
                if token == eos or len(ids) >= self.max_new_tokens:
                    break
                ids.append(token)
            answers.append(tokenizer.decode(ids, skip_special_tokens=True).strip())
        return answers


def replay_generator(source: str, backend: str = "auto", **kwargs: Any) -> Generate:
    """The replay generator for `source`: llama.cpp for a GGUF source when it is installed
    (backend "auto" or "llamacpp"), else transformers (`LLMGenerator`)."""
    from radialog.model.llamacpp import llamacpp_available
    from radialog.model.llm import resolve_source

    if backend not in ("auto", "hf", "llamacpp"):
        raise ValueError(f"replay backend must be auto, hf or llamacpp, not {backend!r}")
    gguf = resolve_source(source).suffix == ".gguf"
    if backend == "llamacpp" or (backend == "auto" and gguf and llamacpp_available()):
        if not gguf:
            raise ValueError(f"the llama.cpp replay backend needs a GGUF source, not {source!r}")
        kwargs.pop("device", None)
        return LlamaCppChatGenerator(source, **kwargs)
    kwargs.pop("threads", None)
    return LLMGenerator(source=source, **kwargs)


def make_pseudo_labeler(
    model: str | None,
    cache_path: str | Path | None,
    batch_size: int = 8,
    backend: str = "auto",
    **kwargs: Any,
) -> PseudoLabeler | None:
    """A PseudoLabeler for a replay model name ("smollm2", a model path) or None for "none"."""
    if model is None or model.lower() == "none":
        return None
    generator = replay_generator(model, backend, **kwargs)
    return PseudoLabeler(generator, generator.id, cache_path, batch_size)
