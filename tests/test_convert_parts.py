"""Fast conversion pieces: CheXbert, the restricted pickle reader, base-LLM loading options."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch
from transformers import BertConfig

from radialog.convert import convert
from radialog.convert.readers import Opaque, load_plain_pickle, load_torch_file
from radialog.errors import CheckpointError, MissingDependencyError, ModelNotFoundError
from radialog.labeler import get_labeler
from radialog.labeler.chexbert import CheXbertModel
from radialog.model.base_llm import bitsandbytes_config
from radialog.model.config import LLMConfig, RadialogConfig
from radialog.model.llm import load_llm

torch.set_num_threads(1)

WORDS = ["no", "pleural", "effusion", "mild", "cardiomegaly", "heart", "size", "normal", "."]


def _tiny_base(path: Path, *, llava: bool) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    from radialog.model.llm import load_tokenizer

    tokenizer = load_tokenizer("smollm2")
    cfg = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
    )
    LlamaForCausalLM(cfg).save_pretrained(path)
    tokenizer.save_pretrained(path)
    if llava:
        raw = json.loads((path / "config.json").read_text())
        raw.update(model_type="llava", mm_hidden_size=1024, mm_projector_type="mlp2x_gelu")
        (path / "config.json").write_text(json.dumps(raw))
    return path


# ------------------------------------------------------------------------------ CheXbert


@pytest.fixture()
def chexbert_release(tmp_path: Path) -> tuple[Path, CheXbertModel]:
    torch.manual_seed(0)
    model = CheXbertModel(
        BertConfig(
            vocab_size=5 + len(WORDS),
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=1,
            intermediate_size=37,
            max_position_embeddings=24,
        )
    ).eval()
    with torch.no_grad():  # make the heads disagree so label outputs are informative
        for i, head in enumerate(model.linear_heads):
            head.bias[i % head.bias.shape[0]] += 3.0
    state = {"module." + k: v for k, v in model.state_dict().items()}
    state["module.bert.embeddings.position_ids"] = torch.arange(24)[None]  # old transformers
    release = tmp_path / "release"
    (release / "bert-base-uncased").mkdir(parents=True)
    (release / "bert-base-uncased" / "vocab.txt").write_text(
        "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n"
    )
    torch.save({"model_state_dict": state, "epoch": 3}, release / "chexbert.pth")
    return release / "chexbert.pth", model


def test_chexbert_converts_and_labels_like_the_original(chexbert_release, tmp_path, capsys):
    from radialog.cli import main

    pth, model = chexbert_release
    out = tmp_path / "chexbert"
    assert main(["convert", "--from", "chexbert", str(pth), "--out", str(out)]) == 0
    assert "[ok] CheXbert" in capsys.readouterr().out
    assert {p.name for p in out.iterdir()} >= {"model.safetensors", "config.json", "tokenizer"}
    meta = json.loads((out / "config.json").read_text())
    assert meta["conditions"][-1] == "No Finding" and meta["bert"]["hidden_size"] == 32
    texts = ["no pleural effusion .", "mild cardiomegaly", "heart size normal"]
    original = get_labeler(pth).label(texts)
    converted = get_labeler(out).label(texts)
    assert [r.labels for r in converted] == [r.labels for r in original]
    loaded = get_labeler(out).model.state_dict()
    for key, value in model.state_dict().items():
        torch.testing.assert_close(loaded[key], value)


def test_chexbert_with_a_missing_head_is_rejected(chexbert_release, tmp_path):
    pth, _ = chexbert_release
    raw = torch.load(pth, weights_only=True)
    del raw["model_state_dict"]["module.linear_heads.13.weight"]
    torch.save(raw, pth)
    with pytest.raises(CheckpointError, match="linear_heads.13.weight"):
        convert("chexbert", pth, tmp_path / "o")
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------------------ readers


class _Exploit:
    """A pickle payload that would create a file if its reduce function were ever called."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_restricted_reader_never_runs_pickled_code(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "ckpt.ckpt"
    torch.save({"state_dict": {"w": torch.ones(2)}, "hyper_parameters": _Exploit(marker)}, path)
    obj = load_torch_file(path)
    assert not marker.exists()
    assert isinstance(obj["hyper_parameters"], Opaque)
    torch.testing.assert_close(obj["state_dict"]["w"], torch.ones(2))

    pkl = tmp_path / "emb.pkl"
    with pkl.open("wb") as fh:
        pickle.dump({"a": _Exploit(marker)}, fh)
    assert isinstance(load_plain_pickle(pkl)["a"], Opaque)
    assert not marker.exists()


def test_unreadable_checkpoint_is_a_checkpoint_error(tmp_path):
    bad = tmp_path / "x.bin"
    bad.write_bytes(b"not a pickle")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_torch_file(bad)


# ------------------------------------------------------------------------------ base LLM options


def test_quantization_without_bitsandbytes_or_cuda_is_a_clear_error(tmp_path):
    with pytest.raises(MissingDependencyError, match="bitsandbytes|CUDA"):
        bitsandbytes_config("8bit", torch.float16)
    with pytest.raises(ModelNotFoundError, match="unknown quantization"):
        bitsandbytes_config("3bit", torch.float16)
    base = _tiny_base(tmp_path / "base", llava=False)
    for mode in ("8bit", "4bit"):  # fails before any weights are read
        with pytest.raises(MissingDependencyError, match="bitsandbytes|CUDA"):
            load_llm(LLMConfig(source=str(base), quantization=mode))
    with pytest.raises(ModelNotFoundError, match="Hugging Face model directory"):
        load_llm(LLMConfig(source="random", quantization="8bit"))


def test_llava_original_base_dir_loads_as_llama(tmp_path):
    base = _tiny_base(tmp_path / "llava", llava=True)
    model, _ = load_llm(LLMConfig(source=str(base), lora=None))
    assert type(model).__name__ == "LlamaForCausalLM"
    assert model.get_input_embeddings().weight.shape[1] == 16


def test_new_config_fields_default_and_round_trip():
    cfg = RadialogConfig()
    assert cfg.adapter.patch_order == "spatial" and cfg.llm.quantization is None
    cfg.adapter.patch_order = "channels_first"
    cfg.llm.quantization = "4bit"
    again = RadialogConfig.from_dict(json.loads(cfg.to_json()))
    assert (again.adapter.patch_order, again.llm.quantization) == ("channels_first", "4bit")
