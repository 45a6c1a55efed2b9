"""A tiny random Llama written as a GGUF file, for llama.cpp backend tests.

The tokenizer and other metadata come from the SmolLM2 GGUF (so the tiny model shares its
vocabulary); the shapes are overridden and the tensors are the tiny torch model's, in F32 and
in llama.cpp's RoPE row order, so transformers loads back exactly the same weights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from gguf import GGUFReader, GGUFValueType, GGUFWriter

from radialog.model.gguf_export import HF_TO_GGUF, rope_permute
from radialog.model.llm import smollm2_gguf_path

# Projections as radialog exports them, plus the two norms of each block.
_NAMES = {
    **HF_TO_GGUF,
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
}


def write_tiny_gguf(llm, path: Path) -> Path:
    cfg = llm.config
    heads, kv_heads = cfg.num_attention_heads, cfg.num_key_value_heads
    head_dim = cfg.hidden_size // heads
    overrides = {
        "llama.block_count": (cfg.num_hidden_layers, GGUFValueType.UINT32),
        "llama.context_length": (cfg.max_position_embeddings, GGUFValueType.UINT32),
        "llama.embedding_length": (cfg.hidden_size, GGUFValueType.UINT32),
        "llama.feed_forward_length": (cfg.intermediate_size, GGUFValueType.UINT32),
        "llama.attention.head_count": (heads, GGUFValueType.UINT32),
        "llama.attention.head_count_kv": (kv_heads, GGUFValueType.UINT32),
        "llama.rope.dimension_count": (head_dim, GGUFValueType.UINT32),
        "llama.rope.freq_base": (float(getattr(cfg, "rope_theta", 10000.0)), GGUFValueType.FLOAT32),
        "llama.attention.layer_norm_rms_epsilon": (cfg.rms_norm_eps, GGUFValueType.FLOAT32),
    }
    reader = GGUFReader(smollm2_gguf_path())
    writer = GGUFWriter(path, "llama", use_temp_file=False)
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture" or key in overrides:
            continue
        main = GGUFValueType(field.types[0])
        sub = GGUFValueType(field.types[-1]) if main == GGUFValueType.ARRAY else None
        writer.add_key_value(key, field.contents(), main, sub_type=sub)
    for key, (value, vtype) in overrides.items():
        writer.add_key_value(key, value, vtype)

    def f32(t):
        return t.detach().float().numpy().astype(np.float32)

    inner = llm.model
    writer.add_tensor("token_embd.weight", f32(inner.embed_tokens.weight))
    for i, layer in enumerate(inner.layers):
        for hf_name, gguf_name in _NAMES.items():
            w = f32(layer.get_submodule(hf_name).weight)
            if gguf_name == "attn_q":
                w = rope_permute(w, heads)
            elif gguf_name == "attn_k":
                w = rope_permute(w, kv_heads)
            writer.add_tensor(f"blk.{i}.{gguf_name}.weight", w)
    writer.add_tensor("output_norm.weight", f32(inner.norm.weight))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def tiny_gguf_model(root: Path, target_modules: list[str] | None = None):
    """The tiny config's RadialogModel on a GGUF written from its own LLM (so llama.cpp can run
    it), with random non-zero LoRA weights (an identity LoRA would hide merge errors)."""
    from radialog.model.config import load_named_config
    from radialog.model.llm import load_llm
    from radialog.model.radialog_model import RadialogModel

    cfg = load_named_config("tiny")
    llm, _ = load_llm(cfg.llm)
    cfg.llm.source = str(write_tiny_gguf(llm, root / "tiny.gguf"))
    if target_modules is not None:
        cfg.llm.lora.target_modules = target_modules
    return random_lora(RadialogModel(cfg))


def random_lora(model):
    """Fill the model's LoRA weights with seeded non-zero values (so that merging LoRA into
    the weights is actually exercised); returns the model."""
    import torch

    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.llm.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return model
