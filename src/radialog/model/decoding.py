"""radialog's own generation loop: a lean, inference-only decoder for the LLM.

Why: transformers' `generate()` spends most of its time on a small model in Python overhead
(logits processors, cache bookkeeping, peft LoRA wrappers, ~60 small ops per layer), not in the
matrix products. `FastDecoder` instead

- merges LoRA into the base weights once (no extra LoRA matmuls or wrapper calls);
- fuses q/k/v and gate/up into one matrix each, and keeps a preallocated KV cache;
- runs a compact Llama forward (RMSNorm, RoPE, attention) and computes only the last position's
  logits; greedy = argmax, no logits processors;
- optionally stores the weights in bfloat16 (`FastOptions.dtype`; changes outputs, opt-in; see
  `benchmarks/README.md`). The int8 modes it once had were retired: they changed the findings
  of up to 8 % of reports, leaned on private torch kernels, and llama.cpp decodes 2x faster
  than either with outputs identical to float32's.

In float32 its greedy output is the same as `generate()`'s (same maths; tested on the tiny model
and measured on SmolLM2 by `benchmarks/generate.py`). Models that are not Llama-architecture, or
LoRA variants it cannot merge (DoRA), use `HFForwardStepper`: the same loop around the model's own
forward with a `DynamicCache`.

Semantics follow `generate()`: the prompt is given as `inputs_embeds` + left-padding
`attention_mask`; finished rows are filled with `pad_token_id`; a row finishes at EOS or when
`stopping(generated_ids, None)` says so (e.g. `llm.StopOnText`); the streamer gets `put(prompt
ids)` (empty: the prompt is embeddings), then `put(next_tokens)` each step, then `end()`.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)

D = TypeVar("D")


@dataclass(frozen=True)
class FastOptions:
    """How the fast decoder stores weights. `dtype` None keeps the LLM's own dtype (exact)."""

    dtype: torch.dtype | None = None

    def __post_init__(self) -> None:
        if self.dtype is not None and not self.dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating-point torch dtype, not {self.dtype}")


# --------------------------------------------------------------------------------------------
# Weights: unwrap peft, merge LoRA
# --------------------------------------------------------------------------------------------


class UnsupportedModel(Exception):
    """The compact Llama forward cannot run this model (the decoder falls back to HF forward)."""


def base_causal_lm(llm: Any) -> Any:
    """The transformers model under a peft wrapper (or the model itself)."""
    if hasattr(llm, "get_base_model") and hasattr(llm, "peft_config"):
        return llm.get_base_model()
    return llm


def effective_weight(module: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(weight, bias) of a Linear, with any active, unmerged LoRA delta added (fp32 maths)."""
    base = getattr(module, "base_layer", None)
    if base is None:
        if not isinstance(module, nn.Linear):
            raise UnsupportedModel(f"{type(module).__name__} is not a Linear layer")
        return module.weight.detach(), None if module.bias is None else module.bias.detach()
    if not isinstance(base, nn.Linear):
        raise UnsupportedModel(f"LoRA on {type(base).__name__} (quantised base?)")
    weight = base.weight.detach()
    bias = None if base.bias is None else base.bias.detach()
    if getattr(module, "merged", False) or getattr(module, "disable_adapters", False):
        return weight, bias
    deltas = []
    for name in module.active_adapters:
        if name not in getattr(module, "lora_A", {}):
            continue
        if getattr(module, "use_dora", {}).get(name, False):
            raise UnsupportedModel("DoRA adapters are not merged by the fast decoder")
        deltas.append(module.get_delta_weight(name).detach().float())
    if not deltas:
        return weight, bias
    merged = weight.float() + sum(deltas)
    return merged.to(weight.dtype), bias


def _fused_linear(modules: list[nn.Module], dtype: torch.dtype) -> nn.Linear:
    weights, biases = zip(*(effective_weight(m) for m in modules), strict=True)
    weight = torch.cat(weights, 0) if len(weights) > 1 else weights[0].clone()
    has_bias = any(b is not None for b in biases)
    linear = nn.Linear(weight.shape[1], weight.shape[0], bias=has_bias, device="meta")
    linear.weight = nn.Parameter(weight.to(dtype).contiguous(), requires_grad=False)
    if has_bias:
        parts = [
            b if b is not None else torch.zeros(w.shape[0], dtype=w.dtype, device=w.device)
            for w, b in zip(weights, biases, strict=True)
        ]
        linear.bias = nn.Parameter(torch.cat(parts).to(dtype), requires_grad=False)
    return linear


# --------------------------------------------------------------------------------------------
# Steppers: prefill(prompt) -> logits, step(tokens) -> logits
# --------------------------------------------------------------------------------------------


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class _RMSNorm:
    """Llama RMSNorm with transformers' exact operation order (bitwise-equal in fp32)."""

    def __init__(self, weight: torch.Tensor, eps: float, dtype: torch.dtype) -> None:
        self.weight = weight.detach().to(dtype)
        self.eps = eps

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(dtype)


class _LlamaLayer(nn.Module):
    def __init__(self, layer: nn.Module, eps: float, dtype: torch.dtype) -> None:
        super().__init__()
        attn, mlp = layer.self_attn, layer.mlp
        self.qkv = _fused_linear([attn.q_proj, attn.k_proj, attn.v_proj], dtype)
        self.o = _fused_linear([attn.o_proj], dtype)
        self.gate_up = _fused_linear([mlp.gate_proj, mlp.up_proj], dtype)
        self.down = _fused_linear([mlp.down_proj], dtype)
        self.norm1 = _RMSNorm(layer.input_layernorm.weight, eps, dtype)
        self.norm2 = _RMSNorm(layer.post_attention_layernorm.weight, eps, dtype)


class Stepper(Protocol):
    """One forward step of a causal LM with a KV cache: what `StepDecoder`'s loop drives.

    Implemented by `LlamaStepper` (own kernels), `HFForwardStepper` (the model's own forward) and
    `llamacpp.LlamaCppStepper` (llama.cpp)."""

    @property
    def device(self) -> torch.device: ...

    def prefill(
        self,
        embeds: torch.Tensor,
        attention_mask: torch.Tensor,
        positions: torch.Tensor,
        total: int,
    ) -> tuple[torch.Tensor, Any]:
        """Run the left-padded prompt (B, L, H); room for `total` positions. -> (logits (B, V),
        the state `step` continues from)."""
        ...

    def step(
        self,
        state: Any,
        tokens: torch.Tensor,
        positions: torch.Tensor,
        key_bias: torch.Tensor,
        index: int,
    ) -> torch.Tensor:
        """One new token per row at cache slot `index` -> logits (B, V)."""
        ...


class LlamaStepper(nn.Module):
    """Compact forward of a transformers LlamaForCausalLM with merged, fused weights."""

    def __init__(self, llm: Any, options: FastOptions) -> None:
        super().__init__()
        model = base_causal_lm(llm)
        cfg = model.config
        if getattr(cfg, "model_type", None) != "llama":
            raise UnsupportedModel(f"model_type {getattr(cfg, 'model_type', None)!r}")
        if getattr(cfg, "hidden_act", "silu") != "silu" or getattr(cfg, "pretraining_tp", 1) != 1:
            raise UnsupportedModel("only silu MLPs without tensor-parallel splits")
        inner = model.model
        embed = inner.embed_tokens
        if getattr(embed, "base_layer", None) is not None or not isinstance(embed, nn.Embedding):
            raise UnsupportedModel("adapted input embeddings")
        src_dtype = embed.weight.dtype
        dtype = options.dtype or src_dtype
        self.dtype = dtype
        self.heads = int(cfg.num_attention_heads)
        self.kv_heads = int(cfg.num_key_value_heads or self.heads)
        self.head_dim = int(getattr(cfg, "head_dim", None) or cfg.hidden_size // self.heads)
        self.scale = self.head_dim**-0.5
        self.rotary = inner.rotary_emb
        eps = float(cfg.rms_norm_eps)
        self.layers = nn.ModuleList(_LlamaLayer(layer, eps, dtype) for layer in inner.layers)
        self.norm = _RMSNorm(inner.norm.weight, eps, dtype)
        self.embed = embed.weight.detach()
        if dtype != src_dtype:
            self.embed = self.embed.to(dtype)
        head_w, head_b = effective_weight(model.lm_head)
        tied = head_w.data_ptr() == embed.weight.data_ptr() and head_b is None
        self.lm_head = None if tied else _fused_linear([model.lm_head], dtype)

    @property
    def device(self) -> torch.device:
        return self.embed.device

    def _logits(self, h: torch.Tensor) -> torch.Tensor:
        h = self.norm(h)
        if self.lm_head is None:
            return F.linear(h, self.embed).float()
        return self.lm_head(h).float()

    def _rope(self, x: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cos, sin = self.rotary(x, positions)  # (B, L, D) each
        return cos[:, None], sin[:, None]

    def _split_qkv(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, layer: Any) -> Any:
        b, length, _ = x.shape
        qkv = layer.qkv(x).view(b, length, self.heads + 2 * self.kv_heads, self.head_dim)
        qkv = qkv.transpose(1, 2)  # (B, heads, L, D)
        qk = qkv[:, : self.heads + self.kv_heads]
        # One RoPE over q and k heads together (same cos/sin): half the small ops.
        qk = qk * cos + _rotate_half(qk) * sin
        q, k = qk[:, : self.heads], qk[:, self.heads :]
        v = qkv[:, self.heads + self.kv_heads :]
        return q, k, v

    def prefill(
        self,
        embeds: torch.Tensor,
        attention_mask: torch.Tensor,
        positions: torch.Tensor,
        total: int,
    ) -> tuple[torch.Tensor, Any]:
        """Run the prompt, allocating a KV cache for `total` positions.
        -> (last logits (B, V), cache state for `step`)."""
        b, length, _ = embeds.shape
        shape = (b, self.kv_heads, total, self.head_dim)
        k_cache = [torch.zeros(shape, dtype=self.dtype, device=self.device) for _ in self.layers]
        v_cache = [torch.zeros(shape, dtype=self.dtype, device=self.device) for _ in self.layers]
        valid = attention_mask.bool()
        causal = torch.ones(length, length, dtype=torch.bool, device=self.device).tril()
        # Padding queries may see their causal window: a fully masked softmax row is NaN, and
        # NaN values would leak into real rows through 0 * NaN.
        mask = causal[None, None] & (valid[:, None, None, :] | ~valid[:, None, :, None])
        h = embeds.to(self.dtype)
        cos, sin = self._rope(h, positions)
        for i, layer in enumerate(self.layers):
            q, k, v = self._split_qkv(layer.norm1(h), cos, sin, layer)
            k_cache[i][:, :, :length] = k
            v_cache[i][:, :, :length] = v
            a = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, scale=self.scale, enable_gqa=self.kv_heads != self.heads
            )
            h = h + layer.o(a.transpose(1, 2).reshape(b, length, -1))
            h = h + self._mlp(layer, layer.norm2(h))
        return self._logits(h[:, -1]), (k_cache, v_cache)

    @staticmethod
    def _mlp(layer: Any, x: torch.Tensor) -> torch.Tensor:
        gate, up = layer.gate_up(x).chunk(2, dim=-1)
        return layer.down(F.silu(gate) * up)

    def step(
        self,
        state: Any,
        tokens: torch.Tensor,
        positions: torch.Tensor,
        key_bias: torch.Tensor,
        index: int,
    ) -> torch.Tensor:
        """One new token per row at cache slot `index`. `key_bias` (B, 1, 1, index+1): 0 for
        visible keys, -inf for padding. -> logits (B, V)."""
        k_cache, v_cache = state
        b = tokens.shape[0]
        h = F.embedding(tokens[:, None], self.embed)
        cos, sin = self._rope(h, positions[:, None])
        groups = self.heads // self.kv_heads
        for i, layer in enumerate(self.layers):
            q, k, v = self._split_qkv(layer.norm1(h), cos, sin, layer)
            kc, vc = k_cache[i], v_cache[i]
            kc[:, :, index : index + 1] = k
            vc[:, :, index : index + 1] = v
            keys, values = kc[:, :, : index + 1], vc[:, :, : index + 1]
            # GQA without repeating K/V: group the query heads that share a KV head.
            qg = q.reshape(b, self.kv_heads, groups, self.head_dim)
            scores = torch.matmul(qg, keys.transpose(-1, -2)) * self.scale + key_bias
            probs = torch.softmax(scores.float(), dim=-1).to(values.dtype)
            a = torch.matmul(probs, values).reshape(b, 1, -1)
            h = h + layer.o(a)
            h = h + self._mlp(layer, layer.norm2(h))
        return self._logits(h[:, -1])


class HFForwardStepper:
    """The decode loop around the model's own forward (any architecture, LoRA unmerged)."""

    def __init__(self, llm: Any) -> None:
        self.llm = llm
        self.embed = llm.get_input_embeddings().weight

    @property
    def device(self) -> torch.device:
        return self.embed.device

    def prefill(
        self,
        embeds: torch.Tensor,
        attention_mask: torch.Tensor,
        positions: torch.Tensor,
        total: int,
    ) -> tuple[torch.Tensor, Any]:
        from transformers import DynamicCache

        cache = DynamicCache()
        mask = attention_mask.new_zeros(attention_mask.shape[0], total)
        mask[:, : attention_mask.shape[1]] = attention_mask
        out = self.llm(
            inputs_embeds=embeds.to(self.embed.dtype),
            attention_mask=attention_mask,
            position_ids=positions,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        return out.logits[:, -1].float(), (cache, mask)

    def step(
        self,
        state: Any,
        tokens: torch.Tensor,
        positions: torch.Tensor,
        key_bias: torch.Tensor,
        index: int,
    ) -> torch.Tensor:
        cache, mask = state
        mask[:, index] = 1
        out = self.llm(
            input_ids=tokens[:, None],
            attention_mask=mask[:, : index + 1],
            position_ids=positions[:, None],
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        return out.logits[:, -1].float()


# --------------------------------------------------------------------------------------------
# The decode loop
# --------------------------------------------------------------------------------------------


def _sample(
    logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None
) -> torch.Tensor:
    """transformers' temperature -> top-p warping, then one multinomial draw per row."""
    if temperature != 1.0:
        logits = logits / temperature
    if top_p < 1.0:
        sorted_logits, sorted_idx = torch.sort(logits, descending=False)
        cum = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        remove = cum <= (1 - top_p)
        remove[..., -1:] = False  # keep at least one token
        logits = logits.masked_fill(remove.scatter(1, sorted_idx, remove), float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


def apply_penalties(
    logits: torch.Tensor, counts: torch.Tensor, frequency: float, presence: float
) -> torch.Tensor:
    """OpenAI's frequency/presence penalties: subtract `frequency` x (times the token was
    generated so far) + `presence` x (generated at all) from its logit."""
    return logits - counts * frequency - (counts > 0).to(logits.dtype) * presence


class PenaltyProcessor:
    """`apply_penalties` as a transformers LogitsProcessor (the "hf" backend). With
    `inputs_embeds` prompts, `input_ids` holds only the generated tokens."""

    def __init__(self, frequency: float, presence: float) -> None:
        self.frequency, self.presence = frequency, presence

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        counts = torch.zeros_like(scores)
        if input_ids.shape[1]:
            counts.scatter_add_(1, input_ids, torch.ones_like(input_ids, dtype=scores.dtype))
        return apply_penalties(scores, counts, self.frequency, self.presence)


class StepDecoder:
    """The token loop around any `Stepper`: greedy or sampled, penalties, stopping, streaming.

    `FastDecoder` and `llamacpp.LlamaCppDecoder` each build a stepper and decode through one of
    these (composition: the loop is written once)."""

    def __init__(self, stepper: Stepper) -> None:
        self.stepper = stepper

    @torch.inference_mode()
    def decode(
        self,
        inputs_embeds: torch.Tensor,
        attention_mask: torch.Tensor,
        *,
        max_new_tokens: int,
        eos_token_id: int,
        pad_token_id: int,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_p: float = 1.0,
        stopping: Callable[[torch.Tensor, Any], torch.Tensor] | None = None,
        streamer: Any = None,
        generator: torch.Generator | None = None,
        frequency_penalty: float = 0.0,
        presence_penalty: float = 0.0,
    ) -> torch.Tensor:
        """New token ids (B, T<=max_new_tokens) for left-padded prompt embeddings (B, L, H).
        The penalties (OpenAI semantics, `apply_penalties`) are off at 0."""
        device = self.stepper.device
        embeds = inputs_embeds.to(device)
        mask = attention_mask.to(device=device, dtype=torch.long)
        b, length = mask.shape
        if streamer is not None:
            streamer.put(torch.empty(b, 0, dtype=torch.long))
        generated = torch.empty(b, 0, dtype=torch.long, device=device)
        if max_new_tokens <= 0:
            if streamer is not None:
                streamer.end()
            return generated
        total = length + max_new_tokens
        # Positions as transformers derives them from a left-padded mask.
        positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
        key_bias = torch.zeros(b, 1, 1, total, dtype=self._bias_dtype(), device=device)
        key_bias[:, 0, 0, :length].masked_fill_(mask == 0, float("-inf"))
        next_pos = positions[:, -1] + 1

        logits, state = self.stepper.prefill(embeds, mask, positions, total)
        unfinished = torch.ones(b, dtype=torch.bool, device=device)
        pad = torch.tensor(pad_token_id, device=device)
        steps: list[torch.Tensor] = []
        penalised = bool(frequency_penalty or presence_penalty)
        counts = torch.zeros_like(logits) if penalised else None
        for i in range(max_new_tokens):
            if counts is not None:
                logits = apply_penalties(logits, counts, frequency_penalty, presence_penalty)
            if do_sample:
                nxt = _sample(logits, temperature, top_p, generator)
            else:
                nxt = logits.argmax(dim=-1)
            nxt = torch.where(unfinished, nxt, pad)
            steps.append(nxt)
            if counts is not None:
                counts[torch.arange(b, device=device), nxt] += 1
            if streamer is not None:
                streamer.put(nxt.cpu())
            unfinished &= nxt != eos_token_id
            if stopping is not None:
                generated = torch.stack(steps, 1)
                unfinished &= ~stopping(generated, None).to(device)
            if not bool(unfinished.any()) or i == max_new_tokens - 1:
                break
            logits = self.stepper.step(
                state, nxt, next_pos, key_bias[..., : length + i + 1], length + i
            )
            next_pos = next_pos + 1
        if streamer is not None:
            streamer.end()
        return torch.stack(steps, 1)

    def _bias_dtype(self) -> torch.dtype:
        dtype = getattr(self.stepper, "dtype", torch.float32)
        return dtype if dtype.is_floating_point else torch.float32


class FastDecoder:
    """Inference-only decoder for a causal LM in torch (see the module docstring).

    Build once per set of weights (`FastDecoder(llm, options)` copies/merges the weights: about
    the LLM's size again in `options.dtype`); `decode` many times, also from several threads
    (each call has its own KV cache). `decoder_for` caches one per LLM and rebuilds it when the
    weights change.
    """

    def __init__(self, llm: Any, options: FastOptions | None = None) -> None:
        self.options = options or FastOptions()
        t0 = time.perf_counter()
        try:
            with torch.no_grad():
                stepper: Stepper = LlamaStepper(llm, self.options)
            self.kind = "llama"
        except UnsupportedModel as exc:
            if self.options != FastOptions():
                raise ValueError(f"the dtype option needs a Llama model: {exc}") from exc
            log.info("fast decoder: %s; using the model's own forward", exc)
            stepper = HFForwardStepper(llm)
            self.kind = "hf-forward"
        self.loop = StepDecoder(stepper)
        self.build_seconds = time.perf_counter() - t0
        log.debug("built %s fast decoder in %.2f s", self.kind, self.build_seconds)

    @property
    def stepper(self) -> Stepper:
        return self.loop.stepper

    def decode(
        self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor, **options: Any
    ) -> torch.Tensor:
        """`StepDecoder.decode`: new token ids for left-padded prompt embeddings."""
        return self.loop.decode(inputs_embeds, attention_mask, **options)


# --------------------------------------------------------------------------------------------
# One decoder per LLM, rebuilt when its weights change
# --------------------------------------------------------------------------------------------


class DecoderCache(Generic[D]):
    """One decoder per (LLM, options), rebuilt when the LLM's weights change; entries go with
    the LLM (weak keys). The torch and the llama.cpp decoders each keep one."""

    def __init__(self) -> None:
        self._entries: weakref.WeakKeyDictionary[Any, dict[Any, tuple[Any, D]]] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()

    def get(self, llm: nn.Module, options: Any, build: Callable[[], D]) -> D:
        key = weights_fingerprint(llm)
        with self._lock:
            per_llm = self._entries.setdefault(llm, {})
            cached = per_llm.get(options)
            if cached is not None and cached[0] == key:
                return cached[1]
            decoder = build()
            per_llm[options] = (key, decoder)
            return decoder

    def forget(self, llm: nn.Module) -> None:
        """Drop `llm`'s decoders (the next `get` builds a new one)."""
        with self._lock:
            self._entries.pop(llm, None)


def weights_fingerprint(llm: nn.Module) -> tuple[Any, ...]:
    # In-place updates (optimizer steps, load_state_dict, .to()) bump `_version` or move data.
    return tuple((p.data_ptr(), p._version) for p in llm.parameters())


FAST_DECODERS: DecoderCache[FastDecoder] = DecoderCache()


def decoder_for(llm: nn.Module, options: FastOptions | None = None) -> FastDecoder:
    """The cached FastDecoder of `llm` for `options`, rebuilt if the LLM's weights changed."""
    options = options or FastOptions()
    return FAST_DECODERS.get(llm, options, lambda: FastDecoder(llm, options))
