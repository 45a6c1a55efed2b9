"""The llama.cpp backend: GGUF export with LoRA merged, prompt embeddings into llama.cpp, and
the same decode semantics as the torch fast decoder.

Unit tests use a tiny random Llama written as an F32 GGUF (tests/gguf_tiny.py) with random,
non-zero LoRA on all seven projections; the e2e test uses the embedded default model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("llama_cpp", reason="llama-cpp-python is installed by `make test`")

pytestmark = (
    pytest.mark.slow
)  # GGUF exports and llama.cpp loads of the embedded model take 5-30 s each

from gguf import GGUFReader, quants  # noqa: E402

from gguf_tiny import tiny_gguf_model  # noqa: E402
from radialog.errors import CheckpointError, InvalidInputError, MissingDependencyError  # noqa: E402
from radialog.model import llamacpp  # noqa: E402
from radialog.model.config import load_named_config  # noqa: E402
from radialog.model.decoding import base_causal_lm, decoder_for, effective_weight  # noqa: E402
from radialog.model.gguf_export import _hf_layout, export_gguf  # noqa: E402
from radialog.model.llm import load_llm  # noqa: E402
from radialog.model.prompt import Conversation, report_conversation  # noqa: E402
from radialog.model.radialog_model import RadialogModel  # noqa: E402

ALL_PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    root = tmp_path_factory.mktemp("llamacpp")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RADIALOG_CACHE_DIR", str(root / "cache"))
        model = tiny_gguf_model(root, ALL_PROJECTIONS)
        model.llamacpp_options = llamacpp.LlamaCppOptions(weights="f32", threads=1)
        yield model, root
        llamacpp.LLAMACPP_DECODERS.forget(model.llm)


def _conversations() -> list[Conversation]:
    return [
        report_conversation("Cardiomegaly, Pleural Effusion"),
        Conversation().add_user("Is the heart enlarged? Please explain the finding in detail."),
        Conversation().add_user("hi"),
    ]


def _tokens(model: RadialogModel) -> list[torch.Tensor | None]:
    g = torch.Generator().manual_seed(0)
    return [model.encode_image(torch.rand(1, 3, 64, 64, generator=g))[0], None, None]


def test_export_merges_lora_into_every_projection(tiny_gguf, tmp_path):
    model, _ = tiny_gguf
    source = model.gguf_source()
    out = export_gguf(model.llm, source, tmp_path / "merged.gguf", weights="f32")
    tensors = {t.name: t for t in GGUFReader(out).tensors}
    layer = base_causal_lm(model.llm).model.layers[1]
    for hf, name in [
        ("self_attn.q_proj", "attn_q"),
        ("self_attn.k_proj", "attn_k"),
        ("mlp.down_proj", "ffn_down"),
    ]:
        t = tensors[f"blk.1.{name}.weight"]
        stored = _hf_layout(name, quants.dequantize(t.data, t.tensor_type), 4, 2)
        merged, _ = effective_weight(layer.get_submodule(hf))
        base = layer.get_submodule(hf).base_layer.weight
        assert not torch.allclose(merged, base)  # the LoRA delta is really there
        torch.testing.assert_close(torch.from_numpy(stored.copy()), merged, atol=1e-5, rtol=0)
    assert not list(tmp_path.glob(".*tmp"))  # atomic: no temp file left behind


def test_export_refuses_a_gguf_the_llm_did_not_come_from(tiny_gguf, tmp_path):
    model, _ = tiny_gguf
    cfg = load_named_config("tiny")
    cfg.llm.seed = 5  # another random llama: not the GGUF's weights
    other = RadialogModel(cfg)
    with pytest.raises(CheckpointError, match="differ from the loaded LLM"):
        export_gguf(other.llm, model.gguf_source(), tmp_path / "x.gguf")
    assert not (tmp_path / "x.gguf").exists()


def _first_logits(model, stepper) -> torch.Tensor:
    """The next-token logits of the first test conversation, from `stepper`'s prefill."""
    inputs = model.prepare_inputs(_conversations()[:1], _tokens(model)[:1], train=False)
    mask = inputs["attention_mask"]
    with torch.no_grad():
        logits, _ = stepper.prefill(
            inputs["inputs_embeds"], mask, mask.cumsum(-1) - 1, mask.shape[1] + 4
        )
    return logits


def test_llamacpp_logits_match_the_torch_model(tiny_gguf):
    model, _ = tiny_gguf
    torch_logits = _first_logits(model, decoder_for(model.llm).stepper)
    cpp_logits = _first_logits(model, model.llamacpp_decoder().stepper)
    scale = torch_logits.abs().max()
    assert (cpp_logits - torch_logits).abs().max() < 1e-3 * scale
    assert cpp_logits.argmax() == torch_logits.argmax()


def test_greedy_output_equals_fast_decoder_single_and_batched(tiny_gguf):
    model, _ = tiny_gguf
    convs, toks = _conversations(), _tokens(model)
    fast = model.generate_batch(convs, toks, max_new_tokens=10, backend="fast")
    cpp_batched = model.generate_batch(convs, toks, max_new_tokens=10, backend="llamacpp")
    cpp_single = [
        model.generate(c, t, max_new_tokens=10, backend="llamacpp")
        for c, t in zip(convs, toks, strict=True)
    ]
    assert cpp_batched == fast
    assert cpp_single == fast
    # The penalties run in the shared decode loop; penalised logits have near-ties where
    # F32 rounding may pick the other token late in a sequence, so compare the first tokens.
    penalties = {"max_new_tokens": 10, "frequency_penalty": 0.8, "presence_penalty": 0.5}
    cpp_pen = model.generate_batch(convs, toks, backend="llamacpp", **penalties)
    fast_pen = model.generate_batch(convs, toks, backend="fast", **penalties)
    assert cpp_pen != cpp_batched
    for a, b in zip(cpp_pen, fast_pen, strict=True):
        ids_a = model.codec.encode(a, add_prefix=False)
        assert ids_a[:4] == model.codec.encode(b, add_prefix=False)[:4]


def test_prefix_reuse_gives_the_same_answer_as_a_fresh_cache(tiny_gguf):
    model, _ = tiny_gguf
    convs, toks = _conversations(), _tokens(model)
    stepper = model.llamacpp_decoder().stepper
    first = model.generate(convs[0], toks[0], max_new_tokens=8, backend="llamacpp")
    # A follow-up: the earlier prompt and answer are a prefix of the new prompt.
    follow = convs[0].copy().add_assistant(first).add_user("Is there an effusion?")
    answer = model.generate(follow, toks[0], max_new_tokens=8, backend="llamacpp")
    assert (
        stepper.reused
        > 0.8 * model.prepare_inputs([convs[0]], [toks[0]], train=False)["attention_mask"].shape[1]
    )
    stepper.forget()  # the next prefill starts from scratch
    assert model.generate(follow, toks[0], max_new_tokens=8, backend="llamacpp") == answer
    assert stepper.reused == 0
    # Another prompt shares only the system prompt; then the first one again.
    other = model.generate(convs[1], None, max_new_tokens=8, backend="llamacpp")
    assert 0 < stepper.reused < 60
    assert model.generate(convs[0], toks[0], max_new_tokens=8, backend="llamacpp") == first
    assert other == model.generate(convs[1], None, max_new_tokens=8, backend="fast")


def test_interleaved_dialogs_keep_their_own_caches(tiny_gguf):
    model, _ = tiny_gguf
    convs, toks = _conversations(), _tokens(model)
    stepper = model.llamacpp_decoder().stepper
    stepper.forget()
    dialogs = [(convs[0], toks[0]), (convs[1], None)]
    answers = [model.generate(c, t, max_new_tokens=6, backend="llamacpp") for c, t in dialogs]
    for (conv, tok), answer in zip(dialogs, answers, strict=True):
        follow = conv.copy().add_assistant(answer).add_user("Why?")
        earlier = model.prepare_inputs([conv], [tok], train=False)["attention_mask"].shape[1]
        reply = model.generate(follow, tok, max_new_tokens=6, backend="llamacpp")
        assert stepper.reused >= earlier  # the other dialog did not evict this one's cache
        assert reply == model.generate(follow, tok, max_new_tokens=6, backend="fast")


def test_prompts_longer_than_a_batch_are_fed_in_chunks(tiny_gguf):
    model, _ = tiny_gguf
    long_question = "Describe the heart, lungs, pleura, bones and devices in detail. " * 4
    conv = report_conversation("Cardiomegaly").add_assistant("The heart is big.")
    conv.add_user(long_question)
    toks = _tokens(model)[:1]
    inputs = model.prepare_inputs([conv], toks, train=False)
    assert inputs["attention_mask"].shape[1] > 3 * 16
    path = model.llamacpp_decoder().path
    small = llamacpp.LlamaCppDecoder(path, 1, model.llm.get_input_embeddings().weight, max_batch=16)
    kwargs = {
        "max_new_tokens": 8,
        "eos_token_id": model.codec.eos_token_id,
        "pad_token_id": model.codec.pad_token_id,
    }
    chunked = small.decode(inputs["inputs_embeds"], inputs["attention_mask"], **kwargs)
    fast = decoder_for(model.llm).decode(
        inputs["inputs_embeds"], inputs["attention_mask"], **kwargs
    )
    assert chunked.tolist() == fast.tolist()


def test_streamer_sees_the_generated_tokens(tiny_gguf):
    model, _ = tiny_gguf

    class Collect:
        def __init__(self):
            self.steps, self.ended = [], False

        def put(self, value):
            self.steps.append(value)

        def end(self):
            self.ended = True

    streamer = Collect()
    text = model.generate(
        _conversations()[2], max_new_tokens=6, streamer=streamer, backend="llamacpp"
    )
    ids = torch.cat(streamer.steps[1:]).tolist()  # first put: the (empty) prompt
    assert streamer.ended and 1 <= len(ids) <= 6
    assert model.codec.decode(ids) == text


def test_export_is_cached_and_redone_when_lora_changes(tiny_gguf):
    model, root = tiny_gguf  # the fixture points RADIALOG_CACHE_DIR at root/cache
    first = model.llamacpp_decoder()
    assert model.llamacpp_decoder() is first
    assert first.path.parent == root / "cache" / "llamacpp"
    files = sorted(first.path.parent.glob("*.gguf"))
    with torch.no_grad():
        next(p for n, p in model.llm.named_parameters() if "lora_B" in n).add_(0.1)
    second = model.llamacpp_decoder()
    assert second is not first and second.path != first.path
    assert len(sorted(first.path.parent.glob("*.gguf"))) == len(files) + 1
    # Old exports are pruned to the most recently used few.
    for i in range(llamacpp.KEEP_EXPORTS + 2):
        (first.path.parent / f"stale-{i}.gguf").write_bytes(b"x")
    kept = llamacpp.exported_gguf(model.llm, model.gguf_source(), "f32")
    assert kept == second.path and kept.is_file()
    assert len(list(kept.parent.glob("*.gguf"))) == llamacpp.KEEP_EXPORTS


def test_auto_backend_and_clear_errors(tiny_gguf, monkeypatch):
    model, _ = tiny_gguf
    assert model.resolve_backend("auto") == "llamacpp"
    random_llm = RadialogModel.from_config("tiny")
    assert random_llm.resolve_backend("auto") == "fast"
    with pytest.raises(InvalidInputError, match="GGUF"):
        random_llm.generate(Conversation().add_user("hi"), max_new_tokens=2, backend="llamacpp")
    monkeypatch.setattr(llamacpp, "llamacpp_available", lambda: False)
    monkeypatch.setattr("radialog.model.radialog_model.llamacpp_available", lambda: False)
    assert model.resolve_backend("auto") == "fast"
    with pytest.raises(MissingDependencyError, match="pip install llama-cpp-python"):
        llamacpp.llamacpp_decoder_for(model.llm, model.gguf_source())


@pytest.fixture()
def model_loads(monkeypatch):
    """Every llama.cpp model load in this test: (file name, use_extra_bufts) per load."""
    import llama_cpp as top
    from llama_cpp import llama_cpp as c_api

    real = c_api.llama_model_load_from_file
    seen: list[tuple[str, bool]] = []

    def spy(path: bytes, params):
        seen.append((path.decode().rsplit("/", 1)[-1], bool(params.use_extra_bufts)))
        return real(path, params)

    monkeypatch.setattr(c_api, "llama_model_load_from_file", spy)  # Llama (via _internals)
    monkeypatch.setattr(top, "llama_model_load_from_file", spy)  # our C-API loader
    return seen


def test_every_llamacpp_load_turns_off_the_amx_repack_buffers(tiny_gguf, model_loads, monkeypatch):
    """llama.cpp's extra buffer types (AMX repacking of quantised weights) segfault on Intel
    AMX CPUs (ggml-org/llama.cpp#20824): every load must pass use_extra_bufts=False, which
    this pins on any machine by looking at the parameters each load passes."""
    import llama_cpp as top

    from radialog.data import replay

    assert top.llama_model_default_params().use_extra_bufts  # llama.cpp's default is on
    model, root = tiny_gguf
    # 1. the generation backend (C API), through a fresh decoder
    llamacpp.LLAMACPP_DECODERS.forget(model.llm)
    model.generate(Conversation().add_user("hi"), max_new_tokens=2, backend="llamacpp")
    # 2. llama-cpp-python's Llama: the replay generator and the benchmark's reference row
    monkeypatch.setattr("radialog.model.llm.load_tokenizer", lambda source: None)
    replay.LlamaCppChatGenerator(str(root / "tiny.gguf"), threads=1)._load()
    llm = llamacpp.open_llama(root / "tiny.gguf", n_ctx=64, n_threads=1, verbose=False)
    assert llm.tokenize(b"hello")  # a working model
    assert len(model_loads) == 3
    assert all(not extra for _name, extra in model_loads), model_loads
    assert top.llama_model_default_params().use_extra_bufts  # nothing patched for others


def test_export_file_name_says_what_it_holds(tiny_gguf):
    from pathlib import Path

    source = Path("SmolLM2-135M-Instruct.Q4_1.gguf")
    assert llamacpp.export_name(source, "f16", "k") == "SmolLM2-135M-Instruct.F16-merged-k.gguf"
    assert llamacpp.export_name(Path("m-q8_0.gguf"), "f32", "k") == "m.F32-merged-k.gguf"
    assert llamacpp.export_name(source, "source", "k") == "SmolLM2-135M-Instruct.Q4_1-merged-k.gguf"
    model, _ = tiny_gguf
    path = llamacpp.exported_gguf(model.llm, model.gguf_source(), "f32")
    assert path.name.startswith("tiny.F32-merged-")


def test_first_use_is_quiet_and_says_once_what_it_prepares(tiny_gguf, tmp_path, monkeypatch, capfd):
    """No transformers warning or progress bar on a cold start; one line per preparation
    saying what, where and how big; nothing on the next start."""
    import logging

    model, root = tiny_gguf
    cache = tmp_path / "cache"
    monkeypatch.setenv("RADIALOG_CACHE_DIR", str(cache))
    notices: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: notices.append(record.getMessage())
    prepare = logging.getLogger("radialog.prepare")
    prepare.addHandler(handler)
    monkeypatch.setattr(prepare, "level", logging.INFO)
    try:
        cfg = load_named_config("tiny").llm
        cfg.source, cfg.tokenizer = str(root / "tiny.gguf"), None
        capfd.readouterr()
        load_llm(cfg)
        err = capfd.readouterr().err
        assert "legacy" not in err and "de-quantizing" not in err.lower(), err
        assert len(notices) == 1, notices
        assert "tiny.gguf" in notices[0] and str(cache / "llm") in notices[0]
        assert " MB" in notices[0]
        load_llm(cfg)  # warm: silent
        assert len(notices) == 1
        llamacpp.exported_gguf(model.llm, model.gguf_source(), "f16")
        assert len(notices) == 2 and "F16" in notices[1] and str(cache / "llamacpp") in notices[1]
        # Nothing but radialog's own notice (shown when an earlier CLI test set up its handler).
        err = capfd.readouterr().err
        assert all(line.startswith("radialog: ") for line in err.splitlines()), err
    finally:
        prepare.removeHandler(handler)


def test_torch_stays_idle_while_llamacpp_decodes(tiny_gguf, monkeypatch):
    """One pool: during llama.cpp's decode torch runs single-threaded (its OpenMP threads
    would spin on the cores llama.cpp's threads need), and gets its threads back after."""
    model, _ = tiny_gguf
    decoder = model.llamacpp_decoder()
    seen: list[int] = []
    step = decoder.stepper.step

    def watched(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return step(*args, **kwargs)

    monkeypatch.setattr(decoder.stepper, "step", watched)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        model.generate(Conversation().add_user("hi"), max_new_tokens=4, backend="llamacpp")
        assert seen and set(seen) == {1}
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_threads_flag_reaches_llamacpp(monkeypatch):
    from argparse import Namespace

    from radialog.commands.options import load_model

    before = torch.get_num_threads()
    try:
        model = load_model(Namespace(model="tiny", threads=3, backend="auto"))
        assert model.llamacpp_options.threads == 3 and torch.get_num_threads() == 3
        monkeypatch.setattr("radialog.cpu.free_cores", lambda sample_s=0.1: 1)
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        model = load_model(Namespace(model="tiny", threads=None, backend="auto"))
        assert torch.get_num_threads() == 1  # the free cores, not all cores
        assert model.llamacpp_options.threads is None  # llama.cpp measures when it starts
    finally:
        torch.set_num_threads(before)


def test_no_llamacpp_load_bypasses_the_safe_loaders():
    """A new load elsewhere would not get the AMX-safe parameters: only llamacpp.py loads."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    offenders = []
    for path in [*(root / "src").rglob("*.py"), *(root / "benchmarks").rglob("*.py")]:
        text = path.read_text()
        if path.name == "llamacpp.py" and path.parent.name == "model":
            continue
        if "llama_model_load_from_file" in text or "Llama(" in text:
            offenders.append(str(path.relative_to(root)))
    assert offenders == []


@pytest.mark.e2e
def test_embedded_model_report_through_llamacpp():
    from data_paths import EXAMPLE_IMAGE
    from radialog.model.prompt import findings_text, report_conversation

    torch.set_num_threads(2)
    mini = RadialogModel.from_pretrained("radialog-mini").eval()
    mini.generation_backend = "llamacpp"
    report = mini.generate_report(EXAMPLE_IMAGE, max_new_tokens=32, check=False)
    mini.generation_backend = "fast"
    reference = mini.generate_report(EXAMPLE_IMAGE, max_new_tokens=32, check=False)
    assert report.findings == reference.findings
    cpp_ids = mini.codec.encode(report.text, add_prefix=False)
    ref_ids = mini.codec.encode(reference.text, add_prefix=False)
    same = next(
        (i for i, (a, b) in enumerate(zip(cpp_ids, ref_ids, strict=False)) if a != b), len(ref_ids)
    )
    # F16 weights (the default export): the report starts the same way as the float model's,
    # unless the float model itself was at a near-tie where they part (F16 rounding can flip
    # only a near-tie): then its logits for the two tokens must be within 0.5.
    if same >= 16:
        return
    analysis = mini.analyse_image(EXAMPLE_IMAGE)
    conv = report_conversation(findings_text(analysis.predicted))
    inputs = mini.prepare_inputs([conv], analysis.image_tokens, train=False)
    prefix = torch.tensor([ref_ids[:same]], dtype=torch.long)
    embeds = torch.cat([inputs["inputs_embeds"], mini.llm.get_input_embeddings()(prefix)], 1)
    mask = torch.ones(embeds.shape[:2], dtype=inputs["attention_mask"].dtype)
    with torch.no_grad():
        logits = mini.llm(inputs_embeds=embeds, attention_mask=mask).logits[0, -1].float()
    gap = float(logits[ref_ids[same]] - logits[cpp_ids[same]])
    assert 0 <= gap < 0.5, (gap, report.text, reference.text)


@pytest.mark.e2e
def test_export_weight_modes_on_the_quantised_source(tmp_path):
    from gguf import GGMLQuantizationType as Q

    mini = RadialogModel.from_pretrained("radialog-mini")
    source = mini.gguf_source()
    types = {}
    for mode in ("source", "f16"):
        path = export_gguf(mini.llm, source, tmp_path / f"{mode}.gguf", weights=mode)
        types[mode] = {t.name: t.tensor_type for t in GGUFReader(path).tensors}
    # In "source" mode only the LoRA-merged projections leave the file's quantisation (the
    # embedded model has LoRA on every linear layer); the rest stays byte-equal.
    lora = set(mini.config.llm.lora.target_modules)
    names = {"q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "down_proj": "ffn_down"}
    for module, tensor in names.items():
        merged = types["source"][f"blk.0.{tensor}.weight"]
        assert merged == Q.F32 if module in lora else merged != Q.F32
    assert types["source"]["token_embd.weight"] == Q.Q8_0
    assert {types["f16"][f"blk.0.{n}.weight"] for n in ("attn_q", "attn_k", "ffn_down")} == {Q.F16}
    assert types["f16"]["blk.0.attn_norm.weight"] == Q.F32
    with pytest.raises(ValueError, match="weights must be one of"):
        export_gguf(mini.llm, source, tmp_path / "x.gguf", weights="q2_k")


@pytest.mark.e2e
def test_replay_pseudo_labels_through_llamacpp(tmp_path):
    from radialog.data.replay import (
        LlamaCppChatGenerator,
        LLMGenerator,
        make_pseudo_labeler,
        replay_generator,
    )

    chat = [{"role": "user", "content": "Summarize in one sentence: Cardiomegaly. No effusion."}]
    fast = replay_generator("smollm2", max_new_tokens=24)
    assert isinstance(fast, LlamaCppChatGenerator) and "llamacpp" in fast.id
    hf = replay_generator("smollm2", "hf", max_new_tokens=24)
    assert isinstance(hf, LLMGenerator) and hf.id != fast.id  # separate answer caches
    answer = fast([chat])[0]
    assert answer and answer == fast([chat])[0]  # greedy: deterministic (and prefix-cached)
    assert answer.split()[:3] == hf([chat])[0].split()[:3]
    (tmp_path / "hf-model").mkdir()
    (tmp_path / "hf-model" / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="GGUF"):
        replay_generator(str(tmp_path / "hf-model"), "llamacpp")  # a HF directory
    labeler = make_pseudo_labeler("smollm2", tmp_path / "cache.jsonl", max_new_tokens=24)
    assert labeler([chat]) == [answer]
    assert (tmp_path / "cache.jsonl").read_text().count("\n") == 1


def test_q8_0_export_quantises_the_merged_matrices(tiny_gguf, tmp_path):
    from gguf import GGMLQuantizationType as Q

    model, _ = tiny_gguf
    source = model.gguf_source()
    q8 = export_gguf(model.llm, source, tmp_path / "q8.gguf", weights="q8_0")
    f32 = export_gguf(model.llm, source, tmp_path / "f32.gguf", weights="f32")
    q8_tensors = {t.name: t for t in GGUFReader(q8).tensors}
    f32_tensors = {t.name: t for t in GGUFReader(f32).tensors}
    names = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")
    assert {q8_tensors[f"blk.0.{n}.weight"].tensor_type for n in names} == {Q.Q8_0}
    assert q8_tensors["blk.0.attn_norm.weight"].tensor_type == Q.F32
    # The LoRA is merged before quantising: each Q8_0 matrix is the merged F32 one to within
    # one quantisation step (max|w| / 127; the block scales are stored in F16). Without the
    # merge the difference would be the LoRA delta itself.
    for n in names:
        merged = np.asarray(f32_tensors[f"blk.1.{n}.weight"].data, dtype=np.float32)
        tensor = q8_tensors[f"blk.1.{n}.weight"]
        values = quants.dequantize(tensor.data, tensor.tensor_type).reshape(merged.shape)
        assert np.abs(values - merged).max() <= np.abs(merged).max() / 127, n
    # llama.cpp runs it, close to the torch model (it also quantises the activations: on this
    # random tiny model with large random LoRA weights the logits' cosine is 0.98).
    decoder = llamacpp.LlamaCppDecoder(q8, 1, model.llm.get_input_embeddings().weight)
    torch_logits = _first_logits(model, decoder_for(model.llm).stepper)
    cpp_logits = _first_logits(model, decoder.stepper)
    cosine = torch.nn.functional.cosine_similarity(cpp_logits.flatten(), torch_logits.flatten(), 0)
    assert cosine > 0.95
    assert cpp_logits.argmax() == torch_logits.argmax()
