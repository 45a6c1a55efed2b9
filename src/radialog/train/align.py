"""Stage 2 `align`: teach the adapter to turn image features into text-relevant tokens.

`align` adapter (Q-Former, RaDialog v1 / BLIP-2 stage 1, §1.2), on image-report pairs:
- ITC, image-text contrastive: in-batch negatives, similarity = max over the queries of
  cos(query, text) / temperature (learnable, init 0.07), cross-entropy with label smoothing 0.1
  in both directions.
- ITM, image-text matching: one hard negative text per image and one hard negative image per
  text, sampled from the ITC similarities; a 2-way head on the mean of the query positions of
  a joint encoder over [queries; text].
- LM, image-grounded generation: the frozen LLM itself writes the report from the image tokens
  (user turn "<image>", target = report). This also trains the adapter's output projection
  into the LLM's embedding space, which ITC/ITM alone never touch.

Simplifications (documented in docs/TRAINING.md): BLIP-2 shares one BERT between queries and
text; here the text side is a small trainable transformer over the frozen LLM's token
embeddings, and ITM fuses queries and text in its own 1-layer joint encoder. These heads only
serve training and are saved beside the model (`align_heads.safetensors`), not in it.

`project` adapter (RaDialog v2 / LLaVA stage 1): MLP warm-up, only the projector trains, with
the frozen LLM, on report generation (the LM loss alone).

The image encoder stays frozen unless `options.train_encoder` is true (RaDialog freezes it).

Options: itc_weight, itm_weight, lm_weight (1.0 each), text_layers (2), text_max_tokens (96),
embed_dim (128), train_encoder (false), lm_prompt ("<image>"), augment (false), val_batches.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from radialog.model.prompt import IMAGE_PLACEHOLDER, Conversation
from radialog.train.common import StageInputs, freeze_all_but, load_studies, set_train_mode
from radialog.train.data import ImageBank, report_text, study_image_source

log = logging.getLogger(__name__)


class TextEncoder(nn.Module):
    """[CLS] + frozen LLM token embeddings -> small pre-norm transformer -> (B, T+1, d)."""

    def __init__(
        self, llm_embeddings: nn.Embedding, width: int, layers: int, heads: int, max_len: int
    ):
        super().__init__()
        # A plain list, not a submodule: the (large, frozen) LLM embedding must not appear a
        # second time in this module's state dict.
        self._llm_embeddings = [llm_embeddings]
        self.inp = nn.Linear(llm_embeddings.weight.shape[1], width)
        self.cls = nn.Parameter(torch.zeros(1, 1, width))
        self.pos = nn.Parameter(torch.zeros(1, max_len + 1, width))
        nn.init.normal_(self.cls, std=0.02)
        nn.init.normal_(self.pos, std=0.02)
        layer = nn.TransformerEncoderLayer(
            width, heads, 4 * width, dropout=0.1, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """ids, mask (B, T) -> states (B, T+1, d), mask (B, T+1) with CLS first."""
        with torch.no_grad():
            emb = self._llm_embeddings[0](ids)
        x = self.inp(emb.to(self.inp.weight.dtype))
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos[:, : x.shape[1] + 1]
        mask = torch.cat([torch.ones_like(mask[:, :1]), mask], 1)
        x = self.encoder(x, src_key_padding_mask=~mask.bool())
        return self.norm(x), mask


class AlignModule(nn.Module):
    """forward(batch) -> (weighted ITC + ITM + LM loss, parts)."""

    def __init__(self, radialog: Any, opts: dict[str, Any]):
        super().__init__()
        self.radialog = radialog
        self.kind = radialog.config.adapter.kind
        self.lm_weight = float(opts.get("lm_weight", 1.0))
        self.lm_prompt = str(opts.get("lm_prompt", IMAGE_PLACEHOLDER))
        if IMAGE_PLACEHOLDER not in self.lm_prompt:
            raise ValueError(f"options.lm_prompt must contain {IMAGE_PLACEHOLDER}")
        trainable: list[nn.Module] = [radialog.adapter]
        if opts.get("train_encoder", False):
            trainable.append(radialog.encoder)
        if self.kind == "align":
            self.itc_weight = float(opts.get("itc_weight", 1.0))
            self.itm_weight = float(opts.get("itm_weight", 1.0))
            width = radialog.config.adapter.hidden_size
            heads = radialog.config.adapter.num_heads
            embed_dim = int(opts.get("embed_dim", 128))
            self.text = TextEncoder(
                radialog.llm.get_input_embeddings(),
                width,
                int(opts.get("text_layers", 2)),
                heads,
                int(opts.get("text_max_tokens", 96)),
            )
            self.vision_proj = nn.Linear(width, embed_dim)
            self.text_proj = nn.Linear(width, embed_dim)
            fusion = nn.TransformerEncoderLayer(
                width, heads, 4 * width, dropout=0.1, batch_first=True, norm_first=True
            )
            self.itm_fusion = nn.TransformerEncoder(fusion, 1, enable_nested_tensor=False)
            self.itm_head = nn.Linear(width, 2)
            self.log_temp = nn.Parameter(torch.tensor(math.log(0.07)))
            trainable += [
                self.text.inp,
                self.text.encoder,
                self.text.norm,
                self.vision_proj,
                self.text_proj,
                self.itm_fusion,
                self.itm_head,
            ]
        else:
            self.itc_weight = self.itm_weight = 0.0
            if self.lm_weight <= 0:
                raise ValueError(
                    "the project adapter's warm-up trains on the LM loss: lm_weight > 0"
                )
        freeze_all_but(radialog, trainable)
        if self.kind == "align":
            for p in (self.text.cls, self.text.pos, self.log_temp):
                p.requires_grad_(True)

    def heads_state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.state_dict().items() if not k.startswith("radialog.")}

    def forward(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        pixels = batch["pixels"].to(self.radialog.device)
        features = self.radialog.encoder(pixels)
        parts: dict[str, torch.Tensor] = {}
        if self.kind == "align" and (self.itc_weight or self.itm_weight):
            queries = self.radialog.adapter.query_states(features)
            parts.update(self._itc_itm(queries, batch["text_ids"], batch["text_mask"]))
            tokens = self.radialog.adapter.proj(queries)
        else:
            tokens = self.radialog.adapter(features)
        if self.lm_weight:
            convs = [
                Conversation().add_user(self.lm_prompt).add_assistant(t) for t in batch["reports"]
            ]
            out = self.radialog(convs, image_tokens=tokens)
            parts["lm"] = out.loss.float()
        weights = {"itc": self.itc_weight, "itm": self.itm_weight, "lm": self.lm_weight}
        loss = sum(weights[k] * v for k, v in parts.items())
        return loss, {f"loss_{k}": float(v.detach()) for k, v in parts.items()}

    def _itc_itm(
        self, queries: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        ids, mask = ids.to(queries.device), mask.to(queries.device)
        text_states, text_mask = self.text(ids, mask)
        img = F.normalize(self.vision_proj(queries).float(), dim=-1)  # (B, Q, E)
        txt = F.normalize(self.text_proj(text_states[:, 0]).float(), dim=-1)  # (B, E)
        temp = self.log_temp.exp().clamp(0.001, 0.5)
        # sim[i, j] = max over image i's queries of <query, text j>
        sim = torch.einsum("iqe,je->ijq", img, txt).amax(-1) / temp
        target = torch.arange(sim.shape[0], device=sim.device)
        out: dict[str, torch.Tensor] = {}
        b = sim.shape[0]
        out["itc"] = (
            F.cross_entropy(sim, target, label_smoothing=0.1)
            + F.cross_entropy(sim.t(), target, label_smoothing=0.1)
        ) / 2
        if b < 2 or not self.itm_weight:
            return out
        with torch.no_grad():
            eye = torch.eye(b, dtype=torch.bool, device=sim.device)
            w_i2t = F.softmax(sim.float(), 1).masked_fill(eye, 0) + 1e-6
            w_t2i = F.softmax(sim.t().float(), 1).masked_fill(eye, 0) + 1e-6
            w_i2t.masked_fill_(eye, 0)
            w_t2i.masked_fill_(eye, 0)
            neg_text = torch.multinomial(w_i2t, 1).squeeze(1)  # for each image, a hard text
            neg_img = torch.multinomial(w_t2i, 1).squeeze(1)  # for each text, a hard image
        q_all = torch.cat([queries, queries, queries[neg_img]])
        t_all = torch.cat([text_states, text_states[neg_text], text_states])
        m_all = torch.cat([text_mask, text_mask[neg_text], text_mask])
        nq = queries.shape[1]
        joint_mask = torch.cat([torch.ones(m_all.shape[0], nq, device=m_all.device), m_all], 1)
        fused = self.itm_fusion(
            torch.cat([q_all, t_all.to(q_all.dtype)], 1), src_key_padding_mask=~joint_mask.bool()
        )
        logits = self.itm_head(fused[:, :nq].mean(1)).float()
        labels = torch.cat([torch.ones(b), torch.zeros(2 * b)]).long().to(logits.device)
        out["itm"] = F.cross_entropy(logits, labels)
        return out


class AlignTask:
    name = "align"
    selection_metric = None  # RaDialog keeps a fixed epoch; we keep the last step

    def __init__(self, inputs: StageInputs):
        radialog, config, stage = inputs.radialog, inputs.config, inputs.stage
        data, show_progress = inputs.data, inputs.show_progress
        opts = stage.options
        self.augment = bool(opts.get("augment", False))
        self.text_max_tokens = int(opts.get("text_max_tokens", 96))
        self.val_batches = int(opts.get("val_batches", 4))
        self.batch_size = stage.batch_size
        enc = radialog.config.encoder
        train = [
            s for s in load_studies(config, "train", data, stage.train_limit) if report_text(s)
        ]
        val = [s for s in load_studies(config, "val", data, stage.val_limit) if report_text(s)]
        self.train_reports = [report_text(s) for s in train]
        self.val_reports = [report_text(s) for s in val]
        self.train_bank = ImageBank(
            [study_image_source(s) for s in train], enc.resize, enc.crop, show_progress
        )
        self.val_bank = ImageBank(
            [study_image_source(s) for s in val], enc.resize, enc.crop, show_progress
        )
        self.codec = radialog.codec
        self.model = AlignModule(radialog, opts)
        log.info("align (%s): %d train / %d val pairs", self.model.kind, len(train), len(val))

    def train_data(self) -> ImageBank:
        return self.train_bank

    def load_sample(self, index: int, rng: np.random.Generator) -> tuple[torch.Tensor, str]:
        return self.train_bank.get(index, rng, self.augment), self.train_reports[index]

    def collate(self, samples: list[tuple[torch.Tensor, str]]) -> dict[str, Any]:
        reports = [s[1] for s in samples]
        ids = [
            self.codec.encode(r, add_prefix=False)[: self.text_max_tokens]
            or [self.codec.eos_token_id]
            for r in reports
        ]
        length = max(len(x) for x in ids)
        text_ids = torch.full((len(ids), length), self.codec.pad_token_id, dtype=torch.long)
        text_mask = torch.zeros((len(ids), length), dtype=torch.long)
        for i, x in enumerate(ids):
            text_ids[i, : len(x)] = torch.tensor(x)
            text_mask[i, : len(x)] = 1
        return {
            "pixels": torch.stack([s[0] for s in samples]),
            "reports": reports,
            "text_ids": text_ids,
            "text_mask": text_mask,
        }

    def set_train_mode(self, module: nn.Module) -> None:
        set_train_mode(module)

    @torch.no_grad()
    def evaluate(self, module: AlignModule) -> dict[str, float]:
        """Mean losses over the first `val_batches` validation batches, and image->text
        retrieval accuracy within each batch (ITC, align only)."""
        n = len(self.val_bank)
        if n == 0:
            return {}
        totals: dict[str, float] = {}
        hits, count, batches = 0, 0, 0
        for start in range(0, n, self.batch_size):
            if batches >= self.val_batches:
                break
            idx = list(range(start, min(start + self.batch_size, n)))
            batch = self.collate([(self.val_bank.get(i), self.val_reports[i]) for i in idx])
            loss, parts = module(batch)
            totals["loss"] = totals.get("loss", 0.0) + float(loss)
            for k, v in parts.items():
                totals[k] = totals.get(k, 0.0) + v
            if module.kind == "align" and len(idx) > 1:
                feats = module.radialog.encoder(batch["pixels"])
                q = F.normalize(
                    module.vision_proj(module.radialog.adapter.query_states(feats)).float(), dim=-1
                )
                ts, _ = module.text(batch["text_ids"], batch["text_mask"])
                t = F.normalize(module.text_proj(ts[:, 0]).float(), dim=-1)
                sim = torch.einsum("iqe,je->ijq", q, t).amax(-1)
                hits += int((sim.argmax(1) == torch.arange(len(idx))).sum())
                count += len(idx)
            batches += 1
        out = {k: v / batches for k, v in totals.items()}
        if count:
            out["i2t_acc"] = hits / count
        return out

    def save_model(self, module: AlignModule, directory: Path) -> None:
        module.radialog.is_trained = True
        module.radialog.save_pretrained(directory)

    def finalize(self, module: AlignModule, out: Path, best_dir: Path | None) -> dict[str, Any]:
        if module.kind == "align":
            from safetensors.torch import save_file

            heads = {k: v.detach().cpu().contiguous() for k, v in module.heads_state_dict().items()}
            save_file(heads, str(out / "align_heads.safetensors"))
        return {}
