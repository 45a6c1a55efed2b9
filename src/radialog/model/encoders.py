"""Image encoders behind one interface: pixels (B, 3, H, W) in [0, 1] -> feature map (B, C, h, w).

- `BioVilTEncoder`: BioViL-T (ResNet-50 + ViT pooler + missing-prior embedding), state-dict keys
  identical to hi-ml-multimodal's `ImageModel(RESNET50_MULTI_IMAGE, joint_feature_size=128)`, so
  released RaDialog / BioViL-T weights load without renaming.
- `HFVisionEncoder`: any Hugging Face vision backbone from a local directory.
- `SmallCNNEncoder`: a small CNN for CPU training of the embedded default model.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from radialog.errors import ModelNotFoundError
from radialog.model.config import EncoderConfig


class ImageEncoder(nn.Module):
    """Base class: `forward(pixels) -> (B, out_channels, h, w)`."""

    out_channels: int

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    @torch.no_grad()
    def grid_size(self, crop: int) -> tuple[int, int]:
        """Spatial size of the feature map for a square input of `crop` pixels."""
        was_training = self.training
        self.eval()
        try:
            device = next(self.parameters()).device
            out = self(torch.zeros(1, 3, crop, crop, device=device))
        finally:
            self.train(was_training)
        return int(out.shape[-2]), int(out.shape[-1])


# --------------------------------------------------------------------------------------------
# BioViL-T
# --------------------------------------------------------------------------------------------


class _DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch per sample while training."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class _PoolerAttention(nn.Module):
    """Multi-head attention with separate q/k/v projections (no bias) and an output projection."""

    def __init__(self, dim: int, num_heads: int, attn_drop: float, proj_drop: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.proj_q = nn.Linear(dim, dim, bias=False)
        self.proj_k = nn.Linear(dim, dim, bias=False)
        self.proj_v = nn.Linear(dim, dim, bias=False)
        self.proj = nn.Linear(dim, dim)
        self.attn_drop = attn_drop
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        b, n, c = v.shape
        h = self.num_heads

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(b, n, h, c // h).transpose(1, 2)

        out = F.scaled_dot_product_attention(
            split(self.proj_q(q)),
            split(self.proj_k(k)),
            split(self.proj_v(v)),
            dropout_p=self.attn_drop if self.training else 0.0,
        )
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(b, n, c)))


class _PoolerMlp(nn.Module):
    def __init__(self, dim: int, hidden: int, drop: float) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(F.gelu(self.fc1(x)))))


class _PoolerBlock(nn.Module):
    """Pre-norm transformer block; position/type embeddings are added to q and k (DETR style)."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = _PoolerAttention(dim, num_heads, attn_drop=0.1, proj_drop=0.1)
        self.drop_path = _DropPath(0.25)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = _PoolerMlp(dim, dim, drop=0.1)

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        qk = self.norm1(x) + pos
        # The value path uses the embedded input too, as in BioViL-T (self-attention on qk).
        x = x + self.drop_path(self.attn(qk, qk, qk))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def sine_position_embedding(height: int, width: int, dim: int) -> torch.Tensor:
    """2-D normalised sine/cosine embedding (1, h*w, dim): first half y, second half x."""
    half = dim // 2
    scale = 2 * math.pi
    ys = torch.arange(1, height + 1, dtype=torch.float32) / (height + 1e-6) * scale
    xs = torch.arange(1, width + 1, dtype=torch.float32) / (width + 1e-6) * scale
    y_embed = ys[:, None].expand(height, width)
    x_embed = xs[None, :].expand(height, width)
    dim_t = 10000 ** (2 * (torch.arange(half, dtype=torch.float32) // 2) / half)

    def encode(e: torch.Tensor) -> torch.Tensor:
        p = e[:, :, None] / dim_t
        return torch.stack((p[:, :, 0::2].sin(), p[:, :, 1::2].cos()), dim=3).flatten(2)

    pos = torch.cat((encode(y_embed), encode(x_embed)), dim=2)
    return pos.reshape(1, height * width, 2 * half)


class VisionTransformerPooler(nn.Module):
    """Transformer over the patch grid of the current (and optionally prior) image."""

    def __init__(
        self, dim: int, grid: tuple[int, int], num_heads: int = 8, num_blocks: int = 3
    ) -> None:
        super().__init__()
        self.grid = grid
        self.blocks = nn.ModuleList(_PoolerBlock(dim, num_heads) for _ in range(num_blocks))
        self.norm_post = nn.LayerNorm(dim, eps=1e-6)
        # Row 0: current image, row 1: prior image.
        self.type_embed = nn.Parameter(torch.zeros(2, 1, dim))
        self.pos_drop = nn.Dropout(0.1)
        self.register_buffer(
            "pos_embed", sine_position_embedding(grid[0], grid[1], dim), persistent=False
        )
        nn.init.trunc_normal_(self.type_embed, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, current: torch.Tensor, previous: torch.Tensor | None = None) -> torch.Tensor:
        b, c, h, w = current.shape
        if (h, w) != self.grid:
            raise ValueError(f"ViT pooler expects a {self.grid} patch grid, got {(h, w)}")
        n = h * w
        x = current.flatten(2).transpose(1, 2)
        pos = self.pos_embed.expand(b, -1, -1) + self.type_embed[0]
        if previous is not None:
            x = torch.cat((x, previous.flatten(2).transpose(1, 2)), dim=1)
            pos = torch.cat((pos, self.pos_embed.expand(b, -1, -1) + self.type_embed[1]), dim=1)
        x = self.pos_drop(x)
        for block in self.blocks:
            x = block(x, pos)
        x = self.norm_post(x)
        return x[:, :n].transpose(1, 2).reshape(b, c, h, w)


class _ResNetTrunk(nn.Module):
    """torchvision ResNet-50 (fc kept for state-dict compatibility) returning layer4 features."""

    def __init__(self) -> None:
        super().__init__()
        from torchvision.models import resnet50

        self.encoder = resnet50(weights=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.encoder
        x = r.maxpool(r.relu(r.bn1(r.conv1(x))))
        return r.layer4(r.layer3(r.layer2(r.layer1(x))))


class _MultiImageTrunk(_ResNetTrunk):
    """ResNet-50 -> 1x1 conv 2048->256 -> [static, difference] features (512 channels)."""

    def __init__(self, grid: tuple[int, int] = (14, 14), dim: int = 256) -> None:
        super().__init__()
        self.backbone_to_vit = nn.Conv2d(2048, dim, kernel_size=1, bias=False)
        self.vit_pooler = VisionTransformerPooler(dim, grid)
        # Stands in for the prior-image difference features; RaDialog never passes a prior.
        self.missing_previous_emb = nn.Parameter(torch.zeros(1, dim, 1, 1))
        nn.init.trunc_normal_(self.missing_previous_emb, std=0.02)

    def forward(self, x: torch.Tensor, previous: torch.Tensor | None = None) -> torch.Tensor:
        b = x.shape[0]
        if previous is None:
            patch = self.backbone_to_vit(super().forward(x))
            diff = self.missing_previous_emb.expand(b, -1, patch.shape[2], patch.shape[3])
        else:
            both = self.backbone_to_vit(super().forward(torch.cat((x, previous), dim=0)))
            patch, prev = both[:b], both[b:]
            diff = self.vit_pooler(patch, prev)
        return torch.cat((patch, diff), dim=1)


class _ConvProjector(nn.Module):
    """1x1 Conv (no bias) -> BatchNorm -> ReLU -> 1x1 Conv, as BioViL-T's projector."""

    def __init__(self, in_ch: int, out_ch: int, hidden: int) -> None:
        super().__init__()
        self.model = nn.Sequential(
            nn.Conv2d(in_ch, hidden, kernel_size=1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, out_ch, kernel_size=1, bias=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class BioVilTEncoder(ImageEncoder):
    """BioViL-T image model. `output="patch"`: 512 x 14 x 14 at 448 px (RaDialog v2 report branch);
    `output="projected"`: joint_feature_size channels (the findings-classifier branch).

    `state_dict()` keys are exactly those of hi-ml-multimodal's ImageModel (372 entries).
    """

    def __init__(self, output: str = "patch", joint_feature_size: int = 128) -> None:
        super().__init__()
        if output not in ("patch", "projected"):
            raise ValueError(f"BioViL-T output must be 'patch' or 'projected', got {output!r}")
        self.output = output
        self.encoder = _MultiImageTrunk()
        self.projector = _ConvProjector(512, joint_feature_size, joint_feature_size)
        self.out_channels = 512 if output == "patch" else joint_feature_size

    def forward(self, pixels: torch.Tensor, previous: torch.Tensor | None = None) -> torch.Tensor:
        patch = self.encoder(pixels, previous)
        return patch if self.output == "patch" else self.projector(patch)


# --------------------------------------------------------------------------------------------
# Hugging Face vision backbones
# --------------------------------------------------------------------------------------------


class HFVisionEncoder(ImageEncoder):
    """A local Hugging Face vision model (AutoModel). Token outputs (B, L, C) are reshaped to a
    square grid after dropping leading non-patch tokens (CLS/register)."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        path = Path(path)
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(
                f"vision model directory {path} has no config.json; give a local Hugging Face model dir"
            )
        from transformers import AutoConfig, AutoModel

        config = AutoConfig.from_pretrained(path)
        model = AutoModel.from_pretrained(path)
        # Vision-language checkpoints (CLIP, SigLIP) wrap the vision tower.
        self.model = getattr(model, "vision_model", model)
        vision_cfg = getattr(config, "vision_config", config)
        hidden = getattr(vision_cfg, "hidden_size", None)
        if hidden is None:
            sizes = getattr(vision_cfg, "hidden_sizes", None)
            hidden = sizes[-1] if sizes else None
        if hidden is None:
            raise ModelNotFoundError(f"cannot tell the feature width of the vision model in {path}")
        self.out_channels = int(hidden)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        out = self.model(pixel_values=pixels).last_hidden_state
        if out.ndim == 4:
            return out
        b, n, c = out.shape
        side = math.isqrt(n)
        while side * side != n and n > 0:  # drop CLS / register tokens at the front
            n -= 1
            side = math.isqrt(n)
        tokens = out[:, out.shape[1] - n :]
        return tokens.transpose(1, 2).reshape(b, c, side, side)


# --------------------------------------------------------------------------------------------
# Small CNN
# --------------------------------------------------------------------------------------------


def _conv_bn(in_ch: int, out_ch: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


class SmallCNNEncoder(ImageEncoder):
    """Stem (stride 4) + one stage per entry of `channels`, each halving the resolution except the
    first: total stride 4 * 2**(len(channels)-1). With [32, 64, 128, 256] a 256 px input gives
    256 x 8 x 8 (~1.2 M parameters)."""

    def __init__(self, channels: list[int] | tuple[int, ...] = (32, 64, 128, 256)) -> None:
        super().__init__()
        channels = list(channels)
        if not channels:
            raise ValueError("small_cnn needs at least one stage")
        self.stem = nn.Sequential(
            _conv_bn(3, channels[0] // 2, 2), _conv_bn(channels[0] // 2, channels[0], 2)
        )
        stages = []
        in_ch = channels[0]
        for i, ch in enumerate(channels):
            stride = 1 if i == 0 else 2
            stages.append(nn.Sequential(_conv_bn(in_ch, ch, stride), _conv_bn(ch, ch, 1)))
            in_ch = ch
        self.stages = nn.Sequential(*stages)
        self.out_channels = channels[-1]

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(pixels))


def build_encoder(cfg: EncoderConfig) -> ImageEncoder:
    """Construct an encoder (random weights) from its config."""
    if cfg.kind == "biovil_t":
        return BioVilTEncoder(output=cfg.output, joint_feature_size=cfg.joint_feature_size)
    if cfg.kind == "hf":
        if not cfg.path:
            raise ModelNotFoundError("encoder kind 'hf' needs encoder.path (a local model dir)")
        return HFVisionEncoder(cfg.path)
    if cfg.kind == "small_cnn":
        return SmallCNNEncoder(cfg.channels)
    raise ValueError(f"unknown encoder kind {cfg.kind!r}; use biovil_t, hf or small_cnn")
