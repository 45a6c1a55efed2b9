"""llama.cpp as the language-model backend, fed with radialog's prompt embeddings.

Optional (`pip install llama-cpp-python`, which compiles llama.cpp: ~10 min on 2 cores). The
LLM with its LoRA merged is exported once to a GGUF file (radialog.model.gguf_export; cached
under `$RADIALOG_CACHE_DIR/llamacpp/`), and llama.cpp runs it through its C API: the prompt,
image tokens included, goes in as embeddings (a `llama_batch` with `embd`, as llama.cpp's own
multimodal models do), then one token per sequence and step. It plugs into the same decode loop
as the torch fast path (`decoding.FastDecoder`), so EOS, stop text, sampling and streaming
behave the same. By default the exported matrices are F16 (see gguf_export for the choice and
its measured agreement with the torch model); `benchmarks/generate.py` reports the agreement.
A saved model that reported through llama.cpp once starts later without building its torch LLM
(radialog.model.lazy_llm).
"""

from __future__ import annotations

import ctypes
import importlib.util
import logging
import os
import re
import threading
import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from radialog.cpu import free_cores
from radialog.errors import MissingDependencyError
from radialog.model.decoding import DecoderCache, StepDecoder

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "the llama.cpp backend needs llama-cpp-python: `pip install llama-cpp-python==0.3.36` "
    "(compiles llama.cpp, ~10 min), or use --backend fast"
)


def llamacpp_available() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


_LOG_CALLBACK: list[Any] = []  # the C callback must outlive every llama.cpp call


def load_llama_cpp() -> Any:
    """The `llama_cpp` module, with llama.cpp's log lines routed to our logger (DEBUG)."""
    if not llamacpp_available():
        raise MissingDependencyError(INSTALL_HINT)
    import llama_cpp

    if not _LOG_CALLBACK:
        # llama.cpp's model-loading chatter goes to our logger (DEBUG), not to the terminal.
        levels = {3: logging.WARNING, 4: logging.ERROR}  # ggml: 1 debug, 2 info, 5 continued

        @llama_cpp.llama_log_callback
        def forward(level: int, text: bytes, user_data: Any) -> None:
            log.log(
                levels.get(level, logging.DEBUG),
                "llama.cpp: %s",
                text.decode(errors="replace").rstrip(),
            )

        llama_cpp.llama_log_set(forward, ctypes.c_void_p(0))
        _LOG_CALLBACK.append(forward)
    return llama_cpp


# Every llama.cpp model load in radialog goes through `model_params` (C API) or `open_llama`
# (llama-cpp-python's `Llama`): both turn off llama.cpp's "extra buffer types". On CPUs with
# Intel AMX (Sapphire Rapids and newer) those repack quantised weights for an AMX matmul that
# segfaults on the first prompt of more than one token (ggml-org/llama.cpp#20824). Without
# them the weights stay in the plain CPU buffer; measured on such a machine: no crash, same
# speed (~75 tok/s). tests/test_llamacpp.py checks the parameters of every load.
SAFE_MODEL_PARAMS: dict[str, Any] = {"use_extra_bufts": False}


def model_params(lib: Any) -> Any:
    """llama.cpp's default model parameters with SAFE_MODEL_PARAMS applied."""
    return _safe_defaults(lib.llama_model_default_params)


_LLAMA_LOCK = threading.Lock()


def open_llama(model_path: str | Path, **kwargs: Any) -> Any:
    """`llama_cpp.Llama(model_path, **kwargs)` loaded with SAFE_MODEL_PARAMS.

    `Llama` has no keyword for these fields and builds its parameters from
    `llama_model_default_params()` inside its constructor, so that function is swapped for
    `model_params` during the construction (under a lock: one load at a time)."""
    lib = load_llama_cpp()
    from llama_cpp import llama as llama_module

    with _LLAMA_LOCK:
        c_api = llama_module.llama_cpp
        original = c_api.llama_model_default_params
        c_api.llama_model_default_params = lambda: _safe_defaults(original)
        try:
            return lib.Llama(model_path=str(model_path), **kwargs)
        finally:
            c_api.llama_model_default_params = original


def _safe_defaults(defaults: Any) -> Any:
    params = defaults()
    for name, value in SAFE_MODEL_PARAMS.items():
        setattr(params, name, value)
    return params


@dataclass(frozen=True)
class LlamaCppOptions:
    """`weights`: how the exported GGUF stores its matrices (gguf_export.WEIGHT_TYPES);
    `threads`: None = $RADIALOG_LLAMACPP_THREADS, else `radialog.cpu.free_cores()`."""

    weights: str = "f16"
    threads: int | None = None


@contextmanager
def torch_idle() -> Any:
    """One torch thread while llama.cpp decodes: the decode loop's small torch ops then run
    in the calling thread instead of waking torch's pool, whose spinning threads would take
    cores from llama.cpp's own (one pool: llama.cpp's)."""
    before = torch.get_num_threads()
    if before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class _Model:
    """A loaded llama.cpp model + one context, grown when a call needs more room."""

    def __init__(self, path: Path, threads: int, max_batch: int = 512) -> None:
        lib = load_llama_cpp()
        self.max_batch = max_batch  # positions per llama_decode call (longer prompts: chunks)
        self.lib = lib
        lib.llama_backend_init()
        self.model = lib.llama_model_load_from_file(str(path).encode(), model_params(lib))
        if not self.model:
            raise RuntimeError(f"llama.cpp could not load {path}")
        self.n_embd = int(lib.llama_model_n_embd(self.model))
        self.n_vocab = int(lib.llama_vocab_n_tokens(lib.llama_model_get_vocab(self.model)))
        self.threads = threads
        self.ctx = None
        self.capacity = (0, 0)  # (sequences, positions per sequence)
        self._ctx_box: list[Any] = [None]  # what the finalizer frees, kept current
        weakref.finalize(self, _free, lib, self.model, self._ctx_box)

    def context(self, sequences: int, positions: int) -> tuple[Any, bool]:
        """A context with room for `sequences` x `positions` -> (ctx, new). A new context has
        empty memory; an old one keeps what the last call left (the caller decides)."""
        lib = self.lib
        if sequences <= self.capacity[0] and positions <= self.capacity[1]:
            return self.ctx, False
        if self.ctx is not None:
            lib.llama_free(self.ctx)
            self.ctx = self._ctx_box[0] = None
        seqs = max(sequences, self.capacity[0])
        per_seq = max(256, 1 << (positions - 1).bit_length(), self.capacity[1])
        params = lib.llama_context_default_params()
        params.n_ctx = seqs * per_seq
        params.n_batch = params.n_ubatch = min(params.n_ctx, self.max_batch)
        params.n_seq_max = seqs
        params.n_threads = params.n_threads_batch = self.threads
        params.kv_unified = True
        params.no_perf = True
        self.ctx = lib.llama_init_from_model(self.model, params)
        if not self.ctx:
            raise RuntimeError("llama.cpp could not create a context")
        self._ctx_box[0] = self.ctx
        self.capacity = (seqs, per_seq)
        return self.ctx, True


def _free(lib: Any, model: Any, ctx_box: list[Any]) -> None:
    if ctx_box[0] is not None:
        lib.llama_free(ctx_box[0])
    lib.llama_model_free(model)


@dataclass
class _Slot:
    """One KV-cache sequence kept between calls: the embeddings whose keys/values it holds."""

    rows: torch.Tensor | None = None
    pending: list[torch.Tensor] = field(default_factory=list)  # generated tokens, appended lazily
    used: int = 0  # LRU clock

    def content(self) -> torch.Tensor | None:
        if self.pending:
            self.rows = torch.cat([self.rows, *self.pending])
            self.pending = []
        return self.rows


class LlamaCppStepper:
    """`prefill`/`step` of decoding.FastDecoder's loop, computed by llama.cpp.

    Prefix reuse (as llama.cpp's server does with `cache_prompt` and slots): one-row calls keep
    their KV cache in one of `slots` sequences. A new prompt that starts with the same
    embeddings as a slot (the system prompt; in a dialog, the whole earlier conversation up to
    the previous answer) only computes the rest. A prompt that shares only part of a slot gets
    that part copied into another (empty or least recently used) slot, so that several dialogs
    served in turn keep their caches. `embed` (the LLM's input embedding table) lets generated
    tokens count as part of a slot's prefix too. Batched calls start from an empty cache."""

    dtype = torch.float32
    device = torch.device("cpu")

    def __init__(
        self,
        path: Path,
        threads: int,
        embed: torch.Tensor | None = None,
        slots: int = 4,
        max_batch: int = 512,
    ) -> None:
        self.model = _Model(path, threads, max_batch)
        self.embed = None if embed is None else embed.detach().float()
        self.slots = [_Slot() for _ in range(max(1, slots))]
        self.clock = 0
        self.seqs: list[int] = []  # KV sequence of each row of the current call
        self.reused = 0  # positions taken from the cache by the last prefill (tests, benchmarks)

    def forget(self) -> None:
        """Drop every kept KV cache (the next prompt is computed from scratch)."""
        self.slots = [_Slot() for _ in self.slots]
        if getattr(self, "ctx", None) is not None:
            self.model.lib.llama_memory_clear(self.model.lib.llama_get_memory(self.ctx), True)

    def _decode(self, batch: Any) -> None:
        rc = self.model.lib.llama_decode(self.ctx, batch)
        if rc != 0:
            self.forget()
            raise RuntimeError(f"llama_decode failed with code {rc} (context full?)")

    def _logits(self, indices: list[int]) -> torch.Tensor:
        rows = []
        for i in indices:
            ptr = self.model.lib.llama_get_logits_ith(self.ctx, i)
            rows.append(np.ctypeslib.as_array(ptr, shape=(self.model.n_vocab,)).copy())
        return torch.from_numpy(np.stack(rows))

    @staticmethod
    def _match(slot: _Slot, rows: torch.Tensor) -> int:
        """How many leading rows equal what the slot's cache holds."""
        cached = slot.content()
        if cached is None:
            return 0
        n = min(len(cached), len(rows))
        same = (cached[:n] == rows[:n]).all(-1)
        return n if bool(same.all()) else int((~same).nonzero()[0, 0])

    def _choose_slot(self, memory: Any, rows: torch.Tensor) -> tuple[int, int]:
        """-> (sequence for this prompt, cached positions to keep); the cache is trimmed."""
        lib = self.model.lib
        matches = [self._match(slot, rows) for slot in self.slots]
        best = max(range(len(self.slots)), key=lambda i: (matches[i], self.slots[i].used))
        keep = min(matches[best], len(rows) - 1)  # at least one row to get logits from
        target = best
        cached = self.slots[best].content()
        if cached is not None and keep < len(cached) and len(self.slots) > 1:
            # Only part of `best` is shared: leave it intact for its own dialog and build this
            # prompt's cache in an empty or the least recently used other slot.
            others = [i for i in range(len(self.slots)) if i != best]
            target = min(others, key=lambda i: (self.slots[i].rows is not None, self.slots[i].used))
            lib.llama_memory_seq_rm(memory, target, -1, -1)
            if keep:
                lib.llama_memory_seq_cp(memory, best, target, 0, keep)
            self.slots[target] = _Slot(cached[:keep] if keep else None)
        if not lib.llama_memory_seq_rm(memory, target, keep, -1):
            lib.llama_memory_seq_rm(memory, target, -1, -1)
            keep = 0
        slot = self.slots[target]
        slot.rows = slot.content()[:keep] if keep else None
        return target, keep

    def _feed_embeddings(self, rows: torch.Tensor, seq: int, start: int) -> torch.Tensor:
        """Decode `rows` at positions start.. of sequence `seq`, in chunks of at most the
        context's batch size; -> the last row's logits."""
        lib = self.model.lib
        data = rows.contiguous().numpy()
        chunk = self.model.max_batch
        batch = lib.llama_batch_init(min(chunk, len(data)), self.model.n_embd, 1)
        try:
            for lo in range(0, len(data), chunk):
                part = np.ascontiguousarray(data[lo : lo + chunk])
                n = len(part)
                ctypes.memmove(batch.embd, part.ctypes.data, part.nbytes)
                batch.n_tokens = n
                for i in range(n):
                    batch.pos[i] = start + lo + i
                    batch.n_seq_id[i] = 1
                    batch.seq_id[i][0] = seq
                    batch.logits[i] = lo + i == len(data) - 1
                self._decode(batch)
            return self._logits([n - 1])[0]
        finally:
            lib.llama_batch_free(batch)

    def prefill(
        self,
        embeds: torch.Tensor,
        attention_mask: torch.Tensor,
        positions: torch.Tensor,
        total: int,
    ) -> tuple[torch.Tensor, Any]:
        lib = self.model.lib
        b, width = embeds.shape[:2]
        lengths = attention_mask.sum(-1).tolist()
        self.ctx, new = self.model.context(max(b, len(self.slots)), total)
        memory = lib.llama_get_memory(self.ctx)
        # One sequence per row, padding dropped (left padding: the real tokens are at the end).
        rows = [embeds[r, width - n :].to(torch.float32) for r, n in enumerate(lengths)]
        if new or b > 1:
            self.forget()
        if b == 1:
            seq, keep = self._choose_slot(memory, rows[0])
            self.seqs = [seq]
        else:
            self.seqs, keep = list(range(b)), 0
        self.reused = keep
        last = [
            self._feed_embeddings(row[keep:], seq, keep)
            for row, seq in zip(rows, self.seqs, strict=True)
        ]
        if b == 1:
            self.clock += 1
            slot = self.slots[self.seqs[0]]
            slot.rows = rows[0] if slot.rows is None else torch.cat([slot.rows, rows[0][keep:]])
            slot.used = self.clock
        self.token_batch = lib.llama_batch_init(b, 0, 1)
        self._batch_finalizer = weakref.finalize(self, lib.llama_batch_free, self.token_batch)
        self.next_pos = list(lengths)
        return torch.stack(last), None

    def step(
        self,
        state: Any,
        tokens: torch.Tensor,
        positions: torch.Tensor,
        key_bias: torch.Tensor,
        index: int,
    ) -> torch.Tensor:
        batch = self.token_batch
        ids = tokens.tolist()
        batch.n_tokens = len(ids)
        for row, token in enumerate(ids):
            batch.token[row] = token
            batch.pos[row] = self.next_pos[row]
            batch.n_seq_id[row] = 1
            batch.seq_id[row][0] = self.seqs[row]
            batch.logits[row] = True
            self.next_pos[row] += 1
        self._decode(batch)
        if len(ids) == 1:
            slot = self.slots[self.seqs[0]]
            if self.embed is None:
                # The cache now holds a token we cannot compare with: not reusable (its
                # sequence is trimmed when the slot is next chosen).
                self.slots[self.seqs[0]] = _Slot()
            elif slot.rows is not None:
                slot.pending.append(self.embed[ids[0]][None])
        return self._logits(list(range(len(ids))))


class LlamaCppDecoder:
    """`StepDecoder`'s loop over a `LlamaCppStepper`. One context per decoder: calls are
    serialised, and torch's threads rest while llama.cpp's run."""

    kind = "llama.cpp"

    def __init__(
        self,
        gguf_path: Path,
        threads: int | None = None,
        embed: torch.Tensor | None = None,
        **stepper_options: Any,
    ) -> None:
        self.path = gguf_path
        self.threads = threads or free_cores()
        log.debug("llama.cpp threads: %d", self.threads)
        self.stepper = LlamaCppStepper(gguf_path, self.threads, embed, **stepper_options)
        self.loop = StepDecoder(self.stepper)
        self._lock = threading.Lock()

    def decode(
        self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor, **options: Any
    ) -> torch.Tensor:
        with self._lock, torch_idle():
            return self.loop.decode(inputs_embeds, attention_mask, **options)


# One decoder per LLM (exported GGUF cached on disk, loaded model cached in memory).
LLAMACPP_DECODERS: DecoderCache[LlamaCppDecoder] = DecoderCache()


KEEP_EXPORTS = 4  # exported GGUFs kept in the cache (most recently used); each is model-sized


def exported_gguf(llm: Any, source: Path, weights: str = "f16") -> Path:
    """The cached GGUF of `llm` (source + merged LoRA), written on first use. Older exports
    (other LoRA weights, e.g. from training runs) beyond KEEP_EXPORTS are removed."""
    from radialog.model.gguf_export import export_fingerprint, export_gguf, lora_deltas
    from radialog.paths import cache_dir

    deltas = lora_deltas(llm)
    key = export_fingerprint(source, deltas, weights)
    path = cache_dir() / "llamacpp" / export_name(source, weights, key)
    if path.is_file():
        os.utime(path)  # mark as recently used
    else:
        from radialog.model.llm import PREPARE_LOG, gguf_values

        size = (
            source.stat().st_size
            if weights == "source"
            else gguf_values(source) * {"f16": 2, "f32": 4, "q8_0": 1.0625}.get(weights, 4)
        )
        PREPARE_LOG.info(
            "first use of this model with llama.cpp: writing its GGUF (LoRA merged, %s, about "
            "%.0f MB) to %s, once per trained model",
            weights.upper(),
            size / 1e6,
            path.parent,
        )
        export_gguf(llm, source, path, weights=weights, deltas=deltas)
    _prune_exports(path)
    return path


# A quantisation tag at the end of a GGUF file name ("...Instruct.Q4_1", "-q8_0", ".F16").
_QUANT_TAG = re.compile(r"[.-](?:I?Q\d\w*|F16|F32|BF16)$", re.I)


def export_name(source: Path, weights: str, key: str) -> str:
    """The cached export's file name: says what it holds (an F16 export of a Q4_1 source is
    named F16, not Q4_1), then that the LoRA is merged, then the fingerprint."""
    if weights == "source":
        return f"{source.stem}-merged-{key}.gguf"  # the source's own quantisation
    return f"{_QUANT_TAG.sub('', source.stem)}.{weights.upper()}-merged-{key}.gguf"


def _prune_exports(keep: Path) -> None:
    exports = sorted(keep.parent.glob("*.gguf"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in [p for p in exports if p != keep][KEEP_EXPORTS - 1 :]:
        try:
            old.unlink()  # a process still using it keeps its mapping (POSIX)
        except OSError as exc:
            log.debug("could not remove old export %s: %s", old, exc)


def llamacpp_decoder_for(
    llm: Any, source: Path, options: LlamaCppOptions | None = None
) -> LlamaCppDecoder:
    """The llama.cpp decoder for `llm` (whose weights came from the GGUF `source`), rebuilt
    when the LLM's weights change."""
    options = options or LlamaCppOptions()
    load_llama_cpp()  # fail with the install hint before exporting anything

    def build() -> LlamaCppDecoder:
        path = exported_gguf(llm, source, options.weights)
        return LlamaCppDecoder(path, decoder_threads(options), llm.get_input_embeddings().weight)

    return LLAMACPP_DECODERS.get(llm, options, build)


def decoder_threads(options: LlamaCppOptions) -> int | None:
    """llama.cpp's thread count: the options', else $RADIALOG_LLAMACPP_THREADS, else None
    (the decoder measures the free cores)."""
    return options.threads or int(os.environ.get("RADIALOG_LLAMACPP_THREADS", 0)) or None
