"""RaDialog v1's released precomputed Q-Former embeddings, used in place of the image branch.

v1's Q-Former was fed by a randomly initialised, never-saved 1408-d BioViL-T projector, so
embeddings computed today differ from the ones the LLM was evaluated on (RaDialog issue #6). The
release ships them: `stage1_..._embeddings_{test,val}.pkl`, a dict dicom_id -> (32, 768) array
(the Q-Former output before `img_proj_layer`). `PrecomputedEmbeddings` reads that pickle (or
radialog's safetensors copy of it) and turns an entry into LLM image tokens through the
converted model's projection layer::

    emb = PrecomputedEmbeddings.load("radialog-v1/embeddings/..._test.safetensors")
    tokens = emb.image_tokens(model, dicom_id)
    text = model.generate(report_conversation(findings), image_tokens=tokens)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from radialog.convert.readers import load_plain_pickle
from radialog.errors import CheckpointError, InvalidInputError


class PrecomputedEmbeddings(Mapping[str, torch.Tensor]):
    """Read-only mapping dicom_id -> float32 tensor (num_queries, hidden)."""

    def __init__(self, table: Mapping[str, Any], source: str = "<memory>") -> None:
        self.source = source
        self._table: dict[str, torch.Tensor] = {}
        shape = None
        for key, value in table.items():
            t = torch.as_tensor(np.asarray(value, dtype=np.float32))
            if t.ndim != 2 or (shape is not None and t.shape != shape):
                raise CheckpointError(
                    f"{source}: embedding {key!r} has shape {tuple(t.shape)}; expected one "
                    f"(queries, hidden) shape for all entries{'' if shape is None else f' {tuple(shape)}'}"
                )
            shape = t.shape
            self._table[str(key)] = t
        if not self._table:
            raise CheckpointError(f"{source}: no embeddings")
        self.shape: tuple[int, int] = tuple(shape)  # type: ignore[arg-type]

    @classmethod
    def load(cls, path: str | Path) -> PrecomputedEmbeddings:
        """A v1 `.pkl` (read without executing code) or a radialog `.safetensors` copy."""
        path = Path(path).expanduser()
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return cls(load_file(str(path)), str(path))
        data = load_plain_pickle(path)
        if not isinstance(data, dict):
            raise CheckpointError(
                f"{path}: expected a dict dicom_id -> array, got {type(data).__name__}"
            )
        return cls(data, str(path))

    def save(self, path: str | Path) -> Path:
        from safetensors.torch import save_file

        path = Path(path)
        save_file({k: v.contiguous() for k, v in self._table.items()}, str(path))
        return path

    def __getitem__(self, dicom_id: str) -> torch.Tensor:
        try:
            return self._table[dicom_id]
        except KeyError:
            raise InvalidInputError(
                f"no precomputed embedding for {dicom_id!r} in {self.source}"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)

    def image_tokens(self, model: Any, dicom_id: str) -> torch.Tensor:
        """(1, num_queries, llm_hidden) LLM image tokens: the model's Q-Former projection
        (v1's `img_proj_layer`) applied to the stored Q-Former output."""
        proj = getattr(model.adapter, "proj", None)
        if proj is None:
            raise InvalidInputError(
                "precomputed Q-Former embeddings need an 'align' (Q-Former) model"
            )
        states = self[dicom_id]
        if states.shape[-1] != proj.in_features:
            raise InvalidInputError(
                f"embedding width {states.shape[-1]} does not match the model's Q-Former width {proj.in_features}"
            )
        with torch.inference_mode():
            tokens = proj(states.to(proj.weight.device, proj.weight.dtype))[None]
        return tokens.to(model.llm.get_input_embeddings().weight.dtype)
