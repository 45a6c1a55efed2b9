"""A saved model on the llama.cpp path starts without its torch LLM once a report recorded
what it needs (radialog.model.lazy_llm), and writes exactly what the eager model writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

pytest.importorskip("llama_cpp", reason="llama-cpp-python is installed by `make test`")

pytestmark = (
    pytest.mark.slow
)  # each test loads the embedded model and exports or records its LLM (10-50 s)

from data_paths import EXAMPLE_IMAGE, REPO  # noqa: E402
from gguf_tiny import tiny_gguf_model  # noqa: E402
from radialog.model import lazy_llm, llamacpp  # noqa: E402
from radialog.model.decoding import weights_fingerprint  # noqa: E402
from radialog.model.prompt import report_conversation  # noqa: E402
from radialog.model.radialog_model import RadialogModel  # noqa: E402

OPTIONS = llamacpp.LlamaCppOptions(weights="f32", threads=1)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """(directory of a saved tiny model whose LLM is a GGUF file with trained LoRA, cache)."""
    root = tmp_path_factory.mktemp("lazy")
    cache = root / "cache"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RADIALOG_CACHE_DIR", str(cache))
        mp.delenv(lazy_llm.EAGER_ENV, raising=False)
        model = tiny_gguf_model(root)
        model.save_pretrained(root / "model")
        yield root / "model", cache


def _load(path) -> RadialogModel:
    model = RadialogModel.from_pretrained(path)
    model.llamacpp_options = OPTIONS
    return model


def _answer(model: RadialogModel, backend: str = "llamacpp") -> str:
    pixels = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    conv = report_conversation("Cardiomegaly, Pleural Effusion")
    return model.generate(conv, model.encode_image(pixels), max_new_tokens=8, backend=backend)


def _entries(cache) -> list:
    return sorted((cache / "llamacpp" / "lazy").glob("*.json"))


def test_second_load_skips_the_torch_llm_and_answers_the_same(saved, monkeypatch):
    path, cache = saved
    monkeypatch.setenv("RADIALOG_CACHE_DIR", str(cache))
    eager = _load(path)
    assert eager._lazy is None and "llm" in eager._modules  # nothing recorded yet
    expected = _answer(eager)
    assert len(_entries(cache)) == 1  # the llama.cpp report recorded the parts

    lazy = _load(path)
    assert lazy._lazy is not None and "llm" not in lazy._modules
    assert lazy.resolve_backend("auto") == "llamacpp"
    assert lazy.llm_hidden_size == eager.llm_hidden_size
    assert _answer(lazy) == expected
    assert lazy.eval() is lazy and "llm" not in lazy._modules  # still not built

    # First real use builds it: the same LLM, in the model's mode, for every backend.
    assert lazy.llm is lazy.llm and lazy._lazy is None
    assert sum(p.numel() for p in lazy.parameters()) == sum(p.numel() for p in eager.parameters())
    assert not lazy.llm.training
    assert _answer(lazy, "fast") == _answer(eager, "fast")
    assert _answer(lazy) == expected


def test_llm_built_inside_generate_holds_ordinary_tensors(saved, monkeypatch):
    # generate runs in inference mode; an LLM first built there must still train and be
    # fingerprinted (inference tensors have no version counter).
    path, cache = saved
    monkeypatch.setenv("RADIALOG_CACHE_DIR", str(cache))
    _answer(_load(path))  # recorded
    lazy = _load(path)
    assert lazy._lazy is not None
    first = _answer(lazy, "fast")  # builds the LLM inside generate
    assert lazy._lazy is None
    assert not any(p.is_inference() for p in lazy.llm.parameters())
    assert _answer(lazy, "fast") == first
    weight = next(lazy.llm.parameters()).requires_grad_(True)
    (weight * 2).sum().backward()
    assert weight.grad is not None
    assert weights_fingerprint(lazy.llm)


def test_traversals_and_saving_build_the_llm(saved, monkeypatch, tmp_path):
    path, cache = saved
    monkeypatch.setenv("RADIALOG_CACHE_DIR", str(cache))
    _answer(_load(path))  # recorded
    lazy = _load(path)
    assert lazy._lazy is not None
    lazy.train()
    state = lazy.state_dict()
    assert lazy._lazy is None and any(k.startswith("llm.") for k in state)
    assert lazy.llm.training
    # Saving a model loaded without its LLM (scripts re-save with new thresholds) writes
    # the same adapter.
    lazy = _load(path)
    assert lazy._lazy is not None
    lazy.save_pretrained(tmp_path / "resaved")
    for name in ("adapter_model.safetensors", "adapter_config.json"):
        assert (tmp_path / "resaved" / "adapter" / name).read_bytes() == (
            path / "adapter" / name
        ).read_bytes()


def test_changed_weights_or_adapter_are_never_taken_from_the_record(saved, monkeypatch, tmp_path):
    path, cache = saved
    monkeypatch.setenv("RADIALOG_CACHE_DIR", str(cache))
    expected = _answer(_load(path))
    before = [p.read_text() for p in _entries(cache)]
    recorded = _load(path)._lazy.exports["f32"]

    # An LLM changed in memory exports anew and is not recorded for the directory.
    model = _load(path)
    with torch.no_grad():
        next(p for n, p in model.llm.named_parameters() if "lora_B" in n).add_(0.1)
    assert model.llamacpp_decoder().path.name != recorded
    assert [p.read_text() for p in _entries(cache)] == before

    # Another adapter is another record.
    model.save_pretrained(tmp_path / "other")
    assert _load(tmp_path / "other")._lazy is None
    assert _load(path)._lazy is not None

    monkeypatch.setenv(lazy_llm.EAGER_ENV, "1")
    eager = _load(path)
    assert eager._lazy is None and _answer(eager) == expected


def _cli_report(path, cache, eager: bool) -> dict:
    """`radialog report` in a fresh process -> its JSON plus the heavy modules it imported."""
    script = (
        "import contextlib, io, json, sys\n"
        "from radialog.cli import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        f"    code = main(['report', {str(EXAMPLE_IMAGE)!r}, '--model', {str(path)!r}, "
        "'--backend', 'llamacpp', '--json', '--threads', '1', '--max-new-tokens', '8'])\n"
        "payload = json.loads(out.getvalue())\n"
        "payload['imported'] = sorted(m for m in ('transformers', 'peft') if m in sys.modules)\n"
        "print(json.dumps(payload))\n"
    )
    env = dict(os.environ, RADIALOG_CACHE_DIR=str(cache), RADIALOG_EAGER_LLM="1" if eager else "")
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout.strip().splitlines()[-1])
    payload.pop("timings")
    return payload


def test_cli_report_imports_neither_transformers_nor_peft(saved):
    path, cache = saved
    eager = _cli_report(path, cache, eager=True)  # also records the F16 export's parts
    assert eager.pop("imported") == ["peft", "transformers"]
    lazy = _cli_report(path, cache, eager=False)
    assert lazy.pop("imported") == []
    assert lazy == eager
