"""The fast decoder (radialog.model.decoding) against transformers' generate() on the tiny model."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from gguf_tiny import random_lora
from radialog.model.decoding import (
    FastOptions,
    HFForwardStepper,
    StepDecoder,
    decoder_for,
)
from radialog.model.prompt import Conversation, report_conversation
from radialog.model.radialog_model import RadialogModel

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny() -> RadialogModel:
    return random_lora(RadialogModel.from_config("tiny"))


def _conversations() -> list[Conversation]:
    return [
        report_conversation("Cardiomegaly, Pleural Effusion"),
        report_conversation("No Finding"),
        Conversation().add_user("Is the heart enlarged? Please explain the finding in detail."),
        Conversation().add_user("hi"),
    ]


def _image_tokens(model: RadialogModel) -> list[torch.Tensor | None]:
    g = torch.Generator().manual_seed(0)
    tokens = model.encode_image(torch.rand(2, 3, 64, 64, generator=g))
    return [tokens[0], tokens[1], None, None]


def _inputs(model: RadialogModel, idx: list[int]) -> dict[str, Any]:
    convs, toks = _conversations(), _image_tokens(model)
    return model.prepare_inputs([convs[i] for i in idx], [toks[i] for i in idx], train=False)


def _hf(model: RadialogModel, inputs: dict[str, Any], n: int, eos: int, **kw: Any) -> torch.Tensor:
    with torch.inference_mode():
        return model.llm.generate(
            **inputs,
            max_new_tokens=n,
            do_sample=False,
            temperature=None,
            top_p=None,
            top_k=None,
            eos_token_id=eos,
            pad_token_id=model.codec.pad_token_id,
            **kw,
        )


def _fast(
    model: RadialogModel, inputs: dict[str, Any], n: int, eos: int, **kw: Any
) -> torch.Tensor:
    return decoder_for(model.llm).decode(
        inputs["inputs_embeds"],
        inputs["attention_mask"],
        max_new_tokens=n,
        eos_token_id=eos,
        pad_token_id=model.codec.pad_token_id,
        **kw,
    )


def test_uses_the_compact_llama_path(tiny: RadialogModel) -> None:
    assert decoder_for(tiny.llm).kind == "llama"
    assert decoder_for(tiny.llm) is decoder_for(tiny.llm)  # cached


@pytest.mark.parametrize("idx", [[0], [2], [3], [0, 1, 2, 3]])
def test_greedy_identical_to_hf_generate(tiny: RadialogModel, idx: list[int]) -> None:
    inputs = _inputs(tiny, idx)
    if len(idx) > 1:  # left padding really happens
        assert (inputs["attention_mask"][:, 0] == 0).any()
    eos = tiny.codec.eos_token_id
    hf = _hf(tiny, inputs, 24, eos)
    fast = _fast(tiny, inputs, 24, eos)
    assert fast.shape == hf.shape == (len(idx), 24)
    assert torch.equal(fast, hf)


def test_batch_rows_equal_single_runs(tiny: RadialogModel) -> None:
    eos = tiny.codec.eos_token_id
    batch = _fast(tiny, _inputs(tiny, [0, 1, 2, 3]), 16, eos)
    for i in range(4):
        assert torch.equal(_fast(tiny, _inputs(tiny, [i]), 16, eos)[0], batch[i])


def test_stops_at_eos_and_pads_finished_rows(tiny: RadialogModel) -> None:
    inputs = _inputs(tiny, [0, 2])
    free = _fast(tiny, inputs, 12, eos=-1)
    # Pretend the token row 0 emits at step 3 is EOS (and not emitted earlier by that row).
    stop_id = int(free[0, 3])
    first = int((free[0] == stop_id).nonzero()[0])
    hf = _hf(tiny, inputs, 12, stop_id)
    fast = _fast(tiny, inputs, 12, stop_id)
    assert torch.equal(fast, hf)
    assert fast[0, first] == stop_id
    assert (fast[0, first + 1 :] == tiny.codec.pad_token_id).all()
    if stop_id not in free[1].tolist():
        assert fast.shape[1] == 12  # the other row kept going
        assert torch.equal(fast[1], free[1])
    # A single row stops generating at once.
    single = _fast(tiny, _inputs(tiny, [0]), 12, stop_id)
    assert single.shape == (1, first + 1)


@pytest.mark.parametrize("n", [0, 1, 5])
def test_max_new_tokens_respected(tiny: RadialogModel, n: int) -> None:
    out = _fast(tiny, _inputs(tiny, [0, 3]), n, eos=-1)
    assert out.shape == (2, n)
    if n:  # through generate: a smaller budget gives a prefix of a larger one
        text = tiny.generate(_conversations()[3], max_new_tokens=n, backend="fast").strip()
        longer = tiny.generate(_conversations()[3], max_new_tokens=n + 4, backend="fast").strip()
        assert longer.startswith(text) and len(longer) >= len(text)


def test_stopping_callable(tiny: RadialogModel) -> None:
    calls: list[int] = []

    def stop_after_three(ids: torch.Tensor, _scores: Any) -> torch.Tensor:
        calls.append(ids.shape[1])
        return torch.full((ids.shape[0],), ids.shape[1] >= 3)

    out = _fast(tiny, _inputs(tiny, [0, 1]), 10, eos=-1, stopping=stop_after_three)
    assert out.shape == (2, 3)
    assert calls == [1, 2, 3]  # sees all generated ids after each step


class _Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, list[Any]]] = []

    def put(self, value: torch.Tensor) -> None:
        self.events.append(("put", value.tolist()))

    def end(self) -> None:
        self.events.append(("end", []))


def test_streamer_callback_order_matches_hf(tiny: RadialogModel) -> None:
    inputs = _inputs(tiny, [0])
    eos = tiny.codec.eos_token_id
    hf_rec, fast_rec = _Recorder(), _Recorder()
    _hf(tiny, inputs, 6, eos, streamer=hf_rec)
    out = _fast(tiny, inputs, 6, eos, streamer=fast_rec)
    assert fast_rec.events == hf_rec.events
    assert fast_rec.events[0] == ("put", [[]])  # the prompt: embeddings, no ids
    assert [e[1] for e in fast_rec.events[1:-1]] == [[t] for t in out[0].tolist()]
    assert fast_rec.events[-1] == ("end", [])


def test_model_generate_backends_agree(tiny: RadialogModel) -> None:
    convs, toks = _conversations(), _image_tokens(tiny)
    fast = tiny.generate_batch(convs, toks, max_new_tokens=12, backend="fast")
    hf = tiny.generate_batch(convs, toks, max_new_tokens=12, backend="hf")
    assert fast == hf
    assert tiny.resolve_backend(None) == "fast"  # "auto" on a small CPU model
    with pytest.raises(ValueError, match="backend"):
        tiny.generate(convs[3], backend="vllm")


@pytest.mark.parametrize("frequency, presence", [(1.5, 0.0), (0.0, 2.0), (0.7, -0.5)])
def test_repetition_penalties_same_in_both_backends(tiny, frequency, presence) -> None:
    convs, toks = _conversations(), _image_tokens(tiny)
    kwargs = {"max_new_tokens": 16, "frequency_penalty": frequency, "presence_penalty": presence}
    fast = tiny.generate_batch(convs, toks, backend="fast", **kwargs)
    assert fast == tiny.generate_batch(convs, toks, backend="hf", **kwargs)
    plain = tiny.generate_batch(convs, toks, max_new_tokens=16, backend="fast")
    assert fast != plain  # the random tiny model repeats itself; the penalties change that


def test_presence_penalty_stops_greedy_repeats(tiny) -> None:
    ids = tiny.codec.encode(
        tiny.generate(_conversations()[3], max_new_tokens=24, presence_penalty=2.0),
        add_prefix=False,
    )
    repeats = tiny.codec.encode(tiny.generate(_conversations()[3], max_new_tokens=24), False)
    # Tokenisation of decoded text can merge pieces, so compare distinct-token shares.
    assert len(set(ids)) / len(ids) > len(set(repeats)) / len(repeats)


def test_decoder_rebuilt_when_weights_change(tiny: RadialogModel) -> None:
    model = RadialogModel.from_config("tiny")
    inputs = _inputs(model, [0])
    eos = model.codec.eos_token_id
    before = decoder_for(model.llm)
    with torch.no_grad():
        for name, p in model.llm.named_parameters():
            if "lora_B" in name:
                p.add_(1.0)
    after = decoder_for(model.llm)
    assert after is not before
    assert torch.equal(_fast(model, inputs, 10, eos), _hf(model, inputs, 10, eos))


def test_hf_forward_fallback_identical(tiny: RadialogModel) -> None:
    inputs = _inputs(tiny, [0, 2, 3])
    eos = tiny.codec.eos_token_id
    decoder = StepDecoder(HFForwardStepper(tiny.llm))  # the same loop around the model's forward
    out = decoder.decode(
        inputs["inputs_embeds"],
        inputs["attention_mask"],
        max_new_tokens=10,
        eos_token_id=eos,
        pad_token_id=tiny.codec.pad_token_id,
    )
    assert torch.equal(out, _hf(tiny, inputs, 10, eos))


def test_bfloat16_weights_run(tiny: RadialogModel) -> None:
    inputs = _inputs(tiny, [0, 3])
    out = decoder_for(tiny.llm, FastOptions(dtype=torch.bfloat16)).decode(
        inputs["inputs_embeds"],
        inputs["attention_mask"],
        max_new_tokens=8,
        eos_token_id=-1,
        pad_token_id=tiny.codec.pad_token_id,
    )
    assert out.shape == (2, 8)
    assert int(out.min()) >= 0 and int(out.max()) < len(tiny.tokenizer)


def test_invalid_options() -> None:
    with pytest.raises(ValueError, match="floating-point"):
        FastOptions(dtype=torch.int8)
    with pytest.raises(TypeError):
        FastOptions(quantize="int8")  # retired (benchmarks/README.md)


def test_sampling_is_seeded_and_stays_in_top_p(tiny: RadialogModel) -> None:
    inputs = _inputs(tiny, [0])
    eos = tiny.codec.eos_token_id

    def sample(seed: int, top_p: float) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return _fast(
            tiny, inputs, 8, eos, do_sample=True, temperature=0.7, top_p=top_p, generator=g
        )

    assert torch.equal(sample(3, 0.9), sample(3, 0.9))
    # top_p -> 0 keeps only the most likely token: sampling becomes greedy.
    assert torch.equal(sample(4, 1e-9), _fast(tiny, inputs, 8, eos))
