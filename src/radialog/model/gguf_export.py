"""Write the LLM of a RadialogModel as a GGUF file for llama.cpp: the source GGUF with LoRA merged.

Why not convert from the torch weights: the LLM was loaded (dequantised) from a GGUF, whose
tokenizer and metadata llama.cpp reads as they are, and whose tensors are the exact values the
torch model computes with. Tensors that carry a LoRA delta are dequantised and the delta (in
Hugging Face layout; q/k rows permuted into llama.cpp's RoPE order) is added. `weights` says how
the matrices are stored:

- "f16" (default): every matrix dequantised to F16. On radialog-mini greedy reports nearly
  always equal the torch model's (16/16 benchmark prompts; 14/16 phantom-iu test reports of 90
  tokens) at about the decoding speed of the quantised file on this CPU (a 135M model is not
  bound by memory bandwidth here); 270 MB on disk.
- "source": unadapted tensors copied byte for byte in the source quantisation (Q4_1 for
  SmolLM2), merged ones in F32. Smallest file, but llama.cpp quantises activations for the
  quantised matmuls: greedy output drifts (token agreement 0.71 on the same 8 reports).
- "f32": every matrix in F32: 15/16 of those test reports equal, 1.7x the time of "f16".
- "q8_0": every matrix whose rows split into 32-value blocks quantised to Q8_0 after the LoRA
  is merged (the others F16): half the bytes of "f16" per token, for CPUs where decoding is
  bound by memory bandwidth: 1.5x the decode speed of "f16" on a memory-bound 2-core machine,
  but 8/16 benchmark reports differ from the torch model's and 4.9 % of their findings change
  (llama.cpp also quantises activations), so "f16" stays the default (`benchmarks/README.md`).

A check before writing compares one unadapted tensor of the file with the torch weight, so a
GGUF that is not the one the LLM came from is refused instead of silently giving another model.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from radialog.errors import CheckpointError
from radialog.fileio import atomic_path

log = logging.getLogger(__name__)

# Hugging Face Llama module -> GGUF tensor name inside `blk.N.`.
HF_TO_GGUF = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
WEIGHT_TYPES = ("f16", "source", "f32", "q8_0")
_Q8_BLOCK = 32  # values per Q8_0 block: a row must split into whole blocks


def rope_permute(weight: np.ndarray, heads: int) -> np.ndarray:
    """Hugging Face q/k rows -> llama.cpp's interleaved RoPE order (convert_hf_to_gguf's
    `permute`; transformers undoes it when loading a GGUF)."""
    rows = weight.shape[0]
    return (
        weight.reshape(heads, 2, rows // heads // 2, *weight.shape[1:])
        .swapaxes(1, 2)
        .reshape(weight.shape)
    )


def lora_deltas(llm: Any) -> dict[str, torch.Tensor]:
    """{"blk.N.attn_q": delta (out, in) fp32, ...} for every active, unmerged LoRA module."""
    from radialog.model.decoding import UnsupportedModel, base_causal_lm, effective_weight

    model = base_causal_lm(llm)
    deltas: dict[str, torch.Tensor] = {}
    for i, layer in enumerate(model.model.layers):
        for hf_name, gguf_name in HF_TO_GGUF.items():
            module = layer.get_submodule(hf_name)
            base = getattr(module, "base_layer", None)
            if base is None:
                continue
            merged, bias = effective_weight(module)
            if bias is not None:
                raise UnsupportedModel(f"{hf_name} has a bias; llama.cpp's llama has none")
            delta = merged.float() - base.weight.detach().float()
            if bool(delta.any()):
                deltas[f"blk.{i}.{gguf_name}"] = delta
    for name in ("embed_tokens", "lm_head"):
        owner = model.model if name == "embed_tokens" else model
        if getattr(getattr(owner, name), "base_layer", None) is not None:
            raise UnsupportedModel(f"LoRA on {name} is not exported to GGUF")
    return deltas


def export_fingerprint(source: Path, deltas: dict[str, torch.Tensor], weights: str) -> str:
    """Names the exported file: changes with the source file, the LoRA weights and the type."""
    st = source.stat()
    digest = hashlib.sha256(f"{source.resolve()}|{st.st_size}|{st.st_mtime_ns}|{weights}".encode())
    for name in sorted(deltas):
        digest.update(name.encode())
        digest.update(deltas[name].numpy().tobytes())
    return digest.hexdigest()[:20]


def _heads(reader: Any) -> tuple[int, int]:
    def value(key: str) -> int:
        field = reader.fields.get(key)
        if field is None:
            raise CheckpointError(f"GGUF has no {key}")
        return int(field.contents())

    heads = value("llama.attention.head_count")
    kv_field = reader.fields.get("llama.attention.head_count_kv")
    return heads, int(kv_field.contents()) if kv_field is not None else heads


def _hf_layout(name: str, weight: np.ndarray, heads: int, kv_heads: int) -> np.ndarray:
    """GGUF row order -> Hugging Face row order (the inverse of `rope_permute`)."""
    if name.endswith("attn_q") or name.endswith("attn_k"):
        n = heads if name.endswith("attn_q") else kv_heads
        rows = weight.shape[0]
        return (
            weight.reshape(n, rows // n // 2, 2, *weight.shape[1:])
            .swapaxes(1, 2)
            .reshape(weight.shape)
        )
    return weight


def _check_source(reader: Any, llm: Any, heads: int, kv_heads: int) -> None:
    """Refuse a GGUF whose weights are not the LLM's (compare layer 0's k projection)."""
    from gguf import quants

    from radialog.model.decoding import base_causal_lm

    model = base_causal_lm(llm)
    module = model.model.layers[0].self_attn.k_proj
    torch_w = getattr(module, "base_layer", module).weight.detach().float().numpy()
    tensor = next((t for t in reader.tensors if t.name == "blk.0.attn_k.weight"), None)
    if tensor is None:
        raise CheckpointError("GGUF has no blk.0.attn_k.weight; is it a llama-architecture file?")
    file_w = _hf_layout(
        "attn_k", quants.dequantize(tensor.data, tensor.tensor_type), heads, kv_heads
    )
    if file_w.shape != torch_w.shape or not np.allclose(file_w, torch_w, atol=1e-3):
        raise CheckpointError(
            "the GGUF file's weights differ from the loaded LLM's: export from the GGUF the "
            "LLM was loaded from (llm.source)"
        )


def export_gguf(
    llm: Any,
    source: Path,
    out: Path,
    *,
    weights: str = "f16",
    deltas: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write `source` with the LLM's LoRA merged to `out` (atomically). -> out.
    `weights`: one of WEIGHT_TYPES (module docstring); `deltas`: `lora_deltas(llm)` if known."""
    from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType, GGUFWriter, quants

    if weights not in WEIGHT_TYPES:
        raise ValueError(f"weights must be one of {WEIGHT_TYPES}, not {weights!r}")
    reader = GGUFReader(source)
    arch_field = reader.fields.get("general.architecture")
    arch = arch_field.contents() if arch_field is not None else None
    if arch != "llama":
        raise CheckpointError(f"only llama-architecture GGUF files are exported, not {arch!r}")
    heads, kv_heads = _heads(reader)
    _check_source(reader, llm, heads, kv_heads)
    deltas = dict(lora_deltas(llm) if deltas is None else deltas)
    dtype = np.float32 if weights in ("source", "f32") else np.float16

    with atomic_path(out) as tmp:
        writer = GGUFWriter(tmp, arch, use_temp_file=False)
        try:
            for key, field in reader.fields.items():
                if key.startswith("GGUF.") or key == "general.architecture":
                    continue  # written by GGUFWriter itself
                main = GGUFValueType(field.types[0])
                sub = GGUFValueType(field.types[-1]) if main == GGUFValueType.ARRAY else None
                writer.add_key_value(key, field.contents(), main, sub_type=sub)
            for tensor in reader.tensors:
                name = tensor.name.removesuffix(".weight")
                delta = deltas.pop(name, None)
                raw = np.asarray(tensor.data)
                keep_raw = len(tensor.shape) < 2 or (weights == "source" and delta is None)
                if keep_raw:  # norms (F32 vectors), or unadapted tensors in "source" mode
                    writer.add_tensor(
                        tensor.name, raw, raw_shape=list(raw.shape), raw_dtype=tensor.tensor_type
                    )
                    continue
                weight = quants.dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
                if delta is not None:
                    d = delta.numpy()
                    if name.endswith("attn_q"):
                        d = rope_permute(d, heads)
                    elif name.endswith("attn_k"):
                        d = rope_permute(d, kv_heads)
                    weight = weight + d
                if weights == "q8_0" and weight.shape[-1] % _Q8_BLOCK == 0:
                    q8 = quants.quantize(weight, GGMLQuantizationType.Q8_0)
                    writer.add_tensor(
                        tensor.name,
                        q8,
                        raw_shape=list(q8.shape),
                        raw_dtype=GGMLQuantizationType.Q8_0,
                    )
                    continue
                writer.add_tensor(tensor.name, weight.astype(dtype))
            if deltas:
                raise CheckpointError(
                    f"LoRA tensors with no GGUF counterpart: {sorted(deltas)[:3]}"
                )
            writer.write_header_to_file()
            writer.write_kv_data_to_file()
            writer.write_tensors_to_file()
        finally:
            writer.close()
    log.info("wrote %s (LoRA merged, %s weights)", out, weights)
    return out
