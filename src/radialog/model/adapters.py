"""Adapters: encoder feature map (B, C, h, w) -> image tokens (B, N, llm_hidden).

- `QFormerAdapter` ("align", RaDialog v1 / BLIP-2): learned queries attend to the image patches
  through BERT-style layers (self-attention over queries, cross-attention every
  `cross_attention_freq`-th layer, FFN; post-norm), then a Linear to the LLM width.
- `ProjectAdapter` ("project", RaDialog v2 / LLaVA mlp2x_gelu): Linear-GELU-Linear per patch.

Patches are flattened v2-style by default, `x.flatten(2).transpose(1, 2)` (one token per grid
cell); `AdapterConfig.patch_order="channels_first"` reproduces v1's reshape for its Q-Former.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from radialog.model.config import AdapterConfig


def flatten_patches(features: torch.Tensor, order: str = "spatial") -> torch.Tensor:
    """(B, C, h, w) -> (B, h*w, C); 3-D inputs are already tokens.

    `order="channels_first"` reproduces RaDialog v1's `x.reshape(B, -1, C)` on the NCHW tensor
    (no permute), which its released Q-Former was trained on.
    """
    if features.ndim == 3:
        return features
    if order == "channels_first":
        return features.reshape(features.shape[0], -1, features.shape[1])
    if order != "spatial":
        raise ValueError(f"unknown patch_order {order!r}; use spatial or channels_first")
    return features.flatten(2).transpose(1, 2)


class _Attention(nn.Module):
    """BERT attention: q/k/v projections, softmax attention, output dense + residual LayerNorm."""

    def __init__(self, hidden: int, kv_width: int, heads: int, dropout: float) -> None:
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden size {hidden} is not divisible by {heads} heads")
        self.heads = heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(kv_width, hidden)
        self.value = nn.Linear(kv_width, hidden)
        self.dense = nn.Linear(hidden, hidden)
        self.norm = nn.LayerNorm(hidden, eps=1e-12)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        m = context.shape[1]
        h = self.heads
        q = self.query(x).view(b, n, h, d // h).transpose(1, 2)
        k = self.key(context).view(b, m, h, d // h).transpose(1, 2)
        v = self.value(context).view(b, m, h, d // h).transpose(1, 2)
        p = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
        out = self.dense(out.transpose(1, 2).reshape(b, n, d))
        return self.norm(x + F.dropout(out, p, self.training))


class _QFormerLayer(nn.Module):
    def __init__(self, cfg: AdapterConfig, vision_width: int, cross: bool) -> None:
        super().__init__()
        d = cfg.hidden_size
        self.self_attn = _Attention(d, d, cfg.num_heads, cfg.dropout)
        self.cross_attn = _Attention(d, vision_width, cfg.num_heads, cfg.dropout) if cross else None
        self.fc1 = nn.Linear(d, cfg.intermediate_size)
        self.fc2 = nn.Linear(cfg.intermediate_size, d)
        self.ffn_norm = nn.LayerNorm(d, eps=1e-12)
        self.dropout = cfg.dropout

    def forward(self, queries: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        x = self.self_attn(queries, queries)
        if self.cross_attn is not None:
            x = self.cross_attn(x, image)
        y = self.fc2(F.gelu(self.fc1(x)))
        return self.ffn_norm(x + F.dropout(y, self.dropout, self.training))


class QFormerAdapter(nn.Module):
    """BLIP-2-style Q-Former: `num_queries` learned queries -> (B, num_queries, llm_hidden)."""

    def __init__(self, cfg: AdapterConfig, vision_width: int, llm_hidden: int) -> None:
        super().__init__()
        if cfg.cross_attention_freq < 1:
            raise ValueError("cross_attention_freq must be >= 1")
        self.ln_vision = nn.LayerNorm(vision_width)
        self.query_tokens = nn.Parameter(torch.zeros(1, cfg.num_queries, cfg.hidden_size))
        self.query_norm = nn.LayerNorm(cfg.hidden_size, eps=1e-12)
        self.layers = nn.ModuleList(
            _QFormerLayer(cfg, vision_width, cross=(i % cfg.cross_attention_freq == 0))
            for i in range(cfg.num_layers)
        )
        self.proj = nn.Linear(cfg.hidden_size, llm_hidden)
        self.dropout = cfg.dropout
        self.num_image_tokens = cfg.num_queries
        self.patch_order = cfg.patch_order
        self._init_weights()

    def _init_weights(self) -> None:
        # BERT initialisation: N(0, 0.02) for linear layers and the query tokens.
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.query_tokens, std=0.02)

    def query_states(self, features: torch.Tensor) -> torch.Tensor:
        """Q-Former output before the LLM projection: (B, num_queries, hidden)."""
        image = self.ln_vision(flatten_patches(features, self.patch_order))
        x = self.query_norm(self.query_tokens.expand(image.shape[0], -1, -1))
        x = F.dropout(x, self.dropout, self.training)
        for layer in self.layers:
            x = layer(x, image)
        return x

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.proj(self.query_states(features))


class ProjectAdapter(nn.Module):
    """LLaVA-1.5 `mlp2x_gelu`: Linear(C, H) -> GELU -> Linear(H, llm_hidden) on every patch token."""

    def __init__(
        self, vision_width: int, llm_hidden: int, hidden: int | None, num_patches: int
    ) -> None:
        super().__init__()
        hidden = hidden or llm_hidden
        self.mlp = nn.Sequential(
            nn.Linear(vision_width, hidden), nn.GELU(), nn.Linear(hidden, llm_hidden)
        )
        self.num_image_tokens = num_patches

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.mlp(flatten_patches(features))


def build_adapter(
    cfg: AdapterConfig, vision_width: int, llm_hidden: int, num_patches: int
) -> QFormerAdapter | ProjectAdapter:
    if cfg.kind == "align":
        return QFormerAdapter(cfg, vision_width, llm_hidden)
    if cfg.kind == "project":
        return ProjectAdapter(vision_width, llm_hidden, cfg.projector_hidden, num_patches)
    raise ValueError(f"unknown adapter kind {cfg.kind!r}; use align or project")
