"""RadialogModel: image encoder -> adapter -> image tokens for the LLM, plus the findings classifier.

Images are explicit tensors: the `<image>` placeholder in a prompt expands to the adapter's N image
embeddings, spliced into `inputs_embeds` between the token embeddings of the text around it (no
magic token ids). One image per conversation; the placeholder may appear at most once.

Saved layout (`save_pretrained`): `config.json` + `model.safetensors` (encoder, adapter,
classifier encoder/head and its thresholds: the trained parts only) + `adapter/` (peft LoRA)
+ optionally `gate/` (the input gate, `radialog.gate`; without it the model loads with the
gate off). The base LLM is referenced through `config.llm.source`, never copied.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from radialog.consistency import (
    Consistency,
    check_report,
    default_labeler,
    repair_instruction,
)
from radialog.errors import (
    CheckpointError,
    InvalidImageError,
    InvalidInputError,
    ModelNotFoundError,
)
from radialog.labels import CHEXPERT_LABELS, clean_no_finding, positives_from_probabilities
from radialog.model import lazy_llm
from radialog.model.adapters import build_adapter
from radialog.model.classifier import FindingsHead
from radialog.model.config import (
    GENERATION_BACKENDS,
    EncoderConfig,
    LoraSettings,
    RadialogConfig,
    available_configs,
    load_named_config,
)
from radialog.model.decoding import (
    FastOptions,
    UnsupportedModel,
    decoder_for,
    weights_fingerprint,
)
from radialog.model.encoders import build_encoder
from radialog.model.generation import (
    DecodeCall,
    GenerationOptions,
    decode_with,
    hf_generate,
    stopping_criteria,
)
from radialog.model.lazy_llm import Keys, LazyLLM
from radialog.model.llamacpp import LlamaCppOptions, llamacpp_available
from radialog.model.llm import (
    TokenCodec,
    apply_lora,
    load_llm,
    load_llm_tokenizer,
    load_lora,
    resolve_source,
    widen_lora,
)
from radialog.model.prompt import (
    IMAGE_PLACEHOLDER,
    Conversation,
    findings_text,
    report_conversation,
    text_only,
)
from radialog.model.repetition import cut_repeated_sentences
from radialog.model.report import Report, with_total
from radialog.repair import finding_sentence, splice_report

log = logging.getLogger(__name__)

IGNORE_INDEX = -100
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
ADAPTER_DIR = "adapter"


def weights_root() -> Path:
    """Directory of embedded trained models (`src/radialog/weights/<name>/`)."""
    return Path(__file__).resolve().parents[1] / "weights"


@dataclass
class ImageAnalysis:
    """What the model sees in one image: classifier output and the LLM image tokens."""

    probabilities: torch.Tensor  # (14,)
    predicted: list[str]
    image_tokens: torch.Tensor  # (1, N, llm_hidden)
    timings: dict[str, float]

    @property
    def findings(self) -> dict[str, float]:
        return dict(zip(CHEXPERT_LABELS, self.probabilities.tolist(), strict=True))


def _cast_safetensors(path: Path, dtype: torch.dtype) -> None:
    """Rewrite a safetensors file with its floating-point tensors in `dtype` (in place; the
    caller writes into a temporary directory)."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    state = {k: _stored(v, dtype) for k, v in load_file(str(path)).items()}
    save_file(state, str(path), metadata=meta)


def _stored(tensor: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    tensor = tensor.detach().cpu()
    if dtype is not None and tensor.is_floating_point():
        tensor = tensor.to(dtype)
    return tensor.contiguous()


class RadialogModel(nn.Module):
    """See the module docstring. Build with `from_config` or `from_pretrained`."""

    # Text generation: "fast" (radialog.model.decoding, same greedy output as "hf"), "hf"
    # (transformers generate()), "llamacpp" (radialog.model.llamacpp: the LLM's GGUF with LoRA
    # merged, run by llama.cpp; optional dependency) or "auto": for a CPU LLM under 2B parameters,
    # llamacpp when it is installed and the LLM came from a GGUF file, else fast (both keep
    # their own copy of the weights); hf otherwise. `fast_options`: bf16/int8 weights.
    generation_backend: str = "auto"
    # Stop a reply once a finished sentence repeats an earlier one, and cut the repeat off
    # (`radialog.model.repetition`): small LLMs otherwise loop until the token limit.
    stop_repeated_sentences: bool = True
    fast_options: FastOptions = FastOptions()
    llamacpp_options: LlamaCppOptions = LlamaCppOptions()

    def __init__(
        self,
        config: RadialogConfig,
        *,
        llm: Any = None,
        tokenizer: Any = None,
        adapter_dir: Path | None = None,
        trainable_lora: bool = True,
        lazy: LazyLLM | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.is_trained = False
        # The input gate (radialog.gate.InputGate) saved with the model, or None (no check).
        self.gate: Any = None
        # Set: the torch LLM is not built yet (radialog.model.lazy_llm); `llm` builds it.
        self._lazy = lazy
        self._lazy_keys: Keys | None = None  # set by _load_dir: where to record the parts
        self._loaded_weights: Any = None  # the LLM's weights_fingerprint when loaded
        if lazy is not None:
            tokenizer = lazy.tokenizer
            llm_hidden = int(lazy.table.shape[1])
        else:
            if llm is None:
                llm, tokenizer = load_llm(config.llm)
            llm_hidden = int(llm.get_input_embeddings().weight.shape[1])

        # Seeded so the untrained parts are reproducible from the config alone.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.encoder = build_encoder(config.encoder)
            grid = self.token_grid(config.encoder, self.encoder)
            self.adapter = build_adapter(
                config.adapter, self.encoder.out_channels, llm_hidden, grid[0] * grid[1]
            )
            if config.classifier.shared_encoder or config.classifier.encoder is None:
                self.classifier_encoder = None
                cls_channels = self.encoder.out_channels
            else:
                self.classifier_encoder = build_encoder(config.classifier.encoder)
                cls_channels = self.classifier_encoder.out_channels
            self.classifier = FindingsHead(config.classifier, cls_channels)

        if lazy is None:
            self.llm = self._with_lora(llm, adapter_dir, trainable_lora)
        self.tokenizer = tokenizer
        self.codec = TokenCodec(tokenizer)
        for enc, enc_cfg in self._encoders():
            if not enc_cfg.trainable:
                enc.requires_grad_(False)
        self.eval()

    def _with_lora(self, llm: Any, adapter_dir: Path | None, trainable_lora: bool) -> Any:
        if adapter_dir is not None:
            llm = load_lora(llm, adapter_dir)
            if trainable_lora:
                for name, p in llm.named_parameters():
                    if "lora_" in name:
                        p.requires_grad_(True)
        elif self.config.llm.lora is not None:
            llm = apply_lora(llm, self.config.llm.lora)
        return llm

    # ------------------------------------------------------------------ the LLM, built lazily

    @property
    def llm(self) -> Any:
        """The torch LLM (with LoRA); a model loaded without it builds it here, on first use."""
        modules = self.__dict__["_modules"]
        if "llm" not in modules:
            self._build_llm()
        return modules["llm"]

    @llm.setter
    def llm(self, value: Any) -> None:  # Modules are registered by nn.Module.__setattr__
        if value is not None and not isinstance(value, nn.Module):
            raise TypeError(f"the LLM must be a torch Module, not {type(value).__name__}")
        self._modules["llm"] = value

    def _build_llm(self) -> None:
        lazy = self._lazy
        if lazy is None:
            raise RuntimeError("this model has no LLM")
        with lazy.lock:
            if self._lazy is None:  # another thread built it
                return
            try:
                # First use may come inside `generate` (inference mode): weights built there
                # would be inference tensors, which later training or fingerprints reject.
                with torch.inference_mode(False):
                    llm, tokenizer = load_llm(self.config.llm)
                    llm = self._with_lora(llm, lazy.adapter_dir, trainable_lora=False)
            except AttributeError as exc:  # would read as "no attribute 'llm'"
                raise RuntimeError(f"building the LLM failed: {exc}") from exc
            llm.train(self.training)
            if getattr(self.tokenizer, "_full", False) is None:
                self.tokenizer._full = tokenizer  # the light tokenizer's fallback, already here
            self._modules["llm"] = llm  # not add_module: its hasattr would call `llm`
            self._loaded_weights = weights_fingerprint(llm)
            self._lazy = None

    # Whatever walks the modules, parameters or state needs the real LLM: build it first.
    def named_children(self) -> Any:
        if self._lazy is not None:
            self._build_llm()
        return super().named_children()

    def named_modules(self, *args: Any, **kwargs: Any) -> Any:
        if self._lazy is not None:
            self._build_llm()
        return super().named_modules(*args, **kwargs)

    def state_dict(self, *args: Any, **kwargs: Any) -> Any:
        if self._lazy is not None:
            self._build_llm()
        return super().state_dict(*args, **kwargs)

    def load_state_dict(self, *args: Any, **kwargs: Any) -> Any:
        if self._lazy is not None:
            self._build_llm()
        return super().load_state_dict(*args, **kwargs)

    def _input_embeddings(self) -> nn.Module:
        """The LLM's input embedding layer (without building a lazily loaded LLM)."""
        if self._lazy is not None:
            return self._lazy.embedding
        return self.llm.get_input_embeddings()

    def _encoders(self) -> list[tuple[nn.Module, EncoderConfig]]:
        pairs = [(self.encoder, self.config.encoder)]
        if self.classifier_encoder is not None and self.config.classifier.encoder is not None:
            pairs.append((self.classifier_encoder, self.config.classifier.encoder))
        return pairs

    def train(self, mode: bool = True) -> RadialogModel:
        """As nn.Module.train, but frozen encoders (`trainable: false`) stay in eval mode so
        their BatchNorm statistics do not drift. An LLM not built yet takes the mode when
        it is built."""
        if self._lazy is not None:
            if not isinstance(mode, bool):
                raise ValueError("training mode is expected to be boolean")
            self.training = mode
            for module in self._modules.values():
                module.train(mode)
        else:
            super().train(mode)
        for enc, enc_cfg in self._encoders():
            if not enc_cfg.trainable:
                enc.eval()
        return self

    @staticmethod
    def token_grid(cfg: EncoderConfig, encoder: nn.Module) -> tuple[int, int]:
        """(rows, columns) of the patch grid the encoder gives for its crop size."""
        if cfg.kind == "biovil_t":
            # Five stride-2 stages, each ceil(s / 2): 448 -> 14, 488 -> 16. Avoids a ResNet-50
            # forward pass at build time.
            s = cfg.crop
            for _ in range(5):
                s = (s + 1) // 2
            return s, s
        return encoder.grid_size(cfg.crop)

    # ------------------------------------------------------------------ construction / IO

    @classmethod
    def from_config(
        cls, name_or_cfg: str | RadialogConfig, *, llm_source: str | None = None
    ) -> RadialogModel:
        """An untrained model (random encoder/adapter/classifier, base LLM + fresh LoRA)."""
        cfg = load_named_config(name_or_cfg) if isinstance(name_or_cfg, str) else name_or_cfg
        if llm_source:
            cfg.llm.source = llm_source
        model = cls(cfg)
        model.is_trained = False
        return model

    @classmethod
    def from_pretrained(
        cls,
        dir_or_name: str | Path,
        *,
        llm_source: str | None = None,
        trainable: bool = False,
    ) -> RadialogModel:
        """Load a saved model directory, or a name: `radialog-mini` resolves to the embedded
        weights if present, else the untrained default assembly (`is_trained` False)."""
        path = Path(dir_or_name).expanduser()
        if path.is_dir():
            return cls._load_dir(path, llm_source=llm_source, trainable=trainable)
        name = str(dir_or_name)
        embedded = weights_root() / name
        if (embedded / CONFIG_NAME).is_file():
            return cls._load_dir(embedded, llm_source=llm_source, trainable=trainable)
        if name in available_configs():
            log.warning("no trained weights for %s: building the untrained model", name)
            return cls.from_config(name, llm_source=llm_source)
        raise ModelNotFoundError(
            f"model {name!r} is neither a saved model directory nor a known model name "
            f"({', '.join(available_configs())}); train one or pass the directory of a saved model"
        )

    @classmethod
    def _load_dir(cls, path: Path, *, llm_source: str | None, trainable: bool) -> RadialogModel:
        from safetensors import safe_open
        from safetensors.torch import load_file

        if not (path / CONFIG_NAME).is_file() or not (path / WEIGHTS_NAME).is_file():
            raise ModelNotFoundError(
                f"{path} is not a saved radialog model (needs {CONFIG_NAME} and {WEIGHTS_NAME})"
            )
        data = json.loads((path / CONFIG_NAME).read_text(encoding="utf-8"))
        cfg = RadialogConfig.from_dict(data)
        if llm_source:
            cfg.llm.source = llm_source
        adapter = path / ADAPTER_DIR
        adapter_dir = adapter if (adapter / "adapter_config.json").is_file() else None
        # Not for training: the llama.cpp path may start without the torch LLM (lazy_llm).
        keys = None if trainable else lazy_llm.keys_for(cfg.llm, adapter_dir)
        lazy = lazy_llm.find(keys, adapter_dir, lambda: load_llm_tokenizer(cfg.llm))
        model = cls(cfg, adapter_dir=adapter_dir, trainable_lora=trainable, lazy=lazy)
        model._lazy_keys = keys
        if lazy is None and keys is not None:
            model._loaded_weights = weights_fingerprint(model.llm)
        state = load_file(str(path / WEIGHTS_NAME))
        missing, unexpected = model.trained_modules().load_state_dict(state, strict=False)
        if missing or unexpected:
            raise CheckpointError(
                f"{path / WEIGHTS_NAME} does not match config {cfg.name!r}: "
                f"missing {missing[:5]}, unexpected {unexpected[:5]}"
            )
        with safe_open(str(path / WEIGHTS_NAME), framework="pt") as f:
            meta = f.metadata() or {}
        model.is_trained = meta.get("is_trained", "true") == "true"
        from radialog.gate import InputGate

        model.gate = InputGate.for_model_dir(path)
        return model

    def widen_lora(self, settings: LoraSettings) -> None:
        """Train with wider LoRA adapters from here on (same outputs at the start; see
        `radialog.model.llm.widen_lora`). No-op when the settings are already these."""
        old = self.config.llm.lora
        if old is None or not hasattr(self.llm, "peft_config"):
            raise InvalidInputError("this model has no LoRA adapters to widen")
        if old == settings:
            return
        self.llm = widen_lora(self.llm, old, settings)
        self.config.llm.lora = settings
        log.info(
            "LoRA widened: r=%d on %s -> r=%d on %s",
            old.r,
            old.target_modules,
            settings.r,
            settings.target_modules,
        )

    def separate_classifier_encoder(self) -> bool:
        """Give the findings classifier its own image encoder, a copy of the shared one, so that
        training the classifier further leaves the report branch's image tokens (which the
        adapter and LoRA were trained on) exactly as they are. False when it already has one."""
        if self.classifier_encoder is not None:
            return False
        self.classifier_encoder = copy.deepcopy(self.encoder)
        self.config.classifier.encoder = copy.deepcopy(self.config.encoder)
        self.config.classifier.shared_encoder = False
        return True

    def trained_modules(self) -> nn.ModuleDict:
        """The image-side parts a checkpoint holds (encoders, adapter, classifier), by name."""
        parts = {"encoder": self.encoder, "adapter": self.adapter, "classifier": self.classifier}
        if self.classifier_encoder is not None:
            parts["classifier_encoder"] = self.classifier_encoder
        return nn.ModuleDict(parts)

    def save_pretrained(self, out_dir: str | Path, *, dtype: torch.dtype | None = None) -> Path:
        """Write config + trained parts + LoRA adapter atomically (temp dir, then rename).

        `dtype` (e.g. torch.float16) stores the floating-point trained weights in that type to
        halve the files; loading casts them back to the model's own dtype.
        """
        from safetensors.torch import save_file

        from radialog.fileio import atomic_dir

        def fill(tmp: Path) -> None:
            (tmp / CONFIG_NAME).write_text(self.config.to_json(), encoding="utf-8")
            state = {k: _stored(v, dtype) for k, v in self.trained_modules().state_dict().items()}
            save_file(
                state,
                str(tmp / WEIGHTS_NAME),
                metadata={"is_trained": str(self.is_trained).lower()},
            )
            if hasattr(self.llm, "peft_config"):
                # Embeddings are never resized; "auto" would probe the HF hub for the base config.
                self.llm.save_pretrained(
                    str(tmp / ADAPTER_DIR), safe_serialization=True, save_embedding_layers=False
                )
                if dtype is not None:
                    _cast_safetensors(tmp / ADAPTER_DIR / "adapter_model.safetensors", dtype)
            if self.gate is not None:
                from radialog.gate import GATE_DIR

                self.gate.save_pretrained(tmp / GATE_DIR)

        return atomic_dir(out_dir, fill)

    # ------------------------------------------------------------------ properties

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def device(self) -> torch.device:
        return next(self.encoder.parameters()).device

    @property
    def num_image_tokens(self) -> int:
        return int(self.adapter.num_image_tokens)

    @property
    def llm_hidden_size(self) -> int:
        return int(self._input_embeddings().weight.shape[1])

    @property
    def thresholds(self) -> torch.Tensor:
        return self.classifier.thresholds

    def image_transform(self) -> Any:
        """The report encoder's preprocessing (radialog.imaging.XRayTransform)."""
        from radialog.imaging.preprocess import XRayTransform

        return XRayTransform(resize=self.config.encoder.resize, crop=self.config.encoder.crop)

    def classifier_transform(self) -> Any:
        from radialog.imaging.preprocess import XRayTransform

        enc = self.config.classifier_encoder
        return XRayTransform(resize=enc.resize, crop=enc.crop)

    # ------------------------------------------------------------------ image branch

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] at the encoder crop -> image tokens (B, N, llm_hidden)."""
        features = self.encoder(pixels.to(self.device))
        tokens = self.adapter(features)
        return tokens.to(self._input_embeddings().weight.dtype)

    def classifier_logits(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) at the classifier crop -> logits (B, 14), differentiable (training)."""
        encoder = self.classifier_encoder if self.classifier_encoder is not None else self.encoder
        return self.classifier(encoder(pixels.to(self.device)))

    @torch.inference_mode()
    def predict_findings(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) at the classifier crop -> sigmoid probabilities (B, 14), canonical order."""
        return torch.sigmoid(self.classifier_logits(pixels).float())

    def predicted_labels(self, probabilities: torch.Tensor | Sequence[float]) -> list[str]:
        """Labels above their threshold, with RaDialog's No-Finding rule applied."""
        probs = [float(p) for p in probabilities]
        return clean_no_finding(positives_from_probabilities(probs, self.thresholds.tolist()))

    # ------------------------------------------------------------------ text branch

    def _target_ids(
        self, target: str, emphasis: Sequence[str], weight: float
    ) -> tuple[list[int], list[float]]:
        """Target ids + EOS and a loss weight per id: `weight` on the tokens of the `emphasis`
        sentences found in the target, 1 elsewhere. Each emphasised span starts at the space
        before its sentence, so the pieces tokenize as the whole text does."""
        marks = sorted(
            {
                (start, start + len(sentence))
                for sentence in emphasis
                if sentence and (start := target.find(sentence)) >= 0
            }
        )
        pieces: list[tuple[str, float]] = []
        pos = 0
        for start, end in marks:
            while start > pos and target[start - 1].isspace():
                start -= 1
            if start < pos:
                continue  # overlaps the previous span
            pieces += [(target[pos:start], 1.0), (target[start:end], weight)]
            pos = end
        pieces.append((target[pos:], 1.0))
        ids: list[int] = []
        weights: list[float] = []
        for text, w in pieces:
            if text:
                piece = self.codec.encode(text, add_prefix=False)
                ids += piece
                weights += [w] * len(piece)
        return ids + [self.codec.eos_token_id], weights + [1.0]

    def _sequence(
        self,
        conversation: Conversation,
        image_tokens: torch.Tensor | None,
        train: bool,
        emphasis: Sequence[str] = (),
        emphasis_weight: float = 1.0,
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int] | None, torch.Tensor | None]:
        """(embeddings (L, H), labels (L,), image span, target loss weights (L,) or None)."""
        if train:
            prompt, target = conversation.training_pair()
        else:
            prompt, target = conversation.render(), None
        segments = self.codec.encode_segments(prompt)
        if len(segments) > 2:
            raise ValueError(f"a conversation may contain {IMAGE_PLACEHOLDER} at most once")
        if len(segments) == 2 and image_tokens is None:
            raise ValueError(f"the prompt contains {IMAGE_PLACEHOLDER} but no image was given")
        embed = self._input_embeddings()
        device = embed.weight.device
        parts: list[torch.Tensor] = []
        labels: list[torch.Tensor] = []
        span = None
        for i, ids in enumerate(segments):
            if i == 1:
                img = image_tokens.to(device=device, dtype=embed.weight.dtype)
                start = sum(p.shape[0] for p in parts)
                span = (start, start + img.shape[0])
                parts.append(img)
                labels.append(torch.full((img.shape[0],), IGNORE_INDEX, device=device))
            t = torch.tensor(ids, dtype=torch.long, device=device)
            parts.append(embed(t))
            labels.append(torch.full_like(t, IGNORE_INDEX))
        weights = None
        if target is not None:
            ids, target_weights = self._target_ids(target, emphasis, emphasis_weight)
            t = torch.tensor(ids, dtype=torch.long, device=device)
            n_prompt = sum(p.shape[0] for p in parts)
            weights = torch.cat(
                [torch.zeros(n_prompt, device=device), torch.tensor(target_weights, device=device)]
            )
            parts.append(embed(t))
            labels.append(t)
        return torch.cat(parts), torch.cat(labels), span, weights

    def prepare_inputs(
        self,
        conversations: Sequence[Conversation],
        image_tokens: torch.Tensor | Sequence[torch.Tensor | None] | None = None,
        *,
        images: torch.Tensor | None = None,
        train: bool = True,
        return_spans: bool = False,
        emphasis: Sequence[Sequence[str]] | None = None,
        emphasis_weight: float = 1.0,
    ) -> dict[str, Any]:
        """Batch conversations into LLM inputs with image embeddings spliced in.

        `images` (B, 3, H, W) are encoded here (gradients flow into encoder/adapter);
        or pass precomputed `image_tokens` (B, N, H) / a list with None for text-only samples.
        `train=True`: the target is each conversation's last assistant turn (+ EOS); labels are
        -100 elsewhere; right padding. `train=False`: open prompt for generation; left padding.
        Sequences longer than `config.llm.max_length` are truncated (right for training, left
        for generation). Returns dict(inputs_embeds, attention_mask[, labels][, image_spans]).
        """
        if images is not None:
            image_tokens = self.encode_image(images)
        if image_tokens is None:
            per_sample: list[torch.Tensor | None] = [None] * len(conversations)
        else:
            per_sample = list(image_tokens)
            if len(per_sample) != len(conversations):
                raise ValueError("need one image per conversation")
        emphasis = emphasis if emphasis is not None else [()] * len(conversations)
        seqs = [
            self._sequence(c, t, train, e, emphasis_weight)
            for c, t, e in zip(conversations, per_sample, emphasis, strict=True)
        ]
        max_len = self.config.llm.max_length
        trimmed = []
        loss_weights = []
        for emb, lab, span, w in seqs:
            if emb.shape[0] > max_len:
                if train:
                    emb, lab, w = emb[:max_len], lab[:max_len], w[:max_len]
                else:
                    cut = emb.shape[0] - max_len
                    emb, lab = emb[cut:], lab[cut:]
                    span = None if span is None else (span[0] - cut, span[1] - cut)
            trimmed.append((emb, lab, span))
            loss_weights.append(w)
        length = max(e.shape[0] for e, _, _ in trimmed)
        embed = self._input_embeddings()
        pad_vec = embed(torch.tensor([self.codec.pad_token_id], device=embed.weight.device))[0]
        batch_e, batch_m, batch_l, spans = [], [], [], []
        for emb, lab, span in trimmed:
            n_pad = length - emb.shape[0]
            pad_e = pad_vec.expand(n_pad, -1)
            pad_l = torch.full((n_pad,), IGNORE_INDEX, dtype=lab.dtype, device=lab.device)
            ones = torch.ones(emb.shape[0], dtype=torch.long, device=lab.device)
            zeros = torch.zeros(n_pad, dtype=torch.long, device=lab.device)
            if train:
                batch_e.append(torch.cat([emb, pad_e]))
                batch_l.append(torch.cat([lab, pad_l]))
                batch_m.append(torch.cat([ones, zeros]))
                spans.append(span)
            else:
                batch_e.append(torch.cat([pad_e, emb]))
                batch_l.append(torch.cat([pad_l, lab]))
                batch_m.append(torch.cat([zeros, ones]))
                spans.append(None if span is None else (span[0] + n_pad, span[1] + n_pad))
        out: dict[str, Any] = {
            "inputs_embeds": torch.stack(batch_e),
            "attention_mask": torch.stack(batch_m),
        }
        if train:
            out["labels"] = torch.stack(batch_l)
            if emphasis_weight != 1.0:
                out["loss_weights"] = torch.stack(
                    [torch.cat([w, w.new_zeros(length - w.shape[0])]) for w in loss_weights]
                )
        if return_spans:
            out["image_spans"] = spans
        return out

    def forward(
        self,
        conversations: Sequence[Conversation],
        images: torch.Tensor | None = None,
        image_tokens: torch.Tensor | Sequence[torch.Tensor | None] | None = None,
        emphasis: Sequence[Sequence[str]] | None = None,
        emphasis_weight: float = 1.0,
    ) -> Any:
        """Training forward: LM loss on each conversation's last assistant turn.
        Returns the HF CausalLMOutput (`.loss`, `.logits`).

        `emphasis` (one list of target sentences per conversation) with `emphasis_weight` != 1:
        the loss is the weighted mean of the target tokens' cross-entropy, those sentences'
        tokens weighing `emphasis_weight`."""
        inputs = self.prepare_inputs(
            conversations,
            image_tokens,
            images=images,
            train=True,
            emphasis=emphasis,
            emphasis_weight=emphasis_weight,
        )
        labels = inputs.pop("labels")
        weights = inputs.pop("loss_weights", None)
        # Logits only from the earliest target position on: the LM head over a 49k vocabulary
        # is a large share of a small LLM's compute, and prompt positions need none.
        length = labels.shape[1]
        is_target = labels != IGNORE_INDEX
        starts = is_target.float().argmax(dim=1)[is_target.any(dim=1)]
        first = int(starts.min()) if starts.numel() else 1
        keep = min(length, length - first + 1)
        out = self.llm(**inputs, logits_to_keep=keep)
        logits = out.logits[:, :-1].float()
        targets = labels[:, length - keep + 1 :]
        w = (
            (targets != IGNORE_INDEX).float()
            if weights is None
            else weights[:, length - keep + 1 :]
        )
        ce = nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]),
            targets.reshape(-1),
            ignore_index=IGNORE_INDEX,
            reduction="none",
        ).view_as(targets)
        out.loss = (ce * w).sum() / w.sum().clamp(min=1e-6)
        return out

    def loss(
        self,
        conversations: Sequence[Conversation],
        images: torch.Tensor | None = None,
        image_tokens: torch.Tensor | Sequence[torch.Tensor | None] | None = None,
    ) -> torch.Tensor:
        return self.forward(conversations, images=images, image_tokens=image_tokens).loss

    @torch.inference_mode()
    def generate_batch(
        self,
        conversations: Sequence[Conversation],
        image_tokens: torch.Tensor | Sequence[torch.Tensor | None] | None = None,
        options: GenerationOptions | None = None,
        *,
        streamer: Any = None,
        backend: str | None = None,
        **settings: Any,
    ) -> list[str]:
        """Continue each conversation (which must end with a user turn); greedy by default.
        `options` (or its fields as keywords: max_new_tokens, do_sample, ...): how to decode.
        `backend`: one of GENERATION_BACKENDS (default: `self.generation_backend`)."""
        options = GenerationOptions.merged(options, settings)
        inputs = self.prepare_inputs(conversations, image_tokens, train=False)
        call = DecodeCall(
            max_new_tokens=options.max_new_tokens or self.config.max_new_tokens,
            eos_token_id=self.codec.eos_token_id,
            pad_token_id=self.codec.pad_token_id,
            stopping=stopping_criteria(self.tokenizer, self.codec, self.stop_repeated_sentences),
            streamer=streamer,
        )
        resolved = self.resolve_backend(backend)
        if resolved in ("fast", "llamacpp"):
            decoder = self._decoder(resolved, auto=(backend or self.generation_backend) == "auto")
            out = decode_with(decoder, inputs, options, call)
        else:
            out = hf_generate(self.llm, inputs, options, call)
        return [self._text(row) for row in out]

    def _text(self, ids: torch.Tensor) -> str:
        text = self.codec.decode(ids)
        return cut_repeated_sentences(text) if self.stop_repeated_sentences else text

    def resolve_backend(self, backend: str | None) -> str:
        """The backend that generation with `backend` (None: the model's default) would use."""
        backend = backend or self.generation_backend
        if backend == "auto":
            if self._lazy is not None:  # a GGUF LLM, which load_llm puts on the CPU
                small, on_cpu = self._lazy.n_params < 2_000_000_000, True
            else:
                small = sum(p.numel() for p in self.llm.parameters()) < 2_000_000_000
                on_cpu = self.llm.get_input_embeddings().weight.device.type == "cpu"
            if not (small and on_cpu):
                return "hf"
            return "llamacpp" if self.gguf_source() and llamacpp_available() else "fast"
        if backend not in GENERATION_BACKENDS:
            raise ValueError(
                f"generation backend must be one of {', '.join(GENERATION_BACKENDS)}, "
                f"not {backend!r}"
            )
        return backend

    def gguf_source(self) -> Path | None:
        """The GGUF file the LLM was loaded from, if it was."""
        name = self.config.llm.source
        if name in (None, "", "random"):
            return None
        source = resolve_source(name)
        return source if source.suffix == ".gguf" else None

    def _decoder(self, backend: str, *, auto: bool) -> Any:
        if backend == "llamacpp":
            try:
                return self.llamacpp_decoder()
            except (UnsupportedModel, CheckpointError) as exc:
                if not auto:
                    raise
                log.warning("llama.cpp backend unusable (%s); using the fast decoder", exc)
        return decoder_for(self.llm, self.fast_options)

    def llamacpp_decoder(self) -> Any:
        """The cached llama.cpp decoder of this model's LLM (GGUF export with LoRA merged)."""
        from radialog.model.llamacpp import llamacpp_decoder_for

        source = self.gguf_source()
        if source is None:
            raise InvalidInputError(
                "the llama.cpp backend runs LLMs loaded from a GGUF file (llm.source); "
                f"this model's LLM comes from {self.config.llm.source!r}: use --backend fast"
            )
        if self._lazy is not None:
            decoder = self._lazy.decoder(self.llamacpp_options)
            if decoder is not None:
                return decoder
        decoder = llamacpp_decoder_for(self.llm, source, self.llamacpp_options)
        if self._lazy_keys is not None and weights_fingerprint(self.llm) == self._loaded_weights:
            # Still the saved model's LLM: later loads may start without it.
            lazy_llm.record(
                self._lazy_keys,
                self.llamacpp_options.weights,
                decoder.path,
                self.llm,
                self.tokenizer,
            )
        return decoder

    def generate(
        self,
        conversation: Conversation,
        image_tokens: torch.Tensor | None = None,
        options: GenerationOptions | None = None,
        *,
        streamer: Any = None,
        backend: str | None = None,
        **settings: Any,
    ) -> str:
        """The assistant's reply to a conversation ending with a user turn. `image_tokens`:
        (N, H) or (1, N, H) from `encode_image`, required if the prompt has `<image>`."""
        if image_tokens is not None and image_tokens.ndim == 2:
            image_tokens = image_tokens[None]
        return self.generate_batch(
            [conversation], image_tokens, options, streamer=streamer, backend=backend, **settings
        )[0]

    # ------------------------------------------------------------------ end to end

    def _read(self, image: Any) -> Any:
        from radialog.imaging.io import XRay, read_xray

        if isinstance(image, XRay | np.ndarray):
            return image
        if isinstance(image, str | Path | bytes):
            return read_xray(image)
        try:
            from PIL import Image

            if isinstance(image, Image.Image):
                return image
        except ImportError:  # pragma: no cover
            pass
        raise InvalidImageError(
            f"cannot use a {type(image).__name__} as an image; pass a path, bytes, XRay or 2-D array"
        )

    @torch.inference_mode()
    def analyse_image(self, image: Any) -> ImageAnalysis:
        """Read + preprocess one image, run the classifier and compute the LLM image tokens."""
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        xray = self._read(image)
        enc_tf = self.image_transform()
        cls_tf = self.classifier_transform()
        enc_pixels = enc_tf(xray)[None]
        same = (enc_tf.resize, enc_tf.crop) == (cls_tf.resize, cls_tf.crop)
        cls_pixels = enc_pixels if same else cls_tf(xray)[None]
        timings["preprocess"] = time.perf_counter() - t0

        t1 = time.perf_counter()
        probs = self.predict_findings(cls_pixels)[0].cpu()
        timings["classifier"] = time.perf_counter() - t1

        t2 = time.perf_counter()
        tokens = self.encode_image(enc_pixels)
        timings["encode"] = time.perf_counter() - t2
        return ImageAnalysis(probs, self.predicted_labels(probs), tokens, timings)

    @property
    def labeler(self) -> Any:
        """The labeler that checks reports against their findings list (rule labeler unless
        one is assigned), created on first use."""
        if getattr(self, "_labeler", None) is None:
            self._labeler = default_labeler()
        return self._labeler

    @labeler.setter
    def labeler(self, value: Any) -> None:
        self._labeler = value

    def generate_report(
        self,
        image: Any,
        *,
        max_new_tokens: int | None = None,
        streamer: Any = None,
        do_sample: bool = False,
        check: bool = True,
        repair: bool = True,
        **generation: Any,
    ) -> Report:
        """Findings + report for one image (path, bytes, XRay, 2-D array or PIL image).
        `generation`: further `generate` options (temperature, top_p, penalties).

        `check`: the labeler compares the report with the findings list (`Report.consistency`).
        `repair`: when they disagree, one correction turn through the same model asks for the
        missing/unlisted findings; its answer replaces the report only if it is more consistent
        (the first draft is kept in `consistency.original_report`). A streamer sees the first
        draft only."""
        analysis = self.analyse_image(image)
        conversation = report_conversation(findings_text(analysis.predicted))
        t1 = time.perf_counter()
        text = self.generate(
            conversation,
            analysis.image_tokens,
            max_new_tokens=max_new_tokens,
            streamer=streamer,
            do_sample=do_sample,
            **generation,
        )
        timings = dict(analysis.timings)
        timings["generate"] = time.perf_counter() - t1
        consistency = None
        final = conversation.copy().add_assistant(text)
        if check:
            t2 = time.perf_counter()
            consistency = check_report(text, analysis.predicted, self.labeler)
            if repair and not consistency.consistent:
                text, final, consistency = self.repair_report(
                    final,
                    analysis.predicted,
                    analysis.image_tokens,
                    consistency,
                    max_new_tokens=max_new_tokens,
                    do_sample=do_sample,
                    **generation,
                )
            timings["check"] = time.perf_counter() - t2
        timings = with_total(timings)
        return Report(
            findings=analysis.findings,
            predicted=analysis.predicted,
            text=text,
            model=self.name,
            timings=timings,
            conversation=final,
            consistency=consistency,
            thresholds=dict(zip(CHEXPERT_LABELS, self.thresholds.tolist(), strict=True)),
        )

    def repair_report(
        self,
        conversation: Conversation,
        findings: Sequence[str],
        image_tokens: torch.Tensor | None = None,
        first: Consistency | None = None,
        *,
        max_new_tokens: int | None = None,
        do_sample: bool = False,
        sentences: bool = True,
        **generation: Any,
    ) -> tuple[str, Conversation, Consistency]:
        """Check the report that ends `conversation` against `findings` and, if they disagree,
        repair it through this model in up to two steps:

        1. one correction turn (`repair_instruction`), RaDialog's dialog correction;
        2. `sentences`: if the report still disagrees, `radialog.repair.splice_report` drops
           the sentences that assert unlisted findings or negate listed ones and adds, for each
           listed finding still missing, a sentence from this model's report for that one
           finding.

        Each step is kept only if the labeler finds it more consistent than the best so far.
        Returns (report, conversation, consistency); when a repair is kept,
        `consistency.repaired`, `original_report` and `repair_method` are set and the
        conversation's last turn is the repaired report. `consistency.attempts` lists every
        step tried (the benchmark reads the correction turn's effect alone from it)."""
        draft = conversation.messages[-1].text
        first = first or check_report(draft, findings, self.labeler)
        request = repair_instruction(first)
        if request is None:
            return draft, conversation, first
        if image_tokens is not None and image_tokens.ndim == 3:
            image_tokens = image_tokens[0]
        asked = conversation.copy().add_user(request)
        fixed = self.generate(
            asked,
            image_tokens,
            max_new_tokens=max_new_tokens,
            do_sample=do_sample,
            **generation,
        ).strip()
        best_text, best, method = draft, first, None
        second = check_report(fixed, findings, self.labeler) if fixed else None
        attempts = [
            _attempt(
                "correction",
                fixed,
                second,
                second is not None and second.mismatches < first.mismatches,
            )
        ]
        if attempts[-1]["kept"]:
            best_text, best, method = fixed, second, "correction"
        notes: list[str] = []
        if sentences and not best.consistent:
            with_image = IMAGE_PLACEHOLDER in conversation.messages[0].text
            splice = splice_report(
                best_text,
                findings,
                lambda labels: self.finding_sentences(
                    labels, image_tokens if with_image else None, do_sample=do_sample, **generation
                ),
                self.labeler,
            )
            third = check_report(splice.report, findings, self.labeler)
            kept = third.mismatches < best.mismatches
            attempts.append(_attempt("sentences", splice.report, third, kept))
            if kept:
                best_text, best, method = splice.report, third, "sentences"
                notes = splice.notes()
        best.attempts = attempts
        best.repair_request = request
        if method is None:
            best.notes.append(
                "an automatic repair was tried and did not make the report more consistent; "
                "the first draft is kept"
            )
            return draft, conversation, best
        best.repaired = True
        best.repair_method = method
        best.original_report = draft
        best.notes += notes
        # The dialog continues from the repaired report, as if it had been written at once.
        repaired = conversation.copy()
        repaired.messages[-1].text = best_text
        return best_text, repaired, best

    def finding_sentences(
        self,
        labels: Sequence[str],
        image_tokens: torch.Tensor | None = None,
        *,
        max_new_tokens: int = 48,
        **generation: Any,
    ) -> dict[str, str | None]:
        """For each label, the first sentence that states it (and nothing else) in this model's
        report for the one-finding list [label] (one batch; the report states its listed
        finding first). `image_tokens` (N, H): the image the report is about, or None for a
        text-only prompt."""
        labels = list(labels)
        if not labels:
            return {}
        conversations = []
        for label in labels:
            conversation = report_conversation(findings_text([label]))
            if image_tokens is None:
                conversation.messages[0].text = text_only(conversation.messages[0].text)
            conversations.append(conversation)
        tokens = None if image_tokens is None else [image_tokens] * len(labels)
        texts = self.generate_batch(
            conversations, tokens, max_new_tokens=max_new_tokens, **generation
        )
        return {
            label: finding_sentence(text, label, self.labeler)
            for label, text in zip(labels, texts, strict=True)
        }


def _attempt(method: str, text: str, check: Consistency | None, kept: bool) -> dict[str, Any]:
    """One repair step as the consistency block lists it."""
    return {
        "method": method,
        "report": text,
        "mismatches": None if check is None else check.mismatches,
        "kept": kept,
    }
