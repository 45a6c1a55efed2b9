"""Reading the published pickles without executing code from them.

The released files are Python pickles (torch.save state dicts, a PyTorch-Lightning checkpoint,
LAVIS checkpoint dicts, a numpy embedding dict). `torch.load(weights_only=True)` is tried first;
files that reference classes outside torch's allowlist (Lightning's `AttributeDict`, an
OmegaConf config, ...) are read with a restricted unpickler that rebuilds tensors, containers
and numpy arrays and replaces every other class with an inert `Opaque` record. Nothing named in
the file is ever imported or called.
"""

from __future__ import annotations

import logging
import pickle
import types
from pathlib import Path
from typing import Any

import torch

from radialog.errors import CheckpointError

log = logging.getLogger(__name__)


class Opaque:
    """Stands in for a class a checkpoint names but radialog does not need (never imported)."""

    origin = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> Opaque:
        obj = super().__new__(cls)
        obj.args = args
        obj.state = None
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.state = state

    # Lightning stores some records as dict subclasses; keep item access working.
    def __setitem__(self, key: Any, value: Any) -> None:
        if not isinstance(self.state, dict):
            self.state = {}
        self.state[key] = value

    def __repr__(self) -> str:
        return f"<opaque {self.origin}>"


_SAFE: dict[str, set[str] | None] = {
    "collections": {"OrderedDict", "defaultdict"},
    "builtins": {"set", "frozenset", "slice", "complex", "bytearray", "range"},
    "_codecs": {"encode"},
    "torch._utils": {
        "_rebuild_tensor",
        "_rebuild_tensor_v2",
        "_rebuild_tensor_v3",
        "_rebuild_parameter",
        "_rebuild_parameter_with_state",
        "_rebuild_qtensor",
        "_rebuild_device_tensor_from_numpy",
    },
    "torch._tensor": {"_rebuild_from_type_v2"},
    "torch": {"Size", "device", "Tensor"},
    "numpy": {"ndarray", "dtype"},
    "numpy.core.multiarray": {"_reconstruct", "scalar"},
    "numpy._core.multiarray": {"_reconstruct", "scalar"},
    "numpy.dtypes": None,  # every dtype class there is data-only
}


class _RestrictedUnpickler(pickle.Unpickler):
    stubbed: set[str]

    def find_class(self, module: str, name: str) -> Any:
        allowed = _SAFE.get(module, set())
        if module in _SAFE and (allowed is None or name in allowed):
            return super().find_class(module, name)
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        self.stubbed.add(f"{module}.{name}")
        return type(name, (Opaque,), {"origin": f"{module}.{name}"})


def _pickle_module(stubbed: set[str]) -> types.ModuleType:
    """A module torch.load can use as `pickle_module` (it subclasses our Unpickler)."""
    mod = types.ModuleType("radialog_restricted_pickle")

    class Unpickler(_RestrictedUnpickler):
        pass

    Unpickler.stubbed = stubbed
    mod.Unpickler = Unpickler  # type: ignore[attr-defined]
    mod.load = pickle.load  # type: ignore[attr-defined]
    mod.__name__ = "pickle"
    return mod


def load_torch_file(path: Path) -> Any:
    """Read a torch.save file on CPU without running code from it; CheckpointError if unreadable."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError for non-allowlisted globals, among others
        first_error = exc
    stubbed: set[str] = set()
    try:
        obj = torch.load(
            path, map_location="cpu", weights_only=False, pickle_module=_pickle_module(stubbed)
        )
    except Exception as exc:
        raise CheckpointError(
            f"cannot read {path} as a PyTorch checkpoint: {exc} (weights-only load: {first_error})"
        ) from exc
    if stubbed:
        log.info("%s: ignored non-tensor objects %s", path.name, ", ".join(sorted(stubbed)))
    return obj


def load_plain_pickle(path: Path) -> Any:
    """Read a plain pickle (e.g. the v1 `.pkl` embedding dicts) with the restricted unpickler."""
    if not path.is_file():
        raise CheckpointError(f"file not found: {path}")
    with path.open("rb") as fh:
        unpickler = _pickle_module(set()).Unpickler(fh)  # type: ignore[attr-defined]
        try:
            return unpickler.load()
        except Exception as exc:
            raise CheckpointError(f"cannot read pickle {path}: {exc}") from exc


def tensor_dict(obj: Any, what: str, path: Path) -> dict[str, torch.Tensor]:
    """Check that `obj` is a {str: Tensor} mapping (tolerating non-tensor entries, which are
    dropped with a log line)."""
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected {what} to be a dict, got {type(obj).__name__}")
    out = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    dropped = len(obj) - len(out)
    if dropped:
        log.info("%s: %d non-tensor entries in %s ignored", path.name, dropped, what)
    if not out:
        raise CheckpointError(f"{path}: {what} holds no tensors")
    return out
