"""The input gate: is this image a chest radiograph? Runs before the classifier and the LLM.

Three cheap rules first (too small, blank, colour photograph), then a tiny CNN (~20 k
parameters) on a 64 x 64 grey thumbnail with five classes: chest radiograph, inverted
(negative) chest radiograph, rotated chest radiograph, document/text, anything else. The
gate's score is the CNN's probability of "chest radiograph"; the decision is

- accept: score >= `accept_at`;
- warn: `refuse_below` <= score < `accept_at` (the model runs; the score is shown);
- refuse: a rule fired, or score < `refuse_below` (the message names the most likely
  other class, e.g. "looks inverted").

Saved layout (`save_pretrained`, the `gate/` folder of a model directory): `config.json`
(`GateConfig`) + `gate.safetensors` (the CNN). A model directory without `gate/` loads with
the gate off (`RadialogModel.gate` is None): its outputs then say `"decision": "off"`.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from radialog.errors import CheckpointError, RadialogError

log = logging.getLogger(__name__)

GATE_DIR = "gate"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "gate.safetensors"

CHEST = "chest"
# The CNN's classes, in output order. Only CHEST is accepted.
CLASSES = ("chest", "inverted", "rotated", "document", "other")
# Why an image was refused, for people: what it looks like and what to do.
REASONS = {
    "too_small": "is too small to be a radiograph ({h} x {w} pixels; a chest X-ray has "
    "hundreds to thousands of pixels per side)",
    "blank": "is blank (one flat shade, no structure)",
    "colour": "looks like a colour photograph (chest X-rays are grey)",
    "inverted": "looks like an inverted (negative) radiograph: bone dark, air bright. If it is "
    "a DICOM, its PhotometricInterpretation (MONOCHROME1/2) may be wrong; export it as "
    "displayed",
    "rotated": "looks like a rotated or upside-down radiograph; rotate it upright "
    "(head at the top) and try again",
    "document": "looks like a document, form or text, not a radiograph",
    "other": "does not look like a chest X-ray",
}

ACCEPT, WARN, REFUSE, OFF = "accept", "warn", "refuse", "off"
# What a warning says the image may be, per class.
_MAYBE = {
    "inverted": "an inverted radiograph",
    "rotated": "a rotated radiograph",
    "document": "a document",
}


@dataclass
class GateConfig:
    """What the gate's weights need to be used, and its decision rule."""

    size: int = 64  # thumbnail side the CNN sees
    channels: tuple[int, ...] = (8, 16, 32, 32)
    classes: tuple[str, ...] = CLASSES
    accept_at: float = 0.5
    refuse_below: float = 0.2
    min_side: int = 32  # shorter side in pixels; smaller images are refused
    min_contrast: float = 1e-3  # (max - min) / max(|max|, 1); below it the image is blank
    max_colour: float = 0.06  # mean chroma above which an image is a colour photograph
    # Free-form provenance written by the trainer (data, counts, measured results).
    trained_on: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GateConfig:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for key in ("channels", "classes"):
            if key in known:
                known[key] = tuple(known[key])
        return cls(**known)


@dataclass
class GateResult:
    """The gate's verdict on one image. `score`: P(chest radiograph), None when a rule
    decided or the gate is off. `forced`: refused, but the caller overrode the gate."""

    decision: str
    score: float | None = None
    reason: str | None = None  # key of REASONS, or None when accepted
    message: str | None = None
    forced: bool = False
    ms: float = 0.0

    @property
    def refused(self) -> bool:
        return self.decision == REFUSE

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "score": None if self.score is None else round(self.score, 4),
            "reason": self.reason,
            "message": self.message,
            "forced": self.forced,
        }


def gate_notice(gate: dict[str, Any] | None) -> str | None:
    """One line on a verdict (`GateResult.to_dict()`) when a reader should see it: a
    warning (with the score), an override, or no gate at all. None for a plain accept."""
    if not gate or (gate["decision"] == ACCEPT and not gate.get("forced")):
        return None
    score = "" if gate.get("score") is None else f" (chest X-ray score {gate['score']:.2f})"
    if gate.get("forced"):
        return (
            f"INPUT GATE OVERRIDDEN: the image {gate['message']}{score}. The report is for an "
            "image the model was not made for."
        )
    if gate["decision"] == WARN:
        return f"Input gate WARNING: the image {gate['message']}{score}."
    return f"Input gate: {gate.get('message') or gate['decision']}."


GATE_OFF = GateResult(OFF, message="this model has no input gate; the image was not checked")


class NotAChestXRayError(RadialogError):
    """The input gate refused the image. `result` holds the verdict; the message says why
    and how to override (`--force` on the CLI, `"force": true` in an API request)."""

    code = "not_a_chest_xray"

    def __init__(self, result: GateResult, name: str = "the image", override: str = "--force"):
        self.result = result
        score = "" if result.score is None else f" (chest X-ray score {result.score:.2f})"
        super().__init__(
            f"{name} was refused by the input gate: it {result.message}{score}. radialog "
            "reports only on frontal or lateral chest radiographs: check that this is the "
            f"right file. An expert can run the model anyway with {override}; the output "
            "then records that the gate was overridden."
        )


class GateNet(nn.Module):
    """Four stride-2 3x3 convolutions (64 -> 4 px) and one linear layer over the 4x4 map:
    the layout (which way up, where the lungs are) stays visible to the last layer."""

    def __init__(self, cfg: GateConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 1
        for c in cfg.channels:
            layers += [nn.Conv2d(c_in, c, 3, stride=2, padding=1), nn.BatchNorm2d(c), nn.ReLU()]
            c_in = c
        self.features = nn.Sequential(*layers)
        side = cfg.size // 2 ** len(cfg.channels)
        self.head = nn.Linear(c_in * side * side, len(cfg.classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, size, size) in [0, 1] -> logits (B, classes)."""
        return self.head(self.features(x - 0.5).flatten(1))


def thumbnail(pixels: np.ndarray, size: int) -> np.ndarray:
    """The gate's view of an image: area-resampled to size x size (aspect not kept: chest
    films are roughly square), min-max scaled to [0, 1], float32."""
    arr = np.ascontiguousarray(pixels, dtype=np.float32)
    small = np.asarray(
        Image.fromarray(arr).resize((size, size), Image.Resampling.BOX), dtype=np.float32
    )
    lo, hi = float(small.min()), float(small.max())
    if not np.isfinite(lo) or not np.isfinite(hi) or hi <= lo:
        return np.zeros((size, size), np.float32)
    return (small - lo) / (hi - lo)


class InputGate:
    """See the module docstring. `check(xray)` -> GateResult; never raises for an image."""

    def __init__(self, config: GateConfig, net: GateNet | None = None) -> None:
        self.config = config
        self.net = (net or GateNet(config)).eval()

    # ---- deciding --------------------------------------------------------------------------

    def rule(self, pixels: np.ndarray, colour: float | None) -> tuple[str, str] | None:
        """(reason, message) when a cheap rule refuses the image, else None."""
        cfg = self.config
        h, w = pixels.shape
        if min(h, w) < cfg.min_side:
            return "too_small", REASONS["too_small"].format(h=h, w=w)
        finite = pixels[np.isfinite(pixels)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
        if hi - lo <= cfg.min_contrast * max(abs(hi), abs(lo), 1.0):
            return "blank", REASONS["blank"]
        if colour is not None and colour > cfg.max_colour:
            return "colour", REASONS["colour"]
        return None

    @torch.inference_mode()
    def probabilities(self, thumbs: np.ndarray) -> np.ndarray:
        """(B, size, size) thumbnails -> (B, classes) class probabilities."""
        x = torch.from_numpy(np.ascontiguousarray(thumbs, dtype=np.float32))[:, None]
        return torch.softmax(self.net(x), dim=1).numpy()

    def check(self, image: Any) -> GateResult:
        """The verdict on an `XRay` (or a 2-D array of grey pixels)."""
        t0 = time.perf_counter()
        pixels = getattr(image, "pixels", image)
        pixels = np.asarray(pixels)
        if pixels.ndim != 2:
            raise ValueError(f"the gate expects a 2-D grey image, got shape {pixels.shape}")
        fired = self.rule(pixels, getattr(image, "colour", None))
        if fired is not None:
            result = GateResult(REFUSE, None, fired[0], fired[1])
        else:
            probs = self.probabilities(thumbnail(pixels, self.config.size)[None])[0]
            result = self.decide(probs)
        result.ms = (time.perf_counter() - t0) * 1000
        return result

    def decide(self, probs: np.ndarray) -> GateResult:
        cfg = self.config
        score = float(probs[cfg.classes.index(CHEST)])
        if score >= cfg.accept_at:
            return GateResult(ACCEPT, score)
        others = [(p, c) for p, c in zip(probs, cfg.classes, strict=True) if c != CHEST]
        likely = max(others)[1]
        message = REASONS.get(likely, REASONS["other"])
        if score >= cfg.refuse_below:
            maybe = _MAYBE.get(likely, "something other than a chest X-ray")
            return GateResult(
                WARN,
                score,
                likely,
                f"is not clearly a chest X-ray (it may be {maybe}); check the report with care",
            )
        return GateResult(REFUSE, score, likely, message)

    # ---- saving / loading ------------------------------------------------------------------

    def save_pretrained(self, out_dir: str | Path) -> Path:
        """Write `config.json` + `gate.safetensors` into `out_dir` (created)."""
        from safetensors.torch import save_file

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / CONFIG_NAME).write_text(self.config.to_json(), encoding="utf-8")
        state = {k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()}
        save_file(state, str(out / WEIGHTS_NAME))
        return out

    @classmethod
    def from_pretrained(cls, gate_dir: str | Path) -> InputGate:
        from safetensors.torch import load_file

        path = Path(gate_dir)
        if not (path / CONFIG_NAME).is_file() or not (path / WEIGHTS_NAME).is_file():
            raise CheckpointError(
                f"{path} is not a saved input gate (needs {CONFIG_NAME} and {WEIGHTS_NAME}); "
                "train one with scripts/train_gate.py or remove the folder to run without a gate"
            )
        cfg = GateConfig.from_dict(json.loads((path / CONFIG_NAME).read_text(encoding="utf-8")))
        net = GateNet(cfg)
        try:
            net.load_state_dict(load_file(str(path / WEIGHTS_NAME)))
        except RuntimeError as exc:
            raise CheckpointError(
                f"{path / WEIGHTS_NAME} does not match its config: {exc}"
            ) from None
        return cls(cfg, net)

    @classmethod
    def for_model_dir(cls, model_dir: str | Path) -> InputGate | None:
        """The gate saved with a model (`<model_dir>/gate/`), or None when it has none."""
        path = Path(model_dir) / GATE_DIR
        if not (path / CONFIG_NAME).is_file():
            log.info("%s has no input gate (%s/); images are not checked", model_dir, GATE_DIR)
            return None
        return cls.from_pretrained(path)


def screen(
    gate: InputGate | None,
    image: Any,
    *,
    force: bool = False,
    name: str = "the image",
    override: str = "--force",
) -> GateResult:
    """Run `gate` on `image` (an XRay) before any model work. Raises `NotAChestXRayError`
    when it refuses and `force` is False; with `force`, the refusal is returned with
    `forced=True` so the output can record the override. No gate: `GATE_OFF`."""
    if gate is None:
        return GateResult(**{**asdict(GATE_OFF)})
    result = gate.check(image)
    if result.refused:
        if not force:
            raise NotAChestXRayError(result, name, override)
        result.forced = True
        log.warning("input gate overridden: %s %s", name, result.message)
    return result
